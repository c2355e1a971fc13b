# COM_QUERY answered by OK packets: affected rows, insert id, verb, path from
# the SQL text (INSERT/UPDATE/DELETE), leading comments skipped for the verb.
>>> raw
\x1e\x00\x00\x00\x03INSERT INTO t1 (a) VALUES (1)\
<<< raw
\x07\x00\x00\x01\x00\x01\x05\x02\x00\x00\x00\
>>> raw
5\x00\x00\x00\x03/* app=x */ -- note\x0a  update `shop`.`orders` set a=1\
<<< raw
\x07\x00\x00\x01\x00\x03\x00\x02\x00\x00\x00\
>>> raw
\x18\x00\x00\x00\x03  \x0a\x09SET autocommit=1  \x0a\
<<< raw
\x07\x00\x00\x01\x00\x00\x00\x02\x00\x00\x00\
