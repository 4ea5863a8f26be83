//! icmp_ping and traceroute, run for real: on loopback (traceroute's UDP
//! probes need no privilege; ping sockets are tried inside `unshare -rn`, a
//! user+network namespace of the test's own), and across the three-host
//! topology of scripts/three_hosts.sh, next to iputils `ping` and
//! `traceroute`, which must see the same hops and the same ICMP errors.
//!
//! The topology tests need root, `ip` and `nft` (and the iputils tools for
//! the comparisons): they skip on a developer's machine without them and
//! fail under CI=true. Each builds its own namespaces, named after the test
//! process and the test (`si-PID-NAME-a`, `-r`, `-b`), so they run in
//! parallel, and removes them with `three_hosts.sh down --force`.
//!
//! Linux only, like the programs (the ping socket and the IP_RECVERR error
//! queue are Linux's; elsewhere they print "Linux only").
#![cfg(target_os = "linux")]

mod common;

use std::path::Path;

use common::{Output, have_tool, run, run_with_env};

const ICMP_PING: &str = env!("CARGO_BIN_EXE_icmp_ping");
const TRACEROUTE: &str = env!("CARGO_BIN_EXE_traceroute");
const LAB: &str = env!("CARGO_BIN_EXE_lab");

/// The far host and the router's two addresses, as three_hosts.sh sets them.
const HOST_B: &str = "10.20.2.2";
const ROUTER_A_SIDE: &str = "10.20.1.1";

/// True when running as root; otherwise the test is reported as skipped
/// (and fails under CI=true).
fn root() -> bool {
    common::can_run(&["root"])
}

/// True if this machine lets the test make a user+network namespace
/// (`unshare -rn`); some containers forbid it.
fn can_unshare() -> bool {
    if !have_tool("unshare") {
        return false;
    }
    let ok = run("unshare", &["-rn", "true"], b"").status.success();
    if !ok {
        common::skip("needs `unshare -rn` (a user+network namespace), which this machine forbids");
    }
    ok
}

/// Runs `program args` inside `unshare -rn` with loopback up, and with
/// net.ipv4.ping_group_range set to `range` in that namespace only (None
/// keeps a new namespace's default, "1 0": nobody).
fn in_unshared(range: Option<&str>, program: &str, args: &[&str]) -> Output {
    let set = range
        .map(|r| format!("sysctl -qw net.ipv4.ping_group_range='{r}' && "))
        .unwrap_or_default();
    let script = format!("ip link set lo up && {set}exec \"$0\" \"$@\"");
    let mut all = vec!["-rn", "sh", "-c", &script, program];
    all.extend_from_slice(args);
    run("unshare", &all, b"")
}

