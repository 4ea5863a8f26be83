#!/usr/bin/env python3
"""Draw a ladder diagram of the packets in a pcap file.

    python3 scripts/ladder.py FILE.pcap client server:PORT [proxy:PORT ...]

Each argument after the file names a column, left to right. The first is the
client; every later one is a program listening on PORT. A packet to or from
PORT is drawn between that column and the column on its left (its caller: the
client talks to the proxy, the proxy talks to the origin), one arrow per
packet, labelled the way a textbook draws the TCP handshake:

         client                              server
    127.0.0.1:51234                     127.0.0.1:12000
    0.000 |---------- SYN seq=0 ------------->|
    0.021 |<------ SYN-ACK seq=0 ack=1 -------|

Sequence and acknowledgement numbers are relative, as tcpdump and Wireshark
show them: each side's first sequence number (its ISN, chosen at random by
the kernel) counts as 0, so a SYN is seq=0 and the ACK that answers it ack=1.
The left column is the time in milliseconds since the first packet.

It reads the pcap format itself (no Wireshark needed): a 24-byte file header,
then for each packet a 16-byte record header and the captured bytes, which
start with the link-layer header (Ethernet on Linux's loopback and on veth).
Only the Python standard library is used.
"""

import struct
import sys

# Link-layer header types (pcap "linktype"): the length of their header
# before the IP packet, and where in it the EtherType (0x0800 for IPv4)
# is. Ethernet (lo, veth), Linux "cooked" v1 and v2 (tcpdump -i any).
LINK_HEADER = {1: (14, 12), 113: (16, 14), 276: (20, 0)}
IPV4 = b"\x08\x00"

TCP_FLAGS = [(0x02, "SYN"), (0x01, "FIN"), (0x04, "RST"), (0x08, "PSH"), (0x10, "ACK")]
ICMP_UNREACHABLE = {0: "net", 1: "host", 2: "protocol", 3: "port", 13: "administratively prohibited"}
PREVIEW = 24  # payload characters shown in a label


def read_pcap(path):
    """Yields (seconds, bytes from the IP header on) for each IPv4 packet;
    skips the rest (ARP, IPv6)."""
    try:
        f = open(path, "rb")
    except OSError as err:
        sys.exit(f"ladder.py: cannot read '{path}': {err.strerror}")
    with f:
        header = f.read(24)
        if len(header) < 24:
            sys.exit(f"ladder.py: '{path}' is too short to be a pcap file")
        magic = header[:4]
        if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
            endian = "<"
        elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
            endian = ">"
        else:
            sys.exit(f"ladder.py: '{path}' is not a pcap file (pcapng is not supported; use tcpdump -w)")
        nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
        linktype = struct.unpack(endian + "I", header[20:24])[0] & 0xFFFF
        if linktype not in LINK_HEADER:
            sys.exit(f"ladder.py: link type {linktype} is not supported (capture on lo or a veth)")
        skip, ethertype = LINK_HEADER[linktype]
        while True:
            record = f.read(16)
            if len(record) < 16:
                return
            sec, frac, captured, _ = struct.unpack(endian + "IIII", record)
            data = f.read(captured)
            if data[ethertype : ethertype + 2] == IPV4:
                yield sec + frac / (1e9 if nano else 1e6), data[skip:]


def printable(payload, length):
    """The first PREVIEW characters of a payload, quoted, non-ASCII as \\xNN."""
    text = ""
    for byte in payload[:PREVIEW]:
        if byte == 0x0A:
            text += "\\n"
        elif byte == 0x0D:
            text += "\\r"
        elif 0x20 <= byte < 0x7F and byte != 0x22:
            text += chr(byte)
        else:
            text += f"\\x{byte:02x}"
    more = "..." if length > PREVIEW else ""
    return f'"{text}{more}"'


class Packet:
    """What the ladder needs to know about one IPv4 packet."""

    def __init__(self, time, ip):
        version_ihl, _, total = struct.unpack("!BBH", ip[:4])
        if version_ihl >> 4 != 4:
            raise ValueError("not IPv4")
        ihl = (version_ihl & 0x0F) * 4
        self.time = time
        self.proto = ip[9]
        self.src_ip = ".".join(str(b) for b in ip[12:16])
        self.dst_ip = ".".join(str(b) for b in ip[16:20])
        body = ip[ihl:]
        # The IP total length, not the captured length: tcpdump's snap length
        # may have cut the payload short, but the count of bytes is exact.
        body_length = total - ihl
        if self.proto == 6:  # TCP, RFC 9293 section 3.1
            self.src_port, self.dst_port, self.seq, self.ack = struct.unpack("!HHII", body[:12])
            offset = (body[12] >> 4) * 4
            self.flags = body[13]
            self.length = body_length - offset
            self.payload = body[offset:]
        elif self.proto == 17:  # UDP, RFC 768
            self.src_port, self.dst_port = struct.unpack("!HH", body[:4])
            self.length = body_length - 8
            self.payload = body[8:]
        elif self.proto == 1:  # ICMP, RFC 792: an error quotes the IP header and 8 bytes of what caused it
            self.icmp_type, self.icmp_code = body[0], body[1]
            quoted = body[8:]
            quoted_ihl = (quoted[0] & 0x0F) * 4 if quoted else 0
            ports = quoted[quoted_ihl : quoted_ihl + 4]
            # The ICMP error travels back from the datagram's destination to its source.
            if len(ports) == 4:
                self.dst_port, self.src_port = struct.unpack("!HH", ports)
            else:
                self.src_port = self.dst_port = None
        else:
            raise ValueError("not TCP, UDP or ICMP")

    def source(self):
        return f"{self.src_ip}:{self.src_port}"

    def destination(self):
        return f"{self.dst_ip}:{self.dst_port}"


