//! udp_server: replies to every UDP datagram with its letters uppercased.
//!
//! The K&R UDPServer lab. UDP has no connections: one socket, bound to a
//! port, receives datagrams from any client with `recvfrom()`, which also
//! says who sent each one, and answers with `sendto()` to that address.
//! Every datagram arrives whole or not at all, so one `recvfrom()` is one
//! message. The classic lab's `recvfrom(2048)` lets the kernel cut a longer
//! datagram short, and the OSes disagree on how: Linux and macOS drop the
//! rest silently, Windows fails the call with WSAEMSGSIZE (10040). So this
//! server always receives the whole datagram (up to 64 KiB, the most UDP
//! carries), then keeps the first `--buffer` bytes and says what it cut:
//! the same log line and the same reply on every OS.
//! With `--drop` the server ignores a chosen fraction of datagrams, which
//! makes it the server of the UDP pinger lab.
//!
//! It binds 0.0.0.0 by default, every interface, so a client on another host
//! (or another network namespace) can reach it, as in the two-VM lab.
//!
//! Terminal 1: `cargo run --bin udp_server`
//! Terminal 2: `cargo run --bin udp_client -- hello`
//! Worksheet:  labs/01-udp-tcp.md

use std::net::{SocketAddr, UdpSocket};
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use socketlab::cli::ServerArgs;
use socketlab::explain::{self, Proto, Step};
use socketlab::log::Log;
use socketlab::printable;
use socketlab::random::Rng;

/// Reply to each UDP datagram with its ASCII letters uppercased (K&R UDPServer).
#[derive(Parser, Debug)]
#[command(name = "udp_server", version)]
struct Cli {
    #[command(flatten)]
    server: ServerArgs,

    /// Bytes read per datagram; longer datagrams are truncated (2048 is the classic lab's)
    #[arg(long, default_value_t = 65535, value_parser = clap::value_parser!(u32).range(1..=65535))]
    buffer: u32,

    /// Fraction of datagrams to ignore, simulating loss for the pinger (0.0 to 1.0)
    #[arg(long, default_value_t = 0.0, value_parser = drop_rate)]
    drop: f64,

    /// Seed for --drop, so the same datagrams are lost on every run
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    explain::report(run(&cli))
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    let addr = cli.server.addr();
    let socket = UdpSocket::bind(addr).context(Step::Bind(Proto::Udp, addr))?;
    let local = socket
        .local_addr()
        .context("failed to read the bound address")?;
    println!("udp_server listening on {local} (UDP)");
    let log = cli.server.log();
    if cli.drop > 0.0 {
        log.note(format_args!(
            "dropping {:.1}% of datagrams (seed {})",
            cli.drop * 100.0,
            cli.seed
        ));
    }
    serve(&socket, cli, log)
}

/// The receive loop: one reply datagram per datagram, forever.
fn serve(socket: &UdpSocket, cli: &Cli, log: Log) -> anyhow::Result<()> {
    let mut rng = Rng::seeded(cli.seed);
    let max_len = cli.buffer as usize;
    // Room for any datagram (the largest UDP payload is 65507 bytes over
    // IPv4): a smaller buffer would make recvfrom() fail on Windows
    // (WSAEMSGSIZE) where Linux truncates, so --buffer is applied below.
    let mut buf = vec![0u8; 65_536];
    loop {
        let (len, peer) = match socket.recv_from(&mut buf) {
            Ok(received) => received,
            // Windows reports an ICMP port unreachable for an earlier reply
            // (its client had gone) on the next recvfrom(), as WSAECONNRESET
            // 10054. It concerns one client, not the server: log and go on.
            Err(err) => {
                log.note(format_args!(
                    "receive failed: {err} (an error about an earlier reply; still serving)"
                ));
                continue;
            }
        };
        let message = &mut buf[..len.min(max_len)];
        if len > max_len {
            log.peer(
                peer,
                format_args!(
                    "sent a datagram of {len} bytes, longer than --buffer {max_len}: only the first {max_len} bytes were kept, the rest was discarded"
                ),
            );
        }
        let shown = printable::quoted(message, 60);
        if rng.chance(cli.drop) {
            log.peer(
                peer,
                format_args!("dropped {} bytes {shown} (simulated loss)", message.len()),
            );
            continue;
        }
        log.peer(
            peer,
            format_args!("received {} bytes {shown}", message.len()),
        );
        reply(socket, peer, message, log);
    }
}

/// Uppercases the datagram in place and sends it back to `peer`.
fn reply(socket: &UdpSocket, peer: SocketAddr, message: &mut [u8], log: Log) {
    // ASCII a-z only: every other byte, including each byte of a multi-byte
    // UTF-8 character, passes through unchanged.
    message.make_ascii_uppercase();
    if let Err(err) = socket.send_to(message, peer) {
        log.peer(peer, format_args!("reply failed: {err}"));
    }
}

/// Parses `--drop`: a fraction from 0.0 to 1.0.
fn drop_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rate) if (0.0..=1.0).contains(&rate) => Ok(rate),
        _ => Err(format!(
            "invalid drop rate '{text}': give a fraction from 0.0 to 1.0, such as 0.3"
        )),
    }
}
