# HTTP/1.0 response without a length: the body ends when the server closes.
>>>
GET /old HTTP/1.0
Host: h:8000

<<<
HTTP/1.0 200 OK
Content-Type: text/html

<html>
<<<
</html>\
@fin server
