# A K&R assignment 4 proxy: a thread per client, HTTP/1.1 to the origin with
# Connection: close, the whole response read and relayed, GET responses
# cached by URL. Right except for the defect its flag asks for:
#   --never-close   never closes a client's connection (it waits for another request)
#   --cache-errors  caches every response, errors included
#   --recv-once     takes what one recv() returns as the whole request head
# Usage: python3 naive_proxy.py PORT [--never-close] [--cache-errors] [--recv-once]
import sys
import threading
import urllib.parse
from socket import *

NEVER_CLOSE = "--never-close" in sys.argv
CACHE_ERRORS = "--cache-errors" in sys.argv
RECV_ONCE = "--recv-once" in sys.argv
cache, lock = {}, threading.Lock()

def read_head(conn, buf):
    while b"\r\n\r\n" not in buf:
        chunk = conn.recv(65536)
        if not chunk:
            return None, b""
        buf += chunk
        if RECV_ONCE:
            break  # the defect: one read, whatever has arrived
    head, _, rest = buf.partition(b"\r\n\r\n")
    return head, rest

def fetch(url, method, headers, body):
    u = urllib.parse.urlsplit(url)
    origin = create_connection((u.hostname, u.port or 80), timeout=10)
    with origin:
        lines = ["%s %s HTTP/1.1" % (method, u.path or "/")]
        lines += [h for h in headers if h.split(":")[0].strip().lower() not in ("connection", "proxy-connection")]
        lines += ["Connection: close", "", ""]
        origin.sendall("\r\n".join(lines).encode("latin-1") + body)
        response = b""
        while True:
            chunk = origin.recv(65536)
            if not chunk:
                return response
            response += chunk

def serve(conn):
    buf = b""
    while True:
        head, buf = read_head(conn, buf)
        if head is None:
            return conn.close()
        lines = head.decode("latin-1").split("\r\n")
        words = lines[0].split()
        if len(words) != 3 or not words[1].startswith("http://"):
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return conn.close()
        method, url = words[0], words[1]
        length = next((int(h.split(":")[1]) for h in lines[1:] if h.lower().startswith("content-length:")), 0)
        while len(buf) < length:
            buf += conn.recv(65536)
        body, buf = buf[:length], buf[length:]
        with lock:
            response = cache.get(url) if method == "GET" else None
        if response is None:
            try:
                response = fetch(url, method, lines[1:], body)
            except OSError:
                response = b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n"
            if method == "GET" and (response.startswith(b"HTTP/1.1 200") or CACHE_ERRORS):
                with lock:
                    cache[url] = response
        conn.sendall(response)
        if not NEVER_CLOSE:
            return conn.close()

def guarded(conn):
    try:
        serve(conn)
    except OSError:
        conn.close()

server = socket(AF_INET, SOCK_STREAM)
server.setsockopt(SOL_SOCKET, SO_REUSEADDR, 1)
server.bind(("127.0.0.1", int(sys.argv[1])))
server.listen(64)
print("naive_proxy listening on %s:%d" % server.getsockname(), flush=True)
while True:
    conn, _ = server.accept()
    threading.Thread(target=guarded, args=(conn,), daemon=True).start()
