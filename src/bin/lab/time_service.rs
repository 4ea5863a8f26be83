//! The experiments of labs/05-time-service.md: the 33rd client of a
//! 32-worker pool, and the Caesar key recovered from the bytes on the wire.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::Instant;

use anyhow::{Context, bail};

use crate::harness::{self, Program, WAIT, exit_text, ms, shown};
use crate::{Experiment, Report};

pub const EXPERIMENTS: &[Experiment] = &[
    Experiment {
        name: "pool-exhaustion",
        worksheet: "labs/05-time-service.md, the thread pool",
        summary: "the 33rd client of time_server --threads 32 waits in the backlog, and is served when one leaves",
        run: pool_exhaustion,
    },
    Experiment {
        name: "caesar-from-the-wire",
        worksheet: "labs/05-time-service.md, the Caesar shift",
        summary: "crack_caesar recovers the key and the plain text from the bytes of a recorded time_client session",
        run: caesar_from_the_wire,
    },
];

const WORKERS: usize = 32;

fn pool_exhaustion(r: &mut Report) -> anyhow::Result<()> {
    let (server, addr) = Program::server("time_server", &["--threads", "32"])?;
    let port = addr.port().to_string();
    r.did(format!("started time_server --threads 32 on {addr}"));
    let menu = ["--port", port.as_str()];
    let mut holders = (0..WORKERS)
        .map(|_| Program::start("time_client", &menu))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut locals = Vec::new();
    for holder in &holders {
        // `Connected to the server at ADDR from LOCAL.`: its key exchange is done.
        let line = holder.expect_line("Connected to the server at")?;
        let local = line
            .rsplit(" from ")
            .next()
            .map(|l| l.trim_end_matches('.').to_string())
            .context("no local address in time_client's line")?;
        locals.push(local);
    }
    for _ in 0..WORKERS {
        server.expect_line(" connection open")?;
    }
    r.did(format!(
        "{WORKERS} {} clients connected and sit at their menus: each holds a worker",
        shown("time_client", &menu)
    ));

    let args = ["--port", &port, "--request", "date", "--timeout", "10s"];
    let started = Instant::now();
    let mut last = Program::start("time_client", &args)?;
    r.did(format!("the 33rd: {}", shown("time_client", &args)));
    let waiting = last.expect_line("waiting for a free worker")?;
    r.saw(format!("time_client: {waiting}"));
    let opens = |server: &Program| {
        server
            .lines_so_far()
            .iter()
            .filter(|l| l.ends_with(" connection open"))
            .count()
    };
    let opened_while_full = opens(&server);
    r.saw(format!(
        "time_server had opened {opened_while_full} connections"
    ));

    listen_queue(r, addr);

    let leaver = &locals[7];
    holders[7].type_line("4")?;
    let left = holders[7].wait_for_exit(WAIT)?;
    r.did(format!(
        "one of the 32 ({leaver}) chose 4 (Exit) and left ({})",
        exit_text(left)
    ));
    let answer = last.expect_line("Response: ")?;
    let status = last.wait_for_exit(WAIT)?;
    let waited = started.elapsed();
    r.saw(format!(
        "the 33rd: {answer} ({}, {} after it started)",
        exit_text(status),
        ms(waited)
    ));
    server.expect_line("\"DATE\" -> ")?;
    let lines = server.lines_so_far();
    let closed = lines
        .iter()
        .position(|l| l.contains(&format!("{leaver} connection closed")));
    let last_open = lines.iter().rposition(|l| l.ends_with(" connection open"));
    if let Some(line) = closed.map(|i| &lines[i]) {
        r.saw(format!("time_server: {line}"));
    }
    if let Some(line) = last_open.map(|i| &lines[i]) {
        r.saw(format!("time_server: {line}"));
    }
    r.why(
        "the server calls accept() only when a worker is free. The 33rd's connect() succeeded \
         (the kernel completes the handshake and queues the connection in the listen backlog), \
         but no worker read its key exchange until one of the 32 left",
    );
    r.check(
        opened_while_full == WORKERS,
        "the 33rd waits: its connection is not accepted while 32 workers are busy",
    );
    r.check(
        status.success()
            && answer.starts_with("Response: ")
            && closed.is_some()
            && closed < last_open
            && opens(&server) == WORKERS + 1,
        "it is served as soon as one of the 32 leaves, and not before",
    );
    Ok(())
}

