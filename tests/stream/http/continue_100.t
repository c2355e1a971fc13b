# Expect: 100-continue: the interim 100 response is not a transaction.
@set send_headers=expect
>>>
PUT /upload HTTP/1.1
Host: h
Expect: 100-continue
Content-Length: 4

<<<
HTTP/1.1 100 Continue

>>>
data\
<<<
HTTP/1.1 201 Created
Content-Length: 0

