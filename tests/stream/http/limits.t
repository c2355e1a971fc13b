# A header line longer than max_line_bytes makes the connection unparseable.
@set max_line_bytes=64
>>>
GET /ok HTTP/1.1
Host: h

<<<
HTTP/1.1 200 OK
Content-Length: 0

>>>
GET /bad HTTP/1.1
X-Long: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa

