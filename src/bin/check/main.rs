//! check: grades a student's own server, client or proxy, written in any
//! language, against the lab it implements.
//!
//! A test suite is a peer that does what real peers do to a program: it
//! sends a request in one-byte writes with pauses, two messages in one
//! segment, a megabyte, every byte value; it holds a connection open and
//! says nothing while another client waits; it resets a connection in the
//! middle of a message and checks the program still answers. Each test
//! prints one line, `PASS` or `FAIL` and its name; a failure shows what was
//! expected and what came, with a caret under the first byte that differs,
//! and a `hint:` that says what it means on the wire. Then a score. The exit
//! status is 0 only if every test passed (1 if one failed, 2 for bad usage).
//!
//! Terminal 1: `cargo run --bin tcp_server` (or your own server)
//! Terminal 2: `cargo run --bin check -- tcp-echo --server 127.0.0.1:12000`
//!
//! Server labs (udp-echo, tcp-echo, threaded-server, web-server, web-proxy,
//! time-server) test a program that listens:
//!
//! ```text
//! check tcp-echo --server 127.0.0.1:12000               # already running
//! check tcp-echo --exec 'python3 TCPServer.py {port}'   # check starts and stops it
//! check web-server --exec 'python3 server.py {port} {dir}'
//! check web-server --server 127.0.0.1:6789 --dir ./www  # check writes its files into ./www
//! ```
//!
//! `{port}` becomes a free port, `{host}` 127.0.0.1 and `{dir}` a folder of
//! test files. The command runs through `sh -c` in its own process group;
//! check waits (at most `--start-timeout`) until it listens (on Linux read
//! from /proc/net, so no probe connection disturbs it), runs the tests, then
//! kills the whole group. A server that dies during a test is started again
//! for the next one, and the hint quotes its last line on stderr. A program that ignores `{port}` and binds a
//! fixed one is tested with `--server`.
//!
//! Client labs (time-client, udp-pinger, http-client, smtp-client,
//! heartbeat-client) run the student's client once per test with `--exec`
//! while check plays the server and its adversaries, and judge what the
//! client printed and sent:
//!
//! ```text
//! check udp-pinger --exec 'python3 UDPPinger.py {host} {port}'
//! check http-client --exec 'python3 webget.py {url}'
//! check time-client --exec 'python3 time_client.py {host} {port}'
//! check smtp-client --exec 'python3 mailclient.py {host} {port}'   # the body on stdin
//! check heartbeat-client --exec 'python3 hb_client.py {host} {port} {interval}'
//! ```
//!
//! A heartbeat server only prints what it sees, so heartbeat-server is run
//! the same way, once per test: check plays its client and reads its lines
//! (`check heartbeat-server --exec 'python3 hb_server.py {port} {dead_after}'`).
//!
//! An instructor grades a folder of submissions, one folder per student,
//! in one shell loop, with a JSON report each:
//!
//! ```text
//! for s in submissions/*/; do
//!   check tcp-echo --exec "cd $s && python3 TCPServer.py {port}" \
//!     --seed 42 --json "$s/check.json" > "$s/check.txt"
//!   echo "$s $(tail -1 "$s/check.txt")"
//! done
//! ```
//!
//! or, the same with `--batch`, which runs a fresh check per subfolder:
//! `check tcp-echo --batch submissions --exec 'python3 TCPServer.py {port}' --seed 42`.
//!
//! Worksheets: every labs/NN-*.md has a "Check your own implementation" part.
//!
//! Read `labs.rs` (the list of labs and the runner), then one lab module
//! (tcp_echo.rs first: the byte-stream lesson as tests), `report.rs` (the
//! lines, the caret, the score, `--json`), `spawn.rs` (starting and stopping
//! `--exec` commands) and `wire.rs` (the peers' moves); `http.rs` and
//! `origin.rs` are the HTTP client and server the web labs use, and
//! `batch.rs` is `--batch`.

mod batch;
mod heartbeat;
mod http;
mod http_client;
mod labs;
mod origin;
mod report;
mod smtp;
mod spawn;
mod tcp_echo;
mod threaded;
mod time_service;
mod udp_echo;
mod udp_pinger;
mod web_proxy;
mod web_server;
mod wire;

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use socketlab::cli::positive_duration;
use socketlab::random::Rng;

use labs::Lab;

