# POST with a Content-Length urlencoded body: its parameters join url.query
# (sorted, re-encoded) and hide_keywords masks the secret ones.
@set hide_keywords=pass,password
@set include_request_body_for=x-www-form-urlencoded
>>>
POST /login?next=%2Fhome HTTP/1.1
Host: example.com
Content-Type: application/x-www-form-urlencoded
Content-Length: 40

user=monica&pass=secret&note=a+b%21&x=1\
<<<
HTTP/1.1 302 Found
Location: /home
Content-Length: 0

