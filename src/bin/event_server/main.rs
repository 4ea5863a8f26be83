//! event_server: the uppercase server of tcp_server, on one thread with an event loop.
//!
//! The C10K lesson ("how does one server handle ten thousand clients?",
//! Dan Kegel, 1999; Beej's Guide, `pollserver.c`). `tcp_server` gives each
//! connection a blocking socket and a thread: simple, but each request
//! wakes a sleeping thread, costs a thread switch, and every client holds a
//! thread's stack while it waits. Here one thread serves every client. The
//! sockets are non-blocking: a call that would have to wait returns
//! `WouldBlock` at once instead. The loop asks the OS which sockets are
//! ready (`epoll_wait()` on Linux, `kevent()` on macOS, IOCP-based polling
//! on Windows, through the mio crate), serves exactly those, and asks again,
//! so it never waits on one client while another has bytes for it. With 64
//! busy clients one wait returns many ready sockets, and the thread serves
//! them all without sleeping: no thread switch per request, and a thousand
//! idle clients cost a thousand small structs, not a thousand threads.
//!
//! The protocol and the options are tcp_server's: each chunk a connection
//! sends comes back with its ASCII letters uppercased, until the client's
//! FIN (a read of 0 bytes), then our FIN. `--once` is the classic server:
//! one `recv(1024)`, reply, close (a longer message is cut, and closing with
//! bytes unread makes the kernel send a RST instead of a FIN). Compare
//! `tcp_server` (a thread per connection) and `time_server` (a fixed pool)
//! under the same `loadgen` run, or all at once with `scripts/bench.sh`.
//!
//! It binds 0.0.0.0 by default, every interface, so a client on another host
//! (or another network namespace) can reach it, as in the two-VM lab.
//!
//! Terminal 1: `cargo run --release --bin event_server -- --quiet`
//! Terminal 2: `cargo run --bin tcp_client -- hello`, or many clients at once:
//!             `cargo run --release --bin loadgen -- --target tcp-echo 127.0.0.1:12000 --clients 64`
//! Worksheet:  labs/01-udp-tcp.md (Part I, "How does my server hold up?")

mod connection;

use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use socketlab::cli::{self, ServerArgs};
use socketlab::explain;
use socketlab::limit;
use socketlab::listen;
use socketlab::log::Log;

use connection::{Connection, End, Turn};

/// Uppercase what each TCP connection sends and write it back, every connection on one event loop
#[derive(Parser, Debug)]
#[command(name = "event_server", version)]
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

    /// Close a connection that moves no byte either way for this long (it sends nothing, or stops reading its replies)
    #[arg(long, default_value = "5m", value_parser = cli::positive_duration)]
    idle_timeout: Duration,
}

/// The listening socket's token; connections get 1, 2, 3...
const LISTENER: Token = Token(0);

/// How long to wait before calling `accept()` again after it failed with
/// something other than a vanished client (out of file descriptors, say).
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

fn main() -> ExitCode {
    let cli = Cli::parse();
    explain::report(run(&cli))
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    let listener = listen::tcp(cli.server.addr())?;
    let local = listener
        .local_addr()
        .context("failed to read the bound address")?;
    // Non-blocking: accept() with nobody waiting returns WouldBlock, it
    // does not stop the loop.
    listener
        .set_nonblocking(true)
        .context("failed to make the listening socket non-blocking")?;
    let mut server = Server::new(TcpListener::from_std(listener), cli)?;
    println!("event_server listening on {local} (TCP)");
    server.serve_forever()
}

/// The event loop's state: the listening socket, every open connection, and
/// what the loop has promised itself to come back to.
struct Server {
    poll: Poll,
    listener: TcpListener,
    connections: HashMap<Token, Connection>,
    next_token: usize,
    /// Connections that used up their reads for one turn and may have more
    /// bytes waiting: no new event will come for those bytes (see
    /// `Connection::serve_stream`), so the loop gives them their next turn
    /// itself, after one turn for every other ready connection.
    more_to_read: Vec<Token>,
    /// When to call `accept()` again after it failed.
    accept_at: Option<Instant>,
    /// Set while --max-clients connections are served: the loop does not
    /// accept, and new clients wait in the listen backlog.
    at_cap: bool,
    once: bool,
    max_clients: usize,
    idle_timeout: Duration,
    log: Log,
    /// One buffer for every read: a connection keeps only its unsent bytes.
    buffer: Vec<u8>,
}

