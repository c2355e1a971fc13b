# Packet loss inside a body of known length: skipped, noted, status unchanged.
# Then loss inside a header block: the connection resets and resyncs at the next
# request/status line.
>>>
GET /big HTTP/1.1
Host: h

<<<
HTTP/1.1 200 OK
Content-Length: 20

01234\
@gap server 10
<<<
56789\
>>>
GET /next HTTP/1.1
Host: h
@gap client 7
>>>
x-partial: y

GET /resync HTTP/1.1
Host: h

<<<
HTTP/1.1 200 OK
Content-Length: 0

