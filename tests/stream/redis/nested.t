# Nested arrays, nil and empty aggregates, an EXEC reply with an error element
# (not an Error transaction: only a top-level error is).
>>>
MULTI
<<<
+OK
>>>
EXEC
<<<
*5
*2
$1
a
*0
$-1
*-1
-ERR inner
*1
:7
>>>
*3
$6
config
$3
get
$9
maxmemory
<<<
*2
$9
maxmemory
$1
0
