//! time_server: tells the time, the date and the temperature to clients
//! served by a fixed pool of worker threads.
//!
//! The seed 001 lab. A thread pool starts `--threads` workers once; each
//! accepted connection is a job for one of them, which serves that client
//! until it leaves. The server calls `accept()` only when a worker is free,
//! so with every worker busy a new client's TCP handshake still completes
//! (the kernel does it) but the connection waits in the listen backlog, and
//! its key exchange is answered when one of the busy clients leaves:
//! `ss -tln 'sport = :7777'` shows it in Recv-Q. Compare `threaded_server`,
//! which starts a thread per connection.
//!
//! Each session starts with a Diffie-Hellman exchange (p = 257, g = 11) in
//! the clear, then every message is a length-prefixed frame whose bytes are
//! Caesar-shifted by the agreed key: labs/time-protocol.md. `--plain`
//! leaves the shift out, for comparing captures. `SOCKETLAB_NOW`
//! (RFC 3339, UTC) pins the clock, so TIME and DATE answer the same on
//! every run.
//!
//! It binds 0.0.0.0 by default, every interface, so a client on another host
//! (or another network namespace) can reach it, as in the seed's VM test.
//!
//! Terminal 1: `cargo run --bin time_server`
//! Terminal 2: `cargo run --bin time_client`
//! Worksheet:  labs/05-time-service.md

use std::f64::consts::TAU;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, anyhow, bail};
use clap::Parser;
use socketlab::cli::{ServerArgs, positive_duration};
use socketlab::explain::{self, is_timeout};
use socketlab::limit::ConnectionLimit;
use socketlab::listen;
use socketlab::log::Log;
use socketlab::pool::ThreadPool;
use socketlab::printable;
use socketlab::random::Rng;
use socketlab::time_service::{
    FrameError, Hello, KeyPair, MAX_LINE, Request, caesar_key, read_frame, write_frame,
};

/// Answer TIME, DATE and TEMP requests over a Caesar-shifted TCP protocol, with a pool of worker threads.
#[derive(Parser, Debug)]
#[command(name = "time_server", version, mut_arg("port", |a| a.default_value("7777")))]
struct Cli {
    #[command(flatten)]
    server: ServerArgs,

    /// Worker threads: how many clients are served at once (the rest wait in the listen backlog)
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..=4096))]
    threads: u16,

    /// No key exchange and no Caesar shift (clients must use --plain too)
    #[arg(long)]
    plain: bool,

    /// How long a new client may take to send its handshake line before the
    /// server closes the connection, freeing the worker
    #[arg(long, default_value = "5s", value_parser = positive_duration)]
    handshake_timeout: Duration,
}

/// What every connection's worker needs to know.
struct Service {
    plain: bool,
    handshake_timeout: Duration,
    clock: Clock,
    log: Log,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    explain::report(run(&cli))
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    // Checked before binding, so a bad SOCKETLAB_NOW is a setup error.
    let clock = Clock::from_env()?;
    let listener = listen::tcp(cli.server.addr())?;
    let local = listener
        .local_addr()
        .context("failed to read the bound address")?;
    println!("time_server listening on {local} (TCP)");
    let threads = usize::from(cli.threads);
    let pool = ThreadPool::new(threads).map_err(|err| {
        explain::hinted(
            format!("failed to start {threads} worker threads: {err}"),
            "the OS limits threads per user (ulimit -u) and memory: try a smaller --threads",
        )
    })?;
    let service = Arc::new(Service {
        plain: cli.plain,
        handshake_timeout: cli.handshake_timeout,
        clock,
        log: cli.server.log(),
    });
    service.log.note(format_args!(
        "{threads} workers, {}; press Ctrl-C to stop",
        if cli.plain {
            "plain text (--plain)"
        } else {
            "Caesar shift keyed by Diffie-Hellman (p = 257, g = 11)"
        }
    ));
    if let Clock::Pinned(at) = clock {
        service.log.note(format_args!(
            "clock pinned to {} by SOCKETLAB_NOW",
            humantime::format_rfc3339_millis(at)
        ));
    }
    serve(&listener, &pool, service)
}

/// The accept loop: one job on the pool per connection, never more jobs at
/// once than there are workers.
fn serve(listener: &TcpListener, pool: &ThreadPool, service: Arc<Service>) -> anyhow::Result<()> {
    let free_workers = ConnectionLimit::new(pool.size());
    loop {
        // Take a worker before accept(): while every worker is busy the
        // server accepts nothing, and new clients wait in the kernel's
        // listen backlog instead of in a queue inside this process.
        let slot = free_workers.acquire();
        let (stream, peer) = match listener.accept() {
            Ok(connection) => connection,
            // A client that reset before accept(), or a full file table:
            // one connection's problem, not the server's.
            Err(err) => {
                service
                    .log
                    .note(format_args!("accept failed: {err} (still serving)"));
                listen::pause_after_accept_error(&err);
                continue;
            }
        };
        let service = Arc::clone(&service);
        pool.execute(move || {
            serve_client(stream, peer, &service);
            drop(slot);
        })
        .context("failed to hand a connection to a worker")?;
    }
}

