# A response without a request, then a request whose response never comes
# (flushed by expire as unmatched), and one that times out.
@set transaction_timeout=1000
<<<
STORED
>>>
get k
@time +2000
>>>
get j
<<<
END
>>>
get lost
@expire
