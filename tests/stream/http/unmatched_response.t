# A response with no request (capture started mid-connection), then a normal pair.
<<<
HTTP/1.1 404 Not Found
Content-Length: 3

no!\
>>>
GET / HTTP/1.1
Host: h

<<<
HTTP/1.1 200 OK
Content-Length: 0