/// Serves one client from its key exchange until it leaves; logs how it ended.
fn serve_client(stream: TcpStream, peer: SocketAddr, service: &Service) {
    service.log.peer(peer, "connection open");
    match converse(stream, peer, service) {
        Ok(()) => service.log.peer(peer, "connection closed"),
        Err(err) => service
            .log
            .peer(peer, format_args!("connection closed: {err:#}")),
    }
}

/// The whole session: the key exchange, then one answer frame per request
/// frame until the client closes.
fn converse(stream: TcpStream, peer: SocketAddr, service: &Service) -> anyhow::Result<()> {
    let mut writer = stream
        .try_clone()
        .context("failed to duplicate the socket")?;
    // A deadline for the handshake only: a client that connects and says
    // nothing (or trickles a byte at a time) must not hold a worker for
    // ever. After it, a client may think as long as it likes between
    // requests, as in the seed's menu.
    let mut reader = BufReader::new(stream);
    let Some(key) = handshake(&mut reader, &mut writer, peer, service)? else {
        bail!("the client left before the key exchange");
    };
    service.log.peer(
        peer,
        if key == 0 {
            "handshake done, plain text"
        } else {
            "handshake done, key agreed"
        },
    );
    reader
        .get_ref()
        .set_read_timeout(None)
        .context("failed to clear the handshake timeout")?;
    loop {
        let request = match read_frame(&mut reader, key) {
            Ok(Some(request)) => request,
            // read() returned 0 between frames: the client's FIN, a normal end.
            Ok(None) => return Ok(()),
            Err(err @ FrameError::TooLong(_)) => {
                // Answer, then close: the rest of the stream cannot be trusted.
                let _ = write_frame(&mut writer, key, format!("ERROR {err}").as_bytes());
                return Err(err.into());
            }
            Err(err) => return Err(err.into()),
        };
        let answer = answer(&request, service.clock.now());
        service.log.peer(
            peer,
            format_args!("{} -> {answer}", printable::quoted(&request, 40)),
        );
        write_frame(&mut writer, key, answer.as_bytes()).context("failed to send the answer")?;
    }
}

/// Reads one handshake line (at most [`MAX_LINE`] bytes) that must be
/// complete by `deadline`. A socket's read timeout (SO_RCVTIMEO) restarts
/// with every read(), so before each read it is set to the time left.
/// `Ok(None)`: the client closed without a word.
fn read_line_by(
    reader: &mut BufReader<TcpStream>,
    deadline: Instant,
) -> io::Result<Option<String>> {
    let mut line = Vec::new();
    while !line.ends_with(b"\n") && line.len() < MAX_LINE as usize {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        reader.get_ref().set_read_timeout(Some(left))?;
        let available = reader.fill_buf()?;
        if available.is_empty() {
            break; // the client's FIN
        }
        let wanted = MAX_LINE as usize - line.len();
        let take = match available.iter().position(|&b| b == b'\n') {
            Some(newline) => (newline + 1).min(wanted),
            None => available.len().min(wanted),
        };
        line.extend_from_slice(&available[..take]);
        reader.consume(take);
    }
    if line.is_empty() {
        return Ok(None);
    }
    Ok(Some(String::from_utf8_lossy(&line).into_owned()))
}

/// The server's side of the key exchange: returns the Caesar key (0 in
/// `--plain` mode), or None if the client closed without a word.
fn handshake(
    reader: &mut BufReader<TcpStream>,
    writer: &mut TcpStream,
    peer: SocketAddr,
    service: &Service,
) -> anyhow::Result<Option<u8>> {
    let mut rng = Rng::from_entropy();
    let deadline = Instant::now() + service.handshake_timeout;
    loop {
        let line = match read_line_by(reader, deadline) {
            Ok(Some(line)) => line,
            Ok(None) => return Ok(None),
            Err(err) if is_timeout(&err) => bail!(
                "no handshake line within {} (the worker is freed for the next client)",
                humantime::format_duration(service.handshake_timeout)
            ),
            Err(err) => return Err(err).context("failed to read the handshake"),
        };
        let hello = match Hello::parse(&line) {
            Ok(hello) => hello,
            Err(why) => return refuse(writer, &why),
        };
        match (hello, service.plain) {
            (Hello::Plain, true) => {
                send_line(writer, Hello::Plain)?;
                return Ok(Some(0));
            }
            (Hello::Plain, false) => {
                return refuse(
                    writer,
                    "this server encrypts: send KEY <your public key> (run time_client without --plain)",
                );
            }
            (Hello::Key(_), true) => {
                return refuse(
                    writer,
                    "this server is plain: send PLAIN (run time_client with --plain)",
                );
            }
            (Hello::Key(client_public), false) => {
                let pair = KeyPair::generate(&mut rng);
                send_line(writer, Hello::Key(pair.public))?;
                let key = caesar_key(pair.shared_secret(client_public));
                if key != 0 {
                    return Ok(Some(key));
                }
                // The client computes the same secret and sends a new key.
                service.log.peer(
                    peer,
                    "shared secret 256 gives Caesar key 0 (plain text): exchanging again",
                );
            }
        }
    }
}

