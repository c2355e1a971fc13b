# Two Content-Type lines (as in Packetbeat's http_get_2k_file.pcap): the last one
# counts, so include_body_for=binary matches "Content-Type: binary" even though the
# first line says application/octet-stream; the exported body stops at
# max_message_size (16 bytes of the 40-byte body).
@set include_body_for=binary
@set max_message_size=16
>>>
GET /2k.file HTTP/1.1
Host: localhost:8000

<<<
HTTP/1.0 200 OK
Content-type: application/octet-stream
Content-Length: 40
Content-Type: binary

0123456789abcdefghijklmnopqrstuvwxyz!@$%\
