# Chunked response with chunk extensions and trailers; the decoded body exported.
@set include_body_for=text/plain
@set send_response=true
>>>
GET /stream HTTP/1.1
Host: h

<<<
HTTP/1.1 200 OK
Content-Type: text/plain
Transfer-Encoding: chunked

5;name=value
hello
7;a=b;c="d"
, world
0
X-Checksum: abc
X-Other: 1

