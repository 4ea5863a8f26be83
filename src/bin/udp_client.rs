//! udp_client: sends a line to udp_server over UDP and prints the reply.
//!
//! The K&R UDPClient lab, and with `--count` the UDP pinger lab. A UDP
//! client needs no connection: it sends a datagram with `sendto()` and waits
//! with `recvfrom()`. If nothing comes back, UDP cannot say why: no server,
//! the wrong port, a firewall or a lost datagram all look the same, a
//! silence, so the client gives up after `--timeout`. With `--connect` the
//! socket is connected to the server first; then the kernel also reports the
//! ICMP port unreachable that a host sends when no program has the port
//! open, and the client hears "connection refused" at once.
//!
//! Terminal 1: `cargo run --bin udp_server`
//! Terminal 2: `cargo run --bin udp_client -- hello`
//!             `cargo run --bin udp_client -- --count 10 --interval 200ms`
//! Worksheet:  labs/01-udp-tcp.md

use std::io::{self, ErrorKind, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::Parser;
use socketlab::cli::{self, ClientArgs};
use socketlab::deadline::recv_until;
use socketlab::explain::{self, Proto, Step};
use socketlab::rtt::{self, Stats};

/// Send a line over UDP and print the reply (K&R UDPClient); --count pings like the UDP pinger lab
#[derive(Parser, Debug)]
#[command(name = "udp_client", version)]
struct Cli {
    /// The message to send (words are joined by spaces); with none, prompt for a line on stdin
    message: Vec<String>,

    #[command(flatten)]
    server: ClientArgs,

    /// Connect the socket to the server, so an ICMP port unreachable surfaces as "connection refused"
    #[arg(long)]
    connect: bool,

    /// Ping the server this many times (messages `Ping <seq> <time>`) and print ping's statistics
    #[arg(long, conflicts_with = "message", value_parser = clap::value_parser!(u32).range(1..))]
    count: Option<u32>,

    /// Time from one ping to the next, with --count [default: 1s]
    // No clap default: clap skips `requires` for an argument that has one.
    #[arg(long, value_parser = cli::duration, requires = "count", conflicts_with = "message")]
    interval: Option<Duration>,

    /// Send from this local port instead of one the OS picks (K&R P29)
    #[arg(long)]
    bind_port: Option<u16>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    explain::report(run(&cli))
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    let server = cli.server.resolve()?[0];
    let socket = open_socket(server, cli.bind_port)?;
    if cli.connect {
        // connect() on UDP sends nothing: it fixes the peer, so the kernel
        // can hand this socket the ICMP errors that peer's host sends back.
        socket
            .connect(server)
            .context(Step::Connect(Proto::Udp, server))?;
    }
    socket
        .set_read_timeout(Some(cli.server.timeout))
        .context("failed to set the receive timeout")?;
    match cli.count {
        Some(count) => ping(&socket, server, cli, count),
        None => {
            let message = cli::message_or_prompt(&cli.message)?;
            send_and_print_reply(&socket, server, cli.connect, &message)
        }
    }
}

/// A UDP socket bound to `port` on every local address. The classic Python
/// client never calls `bind()`: its first `sendto()` binds the socket to a
/// port the OS picks. Binding port 0 here does the same, out in the open, and
/// `--bind-port` chooses the port instead (K&R P29).
fn open_socket(server: SocketAddr, port: Option<u16>) -> anyhow::Result<UdpSocket> {
    let any = if server.is_ipv4() {
        Ipv4Addr::UNSPECIFIED.into()
    } else {
        Ipv6Addr::UNSPECIFIED.into()
    };
    let local = SocketAddr::new(any, port.unwrap_or(0));
    let socket = UdpSocket::bind(local).context(Step::BindClient(Proto::Udp, local))?;
    if port.is_some() {
        println!(
            "udp_client bound to local address {}",
            socket
                .local_addr()
                .context("failed to read the local address")?
        );
    }
    Ok(socket)
}

/// One round trip: send the message, print the reply and its RTT.
fn send_and_print_reply(
    socket: &UdpSocket,
    server: SocketAddr,
    connected: bool,
    message: &[u8],
) -> anyhow::Result<()> {
    explain::check_datagram_len(message.len())?;
    let started = Instant::now();
    send(socket, server, connected, message)?;
    let mut buf = vec![0u8; explain::MAX_UDP_PAYLOAD + 1];
    let (len, from) = socket
        .recv_from(&mut buf)
        .context(Step::Receive(Proto::Udp, server))?;
    let rtt = started.elapsed();
    let local = socket
        .local_addr()
        .context("failed to read the local address")?;
    let mut stdout = io::stdout().lock();
    // The reply is printed as the bytes that arrived: the server changes
    // bytes, not text, and a terminal shows UTF-8 as it is.
    stdout
        .write_all(&buf[..len])
        .and_then(|()| writeln!(stdout))
        .context("failed to write to stdout")?;
    writeln!(
        stdout,
        "RTT {} ({len} bytes from {from} to local address {local})",
        rtt::ms(rtt)
    )
    .context("failed to write to stdout")?;
    Ok(())
}

/// Sends one datagram: `send()` on a connected socket, `sendto()` otherwise.
fn send(
    socket: &UdpSocket,
    server: SocketAddr,
    connected: bool,
    message: &[u8],
) -> anyhow::Result<()> {
    let sent = if connected {
        socket.send(message)
    } else {
        socket.send_to(message, server)
    };
    sent.context(Step::Send(Proto::Udp, server))?;
    Ok(())
}

/// What became of one ping.
enum Outcome {
    Reply {
        len: usize,
        from: SocketAddr,
        rtt: Duration,
    },
    TimedOut,
    /// An ICMP port unreachable: on a connected socket, or any on Windows.
    Refused,
}

/// The UDP pinger: `count` pings, a line for each, then ping's summary.
fn ping(socket: &UdpSocket, server: SocketAddr, cli: &Cli, count: u32) -> anyhow::Result<()> {
    let timeout = humantime::format_duration(cli.server.timeout);
    println!(
        "PING {} ({server}): {count} UDP datagrams, timeout {timeout}",
        cli.server.host
    );
    let interval = cli.interval.unwrap_or(Duration::from_secs(1));
    let mut stats = Stats::default();
    let started = Instant::now();
    for seq in 1..=count {
        let sent_at = Instant::now();
        let message = format!("Ping {seq} {:.6}", unix_seconds());
        let outcome = match send(socket, server, cli.connect, message.as_bytes()) {
            Ok(()) => wait_for_reply(socket, server, seq, sent_at, cli.server.timeout)?,
            // A connected socket reports an earlier ICMP error on its next call.
            Err(err) if is_refused(&err) => Outcome::Refused,
            Err(err) => return Err(err),
        };
        stats.sent();
        match outcome {
            Outcome::Reply { len, from, rtt } => {
                stats.received(rtt);
                println!("{len} bytes from {from}: seq={seq} time={}", rtt::ms(rtt));
            }
            Outcome::TimedOut => println!("Request timed out: seq={seq}"),
            Outcome::Refused => {
                stats.error();
                println!("From {server}: seq={seq} Destination Port Unreachable");
            }
        }
        if seq < count {
            thread::sleep(interval.saturating_sub(sent_at.elapsed()));
        }
    }
    println!(
        "\n{}",
        stats.ping_summary(&server.to_string(), started.elapsed())
    );
    if stats.received_count() > 0 {
        return Ok(());
    }
    // Nothing came back: end with the error and hint for the last outcome.
    let kind = if stats.errors() > 0 {
        ErrorKind::ConnectionRefused
    } else {
        ErrorKind::TimedOut
    };
    let why = io::Error::new(kind, format!("none of the {count} pings was answered"));
    Err(why).context(Step::Receive(Proto::Udp, server))
}

/// Waits up to `timeout` after `sent_at` for the reply to ping `seq`. A late
/// reply to an earlier ping (UDP neither orders nor matches replies) is
/// reported and skipped, without a new timeout: the deadline stays.
fn wait_for_reply(
    socket: &UdpSocket,
    server: SocketAddr,
    seq: u32,
    sent_at: Instant,
    timeout: Duration,
) -> anyhow::Result<Outcome> {
    let mut buf = [0u8; 2048];
    let expected = format!("PING {seq} ");
    loop {
        let (len, from) = match recv_until(socket, &mut buf, sent_at + timeout) {
            Ok(Some(got)) => got,
            Ok(None) => return Ok(Outcome::TimedOut),
            // The ICMP port unreachable for this or an earlier ping.
            Err(err) if is_unreachable(&err) => return Ok(Outcome::Refused),
            Err(err) => {
                return Err(err).context(Step::Receive(Proto::Udp, server));
            }
        };
        // udp_server uppercases "Ping 3 ..." to "PING 3 ..."; a plain echo server does not.
        if buf[..len.min(expected.len())].eq_ignore_ascii_case(expected.as_bytes()) {
            let rtt = sent_at.elapsed();
            return Ok(Outcome::Reply { len, from, rtt });
        }
        println!("ignored {len} bytes from {from}: not the reply to seq={seq} (a late reply?)");
    }
}

/// True if the OS error under `err` is an ICMP port unreachable.
fn is_refused(err: &anyhow::Error) -> bool {
    err.chain()
        .filter_map(|e| e.downcast_ref::<io::Error>())
        .any(is_unreachable)
}

/// True if `err` is how this OS reports an ICMP port unreachable on a UDP
/// socket: ECONNREFUSED on a connected socket (Linux, macOS), or on Windows
/// WSAECONNRESET (10054), connected or not. The pinger counts it as an
/// error reply and goes on, as ping does; it does not end the run.
fn is_unreachable(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionReset
    )
}

/// The wall-clock time the K&R pinger puts in each message, `time.time()`.
fn unix_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Windows' 10054 (WSAECONNRESET) and Linux's ECONNREFUSED both mean an
    /// ICMP port unreachable; a read timeout (EAGAIN, WSAETIMEDOUT) does not.
    #[test]
    fn refused_and_reset_count_as_unreachable_and_a_timeout_does_not() {
        for kind in [ErrorKind::ConnectionRefused, ErrorKind::ConnectionReset] {
            assert!(is_unreachable(&io::Error::from(kind)), "{kind:?}");
            let err = anyhow::Error::new(io::Error::from(kind)).context("failed to send");
            assert!(is_refused(&err), "{kind:?} under a context");
        }
        for kind in [ErrorKind::WouldBlock, ErrorKind::TimedOut] {
            assert!(!is_unreachable(&io::Error::from(kind)), "{kind:?}");
        }
    }
}
