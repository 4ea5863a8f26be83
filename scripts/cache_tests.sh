#!/usr/bin/env bash
# Runs the public HTTP caching test suite (http-cache-tests, the suite behind
# cache-tests.fyi) against web_proxy as a forward proxy, and prints the pass
# counts by kind of test.
#
#   scripts/cache_tests.sh            # build, install, run, summarise
#   scripts/cache_tests.sh --verbose  # also list every failing test
#
# How: the suite's origin server (node, port 8000) and web_proxy (port 8888)
# run inside a network namespace of their own, created here and removed on
# exit, so the fixed ports meet nothing else on this machine. The suite's
# client sends every request through the proxy: the suite's node-fetch with
# an http.Agent that hands each request to the proxy
# in absolute form (GET http://localhost:8000/...), never inside a CONNECT
# tunnel.
#
# Exit status: 0 if no required test fails, not counting the Surrogate-Control
# and CDN-Cache-Control groups (for reverse proxies and CDNs, which a forward
# proxy is not), the Age tests whose expectation the suite reversed after the
# version on npm, and the tests whose origin hangs up (no proxy can carry the
# origin's request count in its 502); 1 otherwise; 2 if it cannot run (no node or npm,
# not root for the namespace). Needs root (ip netns), node >= 18 and npm:
# `apt-get install nodejs npm`.
set -euo pipefail

SUITE_VERSION=0.4.5 # http-cache-tests on npm, pinned
VERBOSE=${1:-}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$ROOT/target/cache-tests
NS=web_proxy_cache_tests_$$

die() {
	echo "error: $1" >&2
	echo "hint: $2" >&2
	exit 2
}

command -v node >/dev/null && command -v npm >/dev/null ||
	die "node and npm are not installed" "apt-get install nodejs npm (node 18 or later)"
[[ $(id -u) == 0 ]] || die "the network namespace needs root" "run it with sudo"
command -v ip >/dev/null || die "ip (iproute2) is not installed" "apt-get install iproute2"

# The debug build: what `cargo test` already built, and fast enough here.
# sudo resets PATH, so cargo may be missing: then use the build as it is.
PROXY=$ROOT/target/debug/web_proxy
if command -v cargo >/dev/null; then
	cargo build --quiet --bin web_proxy --manifest-path "$ROOT/Cargo.toml"
elif [[ ! -x $PROXY ]]; then
	die "cargo is not on PATH (sudo resets it) and $PROXY is not built" \
		"run 'cargo build --bin web_proxy' first, as yourself, then 'sudo $0' again"
fi

mkdir -p "$WORK"
if [[ ! -f $WORK/node_modules/http-cache-tests/package.json ]] ||
	! grep -q "\"version\": \"$SUITE_VERSION\"" "$WORK/node_modules/http-cache-tests/package.json"; then
	(cd "$WORK" && npm install --silent --no-audit --no-fund \
		"http-cache-tests@$SUITE_VERSION" >/dev/null)
fi
SUITE=$WORK/node_modules/http-cache-tests

# The client: the suite's own runner and its own fetch (node-fetch), given
# an http.Agent that sends every request to the proxy in absolute form
# (`GET http://localhost:8000/test/... HTTP/1.1`), the way a browser talks to
# its proxy. (Node's built-in fetch would need an undici ProxyAgent with
# proxyTunnel: false, and adds Cache-Control: no-cache to every conditional
# request, as the Fetch standard says a browser must: that would hide the
# cache's answers to the suite's conditional requests.)
cat >"$SUITE/run-through-proxy.mjs" <<'EOF'
import http from 'http'
import fetch from 'node-fetch'
import { runTests, getResults } from './client/runner.mjs'
import tests from './tests/index.mjs'
import surrogate from './tests/surrogate-control.mjs'

