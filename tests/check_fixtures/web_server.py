# A K&R assignment 1 web server, right except for the defect its flag asks for:
#   --lf         ends the status line and header lines with \n instead of \r\n
#   --text-mode  reads files in text mode, which turns \r\n and \r into \n
# Without a flag it should pass every test of `check web-server`.
# Usage: python3 web_server.py PORT DIR [--lf] [--text-mode]
import os
import sys
import threading
import urllib.parse
from socket import *

port, root = int(sys.argv[1]), os.path.realpath(sys.argv[2])
EOL = "\n" if "--lf" in sys.argv else "\r\n"
TEXT_MODE = "--text-mode" in sys.argv

def respond(conn, status, body):
    head = "HTTP/1.1 %s%sContent-Length: %d%sConnection: close%s%s" % (status, EOL, len(body), EOL, EOL, EOL)
    conn.sendall(head.encode() + body)

def read_file(path):
    if TEXT_MODE:  # the defect: universal newlines translate \r\n to \n
        with open(path, "r", encoding="latin-1") as f:
            return f.read().encode("latin-1")
    with open(path, "rb") as f:
        return f.read()

def serve(conn):
    with conn:
        try:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                head += chunk
            words = head.split(b"\r\n")[0].decode("latin-1").split()
            if len(words) != 3 or not words[2].startswith("HTTP/"):
                return respond(conn, "400 Bad Request", b"bad request\n")
            path = os.path.realpath(os.path.join(root, urllib.parse.unquote(words[1]).lstrip("/")))
            if not path.startswith(root + os.sep) or not os.path.isfile(path):
                return respond(conn, "404 Not Found", b"not found\n")
            respond(conn, "200 OK", read_file(path))
        except OSError:
            pass  # a client that reset its connection ends only its own thread

server = socket(AF_INET, SOCK_STREAM)
server.setsockopt(SOL_SOCKET, SO_REUSEADDR, 1)
server.bind(("127.0.0.1", port))
server.listen(64)
print("web_server.py listening on %s:%d" % server.getsockname(), flush=True)
while True:
    conn, _ = server.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
