# THE COMPARISON SERVER for scripts/bench.sh, not a lab program: the K&R
# uppercase echo served the way seed 003's threaded server serves (a
# threading.Thread per accepted connection, listen(5)), with the loop a
# kept connection needs: recv, uppercase, send, until the client's FIN.
# It answers loadgen's tcp-echo (many requests per connection) and
# tcp-once (one request, then the client's FIN).
# Usage: python3 threaded_echo.py [PORT]   (0 = any free port)
import socket
import sys
import threading


def handle_client(sock):
    with sock:
        while True:
            data = sock.recv(4096)
            if not data:
                break
            # bytes.upper() changes ASCII a-z only, like tcp_server.
            sock.sendall(data.upper())


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 9999
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen(5)
    print("threaded_echo.py listening on %s:%d (TCP)" % server.getsockname(), flush=True)
    while True:
        client, _ = server.accept()
        threading.Thread(target=handle_client, args=(client,), daemon=True).start()


if __name__ == "__main__":
    main()
