//! The labs check knows, and the runner: start the program (or find it),
//! run the lab's tests in order, print each result, score, stop.

use std::fs;
use std::io::Write;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::ValueEnum;

use crate::report::{self, Done, RunInfo, Test};
use crate::spawn::{self, Child};
use crate::{Cli, Ctx};

/// The labs, each as the worksheet and the K&R handout state it.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lab {
    /// K&R UDPServer: each datagram back, uppercased (labs/01)
    UdpEcho,
    /// K&R TCPServer: what a connection sends, uppercased, until its FIN (labs/01)
    TcpEcho,
    /// Seed 003's TCP server: a reply to every client, many at once (labs/02)
    ThreadedServer,
    /// K&R assignment 1: files over HTTP, 404, binary bodies, no escape from the folder
    WebServer,
    /// K&R assignment 4: a forward proxy with a cache (labs/04)
    WebProxy,
    /// labs/time-protocol.md: a server (labs/05)
    TimeServer,
    /// labs/time-protocol.md: a client; check plays the server (labs/05)
    TimeClient,
    /// K&R assignment 2: a UDP pinger; check plays a lossy echo server (labs/01)
    UdpPinger,
    /// Seed 003 / CS144 webget: a GET by hand; check plays the origin (labs/02)
    HttpClient,
    /// K&R assignment 3: an SMTP client; check plays the mail server (labs/08)
    SmtpClient,
    /// The pinger's optional exercise: a heartbeat server; check runs it and plays its client (labs/01)
    HeartbeatServer,
    /// The pinger's optional exercise: a heartbeat client; check plays the server (labs/01)
    HeartbeatClient,
}

/// The lab's name on the command line.
pub fn name(lab: Lab) -> &'static str {
    lab.name()
}

impl Lab {
    fn name(self) -> &'static str {
        match self {
            Lab::UdpEcho => "udp-echo",
            Lab::TcpEcho => "tcp-echo",
            Lab::ThreadedServer => "threaded-server",
            Lab::WebServer => "web-server",
            Lab::WebProxy => "web-proxy",
            Lab::TimeServer => "time-server",
            Lab::TimeClient => "time-client",
            Lab::UdpPinger => "udp-pinger",
            Lab::HttpClient => "http-client",
            Lab::SmtpClient => "smtp-client",
            Lab::HeartbeatServer => "heartbeat-server",
            Lab::HeartbeatClient => "heartbeat-client",
        }
    }

    fn tests(self) -> Vec<Test> {
        match self {
            Lab::UdpEcho => crate::udp_echo::tests(),
            Lab::TcpEcho => crate::tcp_echo::tests(),
            Lab::ThreadedServer => crate::threaded::tests(),
            Lab::WebServer => crate::web_server::tests(),
            Lab::WebProxy => crate::web_proxy::tests(),
            Lab::TimeServer => crate::time_service::server_tests(),
            Lab::TimeClient => crate::time_service::client_tests(),
            Lab::UdpPinger => crate::udp_pinger::tests(),
            Lab::HttpClient => crate::http_client::tests(),
            Lab::SmtpClient => crate::smtp::tests(),
            Lab::HeartbeatServer => crate::heartbeat::server_tests(),
            Lab::HeartbeatClient => crate::heartbeat::client_tests(),
        }
    }

    /// Client labs run the student's program once per test; check is the
    /// server. So is the heartbeat server, judged by what it prints.
    fn is_client(self) -> bool {
        matches!(
            self,
            Lab::TimeClient
                | Lab::UdpPinger
                | Lab::HttpClient
                | Lab::SmtpClient
                | Lab::HeartbeatServer
                | Lab::HeartbeatClient
        )
    }
}

