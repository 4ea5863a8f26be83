//! tcp_server: uppercases what each TCP connection sends and writes it back.
//!
//! The K&R TCPServer lab. A TCP server has two kinds of socket: the
//! listening socket, which only accepts, and one connected socket per client,
//! returned by `accept()` after the three-way handshake. TCP carries a byte
//! stream, not messages: a client's one `send()` may arrive in several
//! `recv()`s and two sends in one, so this server transforms every chunk it
//! reads and writes it straight back, until the client's FIN (a read of 0
//! bytes). Each connection gets its own thread, up to `--max-clients`.
//!
//! `--once` is the classic server instead: one `recv(1024)`, reply, close.
//! A longer message is cut at 1024 bytes, and closing with bytes still unread
//! makes the kernel send a RST instead of a FIN.
//!
//! It binds 0.0.0.0 by default, every interface, so a client on another host
//! (or another network namespace) can reach it, as in the two-VM lab.
//!
//! Terminal 1: `cargo run --bin tcp_server`
//! Terminal 2: `cargo run --bin tcp_client -- hello`
//! Worksheet:  labs/01-udp-tcp.md

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::ExitCode;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use socketlab::cli::{self, ServerArgs};
use socketlab::explain;
use socketlab::limit::{ConnectionLimit, Slot};
use socketlab::listen;
use socketlab::log::Log;

/// Uppercase what each TCP connection sends and write it back (K&R TCPServer)
#[derive(Parser, Debug)]
#[command(name = "tcp_server", version)]
struct Cli {
    #[command(flatten)]
    server: ServerArgs,

    /// Serve like the classic lab: one read of at most --buffer bytes, reply, close
    #[arg(long)]
    once: bool,

    /// Bytes per read (the classic lab's recv(1024))
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=1_048_576))]
    buffer: u32,

    /// Connections served at once; more clients wait in the listen backlog
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    max_clients: u32,

    /// Close a connection that sends nothing for this long
    #[arg(long, default_value = "5m", value_parser = cli::positive_duration)]
    idle_timeout: Duration,
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
    println!("tcp_server listening on {local} (TCP)");
    let limit = ConnectionLimit::new(cli.max_clients as usize);
    let log = cli.server.log();
    loop {
        let slot = wait_for_slot(&limit, log);
        match listener.accept() {
            Ok((stream, peer)) => spawn_connection(stream, peer, slot, cli, log),
            Err(err) => {
                log.note(format_args!("accept failed: {err} (still listening)"));
                listen::pause_after_accept_error(&err);
            }
        }
    }
}

/// Takes a connection slot, waiting (and saying so) while all are in use.
fn wait_for_slot(limit: &Arc<ConnectionLimit>, log: Log) -> Slot {
    limit.try_acquire().unwrap_or_else(|| {
        log.note(format_args!(
            "{} clients connected (--max-clients): new ones wait in the listen backlog",
            limit.max()
        ));
        limit.acquire()
    })
}

/// Serves one connection on its own thread; the slot is given back when it ends.
fn spawn_connection(stream: TcpStream, peer: SocketAddr, slot: Slot, cli: &Cli, log: Log) {
    log.peer(peer, "connected");
    let (once, buffer, idle) = (cli.once, cli.buffer as usize, cli.idle_timeout);
    let spawned = thread::Builder::new()
        .name(format!("client {peer}"))
        .spawn(move || {
            let _slot = slot;
            let served = if once {
                serve_once(stream, buffer, idle, peer, log)
            } else {
                serve_stream(stream, buffer, idle, peer, log)
            };
            if let Err(err) = served {
                log.peer(peer, format_args!("error: {err}"));
            }
        });
    if let Err(err) = spawned {
        log.peer(
            peer,
            format_args!("error: cannot start a thread for this client: {err}"),
        );
    }
}

/// The streaming echo: uppercase every chunk read and write it back, until
/// the client's FIN, then send our own FIN.
fn serve_stream(
    mut stream: TcpStream,
    buffer: usize,
    idle: Duration,
    peer: SocketAddr,
    log: Log,
) -> io::Result<()> {
    stream.set_read_timeout(Some(idle))?;
    let mut buf = vec![0u8; buffer];
    let (mut received, mut sent, mut reads) = (0u64, 0u64, 0u32);
    loop {
        let n = match stream.read(&mut buf) {
            // A read of 0 bytes: the client sent its FIN, it has no more to say.
            Ok(0) => break,
            Ok(n) => n,
            Err(err) if err.kind() == ErrorKind::Interrupted => continue,
            Err(err) if explain::is_timeout(&err) => {
                log.peer(
                    peer,
                    format_args!("idle for {}: closing", humantime::format_duration(idle)),
                );
                break;
            }
            Err(err) => return Err(err),
        };
        received += n as u64;
        reads += 1;
        // ASCII a-z only: bytes, not text, because a read can end in the
        // middle of a multi-byte UTF-8 character.
        buf[..n].make_ascii_uppercase();
        stream.write_all(&buf[..n])?;
        sent += n as u64;
    }
    // shutdown(Write) sends our FIN after the last reply byte.
    stream.shutdown(Shutdown::Write)?;
    // How many reads the bytes took shows that TCP is a stream: it keeps
    // the bytes and their order, not the sender's write boundaries.
    let reads = if reads == 1 {
        "1 read".to_string()
    } else {
        format!("{reads} reads")
    };
    log.peer(
        peer,
        format_args!("closed: received {received} bytes in {reads}, sent {sent}"),
    );
    Ok(())
}

/// The classic server: one `recv(buffer)`, reply, close.
fn serve_once(
    mut stream: TcpStream,
    buffer: usize,
    idle: Duration,
    peer: SocketAddr,
    log: Log,
) -> io::Result<()> {
    stream.set_read_timeout(Some(idle))?;
    let mut buf = vec![0u8; buffer];
    let n = stream.read(&mut buf)?;
    buf[..n].make_ascii_uppercase();
    stream.write_all(&buf[..n])?;
    let unread = has_unread_data(&stream);
    log.peer(
        peer,
        format_args!(
            "closed after one read: received {n} bytes (--buffer {buffer}), sent {n}{}",
            if unread {
                "; more bytes were waiting unread, so the kernel answers the close with a RST"
            } else {
                ""
            }
        ),
    );
    Ok(())
}

/// True if the client sent bytes that were never read. Closing a socket with
/// unread data makes the kernel reset the connection (RFC 1122 §4.2.2.13).
fn has_unread_data(stream: &TcpStream) -> bool {
    let mut probe = [0u8; 1];
    // peek() without blocking: Ok(1) means data is waiting in the receive buffer.
    let waiting = stream
        .set_nonblocking(true)
        .and_then(|()| stream.peek(&mut probe));
    matches!(waiting, Ok(1))
}
