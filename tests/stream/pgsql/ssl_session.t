# SSLRequest answered 'S': the rest is TLS, counted (pgsql.tls_sessions) and
# ignored: no transactions, no parse error.
>>> raw
\x00\x00\x00\x08\x04\xd2\x16/\
<<< raw
S\
>>> raw
\x16\x03\x01\x00\x05hello\
<<< raw
\x16\x03\x03\x00\x05world\
>>> raw
Q\x00\x00\x00\x0dselect 1\x00\
<<< raw
C\x00\x00\x00\x0dSELECT 1\x00\
Z\x00\x00\x00\x05I\
