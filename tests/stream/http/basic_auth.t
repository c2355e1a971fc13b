# Basic auth: user.name + related.user; credentials redacted in headers and raw text.
@set redact_authorization=true
@set send_headers=authorization
@set send_request=true
>>>
GET / HTTP/1.1
Host: www.example.com
Authorization: Basic c2ltcGxlc2ltb246YWJjZDEyMys=
User-Agent: curl/7.37.1

<<<
HTTP/1.1 200 OK
Content-Length: 2

hi\
