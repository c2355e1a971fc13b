# stats: STAT lines merged up to END; raw_args kept; stats reset answers RESET.
>>>
stats
<<<
STAT pid 1
STAT version 1.6.18
STAT libevent 2.1.12-stable
END
>>>
stats slabs
<<<
STAT active_slabs 0
STAT total_malloced 0
END
>>>
stats reset
<<<
RESET