/// Shows the listening socket's queue with `ss`, as the worksheet does:
/// `Recv-Q` of a LISTEN socket counts the handshakes nobody has accepted.
fn listen_queue(r: &mut Report, addr: SocketAddr) {
    let filter = format!("sport = :{}", addr.port());
    let expected = "ss shows the 33rd connection completed by the kernel, waiting for accept(): Recv-Q 1 on the LISTEN socket";
    let command = format!("ss -Htln '{filter}'");
    if !cfg!(target_os = "linux") {
        let os = std::env::consts::OS;
        return r.not_checked(
            expected,
            &format!("ss and its Recv-Q are Linux's, this is {os}"),
        );
    }
    let out = match Command::new("ss").args(["-Htln", &filter]).output() {
        Ok(out) => out,
        Err(err) => {
            return r.not_checked(
                expected,
                &format!("{command} could not run: {err}; ss is in iproute2"),
            );
        }
    };
    let text = String::from_utf8_lossy(&out.stdout);
    r.did(&command);
    for line in text.lines() {
        r.saw(format!(
            "ss: {}",
            line.split_whitespace().collect::<Vec<_>>().join(" ")
        ));
    }
    let recv_q = text
        .lines()
        .find(|l| l.starts_with("LISTEN"))
        .and_then(|l| l.split_whitespace().nth(1));
    r.check(recv_q == Some("1"), expected);
}

/// One chunk the relay forwarded, in the order it forwarded them.
struct Chunk {
    to_server: bool,
    bytes: Vec<u8>,
}

/// A TCP relay for one connection that records every chunk it forwards: a
/// capture of the bytes on the wire without root or tcpdump.
fn relay(server: SocketAddr) -> anyhow::Result<(SocketAddr, Receiver<Vec<Chunk>>)> {
    let listener = TcpListener::bind("127.0.0.1:0").context("failed to bind the relay")?;
    let addr = listener.local_addr()?;
    let (done, recorded) = mpsc::channel();
    thread::spawn(move || {
        let Ok((client, _)) = listener.accept() else {
            return;
        };
        let Ok(upstream) = TcpStream::connect_timeout(&server, WAIT) else {
            return;
        };
        let chunks = Arc::new(Mutex::new(Vec::new()));
        let (Ok(client_copy), Ok(upstream_copy)) = (client.try_clone(), upstream.try_clone())
        else {
            return;
        };
        let up = forward(client_copy, upstream_copy, true, Arc::clone(&chunks));
        let down = forward(upstream, client, false, Arc::clone(&chunks));
        let _ = up.join();
        let _ = down.join();
        let recorded = std::mem::take(&mut *chunks.lock().unwrap_or_else(PoisonError::into_inner));
        let _ = done.send(recorded);
    });
    Ok((addr, recorded))
}

