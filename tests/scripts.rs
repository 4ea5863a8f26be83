//! scripts/capture.sh, scripts/two_hosts.sh and scripts/firewall.sh, run
//! with bash against the real programs: the captures show the packets the
//! worksheet describes, two namespaces talk across their veth pair, and the
//! firewall's reject reads as "refused" and its drop as a timeout.
//!
//! Most tests need root (tcpdump, namespaces, nftables): they skip when not
//! root on a developer's machine and fail under CI=true. Each namespace test
//! makes its own pair of namespaces with unique names (LAB_A, LAB_B), so the
//! tests can run in parallel and never touch a student's lab-a/lab-b.
//!
//! Linux only: the scripts drive tcpdump on `lo`, `ip netns`, nftables and
//! setpriv (on Windows and macOS they run in WSL2 or a Linux VM).
#![cfg(target_os = "linux")]

mod common;
mod ladder;

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::{Output, Server, WAIT, assert_error_and_hint, run};

const TCP_SERVER: &str = env!("CARGO_BIN_EXE_tcp_server");
const TCP_CLIENT: &str = env!("CARGO_BIN_EXE_tcp_client");
const UDP_SERVER: &str = env!("CARGO_BIN_EXE_udp_server");
const UDP_CLIENT: &str = env!("CARGO_BIN_EXE_udp_client");

fn script(name: &str) -> String {
    format!("{}/scripts/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// The folder cargo built the programs into, for capture.sh's SOCKETLAB_BIN.
fn bin_dir() -> String {
    let dir = Path::new(TCP_SERVER).parent().expect("a folder");
    dir.to_str().expect("a UTF-8 path").to_string()
}

/// How long a script may run before the test gives up on it: capture.sh
/// bounds each of its own waits (10 s), so this only catches a hang.
const SCRIPT_WAIT: Duration = Duration::from_secs(60);

/// Runs `bash scripts/NAME args` with extra environment variables, in a
/// process group of its own. If it hangs, the whole group (the script and
/// the tcpdump and servers it started) gets SIGTERM, which the scripts'
/// EXIT traps clean up after, then SIGKILL: nothing outlives the test.
fn bash(name: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    // Found on the test's own PATH: `env` may give the script another one.
    let mut child = Command::new(bash_path())
        .arg(script(name))
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("bash");
    let stdout = read_all(child.stdout.take().expect("piped"));
    let stderr = read_all(child.stderr.take().expect("piped"));
    let group = format!("-{}", child.id());
    let deadline = Instant::now() + SCRIPT_WAIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
            thread::sleep(Duration::from_secs(1));
            let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
            let _ = child.wait();
            panic!("{name} {args:?} did not exit within {SCRIPT_WAIT:?}");
        }
        thread::sleep(Duration::from_millis(10));
    };
    let stdout_bytes = stdout.recv_timeout(WAIT).expect("stdout");
    Output {
        status,
        stdout: String::from_utf8_lossy(&stdout_bytes).into_owned(),
        stdout_bytes,
        stderr: String::from_utf8_lossy(&stderr.recv_timeout(WAIT).expect("stderr")).into_owned(),
    }
}

fn bash_path() -> String {
    let found = run("sh", &["-c", "command -v bash"], b"");
    assert_ok(&found, "bash");
    found.stdout.trim().to_string()
}

fn read_all(mut pipe: impl Read + Send + 'static) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut all = Vec::new();
        let _ = pipe.read_to_end(&mut all);
        let _ = tx.send(all);
    });
    rx
}

fn assert_ok(out: &Output, what: &str) {
    assert_eq!(
        out.code(),
        Some(0),
        "{what}: stdout {:?} stderr {:?}",
        out.stdout,
        out.stderr
    );
}

/// A temporary folder, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("socketlab-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("a UTF-8 path")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ---- capture.sh -------------------------------------------------------------

