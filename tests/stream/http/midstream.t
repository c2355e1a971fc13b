# Capture started in the middle of a connection: both directions skip bytes until
# a request / status line, then parse normally.
>>>
ody of an earlier POST\xff\xfe
more junk without a request line
GET /first-seen HTTP/1.1
Host: h

<<<
tail of an earlier response
HTTP/1.1 200 OK
Content-Length: 0

