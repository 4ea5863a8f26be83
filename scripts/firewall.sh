#!/usr/bin/env bash
# firewall.sh: firewall rules on "host B" (namespace lab-b), with nftables.
#
#   sudo scripts/firewall.sh allow|reject|drop PORT [--proto tcp|udp]
#   sudo scripts/firewall.sh reset|status
#
# Run scripts/two_hosts.sh up first. The rules live in a table `lab` inside
# lab-b only (every nft command here runs under `ip netns exec lab-b`), so
# the host's own firewall is never touched. They filter what arrives at B
# (the input hook), like `ufw` on the server of the seed's lab:
#
#   allow   accept the packets: the server answers as usual
#   reject  answer them: a TCP RST to a SYN, an ICMP port unreachable to a
#           UDP datagram, so the client fails at once with "refused"
#   drop    throw them away silently: the client hears nothing and times out
#
# Without --proto a rule covers TCP and UDP, as `ufw allow 12000` does. Each
# rule is inserted at the top of the chain, so the latest command for a port
# wins; what matches no rule is accepted. `reset` deletes the table (no rules
# left); `status` lists it. LAB_B changes the namespace (default lab-b).
# Worksheet: labs/06-packet-tracing-and-firewall.md
set -euo pipefail

USAGE="usage: firewall.sh allow|reject|drop PORT [--proto tcp|udp] | reset | status   (namespace \$LAB_B: default lab-b)"
B="${LAB_B:-lab-b}"

die() {
  echo "firewall.sh: error: $*" >&2
  exit 1
}
usage_error() {
  [ -z "${1:-}" ] || echo "firewall.sh: $1" >&2
  echo "$USAGE" >&2
  exit 2
}

ACTION="${1:-}"
case "$ACTION" in
-h | --help)
  echo "$USAGE"
  exit 0
  ;;
allow | reject | drop)
  [ $# -eq 2 ] || [ $# -eq 4 ] || usage_error
  PORT="$2"
  [[ "$PORT" =~ ^[0-9]+$ ]] && [ "$PORT" -ge 1 ] && [ "$PORT" -le 65535 ] ||
    usage_error "invalid port '$PORT' (1 to 65535)"
  PROTOS="tcp udp"
  if [ $# -eq 4 ]; then
    [ "$3" = "--proto" ] || usage_error "unexpected '$3'"
    case "$4" in
    tcp | udp) PROTOS="$4" ;;
    *) usage_error "invalid protocol '$4' (tcp or udp)" ;;
    esac
  fi
  ;;
reset | status)
  [ $# -eq 1 ] || usage_error
  ;;
*) usage_error ;;
esac

[ "$EUID" -eq 0 ] || die "firewall rules need root: run 'sudo $0 $*'"
for tool in ip nft; do
  command -v "$tool" >/dev/null ||
    die "'$tool' is not installed (Debian/Ubuntu: apt-get install $([ "$tool" = ip ] && echo iproute2 || echo nftables))"
done
ip netns list | awk '{ print $1 }' | grep -qxF -- "$B" ||
  die "namespace '$B' does not exist: run 'sudo scripts/two_hosts.sh up' first"

# nft, inside lab-b and nowhere else.
nft_b() {
  ip netns exec "$B" nft "$@"
}

# The table and its input chain; `add` leaves them alone if they exist.
# policy accept: a packet no rule matches gets through.
ensure_table() {
  nft_b add table inet lab
  nft_b add chain inet lab input '{ type filter hook input priority filter; policy accept; }'
}

# The verdict for one protocol: what the client will see.
verdict() {
  case "$ACTION/$1" in
  allow/*) echo "accept" ;;
  drop/*) echo "drop" ;;
  reject/tcp) echo "reject with tcp reset" ;;
  # icmpx: the inet family's "port unreachable", sent as ICMP or ICMPv6.
  reject/udp) echo "reject with icmpx type port-unreachable" ;;
  esac
}

case "$ACTION" in
allow | reject | drop)
  ensure_table
  for proto in $PROTOS; do
    # shellcheck disable=SC2046 # the verdict is several nft words
    nft_b insert rule inet lab input "$proto" dport "$PORT" $(verdict "$proto")
    echo "$B: $ACTION $proto port $PORT"
  done
  ;;
reset)
  # `destroy` would need nftables 1.0.8; delete only if the table is there.
  if nft_b list table inet lab >/dev/null 2>&1; then
    nft_b delete table inet lab
  fi
  echo "$B: no rules (everything is accepted)"
  ;;
status)
  rules="$(nft_b list ruleset)"
  if [ -z "$rules" ]; then
    echo "$B: no rules (everything is accepted)"
  else
    echo "$rules"
  fi
  ;;
esac