#[test]
fn ping_socket_on_loopback_replies_with_ttl_and_pings_summary() {
    if !can_unshare() {
        return;
    }
    let out = in_unshared(
        Some("0 0"),
        ICMP_PING,
        &["-c", "3", "-i", "20ms", "127.0.0.1"],
    );
    assert_eq!(out.code(), Some(0), "{out:?}");
    for seq in 1..=3 {
        assert!(
            out.stdout.contains(&format!(
                "64 bytes from 127.0.0.1: icmp_seq={seq} ttl=64 time="
            )),
            "{}",
            out.stdout
        );
    }
    assert!(out.stdout.contains("ping socket"), "{}", out.stdout);
    assert!(
        out.stdout
            .contains("3 packets transmitted, 3 received, 0% packet loss"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("rtt min/avg/max/mdev = "),
        "{}",
        out.stdout
    );
}

/// Bad input: a ping_group_range that allows nobody ("1 0", a new
/// namespace's default and this machine's own), for root too. The hint names all three ways out.
#[test]
fn a_forbidding_ping_group_range_gets_the_three_ways_out() {
    if !can_unshare() {
        return;
    }
    let out = in_unshared(None, ICMP_PING, &["-c", "1", "127.0.0.1"]);
    common::assert_error_and_hint(&out, "net.ipv4.ping_group_range");
    assert!(out.stderr.contains("Permission denied"), "{}", out.stderr);
    for way in [
        "sysctl -w net.ipv4.ping_group_range=",
        "--raw",
        "unshare -rn",
    ] {
        assert!(out.stderr.contains(way), "no {way:?} in {}", out.stderr);
    }
    let out = in_unshared(None, TRACEROUTE, &["--icmp", "127.0.0.1"]);
    common::assert_error_and_hint(&out, "ping_group_range");
}

#[test]
fn raw_socket_shows_the_ip_header_of_each_reply() {
    if !root() {
        return;
    }
    let out = run(
        ICMP_PING,
        &["--raw", "-c", "2", "-i", "20ms", "127.0.0.1"],
        b"",
    );
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert!(out.stdout.contains("icmp_seq=2 ttl=64"), "{}", out.stdout);
    assert!(
        out.stdout
            .contains("IP header: version 4, header 20 bytes, total 84 bytes"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("127.0.0.1 -> 127.0.0.1"),
        "{}",
        out.stdout
    );
}

/// Bad inputs: a count of 0, a payload too short for the timestamp, a TTL
/// of 0 and of 256, a name that does not resolve, an IPv6 address.
#[test]
fn bad_arguments_are_refused() {
    for args in [
        &["-c", "0", "127.0.0.1"][..],
        &["-s", "8", "127.0.0.1"],
        &["--ttl", "0", "127.0.0.1"],
        &["--ttl", "256", "127.0.0.1"],
    ] {
        let out = run(ICMP_PING, args, b"");
        assert_eq!(out.code(), Some(2), "{args:?}: {}", out.stderr);
    }
    let out = run(TRACEROUTE, &["--max-hops", "0", "127.0.0.1"], b"");
    assert_eq!(out.code(), Some(2), "{}", out.stderr);
    let out = run(ICMP_PING, &["no-such-host.invalid"], b"");
    common::assert_error_and_hint(&out, "could not be turned into an IP address");
    let out = run(TRACEROUTE, &["::1"], b"");
    common::assert_error_and_hint(&out, "IPv4");
}

/// UDP probes need no privilege: on loopback the first probe reaches the
/// host, whose port unreachable ends the trace at hop 1.
#[test]
fn traceroute_on_loopback_ends_at_hop_one() {
    let out = run(TRACEROUTE, &["-w", "2s", "127.0.0.1"], b"");
    assert_eq!(out.code(), Some(0), "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", out.stdout);
    assert!(lines[1].starts_with(" 1  127.0.0.1  "), "{}", lines[1]);
    assert_eq!(lines[1].matches(" ms").count(), 3, "{}", lines[1]);
}

/// The three-host topology of scripts/three_hosts.sh under names unique to
/// one test; `down --force` when dropped, even if the test failed.
struct ThreeHosts {
    a: String,
    r: String,
    b: String,
}

impl ThreeHosts {
    /// Brings it up with the kernel's ICMP rate limit off in the router and
    /// host-b, so that back-to-back traces get every answer (the default
    /// allows a burst of 6 errors, then 1 a second, per destination).
    fn up(test: &str) -> ThreeHosts {
        remove_stale_namespaces();
        let id = std::process::id();
        let hosts = ThreeHosts {
            a: format!("si-{id}-{test}-a"),
            r: format!("si-{id}-{test}-r"),
            b: format!("si-{id}-{test}-b"),
        };
        let out = hosts.script(&["up"]);
        assert_eq!(out.code(), Some(0), "three_hosts.sh up: {out:?}");
        for ns in [&hosts.r, &hosts.b] {
            let out = run(
                "ip",
                &[
                    "netns",
                    "exec",
                    ns,
                    "sysctl",
                    "-qw",
                    "net.ipv4.icmp_ratelimit=0",
                ],
                b"",
            );
            assert!(out.status.success(), "{out:?}");
        }
        hosts
    }

    fn script(&self, args: &[&str]) -> Output {
        let script = format!("{}/scripts/three_hosts.sh", env!("CARGO_MANIFEST_DIR"));
        let mut all = vec![script.as_str()];
        all.extend_from_slice(args);
        let env = [
            ("LAB_HOST_A", self.a.as_str()),
            ("LAB_ROUTER", self.r.as_str()),
            ("LAB_HOST_B", self.b.as_str()),
        ];
        run_with_env("bash", &all, b"", &env)
    }

    /// Runs `program args` on host-a.
    fn on_a(&self, program: &str, args: &[&str]) -> Output {
        let mut all = vec!["netns", "exec", &self.a, program];
        all.extend_from_slice(args);
        run("ip", &all, b"")
    }
}

impl Drop for ThreeHosts {
    fn drop(&mut self) {
        let _ = self.script(&["down", "--force"]);
    }
}

/// Removes the namespaces of earlier runs killed before their Drop ran.
fn remove_stale_namespaces() {
    let list = run("ip", &["netns", "list"], b"").stdout;
    for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
        let Some(pid) = name.strip_prefix("si-").and_then(|r| r.split('-').next()) else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = run("ip", &["netns", "del", name], b"");
        }
    }
}