#[test]
fn capture_usage_errors_exit_2_before_needing_root() {
    let out = bash("capture.sh", &[], &[]);
    assert_eq!(out.code(), Some(2), "{}", out.stderr);
    assert!(
        out.stderr
            .starts_with("usage: capture.sh SCENARIO [OUTDIR]")
    );

    let out = bash("capture.sh", &["tcp-ping"], &[]);
    assert_eq!(out.code(), Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("unknown scenario 'tcp-ping'"));
    assert!(out.stderr.contains("tcp-echo, udp-echo, tcp-refused"));

    let out = bash("capture.sh", &["--help"], &[]);
    assert_eq!(out.code(), Some(0));
    assert!(out.stdout.starts_with("usage: "));
}

#[test]
fn ladder_py_rejects_bad_arguments_and_files_with_a_message() {
    common::require!("python3");
    let ladder = script("ladder.py");
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    for (args, status, message) in [
        (&["x.pcap", "client"][..], 2, "usage: ladder.py"),
        (&["x.pcap", "client", "server"][..], 2, "needs a port"),
        (
            &["/nonexistent.pcap", "client", "server:1"][..],
            1,
            "cannot read",
        ),
        (
            &[manifest, "client", "server:1"][..],
            1,
            "is not a pcap file",
        ),
    ] {
        let mut all = vec![ladder.as_str()];
        all.extend_from_slice(args);
        let out = run("python3", &all, b"");
        assert_eq!(out.code(), Some(status), "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(message), "{args:?}: {}", out.stderr);
        assert!(!out.stderr.contains("Traceback"), "{}", out.stderr);
    }
}

#[test]
fn capture_says_so_when_not_root_or_the_programs_are_not_built() {
    // capture.sh checks for its tools before it looks for the programs.
    common::require!("root", "setpriv", "tcpdump", "python3", "ss");
    // The same script as an unprivileged user (nobody).
    let path = script("capture.sh");
    let out = run(
        "setpriv",
        &[
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "bash",
            &path,
            "tcp-echo",
            "/tmp",
        ],
        b"",
    );
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("tcpdump needs root") && out.stderr.contains("sudo"),
        "{}",
        out.stderr
    );

    let empty = TempDir::new("no-programs");
    let out = bash(
        "capture.sh",
        &["tcp-echo", empty.path()],
        &[("SOCKETLAB_BIN", empty.path())],
    );
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    // One clear error, at once: not a wait for a server that never started.
    assert_eq!(
        out.stderr.lines().collect::<Vec<_>>(),
        [format!(
            "capture.sh: error: '{}/tcp_server' not found: build the programs first with 'cargo build' (or set SOCKETLAB_BIN)",
            empty.path()
        )],
        "{}",
        out.stderr
    );
}

