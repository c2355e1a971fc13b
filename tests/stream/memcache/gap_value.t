# Bytes lost inside a data block are skipped and noted; the stream goes on.
>>>
set k 0 0 10
01\
@gap client 5
>>>
789
<<<
STORED
>>>
get k
<<<
VALUE k 0 10
0123\
@gap server 4
<<<
89
END
>>>
get k
@gap client 3
>>>
get resync
<<<
END
