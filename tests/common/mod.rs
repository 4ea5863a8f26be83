//! Test fixtures: start a real lab program, read what it prints, run a
//! client to completion, all with bounded waits.
//!
//! Each integration test file does `mod common;` and uses what it needs, so
//! some helpers are unused in some files.
#![allow(dead_code)]

pub mod browser;
pub mod echo;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How long any single wait in a test may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(10);

/// A lab server started on port 0; killed when dropped.
pub struct Server {
    child: Child,
    /// The address the server printed on its first line, with an unspecified
    /// IP (0.0.0.0, ::) replaced by loopback so clients can use it directly.
    pub addr: SocketAddr,
    lines: Receiver<String>,
    seen: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<String>>,
}

impl Server {
    /// Starts `exe` (an `env!("CARGO_BIN_EXE_<name>")` path) with `args` and
    /// waits for the first line, which must say `... listening on ADDR ...`.
    pub fn start(exe: &str, args: &[&str]) -> Server {
        let mut child = Command::new(exe)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| cannot_start(exe, e));
        let (tx, lines) = mpsc::channel();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().expect("stdout is piped");
        let seen_by_reader = Arc::clone(&seen);
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                seen_by_reader
                    .lock()
                    .expect("lines lock")
                    .push(line.clone());
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err_pipe = child.stderr.take().expect("stderr is piped");
        let stderr_by_reader = Arc::clone(&stderr);
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = err_pipe.read(&mut buf) {
                stderr_by_reader
                    .lock()
                    .expect("stderr lock")
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let mut server = Server {
            child,
            addr: "0.0.0.0:0".parse().expect("placeholder"),
            lines,
            seen,
            stderr,
        };
        let first = server
            .next_line()
            .unwrap_or_else(|| panic!("{exe} printed no first line; stderr: {}", server.stderr()));
        server.addr =
            listening_addr(&first).unwrap_or_else(|| panic!("no address in first line: {first:?}"));
        server
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The next line the server prints, or None if it printed nothing within [`WAIT`].
    pub fn next_line(&self) -> Option<String> {
        self.lines.recv_timeout(WAIT).ok()
    }

    /// Waits (up to [`WAIT`]) for a line containing `needle` and returns it.
    pub fn expect_line(&self, needle: &str) -> String {
        self.wait_for_line(needle, WAIT).unwrap_or_else(|| {
            panic!(
                "no line with {needle:?} within {WAIT:?}; lines: {:#?}",
                self.lines_so_far()
            )
        })
    }

    /// Waits up to `wait` for a line containing `needle`.
    pub fn wait_for_line(&self, needle: &str, wait: Duration) -> Option<String> {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return Some(line),
                Ok(_) => continue,
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    /// Every line printed so far (including those already consumed).
    pub fn lines_so_far(&self) -> Vec<String> {
        self.seen.lock().expect("lines lock").clone()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().expect("stderr lock").clone()
    }

    /// True while the server process has not exited.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The test HTTP origin, tests/peers/origin.py, on a free port.
pub fn origin() -> Server {
    Server::start("python3", &["tests/peers/origin.py", "0"])
}

/// The n bytes the origin's /bytes/N, /chunked/N and /close/N send: every
/// byte value, so any text handling along the way would show.
pub fn origin_pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| ((i * 31 + 7) % 256) as u8).collect()
}

/// The address in a line such as `udp_server listening on 0.0.0.0:41234 (UDP)`.
pub fn listening_addr(line: &str) -> Option<SocketAddr> {
    let rest = line.split(" listening on ").nth(1)?;
    let mut addr: SocketAddr = rest.split_whitespace().next()?.parse().ok()?;
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            [127, 0, 0, 1].into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    Some(addr)
}

/// What a finished program printed and how it exited.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stdout_bytes: Vec<u8>,
    pub stderr: String,
}