/// Killed half-way (a client that hangs), capture.sh leaves nothing behind:
/// no tcpdump, no server, no temporary folder. Its programs are stand-ins,
/// a "server" that only prints its first line and a "client" that never ends.
#[test]
fn capture_killed_half_way_leaves_nothing_behind() {
    common::require!("root", "tcpdump", "python3", "ss");
    let dir = TempDir::new("killed");
    let (bin, tmp, out) = (dir.0.join("bin"), dir.0.join("tmp"), dir.0.join("out"));
    for folder in [&bin, &tmp] {
        std::fs::create_dir(folder).expect("folder");
    }
    let port = common::free_tcp_port();
    let started = dir.0.join("client-started");
    for (name, body) in [
        (
            "tcp_server",
            format!("echo 'tcp_server listening on 127.0.0.1:{port} (TCP)'\nexec sleep 600"),
        ),
        (
            "tcp_client",
            format!(": >'{}'\nexec sleep 600", started.display()),
        ),
    ] {
        let path = bin.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("stand-in");
        let made = run("chmod", &["+x", path.to_str().expect("UTF-8")], b"");
        assert_ok(&made, "chmod");
    }
    let mut capture = Command::new("bash")
        .arg(script("capture.sh"))
        .args(["tcp-echo", out.to_str().expect("UTF-8")])
        .env("SOCKETLAB_BIN", &bin)
        .env("TMPDIR", &tmp)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("bash");
    let group = format!("-{}", capture.id());
    let kill_group = |signal: &str| {
        let _ = Command::new("kill")
            .args([signal, "--", &group])
            .stderr(Stdio::null())
            .status();
    };
    let deadline = Instant::now() + WAIT;
    while !started.exists() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    let client_ran = started.exists();
    // What Ctrl-C does in a terminal: signal the whole foreground group.
    kill_group("-TERM");
    let deadline = Instant::now() + WAIT;
    let status = loop {
        match capture.try_wait().expect("try_wait") {
            Some(status) => break Some(status),
            None if Instant::now() > deadline => break None,
            None => thread::sleep(Duration::from_millis(10)),
        }
    };
    kill_group("-KILL");
    let _ = capture.wait();
    assert!(client_ran, "capture.sh never started the client");
    assert!(status.is_some(), "capture.sh did not end on SIGTERM");
    let left: Vec<_> = std::fs::read_dir(&tmp).expect("tmp").collect();
    assert!(left.is_empty(), "capture.sh left {left:?} in TMPDIR");
    // Zombies (state Z) are dead, waiting for init to reap them: not left running.
    let ps = run("ps", &["-e", "-o", "pgid=,stat=,pid=,args="], b"");
    let running: Vec<&str> = ps
        .stdout
        .lines()
        .filter(|l| {
            let mut fields = l.split_whitespace();
            fields.next() == Some(&group[1..]) && !fields.next().is_some_and(|s| s.starts_with('Z'))
        })
        .collect();
    assert!(running.is_empty(), "processes left running: {running:?}");
}

/// Runs capture.sh for `scenario` into a fresh folder and checks both files.
fn capture(scenario: &str) {
    common::require!("root", "tcpdump", "python3", "ss");
    let dir = TempDir::new(scenario);
    let bin = bin_dir();
    let out = bash(
        "capture.sh",
        &[scenario, dir.path()],
        &[("SOCKETLAB_BIN", &bin)],
    );
    assert_ok(&out, scenario);
    assert!(out.stdout.starts_with("wrote "), "{}", out.stdout);

    let pcap = dir.0.join(format!("{scenario}.pcap"));
    let txt_path = dir.0.join(format!("{scenario}.txt"));
    ladder::check_pcap(scenario, &pcap);
    let txt = std::fs::read_to_string(&txt_path).expect("the .txt");
    ladder::check(scenario, &ladder::arrows(&txt));
    ladder::check_ladder_matches_pcap(&txt_path);
    // The packets as tcpdump prints them, with the payload in hex and ASCII.
    assert!(txt.contains("## Packets: tcpdump -r"), "{txt}");
    assert!(txt.contains("\t0x0000:  4500 "), "no hex dump in {txt}");
    assert!(!txt.contains(dir.path()), "temporary paths leak into {txt}");
}

#[test]
fn capture_tcp_echo_shows_handshake_data_and_both_fins() {
    capture("tcp-echo");
}

#[test]
fn capture_udp_echo_shows_two_datagrams() {
    capture("udp-echo");
}

#[test]
fn capture_tcp_refused_shows_the_syn_answered_by_a_rst() {
    capture("tcp-refused");
}

#[test]
fn capture_udp_port_unreachable_shows_the_icmp_error() {
    capture("udp-port-unreachable");
}

#[test]
fn capture_time_service_shows_the_key_exchange() {
    capture("time-service");
}

#[test]
fn capture_http_via_proxy_shows_both_connections() {
    common::require!("curl");
    capture("http-via-proxy");
}

// ---- two_hosts.sh and firewall.sh --------------------------------------------

/// Two namespaces made by two_hosts.sh under names unique to one test, and
/// removed (two_hosts.sh down) when dropped, even if the test fails.
struct TwoHosts {
    a: String,
    b: String,
}

