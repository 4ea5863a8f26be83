//! `--target tcp-echo` and `--target tcp-once`: the uppercase echo over TCP.
//!
//! tcp-echo keeps one connection per client and makes every round trip on
//! it, as a chat or a database client would. tcp-once opens a connection per
//! request, as the classic TCPServer expects: connect, send, `shutdown(Write)`
//! (a FIN: "that is all I will send"), read until the server's FIN. Its
//! latency includes the three-way handshake and the close.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::Context;
use socketlab::explain::is_timeout;
use socketlab::printable::quoted;

use crate::Run;
use crate::request;
use crate::tally::{Outcome, Tally};

/// One connection before the run, so a refused one is a setup error with a
/// hint. Returns the first of the server's addresses that accepted (a name
/// such as `localhost` can have several): the clients use that one.
pub fn probe(addrs: &[SocketAddr], timeout: Duration) -> anyhow::Result<SocketAddr> {
    let stream = socketlab::connect::tcp(addrs, timeout)?;
    stream
        .peer_addr()
        .context("failed to read the server's address")
}

/// tcp-echo: one connection for all of this client's requests. After a
/// failed or lost request the stream is out of step (a late reply may still
/// come), so the client drops the connection and opens a new one.
pub fn kept_connection(id: u32, run: &Run, tally: &mut Tally) {
    let mut connection = None;
    let mut seq = 0;
    while run.next_request() {
        seq += 1;
        let message = request::message(id, seq, run.size);
        let stream = match connection.as_mut() {
            Some(stream) => stream,
            None => match open(run) {
                Ok(stream) => connection.insert(stream),
                Err(outcome) => {
                    tally.record(outcome);
                    continue;
                }
            },
        };
        let outcome = round_trip(stream, &message, seq);
        if !matches!(outcome, Outcome::Answered(_)) {
            connection = None;
        }
        tally.record(outcome);
    }
}

/// tcp-once: a new connection for every request.
pub fn connection_per_request(id: u32, run: &Run, tally: &mut Tally) {
    let mut seq = 0;
    while run.next_request() {
        seq += 1;
        let message = request::message(id, seq, run.size);
        tally.record(one_connection(run, &message, seq));
    }
}

/// Connects with every wait bounded by --timeout. A connection that is not
/// accepted in time counts as lost: a full listen backlog makes Linux drop
/// the SYN, and the client would only retry it a second later.
fn open(run: &Run) -> Result<TcpStream, Outcome> {
    let stream = TcpStream::connect_timeout(&run.server, run.timeout).map_err(|err| {
        if is_timeout(&err) {
            Outcome::Lost
        } else {
            Outcome::Failed(format!("connect failed: {err}"))
        }
    })?;
    let timeouts = stream
        .set_read_timeout(Some(run.timeout))
        .and_then(|()| stream.set_write_timeout(Some(run.timeout)));
    match timeouts {
        Ok(()) => Ok(stream),
        Err(err) => Err(Outcome::Failed(format!(
            "failed to set the timeouts: {err}"
        ))),
    }
}

/// Writes the request and reads exactly as many bytes back.
fn round_trip(stream: &mut TcpStream, message: &[u8], seq: u64) -> Outcome {
    let started = Instant::now();
    if let Err(err) = stream.write_all(message) {
        return io_outcome(seq, "send", &err);
    }
    let mut reply = vec![0u8; message.len()];
    if let Err(err) = stream.read_exact(&mut reply) {
        return io_outcome(seq, "receive", &err);
    }
    check(message, &reply, seq, started)
}

/// Connect, send, half-close, read to the server's FIN.
fn one_connection(run: &Run, message: &[u8], seq: u64) -> Outcome {
    let started = Instant::now();
    let mut stream = match open(run) {
        Ok(stream) => stream,
        Err(outcome) => return outcome,
    };
    if let Err(err) = stream.write_all(message) {
        return io_outcome(seq, "send", &err);
    }
    if let Err(err) = stream.shutdown(Shutdown::Write) {
        return io_outcome(seq, "shutdown", &err);
    }
    let mut reply = Vec::with_capacity(message.len());
    // A read of 0 bytes (the server's FIN) ends read_to_end().
    if let Err(err) = stream.read_to_end(&mut reply) {
        return io_outcome(seq, "receive", &err);
    }
    check(message, &reply, seq, started)
}

/// A timeout is a lost request; anything else the OS said is an error.
fn io_outcome(seq: u64, call: &str, err: &std::io::Error) -> Outcome {
    match err.kind() {
        _ if is_timeout(err) => Outcome::Lost,
        // read_exact() hit the server's FIN before the whole reply.
        ErrorKind::UnexpectedEof => Outcome::Failed(format!(
            "request {seq}: the server closed the connection before the whole reply came back"
        )),
        _ => Outcome::Failed(format!("request {seq}: {call} failed: {err}")),
    }
}

/// The reply must be exactly the uppercased request.
fn check(message: &[u8], reply: &[u8], seq: u64, started: Instant) -> Outcome {
    let expected = request::expected_reply(message);
    if reply == expected {
        return Outcome::Answered(started.elapsed());
    }
    Outcome::Failed(format!(
        "request {seq}: wrong reply: expected {}, got {}",
        quoted(&expected, 40),
        quoted(reply, 40)
    ))
}