impl Output {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

/// Starting a child in a process group of its own, so that a test can end
/// everything it started (`kill -KILL -- -PGID`), grandchildren included.
pub trait OwnGroup {
    /// setpgid(0, 0) in the child on Unix. Windows has no process groups to
    /// ask for here: there the child alone is killed, and the `kill`
    /// commands the tests run fail quietly.
    fn own_group(&mut self) -> &mut Self;
}

impl OwnGroup for Command {
    #[cfg(unix)]
    fn own_group(&mut self) -> &mut Self {
        std::os::unix::process::CommandExt::process_group(self, 0)
    }
    #[cfg(not(unix))]
    fn own_group(&mut self) -> &mut Self {
        self
    }
}

/// Runs `exe` with `args`, feeds it `stdin`, and waits up to [`WAIT`] for it to exit.
pub fn run(exe: &str, args: &[&str], stdin: &[u8]) -> Output {
    run_with_env(exe, args, stdin, &[])
}

/// Like [`run`], with extra environment variables.
pub fn run_with_env(exe: &str, args: &[&str], stdin: &[u8], env: &[(&str, &str)]) -> Output {
    // Its own process group, so a timeout can end everything it started
    // (lab's servers, a script's tcpdump), not just the program itself.
    let mut child = Command::new(exe)
        .args(args)
        .envs(env.iter().copied())
        .own_group()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| cannot_start(exe, e));
    let mut input = child.stdin.take().expect("stdin is piped");
    let stdin = stdin.to_vec();
    thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let stdout = read_in_background(child.stdout.take().expect("stdout is piped"));
    let stderr = read_in_background(child.stderr.take().expect("stderr is piped"));
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > deadline {
            let group = format!("-{}", child.id());
            let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
            let _ = child.kill();
            let _ = child.wait();
            panic!("{exe} {args:?} did not exit within {WAIT:?}");
        }
        thread::sleep(Duration::from_millis(5));
    };
    let stdout_bytes = stdout.recv_timeout(WAIT).expect("stdout reader");
    let stderr = stderr.recv_timeout(WAIT).expect("stderr reader");
    Output {
        status,
        stdout: String::from_utf8_lossy(&stdout_bytes).into_owned(),
        stdout_bytes,
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

fn read_in_background(mut pipe: impl Read + Send + 'static) -> Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut all = Vec::new();
        let _ = pipe.read_to_end(&mut all);
        let _ = tx.send(all);
    });
    rx
}

/// A TCP port on loopback that nothing listens on (bound, then released).
pub fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free TCP port")
        .port()
}

/// A UDP port on loopback that no socket holds (bound, then released).
pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("free UDP port")
        .port()
}

// ---- tests that need something this machine may not have -------------------
//
// A test that needs a peer (curl, ncat, tcpdump, tshark, chromium, nft, ip,
// prlimit, a python3 module) or root starts with one line:
//
//     common::require!("curl");
//     common::require!("root", "ip", "nft");
//
// If a need is missing, the test returns at once and one line is printed:
//
//     SKIPPED web_proxy::a_fresh_response_is_served_from_the_cache: needs curl (Debian/Ubuntu: apt-get install curl)
//
// It goes straight to the process's stderr, not through eprintln!, which
// the test harness captures (and throws away) for a passing test: so the
// line shows up in `cargo test`'s output, just before the test's `ok`. The
// same line is added to target/tmp/skipped-tests.txt, which lists the
// skips of the last `cargo test` run (.ci/run prints it after its newcomer
// run). Under CI=true nothing is skipped: a missing
// need fails the test, because .ci/run installs every peer and runs as root.

/// Returns from the test (after saying why, see above) unless every need is
/// met: a command name, `"root"`, `"python3:MODULE"` (a module python3 can
/// import) or `"nofile:N"` (N open files; the soft limit is raised up to the
/// hard one if it is lower).
#[allow(unused_macros)] // not every test file needs something
macro_rules! require {
    ($($need:expr),+ $(,)?) => {
        if !$crate::common::can_run(&[$($need),+]) {
            return;
        }
    };
}
#[allow(unused_imports)]
pub(crate) use require;

/// True if every need is met; otherwise reports the first missing one as a
/// skip (or fails under CI=true) and returns false. See [`require!`].
pub fn can_run(needs: &[&str]) -> bool {
    match needs.iter().find_map(|need| unmet(need)) {
        None => true,
        Some(why) => {
            skip(&why);
            false
        }
    }
}

