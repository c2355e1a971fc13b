# HELLO 3 switches the connection to RESP3: maps, sets, doubles, booleans, null,
# big numbers, verbatim strings, bulk errors and attributes are rendered.
>>>
HELLO 3
<<<
%3
$6
server
$5
redis
$5
proto
:3
$7
modules
*0
>>>
HGETALL h
SMEMBERS s
ZINCRBY z 1 m
EVAL "redis.setresp(3) return true" 0
GET
GET none
DEBUG PROTOCOL bignum
CLIENT INFO
DEBUG PROTOCOL attrib
<<<
%2
$1
a
$1
1
$1
b
$1
2
~2
+x
+y
,3.5
\x23t
!26
SYNTAX invalid syntax here
_
(12345678901234567890123456789
=21
txt:id=7 addr=1.2.3.4
|1
+key-popularity
%1
$1
a
,0.19
*2
:1
:2
