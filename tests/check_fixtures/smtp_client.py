# An SMTP client as a student writes it for K&R assignment 3, with the
# body read from stdin, and one flag per classic mistake, so that
# `check smtp-client` can be shown to fail exactly the test aimed at it:
#   --no-wait-greeting    sends EHLO as soon as it connects
#   --recv-once           reads each reply with one recv(1024) (the skeleton's way)
#   --no-helo             gives up when EHLO is refused instead of saying HELO
#   --lf                  ends the command lines with \n instead of \r\n
#   --lf-in-message       ends the message's lines with \n (the final \r\n.\r\n is right)
#   --no-dot-stuffing     sends lines that start with '.' as they are
#   --no-quit             closes after the message without QUIT
#   --ignore-550          goes on, silent, when RCPT TO is refused
#   --ignore-421          takes 421 and a closed connection for success
# Without a flag it does everything right and passes every test.
# Usage: python3 smtp_client.py HOST PORT [FLAGS] < body.txt
import socket, sys

host, port, flags = sys.argv[1], int(sys.argv[2]), set(sys.argv[3:])
body = sys.stdin.read().splitlines()
EOL = "\n" if "--lf" in flags else "\r\n"


def reply(sock, lines):
    """The whole reply: lines until one with a space after the code."""
    if "--recv-once" in flags:
        data = sock.recv(1024).decode()
        return int(data[:3]) if data[:3].isdigit() else 0
    while True:
        line = lines.readline().decode()
        if not line:
            if "--ignore-421" in flags:
                sys.exit(0)
            raise ConnectionError("the server closed the connection")
        if line[3:4] != "-":
            return int(line[:3])


def command(sock, lines, text, ok):
    sock.sendall((text + EOL).encode())
    code = reply(sock, lines)
    if code == 421 and "--ignore-421" in flags:
        sys.exit(0)
    if code == 550 and "--ignore-550" in flags:
        return code
    if code not in ok:
        print(f"error: {text!r} got {code}", file=sys.stderr)
        sys.exit(1)
    return code


with socket.create_connection((host, port)) as sock:
    lines = sock.makefile("rb")
    if "--no-wait-greeting" in flags:
        sock.sendall(("EHLO student" + EOL).encode())
        reply(sock, lines)  # the greeting
        code = reply(sock, lines)
    else:
        reply(sock, lines)
        sock.sendall(("EHLO student" + EOL).encode())
        code = reply(sock, lines)
    if code != 250:
        if "--no-helo" in flags:
            print(f"error: EHLO got {code}", file=sys.stderr)
            sys.exit(1)
        command(sock, lines, "HELO student", [250])
    command(sock, lines, "MAIL FROM:<student@example.com>", [250])
    code = command(sock, lines, "RCPT TO:<alice@example.com>", [250, 251])
    if code == 550:
        sys.exit(0)
    command(sock, lines, "DATA", [354])
    message = ["From: <student@example.com>", "To: <alice@example.com>",
               "Subject: check", ""] + body
    if "--no-dot-stuffing" not in flags:
        message = ["." + l if l.startswith(".") else l for l in message]
    if "--lf-in-message" in flags:
        text = "\n".join(message) + "\r\n.\r\n"
    else:
        text = "".join(l + "\r\n" for l in message) + ".\r\n"
    sock.sendall(text.encode())
    reply(sock, lines)
    if "--no-quit" not in flags:
        command(sock, lines, "QUIT", [221])
print("message sent")
