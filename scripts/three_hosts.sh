#!/usr/bin/env bash
# three_hosts.sh: two hosts and a router between them, on one machine.
#
#   sudo scripts/three_hosts.sh up|status
#   sudo scripts/three_hosts.sh down [--force]
#   sudo scripts/three_hosts.sh loss PERCENT        (0 to 100; 0 removes the loss)
#   sudo scripts/three_hosts.sh icmp drop|reject|allow
#
# `up` makes three network namespaces on two subnets, joined by two veth
# pairs (virtual cables), with IPv4 forwarding on in the router:
#
#   host-a 10.20.1.2/24 (a0) --- (r0) 10.20.1.1/24 router 10.20.2.1/24 (r1) --- (b0) 10.20.2.2/24 host-b
#
# host-a's default route is the router, and so is host-b's: a packet from
# host-a to host-b crosses the router, which takes 1 off its TTL (a TTL of 1
# dies there, and the router answers ICMP Time Exceeded). Each namespace
# allows ping sockets to every group (net.ipv4.ping_group_range, a setting
# of each network namespace), so icmp_ping and traceroute --icmp need no
# raw socket in them:
#
#   sudo ip netns exec host-a target/debug/icmp_ping 10.20.2.2
#   sudo ip netns exec host-a target/debug/traceroute 10.20.2.2
#   sudo ip netns exec router tcpdump -n -i r1        # watch the second cable
#
# The router's firewall (nftables, table `ip lab` inside the router only):
#   loss N     drops N% of the packets going from host-a's subnet to host-b's
#              (one direction, so a ping's loss is about N%, not 1-(1-N%)^2).
#              The choice is random (nftables `numgen random`, the kernel's
#              random numbers): it cannot be seeded, so each run differs.
#   icmp drop  the router forwards no ICMP and sends none of its own: pings
#              across it time out, and traceroute shows "*" for the router
#              and never hears the far host's port unreachable
#   icmp reject  the router answers echo requests it would forward with ICMP
#              "administratively prohibited" (type 3, code 13)
#   icmp allow removes the ICMP rules
# This kernel may have no netem, so there is no delay here.
#
# `up` may be run again (it only adds what is missing). `down` removes the
# three namespaces, the cables and rules with them. A program still running
# inside one (a server, a tcpdump: `ip netns pids` finds them) would keep
# running in a namespace without a name, so `down` refuses and lists them;
# `down --force` ends them (SIGTERM, then SIGKILL) first. `status` shows it
# all and exits 1 if the topology is not up.
# LAB_HOST_A, LAB_ROUTER and LAB_HOST_B change the names (the tests use their own).
# Worksheet: labs/09-icmp-traceroute.md
set -euo pipefail

USAGE="usage: three_hosts.sh up | down [--force] | status | loss PERCENT | icmp drop|reject|allow   (namespaces \$LAB_HOST_A, \$LAB_ROUTER, \$LAB_HOST_B: default host-a, router, host-b)"
A="${LAB_HOST_A:-host-a}"
R="${LAB_ROUTER:-router}"
B="${LAB_HOST_B:-host-b}"
A_ADDR=10.20.1.2/24
RA_ADDR=10.20.1.1/24
RB_ADDR=10.20.2.1/24
B_ADDR=10.20.2.2/24

die() {
  echo "three_hosts.sh: error: $*" >&2
  exit 1
}
usage_error() {
  [ -z "${1:-}" ] || echo "three_hosts.sh: $1" >&2
  echo "$USAGE" >&2
  exit 2
}

ACTION="${1:-}"
case "$ACTION" in
-h | --help)
  echo "$USAGE"
  exit 0
  ;;
