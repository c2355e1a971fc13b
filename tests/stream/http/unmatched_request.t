# A request left unanswered beyond transaction_timeout is published as unmatched
# when the next message arrives; the last one at expire.
@set transaction_timeout=10000
>>>
GET /slow HTTP/1.1
Host: h

@time +11000
>>>
GET /never HTTP/1.1
Host: h

