# A CancelRequest (its own connection, no type byte) is skipped and counted.
>>> raw
\x00\x00\x00\x10\x04\xd2\x16.\x00\x00\x10\x92\x00\x00\x00c\
@fin client
