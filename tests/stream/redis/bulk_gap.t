# A large bulk reply is streamed and capped at max_return_value; bytes lost inside
# it are skipped (the note says so), the next transaction pairs normally.
@set max_return_value=16
>>>
GET big
<<<
$40
0123456789abcdefghij\
@gap server 10
<<<
0123456789
>>>
GET small
<<<
$2
ok