impl Server {
    fn new(mut listener: TcpListener, cli: &Cli) -> anyhow::Result<Server> {
        let poll = Poll::new().context("failed to create the event queue (epoll or kqueue)")?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)
            .context("failed to watch the listening socket")?;
        Ok(Server {
            poll,
            listener,
            connections: HashMap::new(),
            next_token: LISTENER.0 + 1,
            more_to_read: Vec::new(),
            accept_at: None,
            at_cap: false,
            once: cli.once,
            max_clients: cli.max_clients as usize,
            idle_timeout: cli.idle_timeout,
            log: cli.server.log(),
            buffer: vec![0; cli.buffer as usize],
        })
    }

    /// The event loop: wait until a socket is ready, serve the ready ones,
    /// close the idle ones, and again.
    fn serve_forever(&mut self) -> anyhow::Result<()> {
        let mut events = Events::with_capacity(1024);
        // How often to look for idle connections: closing one a little
        // after --idle-timeout is fine, closing it before is not.
        let sweep_every =
            (self.idle_timeout / 10).clamp(Duration::from_millis(10), Duration::from_secs(1));
        let mut next_sweep = Instant::now() + sweep_every;
        loop {
            let mut wake_at = next_sweep;
            if let Some(at) = self.accept_at {
                wake_at = wake_at.min(at);
            }
            // With connections that have more to read, only look for new
            // events; do not wait.
            let timeout = if self.more_to_read.is_empty() {
                wake_at.saturating_duration_since(Instant::now())
            } else {
                Duration::ZERO
            };
            match self.poll.poll(&mut events, Some(timeout)) {
                Ok(()) => {}
                // A signal arrived while waiting: just wait again.
                Err(err) if err.kind() == ErrorKind::Interrupted => continue,
                Err(err) => return Err(err).context("failed to wait for ready sockets"),
            }
            let queued = std::mem::take(&mut self.more_to_read);
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept_waiting(),
                    // Already queued for a turn below: one turn per loop.
                    token if self.is_queued(token) => {}
                    token => self.serve(token),
                }
            }
            for token in queued {
                if let Some(connection) = self.connections.get_mut(&token) {
                    connection.queued = false;
                }
                self.serve(token);
            }
            let now = Instant::now();
            if now >= next_sweep {
                self.close_idle(now);
                next_sweep = now + sweep_every;
            }
            if self.accept_at.is_some_and(|at| now >= at) {
                self.accept_waiting();
            }
        }
    }

    /// Accepts every client waiting in the backlog, up to --max-clients.
    /// mio reports readiness once per change ("edge-triggered"), so the loop
    /// must call accept() until it says WouldBlock, or it would hear nothing
    /// more about the clients already waiting.
    fn accept_waiting(&mut self) {
        self.accept_at = None;
        loop {
            if self.connections.len() >= self.max_clients {
                if !self.at_cap {
                    self.at_cap = true;
                    limit::log_at_cap(self.log, self.max_clients);
                }
                return;
            }
            match self.listener.accept() {
                Ok((stream, peer)) => self.add(stream, peer),
                // The backlog is empty.
                Err(err) if err.kind() == ErrorKind::WouldBlock => return,
                // A client that reset before it was accepted is simply gone.
                Err(err)
                    if matches!(
                        err.kind(),
                        ErrorKind::ConnectionAborted | ErrorKind::Interrupted
                    ) => {}
                // Out of file descriptors (EMFILE), say: it would fail again
                // at once, so serve the others and try again a little later.
                Err(err) => {
                    self.log
                        .note(format_args!("accept failed: {err} (still listening)"));
                    self.accept_at = Some(Instant::now() + ACCEPT_RETRY);
                    return;
                }
            }
        }
    }

    /// Starts watching a new connection for bytes to read and room to write.
    fn add(&mut self, mut stream: TcpStream, peer: SocketAddr) {
        let token = Token(self.next_token);
        self.next_token += 1;
        // Both, once and for good: an event comes each time bytes arrive,
        // and each time room frees up in the send buffer after a write
        // said WouldBlock, so a reply that did not fit is finished later.
        let interest = Interest::READABLE | Interest::WRITABLE;
        if let Err(err) = self.poll.registry().register(&mut stream, token, interest) {
            self.log.peer(
                peer,
                format_args!("error: cannot watch this connection: {err}"),
            );
            return;
        }
        self.log.peer(peer, "connected");
        self.connections
            .insert(token, Connection::new(stream, peer));
    }

    /// Gives one ready connection its turn.
    fn serve(&mut self, token: Token) {
        // Closed earlier in this turn of the loop: nothing to do.
        let Some(connection) = self.connections.get_mut(&token) else {
            return;
        };
        let turn = if self.once {
            connection.serve_once(&mut self.buffer)
        } else {
            connection.serve_stream(&mut self.buffer)
        };
        match turn {
            // The OS will say when there is more to do.
            Ok(Turn::Waiting) => {}
            Ok(Turn::MoreToRead) => {
                connection.queued = true;
                self.more_to_read.push(token);
            }
            Ok(Turn::Finished) => self.close(token, End::Finished),
            Err(err) => self.close(token, End::Failed(err)),
        }
    }

    /// True if the connection already waits for a turn in `more_to_read`.
    fn is_queued(&self, token: Token) -> bool {
        self.connections
            .get(&token)
            .is_some_and(|connection| connection.queued)
    }

    /// Closes every connection that moved no byte for --idle-timeout.
    fn close_idle(&mut self, now: Instant) {
        let idle: Vec<(Token, End)> = self
            .connections
            .iter()
            .filter(|(_, connection)| now - connection.last_progress >= self.idle_timeout)
            .map(|(&token, connection)| (token, connection.why_idle()))
            .collect();
        for (token, end) in idle {
            self.close(token, end);
        }
    }

    /// Logs how a connection ended, closes it, and takes a waiting client
    /// if the server was at its cap.
    fn close(&mut self, token: Token, end: End) {
        let Some(mut connection) = self.connections.remove(&token) else {
            return;
        };
        let _ = self.poll.registry().deregister(&mut connection.stream);
        for line in connection.log_lines(&end, self.once, self.buffer.len(), self.idle_timeout) {
            self.log.peer(connection.peer, line);
        }
        // Dropping the stream closes the socket: a FIN, or a RST if the
        // client sent bytes that were never read.
        drop(connection);
        if self.at_cap {
            self.at_cap = false;
            limit::log_accepting_again(self.log);
            self.accept_waiting();
        }
    }
}