/// True if `tool` can be run; otherwise reports the test as skipped (or
/// fails it under CI=true) and returns false.
pub fn have_tool(tool: &str) -> bool {
    can_run(&[tool])
}

/// Like [`have_tool`], for a check that is only part of a test: the rest of
/// the test runs either way, and the line says which part was left out.
pub fn have_tool_for(tool: &str, part: &str) -> bool {
    match unmet(tool) {
        None => true,
        Some(why) => {
            report(&format!("part of {} ({part}): {why}", test_name()));
            false
        }
    }
}

/// A program that did not start. A peer started by its name (python3,
/// ncat) that is not installed fails the test with the words require! uses,
/// for a test that did not ask for it first; anything else as the OS said.
pub fn cannot_start(exe: &str, err: std::io::Error) -> ! {
    let bare = !exe.contains(['/', '\\']);
    if let Some(why) = unmet(exe).filter(|_| bare && err.kind() == std::io::ErrorKind::NotFound) {
        panic!("{} {why}", test_name());
    }
    panic!("cannot start {exe}: {err}");
}

/// What is missing for `need`, or None if it is met.
fn unmet(need: &str) -> Option<String> {
    if need == "root" {
        // No `id` (Windows) reads as not root: the tests that need root
        // are Linux-only anyway.
        let uid = Command::new("id").arg("-u").output();
        return (!uid.is_ok_and(|id| String::from_utf8_lossy(&id.stdout).trim() == "0"))
            .then(|| "needs root (tcpdump, namespaces, nftables): run cargo test as root".into());
    }
    if let Some(module) = need.strip_prefix("python3:") {
        if let Some(why) = unmet("python3") {
            return Some(why);
        }
        let imported = Command::new("python3")
            .args(["-c", &format!("import {module}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        return (!imported).then(|| {
            format!(
                "needs the python3 module {module} (Debian/Ubuntu: apt-get install python3-{module})"
            )
        });
    }
    if let Some(n) = need.strip_prefix("nofile:") {
        let needed: u64 = n.parse().expect("nofile:N takes a number");
        return (!open_files_at_least(needed)).then(|| {
            format!("needs {needed} open files: run `ulimit -n {needed}` before cargo test")
        });
    }
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {need}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    (!found).then(|| {
        format!(
            "needs {need} (Debian/Ubuntu: apt-get install {})",
            package_of(need)
        )
    })
}

/// The Debian package that has `tool`.
fn package_of(tool: &str) -> &str {
    match tool {
        "nft" => "nftables",
        "ip" | "ss" => "iproute2",
        "prlimit" | "setpriv" => "util-linux",
        "kill" | "ps" => "procps",
        other => other,
    }
}

/// True if this process may open `needed` files, after raising its soft
/// limit (up to the hard one) with prlimit, or with python3's
/// resource.prlimit where util-linux's prlimit is missing.
fn open_files_at_least(needed: u64) -> bool {
    let soft = || {
        std::fs::read_to_string("/proc/self/limits")
            .ok()
            .and_then(|limits| {
                let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
                let soft = line.split_whitespace().nth(3)?;
                Some(soft.parse().unwrap_or(u64::MAX)) // "unlimited"
            })
            .unwrap_or(0)
    };
    if soft() >= needed {
        return true;
    }
    let pid = std::process::id().to_string();
    let _ = Command::new("prlimit")
        .args(["--pid", &pid, &format!("--nofile={needed}:")])
        .stderr(Stdio::null())
        .status();
    if soft() < needed {
        let code = format!(
            "import resource as r; h = r.prlimit({pid}, r.RLIMIT_NOFILE)[1]; \
             r.prlimit({pid}, r.RLIMIT_NOFILE, ({needed}, h))"
        );
        let _ = Command::new("python3")
            .args(["-c", &code])
            .stderr(Stdio::null())
            .status();
    }
    soft() >= needed
}

/// The test this thread runs, as `file::test` (the harness names each
/// test's thread after the test).
fn test_name() -> String {
    let current = thread::current();
    let test = current.name().unwrap_or("a test");
    format!("{}::{test}", env!("CARGO_CRATE_NAME"))
}

/// Skips the running test, saying why where a person sees it; under CI=true
/// fails it instead.
pub fn skip(why: &str) {
    let test = test_name();
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test} {why}; under CI=true a missing need fails (.ci/run installs every peer)");
    }
    report(&format!("{test}: {why}"));
}

