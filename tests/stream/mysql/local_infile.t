# LOAD DATA LOCAL INFILE: the server asks for the file (0xfb), the client sends
# its content in packets with seq != 0 (skipped, counted in the request bytes? no:
# they are not part of the request), the server answers OK.
>>> raw
1\x00\x00\x00\x03LOAD DATA LOCAL INFILE '/tmp/x.csv' INTO TABLE t\
<<< raw
\x0b\x00\x00\x01\xfb/tmp/x.csv\
>>> raw
\x08\x00\x00\x021,a\x0a2,b\x0a\
\x00\x00\x00\x03\
<<< raw
\x07\x00\x00\x04\x00\x02\x00\x02\x00\x00\x00\
>>> raw
\x09\x00\x00\x00\x03select 1\
<<< raw
\x07\x00\x00\x01\x00\x00\x00\x02\x00\x00\x00\
