//! `--target tcp-echo` and `--target tcp-once`: the uppercase echo over TCP.
//!
//! tcp-echo keeps one connection per client and makes every round trip on
//! it, as a chat or a database client would. tcp-once opens a connection per
//! request, as the classic TCPServer expects: connect, send, `shutdown(Write)`
//! (a FIN: "that is all I will send"), read until the server's FIN. Its
//! latency includes the three-way handshake and the close.
//!
//! All the clients run on one thread. A thread per client would measure
//! loadgen as much as the server: with 64 clients on a 2-CPU machine, each
//! reply would first wait for its client's thread to be scheduled, and
//! loadgen's thread switches would take CPU from the server. So, like the
//! wrk benchmark tool, loadgen runs these clients as an event loop: the
//! sockets are non-blocking, and mio (epoll, kqueue) says which of them has
//! a reply to read or room for a request. Each client is still a closed
//! loop of its own: one request at a time, its reply checked, then the next.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Registry, Token};
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

/// How often to look for requests that have waited longer than --timeout,
/// and to retry a connect() that failed at once.
const TIMEOUT_CHECK: Duration = Duration::from_millis(10);

/// Runs `count` clients until the run ends, each with a connection per
/// request if `once`; returns each client's tally.
pub fn clients(count: u32, once: bool, run: &Run) -> Vec<Tally> {
    let mut poll = match Poll::new() {
        Ok(poll) => poll,
        Err(err) => return vec![failed_to_start(run, err)],
    };
    let mut clients: Vec<Client> = (0..count)
        .map(|id| Client::new(id, once, Tally::new(Arc::clone(&run.live))))
        .collect();
    for (token, client) in clients.iter_mut().enumerate() {
        client.start_request(run, poll.registry(), Token(token));
    }
    let mut events = Events::with_capacity(1024);
    while clients.iter().any(|client| client.step != Step::Finished) {
        if let Err(err) = poll.poll(&mut events, Some(TIMEOUT_CHECK)) {
            if err.kind() == ErrorKind::Interrupted {
                continue;
            }
            // Nothing this loop can do without poll(): end every client.
            for client in &mut clients {
                client.give_up(poll.registry(), &format!("poll failed: {err}"));
            }
            break;
        }
        for event in events.iter() {
            let token = event.token();
            clients[token.0].advance(run, poll.registry(), token);
        }
        let now = Instant::now();
        for (token, client) in clients.iter_mut().enumerate() {
            let token = Token(token);
            match client.step {
                Step::Finished => {}
                // Its connect() failed at once: try again now, not in a
                // tight loop that would keep every other client waiting.
                Step::Paused => client.start_request(run, poll.registry(), token),
                _ if now >= client.deadline => {
                    client.end_request(Outcome::Lost, poll.registry());
                    client.start_request(run, poll.registry(), token);
                }
                _ => {}
            }
        }
    }
    clients.into_iter().map(|client| client.tally).collect()
}

/// Where a client is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Step {
    /// The three-way handshake of a new connection is under way.
    Connecting,
    /// The request is being written (the kernel may take it in parts).
    Sending,
    /// The whole request is written (tcp-once: and our FIN sent); the
    /// reply is being read.
    Receiving,
    /// A connect() failed at once; the next request starts at the next
    /// timeout check.
    Paused,
    /// The run is over for this client.
    Finished,
}

struct Client {
    id: u32,
    /// tcp-once: a connection per request.
    once: bool,
    seq: u64,
    /// None before a request that needs a new connection: the first one,
    /// every one for tcp-once, and one after a failed or lost request (the
    /// stream is then out of step: a late reply may still come).
    stream: Option<TcpStream>,
    step: Step,
    message: Vec<u8>,
    written: usize,
    reply: Vec<u8>,
    received: usize,
    /// When the request started: tcp-echo, once connected; tcp-once, with
    /// the handshake.
    started: Instant,
    /// When the request, or the handshake, counts as lost.
    deadline: Instant,
    tally: Tally,
}

impl Client {
    fn new(id: u32, once: bool, tally: Tally) -> Client {
        let now = Instant::now();
        Client {
            id,
            once,
            seq: 0,
            stream: None,
            step: Step::Paused,
            message: Vec::new(),
            written: 0,
            reply: Vec::new(),
            received: 0,
            started: now,
            deadline: now,
            tally,
        }
    }

    /// Starts the next request if the run has time and budget left,
    /// connecting first if need be, and goes as far with it as the socket
    /// allows; otherwise the client is finished.
    fn start_request(&mut self, run: &Run, registry: &Registry, token: Token) {
        if !self.begin(run, registry, token) {
            return;
        }
        self.advance(run, registry, token);
    }