fn topology_tools() -> bool {
    root() && have_tool("ip") && have_tool("nft")
}

/// Each hop of a `traceroute -n` listing: its number and every address in it.
fn hops(listing: &str) -> Vec<(u32, Vec<String>)> {
    listing
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let hop = words.next()?.parse().ok()?;
            let addrs = words
                .filter(|w| w.parse::<std::net::Ipv4Addr>().is_ok())
                .map(str::to_string)
                .collect();
            Some((hop, addrs))
        })
        .collect()
}

#[test]
fn traceroute_matches_iputils_traceroute_across_the_router() {
    if !topology_tools() || !have_tool("traceroute") {
        return;
    }
    let hosts = ThreeHosts::up("trace");
    for icmp in [false, true] {
        let (ours, theirs) = if icmp {
            (
                hosts.on_a(TRACEROUTE, &["--icmp", HOST_B]),
                hosts.on_a("traceroute", &["-n", "-I", HOST_B]),
            )
        } else {
            (
                hosts.on_a(TRACEROUTE, &[HOST_B]),
                hosts.on_a("traceroute", &["-n", HOST_B]),
            )
        };
        assert_eq!(ours.code(), Some(0), "icmp={icmp}: {ours:?}");
        assert_eq!(theirs.code(), Some(0), "icmp={icmp}: {theirs:?}");
        let expected = vec![
            (1, vec![ROUTER_A_SIDE.to_string()]),
            (2, vec![HOST_B.to_string()]),
        ];
        assert_eq!(
            hops(&ours.stdout),
            expected,
            "ours, icmp={icmp}: {}",
            ours.stdout
        );
        assert_eq!(
            hops(&theirs.stdout),
            expected,
            "iputils, icmp={icmp}: {}",
            theirs.stdout
        );
        for line in ours.stdout.lines().skip(1) {
            assert_eq!(line.matches(" ms").count(), 3, "three RTTs: {line}");
        }
    }
}

/// Bad input: a router that rejects echo requests. With --icmp both
/// traceroutes end at hop 2 with the router's "!X" (admin prohibited, 3/13).
#[test]
fn traceroute_icmp_marks_a_rejecting_router_like_iputils() {
    if !topology_tools() || !have_tool("traceroute") {
        return;
    }
    let hosts = ThreeHosts::up("reject");
    assert!(hosts.script(&["icmp", "reject"]).status.success());
    let ours = hosts.on_a(TRACEROUTE, &["--icmp", HOST_B]);
    let theirs = hosts.on_a("traceroute", &["-n", "-I", HOST_B]);
    for out in [&ours, &theirs] {
        assert_eq!(
            hops(&out.stdout),
            vec![
                (1, vec![ROUTER_A_SIDE.to_string()]),
                (2, vec![ROUTER_A_SIDE.to_string()])
            ],
            "{}",
            out.stdout
        );
        let hop2 = out.stdout.lines().nth(2).unwrap_or_default();
        assert_eq!(hop2.matches(" ms !X").count(), 3, "{}", out.stdout);
    }
}

