# The K&R UDPServer from the seeds (002, 004), in Python 3. The only change:
# the port comes from argv (0 = any free one), and the ready line names the
# address, so a test can find it.
import sys
from socket import *
serverPort = int(sys.argv[1]) if len(sys.argv) > 1 else 12000
serverSocket = socket(AF_INET, SOCK_DGRAM)
serverSocket.bind(('127.0.0.1', serverPort))
print("The server is ready to receive, listening on %s:%d" % serverSocket.getsockname(), flush=True)
while True:
    message, clientAddress = serverSocket.recvfrom(2048)
    modifiedMessage = message.decode().upper()
    serverSocket.sendto(modifiedMessage.encode(), clientAddress)
