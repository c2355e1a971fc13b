# 204 and 304 never have a body, whatever the headers say.
>>>
DELETE /item/1 HTTP/1.1
Host: h

<<<
HTTP/1.1 204 No Content

>>>
GET /cached HTTP/1.1
Host: h
If-None-Match: "x"

<<<
HTTP/1.1 304 Not Modified
ETag: "x"
Content-Length: 99

>>>
GET /after HTTP/1.1
Host: h

<<<
HTTP/1.1 200 OK
Content-Length: 0

