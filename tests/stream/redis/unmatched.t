# A reply without a request, a request that times out (its late reply is
# unmatched too, the next pair is still right), and a request pending at the end.
<<<
+OK
>>>
*3
$5
BLPOP
$1
q
$1
0
@time +11000
>>>
PING
<<<
*2
$1
q
$1
v
+PONG
>>>
GET tail
@expire
