# Pipelined requests in one segment, responses in one segment.
>>>
set a 0 0 1
1
set b 0 0 1
2
get a b
delete a
<<<
STORED
STORED
VALUE a 0 1
1
VALUE b 0 1
2
END
DELETED
