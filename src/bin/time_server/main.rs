//! time_server: tells the time, the date and the temperature to clients
//! served by a fixed pool of worker threads.
//!
//! The seed 001 lab. A thread pool starts `--threads` workers once; each
//! accepted connection is a job for one of them, which serves that client
//! until it leaves. The server calls `accept()` only when a worker is free,
//! so with every worker busy a new client's TCP handshake still completes
//! (the kernel does it) but the connection waits in the listen backlog, and
//! its key exchange is answered when one of the busy clients leaves:
//! `ss -tln 'sport = :7777'` shows it in Recv-Q. Compare `threaded_server`,
//! which starts a thread per connection.
//!
//! A worker is precious, so no client may hold one for ever: the handshake
//! line must arrive within `--handshake-timeout`, each request frame within
//! `--request-timeout` of its first byte, and a client that sends no
//! request for `--idle-timeout` is told so and closed.
//!
//! Each session starts with a Diffie-Hellman exchange (p = 257, g = 11) in
//! the clear, then every message is a length-prefixed frame whose bytes are
//! Caesar-shifted by the agreed key: labs/time-protocol.md. `--plain`
//! leaves the shift out, for comparing captures. `SOCKETLAB_NOW`
//! (RFC 3339, UTC) pins the clock, so TIME and DATE answer the same on
//! every run.
//!
//! It binds 0.0.0.0 by default, every interface, so a client on another host
//! (or another network namespace) can reach it, as in the seed's VM test.
//!
//! Terminal 1: `cargo run --bin time_server`
//! Terminal 2: `cargo run --bin time_client`
//! Worksheet:  labs/05-time-service.md
//!
//! Read this file first (the listening socket and the accept loop), then
//! `pool.rs` (the workers), `session.rs` (one client's conversation) and
//! `answers.rs` (what the answers say).

mod answers;
mod pool;
mod session;

use std::net::{SocketAddr, TcpListener};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use socket2::{Domain, Protocol, Socket, Type};
use socketlab::cli::{ServerArgs, positive_duration};
use socketlab::explain::{self, Proto, Step};
use socketlab::limit::ConnectionLimit;
use socketlab::listen::pause_after_accept_error;
use socketlab::log::Log;

use answers::Clock;
use pool::ThreadPool;

/// How many connections whose handshake the kernel has completed may wait
/// for `accept()` while every worker is busy. The classic lab's `listen(1)`
/// makes the kernel drop new SYNs as soon as one client waits; 1024 queues
/// a thousand clients (Linux caps it at `net.core.somaxconn`, 4096 by default).
const BACKLOG: i32 = 1024;

/// Answer TIME, DATE and TEMP requests over a Caesar-shifted TCP protocol, with a pool of worker threads.
#[derive(Parser, Debug)]
#[command(name = "time_server", version, mut_arg("port", |a| a.default_value("7777")))]
struct Cli {
    #[command(flatten)]
    server: ServerArgs,

    /// Worker threads: how many clients are served at once (the rest wait in the listen backlog)
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..=4096))]
    threads: u16,

    /// No key exchange and no Caesar shift (clients must use --plain too)
    #[arg(long)]
    plain: bool,

    /// How long a new client may take to send its handshake line before the
    /// server closes the connection, freeing the worker
    #[arg(long, default_value = "5s", value_parser = positive_duration)]
    handshake_timeout: Duration,

    /// How long a whole request frame may take to arrive, counted from its first byte
    #[arg(long, default_value = "5s", value_parser = positive_duration)]
    request_timeout: Duration,

    /// How long a client may send no request (after the handshake or an
    /// answer) before the server tells it so and closes, freeing the worker
    #[arg(long, default_value = "2m", value_parser = positive_duration)]
    idle_timeout: Duration,
}

/// What every connection's worker needs to know.
struct Service {
    plain: bool,
    handshake_timeout: Duration,
    request_timeout: Duration,
    idle_timeout: Duration,
    clock: Clock,
    log: Log,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    explain::report(run(&cli))
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    // Checked before binding, so a bad SOCKETLAB_NOW is a setup error.
    let clock = Clock::from_env()?;
    let listener = listen(cli.server.addr())?;
    let local = listener
        .local_addr()
        .context("failed to read the bound address")?;
    println!("time_server listening on {local} (TCP)");
    let threads = usize::from(cli.threads);
    let pool = ThreadPool::new(threads).map_err(|err| {
        explain::hinted(
            format!("failed to start {threads} worker threads: {err}"),
            "the OS limits threads per user (ulimit -u) and memory: try a smaller --threads",
        )
    })?;
    let service = Arc::new(Service {
        plain: cli.plain,
        handshake_timeout: cli.handshake_timeout,
        request_timeout: cli.request_timeout,
        idle_timeout: cli.idle_timeout,
        clock,
        log: cli.server.log(),
    });
    log_setup(&service, threads);
    serve(&listener, &pool, service)
}

/// `socket()`, `bind()`, `listen()`: the listening socket, one call each
/// (socket2 shows what `TcpListener::bind` does in one go).
fn listen(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    let step = || Step::Bind(Proto::Tcp, addr);
    // socket(AF_INET or AF_INET6, SOCK_STREAM, IPPROTO_TCP): no address yet.
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        .with_context(step)?;
    // SO_REUSEADDR lets a restarted server bind its port while connections
    // of its previous run still sit in TIME_WAIT. (On Windows the option
    // means "share a port in use", so it is set on Unix only.)
    if cfg!(unix) {
        socket.set_reuse_address(true).with_context(step)?;
    }
    // bind(): claim the address and port; it fails if another socket holds them.
    socket.bind(&addr.into()).with_context(step)?;
    // listen(): from now on the kernel answers SYNs itself and queues up to
    // BACKLOG completed connections until accept() takes them.
    socket.listen(BACKLOG).with_context(step)?;
    Ok(socket.into())
}

/// The accept loop: one job on the pool per connection, never more jobs at
/// once than there are workers.
fn serve(listener: &TcpListener, pool: &ThreadPool, service: Arc<Service>) -> anyhow::Result<()> {
    let free_workers = ConnectionLimit::new(pool.size());
    loop {
        // Take a worker before accept(): while every worker is busy the
        // server accepts nothing, and new clients wait in the kernel's
        // listen backlog instead of in a queue inside this process.
        let slot = free_workers.acquire();
        // accept(): the next connection whose handshake the kernel completed.
        let (stream, peer) = match listener.accept() {
            Ok(connection) => connection,
            // A client that reset before accept(), or a full file table:
            // one connection's problem, not the server's.
            Err(err) => {
                service
                    .log
                    .note(format_args!("accept failed: {err} (still serving)"));
                pause_after_accept_error(&err);
                continue;
            }
        };
        let service = Arc::clone(&service);
        pool.execute(move || {
            session::serve_client(stream, peer, &service);
            drop(slot);
        })
        .context("failed to hand a connection to a worker")?;
    }
}

/// The log lines that say how this server runs.
fn log_setup(service: &Service, threads: usize) {
    let log = service.log;
    log.note(format_args!(
        "{threads} workers, {}; press Ctrl-C to stop",
        if service.plain {
            "plain text (--plain)"
        } else {
            "Caesar shift keyed by Diffie-Hellman (p = 257, g = 11)"
        }
    ));
    log.note(format_args!(
        "a client is closed after {} without a request (--idle-timeout)",
        humantime::format_duration(service.idle_timeout)
    ));
    if let Clock::Pinned(at) = service.clock {
        log.note(format_args!(
            "clock pinned to {} by SOCKETLAB_NOW",
            humantime::format_rfc3339_millis(at)
        ));
    }
}