impl TwoHosts {
    fn names(test: &str) -> TwoHosts {
        remove_stale_namespaces();
        let id = std::process::id();
        TwoHosts {
            a: format!("sl-{id}-{test}-a"),
            b: format!("sl-{id}-{test}-b"),
        }
    }

    fn up(test: &str) -> TwoHosts {
        let hosts = TwoHosts::names(test);
        assert_ok(&hosts.script("two_hosts.sh", &["up"]), "two_hosts.sh up");
        hosts
    }

    fn env(&self) -> [(&str, &str); 2] {
        [("LAB_A", &self.a), ("LAB_B", &self.b)]
    }

    fn script(&self, name: &str, args: &[&str]) -> Output {
        bash(name, args, &self.env())
    }

    /// Runs a lab program inside namespace `ns` to completion.
    fn run_in(&self, ns: &str, exe: &str, args: &[&str]) -> Output {
        let mut all = vec!["netns", "exec", ns, exe];
        all.extend_from_slice(args);
        run("ip", &all, b"")
    }

    /// Starts a lab server inside namespace B on port 0.
    fn server_in_b(&self, exe: &str) -> Server {
        Server::start("ip", &["netns", "exec", &self.b, exe, "--port", "0"])
    }
}

impl Drop for TwoHosts {
    fn drop(&mut self) {
        let _ = self.script("two_hosts.sh", &["down", "--force"]);
    }
}

/// Removes the namespaces of earlier test runs that were killed before
/// their `Drop` could run (`sl-PID-...`, whose PID is gone).
fn remove_stale_namespaces() {
    for name in namespaces()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
    {
        let Some(pid) = name.strip_prefix("sl-").and_then(|r| r.split('-').next()) else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = run("ip", &["netns", "del", name], b"");
        }
    }
}

fn namespaces() -> String {
    run("ip", &["netns", "list"], b"").stdout
}

#[test]
fn two_hosts_up_twice_then_down_leaves_nothing() {
    common::require!("root", "ip");
    let hosts = TwoHosts::names("updown");
    for _ in 0..2 {
        let out = hosts.script("two_hosts.sh", &["up"]);
        assert_ok(&out, "two_hosts.sh up");
        assert!(out.stdout.contains("(10.10.0.1, veth-a)"), "{}", out.stdout);
    }
    let status = hosts.script("two_hosts.sh", &["status"]);
    assert_ok(&status, "status");
    assert!(status.stdout.contains("10.10.0.1/24"), "{}", status.stdout);
    assert!(status.stdout.contains("10.10.0.2/24"), "{}", status.stdout);
    // One veth end in each namespace, none on the host.
    let a_links = hosts.run_in(&hosts.a, "ip", &["-br", "link"]).stdout;
    assert_eq!(a_links.matches("veth-a").count(), 1, "{a_links}");
    let b_addrs = hosts.run_in(&hosts.b, "ip", &["-br", "addr"]).stdout;
    assert!(b_addrs.contains("10.10.0.2/24"), "{b_addrs}");
    let host_links = run("ip", &["-br", "link"], b"").stdout;
    assert!(
        !host_links.contains("veth-"),
        "a veth on the host: {host_links}"
    );

    // A server still running in lab-b: down refuses, naming it, and leaves
    // everything up; down --force ends it, then removes the namespaces.
    let mut server = hosts.server_in_b(UDP_SERVER);
    let out = hosts.script("two_hosts.sh", &["down"]);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("processes still run in the namespaces")
            && out
                .stderr
                .contains(&format!("{}: {} ", hosts.b, server.pid()))
            && out.stderr.contains("down --force"),
        "{}",
        out.stderr
    );
    assert_ok(
        &hosts.script("two_hosts.sh", &["status"]),
        "status after a refused down",
    );
    let out = hosts.script("two_hosts.sh", &["down", "--force"]);
    assert_ok(&out, "down --force");
    assert!(out.stdout.contains("stopping:"), "{}", out.stdout);
    let deadline = Instant::now() + WAIT;
    while server.is_running() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    assert!(!server.is_running(), "down --force left the server running");
    let left = namespaces();
    assert!(
        !left.contains(&hosts.a) && !left.contains(&hosts.b),
        "namespaces left behind: {left}"
    );
    let links = run("ip", &["-br", "link"], b"").stdout;
    assert!(!links.contains("veth-"), "a veth left behind: {links}");
    let status = hosts.script("two_hosts.sh", &["status"]);
    assert_eq!(
        status.code(),
        Some(1),
        "status when down: {}",
        status.stdout
    );
    // down again is harmless.
    assert_ok(&hosts.script("two_hosts.sh", &["down"]), "second down");
}

