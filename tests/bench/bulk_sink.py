#!/usr/bin/env python3
"""bulk_sink.py — a minimal, fast Elasticsearch stand-in for `make bench` only.

It is NOT the strict API double (tests/esdouble/esdouble.py validates everything and
ingests a few thousand documents a second, which would measure Python, not hostbeat).
This one answers GET / as 8.15.0, template GETs with 404 and PUTs with 200, and each
_bulk with one 201 item per action line (gunzipping the body when asked), counting
documents. Prints "listening on PORT"; GET /_sink/count returns the document count.
"""
import gzip
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

INFO = json.dumps({"name": "sink", "cluster_name": "bench", "version": {
    "number": "8.15.0", "build_flavor": "default", "lucene_version": "9.11.1",
    "minimum_wire_compatibility_version": "7.17.0",
    "minimum_index_compatibility_version": "7.0.0"}, "tagline": "You Know, for Search"}).encode()
COUNT = [0]


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, *a):
        pass

    def reply(self, code, body=b"{}"):
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Elastic-Product", "Elasticsearch")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def body(self):
        data = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.headers.get("Content-Encoding") == "gzip":
            data = gzip.decompress(data)
        return data

    def do_GET(self):
        if self.path == "/":
            return self.reply(200, INFO)
        if self.path == "/_sink/count":
            return self.reply(200, str(COUNT[0]).encode())
        return self.reply(404, b'{"error":"not found","status":404}')

    def do_HEAD(self):
        self.do_GET()

    def do_PUT(self):
        self.body()
        self.reply(200, b'{"acknowledged":true}')

    def do_POST(self):
        n = self.body().count(b"\n") // 2
        COUNT[0] += n
        items = b",".join([b'{"create":{"status":201}}'] * n)
        self.reply(200, b'{"errors":false,"items":[' + items + b"]}")


srv = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else 0), H)
print("listening on", srv.server_address[1], flush=True)
srv.serve_forever()
