# One GET on a fresh connection, Content-Length body.
>>>
GET /index.html?b=2&a=1 HTTP/1.1
Host: www.example.com
User-Agent: curl/7.37.1
Accept: */*
Referer: http://example.org/

<<<
HTTP/1.1 200 OK
Content-Type: text/html
Content-Length: 5

hello\
