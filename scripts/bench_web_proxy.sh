#!/usr/bin/env bash
# bench_web_proxy.sh: web_proxy against tinyproxy and squid, measured with wrk.
#
#   cargo build --release --bin web_proxy
#   sudo scripts/bench_web_proxy.sh       (as root: it installs what is missing;
#                                          about 3 minutes with DURATION=5s)
#   sudo DURATION=10s CONNECTIONS=64 scripts/bench_web_proxy.sh
#
# sudo resets PATH, so cargo is usually not found under it: then the script
# uses target/release/web_proxy as built, or stops and says to build first.
#
# One local nginx origin serves a 1 KiB and a 100 KiB file (with
# Cache-Control: max-age=3600, so every cache may keep them). In the same
# run, wrk drives each proxy with CONNECTIONS kept-alive connections:
#
#   web_proxy hit     web_proxy with its cache, warmed: every request a hit
#   web_proxy miss    web_proxy --no-cache: every request goes to nginx
#   tinyproxy         a forwarding proxy without a cache
#   squid (memory)    squid with a memory cache only (no cache_dir), warmed
#
# wrk has no proxy option, so a Lua script makes it send absolute-form
# requests (`GET http://127.0.0.1:PORT/1k.bin HTTP/1.1`) to the proxy's
# port, which is exactly what a browser configured with a proxy sends.
#
# It prints requests/s and the 99th percentile latency of each, the ratios
# the issue sets as targets (hits >= squid for 1 KiB and >= 2x squid for
# 100 KiB, misses >= 3x tinyproxy), and web_proxy's peak resident memory.
# Everything runs on loopback, in a temporary directory removed at the end.
# Worksheet: labs/04-web-proxy.md
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DURATION="${DURATION:-5s}"
CONNECTIONS="${CONNECTIONS:-64}"
THREADS="${THREADS:-2}"
WORK="$(mktemp -d /tmp/bench_web_proxy.XXXXXX)"
PIDS=()

die() {
  echo "bench_web_proxy.sh: error: $*" >&2
  exit 1
}

cleanup() {
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# --- what it needs ----------------------------------------------------------

install_missing() {
  local missing=()
  command -v wrk >/dev/null || missing+=(wrk)
  command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
  command -v tinyproxy >/dev/null || [ -x /usr/bin/tinyproxy ] || missing+=(tinyproxy)
  command -v squid >/dev/null || [ -x /usr/sbin/squid ] || missing+=(squid)
  command -v curl >/dev/null || missing+=(curl)
  if [ ${#missing[@]} -gt 0 ]; then
    [ "$(id -u)" = 0 ] || die "missing ${missing[*]}: run as root, or apt-get install ${missing[*]}"
    echo "installing ${missing[*]}" >&2
    apt-get install -y "${missing[@]}" >/dev/null || {
      apt-get update >/dev/null
      apt-get install -y "${missing[@]}" >/dev/null
    }
  fi
}

# A free TCP port on loopback, picked by the kernel (bind to port 0).
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits (up to 10 s) until something accepts connections on 127.0.0.1:$1.
wait_for_port() {
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  die "nothing listens on port $1 after 10 s (see the logs in $WORK)"
}

# --- the origin and the proxies ---------------------------------------------

start_nginx() {
  mkdir -p "$WORK/www" "$WORK/nginx"
  head -c 1024 /dev/urandom >"$WORK/www/1k.bin"
  head -c 102400 /dev/urandom >"$WORK/www/100k.bin"
  chmod -R a+rX "$WORK"
  cat >"$WORK/nginx/nginx.conf" <<EOF
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$NGINX_PORT;
    root $WORK/www;
    expires 1h;
  }
}
EOF
  nginx -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" -g 'daemon off;' &
  PIDS+=($!)
  wait_for_port "$NGINX_PORT"
}

start_web_proxy() { # PORT [FLAGS...]
  local port=$1
  shift
  "$ROOT/target/release/web_proxy" --port "$port" --quiet "$@" >"$WORK/web_proxy-$port.log" 2>&1 &
  PIDS+=($!)
  eval "WEB_PROXY_PID_$port=$!"
  wait_for_port "$port"
}

start_tinyproxy() {
  cat >"$WORK/tinyproxy.conf" <<EOF
User nobody
Group nogroup
Port $TINYPROXY_PORT
Listen 127.0.0.1
Timeout 600
MaxClients 256
LogLevel Critical
Allow 127.0.0.1
DisableViaHeader Yes
EOF
  tinyproxy -d -c "$WORK/tinyproxy.conf" >"$WORK/tinyproxy.log" 2>&1 &
  PIDS+=($!)
  wait_for_port "$TINYPROXY_PORT"
}

start_squid() {
  mkdir -p "$WORK/squid"
  chown proxy "$WORK/squid" 2>/dev/null || chmod 777 "$WORK/squid"
  # No cache_dir line: squid keeps its cache in memory only.
  cat >"$WORK/squid/squid.conf" <<EOF
http_port 127.0.0.1:$SQUID_PORT
http_access allow localhost
http_access deny all
cache_mem 64 MB
maximum_object_size_in_memory 1 MB
access_log none
cache_store_log none
cache_log $WORK/squid/cache.log
pid_filename $WORK/squid/squid.pid
coredump_dir $WORK/squid
shutdown_lifetime 0 seconds
via off
EOF
  squid -N -f "$WORK/squid/squid.conf" >"$WORK/squid/stdout.log" 2>&1 &
  PIDS+=($!)
  wait_for_port "$SQUID_PORT"
}

# --- measuring ----------------------------------------------------------------

# wrk sends `path` as written in the request line; an absolute URL there is
# the absolute-form a proxy expects.
write_lua() { # FILE -> $WORK/FILE.lua
  cat >"$WORK/$1.lua" <<EOF
request = function()
  return wrk.format("GET", "http://127.0.0.1:$NGINX_PORT/$1")
end
EOF
}

# Runs wrk against a proxy; prints "REQ_PER_SEC P99_MS".
measure() { # PROXY_PORT FILE
  local out rps p99
  out="$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s "$WORK/$2.lua" "http://127.0.0.1:$1/")"
  echo "$out" >>"$WORK/wrk.log"
  rps="$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")"
  p99="$(awk '$1 == "99%" {print $2}' <<<"$out")"
  if grep -q "Non-2xx or 3xx responses" <<<"$out"; then
    echo "warning: proxy on port $1 answered some requests with errors for $2" >&2
  fi
  echo "${rps:-0} $(to_ms "${p99:-0ms}")"
}

