# Packetbeat's redis_session: SET, GET, then LLEN on a key of the wrong type.
>>>
*3
$3
set
$4
key3
$2
me
<<<
+OK
>>>
*2
$3
get
$4
key3
<<<
$2
me
>>>
*2
$4
llen
$4
key3
<<<
-ERR Operation against a key holding the wrong kind of value
