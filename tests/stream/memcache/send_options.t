# send_request / send_response: command and response lines, never the values;
# capped at max_message_size.
@set send_request=true
@set send_response=true
@set max_message_size=24
>>>
set k 0 0 5
hello
<<<
STORED
>>>
get k k k k k k k k k k k k
<<<
VALUE k 0 5
hello
END
