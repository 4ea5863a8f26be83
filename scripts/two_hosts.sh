#!/usr/bin/env bash
# two_hosts.sh: two "hosts" on one machine, instead of the seed's two VMs.
#
#   sudo scripts/two_hosts.sh up|down [--force]|status
#
# `up` makes two network namespaces, lab-a (10.10.0.1/24) and lab-b
# (10.10.0.2/24), each with its own interfaces, routes, ports and firewall,
# joined by a veth pair: a virtual cable, veth-a in lab-a and veth-b in lab-b.
# A program started with `ip netns exec lab-b ...` lives on "host B":
#
#   sudo ip netns exec lab-b target/debug/udp_server
#   sudo ip netns exec lab-a target/debug/udp_client --host 10.10.0.2 hello
#   sudo ip netns exec lab-b tcpdump -i veth-b -n      # watch the cable
#
# `up` may be run again (it only adds what is missing); `down` removes both
# namespaces, and with them the veth pair and any firewall rules in them.
# A namespace lives on, unnamed, as long as a process runs in it, so `down`
# refuses while one does (it lists them, from `ip netns pids`), and
# `down --force` ends them first (SIGTERM, then SIGKILL).
# `status` shows them and exits 1 if they are not up.
# LAB_A and LAB_B change the namespace names (the tests use their own).
# Worksheet: labs/06-packet-tracing-and-firewall.md
set -euo pipefail

USAGE="usage: two_hosts.sh up|down [--force]|status   (namespaces \$LAB_A, \$LAB_B: default lab-a, lab-b)"
A="${LAB_A:-lab-a}"
B="${LAB_B:-lab-b}"
A_ADDR=10.10.0.1/24
B_ADDR=10.10.0.2/24

die() {
  echo "two_hosts.sh: error: $*" >&2
  exit 1
}

case "${1:-}" in
-h | --help)
  echo "$USAGE"
  exit 0
  ;;
up | down | status) ;;
*)
  echo "$USAGE" >&2
  exit 2
  ;;
esac
FORCE=0
if [ $# -eq 2 ] && [ "$1" = down ] && [ "$2" = --force ]; then
  FORCE=1
elif [ $# -ne 1 ]; then
  echo "$USAGE" >&2
  exit 2
fi
[ "$EUID" -eq 0 ] || die "network namespaces need root: run 'sudo $0 $*'"
command -v ip >/dev/null || die "'ip' is not installed (Debian/Ubuntu: apt-get install iproute2)"

has_netns() {
  ip netns list | awk '{ print $1 }' | grep -qxF -- "$1"
}

# Runs a command inside namespace $1.
in_ns() {
  local ns="$1"
  shift
  ip netns exec "$ns" "$@"
}

up() {
  for ns in "$A" "$B"; do
    has_netns "$ns" || ip netns add "$ns"
    # A fresh namespace has only lo, and it is down: 127.0.0.1 would not work.
    in_ns "$ns" ip link set lo up
  done
  if ! in_ns "$A" ip link show veth-a >/dev/null 2>&1; then
    # A half-made pair (veth-b left alone in B) would block the new one.
    in_ns "$B" ip link del veth-b 2>/dev/null || true
    # Both ends are created straight inside their namespaces, so nothing is
    # ever added to the host's own interfaces.
    ip link add veth-a netns "$A" type veth peer name veth-b netns "$B"
  fi
  # IPv4 only: without IPv6 the cable carries no neighbour-discovery chatter,
  # so tcpdump on it shows the lab's packets (and ARP) alone. (A kernel
  # booted with ipv6.disable=1 has no such setting, and no chatter either.)
  if [ -d /proc/sys/net/ipv6 ]; then
    in_ns "$A" sysctl -qw net.ipv6.conf.veth-a.disable_ipv6=1
    in_ns "$B" sysctl -qw net.ipv6.conf.veth-b.disable_ipv6=1
  fi
  # `replace` adds the address, or leaves it if it is already there.
  in_ns "$A" ip addr replace "$A_ADDR" dev veth-a
  in_ns "$B" ip addr replace "$B_ADDR" dev veth-b
  in_ns "$A" ip link set veth-a up
  in_ns "$B" ip link set veth-b up
  # The kernel reports the link as up (operstate) a moment after both ends
  # are; wait for it (bounded) so the cable works when `up` returns.
  for _ in $(seq 50); do
    if [ "$(in_ns "$A" cat /sys/class/net/veth-a/operstate)" = up ] &&
      [ "$(in_ns "$B" cat /sys/class/net/veth-b/operstate)" = up ]; then
      break
    fi
    sleep 0.1
  done
  echo "up: $A (${A_ADDR%/*}, veth-a) <-> $B (${B_ADDR%/*}, veth-b)"
}

# The processes that still run in the namespaces, one `PID COMMAND` line each.
ns_processes() {
  local ns pid
  for ns in "$A" "$B"; do
    has_netns "$ns" || continue
    for pid in $(ip netns pids "$ns"); do
      echo "  $ns: $pid $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)"
    done
  done
}

# Ends the processes in the namespaces: SIGTERM, up to 2 s, then SIGKILL.
stop_processes() {
  local ns pids=()
  for ns in "$A" "$B"; do
    has_netns "$ns" && pids+=($(ip netns pids "$ns"))
  done
  [ ${#pids[@]} -gt 0 ] || return 0
  kill -TERM "${pids[@]}" 2>/dev/null || true
  for _ in $(seq 20); do
    [ -z "$(ns_processes)" ] && return 0
    sleep 0.1
  done
  kill -KILL "${pids[@]}" 2>/dev/null || true
}

down() {
  local left
  left="$(ns_processes)"
  if [ -n "$left" ]; then
    [ "$FORCE" -eq 1 ] ||
      die "processes still run in the namespaces (stop them first, or run 'sudo $0 down --force' to end them):
$left"
    echo "stopping:"
    echo "$left"
    stop_processes
  fi
  # Deleting a namespace deletes the interfaces in it; deleting one end of a
  # veth pair deletes the other.
  for ns in "$A" "$B"; do
    if has_netns "$ns"; then
      ip netns del "$ns"
    fi
  done
  echo "down: $A and $B removed"
}

status() {
  local up=0
  for ns in "$A" "$B"; do
    if has_netns "$ns"; then
      echo "$ns:"
      in_ns "$ns" ip -br addr | sed 's/^/  /'
      local rules
      rules="$(in_ns "$ns" nft list ruleset 2>/dev/null || true)"
      [ -z "$rules" ] || echo "$rules" | sed 's/^/  /'
    else
      echo "$ns: missing"
      up=1
    fi
  done
  if [ "$up" -eq 0 ] && ! in_ns "$A" ip link show veth-a >/dev/null 2>&1; then
    echo "veth-a: missing"
    up=1
  fi
  [ "$up" -eq 0 ] || echo "not up: run 'sudo $0 up'"
  return "$up"
}

"$1"