/// Where the SKIPPED lines of one `cargo test` run are collected.
pub const SKIPPED_FILE: &str = concat!(env!("CARGO_TARGET_TMPDIR"), "/skipped-tests.txt");

fn report(what: &str) {
    let line = format!("SKIPPED {what}\n");
    // Not eprintln!: the harness would capture it (see the top of this part).
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
    if let Some(mut file) = skipped_file() {
        let _ = file.write_all(line.as_bytes());
    }
}

/// SKIPPED_FILE, opened to append, emptied first if an earlier `cargo
/// test` wrote it: its first line names the cargo process (this test
/// binary's parent) of the run its lines belong to.
fn skipped_file() -> Option<std::fs::File> {
    static CHECKED: std::sync::Once = std::sync::Once::new();
    let run = format!("# cargo test, process {}\n", cargo_pid());
    // Once per test binary; cargo runs the binaries one after another.
    CHECKED.call_once(|| {
        let old = std::fs::read_to_string(SKIPPED_FILE).unwrap_or_default();
        if !old.starts_with(&run) {
            let _ = std::fs::write(SKIPPED_FILE, &run);
        }
    });
    std::fs::OpenOptions::new()
        .append(true)
        .open(SKIPPED_FILE)
        .ok()
}

/// The process that ran this test binary (cargo). Windows has no getppid:
/// there the file is never emptied, and keeps the skips of earlier runs.
#[cfg(unix)]
fn cargo_pid() -> u32 {
    std::os::unix::process::parent_id()
}
#[cfg(not(unix))]
fn cargo_pid() -> u32 {
    0
}

/// What this OS's error for `kind` reads like in a program's `error:` line
/// (Rust's `{err}` of the OS error): "Connection refused (os error 111)" on
/// Linux, "(os error 61)" on macOS, "... (os error 10061)" on Windows. A
/// receive timeout is `WouldBlock` (EAGAIN) on Unix, WSAETIMEDOUT on Windows.
pub fn os_error(kind: std::io::ErrorKind) -> String {
    std::io::Error::from_raw_os_error(os_code(kind)).to_string()
}

#[cfg(unix)]
fn os_code(kind: std::io::ErrorKind) -> i32 {
    use std::io::ErrorKind::*;
    match kind {
        ConnectionRefused => libc::ECONNREFUSED,
        ConnectionReset => libc::ECONNRESET,
        WouldBlock | TimedOut => libc::EAGAIN,
        AddrInUse => libc::EADDRINUSE,
        other => panic!("no OS error code for {other:?} in tests/common"),
    }
}

/// The Windows Sockets codes (WSAECONNREFUSED, WSAECONNRESET, ...).
#[cfg(windows)]
fn os_code(kind: std::io::ErrorKind) -> i32 {
    use std::io::ErrorKind::*;
    match kind {
        ConnectionRefused => 10061,
        ConnectionReset => 10054,
        WouldBlock | TimedOut => 10060,
        AddrInUse => 10048,
        other => panic!("no OS error code for {other:?} in tests/common"),
    }
}

/// The `error:` and `hint:` lines a failed program must print.
pub fn assert_error_and_hint(out: &Output, hint_contains: &str) {
    assert_eq!(out.code(), Some(1), "exit status; stderr: {}", out.stderr);
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert!(
        lines.iter().any(|l| l.starts_with("error: ")),
        "no error: line in {:?}",
        out.stderr
    );
    let hint = lines
        .iter()
        .find(|l| l.starts_with("hint: "))
        .unwrap_or_else(|| panic!("no hint: line in {:?}", out.stderr));
    assert!(
        hint.contains(hint_contains),
        "hint {hint:?} does not mention {hint_contains:?}"
    );
    assert!(!out.stderr.contains("panicked"), "panic: {}", out.stderr);
}
