//! tcp_server: uppercases what each TCP connection sends and writes it back.
//!
//! The K&R TCPServer lab. A TCP server has two kinds of socket: the
//! listening socket (`socket()`, `bind()`, `listen()`), which only accepts,
//! and a connected socket per client, returned by `accept()` once the kernel
//! has completed the handshake. TCP carries a byte stream, not messages (one
//! `send()` may arrive in several `recv()`s), so the server uppercases each
//! chunk it reads and writes it back, until the client's FIN (a read of 0
//! bytes); then it sends its own FIN with `shutdown(Write)`.
//!
//! The sockets are blocking (`read()` sleeps until bytes arrive), so each
//! connection gets a thread, under a cap (`--max-clients`): at the cap the
//! server stops calling `accept()` and new clients wait in the listen
//! backlog. An idle limit and a deadline for each whole message stop a
//! client that trickles or sits silent from holding a thread for ever.
//! Compare `event_server` (an event loop) and `time_server` (a pool).
//!
//! `--once` is the classic server: one `recv(1024)`, reply, close (a longer
//! message is cut, and closing with bytes unread sends a RST, not a FIN).
//! It binds 0.0.0.0, every interface, so another host can reach it.
//!
//! Terminal 1: `cargo run --bin tcp_server`
//! Terminal 2: `cargo run --bin tcp_client -- hello`
//! Worksheet:  labs/01-udp-tcp.md

use std::io::{self, ErrorKind, Read, Write};
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

/// The backlog: how many connections whose handshake the kernel completed
/// may wait for `accept()`. With the classic `listen(1)` the kernel drops
/// further SYNs; 1024 queues a thousand (capped by `net.core.somaxconn`).
const BACKLOG: i32 = 1024;

fn main() -> ExitCode {
    explain::report(run(Arc::new(Cli::parse())))
}

fn run(cli: Arc<Cli>) -> anyhow::Result<()> {
    let addr = cli.server.addr();
    let listener = open_listener(addr).context(Step::Bind(Proto::Tcp, addr))?;
    let local = listener
        .local_addr()
        .context("failed to read the bound address")?;
    println!("tcp_server listening on {local} (TCP)");
    accept_loop(&listener, &cli)
}

