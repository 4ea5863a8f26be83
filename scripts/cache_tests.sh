#!/usr/bin/env bash
# Runs the public HTTP caching test suite (http-tests/cache-tests, the suite
# behind cache-tests.fyi) against web_proxy as a forward proxy, and prints
# the pass counts by kind of test.
#
#   scripts/cache_tests.sh            # build, install, run, summarise
#   scripts/cache_tests.sh --verbose  # also list every failing test
#
# The suite is vendored in scripts/cache-tests/ (its repository at a pinned
# commit, see the README there); only its one npm dependency, undici, is
# installed from the npm registry, into target/cache-tests/.
#
# How: the suite's origin server (node, port 8000) and web_proxy (port 8888)
# run inside a network namespace of their own, created here and removed on
# exit, so the fixed ports meet nothing else on this machine. The suite's
# client sends every request through the proxy in absolute form
# (GET http://localhost:8000/test/... HTTP/1.1), the way a browser talks to
# its proxy, never inside a CONNECT tunnel: undici's ProxyAgent with
# proxyTunnel: false, and the same rewrite for the interim tests, which
# bring a dispatcher of their own to collect the 1xx responses.
#
# Tests are graded by the suite's own rules (test-engine/lib/results.mjs),
# as on cache-tests.fyi: one whose setup step failed, or that depends on a
# test that did not pass, is "not run", neither passed nor failed.
#
# Exit status: 0 if no required test fails, not counting the
# CDN-Cache-Control group (for reverse proxies and CDNs, which a forward
# proxy is not); 1 otherwise; 2 if it cannot run (no node or npm, node too
# old, not root for the namespace). Needs root (ip netns), node >= 20.18.1 and npm:
# `apt-get install nodejs npm`.
set -euo pipefail

UNDICI_VERSION=7.30.2 # the suite's only run-time dependency (^7.4.0), pinned
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
	die "node and npm are not installed" "apt-get install nodejs npm (node 20.18.1 or later)"
# undici 7, which the suite's client is written for (its interim tests use
# undici 7's handler API), needs node 20.18.1 or later; Debian 12 has 18.
node -e 'const [a, b, c] = process.versions.node.split(".").map(Number)
process.exit(a > 20 || (a === 20 && (b > 18 || (b === 18 && c >= 1))) ? 0 : 1)' ||
	die "node $(node --version) is older than 20.18.1, which the suite's client (undici 7) needs" \
		"install node 20 or later (Debian 13's nodejs, or the NodeSource packages)"
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

# A fresh copy of the vendored suite under target/, so that node finds
# undici in target/cache-tests/node_modules (ES modules resolve packages
# from the importing file's folder upwards, and NODE_PATH does not apply).
mkdir -p "$WORK"
if [[ ! -f $WORK/node_modules/undici/package.json ]] ||
	! grep -q "\"version\": \"$UNDICI_VERSION\"" "$WORK/node_modules/undici/package.json"; then
	rm -rf "$WORK/node_modules" "$WORK/package.json" "$WORK/package-lock.json"
	(cd "$WORK" && npm install --silent --no-audit --no-fund \
		"undici@$UNDICI_VERSION" >/dev/null) ||
		die "npm could not install undici@$UNDICI_VERSION" "is the npm registry reachable? (npm ping)"
fi
SUITE=$WORK/suite
rm -rf "$SUITE"
cp -R "$ROOT/scripts/cache-tests" "$SUITE"

# The client: the suite's own runner, and undici's fetch routed through the
# proxy. fetching.mjs already sends Pragma and Cache-Control of its own on
# every request, so fetch adds no Cache-Control: no-cache to the
# conditional ones (the Fetch standard's rule for a browser) that would
# hide the cache's answers.
cat >"$SUITE/run-through-proxy.mjs" <<'EOF'
import * as undici from 'undici'
import { runTests, getResults } from './test-engine/client/runner.mjs'
import { determineTestResult, resultTypes } from './test-engine/lib/results.mjs'
import tests from './tests/index.mjs'

