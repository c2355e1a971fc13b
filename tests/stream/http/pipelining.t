# Three pipelined requests in one segment, then the three responses in one.
>>>
GET /one HTTP/1.1
Host: h

GET /two HTTP/1.1
Host: h

GET /three HTTP/1.1
Host: h

<<<
HTTP/1.1 200 OK
Content-Length: 1

1HTTP/1.1 201 Created
Content-Length: 2

22HTTP/1.1 404 Not Found
Content-Length: 3

333\