#[test]
fn icmp_ping_errors_match_iputils_ping() {
    if !topology_tools() || !have_tool("ping") {
        return;
    }
    let hosts = ThreeHosts::up("ping");
    // Across the router: the reply arrives with TTL 64 - 1 = 63.
    let out = hosts.on_a(ICMP_PING, &["-c", "2", "-i", "20ms", HOST_B]);
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert!(
        out.stdout
            .contains(&format!("64 bytes from {HOST_B}: icmp_seq=1 ttl=63")),
        "{}",
        out.stdout
    );
    let theirs = hosts.on_a("ping", &["-c", "1", HOST_B]);
    assert!(theirs.stdout.contains("ttl=63"), "{}", theirs.stdout);
    // Bad inputs: a network nobody routes (Net Unreachable from the router,
    // 3/0), a TTL that dies at the router (Time Exceeded, 11/0), a host that
    // does not exist on host-b's subnet (Host Unreachable, 3/1), and an echo
    // request the router's firewall rejects (admin prohibited, 3/13). (A
    // Port Unreachable answers UDP, not ping: the traceroute test has it.)
    // The net unreachable goes first: the router sends it from the route
    // lookup (ip_error), which has its own limit of one a second per
    // sender, sharing its tokens with the ICMP limit turned off above.
    let cases = [
        (
            vec!["10.20.3.3"],
            "Destination Net Unreachable",
            "(type 3, code 0)",
        ),
        (
            vec!["-t", "1", HOST_B],
            "Time to live exceeded",
            "(type 11, code 0)",
        ),
        // No host answers ARP for 10.20.2.9: after about 3 s the router gives up.
        (
            vec!["-W", "5s", "10.20.2.9"],
            "Destination Host Unreachable",
            "(type 3, code 1)",
        ),
        (vec![HOST_B], "Packet filtered", "(type 3, code 13)"),
    ];
    for (i, (args, words, type_code)) in cases.iter().enumerate() {
        if i == 3 {
            assert!(hosts.script(&["icmp", "reject"]).status.success());
        }
        let mut ours_args = vec!["-c", "1"];
        ours_args.extend(args);
        let ours = hosts.on_a(ICMP_PING, &ours_args);
        let theirs = hosts.on_a("ping", &ours_args);
        let from = format!("From {ROUTER_A_SIDE} icmp_seq=1 {words}");
        assert!(
            ours.stdout.contains(&from) && ours.stdout.contains(type_code),
            "ours {args:?}: {}",
            ours.stdout
        );
        assert!(
            ours.stdout.contains("+1 errors, 100% packet loss"),
            "{}",
            ours.stdout
        );
        common::assert_error_and_hint(&ours, "ICMP errors came back");
        if i != 0 {
            // (iputils ping comes second, within the second of ip_error's limit)
            assert!(
                theirs.stdout.contains(&from),
                "iputils {args:?}: {}",
                theirs.stdout
            );
        }
    }
}

#[test]
fn a_router_that_drops_icmp_makes_stars_and_timeouts() {
    if !topology_tools() {
        return;
    }
    let hosts = ThreeHosts::up("drop");
    assert!(hosts.script(&["icmp", "drop"]).status.success());
    let out = hosts.on_a(TRACEROUTE, &["-m", "2", "-w", "200ms", HOST_B]);
    assert_eq!(
        hops(&out.stdout),
        vec![(1, vec![]), (2, vec![])],
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains(" 1  * * *"), "{}", out.stdout);
    common::assert_error_and_hint(&out, "firewall");
    let out = hosts.on_a(ICMP_PING, &["-c", "1", "-W", "200ms", HOST_B]);
    assert!(
        out.stdout.contains("no answer to icmp_seq=1"),
        "{}",
        out.stdout
    );
    common::assert_error_and_hint(&out, "no echo reply and no ICMP error at all");
    // allow puts it back.
    assert!(hosts.script(&["icmp", "allow"]).status.success());
    let out = hosts.on_a(ICMP_PING, &["-c", "1", HOST_B]);
    assert_eq!(out.code(), Some(0), "{out:?}");
}

/// 30% loss on the router, one direction: ping's loss figure is about 30%.
/// nftables' numgen random cannot be seeded, so the tolerance is wide:
/// 12 points is more than 3.5 standard deviations of 200 pings.
#[test]
fn router_loss_shows_as_the_configured_fraction() {
    if !topology_tools() {
        return;
    }
    let hosts = ThreeHosts::up("loss");
    let set = hosts.script(&["loss", "30%"]);
    assert!(set.stdout.contains("random, not seeded"), "{set:?}");
    let out = hosts.on_a(ICMP_PING, &["-c", "200", "-i", "2ms", "-W", "50ms", HOST_B]);
    let line = out
        .stdout
        .lines()
        .find(|l| l.contains("packet loss"))
        .unwrap_or_else(|| panic!("no summary: {out:?}"));
    let loss: f64 = line
        .split(", ")
        .find_map(|part| part.strip_suffix("% packet loss"))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no loss in {line:?}"));
    assert!(
        (18.0..=42.0).contains(&loss),
        "loss {loss}% for a configured 30%: {line}"
    );
    assert!(hosts.script(&["loss", "0"]).status.success());
    let out = hosts.on_a(ICMP_PING, &["-c", "20", "-i", "2ms", HOST_B]);
    assert!(
        out.stdout.contains("20 received, 0% packet loss"),
        "{}",
        out.stdout
    );
}