/// Every script says it needs root, and names a missing tool with the
/// Debian package that has it.
#[test]
fn scripts_say_they_need_root_and_name_a_missing_tool() {
    // The PATH below is made of these tools (symlinks), so they must exist.
    common::require!("root", "setpriv", "ip", "tcpdump", "python3");
    for (name, args, needs) in [
        (
            "two_hosts.sh",
            &["status"][..],
            "network namespaces need root",
        ),
        ("firewall.sh", &["reset"][..], "firewall rules need root"),
    ] {
        let path = script(name);
        let mut all = vec!["--reuid=65534", "--regid=65534", "--clear-groups", "bash"];
        all.push(&path);
        all.extend_from_slice(args);
        let out = run("setpriv", &all, b"");
        assert_eq!(out.code(), Some(1), "{name}: {}", out.stderr);
        assert!(
            out.stderr.contains(needs) && out.stderr.contains("sudo"),
            "{name}: {}",
            out.stderr
        );
    }

    // A PATH with only the tools named here.
    let tools = TempDir::new("few-tools");
    let only = |tool: &str| {
        let found = run("sh", &["-c", &format!("command -v {tool}")], b"");
        assert_ok(&found, tool);
        std::os::unix::fs::symlink(found.stdout.trim(), tools.0.join(tool)).expect("symlink");
    };
    let path = [("PATH", tools.path())];
    only("dirname");
    let out = bash("two_hosts.sh", &["status"], &path);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("'ip' is not installed (Debian/Ubuntu: apt-get install iproute2)"),
        "{}",
        out.stderr
    );
    only("ip");
    let out = bash("firewall.sh", &["reset"], &path);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("'nft' is not installed (Debian/Ubuntu: apt-get install nftables)"),
        "{}",
        out.stderr
    );
    let out = bash("capture.sh", &["tcp-echo", tools.path()], &path);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("'tcpdump' is not installed (Debian/Ubuntu: apt-get install tcpdump)"),
        "{}",
        out.stderr
    );
    only("tcpdump");
    only("python3");
    let out = bash("capture.sh", &["tcp-echo", tools.path()], &path);
    assert!(
        out.stderr
            .contains("'ss' is not installed (Debian/Ubuntu: apt-get install iproute2)"),
        "{}",
        out.stderr
    );
}

#[test]
fn script_usage_errors_exit_2() {
    for (script, args) in [
        ("two_hosts.sh", &[][..]),
        ("two_hosts.sh", &["sideways"][..]),
        ("firewall.sh", &[][..]),
        ("firewall.sh", &["drop"][..]),
        ("firewall.sh", &["drop", "0"][..]),
        ("firewall.sh", &["drop", "70000"][..]),
        ("firewall.sh", &["drop", "http"][..]),
        ("firewall.sh", &["drop", "80", "--proto", "icmp"][..]),
        ("firewall.sh", &["allow", "80", "tcp"][..]),
    ] {
        let out = bash(script, args, &[]);
        assert_eq!(out.code(), Some(2), "{script} {args:?}: {}", out.stderr);
        assert!(out.stderr.contains("usage: "), "{script} {args:?}");
    }
}

/// tcpdump inside a namespace, ready (it said "listening on") when returned.
struct Tcpdump {
    child: Child,
    stdout: mpsc::Receiver<String>,
}

