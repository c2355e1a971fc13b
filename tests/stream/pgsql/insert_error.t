# INSERT ok (num_rows from the tag), then a duplicate key ErrorResponse
# (23505) with a NoticeResponse before it; ReadyForQuery in its own segment.
>>> raw
Q\x00\x00\x00>insert into test(a, b, c) values('mea5', 'meb5', 'mec5');\x00\
<<< raw
C\x00\x00\x00\x0fINSERT 0 1\x00\
Z\x00\x00\x00\x05I\
>>> raw
Q\x00\x00\x00>insert into test(a, b, c) values('mea5', 'meb5', 'mec5');\x00\
<<< raw
N\x00\x00\x00\x1bSNOTICE\x00C00000\x00Mhello\x00\x00\
E\x00\x00\x00NSERROR\x00C23505\x00Mduplicate key value violates unique constraint "unique_a"\x00\x00\
<<< raw
Z\x00\x00\x00\x05I\