/// Copies `from` to `to`, recording each chunk, until `from` ends; then
/// passes the FIN on with `shutdown(Write)`.
fn forward(
    mut from: TcpStream,
    mut to: TcpStream,
    to_server: bool,
    chunks: Arc<Mutex<Vec<Chunk>>>,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let _ = from.set_read_timeout(Some(WAIT));
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = from.read(&mut buf) {
            chunks
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(Chunk {
                    to_server,
                    bytes: buf[..n].to_vec(),
                });
            if to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The number after `label` in a line such as `... Caesar key k = s mod 256 = 117`.
fn number_after(text: &str, label: &str) -> Option<u32> {
    let line = text.lines().rev().find(|l| l.contains(label))?;
    let rest = line.split(label).nth(1)?;
    rest.trim_start()
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

fn caesar_from_the_wire(r: &mut Report) -> anyhow::Result<()> {
    let (_server, addr) = Program::server("time_server", &[])?;
    let (relay_addr, recorded) = relay(addr)?;
    r.did(format!(
        "started time_server on {addr}, and a relay on {relay_addr} that forwards to it and records every byte (a capture without root)"
    ));
    let port = relay_addr.port().to_string();
    let args = [
        "--port",
        &port,
        "--request",
        "time",
        "--count",
        "2",
        "--verbose",
    ];
    r.did(format!(
        "{}   (through the relay)",
        shown("time_client", &args)
    ));
    let client = harness::run("time_client", &args)?;
    if client.code() != Some(0) {
        bail!("time_client failed: {}", client.stderr.trim());
    }
    for line in client
        .stdout
        .lines()
        .filter(|l| l.starts_with("DH: ") || l.starts_with("Response: "))
    {
        r.saw(format!("time_client: {line}"));
    }
    let key = number_after(&client.stdout, "Caesar key k = s mod 256 =")
        .context("time_client --verbose printed no Caesar key")?;
    let answers: Vec<&str> = client
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("Response: ")?.split(" with RTT").next())
        .collect();

    let chunks = recorded
        .recv_timeout(WAIT)
        .context("the relay recorded no finished session")?;
    for chunk in &chunks {
        // The handshake lines are text in the clear; the frames are not.
        let text = if chunk.bytes.ends_with(b"\n") {
            format!("  {}", socketlab::printable::quoted(&chunk.bytes, 30))
        } else {
            String::new()
        };
        r.saw(format!(
            "on the wire, {}: {}{text}",
            if chunk.to_server {
                "client -> server"
            } else {
                "server -> client"
            },
            hex(&chunk.bytes),
        ));
    }
    let payloads: Vec<String> = chunks.iter().map(|c| hex(&c.bytes)).collect();
    r.did("crack_caesar, with the recorded payloads in hex on stdin, one per line (what `tshark -T fields -e tcp.payload` prints)");
    let crack = harness::run_with_stdin("crack_caesar", &[], payloads.join("\n").as_bytes())?;
    for line in crack.stdout.lines() {
        r.saw(format!("crack_caesar: {line}"));
    }
    for line in crack.stderr.lines() {
        r.saw(format!("crack_caesar: {line}"));
    }
    r.why(
        "the key exchange travels in the clear, and a byte Caesar shift has only 256 keys: \
         crack_caesar tries them all and keeps the one whose output looks like the protocol \
         (TIME, digits and colons). From the two public keys alone, p = 257 is small enough \
         to find a private key by trying them all, and with it the shared secret",
    );
    let best = number_after(&crack.stdout, "best key");
    r.check(
        crack.code() == Some(0) && best == Some(key),
        format!(
            "the key it finds is the key the client agreed on, {key} (crack_caesar says {})",
            best.map_or("nothing".into(), |k| k.to_string())
        ),
    );
    let decrypted: Vec<&str> = crack
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("  \"")?.strip_suffix('"'))
        .collect();
    let requests = decrypted.iter().filter(|&&d| d == "TIME").count();
    r.check(
        requests == 2 && !answers.is_empty() && answers.iter().all(|a| decrypted.contains(a)),
        format!("the plain text: 2 TIME requests and the answers the client printed, {answers:?}"),
    );
    let client_public = number_after(&client.stdout, "my public key A = g^a mod p =");
    let server_public = number_after(&client.stdout, "server's public key B =");
    let secret = number_after(&client.stdout, "secret s = B^a mod p =");
    let from_keys = match (client_public, server_public, secret) {
        (Some(a), Some(b), Some(s)) => format!("(KEY {a}, KEY {b}) gives secret {s}, key {key}"),
        _ => bail!("time_client --verbose did not print its key exchange"),
    };
    r.check(
        crack.stdout.contains(&from_keys),
        format!("the two public keys seen on the wire give the same secret and key: {from_keys}"),
    );
    Ok(())
}
