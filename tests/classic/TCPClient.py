# The K&R TCPClient from the seeds (002, 004), in Python 3, with the server's
# host and port from argv.
import sys
from socket import *
serverName = sys.argv[1]
serverPort = int(sys.argv[2])
clientSocket = socket(AF_INET, SOCK_STREAM)
clientSocket.settimeout(10)  # not in the classic: a test must never hang
clientSocket.connect((serverName, serverPort))
sentence = input('Input lowercase sentence:')
clientSocket.send(sentence.encode())
modifiedSentence = clientSocket.recv(1024)
print('From Server:', modifiedSentence.decode())
clientSocket.close()