impl Tcpdump {
    fn start(ns: &str, args: &[&str]) -> Tcpdump {
        let mut all = vec!["netns", "exec", ns, "tcpdump", "-l"];
        all.extend_from_slice(args);
        let mut child = Command::new("ip")
            .args(&all)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tcpdump");
        let stderr = child.stderr.take().expect("piped");
        let (ready_tx, ready) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("listening on") {
                    let _ = ready_tx.send(());
                }
            }
        });
        let mut out = child.stdout.take().expect("piped");
        let (tx, stdout) = mpsc::channel();
        thread::spawn(move || {
            let mut all = String::new();
            let _ = out.read_to_string(&mut all);
            let _ = tx.send(all);
        });
        ready.recv_timeout(WAIT).expect("tcpdump is listening");
        Tcpdump { child, stdout }
    }

    /// Waits for tcpdump to exit (it was started with -c N) and returns its output.
    fn output(mut self) -> String {
        let text = self.stdout.recv_timeout(WAIT).expect("tcpdump exits");
        let _ = self.child.wait();
        text
    }
}

impl Drop for Tcpdump {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_client_in_lab_a_reaches_a_server_in_lab_b_across_the_veth() {
    common::require!("root", "ip", "tcpdump");
    let hosts = TwoHosts::up("veth");

    let udp = hosts.server_in_b(UDP_SERVER);
    let port = udp.port().to_string();
    let filter = format!("udp port {port}");
    let dump = Tcpdump::start(&hosts.b, &["-i", "veth-b", "-n", "-c", "2", &filter]);
    let out = hosts.run_in(
        &hosts.a,
        UDP_CLIENT,
        &["--host", "10.10.0.2", "--port", &port, "hello"],
    );
    assert_ok(&out, "udp_client in lab-a");
    assert!(out.stdout.starts_with("HELLO\n"), "{}", out.stdout);
    udp.expect_line("10.10.0.1:");
    let packets = dump.output();
    assert!(
        packets.contains("10.10.0.1.")
            && packets.contains(&format!("> 10.10.0.2.{port}: UDP, length 5")),
        "tcpdump on veth-b: {packets}"
    );

