//! `--target udp-echo`: one datagram per request, its uppercased copy back.
//!
//! Each client has its own connected UDP socket: `connect()` on UDP sends
//! nothing, it fixes the peer, so the kernel passes up only datagrams from
//! the server and reports an ICMP port unreachable as ECONNREFUSED.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::Context;
use socketlab::explain::{Proto, Step, is_timeout};
use socketlab::printable::quoted;

use crate::Run;
use crate::request;
use crate::tally::{Outcome, Tally};

/// One datagram before the run: a server that is not there answers with an
/// ICMP port unreachable, which becomes an error with a hint. No reply at
/// all is not an error yet: the datagram may have been lost. Returns `server`.
pub fn probe(server: SocketAddr, timeout: Duration) -> anyhow::Result<SocketAddr> {
    let socket = connected_socket(server)?;
    socket
        .set_read_timeout(Some(timeout))
        .context("failed to set the receive timeout")?;
    let step = || Step::Send(Proto::Udp, server);
    socket.send(b"loadgen probe").with_context(step)?;
    match socket.recv(&mut [0u8; 64]) {
        Ok(_) => Ok(server),
        Err(err) if is_timeout(&err) => Ok(server),
        Err(err) => Err(err).context(Step::Receive(Proto::Udp, server)),
    }
}

/// A UDP socket on a port the OS picks, connected to `server`.
fn connected_socket(server: SocketAddr) -> anyhow::Result<UdpSocket> {
    let any: SocketAddr = if server.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(any).context(Step::Bind(Proto::Udp, any))?;
    socket
        .connect(server)
        .context(Step::Connect(Proto::Udp, server))?;
    Ok(socket)
}

/// One client: requests until the run ends, each waiting up to --timeout.
pub fn client(id: u32, run: &Run, tally: &mut Tally) {
    let socket = match connected_socket(run.server) {
        Ok(socket) => socket,
        Err(err) => return tally.record(Outcome::Failed(format!("{err:#}"))),
    };
    let mut buf = vec![0u8; 65536];
    let mut seq = 0;
    while run.next_request() {
        seq += 1;
        let message = request::message(id, seq, run.size);
        let outcome = round_trip(&socket, &message, (id, seq), run.timeout, &mut buf, tally);
        tally.record(outcome);
    }
}

/// Sends one request and waits for its reply. Replies to this client's
/// earlier, timed-out requests may still arrive: they are counted as late
/// and skipped, never taken for this request's reply.
fn round_trip(
    socket: &UdpSocket,
    message: &[u8],
    (id, seq): (u32, u64),
    timeout: Duration,
    buf: &mut [u8],
    tally: &mut Tally,
) -> Outcome {
    let started = Instant::now();
    if let Err(err) = socket.send(message) {
        return Outcome::Failed(format!("request {seq}: send failed: {err}"));
    }
    let expected = request::expected_reply(message);
    let deadline = started + timeout;
    loop {
        let reply = match socketlab::deadline::recv_until(socket, buf, deadline) {
            Ok(Some((len, _))) => &buf[..len],
            Ok(None) => return Outcome::Lost,
            Err(err) => return Outcome::Failed(format!("request {seq}: receive failed: {err}")),
        };
        if reply == expected {
            return Outcome::Answered(started.elapsed());
        }
        if request::is_earlier_reply(reply, id, seq) {
            tally.late += 1;
            continue;
        }
        return Outcome::Failed(format!(
            "request {seq}: wrong reply: expected {}, got {}",
            quoted(&expected, 40),
            quoted(reply, 40)
        ));
    }
}