/// Bad usage: exit status 2.
#[derive(Debug)]
pub struct Usage(String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

pub fn usage(message: String) -> anyhow::Error {
    anyhow::Error::new(Usage(message))
}

/// Runs the lab; Ok(true) if every test passed. If it cannot run at all,
/// `--json` still gets a report that says why.
pub fn run(cli: &Cli) -> anyhow::Result<bool> {
    let result = run_lab(cli);
    if let (Err(err), Some(path)) = (&result, &cli.json)
        && err.downcast_ref::<Usage>().is_none()
        && path.as_os_str() != "-"
    {
        let hint = socketlab::explain::hint_for(err).unwrap_or_default();
        let text = report::json_error(cli.lab.name(), &cli.lab.tests(), &format!("{err:#}"), &hint);
        let _ = fs::write(path, text);
    }
    result
}

fn run_lab(cli: &Cli) -> anyhow::Result<bool> {
    let seed = cli
        .seed
        .unwrap_or_else(|| socketlab::random::Rng::from_entropy().next_u64() % 1_000_000);
    let mut ctx = Ctx {
        target: None,
        exec: cli.exec.clone(),
        dir: None,
        dir_is_ours: false,
        timeout: cli.timeout,
        start_timeout: cli.start_timeout,
        seed,
        input: cli
            .input
            .clone()
            .unwrap_or_default()
            .replace("\\n", "\n")
            .into_bytes(),
    };
    let mut scratch = Scratch(None);
    let mut program = find_target(cli, &mut ctx, &mut scratch)?;
    if let Some(dir) = &ctx.dir {
        crate::web_server::write_files(dir, ctx.dir_is_ours, seed)?;
    }
    let done = run_tests(cli, &mut ctx, &mut program);
    if let Some(child) = program.as_mut() {
        child.stop();
    }
    finish(cli, &ctx, &done)
}

/// Where the tests go: a client lab needs --exec; a server lab a running
/// --server or an --exec that check starts (returned, to be stopped).
fn find_target(cli: &Cli, ctx: &mut Ctx, scratch: &mut Scratch) -> anyhow::Result<Option<Child>> {
    let web = cli.lab == Lab::WebServer;
    if cli.lab.is_client() {
        return match cli.exec {
            Some(_) => Ok(None),
            None if cli.lab == Lab::HeartbeatServer => Err(usage(
                "heartbeat-server is judged by what the server prints: give --exec \
                 'COMMAND {port} {dead_after}' (check runs it for each test)"
                    .into(),
            )),
            None => Err(usage(format!(
                "{} is a client lab: give --exec 'COMMAND' (check plays the server)",
                cli.lab.name()
            ))),
        };
    }
    if let Some(server) = &cli.server {
        ctx.target = Some(crate::resolve(server)?);
        if web && cli.dir.is_none() {
            return Err(usage(
                "web-server with --server needs --dir DIR: the folder the server serves, \
                 where check writes its test files"
                    .into(),
            ));
        }
        ctx.dir.clone_from(&cli.dir);
        return Ok(None);
    }
    let Some(exec) = &cli.exec else {
        return Err(usage(format!(
            "give --server HOST:PORT (a running server) or --exec 'COMMAND {{port}}' for {}",
            cli.lab.name()
        )));
    };
    if web {
        // --dir names the folder a program serves (its working directory, say);
        // without it check makes one, with a secret file next to it.
        match &cli.dir {
            Some(dir) => ctx.dir = Some(dir.clone()),
            None => {
                ctx.dir = Some(scratch.make(ctx.seed)?.join("www"));
                ctx.dir_is_ours = true;
            }
        }
    }
    let (child, addr) = start_server(cli, exec, ctx.dir.as_ref(), None)?;
    ctx.target = Some(addr);
    Ok(Some(child))
}

fn run_tests(cli: &Cli, ctx: &mut Ctx, program: &mut Option<Child>) -> Vec<Done> {
    let to_stdout = cli.json.as_ref().is_none_or(|p| p.as_os_str() != "-");
    if to_stdout {
        let target = match ctx.target {
            Some(addr) => format!("{addr}"),
            None if cli.lab == Lab::HeartbeatServer => format!(
                "the server '{}' (check runs it for each test, plays its client and reads what it prints)",
                ctx.exec.as_deref().unwrap_or("")
            ),
            None => format!(
                "the client '{}' (check plays the server)",
                ctx.exec.as_deref().unwrap_or("")
            ),
        };
        say(&format!(
            "check {}: testing {target}, seed {}\n",
            cli.lab.name(),
            ctx.seed
        ));
    }
    let mut done: Vec<Done> = Vec::new();
    for test in cli.lab.tests() {
        // A server that died late, after its test's verdict, is started again
        // first, so that this test has a live server; the note goes under the last one.
        if let Some(fate) = program.as_mut().and_then(Child::fate) {
            let restarted = restart(cli, ctx, program);
            if to_stdout {
                say(&format!("      note: {fate}; {restarted}\n"));
            }
        }
        let mut outcome = (test.run)(&*ctx);
        if let Some(child) = program.as_mut()
            && outcome.is_err()
        {
            // A server that dies closes its sockets a moment before it can be reaped.
            child.wait_for(Duration::from_millis(250));
        }
        if let Some(fate) = program.as_mut().and_then(Child::fate) {
            // A server that died is started again, so that each test has its own verdict.
            let restarted = restart(cli, ctx, program);
            let note = format!("{fate}; {restarted}");
            outcome = match outcome {
                Err(failure) => Err(failure.also(&note)),
                Ok(()) => Err(report::Failure::new(
                    "the test passed, but the program exited afterwards",
                    note,
                )),
            };
        }
        let d = Done {
            name: test.name,
            points: test.points,
            failure: outcome.err(),
        };
        if to_stdout {
            say(&report::lines(&d));
        }
        done.push(d);
    }
    done
}

fn finish(cli: &Cli, ctx: &Ctx, done: &[Done]) -> anyhow::Result<bool> {
    let all = done.iter().all(|d| d.failure.is_none());
    if let Some(path) = &cli.json {
        let info = RunInfo {
            lab: cli.lab.name(),
            seed: ctx.seed,
            target: ctx
                .target
                .map(|a| a.to_string())
                .or_else(|| cli.exec.clone())
                .unwrap_or_default(),
            timeout_ms: cli.timeout.as_millis(),
        };
        let text = report::json(&info, done);
        if path.as_os_str() == "-" {
            say(&text);
            return Ok(all);
        }
        fs::write(path, text).with_context(|| format!("failed to write '{}'", path.display()))?;
    }
    say(&(report::score(done) + "\n"));
    Ok(all)
}

/// Starts the `--exec` program again after it exited, on a new port (its
/// old one may still be held by connections in TIME_WAIT).
fn restart(cli: &Cli, ctx: &mut Ctx, program: &mut Option<Child>) -> String {
    let Some(exec) = &cli.exec else {
        return String::new();
    };
    *program = None;
    match start_server(cli, exec, ctx.dir.as_ref(), None) {
        Ok((child, addr)) => {
            *program = Some(child);
            ctx.target = Some(addr);
            format!("check started it again on {addr} for the next test")
        }
        Err(err) => format!("check could not start it again: {err:#}"),
    }
}

/// Starts `--exec` on a free port (or `port`) and waits until it accepts.
fn start_server(
    cli: &Cli,
    exec: &str,
    dir: Option<&PathBuf>,
    port: Option<u16>,
) -> anyhow::Result<(Child, SocketAddr)> {
    let udp = cli.lab == Lab::UdpEcho;
    let port = match port {
        Some(port) => port,
        None => free_port(udp)?,
    };
    let mut vars = vec![
        ("port", port.to_string()),
        ("host", "127.0.0.1".to_string()),
    ];
    if let Some(dir) = dir {
        vars.push(("dir", dir.display().to_string()));
    }
    let command = spawn::fill(exec, &vars);
    let mut child = spawn::start(&command, b"")?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let end = Instant::now() + cli.start_timeout;
    loop {
        if let Some(fate) = child.fate() {
            bail!("'{command}' ended before it listened on {addr}: {fate}");
        }
        if ready(addr, udp) {
            return Ok((child, addr));
        }
        if Instant::now() >= end {
            return Err(socketlab::explain::hinted(
                format!(
                    "'{command}' did not accept on {addr} within {:?}",
                    cli.start_timeout
                ),
                "check replaced {port} with a free port: does the program take its port from the \
                 command line? If it binds a fixed port, start it yourself and use --server",
            ));
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Whether the server is ready. On Linux the kernel's socket tables say
/// so without touching the server: a probe connection that closes at once
/// is itself a bad peer, and the K&R web server skeleton dies of it
/// (`message.split()[1]` on an empty request). Elsewhere: connect, or for
/// UDP a datagram that must be answered.
fn ready(addr: SocketAddr, udp: bool) -> bool {
    if let Some(bound) = bound_in_proc(addr.port(), udp) {
        return bound;
    }
    if udp {
        udp_answers(addr)
    } else {
        TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
    }
}

/// Reads /proc/net/{tcp,tcp6} (a socket in state 0A, LISTEN, on `port`) or
/// /proc/net/{udp,udp6} (any socket bound to `port`); None where there is no /proc.
pub fn bound_in_proc(port: u16, udp: bool) -> Option<bool> {
    let (tables, state) = if udp {
        (["/proc/net/udp", "/proc/net/udp6"], None)
    } else {
        (["/proc/net/tcp", "/proc/net/tcp6"], Some("0A"))
    };
    let mut readable = false;
    for table in tables {
        let Ok(text) = fs::read_to_string(table) else {
            continue;
        };
        readable = true;
        let found = text.lines().skip(1).any(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local_port = fields
                .get(1)
                .and_then(|a| a.rsplit(':').next())
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            local_port == Some(port) && state.is_none_or(|st| fields.get(3) == Some(&st))
        });
        if found {
            return Some(true);
        }
    }
    readable.then_some(false)
}

/// A UDP server is ready when it answers a datagram.
fn udp_answers(addr: SocketAddr) -> bool {
    let Ok(socket) = UdpSocket::bind("127.0.0.1:0") else {
        return false;
    };
    let _ = socket.set_read_timeout(Some(Duration::from_millis(100)));
    let mut buf = [0u8; 64];
    socket.send_to(b"check: are you there?", addr).is_ok() && socket.recv_from(&mut buf).is_ok()
}

fn free_port(udp: bool) -> anyhow::Result<u16> {
    let port = if udp {
        UdpSocket::bind("127.0.0.1:0").and_then(|s| s.local_addr())
    } else {
        std::net::TcpListener::bind("127.0.0.1:0").and_then(|s| s.local_addr())
    };
    Ok(port.context("failed to find a free port")?.port())
}

/// A scratch folder check made for the web server's files; removed at the end.
struct Scratch(Option<PathBuf>);

impl Scratch {
    fn make(&mut self, seed: u64) -> anyhow::Result<PathBuf> {
        let root = std::env::temp_dir().join(format!("check-{}-{seed}", std::process::id()));
        fs::create_dir_all(root.join("www"))
            .with_context(|| format!("failed to create '{}'", root.display()))?;
        self.0 = Some(root.clone());
        Ok(root)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(root) = &self.0 {
            let _ = fs::remove_dir_all(root);
        }
    }
}

/// Writes to stdout as each test ends; a reader that went away (`check ... |
/// head`) is not an error of the program under test, so it is ignored.
fn say(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}
