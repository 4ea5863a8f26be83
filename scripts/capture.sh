#!/usr/bin/env bash
# capture.sh: run one lab scenario under tcpdump and explain its packets.
#
#   sudo scripts/capture.sh SCENARIO [OUTDIR]
#
# It starts the real lab programs on loopback (the servers on a port the OS
# picks, --port 0), captures their packets on loopback (`lo`; macOS: `lo0`) with tcpdump filtered to
# that port, and writes two files:
#
# OUTDIR defaults to my-captures/ (ignored by git), so a run never changes
# the reference captures in captures/; name captures/ as OUTDIR to remake a
# reference on purpose (`sudo scripts/capture.sh tcp-echo captures`).
#
#   OUTDIR/SCENARIO.pcap   the packets (open it in Wireshark, or tcpdump -r)
#   OUTDIR/SCENARIO.txt    the commands, what the client printed, a ladder
#                          diagram (one arrow per packet: SYN, SYN-ACK, ...)
#                          drawn by scripts/ladder.py, and every packet as
#                          tcpdump prints it (flags, seq/ack, payload in hex)
#
# It builds nothing: run `cargo build` first. The programs come from
# target/debug, or from the folder named by $SOCKETLAB_BIN.
# Worksheet: labs/06-packet-tracing-and-firewall.md
set -euo pipefail

SCENARIOS="tcp-echo udp-echo tcp-refused udp-port-unreachable time-service http-via-proxy"
USAGE="usage: capture.sh SCENARIO [OUTDIR]   (SCENARIO: ${SCENARIOS// /, }; OUTDIR defaults to my-captures/;
       'captures' as OUTDIR remakes the reference capture;
       the programs come from target/debug, so run 'cargo build' first, or from \$SOCKETLAB_BIN)"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${SOCKETLAB_BIN:-$ROOT/target/debug}"
SNAPLEN=512 # bytes kept of each packet: every header, and the start of the payload
WAIT=100    # tenths of a second any single wait may take

die() {
  echo "capture.sh: error: $*" >&2
  exit 1
}

case "${1:-}" in
-h | --help)
  echo "$USAGE"
  exit 0
  ;;
esac
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  echo "$USAGE" >&2
  exit 2
fi
SCENARIO="$1"
OUTDIR="${2:-$ROOT/my-captures}"
case " $SCENARIOS " in
*" $SCENARIO "*) ;;
*)
  echo "capture.sh: unknown scenario '$SCENARIO'" >&2
  echo "$USAGE" >&2
  exit 2
  ;;
esac

[ "$EUID" -eq 0 ] || die "tcpdump needs root to capture on loopback: run 'sudo $0 $*'"
# Each tool, and the Debian/Ubuntu package that has it.
for tool_package in tcpdump:tcpdump python3:python3 ss:iproute2; do
  tool="${tool_package%:*}"
  command -v "$tool" >/dev/null ||
    die "'$tool' is not installed (Debian/Ubuntu: apt-get install ${tool_package#*:})"
done
if [ ! -d "$OUTDIR" ]; then
  mkdir -p "$OUTDIR" || die "cannot create the output folder '$OUTDIR'"
  # Made under sudo: give the new folder to the student, like the files.
  [ -z "${SUDO_UID:-}" ] || chown "$SUDO_UID:${SUDO_GID:-$SUDO_UID}" "$OUTDIR"
fi

# The loopback interface's name: lo on Linux, lo0 on macOS and the BSDs.
# tcpdump -D lists the interfaces and marks that one "Loopback".
LOOPBACK="$(tcpdump -D 2>/dev/null | sed -n '/Loopback/{s/^[0-9]*\.\([^ ]*\).*/\1/p;q;}' || true)"
LOOPBACK="${LOOPBACK:-lo}"

WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
# bash runs the EXIT trap on Ctrl-C and on kill (SIGTERM) too.
trap cleanup EXIT

