# A UDP heartbeat client as a student writes it for the optional exercise
# of K&R assignment 2, with one flag per classic mistake, so that
# `check heartbeat-client` can be shown to fail exactly the test aimed at it:
#   --ms                the timestamp in milliseconds, not seconds
#   --double-increment  adds one to the sequence number twice per heartbeat
#   --no-sleep          forgets to wait for the interval between heartbeats
# Without a flag it does everything right and passes every test.
# Usage: python3 heartbeat_client.py HOST PORT INTERVAL_SECONDS [FLAGS]
import socket, sys, time

host, port, interval = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
flags = set(sys.argv[4:])
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
seq = 1
while True:
    now = time.time()
    stamp = f"{int(now * 1000)}" if "--ms" in flags else f"{now:.6f}"
    sock.sendto(f"heartbeat {seq} {stamp}".encode(), (host, port))
    print(f"sent heartbeat {seq}", flush=True)
    seq += 2 if "--double-increment" in flags else 1
    if "--no-sleep" not in flags:
        time.sleep(interval)
