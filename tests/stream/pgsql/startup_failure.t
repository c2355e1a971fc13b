# A failed login (FATAL ErrorResponse during startup) is not a transaction.
>>> raw
\x00\x00\x00 \x00\x03\x00\x00user\x00bob\x00database\x00nope\x00\x00\
<<< raw
E\x00\x00\x00BSFATAL\x00C28P01\x00Mpassword authentication failed for user "bob"\x00\x00\
@fin server
