# send_headers (case-insensitive), repeated headers joined with ", ", real_ip_header,
# redact_headers.
@set send_headers=Accept,X-Trace,Set-Cookie,cookie
@set real_ip_header=X-Forwarded-For
@set redact_headers=cookie
>>>
GET /h HTTP/1.1
Host: [::1]:8080
accept: text/html
X-Trace: 1
X-Forwarded-For: 192.0.2.7, 10.0.0.9
Cookie: secret=1
X-TRACE: 2

<<<
HTTP/1.1 200 OK
Set-Cookie: a=1
Set-Cookie: b=2
Content-Length: 0