/// The listening socket, one system call at a time.
fn open_listener(addr: SocketAddr) -> io::Result<TcpListener> {
    // socket(): a TCP endpoint of the address's family (IPv4 or IPv6).
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // SO_REUSEADDR: a restarted server may bind its port while connections
    // of its previous run still sit in TIME_WAIT there (the classic
    // TCPServer.py does not set it, and must wait about a minute). On
    // Windows the option means "share a port in use", so Unix only.
    if cfg!(unix) {
        socket.set_reuse_address(true)?;
    }
    // bind(): claim the port; EADDRINUSE if another socket holds it.
    socket.bind(&addr.into())?;
    // listen(): from now on the kernel completes handshakes on its own and
    // queues up to BACKLOG of them for accept().
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// Takes a slot, then `accept()`s the next client and gives it a thread.
fn accept_loop(listener: &TcpListener, cli: &Arc<Cli>) -> ! {
    let log = cli.server.log();
    let limit = ConnectionLimit::new(cli.max_clients as usize);
    loop {
        // The slot comes *before* accept(): at the cap the server stops
        // accepting, and the kernel keeps new clients in the backlog.
        let slot = limit.acquire_logged(log);
        let (stream, peer) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(err) => {
                // EMFILE (out of descriptors), say: it would fail again at
                // once, so give the connections being served time to close.
                log.note(format_args!("accept failed: {err} (still listening)"));
                thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        log.peer(peer, "connected");
        let cli = Arc::clone(cli);
        let spawned = thread::Builder::new()
            .name(format!("client {peer}"))
            .spawn(move || serve(stream, peer, &cli, slot));
        if let Err(err) = spawned {
            log.peer(peer, format_args!("error: no thread ({err}): closing"));
        }
    }
}

/// read(): whatever has arrived, up to `buf.len()` bytes; 0 at the FIN.
fn recv(stream: &mut TcpStream, buf: &mut [u8], until: Instant, cli: &Cli) -> io::Result<usize> {
    loop {
        arm_timeouts(stream, until, cli)?;
        match stream.read(buf) {
            // A signal interrupted read(); nothing was lost, read again.
            Err(err) if err.kind() == ErrorKind::Interrupted => {}
            done => return done.map_err(|err| expired(err, until, cli, "idle for")),
        }
    }
}

/// write_all(): write() until the kernel has taken every byte. If that
/// times out, the client does not read its replies: its receive window
/// and our send buffer are full.
fn send_all(stream: &mut TcpStream, bytes: &[u8], until: Instant, cli: &Cli) -> io::Result<()> {
    arm_timeouts(stream, until, cli)?;
    let not_reading = "has not read its replies for";
    stream
        .write_all(bytes)
        .map_err(|err| expired(err, until, cli, not_reading))
}

/// The streaming echo: read, uppercase, write back, until the client's FIN.
/// `in 3 reads` in its log line shows that TCP keeps bytes, not writes.
fn echo_until_fin(stream: &mut TcpStream, cli: &Cli) -> io::Result<String> {
    // The deadline for the whole message: not moved by each byte that
    // arrives, so one byte every few seconds does not keep a thread for ever.
    let until = Instant::now() + cli.deadline;
    let mut buf = vec![0u8; cli.buffer as usize];
    let (mut bytes, mut reads) = (0, 0);
    loop {
        let n = recv(stream, &mut buf, until, cli)?;
        if n == 0 {
            break; // a read of 0 bytes: the client's FIN, it has no more to say
        }
        // ASCII a-z only: bytes, not text, because a read can end in the
        // middle of a multi-byte UTF-8 character.
        buf[..n].make_ascii_uppercase();
        send_all(stream, &buf[..n], until, cli)?;
        (bytes, reads) = (bytes + n, reads + 1);
    }
    // shutdown(Write) sends our FIN after the last reply byte.
    stream.shutdown(Shutdown::Write)?;
    let s = if reads == 1 { "" } else { "s" };
    Ok(format!(
        "closed: received {bytes} bytes in {reads} read{s}, sent {bytes}"
    ))
}

/// `--once`, the classic server: one `recv(buffer)` (a FIN alone is that
/// read too: 0 bytes), its reply, and close.
fn recv_once(stream: &mut TcpStream, cli: &Cli) -> io::Result<String> {
    let until = Instant::now() + cli.deadline;
    let mut buf = vec![0u8; cli.buffer as usize];
    let n = recv(stream, &mut buf, until, cli)?;
    buf[..n].make_ascii_uppercase();
    send_all(stream, &buf[..n], until, cli)?;
    // A byte still waiting (non-blocking, so peek() answers at once) means
    // the close will send a RST instead of a FIN (RFC 1122 §4.2.2.13).
    let mut probe = [0u8; 1];
    let unread =
        stream.set_nonblocking(true).is_ok() && stream.peek(&mut probe).is_ok_and(|n| n == 1);
    let rst = "; more bytes were waiting unread, so the kernel answers the close with a RST";
    let (rst, buffer) = (if unread { rst } else { "" }, cli.buffer);
    Ok(format!(
        "closed after one read: received {n} bytes (--buffer {buffer}), sent {n}{rst}"
    ))
}

/// A connection's thread: serve it, log how it ended, close it, give the slot back.
fn serve(mut stream: TcpStream, peer: SocketAddr, cli: &Cli, slot: Slot) {
    let served = if cli.once {
        recv_once(&mut stream, cli)
    } else {
        echo_until_fin(&mut stream, cli)
    };
    let line = match served {
        Ok(closed) => closed,
        Err(err) if err.kind() == ErrorKind::TimedOut => format!("{err}: closing"), // see `expired`
        Err(err) => format!("error: {err}"),
    };
    cli.server.log().peer(peer, line);
    // close(): a FIN, or a RST if the client sent bytes that were never read.
    drop(stream);
    drop(slot);
}

/// Bounds the next read() or write() (SO_RCVTIMEO, SO_SNDTIMEO) by
/// --idle-timeout, or by what is left until the message's deadline.
fn arm_timeouts(stream: &TcpStream, until: Instant, cli: &Cli) -> io::Result<()> {
    let left = until.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(expired(ErrorKind::TimedOut.into(), until, cli, ""));
    }
    stream.set_read_timeout(Some(cli.idle_timeout.min(left)))?;
    stream.set_write_timeout(Some(cli.idle_timeout.min(left)))
}

/// An expired timeout becomes `idle for 30s` (`{idle} 30s`), or the
/// deadline's message once that has passed; other errors pass through.
fn expired(err: io::Error, until: Instant, cli: &Cli, idle: &str) -> io::Error {
    if !explain::is_timeout(&err) {
        return err;
    }
    let text = if Instant::now() >= until {
        let deadline = humantime::format_duration(cli.deadline);
        format!("not finished within --deadline {deadline}")
    } else {
        format!("{idle} {}", humantime::format_duration(cli.idle_timeout))
    };
    io::Error::new(ErrorKind::TimedOut, text)
}

/// Uppercase what each TCP connection sends and write it back, a thread per connection (K&R TCPServer)
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

    /// Connections served at once, a thread each; more clients wait in the listen backlog
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    max_clients: u32,

    /// Close a connection that moves no byte either way for this long (it sends nothing, or stops reading its replies)
    #[arg(long, default_value = "30s", value_parser = cli::positive_duration)]
    idle_timeout: Duration,

    /// Close a connection whose whole message (up to its FIN) takes longer than this, however steadily it trickles
    #[arg(long, default_value = "1m", value_parser = cli::positive_duration)]
    deadline: Duration,
}