# wrk prints latencies as 812.00us, 3.21ms or 1.02s.
to_ms() {
  awk -v v="$1" 'BEGIN {
    n = v + 0
    if (v ~ /us$/) n = n / 1000; else if (v ~ /ms$/) n = n; else if (v ~ /s$/) n = n * 1000
    printf "%.2f", n
  }'
}

# Fetches a URL once through a proxy, so the caches hold it.
warm() { # PROXY_PORT FILE
  for _ in 1 2 3; do
    curl -s -o /dev/null -x "127.0.0.1:$1" "http://127.0.0.1:$NGINX_PORT/$2"
  done
}

ratio() {
  awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'
}

# --- the run --------------------------------------------------------------------

# The proxy first: a missing build should stop the run before any apt-get.
if command -v cargo >/dev/null; then
  echo "building web_proxy (release)" >&2
  (cd "$ROOT" && cargo build --release --quiet --bin web_proxy)
elif [ -x "$ROOT/target/release/web_proxy" ]; then
  echo "cargo is not on PATH (sudo resets it): using target/release/web_proxy as built" >&2
else
  die "cargo is not on PATH (sudo resets it) and target/release/web_proxy is not built: run 'cargo build --release --bin web_proxy' first, as yourself, then 'sudo $0' again"
fi
install_missing

NGINX_PORT=$(free_port)
HIT_PORT=$(free_port)
MISS_PORT=$(free_port)
TINYPROXY_PORT=$(free_port)
SQUID_PORT=$(free_port)

start_nginx
start_web_proxy "$HIT_PORT"
start_web_proxy "$MISS_PORT" --no-cache
start_tinyproxy
start_squid
HIT_PID=$(eval echo "\$WEB_PROXY_PID_$HIT_PORT")
MISS_PID=$(eval echo "\$WEB_PROXY_PID_$MISS_PORT")

declare -A RPS P99
for file in 1k.bin 100k.bin; do
  write_lua "$file"
  for proxy in web_proxy_hit web_proxy_miss tinyproxy squid; do
    case $proxy in
      web_proxy_hit) port=$HIT_PORT ;;
      web_proxy_miss) port=$MISS_PORT ;;
      tinyproxy) port=$TINYPROXY_PORT ;;
      squid) port=$SQUID_PORT ;;
    esac
    warm "$port" "$file"
    echo "measuring $proxy with $file for $DURATION" >&2
    read -r rps p99 < <(measure "$port" "$file")
    RPS[$proxy.$file]=$rps
    P99[$proxy.$file]=$p99
  done
done

rss_kb() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

echo
echo "wrk: $CONNECTIONS connections, $THREADS threads, $DURATION per run, nginx origin on loopback, $(nproc) CPUs"
printf '%-22s %14s %10s %14s %10s\n' proxy "1KiB req/s" "p99 ms" "100KiB req/s" "p99 ms"
for proxy in web_proxy_hit web_proxy_miss tinyproxy squid; do
  printf '%-22s %14s %10s %14s %10s\n' "$proxy" "${RPS[$proxy.1k.bin]}" "${P99[$proxy.1k.bin]}" \
    "${RPS[$proxy.100k.bin]}" "${P99[$proxy.100k.bin]}"
done
echo
echo "hits vs squid, 1 KiB:        $(ratio "${RPS[web_proxy_hit.1k.bin]}" "${RPS[squid.1k.bin]}")x  (target >= 1)"
echo "hits vs squid, 100 KiB:      $(ratio "${RPS[web_proxy_hit.100k.bin]}" "${RPS[squid.100k.bin]}")x  (target >= 2)"
echo "misses vs tinyproxy, 1 KiB:  $(ratio "${RPS[web_proxy_miss.1k.bin]}" "${RPS[tinyproxy.1k.bin]}")x  (target >= 3)"
echo "misses vs tinyproxy, 100 KiB: $(ratio "${RPS[web_proxy_miss.100k.bin]}" "${RPS[tinyproxy.100k.bin]}")x  (target >= 3)"
echo "web_proxy peak RSS: hit $(( $(rss_kb "$HIT_PID") / 1024 )) MB, miss $(( $(rss_kb "$MISS_PID") / 1024 )) MB (target < 50 MB)"
