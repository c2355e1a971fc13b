# A 4xx answer makes the transaction an Error.
>>>
GET /missing.png HTTP/1.1
Host: h

<<<
HTTP/1.1 404 NOT FOUND
Content-Type: text/plain
Content-Length: 9

not found\