const [proxyHost, proxyPort] = process.env.PROXY.split(':')
class ToProxy extends http.Agent {
  addRequest (request, options) {
    // The request line is written later, from request.path: make it the
    // absolute form, and connect to the proxy instead of the origin.
    request.path = `http://${options.host}:${options.port}${request.path}`
    super.addRequest(request, { ...options, host: proxyHost, port: proxyPort })
  }
}
const agent = new ToProxy({ keepAlive: true })
tests.push(surrogate)
await runTests(tests, (url, init = {}) => fetch(url, { ...init, agent }), false, process.env.BASE_URL)
const results = getResults()
const summary = []
for (const suite of tests) {
  for (const test of suite.tests) {
    if (!(test.id in results)) continue
    const result = results[test.id]
    summary.push({
      id: test.id,
      suite: suite.id || suite.name,
      kind: test.kind || 'required',
      pass: result === true,
      // The origin hangs up instead of answering: through a proxy the
      // client sees the proxy's 502/504, which cannot carry the origin's
      // request count the check looks for.
      disconnect: test.requests.some(r => r.disconnect),
      detail: result === true ? '' : String(result[1] || result[0])
    })
  }
}
agent.destroy()
console.log(JSON.stringify(summary))
EOF

cleanup() {
	ip netns pids "$NS" 2>/dev/null | xargs -r kill 2>/dev/null || true
	ip netns delete "$NS" 2>/dev/null || true
}
trap cleanup EXIT
ip netns add "$NS"
ip netns exec "$NS" ip link set lo up

RESULTS=$WORK/results.json
LOG=$WORK/web_proxy.log
ip netns exec "$NS" bash -c '
	cd "$1"
	npm_config_protocol=http npm_config_port=8000 npm_config_pidfile=/dev/null \
		node server/server.mjs >"$2.origin" 2>&1 &
	"$3" --port 8888 --quiet >"$2" 2>&1 &
	# Both listen within a second; wait for the ports, not a fixed time.
	up() { (exec 3<>/dev/tcp/127.0.0.1/8000 && exec 4<>/dev/tcp/127.0.0.1/8888) 2>/dev/null; }
	for _ in $(seq 100); do up && break; sleep 0.1; done
	up || { echo "error: the suite server or web_proxy did not start" >&2; cat "$2.origin" "$2" >&2; exit 2; }
	PROXY=127.0.0.1:8888 BASE_URL=http://localhost:8000 \
		node --no-warnings run-through-proxy.mjs
' _ "$SUITE" "$LOG" "$PROXY" >"$RESULTS"

node --no-warnings - "$RESULTS" "$VERBOSE" <<'EOF'
const fs = require('fs')
const results = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'))
const verbose = process.argv[3] === '--verbose'
// Groups that apply to reverse proxies and CDNs only.
const exempt = r => /surrogate|cdn/i.test(r.suite)
// Tests whose expectation the suite reversed after 0.4.5, following RFC
// 9111 §5.1 (the first member of the first Age line counts; an invalid
// value is ignored, i.e. Age 0): the published suite expects what
// web_proxy does. 0.4.5 is the last version on npm.
const superseded = new Set([
  'age-parse-nonnumeric', 'age-parse-negative', 'age-parse-float',
  'age-parse-prefix-twoline', 'age-parse-dup-0', 'age-parse-dup-0-twoline',
  'age-parse-dup-old', 'age-parse-parameter', 'age-parse-numeric-parameter'
])
const count = {}
const lines = []
for (const r of results) {
  const k = count[r.kind] ||= { pass: 0, fail: 0, aside: 0 }
  const why = exempt(r) ? 'CDN/Surrogate group'
    : superseded.has(r.id) ? 'expectation reversed after 0.4.5 (RFC 9111 §5.1)'
      : r.disconnect ? 'the origin hangs up: a proxy can only answer 502/504'
        : ''
  if (r.pass) k.pass++
  else if (why) k.aside++
  else k.fail++
  if (!r.pass && (verbose || r.kind === 'required')) {
    lines.push(`  ${r.kind} ${r.suite}/${r.id}: ${r.detail}${why ? `  [not counted: ${why}]` : ''}`)
  }
}
for (const kind of ['required', 'optimal', 'check']) {
  const k = count[kind] || { pass: 0, fail: 0, aside: 0 }
  const [yes, no] = kind === 'check' ? ['yes', 'no'] : ['passed', 'failed']
  console.log(`${kind}: ${k.pass} ${yes}, ${k.fail} ${no}` +
    (k.aside ? `, ${k.aside} not counted (see below)` : ''))
}
if (lines.length) console.log(lines.join('\n'))
process.exit((count.required || { fail: 0 }).fail === 0 ? 0 : 1)
EOF
