# A response with no request after sync becomes "Unmatched response"; a request
# without response is published as "Unmatched request" at expire. COM_QUIT has no
# response and is not published by default.
>>> raw
\x09\x00\x00\x00\x03select 1\
<<< raw
\x07\x00\x00\x01\x00\x00\x00\x02\x00\x00\x00\
<<< raw
\x0e\x00\x00\x01\xff(\x04\x2342000stray\
>>> raw
\x11\x00\x00\x00\x03update t set a=1\
@expire
>>> raw
\x01\x00\x00\x00\x01\
