//! heartbeat_server: watches UDP heartbeats: their delay, the lost ones, and clients that stop.
//!
//! The optional exercise of the K&R UDP pinger lab, the server side. The
//! server never replies: it only receives with `recvfrom()`, which also
//! names each heartbeat's sender, and keeps a little state per client.
//! From each heartbeat's send time it computes the one-way delay, now minus
//! then, which only means something when both ends read the same clock
//! (one host) or synchronised ones (NTP). From the sequence numbers it sees
//! the gaps: heartbeats that were lost. And since UDP has no connection, no
//! FIN ever says that a client has gone: the server decides it has stopped
//! when no heartbeat came for `--dead-after`. It waits for that with a
//! receive timeout (SO_RCVTIMEO) set to the nearest client's deadline.
//! `--drop` ignores a chosen fraction of heartbeats (seeded, so the same
//! ones are lost on every run), as udp_server does for the pinger.
//!
//! It binds 0.0.0.0 by default, every interface, so a client on another
//! host can reach it (the delay is then only right if the clocks agree).
//!
//! Terminal 1: `cargo run --bin heartbeat_server -- --drop 0.2 --seed 7`
//! Terminal 2: `cargo run --bin heartbeat_client -- --count 10 --interval 200ms`
//! Worksheet:  labs/01-udp-tcp.md, the heartbeat part

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::Parser;
use socketlab::cli::{self, ServerArgs};
use socketlab::explain::{self, Proto, Step};
use socketlab::log::Log;
use socketlab::printable;
use socketlab::random::Rng;
use socketlab::rtt;

/// Receive UDP heartbeats; report each one's one-way delay, the lost ones, and clients that stop
#[derive(Parser, Debug)]
#[command(name = "heartbeat_server", version)]
struct Cli {
    #[command(flatten)]
    server: ServerArgs,

    /// A client that sends nothing for this long has stopped
    #[arg(long, default_value = "3s", value_parser = cli::positive_duration)]
    dead_after: Duration,

    /// Fraction of heartbeats to ignore, simulating loss (0.0 to 1.0)
    #[arg(long, default_value_t = 0.0, value_parser = drop_rate)]
    drop: f64,