/// Test your own server, client or proxy (any language) against a socketlab lab
#[derive(Parser, Debug)]
#[command(
    name = "check",
    version,
    after_help = "Placeholders in --exec: {port} a free port, {host} 127.0.0.1, {dir} the folder \
                  of test files (web-server), {url} the URL to fetch (http-client), {dead_after} \
                  1 (seconds, heartbeat-server), {interval} 0.2 (seconds, heartbeat-client).\n\n\
                  smtp-client gives the client its message body on stdin (after --input): read \
                  it there, or pass it as an option with --body \"$(cat)\". heartbeat-server \
                  reads the server's lines: each heartbeat's number and delay, 'lost' with the \
                  count or the numbers, 'late' or 'duplicate', 'stopped' after the silence.\n\n\
                  Grade a folder of submissions (one subfolder per student) in one shell loop:\n  \
                  for s in submissions/*/; do\n    \
                  check tcp-echo --exec \"cd $s && python3 TCPServer.py {port}\" --seed 42 \
                  --json \"$s/check.json\" > \"$s/check.txt\"\n    \
                  echo \"$s $(tail -1 \"$s/check.txt\")\"\n  \
                  done\n\
                  or with --batch, which does the same:\n  \
                  check tcp-echo --batch submissions --exec 'python3 TCPServer.py {port}' --seed 42"
)]
struct Cli {
    /// The lab the program implements
    #[arg(value_enum)]
    lab: Lab,

    /// Test a server (or proxy) that is already running at HOST:PORT
    #[arg(long, value_name = "HOST:PORT", conflicts_with = "exec")]
    server: Option<String>,

    /// Start the program with this shell command ({port}, {host}, {dir}, {url}, {path}, {dead_after},
    /// {interval} are filled in)
    #[arg(long, value_name = "COMMAND")]
    exec: Option<String>,

    /// web-server: the folder the server serves, where check writes its test files (needed with
    /// --server; with --exec check makes a folder for {dir} unless this names one)
    #[arg(long)]
    dir: Option<PathBuf>,

    /// Seed for every random choice (payloads, loss, keys), so a run can be repeated
    #[arg(long)]
    seed: Option<u64>,

    /// The longest any one wait in a test may take (a reply, a connection, a client's run;
    /// the pinger's whole run may take ten times this)
    #[arg(long, default_value = "5s", value_parser = positive_duration)]
    timeout: Duration,

    /// How long an --exec server may take to start accepting connections
    #[arg(long, default_value = "10s", value_parser = positive_duration)]
    start_timeout: Duration,

    /// Client labs: text given to the client on its standard input (\n is a newline); smtp-client
    /// adds the message body after it
    #[arg(long)]
    input: Option<String>,

    /// Also write a machine-readable report to this file (- for standard output, instead of the lines)
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,

    /// Grade every subfolder of DIR (one per student) with --exec run inside it; reports go to
    /// check.txt and check.json in each subfolder, one score line per student to stdout
    #[arg(long, value_name = "DIR", conflicts_with_all = ["server", "json", "dir"])]
    batch: Option<PathBuf>,
}

/// Everything a test needs to know about the program under test.
pub struct Ctx {
    /// Where the server under test listens (server labs).
    pub target: Option<SocketAddr>,
    /// The command that starts the client under test (client labs).
    pub exec: Option<String>,
    /// The folder a web server serves, and whether check made it (and its parent).
    pub dir: Option<PathBuf>,
    pub dir_is_ours: bool,
    pub timeout: Duration,
    /// How long a program check starts may take to listen (`--start-timeout`).
    pub start_timeout: Duration,
    pub seed: u64,
    pub input: Vec<u8>,
}

impl Ctx {
    /// The server's address; server labs are only run with one.
    pub fn addr(&self) -> SocketAddr {
        self.target.expect("server labs run with a target address")
    }

    /// A generator for one test: the same seed and test give the same numbers.
    pub fn rng(&self, test: &str) -> Rng {
        let salt = test.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        Rng::seeded(self.seed ^ salt)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    spawn::stop_all_on_ctrl_c();
    let result = match &cli.batch {
        Some(dir) => batch::run(&cli, dir),
        None => labs::run(&cli),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(err) => {
            eprintln!("error: {err:#}");
            if let Some(hint) = socketlab::explain::hint_for(&err) {
                eprintln!("hint: {hint}");
            }
            ExitCode::from(err_status(&err))
        }
    }
}

/// Bad usage is exit status 2, like clap's own errors; the rest is 1.
fn err_status(err: &anyhow::Error) -> u8 {
    if err.downcast_ref::<labs::Usage>().is_some() {
        2
    } else {
        1
    }
}

/// `HOST:PORT` to the first address it names.
fn resolve(text: &str) -> anyhow::Result<SocketAddr> {
    let mut addrs = text
        .to_socket_addrs()
        .map_err(|err| labs::usage(format!("invalid --server '{text}': {err}")))?;
    addrs
        .next()
        .ok_or_else(|| labs::usage(format!("--server '{text}' names no address")))
}
