# The K&R assignment 3 mail client: the handout's skeleton with its blanks
# filled in as the handout asks, the server's host and port from argv
# instead of a real mail server. `check smtp-client` must pass what it does
# right (it waits for the greeting, says HELO, sends the commands in order
# with CRLF, ends the message with CRLF.CRLF, says QUIT, prints "... reply
# not received from server." when a code is wrong) and fail what it gets
# wrong: one recv(1024) per reply (a reply in pieces), and its fixed
# message (it sends "I love computer networks!", not the body check gives
# it on stdin, and does no dot-stuffing).
# Usage: python3 kr_mail_client.py HOST PORT
from socket import *
import sys
msg = "\r\n I love computer networks!"
endmsg = "\r\n.\r\n"
# Choose a mail server (e.g. Google mail server) and call it mailserver
mailserver = (sys.argv[1], int(sys.argv[2]))
# Create socket called clientSocket and establish a TCP connection with mailserver
clientSocket = socket(AF_INET, SOCK_STREAM)
clientSocket.connect(mailserver)
recv = clientSocket.recv(1024).decode()
print(recv)
if recv[:3] != '220':
    print('220 reply not received from server.')
# Send HELO command and print server response.
heloCommand = 'HELO Alice\r\n'
clientSocket.send(heloCommand.encode())
recv1 = clientSocket.recv(1024).decode()
print(recv1)
if recv1[:3] != '250':
    print('250 reply not received from server.')
# Send MAIL FROM command and print server response.
clientSocket.send("MAIL FROM: <alice@example.com>\r\n".encode())
recv2 = clientSocket.recv(1024).decode()
print(recv2)
if recv2[:3] != '250':
    print('250 reply not received from server.')
# Send RCPT TO command and print server response.
clientSocket.send("RCPT TO: <bob@example.com>\r\n".encode())
recv3 = clientSocket.recv(1024).decode()
print(recv3)
if recv3[:3] != '250':
    print('250 reply not received from server.')
# Send DATA command and print server response.
clientSocket.send("DATA\r\n".encode())
recv4 = clientSocket.recv(1024).decode()
print(recv4)
if recv4[:3] != '354':
    print('354 reply not received from server.')
# Send message data.
clientSocket.send(msg.encode())
# Message ends with a single period.
clientSocket.send(endmsg.encode())
recv5 = clientSocket.recv(1024).decode()
print(recv5)
if recv5[:3] != '250':
    print('250 reply not received from server.')
# Send QUIT command and get server response.
clientSocket.send("QUIT\r\n".encode())
recv6 = clientSocket.recv(1024).decode()
print(recv6)
clientSocket.close()
