//! threaded_server: a TCP server that gives every connection its own thread.
//!
//! The TCP server socket of seed 003. One listening socket (`socket()`,
//! `bind()`, `listen()`) hands out a new connected socket for each client
//! with `accept()`; the server reads what the client sends, logs it, answers
//! with a banner and closes. A connection is served on a thread of its own,
//! so a slow client holds up nobody else. With `--single` the accept loop
//! serves each connection itself, one at a time, and a slow client makes
//! every later one wait: head-of-line blocking.
//!
//! A thread per connection has no natural limit, so `--max-clients` caps
//! them: at the cap the server stops calling `accept()`, and new clients
//! wait in the kernel's listen backlog (their handshake has completed; they
//! are queued, not refused) until a connection finishes.
//!
//! It binds 127.0.0.1 by default, like the seed: only this machine can
//! connect. Give `--bind 0.0.0.0` to serve other hosts.
//!
//! Terminal 1: `cargo run --bin threaded_server`
//! Terminal 2: `printf 'hello' | ncat 127.0.0.1 9999` (or `http_get http://127.0.0.1:9999/`)
//! Worksheet:  labs/02-client-sockets.md

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use socketlab::cli::{self, ServerArgs};
use socketlab::explain::{self, Proto, Step};
use socketlab::limit::{ConnectionLimit, Slot};
use socketlab::listen;
use socketlab::log::Log;
use socketlab::printable;

/// The most a client may send; the rest is not read.
const MAX_MESSAGE: usize = 64 * 1024;

/// How long a client that has connected but sent nothing is waited for
/// (`nc` with nothing typed yet); after that it gets the banner anyway.
const SILENT_CLIENT: Duration = Duration::from_secs(60);

/// Accept TCP connections, one thread each: log what a client sends, reply with a banner (seed 003)
#[derive(Parser, Debug)]
#[command(
    name = "threaded_server",
    version,
    mut_arg("bind", |a| a.default_value("127.0.0.1")),
    mut_arg("port", |a| a.default_value("9999"))
)]
struct Cli {
    #[command(flatten)]
    server: ServerArgs,

    /// The banner sent back to every client (a newline is added)
    #[arg(long, default_value = "threaded_server over TCP is working")]
    reply: String,

    /// Most connections served at once; more wait in the listen backlog
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    max_clients: u32,

    /// Serve connections one at a time in the accept loop, without threads
    #[arg(long)]
    single: bool,

    /// Once a client has started sending, a pause this long ends its message
    #[arg(long, default_value = "500ms", value_parser = cli::positive_duration)]
    idle: Duration,
}

/// What every connection needs, shared by all of their threads.
#[derive(Debug)]
struct Service {
    banner: Vec<u8>,
    idle: Duration,
    log: Log,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    explain::report(run(&cli))
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    let listener = listen::tcp(cli.server.addr())?;
    let local = listener
        .local_addr()
        .context("failed to read the bound address")?;
    println!("threaded_server listening on {local} (TCP)");
    let service = Arc::new(Service {
        banner: format!("{}\n", cli.reply).into_bytes(),
        idle: cli.idle,
        log: cli.server.log(),
    });
    if cli.single {
        one_at_a_time(&listener, &service)
    } else {
        thread_per_connection(&listener, &service, cli.max_clients as usize)
    }
}

/// The accept loop of the threaded server: a slot, then `accept()`, then a
/// thread that owns the connection and the slot until the client is done.
fn thread_per_connection(listener: &TcpListener, service: &Arc<Service>, max: usize) -> ! {
    let log = service.log;
    log.note(format_args!(
        "a thread per connection, at most {max} at once (--max-clients)"
    ));
    let limit = ConnectionLimit::new(max);
    loop {
        // The slot is taken *before* accept(): at the cap the server stops
        // accepting, and the kernel queues the new handshakes.
        let slot = take_slot(&limit, log);
        let Some((stream, peer)) = accept(listener, log) else {
            continue;
        };
        let service = Arc::clone(service);
        let spawned = thread::Builder::new()
            .name(format!("client {peer}"))
            .spawn(move || serve(stream, peer, &service, slot));
        if let Err(err) = spawned {
            log.peer(
                peer,
                format_args!("could not start a thread ({err}); connection closed"),
            );
        }
    }
}

/// `--single`: the accept loop serves each connection itself, so the next
/// client is accepted only when this one is done.
fn one_at_a_time(listener: &TcpListener, service: &Service) -> ! {
    service.log.note(
        "serving one connection at a time (--single): the next client waits in the listen backlog",
    );
    loop {
        if let Some((stream, peer)) = accept(listener, service.log) {
            converse_and_log(stream, peer, service);
        }
    }
}

/// Takes a free slot, or logs that the server is at its cap and waits for one.
fn take_slot(limit: &Arc<ConnectionLimit>, log: Log) -> Slot {
    if let Some(slot) = limit.try_acquire() {
        return slot;
    }
    log.note(format_args!(
        "at the cap: {max} connections are being served (--max-clients {max}); \
         new clients wait in the listen backlog",
        max = limit.max()
    ));
    let slot = limit.acquire();
    log.note("a connection finished: accepting again");
    slot
}

