# Three request/response pairs on one keep-alive connection.
>>>
GET /a HTTP/1.1
Host: localhost:8080

<<<
HTTP/1.1 200 OK
Content-Length: 2

ok\
>>>
GET /b.json HTTP/1.1
Host: localhost:8080

<<<
HTTP/1.1 200 OK
Content-Type: application/json
Content-Length: 2

{}\
>>>
GET /c HTTP/1.1
Host: localhost:8080

<<<
HTTP/1.1 500 Internal Server Error
Content-Length: 0

