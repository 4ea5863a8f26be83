# A K&R assignment 2 UDP pinger as students write it: ten pings, a
# one-second timeout each, the reply and its RTT or "Request timed out",
# then the loss rate and min/avg/max RTT. `check udp-pinger` must pass it.
# Usage: python3 udp_pinger.py HOST PORT
import sys
import time
from socket import *

host, port = sys.argv[1], int(sys.argv[2])
sock = socket(AF_INET, SOCK_DGRAM)
sock.settimeout(1)
rtts = []
for seq in range(1, 11):
    sent = time.time()
    sock.sendto(("Ping %d %f" % (seq, sent)).encode(), (host, port))
    try:
        reply, _ = sock.recvfrom(1024)
        rtt = time.time() - sent
        rtts.append(rtt)
        print("Reply from %s: %s RTT %.6f s" % (host, reply.decode(), rtt))
    except timeout:
        print("Request timed out")
lost = 10 - len(rtts)
print("Packet loss rate: %.1f%%" % (100.0 * lost / 10))
if rtts:
    print("RTT min %.6f s, avg %.6f s, max %.6f s" % (min(rtts), sum(rtts) / len(rtts), max(rtts)))
