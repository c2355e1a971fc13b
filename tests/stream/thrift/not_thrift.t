# Bytes that are neither protocol nor framing: the connection is given up.
>>>
GET / HTTP/1.1