# The path of a lab program, or a clear error if it has not been built.
program() {
  [ -x "$BIN/$1" ] || die "'$BIN/$1' not found: build the programs first with 'cargo build' (or set SOCKETLAB_BIN)"
  echo "$BIN/$1"
}

# Waits (bounded) until FILE contains TEXT; fails with WHAT if it never does.
wait_for_text() {
  local file="$1" text="$2" what="$3"
  for _ in $(seq "$WAIT"); do
    grep -q -- "$text" "$file" 2>/dev/null && return 0
    sleep 0.1
  done
  die "$what did not happen within $((WAIT / 10)) s; it printed: $(cat "$file" 2>/dev/null)"
}

# A port on 127.0.0.1 that no socket of PROTO (tcp or udp) holds right now.
free_port() {
  python3 -c "import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM if sys.argv[1] == 'tcp' else socket.SOCK_DGRAM)
s.bind(('127.0.0.1', 0))
print(s.getsockname()[1])" "$1"
}

# Starts a lab server on port 0 and sets PORT to the port it printed on its
# first line (`tcp_server listening on 127.0.0.1:41234 (TCP)`).
start_server() {
  local name="$1" exe
  shift
  # Found first, so a missing program stops the script here, with its message.
  exe="$(program "$name")"
  "$exe" "$@" >"$WORK/$name.log" 2>&1 &
  PIDS+=($!)
  wait_for_text "$WORK/$name.log" " listening on " "$name starting"
  PORT="$(sed -n '1s/.* listening on [^ ]*:\([0-9]*\) .*/\1/p' "$WORK/$name.log")"
  [ -n "$PORT" ] || die "no port in $name's first line: $(head -1 "$WORK/$name.log")"
  echo "$name $* &    # -> $(head -1 "$WORK/$name.log")" >>"$WORK/commands"
}

# Starts Python's own web server, serving one small file, and sets ORIGIN to
# its port (its first line: `Serving HTTP on 127.0.0.1 port 41234 ...`).
start_origin() {
  mkdir -p "$WORK/www"
  echo "hello from the origin" >"$WORK/www/hello.txt"
  python3 -u -m http.server 0 --bind 127.0.0.1 --directory "$WORK/www" >"$WORK/origin.log" 2>&1 &
  PIDS+=($!)
  wait_for_text "$WORK/origin.log" "Serving HTTP on" "the origin (python3 -m http.server) starting"
  ORIGIN="$(sed -n '1s/.* port \([0-9]*\) .*/\1/p' "$WORK/origin.log")"
  [ -n "$ORIGIN" ] || die "no port in the origin's first line: $(head -1 "$WORK/origin.log")"
  echo "python3 -m http.server 0 --bind 127.0.0.1 --directory www &    # -> $(head -1 "$WORK/origin.log")" >>"$WORK/commands"
}

# Starts tcpdump on $LOOPBACK with FILTER, plus the end-of-capture marker (below),
# and returns once tcpdump says it is listening: from then on every packet
# that matches is captured. -U writes each packet to the file as it arrives;
# --immediate-mode hands each packet to tcpdump at once instead of in blocks.
start_capture() {
  MARK="$(free_port udp)"
  tcpdump -i "$LOOPBACK" -n -s "$SNAPLEN" -U --immediate-mode -w "$WORK/raw.pcap" \
    "($FILTER) or udp port $MARK" 2>"$WORK/tcpdump.err" &
  TCPDUMP=$!
  PIDS+=("$TCPDUMP")
  wait_for_text "$WORK/tcpdump.err" "listening on" "tcpdump starting"
  echo "tcpdump -i $LOOPBACK -n -s $SNAPLEN -U -w $SCENARIO.pcap '$FILTER' &" >>"$WORK/commands"
}

# Waits (bounded) until no TCP connection on PORTS is still open or closing:
# each is gone or in TIME-WAIT, so its last FIN and ACK have been sent. (A
# client can exit before the server's FIN: its kernel still answers it.)
wait_until_closed() {
  local filter="" port
  for port in "$@"; do
    filter="${filter:+$filter or }sport = :$port or dport = :$port"
  done
  for _ in $(seq "$WAIT"); do
    [ -z "$(ss -Htan exclude listening exclude time-wait "( $filter )")" ] && return 0
    sleep 0.1
  done
  die "connections on port(s) $* were still open after $((WAIT / 10)) s: $(ss -tan "( $filter )")"
}

