# The K&R assignment 1 web server: the handout's skeleton with its blanks
# filled in as the handout asks, the port from argv, bound to 127.0.0.1.
# It serves the folder it runs in. `check web-server` must pass what it
# does right (a file, a 404, the status line) and fail what it gets wrong:
# the "\r\n" sent after the file, text-mode reads (binary files crash it),
# '..' in a path, one recv(1024), one client at a time, and a reset client
# (an exception in its except branch ends it).
# Usage (from the served folder): python3 kr_web_server.py PORT
from socket import *
import sys
serverSocket = socket(AF_INET, SOCK_STREAM)
#Prepare a sever socket
serverSocket.bind(('127.0.0.1', int(sys.argv[1])))
serverSocket.listen(1)
while True:
    #Establish the connection
    connectionSocket, addr = serverSocket.accept()
    try:
        message = connectionSocket.recv(1024)
        filename = message.split()[1]
        f = open(filename[1:])
        outputdata = f.read()
        #Send one HTTP header line into socket
        connectionSocket.send("HTTP/1.1 200 OK\r\n\r\n".encode())
        #Send the content of the requested file to the client
        for i in range(0, len(outputdata)):
            connectionSocket.send(outputdata[i].encode())
        connectionSocket.send("\r\n".encode())
        connectionSocket.close()
    except IOError:
        #Send response message for file not found
        connectionSocket.send("HTTP/1.1 404 Not Found\r\n\r\n".encode())
        #Close client socket
        connectionSocket.close()
serverSocket.close()
sys.exit()