/// Bad input: `down` while a program still runs inside a namespace. It
/// refuses and names it; `down --force` ends it; nothing is left behind.
#[test]
fn three_hosts_down_ends_what_runs_inside_and_leaves_nothing() {
    if !topology_tools() {
        return;
    }
    let hosts = ThreeHosts::up("down");
    let status = hosts.script(&["status"]);
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert!(status.stdout.contains("forwarding 1"), "{}", status.stdout);
    let mut sleeper = std::process::Command::new("ip")
        .args(["netns", "exec", &hosts.b, "sleep", "60"])
        .spawn()
        .expect("start sleep in host-b");
    let pid = sleeper.id();
    // Wait (bounded) until the sleeper is inside the namespace.
    let inside = || run("ip", &["netns", "pids", &hosts.b], b"").stdout;
    let deadline = std::time::Instant::now() + common::WAIT;
    while inside().trim().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let refused = hosts.script(&["down"]);
    assert_eq!(refused.code(), Some(1), "{refused:?}");
    assert!(
        refused.stderr.contains("sleep 60") && refused.stderr.contains("--force"),
        "{}",
        refused.stderr
    );
    let forced = hosts.script(&["down", "--force"]);
    assert_eq!(forced.code(), Some(0), "{forced:?}");
    // The sleeper was ended by a signal, well before its 60 seconds.
    let deadline = std::time::Instant::now() + common::WAIT;
    let ended = loop {
        match sleeper.try_wait().expect("try_wait") {
            Some(status) => break Some(status),
            None if std::time::Instant::now() > deadline => break None,
            None => std::thread::sleep(std::time::Duration::from_millis(10)),
        }
    };
    if ended.is_none() {
        let _ = sleeper.kill();
    }
    assert!(
        ended.is_some_and(|s| s.code().is_none()),
        "pid {pid} still ran after down --force: {ended:?}"
    );
    let left = run("ip", &["netns", "list"], b"").stdout;
    for ns in [&hosts.a, &hosts.r, &hosts.b] {
        assert!(!left.contains(ns.as_str()), "{ns} left behind: {left}");
    }
    assert_eq!(hosts.script(&["status"]).code(), Some(1));
    assert_eq!(
        hosts.script(&["down"]).code(),
        Some(0),
        "a second down is harmless"
    );
}

/// Bad inputs to the script: no action, an unknown one, a loss of 101% or
/// "lots", an unknown ICMP rule; each exits 2 before needing root.
#[test]
fn three_hosts_usage_errors_exit_2() {
    let script = format!("{}/scripts/three_hosts.sh", env!("CARGO_MANIFEST_DIR"));
    for args in [
        &[][..],
        &["sideways"],
        &["loss", "101%"],
        &["loss", "lots"],
        &["icmp", "maybe"],
        &["down", "--now"],
    ] {
        let mut all = vec![script.as_str()];
        all.extend_from_slice(args);
        let out = run("bash", &all, b"");
        assert_eq!(out.code(), Some(2), "{args:?}: {out:?}");
        assert!(
            out.stderr.contains("usage: three_hosts.sh"),
            "{}",
            out.stderr
        );
    }
}

/// The worksheet's experiments (`lab run ...`) pass as root; as another
/// user they say "not checked" for every observation and never fail.
#[test]
fn lab_experiments_pass_as_root_and_say_not_checked_otherwise() {
    let names = [
        "ttl-one-router",
        "trace-port-unreachable",
        "icmp-dropped",
        "router-loss",
        "ping-without-root",
    ];
    // One at a time: each builds its own topology, within the fixture's wait.
    if topology_tools() {
        let mut all = String::new();
        for name in names {
            let out = run(LAB, &["run", name], b"");
            assert_eq!(out.code(), Some(0), "{}{}", out.stdout, out.stderr);
            assert!(out.stdout.contains("verdict: PASS ("), "{}", out.stdout);
            assert!(!out.stdout.contains("not checked"), "{}", out.stdout);
            all += &out.stdout;
        }
        for seen in [
            "saw:  From 10.20.1.1 icmp_seq=1 Time to live exceeded (type 11, code 0)",
            "saw:   2  10.20.2.2  ",
            "saw:   1  * * *",
            "% packet loss",
        ] {
            assert!(all.contains(seen), "no {seen:?} in {all}");
        }
    }
    if root() && have_tool("setpriv") {
        let mut as_nobody = vec![
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            LAB,
            "run",
        ];
        as_nobody.extend(names);
        let out = run("setpriv", &as_nobody, b"");
        assert_eq!(out.code(), Some(0), "{}{}", out.stdout, out.stderr);
        assert_eq!(
            out.stdout.matches("skip: not checked:").count(),
            8,
            "{}",
            out.stdout
        );
        assert!(!out.stdout.contains("FAIL"), "{}", out.stdout);
    }
}