# Stops tcpdump without losing the last packets: send one marker datagram
# after the scenario, wait until tcpdump has written it (so everything sent
# before it is in the file too: lo delivers in order), then SIGINT, wait,
# and copy every packet except the marker to OUTDIR.
stop_capture() {
  printf 'end of capture' >"/dev/udp/127.0.0.1/$MARK"
  local seen=""
  for _ in $(seq "$WAIT"); do
    if tcpdump -r "$WORK/raw.pcap" -n "udp port $MARK" 2>/dev/null | grep -q .; then
      seen=yes
      break
    fi
    sleep 0.1
  done
  [ -n "$seen" ] || die "tcpdump did not capture the end-of-capture marker within $((WAIT / 10)) s"
  kill -INT "$TCPDUMP"
  wait "$TCPDUMP" || true
  tcpdump -r "$WORK/raw.pcap" -w "$OUTDIR/$SCENARIO.pcap" "not udp port $MARK" 2>/dev/null
}

# Runs a client, records what it printed, and checks its exit status
# (0: it worked; 1: the scenario expects it to fail, e.g. refused).
client() {
  local expect="$1" name="$2" exe
  shift 2
  if [ "$name" = curl ]; then # the one client that is not a lab program
    exe="$(command -v curl)" || die "'curl' is not installed (Debian/Ubuntu: apt-get install curl)"
  else
    exe="$(program "$name")"
  fi
  local status=0 quoted
  quoted="$(printf '%q ' "$@")" # the arguments as a shell would need them
  "$exe" "$@" >"$WORK/client.out" 2>&1 || status=$?
  {
    echo "\$ $name ${quoted% }"
    cat "$WORK/client.out"
    echo "(exit status $status)"
  } >>"$WORK/transcript"
  echo "$name ${quoted% }" >>"$WORK/commands"
  [ "$status" -eq "$expect" ] || die "$name exited with $status, expected $expect: $(cat "$WORK/client.out")"
}

# Each scenario sets TITLE, ABOUT (what to look for), FILTER and LADDER (the
# columns for ladder.py), then starts the capture and runs its client.
case "$SCENARIO" in
tcp-echo)
  TITLE="tcp_client sends \"hello\" to tcp_server, which answers \"HELLO\""
  ABOUT="The three-way handshake (SYN, SYN-ACK, ACK), the data each way, and the
teardown: the client's FIN after its message (shutdown(Write)), the server's
FIN after its reply, each one ACKed. A FIN counts as one sequence number."
  start_server tcp_server --bind 127.0.0.1 --port 0
  FILTER="tcp port $PORT"
  LADDER="client server:$PORT"
  start_capture
  client 0 tcp_client --port "$PORT" hello
  ;;
udp-echo)
  TITLE="udp_client sends \"hello\" to udp_server, which answers \"HELLO\""
  ABOUT="Two datagrams and nothing else: no handshake, no acknowledgement, no
teardown. Compare with tcp-echo."
  start_server udp_server --bind 127.0.0.1 --port 0
  FILTER="udp port $PORT"
  LADDER="client server:$PORT"
  start_capture
  client 0 udp_client --port "$PORT" hello
  ;;
tcp-refused)
  PORT="$(free_port tcp)"
  TITLE="tcp_client connects to port $PORT, where nothing listens"
  ABOUT="The SYN is answered by a RST (with ACK): the kernel's answer when no
socket listens on the port. connect() fails with ECONNREFUSED at once."
  FILTER="tcp port $PORT"
  LADDER="client server:$PORT"
  start_capture
  client 1 tcp_client --port "$PORT" hello
  ;;
