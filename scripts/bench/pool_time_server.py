# THE COMPARISON SERVER for scripts/bench.sh, not a lab program: the time
# service (labs/time-protocol.md) served the way seed 001's server is built:
# a ThreadPool of 32 Worker threads fed from a task queue, one task per
# connection. Encrypted mode only (KEY lines, Caesar-shifted frames);
# it answers TIME, DATE and TEMP (simulated).
# Usage: python3 pool_time_server.py [PORT] [THREADS]   (0 = any free port)
import queue
import random
import socket
import struct
import sys
import threading
import time

P, G = 257, 11


class Worker(threading.Thread):
    def __init__(self, tasks):
        super().__init__(daemon=True)
        self.tasks = tasks

    def run(self):
        while True:
            sock = self.tasks.get()
            try:
                serve(sock)
            except (OSError, ValueError):
                pass  # one client's problem: the worker goes on
            finally:
                sock.close()
                self.tasks.task_done()


class ThreadPool:
    def __init__(self, threads):
        self.tasks = queue.Queue()
        for _ in range(threads):
            Worker(self.tasks).start()

    def add_task(self, sock):
        self.tasks.put(sock)


def handshake(sock, lines):
    while True:
        line = lines.readline(256).decode(errors="replace").strip()
        if not line.startswith("KEY "):
            sock.sendall(b"ERROR expected 'KEY <public key>'\n")
            return None
        a_public = int(line[4:])
        b = random.randint(2, 255)
        sock.sendall(f"KEY {pow(G, b, P)}\n".encode())
        key = pow(a_public, b, P) % 256
        if key != 0:  # key 0: the client sends a new KEY line
            return key


def answer(request):
    now = time.time()
    if request == b"TIME":
        return time.strftime("%H:%M:%S", time.gmtime(now)) + ".%03d" % (now * 1000 % 1000)
    if request == b"DATE":
        return time.strftime("%Y-%m-%d", time.gmtime(now))
    if request == b"TEMP":
        return "20.0 \u00b0C (simulated)"
    return "ERROR unknown request"


def serve(sock):
    lines = sock.makefile("rb")  # also buffers the frame bytes
    key = handshake(sock, lines)
    if key is None:
        return
    while True:
        header = lines.read(2)
        if len(header) < 2:
            return  # the client's FIN
        (length,) = struct.unpack("!H", header)
        request = bytes((b - key) % 256 for b in lines.read(length))
        payload = bytes((b + key) % 256 for b in answer(request).encode())
        sock.sendall(struct.pack("!H", len(payload)) + payload)


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 7777
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else 32
    pool = ThreadPool(threads)
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen(128)
    print("pool_time_server.py listening on %s:%d (TCP)" % server.getsockname(), flush=True)
    while True:
        client, _ = server.accept()
        pool.add_task(client)


if __name__ == "__main__":
    main()
