# Over max_pending: the oldest pending request is published as unmatched;
# the raw request text is capped at max_message_size.
@set max_pending=2
@set send_request=true
@set max_message_size=10
>>>
GET /1 HTTP/1.1

GET /2 HTTP/1.1

GET /3 HTTP/1.1

<<<
HTTP/1.1 200 OK
Content-Length: 0

HTTP/1.1 200 OK
Content-Length: 0

