# More pipelined commands than max_pending: the extra ones get no event, their
# replies are consumed in order, and pairing stays right afterwards.
@set max_pending=2
>>>
GET a
GET b
GET c
GET d
<<<
$1
A
$1
B
$1
C
$1
D
>>>
GET e
<<<
$1
E