up | status) [ $# -eq 1 ] || usage_error ;;
down)
  [ $# -eq 1 ] || { [ $# -eq 2 ] && [ "$2" = --force ]; } || usage_error
  ;;
loss)
  [ $# -eq 2 ] || usage_error
  PERCENT="${2%\%}"
  [[ "$PERCENT" =~ ^[0-9]+$ ]] && [ "$PERCENT" -le 100 ] ||
    usage_error "invalid loss '$2' (a whole percentage, 0 to 100)"
  ;;
icmp)
  [ $# -eq 2 ] || usage_error
  case "$2" in drop | reject | allow) ;; *) usage_error "invalid icmp rule '$2' (drop, reject or allow)" ;; esac
  ;;
*) usage_error ;;
esac
[ "$EUID" -eq 0 ] || die "network namespaces need root: run 'sudo $0 $*'"
command -v ip >/dev/null || die "'ip' is not installed (Debian/Ubuntu: apt-get install iproute2)"

has_netns() {
  ip netns list | awk '{ print $1 }' | grep -qxF -- "$1"
}

in_ns() {
  local ns="$1"
  shift
  ip netns exec "$ns" "$@"
}

# A veth pair $2 (in namespace $1) <-> $4 (in namespace $3), made only if missing.
cable() {
  if ! in_ns "$1" ip link show "$2" >/dev/null 2>&1; then
    in_ns "$3" ip link del "$4" 2>/dev/null || true # a half-made pair
    ip link add "$2" netns "$1" type veth peer name "$4" netns "$3"
  fi
}

# Address $3 on interface $2 in namespace $1, IPv6 off (a quiet capture), link up.
plug() {
  if [ -d /proc/sys/net/ipv6 ]; then
    in_ns "$1" sysctl -qw "net.ipv6.conf.$2.disable_ipv6=1"
  fi
  in_ns "$1" ip addr replace "$3" dev "$2"
  in_ns "$1" ip link set "$2" up
}

up() {
  for ns in "$A" "$R" "$B"; do
    has_netns "$ns" || ip netns add "$ns"
    in_ns "$ns" ip link set lo up
    # Ping sockets for every group (root's included) inside this namespace
    # only; the machine's own setting is left as it is.
    in_ns "$ns" sysctl -qw net.ipv4.ping_group_range="0 2147483647"
  done
  cable "$A" a0 "$R" r0
  cable "$R" r1 "$B" b0
  plug "$A" a0 "$A_ADDR"
  plug "$R" r0 "$RA_ADDR"
  plug "$R" r1 "$RB_ADDR"
  plug "$B" b0 "$B_ADDR"
  # The router forwards packets between its interfaces (RFC 1812); a host does not.
  in_ns "$R" sysctl -qw net.ipv4.ip_forward=1
  in_ns "$A" ip route replace default via "${RA_ADDR%/*}"
  in_ns "$B" ip route replace default via "${RB_ADDR%/*}"
  # Wait (bounded) until the kernel reports all four ends up.
  for _ in $(seq 50); do
    if [ "$(in_ns "$A" cat /sys/class/net/a0/operstate)" = up ] &&
      [ "$(in_ns "$R" cat /sys/class/net/r0/operstate)" = up ] &&
      [ "$(in_ns "$R" cat /sys/class/net/r1/operstate)" = up ] &&
      [ "$(in_ns "$B" cat /sys/class/net/b0/operstate)" = up ]; then
      break
    fi
    sleep 0.1
  done
  echo "up: $A (${A_ADDR%/*}) <-> $R (${RA_ADDR%/*} | ${RB_ADDR%/*}, forwarding) <-> $B (${B_ADDR%/*})"
}

# The processes running inside namespace $1, one pid a line.
pids_in() {
  ip netns pids "$1" 2>/dev/null || true
}