udp-port-unreachable)
  PORT="$(free_port udp)"
  TITLE="udp_client --connect sends to port $PORT, where no socket is open"
  ABOUT="The datagram is answered by an ICMP port unreachable. Only a connected
UDP socket hears it (as ECONNREFUSED); an unconnected one would wait for its
timeout. The filter also takes the ICMP error: icmp[30:2] is the destination
port of the UDP header quoted inside it (8 bytes of ICMP header + 20 of the
quoted IP header + 2)."
  FILTER="udp port $PORT or (icmp and icmp[30:2] = $PORT)"
  LADDER="client server:$PORT"
  start_capture
  client 1 udp_client --connect --port "$PORT" hello
  ;;
time-service)
  TITLE="time_client asks time_server for the time over one TCP connection"
  ABOUT="The handshake, then the Diffie-Hellman line each way (the public keys
travel in the clear), then the request and the answer, Caesar-shifted: the
bytes on the wire are not readable text, yet crack_caesar recovers them (see
labs/05-time-service.md). Then the FINs."
  start_server time_server --bind 127.0.0.1 --port 0
  FILTER="tcp port $PORT"
  LADDER="client server:$PORT"
  start_capture
  client 0 time_client --port "$PORT" --request time
  ;;
http-via-proxy)
  TITLE="curl fetches a page from a local web server through web_proxy"
  ABOUT="Two TCP connections: curl to the proxy, which receives the whole URL
(GET http://host:port/path), and the proxy to the origin, which receives
the usual GET /path. The origin's answer travels back the same way, with
the proxy's Via and Cache-Status headers added. Python's http.server
speaks HTTP/1.0 and closes after each answer; curl closes when it is done."
  start_origin
  start_server web_proxy --port 0
  FILTER="tcp port $PORT or tcp port $ORIGIN"
  LADDER="client proxy:$PORT origin:$ORIGIN"
  start_capture
  client 0 curl -s -i --noproxy '' -x "http://127.0.0.1:$PORT" "http://127.0.0.1:$ORIGIN/hello.txt"
  SERVER_PORTS="$PORT $ORIGIN"
  ;;
esac
# shellcheck disable=SC2086 # a list of ports
wait_until_closed ${SERVER_PORTS:-$PORT}
stop_capture

# shellcheck disable=SC2086 # LADDER is a list of column arguments
{
  echo "# $SCENARIO: $TITLE"
  echo
  echo "$ABOUT"
  echo
  echo "Captured by scripts/capture.sh $SCENARIO on $(date -u '+%Y-%m-%d %H:%M UTC'), Linux $(uname -r)."
  echo
  echo "## Commands"
  echo
  sed 's/^/    /' "$WORK/commands"
  echo
  echo "## What the client printed"
  echo
  sed 's/^/    /' "$WORK/transcript"
  echo
  echo "## Ladder: python3 scripts/ladder.py $SCENARIO.pcap $LADDER"
  echo
  echo "Time in ms since the first packet; seq and ack relative to each side's first"
  echo "sequence number, as tcpdump and Wireshark show them."
  echo
  python3 "$ROOT/scripts/ladder.py" "$OUTDIR/$SCENARIO.pcap" $LADDER
  echo
  echo "## Packets: tcpdump -r $SCENARIO.pcap -n -X (times in UTC)"
  echo
  TZ=UTC tcpdump -r "$OUTDIR/$SCENARIO.pcap" -n -X 2>/dev/null
} >"$OUTDIR/$SCENARIO.txt"

# Under sudo, give the files to the user who ran it (tcpdump writes as its
# own user, the .txt is root's), so they can be edited and committed.
if [ -n "${SUDO_UID:-}" ]; then
  chown "$SUDO_UID:${SUDO_GID:-$SUDO_UID}" "$OUTDIR/$SCENARIO.pcap" "$OUTDIR/$SCENARIO.txt"
fi
echo "wrote $OUTDIR/$SCENARIO.pcap ($(wc -c <"$OUTDIR/$SCENARIO.pcap") bytes) and $OUTDIR/$SCENARIO.txt"
