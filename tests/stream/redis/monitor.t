# MONITOR: +OK completes the command, then the streamed lines are not
# transactions; RESET ends monitor mode.
>>>
MONITOR
<<<
+OK
+1339518083.107412 [0 127.0.0.1:60866] "keys" "*"
+1339518087.877697 [0 127.0.0.1:60866] "dbsize"
>>>
RESET
<<<
+1339518088.000001 [0 127.0.0.1:60866] "get" "a"
+RESET
