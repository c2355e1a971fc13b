# Text protocol: set with a data block, multi-key get merged up to END, a miss.
>>>
set k1 0 0 5
hello
<<<
STORED
>>>
set k2 7 300 3 
abc
<<<
STORED
>>>
get k1 missing k2
<<<
VALUE k1 0 5
hello
VALUE k2 7 3
abc
END
>>>
get nothere
<<<
END
>>>
gets k1
<<<
VALUE k1 0 5 42
hello
END