const proxy = `http://${process.env.PROXY}`
const toProxy = new undici.ProxyAgent({ uri: proxy, proxyTunnel: false })
// The interim tests pass a dispatcher of their own (an undici Agent with an
// interceptor that collects the 1xx responses): rewrite each request to
// the absolute form and send it to the proxy through that dispatcher.
const routed = dispatcher => ({
  dispatch (opts, handler) {
    const headers = { host: new URL(opts.origin).host, ...opts.headers }
    return dispatcher.dispatch({ ...opts, origin: proxy, path: opts.origin + opts.path, headers }, handler)
  }
})
globalThis.fetch = (url, init = {}) =>
  undici.fetch(url, { ...init, dispatcher: init.dispatcher ? routed(init.dispatcher) : toProxy })

await runTests(tests, false, process.env.BASE_URL)
const results = getResults()
// Graded as cache-tests.fyi grades: the suite's own determineTestResult
// (pass, fail, optional_fail, yes, no; setup_fail when a step the test only
// sets up went wrong; dependency_fail when a test it depends on did not
// pass; harness_fail for a timeout; retry when a request reached the
// origin twice).
const grade = Object.fromEntries(Object.entries(resultTypes).map(([name, type]) => [type, name]))
const summary = []
for (const suite of tests) {
  for (const test of suite.tests) {
    if (!(test.id in results)) continue
    const result = results[test.id]
    summary.push({
      id: test.id,
      suite: suite.id,
      kind: test.kind || 'required',
      grade: grade[determineTestResult(tests, test.id, results)],
      depends_on: test.depends_on || [],
      detail: result === true ? '' : `${result[0]}: ${result[1]}`
    })
  }
}
await toProxy.close()
console.log(JSON.stringify(summary))
process.exit(0)
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
		node test-engine/server/server.mjs >"$2.origin" 2>&1 &
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
// The last line: the suite's engine may log a line of its own before it.
const text = fs.readFileSync(process.argv[2], 'utf8').trim().split('\n')
const results = JSON.parse(text[text.length - 1])
const verbose = process.argv[3] === '--verbose'
// Tests that cannot apply to a forward proxy, with the reason. Only the
// CDN-Cache-Control group: the header is addressed to a CDN or reverse
// proxy the origin runs (RFC 9213 §2), and a forward proxy must ignore it.
// (The suite at this commit has no Surrogate-Control tests; the npm 0.4.5
// copy had them, and they are the same family.)
const notApplicable = r => r.suite === 'cdn-cache-control'
  ? 'CDN-Cache-Control is for CDNs and reverse proxies (RFC 9213)'
  : ''
const count = {}
const lines = []
const byId = Object.fromEntries(results.map(r => [r.id, r]))
for (const r of results) {
  const k = count[r.kind] ||= { pass: 0, fail: 0, aside: 0, unrun: 0 }
  const why = notApplicable(r)
  // Not run: the suite grades a test whose setup step failed, or that
  // depends on a test that did not pass, as neither pass nor fail.
  const unrun = r.grade === 'setup_fail' || r.grade === 'dependency_fail'
    ? r.grade === 'setup_fail'
      ? 'not run: a step that only sets the test up failed'
      : 'not run: depends on ' + r.depends_on
        .filter(d => !['pass', 'yes'].includes(byId[d]?.grade))
        .map(d => `${byId[d]?.kind || ''} ${d}`.trim()).join(', ')
    : ''
  if (r.grade === 'pass' || r.grade === 'yes') k.pass++
  else if (why) k.aside++
  else if (unrun) k.unrun++
  else k.fail++
  const pass = r.grade === 'pass' || r.grade === 'yes'
  if (!pass && (verbose || (r.kind === 'required' && !why))) {
    const note = why ? `  [not counted: ${why}]` : unrun ? `  [${unrun}]` : ''
    lines.push(`  ${r.kind} ${r.suite}/${r.id}: ${r.detail}${note}`)
  }
}
for (const kind of ['required', 'optimal', 'check']) {
  const k = count[kind] || { pass: 0, fail: 0, aside: 0, unrun: 0 }
  const [yes, no] = kind === 'check' ? ['yes', 'no'] : ['passed', 'failed']
  console.log(`${kind}: ${k.pass} ${yes}, ${k.fail} ${no}` +
    (k.unrun ? `, ${k.unrun} not run (setup or dependency failed)` : '') +
    (k.aside ? `, ${k.aside} not counted (CDN-Cache-Control)` : ''))
}
if (lines.length) console.log(lines.join('\n'))
process.exit((count.required || { fail: 0 }).fail === 0 ? 0 : 1)
EOF