down() {
  local force="${1:-}" busy=""
  for ns in "$A" "$R" "$B"; do
    has_netns "$ns" || continue
    local pids
    pids="$(pids_in "$ns")"
    [ -n "$pids" ] || continue
    if [ "$force" != --force ]; then
      echo "$ns still runs:" >&2
      # shellcheck disable=SC2086 # one pid per word
      ps -o pid=,args= -p $(echo $pids | tr ' ' ',') | sed 's/^/  /' >&2 || true
      busy=1
      continue
    fi
    # shellcheck disable=SC2086
    kill -TERM $pids 2>/dev/null || true
    for _ in $(seq 20); do
      [ -n "$(pids_in "$ns")" ] || break
      sleep 0.1
    done
    pids="$(pids_in "$ns")"
    # shellcheck disable=SC2086
    [ -z "$pids" ] || kill -KILL $pids 2>/dev/null || true
    echo "$ns: ended its processes"
  done
  [ -z "$busy" ] || die "programs still run in the namespaces (above): stop them, or run '$0 down --force' to end them"
  # Deleting a namespace deletes its interfaces; deleting one end of a veth
  # pair deletes the other; the firewall table goes with the router.
  for ns in "$A" "$R" "$B"; do
    if has_netns "$ns"; then
      ip netns del "$ns"
    fi
  done
  echo "down: $A, $R and $B removed"
}

status() {
  local missing=0
  for ns in "$A" "$R" "$B"; do
    if has_netns "$ns"; then
      echo "$ns:"
      in_ns "$ns" ip -br addr | sed 's/^/  /'
      in_ns "$ns" ip route | sed 's/^/  route: /'
      local pids
      pids="$(pids_in "$ns")"
      # shellcheck disable=SC2086
      [ -z "$pids" ] || echo "  processes: $(echo $pids)"
    else
      echo "$ns: missing"
      missing=1
    fi
  done
  if [ "$missing" -eq 0 ]; then
    echo "$R: forwarding $(in_ns "$R" sysctl -n net.ipv4.ip_forward)"
    local rules
    rules="$(in_ns "$R" nft list table ip lab 2>/dev/null || true)"
    [ -z "$rules" ] || echo "$rules" | sed 's/^/  /'
  fi
  [ "$missing" -eq 0 ] || echo "not up: run 'sudo $0 up'"
  return "$missing"
}

# The router's table and the chain $1 on hook $2, each rule set kept in a
# chain of its own so `loss` and `icmp` never undo each other.
router_chain() {
  command -v nft >/dev/null || die "'nft' is not installed (Debian/Ubuntu: apt-get install nftables)"
  has_netns "$R" || die "namespace '$R' does not exist: run 'sudo $0 up' first"
  in_ns "$R" nft add table ip lab
  in_ns "$R" nft add chain ip lab "$1" "{ type filter hook $2 priority filter; policy accept; }"
  in_ns "$R" nft flush chain ip lab "$1"
}

loss() {
  router_chain loss forward
  if [ "$PERCENT" -gt 0 ]; then
    # numgen random mod 100: a random number 0..99 per packet (not seeded).
    in_ns "$R" nft add rule ip lab loss iifname r0 numgen random mod 100 "<" "$PERCENT" counter drop
  fi
  if [ "$PERCENT" -gt 0 ]; then
    echo "$R: drops $PERCENT% of the packets from ${A_ADDR%/*}'s subnet to ${B_ADDR%/*}'s (random, not seeded)"
  else
    echo "$R: no loss: every packet from ${A_ADDR%/*}'s subnet to ${B_ADDR%/*}'s is forwarded"
  fi
}

icmp() {
  router_chain icmp_forward forward
  router_chain icmp_output output
  case "$1" in
  drop)
    in_ns "$R" nft add rule ip lab icmp_forward ip protocol icmp counter drop
    in_ns "$R" nft add rule ip lab icmp_output ip protocol icmp counter drop
    ;;
  reject)
    # An ICMP error about an ICMP error is never sent (RFC 1122 3.2.2), so
    # only the echo requests are answered.
    in_ns "$R" nft add rule ip lab icmp_forward icmp type echo-request counter reject with icmp type admin-prohibited
    ;;
  allow) ;;
  esac
  echo "$R: icmp $1"
}

case "$ACTION" in
up) up ;;
down) down "${2:-}" ;;
status) status ;;
loss) loss ;;
icmp) icmp "$2" ;;
esac
