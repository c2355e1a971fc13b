# Fail responses and their status: Error, Client Error, Server Error.
>>>
delete nokey
<<<
NOT_FOUND
>>>
add k1 0 0 1
x
<<<
NOT_STORED
>>>
incr k1 1
<<<
CLIENT_ERROR cannot increment or decrement non-numeric value
>>>
set big 0 0 4
abcd
<<<
SERVER_ERROR out of memory storing object
>>>
verbosity
<<<
ERROR
