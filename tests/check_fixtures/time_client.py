# The Python client of labs/time-protocol.md ("A Python client"), with the
# server's host and port from argv: `check time-client` must pass it.
import socket, struct, random, sys

P, G = 257, 11

def handshake(sock, lines):
    while True:
        a = random.randint(2, 255)
        sock.sendall(f"KEY {pow(G, a, P)}\n".encode())
        reply = lines.readline().decode().strip()      # "KEY 193" or "ERROR ..."
        if not reply.startswith("KEY "):
            raise ConnectionError(reply)
        key = pow(int(reply[4:]), a, P) % 256
        if key != 0:                                   # key 0: exchange again
            return key

with socket.create_connection((sys.argv[1], int(sys.argv[2]))) as sock:
    lines = sock.makefile("rb")                        # also buffers frame bytes
    key = handshake(sock, lines)
    for request in ["TIME", "DATE", "TEMP"]:
        payload = bytes((b + key) % 256 for b in request.encode())
        sock.sendall(struct.pack("!H", len(payload)) + payload)
        (length,) = struct.unpack("!H", lines.read(2))
        answer = bytes((b - key) % 256 for b in lines.read(length))
        print(request, "->", answer.decode())
