//! heartbeat_client: sends a numbered, timestamped UDP heartbeat at a steady interval.
//!
//! The optional exercise of the K&R UDP pinger lab. A heartbeat says "I am
//! still here" and expects no answer: the client sends one datagram with
//! `sendto()` every `--interval`, forever (or `--count` times), and never
//! calls `recvfrom()`. Each datagram carries a sequence number and the time
//! it was sent, `heartbeat 7 1764630000.123456`, as text you can read in
//! tcpdump. The server learns from the numbers which heartbeats were lost,
//! from the time how long each took (if both clocks agree), and from a
//! silence that the client has stopped. Over UDP nothing tells the client
//! whether anyone listens: with no server, the heartbeats simply vanish.
//!
//! Terminal 1: `cargo run --bin heartbeat_server`
//! Terminal 2: `cargo run --bin heartbeat_client -- --count 10` (Ctrl-C ends it early)
//! Worksheet:  labs/01-udp-tcp.md, the heartbeat part

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::Parser;
use socketlab::cli;
use socketlab::explain::{self, Proto, Step};

/// Send UDP heartbeats (sequence number and send time) at a steady interval; heartbeat_server watches them
#[derive(Parser, Debug)]
#[command(name = "heartbeat_client", version)]
struct Cli {
    /// Server host name or IP address
    #[arg(long, default_value = "127.0.0.1")]
    host: String,

    /// Server port
    #[arg(long, default_value_t = 12000)]
    port: u16,

    /// Time from one heartbeat to the next
    #[arg(long, default_value = "1s", value_parser = cli::positive_duration)]
    interval: Duration,

    /// Stop after this many heartbeats (0: until Ctrl-C)
    #[arg(long, default_value_t = 0)]
    count: u64,

    /// The first sequence number (a restarted client may go on where it stopped)
    #[arg(long, default_value_t = 1)]
    first: u64,

    /// Do not print a line per heartbeat
    #[arg(long)]
    quiet: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    explain::report(run(&cli))
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    let server = cli::resolve(&cli.host, cli.port)?[0];
    // bind() to port 0: the OS picks the source port, as a first sendto() would.
    let any = if server.is_ipv4() {
        Ipv4Addr::UNSPECIFIED.into()
    } else {
        Ipv6Addr::UNSPECIFIED.into()
    };
    let local = SocketAddr::new(any, 0);
    let socket = UdpSocket::bind(local).context(Step::Bind(Proto::Udp, local))?;
    let local = socket
        .local_addr()
        .context("failed to read the local address")?;
    println!(
        "heartbeat_client sending to {server} from {local} every {} (UDP)",
        humantime::format_duration(cli.interval)
    );
    beat(&socket, server, cli)
}

/// One heartbeat per interval. The schedule is kept against a start time,
/// not by sleeping a whole interval after each send, so the beats do not
/// drift later and later.
fn beat(socket: &UdpSocket, server: SocketAddr, cli: &Cli) -> anyhow::Result<()> {
    let started = Instant::now();
    for n in 0.. {
        if cli.count != 0 && n == cli.count {
            break;
        }
        // checked: an absurd --interval ends the loop instead of overflowing.
        let Some(due) = u32::try_from(n)
            .ok()
            .and_then(|n| cli.interval.checked_mul(n))
            .and_then(|offset| started.checked_add(offset))
        else {
            break;
        };
        thread::sleep(due.saturating_duration_since(Instant::now()));
        let seq = cli.first + n;
        let message = heartbeat(seq, SystemTime::now());
        // sendto() on an unconnected socket: no ICMP error ever comes back
        // to it, so the client keeps beating whether or not a server listens.
        socket
            .send_to(message.as_bytes(), server)
            .context(Step::Send(Proto::Udp, server))?;
        if !cli.quiet {
            println!("sent {message}");
        }
    }
    println!("heartbeat_client: sent {} heartbeats, stopping", cli.count);
    Ok(())
}

/// `heartbeat SEQ SECONDS.MICROSECONDS`: the time since the Unix epoch (UTC),
/// which the server subtracts from its own clock.
fn heartbeat(seq: u64, now: SystemTime) -> String {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    format!(
        "heartbeat {seq} {}.{:06}",
        since.as_secs(),
        since.subsec_micros()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_datagram_is_readable_text() {
        let at = UNIX_EPOCH + Duration::from_micros(1_764_630_000_000_042);
        assert_eq!(heartbeat(7, at), "heartbeat 7 1764630000.000042");
    }
}
