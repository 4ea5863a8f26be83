# The K&R problem P12 server from seed 004, part 2 ("a TCP server that
# accepts lines of input from a client and prints the lines onto the
# server's standard output"), as the seed wrote it, in Python 3. Worksheet 03,
# Part E, sets it as a browser's proxy to see what proxy_logger does better.
#
# The only change: an optional port on the command line (default 2000, as
# in the seed; 0 = any free one), and the ready line names the port bound.
# Everything else is the seed's: listen(1), one recv(1024) per connection,
# the same prints, no answer, close. Like the seed it decodes what it got
# as UTF-8, so bytes that are not UTF-8 end it with a UnicodeDecodeError.
#
# Usage: python3 tests/classic/P12Server.py [PORT]
import sys
from socket import *
serverPort = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
serverIP= '127.0.0.1'
serverSocket = socket(AF_INET,SOCK_STREAM)
serverSocket.bind((serverIP,serverPort))

#clients to listen to them:
serverSocket.listen(1)

print("Server listening on",serverIP,":",serverSocket.getsockname()[1])
while True:
    connectionSocket, addr = serverSocket.accept()
    received_client_msg = connectionSocket.recv(1024)
    print("Connection has been established with:", addr)
    received_client_msg = received_client_msg.decode("UTF-8")
    print('Client is connected from {}:{}\n\n'.format( addr , received_client_msg ))
    print("Client received message:", received_client_msg)
    connectionSocket.close()
