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
//! are queued, not refused) until a connection finishes. So that clients
//! who say nothing, or trickle a byte at a time, cannot hold every place
//! for ever, a client's whole message must arrive within `--message-timeout`
//! of its `accept()`: a deadline that no byte moves on.
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
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use socket2::{Domain, Protocol, Socket, Type};
use socketlab::cli::{self, ServerArgs};
use socketlab::explain::{self, Proto, Step};
use socketlab::limit::{ConnectionLimit, Slot};
use socketlab::listen::{close_gracefully, pause_after_accept_error};
use socketlab::log::Log;
use socketlab::printable;

/// How many connections whose handshake the kernel has completed may wait
/// for `accept()`. The classic lab's `listen(1)` makes the kernel drop new
/// SYNs as soon as one client waits; 1024 queues a thousand clients (Linux
/// caps it at `net.core.somaxconn`, 4096 by default).
const BACKLOG: i32 = 1024;

/// The most a client may send; the rest is not read.
const MAX_MESSAGE: usize = 64 * 1024;

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

    /// The whole message must arrive within this long of accept(); a client
    /// that is silent or still sending then gets the banner and is closed
    #[arg(long, default_value = "60s", value_parser = cli::positive_duration)]
    message_timeout: Duration,
}

/// What every connection needs, shared by all of their threads.
#[derive(Debug)]
struct Service {
    banner: Vec<u8>,
    idle: Duration,
    message_timeout: Duration,
    log: Log,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    explain::report(run(&cli))
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    let listener = listen(cli.server.addr())?;
    let local = listener
        .local_addr()
        .context("failed to read the bound address")?;
    println!("threaded_server listening on {local} (TCP)");
    let service = Arc::new(Service {
        banner: format!("{}\n", cli.reply).into_bytes(),
        idle: cli.idle,
        message_timeout: cli.message_timeout,
        log: cli.server.log(),
    });
    if cli.single {
        one_at_a_time(&listener, &service)
    } else {
        thread_per_connection(&listener, &service, cli.max_clients as usize)
    }
}

/// `socket()`, `bind()`, `listen()`: the listening socket, one call each
/// (socket2 shows what `TcpListener::bind` does in one go).
fn listen(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    let step = || Step::Bind(Proto::Tcp, addr);
    // socket(AF_INET or AF_INET6, SOCK_STREAM, IPPROTO_TCP): no address yet.
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        .with_context(step)?;
    // SO_REUSEADDR lets a restarted server bind its port while connections
    // of its previous run still sit in TIME_WAIT. (On Windows the option
    // means "share a port in use", so it is set on Unix only.)
    if cfg!(unix) {
        socket.set_reuse_address(true).with_context(step)?;
    }
    // bind(): claim the address and port; it fails if another socket holds them.
    socket.bind(&addr.into()).with_context(step)?;
    // listen(): from now on the kernel answers SYNs itself and queues up to
    // BACKLOG completed connections until accept() takes them.
    socket.listen(BACKLOG).with_context(step)?;
    Ok(socket.into())
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
        let slot = limit.acquire_logged(log);
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
            pause_after_accept_error(&err);
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
    let deadline = Instant::now() + service.message_timeout;
    let mut message = Vec::new();
    let end = match read_message(&mut stream, &mut message, deadline, service.idle) {
        Ok(end) => end,
        Err(err) => {
            let step = Step::Receive(Proto::Tcp, peer);
            return log_failure(log, peer, &step, &err, message.len());
        }
    };
    log.peer(
        peer,
        format_args!(
            "Received: {} ({} bytes; {})",
            printable::quoted(&message, 200),
            message.len(),
            end.describe(service)
        ),
    );
    if let Err(err) = reply(&mut stream, &service.banner) {
        let step = Step::Send(Proto::Tcp, peer);
        return log_failure(log, peer, &step, &err, message.len());
    }
    if end.more_may_come() {
        // Read and discard what is still on its way, so that closing does
        // not answer it with a RST that could destroy the banner in flight.
        close_gracefully(&stream);
    }
    log.peer(peer, "sent the banner and closed");
}

/// One log line for a connection that failed: what the OS said and what it means.
fn log_failure(log: Log, peer: SocketAddr, step: &Step, err: &io::Error, received: usize) {
    let doing = match step {
        Step::Send(..) => "sending the banner",
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// `read()` returned 0: the client's FIN, `shutdown(Write)` or close.
    HalfClosed,
    /// The client sent something, then nothing for `--idle`.
    Paused,
    /// The client connected and sent nothing before `--message-timeout`.
    Silent,
    /// The client was still sending at `--message-timeout`: it trickles.
    StillSending,
    /// [`MAX_MESSAGE`] bytes arrived.
    Full,
}

impl End {
    /// The end of the log line that shows the message.
    fn describe(self, service: &Service) -> String {
        let idle = humantime::format_duration(service.idle);
        let limit = humantime::format_duration(service.message_timeout);
        match self {
            End::HalfClosed => "the client half-closed".to_string(),
            End::Paused => format!("the client paused for {idle}"),
            End::Silent => format!("the client sent nothing for {limit} (--message-timeout)"),
            End::StillSending => {
                format!("the client was still sending after {limit} (--message-timeout)")
            }
            End::Full => format!("{} KiB, the most read from a client", MAX_MESSAGE / 1024),
        }
    }

    /// True if the client may still be sending when the server answers.
    fn more_may_come(self) -> bool {
        matches!(self, End::StillSending | End::Full)
    }
}

/// Reads into `message` until the client half-closes, pauses for `idle`,
/// fills [`MAX_MESSAGE`], or `deadline` passes. TCP is a byte stream: one
/// `read()` returns whatever has arrived, which may be part of what the
/// client sent in one `send()`.
fn read_message(
    stream: &mut TcpStream,
    message: &mut Vec<u8>,
    deadline: Instant,
    idle: Duration,
) -> io::Result<End> {
    let mut buf = [0u8; 4096];
    loop {
        // SO_RCVTIMEO bounds one read(), and restarts with the next: so it
        // is set before each read to the time left before the deadline
        // (and, once the client has started, to no more than --idle).
        let left = deadline.saturating_duration_since(Instant::now());
        let wait = if message.is_empty() {
            left
        } else {
            left.min(idle)
        };
        if wait.is_zero() {
            return Ok(at_deadline(message));
        }
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
            // The read timeout expired: the client paused, or its time is
            // up (the loop's next turn sees that the deadline has passed).
            Err(err) if explain::is_timeout(&err) => {
                if !message.is_empty() && Instant::now() < deadline {
                    return Ok(End::Paused);
                }
            }
            // A signal interrupted read(); nothing was lost, read again.
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        }
    }
}

/// Why the message ended when its deadline passed.
fn at_deadline(message: &[u8]) -> End {
    if message.is_empty() {
        End::Silent
    } else {
        End::StillSending
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
