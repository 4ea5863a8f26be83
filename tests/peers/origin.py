#!/usr/bin/env python3
"""A test origin server for http_get, proxy_logger and web_proxy tests.

Python's own http.server in HTTP/1.1 mode (keep-alive), with routes that
produce every framing and caching case the tests need. It binds
127.0.0.1 on the port given (0 = any free one) and prints its first line
the way the lab servers do: `origin listening on 127.0.0.1:PORT (HTTP)`.

Routes (any method; HEAD gets the same head without a body):
  /bytes/N            N bytes of a fixed binary pattern, Content-Length
  /chunked/N          N bytes of the pattern, chunked, with a chunk extension and a trailer
  /close/N            N bytes of the pattern, no length: the body ends when the connection closes
  /status/CODE        an empty response with that status (204 and 304 carry no body)
  /cache?...          a cacheable text body; query: cc=Cache-Control, etag=ETag,
                      lm=1 (a fixed Last-Modified), vary=Vary, body=text, ct=Content-Type;
                      answers If-None-Match / If-Modified-Since with 304
  /page               an HTML page with an <img src="/image.png">
  /image.png          a small PNG (1x1)
  /reload-once        an HTML page with an ETag, a Last-Modified and Cache-Control: no-cache
                      (answers conditionals with 304) whose script reloads it once; its
                      <title> is "reloaded" after the reload (for a browser's cache tests)
  /imgcheck           an HTML page whose <title> becomes "image loaded" or "image failed"
                      once its <img src="/image.png"> has loaded or failed (for a browser)
  /echo               the request head it received, as text; request bodies are read
                      and reported as X-Body-Length and X-Body-Sha256 headers
  /slow/MS            waits MS milliseconds, then answers
  /hang               never answers (holds the connection for 60 s)
  /early-hints        a 103 Early Hints interim response, then a 200 (RFC 9110 §15.2)
  /truncated/N        promises N bytes with Content-Length, sends half, closes
  /truncated-cacheable/N  the same with Cache-Control: max-age=60 (a cache must not keep it)
  /ambiguous          a 200 with both Content-Length and Transfer-Encoding: chunked (RFC 9112 §6.3)
  /bad-chunk          a chunked 200 whose second chunk-size line is not hex
  /__stats            JSON: how many requests each path (without query) received
  /__reset            clears the counts

Usage: python3 origin.py [PORT]
"""

import hashlib
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

LAST_MODIFIED = "Tue, 28 Jul 2020 09:20:49 GMT"
PNG_1X1 = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d4944415478da63f8cfc0f01f0005000201a0e0b1d6"
    "0000000049454e44ae426082"
)

RELOAD_ONCE = (
    "<!doctype html><title>first load</title><p>cached with an ETag and a Last-Modified"
    "<script>if (!sessionStorage.reloaded) { sessionStorage.reloaded = 1; location.reload() }"
    " else { document.title = 'reloaded' }</script>"
)

hits = {}
hits_lock = threading.Lock()


def pattern(n):
    """N bytes that cover every byte value, so text handling would corrupt them."""
    return bytes((i * 31 + 7) % 256 for i in range(n))


