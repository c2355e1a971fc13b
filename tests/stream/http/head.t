# A HEAD response has a Content-Length but no body; the next exchange follows.
>>>
HEAD /file.tar.gz HTTP/1.1
Host: h

<<<
HTTP/1.1 200 OK
Content-Length: 1000

>>>
GET /x HTTP/1.1
Host: h

<<<
HTTP/1.1 200 OK
Content-Length: 1

x\