    let tcp = hosts.server_in_b(TCP_SERVER);
    let port = tcp.port().to_string();
    let out = hosts.run_in(
        &hosts.a,
        TCP_CLIENT,
        &["--host", "10.10.0.2", "--port", &port, "hello"],
    );
    assert_ok(&out, "tcp_client in lab-a");
    assert!(
        out.stdout.starts_with("From Server: HELLO\n"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("to local address 10.10.0.1:"),
        "{}",
        out.stdout
    );
    tcp.expect_line("10.10.0.1:");
}

/// The ruleset of the host itself, which firewall.sh must never change.
fn host_ruleset() -> String {
    let out = run("nft", &["list", "ruleset"], b"");
    assert_ok(&out, "nft list ruleset on the host");
    out.stdout
}

#[test]
fn firewall_reject_is_refused_drop_times_out_allow_works_and_reset_clears() {
    common::require!("root", "ip", "nft");
    let host_rules = host_ruleset();
    let hosts = TwoHosts::up("fw");
    let tcp = hosts.server_in_b(TCP_SERVER);
    let udp = hosts.server_in_b(UDP_SERVER);
    let (tcp_port, udp_port) = (tcp.port().to_string(), udp.port().to_string());
    let tcp_client = || {
        hosts.run_in(
            &hosts.a,
            TCP_CLIENT,
            &[
                "--host",
                "10.10.0.2",
                "--port",
                &tcp_port,
                "--timeout",
                "300ms",
                "hi",
            ],
        )
    };
    let udp_client = || {
        hosts.run_in(
            &hosts.a,
            UDP_CLIENT,
            &[
                "--host",
                "10.10.0.2",
                "--port",
                &udp_port,
                "--timeout",
                "300ms",
                "--connect",
                "hi",
            ],
        )
    };
    let firewall = |args: &[&str]| {
        let out = hosts.script("firewall.sh", args);
        assert_ok(&out, &format!("firewall.sh {args:?}"));
        out
    };
    let both_work = |when: &str| {
        let out = tcp_client();
        assert_ok(&out, &format!("tcp_client {when}"));
        assert!(
            out.stdout.starts_with("From Server: HI\n"),
            "{when}: {}",
            out.stdout
        );
        let out = udp_client();
        assert_ok(&out, &format!("udp_client {when}"));
        assert!(out.stdout.starts_with("HI\n"), "{when}: {}", out.stdout);
    };

    both_work("before any rule");

    // REJECT: the client hears an answer at once, and calls it refused.
    firewall(&["reject", &tcp_port, "--proto", "tcp"]);
    firewall(&["reject", &udp_port, "--proto", "udp"]);
    let started = Instant::now();
    let out = tcp_client();
    assert_error_and_hint(&out, "answered the SYN with a RST");
    assert!(out.stderr.contains("Connection refused"), "{}", out.stderr);
    let out = udp_client();
    assert_error_and_hint(&out, "ICMP port unreachable");
    assert!(out.stderr.contains("Connection refused"), "{}", out.stderr);
    assert!(
        started.elapsed() < WAIT,
        "a reject is answered, not waited for"
    );

    // DROP: silence, so the client gives up after its timeout.
    firewall(&["drop", &tcp_port, "--proto", "tcp"]);
    firewall(&["drop", &udp_port, "--proto", "udp"]);
    let out = tcp_client();
    assert_error_and_hint(&out, "no answer to the SYN");
    assert!(out.stderr.contains("timed out"), "{}", out.stderr);
    let out = udp_client();
    assert_error_and_hint(&out, "no reply at all before the timeout");

    // ALLOW goes on top of the chain, so it wins over the drop.
    firewall(&["allow", &tcp_port]);
    firewall(&["allow", &udp_port]);
    both_work("after allow");
    let status = firewall(&["status"]).stdout;
    assert!(
        status.contains(&format!("tcp dport {tcp_port} accept")),
        "{status}"
    );

    // reset: no rules left at all, and everything works.
    firewall(&["drop", &tcp_port]);
    let out = firewall(&["reset"]);
    assert!(out.stdout.contains("no rules"), "{}", out.stdout);
    let rules = hosts.run_in(&hosts.b, "nft", &["list", "ruleset"]);
    assert_eq!(rules.stdout, "", "rules left in lab-b after reset");
    both_work("after reset");

    assert_eq!(host_ruleset(), host_rules, "the host's own ruleset changed");
}

#[test]
fn firewall_needs_the_namespace() {
    common::require!("root", "ip", "nft");
    let hosts = TwoHosts::names("absent");
    let out = hosts.script("firewall.sh", &["drop", "12000"]);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("does not exist") && out.stderr.contains("two_hosts.sh up"),
        "{}",
        out.stderr
    );
}

/// bench.sh, briefly (200 ms per measurement, the debug programs): its
/// report replaces what was between the report file's markers, and nothing
/// else in the file changes. A file without the markers is refused before
/// any measuring, and left as it was.
///
/// The figures themselves are not checked (no test asserts a speed; the
/// targets are in the report): only that every server bench.sh measures has
/// its row, at 1 and at 64 clients, with a figure in every cell.
#[test]
fn bench_writes_its_report_between_the_markers() {
    common::require!("python3");
    let dir = TempDir::new("bench");
    let file = Path::new(dir.path()).join("BENCHMARKS.md");
    let file_path = file.to_str().expect("UTF-8");
    let bin = bin_dir();
    let env = [
        ("DURATION", "200ms"),
        ("SOCKETLAB_BIN", bin.as_str()),
        ("REPORT", file_path),
    ];
    let (head, tail) = ("# Benchmarks\n\nintro\n\n", "\nafter the figures\n");
    std::fs::write(
        &file,
        format!("{head}<!-- bench:begin -->\nold figures\n<!-- bench:end -->\n{tail}"),
    )
    .expect("write the report file");
    let out = bash("bench.sh", &[], &env);
    assert_ok(&out, "bench.sh");
    let written = std::fs::read_to_string(&file).expect("read the report file");
    let (before, rest) = written
        .split_once("<!-- bench:begin -->\n")
        .expect("the begin marker is kept");
    let (report, after) = rest
        .split_once("<!-- bench:end -->\n")
        .expect("the end marker is kept");
    assert_eq!((before, after), (head, tail), "{written}");
    assert!(
        report.starts_with("One run of `scripts/bench.sh` on "),
        "{report}"
    );
    assert!(!report.contains("old figures"), "{report}");
    assert!(out.stdout.contains(report), "{}", out.stdout);
    check_bench_rows(report, measured_servers());
    assert!(report.contains("| ours | "), "no memory table in {report}");

    for bad in [
        "no markers\n",
        "<!-- bench:end -->\nbackwards\n<!-- bench:begin -->\n",
        "<!-- bench:begin -->\n<!-- bench:end -->\n<!-- bench:end -->\n",
    ] {
        std::fs::write(&file, bad).expect("write the report file");
        let out = bash("bench.sh", &[], &env);
        assert_eq!(out.code(), Some(1), "{}", out.stderr);
        assert!(
            out.stderr.contains(&format!(
                "bench.sh: error: {file_path} has no '<!-- bench:begin -->' and '<!-- bench:end -->' lines"
            )),
            "{}",
            out.stderr
        );
        assert!(!out.stderr.contains("measuring"), "{}", out.stderr);
        assert_eq!(
            std::fs::read_to_string(&file).expect("read the report file"),
            bad
        );
    }
}

/// How many servers bench.sh measures: one `bench KEY TARGET LABEL ...`
/// line each in the script (read from it, so renaming a server or adding
/// one needs no change here).
fn measured_servers() -> usize {
    let text = std::fs::read_to_string(script("bench.sh")).expect("read bench.sh");
    let count = text.lines().filter(|l| l.starts_with("bench ")).count();
    assert!(count > 0, "no `bench ...` lines in bench.sh");
    count
}

/// The report's table has a row for each of `servers` at 1 and at 64
/// clients, and every row has its figures: a number of requests/s, a
/// latency or n/a, whole numbers of errors and lost requests, and N/M
/// clients served.
fn check_bench_rows(report: &str, servers: usize) {
    let header =
        "| target | server | clients | req/s | p50 ms | p99 ms | errors | lost | clients served |";
    let table: Vec<&str> = report
        .lines()
        .skip_while(|l| *l != header)
        .skip(2) // the header and the |---| line
        .take_while(|l| l.starts_with("| "))
        .collect();
    let mut seen = std::collections::BTreeMap::new();
    for row in &table {
        let cells: Vec<&str> = row
            .trim_matches(|c| c == '|' || c == ' ')
            .split(" | ")
            .collect();
        assert_eq!(cells.len(), 9, "{row}");
        let number = |cell: &str| cell.parse::<f64>().is_ok();
        let whole = |cell: &str| cell.parse::<u64>().is_ok();
        assert!(number(cells[3]), "req/s in {row}");
        assert!(
            cells[4..6].iter().all(|c| number(c) || *c == "n/a"),
            "{row}"
        );
        assert!(whole(cells[6]) && whole(cells[7]), "errors, lost in {row}");
        let served = cells[8].split_once('/');
        assert!(
            served.is_some_and(|(a, b)| whole(a) && whole(b)),
            "served in {row}"
        );
        seen.entry((cells[0].to_string(), cells[1].to_string()))
            .or_insert_with(Vec::new)
            .push(cells[2].to_string());
    }
    assert_eq!(seen.len(), servers, "one server per `bench` line: {report}");
    for (server, clients) in &seen {
        assert_eq!(clients, &["1", "64"], "{server:?} in {report}");
    }
}