/// Sends one handshake line.
fn send_line(writer: &mut TcpStream, hello: Hello) -> anyhow::Result<()> {
    writer
        .write_all(format!("{hello}\n").as_bytes())
        .context("failed to send the handshake line")
}

/// Tells the client why its handshake line is refused, then gives up on it.
fn refuse(writer: &mut TcpStream, why: &str) -> anyhow::Result<Option<u8>> {
    // Best effort: the client may already be gone.
    let _ = writer.write_all(format!("ERROR {why}\n").as_bytes());
    Err(anyhow!("handshake refused: {why}"))
}

/// The answer to one request payload.
fn answer(request: &[u8], now: SystemTime) -> String {
    // "2026-11-21T14:02:19.198Z": RFC 3339 in UTC, split at the 'T'.
    let stamp = humantime::format_rfc3339_millis(now).to_string();
    let (date, time) = stamp.split_once('T').unwrap_or((&stamp, ""));
    match Request::parse(request) {
        Some(Request::Time) => time.trim_end_matches('Z').to_string(),
        Some(Request::Date) => date.to_string(),
        Some(Request::Temp) => temperature(now),
        None => format!(
            "ERROR unknown request {}: ask TIME, DATE or TEMP",
            printable::quoted(request, 40)
        ),
    }
}

/// Where TIME and DATE come from: the system clock, or the instant in
/// `SOCKETLAB_NOW` (for reproducible worksheets and tests).
#[derive(Debug, Clone, Copy)]
enum Clock {
    System,
    Pinned(SystemTime),
}

impl Clock {
    fn from_env() -> anyhow::Result<Clock> {
        let Some(text) = std::env::var_os("SOCKETLAB_NOW") else {
            return Ok(Clock::System);
        };
        let text = text.to_string_lossy();
        humantime::parse_rfc3339_weak(&text)
            .map(Clock::Pinned)
            .map_err(|err| {
                explain::hinted(
                    format!("invalid SOCKETLAB_NOW '{text}': {err}"),
                    "give an RFC 3339 time in UTC such as 2026-11-21T14:02:19.198Z, \
                     or `unset SOCKETLAB_NOW` for the real clock",
                )
            })
    }

    fn now(&self) -> SystemTime {
        match self {
            Clock::System => SystemTime::now(),
            Clock::Pinned(at) => *at,
        }
    }
}

/// The temperature from the first thermal sensor, or a simulated one.
fn temperature(now: SystemTime) -> String {
    match read_sensor() {
        Some((zone, celsius)) => format!("{celsius:.1} \u{b0}C (sensor {zone})"),
        None => format!("{:.1} \u{b0}C (simulated)", simulated_celsius(now)),
    }
}

/// Linux exposes each thermal sensor as
/// `/sys/class/thermal/thermal_zoneN/temp`, in millidegrees Celsius. VMs
/// and containers usually have none.
fn read_sensor() -> Option<(String, f64)> {
    let mut zones: Vec<_> = std::fs::read_dir("/sys/class/thermal")
        .ok()?
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("thermal_zone"))
        .collect();
    zones.sort();
    zones.into_iter().find_map(|zone| {
        let text = std::fs::read_to_string(format!("/sys/class/thermal/{zone}/temp")).ok()?;
        let millidegrees: f64 = text.trim().parse().ok()?;
        Some((zone, millidegrees / 1000.0))
    })
}

/// A day's weather without a sensor: 4 °C at 03:00 UTC, 20 °C at 15:00,
/// so a pinned clock pins it too.
fn simulated_celsius(now: SystemTime) -> f64 {
    let seconds = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let hour = (seconds % 86_400) as f64 / 3600.0;
    12.0 + 8.0 * ((hour - 9.0) / 24.0 * TAU).sin()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> SystemTime {
        humantime::parse_rfc3339_weak(text).expect("test time")
    }

    #[test]
    fn answers_for_a_pinned_instant() {
        let now = at("2026-11-21T14:02:19.198Z");
        assert_eq!(answer(b"TIME", now), "14:02:19.198");
        assert_eq!(answer(b"DATE", now), "2026-11-21");
        assert_eq!(
            answer(b"HELLO", now),
            "ERROR unknown request \"HELLO\": ask TIME, DATE or TEMP"
        );
        assert_eq!(
            answer(b"\xff\n", now),
            "ERROR unknown request \"\\xff\\n\": ask TIME, DATE or TEMP"
        );
    }

    #[test]
    fn the_simulated_day_is_coldest_at_three_and_warmest_at_fifteen() {
        let celsius = |t: &str| (simulated_celsius(at(t)) * 10.0).round() / 10.0;
        assert_eq!(celsius("2026-11-21T03:00:00Z"), 4.0);
        assert_eq!(celsius("2026-11-21T15:00:00Z"), 20.0);
        assert_eq!(celsius("2026-11-21T09:00:00Z"), 12.0);
    }
}