    /// Seed for --drop, so the same heartbeats are lost on every run
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

/// What the server remembers about one client (one source address and port).
#[derive(Debug)]
struct Client {
    last_seq: u64,
    last_seen: Instant,
    received: u64,
    lost: u64,
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
    println!("heartbeat_server listening on {local} (UDP)");
    let log = cli.server.log();
    log.note(format_args!(
        "a client is reported stopped after {} without a heartbeat (--dead-after)",
        humantime::format_duration(cli.dead_after)
    ));
    if cli.drop > 0.0 {
        log.note(format_args!(
            "dropping {:.1}% of heartbeats (seed {})",
            cli.drop * 100.0,
            cli.seed
        ));
    }
    watch(&socket, cli, log)
}

/// The receive loop: each heartbeat updates its client; each timeout looks
/// for clients that have gone silent.
fn watch(socket: &UdpSocket, cli: &Cli, log: Log) -> anyhow::Result<()> {
    let mut clients: HashMap<SocketAddr, Client> = HashMap::new();
    let mut rng = Rng::seeded(cli.seed);
    let mut buf = [0u8; 1024];
    loop {
        // Block until the nearest deadline (for ever with no clients);
        // a zero timeout would mean "no timeout" to the OS, hence the 1 ms.
        let wait = clients
            .values()
            .map(|c| (c.last_seen + cli.dead_after).saturating_duration_since(Instant::now()))
            .min()
            .map(|d| d.max(Duration::from_millis(1)));
        socket
            .set_read_timeout(wait)
            .context("failed to set the receive timeout")?;
        match socket.recv_from(&mut buf) {
            Ok((len, peer)) => {
                if rng.chance(cli.drop) {
                    let shown = printable::quoted(&buf[..len], 60);
                    log.peer(peer, format_args!("dropped {shown} (simulated loss)"));
                } else {
                    received(&buf[..len], peer, &mut clients, log);
                }
            }
            // The timeout expired (EAGAIN): nothing arrived, time to look.
            Err(err) if explain::is_timeout(&err) => {}
            // A passing error (Windows' 10054 for an earlier datagram): go on.
            Err(err) => log.note(format_args!("receive failed: {err} (still watching)")),
        }
        report_stopped(&mut clients, cli.dead_after, log);
    }
}

/// One datagram: a heartbeat updates its client and is reported; anything
/// else is logged and ignored.
fn received(
    datagram: &[u8],
    peer: SocketAddr,
    clients: &mut HashMap<SocketAddr, Client>,
    log: Log,
) {
    let now = SystemTime::now();
    let Some((seq, sent)) = parse(datagram) else {
        let shown = printable::quoted(datagram, 60);
        log.peer(
            peer,
            format_args!(
                "sent {} bytes that are not a heartbeat: {shown}",
                datagram.len()
            ),
        );
        return;
    };
    let delay = one_way_delay(sent, now);
    match clients.get_mut(&peer) {
        Some(client) => next_heard(client, seq, &delay, peer, log),
        None => {
            let before = match seq {
                0 | 1 => String::new(),
                2 => " (the first heard; 1 was not)".to_string(),
                _ => format!(" (the first heard; 1 to {} were not)", seq - 1),
            };
            log.peer(peer, format_args!("heartbeat {seq}{before}: {delay}"));
            let client = Client {
                last_seq: seq,
                last_seen: Instant::now(),
                received: 1,
                lost: 0,
            };
            clients.insert(peer, client);
        }
    }
}

/// A heartbeat from a client heard before: a gap before it means lost
/// heartbeats; a number not above the last one, a late or repeated one.
fn next_heard(client: &mut Client, seq: u64, delay: &str, peer: SocketAddr, log: Log) {
    client.last_seen = Instant::now();
    client.received += 1;
    if seq <= client.last_seq {
        // UDP may reorder or duplicate; such a heartbeat fills no gap here.
        log.peer(
            peer,
            format_args!(
                "heartbeat {seq} after {} (late or duplicated): {delay}",
                client.last_seq
            ),
        );
        return;
    }
    let missing = seq - client.last_seq - 1;
    if missing > 0 {
        client.lost += missing;
        let which = match missing {
            1 => format!("{}", client.last_seq + 1),
            _ => format!("{} to {}", client.last_seq + 1, seq - 1),
        };
        log.peer(
            peer,
            format_args!(
                "lost {missing} heartbeat(s): {which} (lost so far: {})",
                client.lost
            ),
        );
    }
    client.last_seq = seq;
    log.peer(peer, format_args!("heartbeat {seq}: {delay}"));
}

/// Reports and forgets every client silent for longer than `dead_after`.
fn report_stopped(clients: &mut HashMap<SocketAddr, Client>, dead_after: Duration, log: Log) {
    clients.retain(|peer, c| {
        if c.last_seen.elapsed() < dead_after {
            return true;
        }
        log.peer(
            *peer,
            format_args!(
                "stopped: no heartbeat for {} (--dead-after); the last was {}, {} received, {} lost",
                humantime::format_duration(dead_after),
                c.last_seq,
                c.received,
                c.lost
            ),
        );
        false
    });
}

/// `heartbeat SEQ SECONDS.MICROSECONDS` (heartbeat_client's format).
fn parse(datagram: &[u8]) -> Option<(u64, SystemTime)> {
    let text = std::str::from_utf8(datagram).ok()?.trim_end();
    let mut words = text.split(' ');
    if words.next()? != "heartbeat" {
        return None;
    }
    let seq = words.next()?.parse().ok()?;
    let (secs, micros) = words.next()?.split_once('.')?;
    if words.next().is_some() || micros.len() != 6 {
        return None;
    }
    let since =
        Duration::from_secs(secs.parse().ok()?) + Duration::from_micros(micros.parse().ok()?);
    Some((seq, UNIX_EPOCH.checked_add(since)?))
}

/// Now minus the send time. A negative result means the sender's clock is
/// ahead of this one: a one-way delay needs clocks that agree.
fn one_way_delay(sent: SystemTime, now: SystemTime) -> String {
    match now.duration_since(sent) {
        Ok(delay) => format!("one-way delay {}", rtt::ms(delay)),
        Err(ahead) => format!(
            "one-way delay -{} (the sender's clock is ahead of this one: the clocks disagree)",
            rtt::ms(ahead.duration())
        ),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_heartbeats_and_refuses_the_rest() {
        let (seq, sent) = parse(b"heartbeat 7 1764630000.000042\n").expect("a heartbeat");
        assert_eq!(seq, 7);
        assert_eq!(
            sent,
            UNIX_EPOCH + Duration::from_micros(1_764_630_000_000_042)
        );
        // Tried: other words, no time, a short fraction, extra words, not UTF-8, negative.
        for bad in [
            &b"hello"[..],
            b"heartbeat 7",
            b"heartbeat 7 17.5",
            b"heartbeat 7 1.000000 x",
            b"heartbeat \xff 1.000000",
            b"heartbeat -1 1.000000",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_clock_ahead_shows_as_a_negative_delay() {
        let now = UNIX_EPOCH + Duration::from_secs(100);
        assert_eq!(
            one_way_delay(now - Duration::from_micros(1500), now),
            "one-way delay 1.500 ms"
        );
        assert!(
            one_way_delay(now + Duration::from_millis(2), now)
                .starts_with("one-way delay -2.000 ms")
        );
    }
}
