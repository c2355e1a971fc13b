# Aggregates nested deeper than max_depth end the connection; what was complete
# before is published.
@set max_depth=2
>>>
GET a
<<<
*3
*1
:1
:2
:3
>>>
GET b
<<<
*1
*1
*1
:1
