# Seed 003's threaded TCP server, as the seed wrote it, with the port from
# argv (0 = any free one) and the ready line flushed: `check
# threaded-server` must pass it (a thread per client, one reply each).
import socket
import sys
import threading

IP = "127.0.0.1"
PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 9999
def main():
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind((IP, PORT))
    server.listen(5)
    print(f'[*] Listening on {IP}:{server.getsockname()[1]}', flush=True)

    while True:
        client, address = server.accept()
        print(f'[*] Accepted connection from {address[0]}:{address[1]}')
        client_handler = threading.Thread(target=handle_client, args=(client,))
        client_handler.start()

def handle_client(client_socket):
    with client_socket as sock:
        request = sock.recv(4096)
        print(f"[*] Received: {request.decode('utf-8')}")
        sock.send(b'lm3nitro server over TCP is working')

if __name__ == '__main__':
    main()
