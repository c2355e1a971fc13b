# noreply requests have no response: published as OK at once; the next response
# pairs with the next request that expects one.
>>>
set a 0 0 1 noreply
1
incr a 5 noreply
delete a noreply
get a
<<<
END
>>>
quit
