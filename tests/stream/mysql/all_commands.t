# all_commands=true publishes the non-query commands too: PING, STATISTICS,
# STMT_CLOSE and QUIT (the last two have no response).
@set all_commands=true
>>> raw
\x01\x00\x00\x00\x0e\
<<< raw
\x07\x00\x00\x01\x00\x00\x00\x02\x00\x00\x00\
>>> raw
\x01\x00\x00\x00\x09\
<<< raw
\x15\x00\x00\x01Uptime: 5  Threads: 1\
>>> raw
\x05\x00\x00\x00\x19\x03\x00\x00\x00\
>>> raw
\x01\x00\x00\x00\x01\
