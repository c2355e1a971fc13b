# Capture started mid-connection: server bytes before any request are skipped
# (resync), client bytes that are not a command at a segment start are skipped too.
<<< raw
\x03\x00\x00\x07\x01\x02\x03\x05\x00\x00\x08\xfe\x00\x00\x02\x00\
>>> raw
garbage not mysql\
>>> raw
\x09\x00\x00\x00\x03select 1\
<<< raw
\x07\x00\x00\x01\x00\x00\x00\x02\x00\x00\x00\
