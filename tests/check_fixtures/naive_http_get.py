# An http-client with a defect, for `check http-client`:
#   --recv-once    reads the response with one recv(1024)
#   (no flag)      reads until the server closes, without sending
#                  Connection: close, and prints the body undecoded
#                  (a chunked body keeps its size lines)
# Usage: python3 naive_http_get.py URL [--recv-once]
import sys
import urllib.parse
from socket import *

u = urllib.parse.urlsplit(sys.argv[1])
sock = create_connection((u.hostname, u.port or 80), timeout=10)
sock.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (u.path or "/", u.netloc)).encode())
if "--recv-once" in sys.argv:
    response = sock.recv(1024)
else:
    response = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        response += chunk
print(response.split(b"\r\n\r\n", 1)[-1].decode("latin-1"))
