# A UDP heartbeat server as a student writes it for the optional exercise
# of K&R assignment 2, with one flag per classic mistake, so that
# `check heartbeat-server` can be shown to fail exactly the test aimed at it:
#   --no-delay          reports each heartbeat without its one-way delay
#   --no-late           takes a late or repeated number for a normal heartbeat
#   --crash-on-garbage  parses without try/except: a bad datagram ends it
#   --no-stopped        never notices that a client went silent
# Without a flag it does everything right and passes every test.
# Usage: python3 heartbeat_server.py PORT DEAD_AFTER_SECONDS [FLAGS]
import socket, sys, time

port, dead_after, flags = int(sys.argv[1]), float(sys.argv[2]), set(sys.argv[3:])
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind(("127.0.0.1", port))
print(f"heartbeat server on port {port}", flush=True)
clients = {}  # address -> [last sequence number, last time heard]


def parse(data):
    word, seq, sent = data.decode().split()
    if word != "heartbeat" or int(seq) < 0:
        raise ValueError(word)
    return int(seq), float(sent)


while True:
    if "--no-stopped" not in flags and clients:
        nearest = min(t for _, t in clients.values()) + dead_after
        sock.settimeout(max(nearest - time.time(), 0.001))
    else:
        sock.settimeout(None)
    try:
        data, addr = sock.recvfrom(2048)
    except socket.timeout:
        data = None
    if data is not None:
        if "--crash-on-garbage" in flags:
            seq, sent = parse(data)
        else:
            try:
                seq, sent = parse(data)
            except (ValueError, UnicodeDecodeError):
                print(f"{addr}: not a heartbeat: {data[:40]!r}", flush=True)
                continue
        delay = (time.time() - sent) * 1000
        said = "" if "--no-delay" in flags else f", one-way delay {delay:.3f} ms"
        last = clients.get(addr, [seq - 1, 0])[0]
        if seq <= last and "--no-late" not in flags:
            print(f"{addr}: heartbeat {seq} late or repeated (last {last}){said}", flush=True)
            clients[addr][1] = time.time()
            continue
        if seq > last + 1:
            print(f"{addr}: lost {seq - last - 1} heartbeat(s) before {seq}", flush=True)
        print(f"{addr}: heartbeat {seq}{said}", flush=True)
        clients[addr] = [max(seq, last), time.time()]
    for addr, (last, heard) in list(clients.items()):
        if time.time() - heard >= dead_after:
            print(f"{addr}: client stopped (nothing for {dead_after} s), last {last}", flush=True)
            del clients[addr]
