# Inline commands (telnet style): blank lines are ignored, words are split at
# blanks, quotes group words; a bare LF ends a line too.
>>> raw
PING

  set   a   b
get "a key" 'x y'
<<<
+PONG
+OK
$-1