    /// Sets up the next request; false if there is nothing to advance.
    fn begin(&mut self, run: &Run, registry: &Registry, token: Token) -> bool {
        if !run.next_request() {
            self.hang_up(registry);
            self.step = Step::Finished;
            return false;
        }
        self.seq += 1;
        self.message = request::message(self.id, self.seq, run.size);
        // tcp-once reads to the server's FIN: one byte more than the right
        // reply shows a wrong one.
        self.reply = vec![0; self.message.len() + usize::from(self.once)];
        (self.written, self.received) = (0, 0);
        self.started = Instant::now();
        self.deadline = self.started + run.timeout;
        if self.stream.is_some() {
            self.step = Step::Sending;
            return true;
        }
        // A non-blocking connect() returns at once; the socket becomes
        // writable when the handshake is done (or has failed).
        let connected = TcpStream::connect(run.server).and_then(|mut stream| {
            registry.register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)?;
            Ok(stream)
        });
        match connected {
            Ok(stream) => {
                self.stream = Some(stream);
                self.step = Step::Connecting;
                true
            }
            // Out of file descriptors or local ports, say.
            Err(err) => {
                self.tally
                    .record(Outcome::Failed(format!("connect failed: {err}")));
                self.step = Step::Paused;
                false
            }
        }
    }

    /// Goes as far as the socket allows: finish the handshake, write the
    /// request, read the reply, check it and start the next request, until
    /// a call says WouldBlock. mio reports readiness once per change
    /// ("edge-triggered"), so stopping earlier would wait for ever.
    fn advance(&mut self, run: &Run, registry: &Registry, token: Token) {
        loop {
            let Some(outcome) = self.step_forward(run) else {
                return; // the next event (or the timeout check) goes on
            };
            self.end_request(outcome, registry);
            if !self.begin(run, registry, token) {
                return;
            }
        }
    }

    /// Makes the current request progress as far as it can: Some(outcome)
    /// once it has ended, None when a call would block.
    fn step_forward(&mut self, run: &Run) -> Option<Outcome> {
        loop {
            let stream = self.stream.as_mut()?;
            match self.step {
                Step::Connecting => match stream.take_error() {
                    // The handshake failed: refused, unreachable...
                    Ok(Some(err)) | Err(err) => return Some(io_outcome(self.seq, "connect", &err)),
                    Ok(None) => match stream.peer_addr() {
                        Ok(_) => {
                            self.step = Step::Sending;
                            if !self.once {
                                self.started = Instant::now();
                                self.deadline = self.started + run.timeout;
                            }
                        }
                        // Still under way: the next event tells.
                        Err(err) if err.kind() == ErrorKind::NotConnected => return None,
                        Err(err) => return Some(io_outcome(self.seq, "connect", &err)),
                    },
                },
                Step::Sending => match stream.write(&self.message[self.written..]) {
                    Ok(n) => {
                        self.written += n;
                        if self.written < self.message.len() {
                            continue;
                        }
                        self.step = Step::Receiving;
                        // tcp-once: our FIN tells the server the request is whole.
                        if self.once {
                            if let Err(err) = stream.shutdown(Shutdown::Write) {
                                return Some(io_outcome(self.seq, "shutdown", &err));
                            }
                        }
                    }
                    // The send buffer is full: wait until it has room.
                    Err(err) if err.kind() == ErrorKind::WouldBlock => return None,
                    Err(err) if err.kind() == ErrorKind::Interrupted => {}
                    Err(err) => return Some(io_outcome(self.seq, "send", &err)),
                },
                Step::Receiving => match stream.read(&mut self.reply[self.received..]) {
                    // tcp-once: the server's FIN ends the reply.
                    Ok(0) if self.once => {
                        let reply = &self.reply[..self.received];
                        return Some(check(&self.message, reply, self.seq, self.started));
                    }
                    Ok(0) => {
                        let eof = ErrorKind::UnexpectedEof.into();
                        return Some(io_outcome(self.seq, "receive", &eof));
                    }
                    Ok(n) => {
                        self.received += n;
                        if self.received == self.reply.len() {
                            return Some(check(&self.message, &self.reply, self.seq, self.started));
                        }
                    }
                    // Nothing more yet: wait for the rest of the reply.
                    Err(err) if err.kind() == ErrorKind::WouldBlock => return None,
                    Err(err) if err.kind() == ErrorKind::Interrupted => {}
                    Err(err) => return Some(io_outcome(self.seq, "receive", &err)),
                },
                Step::Paused | Step::Finished => return None,
            }
        }
    }

    /// Records how the request ended. The connection goes after every
    /// tcp-once request, and after a failed or lost one.
    fn end_request(&mut self, outcome: Outcome, registry: &Registry) {
        if self.once || !matches!(outcome, Outcome::Answered(_)) {
            self.hang_up(registry);
        }
        self.tally.record(outcome);
    }

    /// Ends the client at once, with a request in flight counted as failed.
    fn give_up(&mut self, registry: &Registry, why: &str) {
        if matches!(
            self.step,
            Step::Connecting | Step::Sending | Step::Receiving
        ) {
            self.tally.record(Outcome::Failed(why.to_string()));
        }
        self.hang_up(registry);
        self.step = Step::Finished;
    }

    /// Stops watching the connection and closes it.
    fn hang_up(&mut self, registry: &Registry) {
        if let Some(mut stream) = self.stream.take() {
            let _ = registry.deregister(&mut stream);
        }
    }
}

/// The tally of a run that could not start its event loop.
fn failed_to_start(run: &Run, err: std::io::Error) -> Tally {
    let mut tally = Tally::new(Arc::clone(&run.live));
    tally.record(Outcome::Failed(format!(
        "failed to create the event queue (epoll or kqueue): {err}"
    )));
    tally
}

/// A timeout is a lost request; anything else the OS said is an error.
fn io_outcome(seq: u64, call: &str, err: &std::io::Error) -> Outcome {
    match err.kind() {
        _ if is_timeout(err) => Outcome::Lost,
        // The server's FIN came before the whole reply.
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
