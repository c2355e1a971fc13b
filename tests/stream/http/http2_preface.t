# The HTTP/2 connection preface is not HTTP/1.x: the connection is dropped.
>>>
PRI * HTTP/2.0

SM

