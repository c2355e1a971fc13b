# An aggregate announcing more than max_elements (a map: pairs) ends the
# connection; the count is never used to size anything.
@set max_elements=3
>>>
HGETALL h
<<<
%3
$1
a
$1
1
$1
b
$1
2
$1
c
$1
3
>>>
HGETALL big
<<<
%4