class Sequences:
    """Makes TCP sequence numbers relative to each direction's first one."""

    def __init__(self):
        self.first = {}

    def label(self, packet):
        here = (packet.source(), packet.destination())
        back = (packet.destination(), packet.source())
        self.first.setdefault(here, packet.seq)
        names = [name for bit, name in TCP_FLAGS if packet.flags & bit]
        label = "-".join(names) if names else "(no flags)"
        seq = (packet.seq - self.first[here]) % 2**32
        label += f" seq={seq}" if packet.length == 0 else f" seq={seq}:{seq + packet.length}"
        if packet.flags & 0x10 and back in self.first:
            label += f" ack={(packet.ack - self.first[back]) % 2**32}"
        elif packet.flags & 0x10:
            label += f" ack={packet.ack} (absolute)"
        if packet.length:
            label += f" {packet.length} bytes {printable(packet.payload, packet.length)}"
        return label


def label(packet, sequences):
    if packet.proto == 6:
        return sequences.label(packet)
    if packet.proto == 17:
        return f"UDP {packet.length} bytes {printable(packet.payload, packet.length)}"
    if packet.icmp_type == 3:
        why = ICMP_UNREACHABLE.get(packet.icmp_code, f"code {packet.icmp_code}")
        return f"ICMP {why} unreachable"
    return f"ICMP type {packet.icmp_type} code {packet.icmp_code}"


def arrow(label, width, rightwards):
    """`|---- label ---->|` (or pointing left) exactly `width` characters wide."""
    inner = width - 2
    text = f" {label} "
    dashes = inner - len(text) - 1
    left = dashes // 2
    right = dashes - left
    if rightwards:
        return "|" + "-" * left + text + "-" * right + ">|"
    return "|<" + "-" * left + text + "-" * right + "|"


USAGE = "usage: ladder.py FILE.pcap client server:PORT [next:PORT ...]"


def usage_error(message=None):
    """Bad arguments: exit status 2, like the lab programs."""
    if message:
        print(f"ladder.py: {message}", file=sys.stderr)
    print(USAGE, file=sys.stderr)
    sys.exit(2)


def main(argv):
    if len(argv) > 1 and argv[1] in ("-h", "--help"):
        print(USAGE)
        return
    if len(argv) < 4:
        usage_error()
    path, columns = argv[1], [argv[2]]
    ports = {}
    for spec in argv[3:]:
        name, _, port = spec.partition(":")
        if not port.isdigit():
            usage_error(f"column '{spec}' needs a port, like server:12000")
        ports[int(port)] = len(columns)
        columns.append(name)

    # Each packet becomes (time, left column, rightwards?, label).
    rows, addresses, unplaced = [], {}, []
    sequences = Sequences()
    for time, ip in read_pcap(path):
        try:
            packet = Packet(time, ip)
        except (ValueError, IndexError, struct.error):
            continue
        text = label(packet, sequences)
        if packet.dst_port in ports:
            server, rightwards = ports[packet.dst_port], True
            addresses.setdefault(server, packet.destination())
            addresses.setdefault(server - 1, packet.source())
        elif packet.src_port in ports:
            server, rightwards = ports[packet.src_port], False
            addresses.setdefault(server, packet.source())
            addresses.setdefault(server - 1, packet.destination())
        else:
            unplaced.append(f"{packet.source()} > {packet.destination()} {text}")
            continue
        rows.append((packet.time, server - 1, rightwards, text))

    if not rows:
        print("(no packets between these columns)")
    gaps = [28] * (len(columns) - 1)
    for _, left, _, text in rows:
        gaps[left] = max(gaps[left], len(text) + 8)
    # x position of each column's "|": after the time field, far enough
    # right that the first column's name and address fit centred above it.
    heads = [(name, addresses.get(i, "")) for i, name in enumerate(columns)]
    xs = [10 + max(len(text) for text in heads[0]) // 2]
    for gap in gaps:
        xs.append(xs[-1] + gap - 1)

    def centred(texts):
        out = ""
        for x, text in zip(xs, texts):
            start = max(len(out) + 1, x - len(text) // 2)
            out += " " * (start - len(out)) + text
        return out

    start = rows[0][0] if rows else 0
    print(centred([name for name, _ in heads]))
    print(centred([address for _, address in heads]))
    for time, left, rightwards, text in rows:
        row = f"{(time - start) * 1000:8.3f}"
        for i, x in enumerate(xs):
            if i == left:
                row += " " * (x - len(row)) + arrow(text, gaps[left], rightwards)
            elif len(row) <= x:
                row += " " * (x - len(row)) + "|"
        print(row)
    for text in unplaced:
        print(f"(not between the columns: {text})")


if __name__ == "__main__":
    main(sys.argv)
