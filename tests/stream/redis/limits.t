# An over-long status line exceeds max_line_bytes: the connection is unparseable.
@set max_line_bytes=64
>>>
PING
<<<
+PONG
>>>
GET k
<<<
+aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