class Origin(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "socketlab-test-origin/1"
    # TCP_NODELAY: http.server writes the head and the body in separate
    # send()s; with Nagle's algorithm the body waits for the ACK of the head,
    # which a kept-alive client delays (delayed ACK), about 40 ms a response.
    disable_nagle_algorithm = True

    def log_message(self, fmt, *args):
        pass  # the tests read the origin's behaviour from /__stats, not its log

    def handle_any(self):
        url = urlsplit(self.path)
        path = url.path
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        if path not in ("/__stats", "/__reset"):
            with hits_lock:
                hits[path] = hits.get(path, 0) + 1
        body = self.read_request_body()
        parts = path.strip("/").split("/")
        head = self.command == "HEAD"

        if parts[0] == "bytes" and len(parts) == 2:
            self.send(200, pattern(int(parts[1])), "application/octet-stream", head)
        elif parts[0] == "chunked" and len(parts) == 2:
            self.send_chunked(pattern(int(parts[1])), head)
        elif parts[0] == "close" and len(parts) == 2:
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            if not head:
                self.wfile.write(pattern(int(parts[1])))
            self.close_connection = True
        elif parts[0] == "status" and len(parts) == 2:
            code = int(parts[1])
            self.send_response(code)
            if code not in (204, 304):
                self.send_header("Content-Length", "0")
            self.end_headers()
        elif path == "/cache":
            self.send_cacheable(query, head)
        elif path == "/page":
            page = b'<!doctype html><title>page</title><p>hello<img src="/image.png">'
            self.send(200, page, "text/html", head)
        elif path == "/imgcheck":
            page = (
                b'<!doctype html><title>image pending</title><p>hello'
                b'<img src="/image.png" onload="document.title=\'image loaded\'"'
                b' onerror="document.title=\'image failed\'">'
            )
            self.send(200, page, "text/html", head)
        elif path == "/reload-once":
            self.send_cacheable({
                "cc": "no-cache", "etag": '"p12"', "lm": "1", "ct": "text/html",
                "body": RELOAD_ONCE,
            }, head)
        elif path == "/image.png":
            self.send(200, PNG_1X1, "image/png", head)
        elif path == "/echo":
            text = (self.requestline + "\r\n" + str(self.headers)).encode("latin-1", "replace")
            self.send(200, text, "text/plain", head, {
                "X-Body-Length": str(len(body)),
                "X-Body-Sha256": hashlib.sha256(body).hexdigest(),
            })
        elif parts[0] == "slow" and len(parts) == 2:
            time.sleep(int(parts[1]) / 1000)
            self.send(200, b"slow\n", "text/plain", head)
        elif path == "/early-hints":
            self.send_response_only(103)
            self.send_header("Link", "</style.css>; rel=preload; as=style")
            self.end_headers()
            self.send(200, b"after the hints\n", "text/plain", head)
        elif path == "/hang":
            time.sleep(60)
            self.close_connection = True
        elif parts[0] == "truncated" and len(parts) == 2:
            n = int(parts[1])
            self.send_response(200)
            self.send_header("Content-Length", str(n))
            self.end_headers()
            self.wfile.write(pattern(n)[: n // 2])
            self.wfile.flush()
            self.close_connection = True
        elif parts[0] == "truncated-cacheable" and len(parts) == 2:
            n = int(parts[1])
            self.send_response(200)
            self.send_header("Cache-Control", "max-age=60")
            self.send_header("Content-Length", str(n))
            self.end_headers()
            self.wfile.write(pattern(n)[: n // 2])
            self.wfile.flush()
            self.close_connection = True
        elif path == "/ambiguous":
            self.send_response(200)
            self.send_header("Content-Length", "5")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            if not head:
                self.wfile.write(b"5\r\nhello\r\n0\r\n\r\n")
        elif path == "/bad-chunk":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            if not head:
                self.wfile.write(b"5\r\nhello\r\nzz\r\nworld\r\n0\r\n\r\n")
        elif path == "/__stats":
            with hits_lock:
                data = json.dumps(hits).encode()
            self.send(200, data, "application/json", head)
        elif path == "/__reset":
            with hits_lock:
                hits.clear()
            self.send(200, b"reset\n", "text/plain", head)
        else:
            self.send(404, b"not found\n", "text/plain", head)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = handle_any

    def read_request_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def send(self, code, body, content_type, head, extra=None):
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def send_chunked(self, body, head):
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Trailer", "X-Checksum")
        self.end_headers()
        if head:
            return
        sizes = [1, 10, 100, 1000, 4096]
        i = 0
        while i < len(body):
            n = sizes[(i // 7) % len(sizes)]
            chunk = body[i : i + n]
            self.wfile.write(b"%x;ext=1\r\n" % len(chunk) + chunk + b"\r\n")
            i += n
        digest = hashlib.sha256(body).hexdigest()
        self.wfile.write(b"0\r\nX-Checksum: " + digest.encode() + b"\r\n\r\n")

    def send_cacheable(self, query, head):
        etag = query.get("etag")
        last_modified = LAST_MODIFIED if query.get("lm") else None
        inm = self.headers.get("If-None-Match")
        ims = self.headers.get("If-Modified-Since")
        not_modified = (etag and inm and etag in [t.strip() for t in inm.split(",")]) or (
            inm is None and last_modified and ims == last_modified
        )
        self.send_response(304 if not_modified else 200)
        if "cc" in query:
            self.send_header("Cache-Control", query["cc"])
        if etag:
            self.send_header("ETag", etag)
        if last_modified:
            self.send_header("Last-Modified", last_modified)
        if "vary" in query:
            self.send_header("Vary", query["vary"])
        if not_modified:
            self.end_headers()
            return
        body = query.get("body", "cached body\n").encode()
        self.send_header("Content-Type", query.get("ct", "text/plain"))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    server = ThreadingHTTPServer(("127.0.0.1", port), Origin)
    server.daemon_threads = True
    host, port = server.server_address[:2]
    print(f"origin listening on {host}:{port} (HTTP)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass  # Ctrl-C ends the origin: no traceback
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
