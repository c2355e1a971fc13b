# send_request/send_response export the command and reply text, capped at
# max_message_size; query and return_value have their own caps.
@set send_request=true
@set send_response=true
@set max_message_size=70
@set max_query=64
@set max_return_value=24
>>>
*3
$3
SET
$3
key
$90
vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv
<<<
+OK
>>>
LRANGE key 0 -1
<<<
*3
$20
aaaaaaaaaaaaaaaaaaaa
$20
bbbbbbbbbbbbbbbbbbbb
$20
cccccccccccccccccccc