/// `accept()`: the next connection whose handshake the kernel completed.
/// A failure concerns one client (or is passing), so it is logged, not fatal.
fn accept(listener: &TcpListener, log: Log) -> Option<(TcpStream, SocketAddr)> {
    match listener.accept() {
        Ok((stream, peer)) => {
            log.note(format_args!("Accepted connection from {peer}"));
            Some((stream, peer))
        }
        Err(err) => {
            log.note(format_args!("accept failed: {err} (still serving)"));
            listen::pause_after_accept_error(&err);
            None
        }
    }
}

/// A connection's thread: hold the slot until the conversation is over.
fn serve(stream: TcpStream, peer: SocketAddr, service: &Service, slot: Slot) {
    converse_and_log(stream, peer, service);
    drop(slot);
}

/// One conversation: read the client's message, log it, send the banner,
/// close; a failure is logged with the peer, and the server goes on.
fn converse_and_log(mut stream: TcpStream, peer: SocketAddr, service: &Service) {
    let log = service.log;
    let mut message = Vec::new();
    let end = match read_message(&mut stream, &mut message, service.idle) {
        Ok(end) => end,
        Err(err) => {
            let step = Step::Receive {
                proto: Proto::Tcp,
                peer,
            };
            return log_failure(log, peer, &step, &err, message.len());
        }
    };
    log.peer(
        peer,
        format_args!(
            "Received: {} ({} bytes; {end})",
            printable::quoted(&message, 200),
            message.len()
        ),
    );
    match reply(&mut stream, &service.banner) {
        Ok(()) => log.peer(peer, "sent the banner and closed"),
        Err(err) => {
            let step = Step::Send {
                proto: Proto::Tcp,
                peer,
            };
            log_failure(log, peer, &step, &err, message.len());
        }
    }
}

/// One log line for a connection that failed: what the OS said and what it means.
fn log_failure(log: Log, peer: SocketAddr, step: &Step, err: &io::Error, received: usize) {
    let doing = match step {
        Step::Send { .. } => "sending the banner",
        _ => "reading",
    };
    log.peer(
        peer,
        format_args!(
            "connection failed while {doing}, after {received} bytes received: {err} ({})",
            explain::hint(step, err)
        ),
    );
}

/// Why the server stopped reading a client's message.
#[derive(Debug, Clone, Copy)]
enum End {
    /// `read()` returned 0: the client's FIN, `shutdown(Write)` or close.
    HalfClosed,
    /// The client sent something, then nothing for `--idle`.
    Paused(Duration),
    /// The client connected and sent nothing at all.
    Silent,
    /// [`MAX_MESSAGE`] bytes arrived.
    Full,
}

impl std::fmt::Display for End {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            End::HalfClosed => write!(f, "the client half-closed"),
            End::Paused(idle) => write!(
                f,
                "the client paused for {}",
                humantime::format_duration(*idle)
            ),
            End::Silent => write!(
                f,
                "the client sent nothing for {}",
                humantime::format_duration(SILENT_CLIENT)
            ),
            End::Full => write!(f, "{} KiB, the most read from a client", MAX_MESSAGE / 1024),
        }
    }
}

/// Reads into `message` until the client half-closes, pauses or fills
/// [`MAX_MESSAGE`]. TCP is a byte stream: one `read()` returns whatever has
/// arrived, which may be part of what the client sent in one `send()`.
fn read_message(stream: &mut TcpStream, message: &mut Vec<u8>, idle: Duration) -> io::Result<End> {
    let mut buf = [0u8; 4096];
    loop {
        // SO_RCVTIMEO bounds each read(): long for the first byte, --idle after.
        let wait = if message.is_empty() {
            SILENT_CLIENT
        } else {
            idle
        };
        stream.set_read_timeout(Some(wait))?;
        let room = (MAX_MESSAGE - message.len()).min(buf.len());
        match stream.read(&mut buf[..room]) {
            // Ok(0): the peer closed its side (FIN); nothing more will come.
            Ok(0) => return Ok(End::HalfClosed),
            Ok(n) => {
                message.extend_from_slice(&buf[..n]);
                if message.len() == MAX_MESSAGE {
                    return Ok(End::Full);
                }
            }
            // The read timeout expired: the client is quiet.
            Err(err) if explain::is_timeout(&err) => {
                return Ok(if message.is_empty() {
                    End::Silent
                } else {
                    End::Paused(idle)
                });
            }
            // A signal interrupted read(); nothing was lost, read again.
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        }
    }
}

/// Sends the banner, then FIN with `shutdown(Write)`: "nothing more from
/// me". Dropping the stream closes the socket. (Had the client sent more
/// than was read, the close would send a RST instead: RFC 9293 §3.6.1.)
fn reply(stream: &mut TcpStream, banner: &[u8]) -> io::Result<()> {
    stream.write_all(banner)?;
    match stream.shutdown(Shutdown::Write) {
        // ENOTCONN: the client had closed already, and its RST (the answer
        // of a closed socket to our banner) has torn the connection down.
        Err(err) if err.kind() == io::ErrorKind::NotConnected => Err(io::Error::new(
            io::ErrorKind::ConnectionReset,
            "the client had closed before the banner arrived and answered it with a RST",
        )),
        other => other,
    }
}
