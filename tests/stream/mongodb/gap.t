# Packet loss inside a message of known length: the rest of it is skipped, the
# transaction is still paired and noted.  A gap at a message boundary resets the
# connection, which resyncs at the next plausible header.
>>> raw
\x06\x0c\x00\x00P\x00\x00\x00\x00\x00\x00\x00\xdd\x07\x00\x00\x00\
\x00\x00\x00\x00\xf1\x0b\x00\x00\x02find\x00\x04\x00\x00\x00big\x00\
\x03filter\x00\xc8\x0b\x00\x00\x02blob\x00\xb9\x0b\x00\x00yyyyyy\
yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy\
@gap client 2000
>>> raw
yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy\
yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy\
yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy\
yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy\
yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy\
yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy\
yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy\
yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy\
yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy\
yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy\
yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy\
yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy\
yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy\
yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy\
yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy\
y\x00\x00\x02$db\x00\x05\x00\x00\x00test\x00\x00\
<<< raw
a\x00\x00\x00\xb4\x00\x00\x00P\x00\x00\x00\xdd\x07\x00\x00\x00\x00\
\x00\x00\x00L\x00\x00\x00\x03cursor\x003\x00\x00\x00\x04firstBat\
ch\x00\x05\x00\x00\x00\x00\x12id\x00\x00\x00\x00\x00\x00\x00\x00\
\x00\x02ns\x00\x09\x00\x00\x00test.big\x00\x00\x01ok\x00\x00\x00\
\x00\x00\x00\x00\xf0?\x00\
@gap server 50
>>> raw
\x00\x00\x00\x00\x00\x00\x003\x00\x00\x00Q\x00\x00\x00\x00\x00\x00\
\x00\xdd\x07\x00\x00\x00\x00\x00\x00\x00\x1e\x00\x00\x00\x10ping\
\x00\x01\x00\x00\x00\x02$db\x00\x06\x00\x00\x00admin\x00\x00\
<<< raw
&\x00\x00\x00\xb5\x00\x00\x00Q\x00\x00\x00\xdd\x07\x00\x00\x00\x00\
\x00\x00\x00\x11\x00\x00\x00\x01ok\x00\x00\x00\x00\x00\x00\x00\xf0\
?\x00\
