# A tcp-echo server that is right in every way but one: it reads once.
# A thread per connection, bytes uppercased (no text decoding), a reset
# client only ends its own thread; but one recv(1024) per connection, as in
# the classic TCPServer.py. `check tcp-echo` must fail exactly its
# "read until FIN" tests and pass the rest.
import sys
import threading
from socket import *

def serve(conn):
    with conn:
        data = conn.recv(1024)  # the defect: one read, whatever has arrived
        conn.sendall(data.upper())

server = socket(AF_INET, SOCK_STREAM)
server.setsockopt(SOL_SOCKET, SO_REUSEADDR, 1)
server.bind(('127.0.0.1', int(sys.argv[1])))
server.listen(64)
print("read_once_server listening on %s:%d" % server.getsockname(), flush=True)
while True:
    conn, _ = server.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
