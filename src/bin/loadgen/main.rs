//! loadgen: many concurrent clients against one of the lab servers, to
//! answer "how does my server hold up?".
//!
//! The seed 000 lab asks for the server's response time. One client on an
//! idle machine measures little: a server shows what it is made of when
//! many clients ask at once. loadgen starts `--clients` clients, each in a
//! closed loop (send a request, wait for its reply, check it, send the
//! next), for `--duration`. Every reply is checked: each request
//! carries its client's number and sequence number, so a reply meant for
//! another client, or for an earlier request, is caught. At the end it
//! prints requests per second, latency percentiles (p50: half the requests
//! were faster; p99: all but one in a hundred), errors and lost requests.
//!
//! Targets: `udp-echo` (udp_server), `tcp-echo` (event_server or
//! tcp_server, one kept connection per client), `tcp-once` (their --once
//! and the classic Python TCPServer: a connection per request) and `time`
//! (time_server).
//! The TCP echo clients all run on one thread, with an event loop, so that
//! a fast server is not measured through loadgen's own thread switches (see
//! echo.rs); the udp-echo and time clients have a thread each.
//!
//! Terminal 1: `cargo run --release --bin event_server -- --quiet`
//! Terminal 2: `cargo run --release --bin loadgen -- --target tcp-echo 127.0.0.1:12000 --clients 64`
//! Worksheet:  labs/01-udp-tcp.md ("How does my server hold up?"); scripts/bench.sh

mod echo;
mod request;
mod tally;
mod time;
mod udp;

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use socketlab::cli::{positive_duration, resolve};
use socketlab::explain;
use socketlab::rtt;

use tally::{Live, Tally};

/// Many concurrent clients against a lab server: requests/s, latency percentiles, errors, loss.
#[derive(Parser, Debug)]
#[command(name = "loadgen", version)]
struct Cli {
    /// What the server speaks
    #[arg(long, value_enum)]
    target: Target,

    /// The server, as HOST:PORT (a name such as localhost works; [::1]:PORT for IPv6)
    #[arg(value_name = "HOST:PORT", value_parser = host_port)]
    server: (String, u16),

    /// Concurrent clients, each with its own socket (tcp-echo, tcp-once: all on one thread; udp-echo, time: a thread each)
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=4096))]
    clients: u32,

    /// How long to send requests (e.g. 300ms, 5s)
    #[arg(long, default_value = "5s", value_parser = positive_duration)]
    duration: Duration,

    /// Bytes per echo request (at least the client and sequence tag, about 16)
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=65507))]
    size: u32,

    /// How long one request may wait for its reply before it counts as lost
    #[arg(long, default_value = "1s", value_parser = positive_duration)]
    timeout: Duration,

    /// Stop after this many requests in all (as well as after --duration)
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    requests: Option<u64>,

    /// time: requests per session before the client reconnects (0: one session for the whole run)
    #[arg(long, default_value_t = 0)]
    session_requests: u64,
}

/// The protocols loadgen can speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Target {
    /// udp_server: one datagram, its uppercased copy back
    UdpEcho,
    /// tcp_server: one kept connection per client, many round trips on it
    TcpEcho,
    /// tcp_server --once, the classic TCPServer: connect, send, half-close, read to EOF
    TcpOnce,
    /// time_server: a key exchange per session, then TIME requests
    Time,
}

/// What every client shares: where to send, what, and until when.
pub struct Run {
    pub server: SocketAddr,
    pub size: usize,
    pub timeout: Duration,
    pub deadline: Instant,
    pub session_requests: u64,
    /// Requests still allowed by `--requests` (u64::MAX: no cap).
    budget: AtomicU64,
    /// Counts the progress line shows while the clients run.
    pub live: Arc<Live>,
}

impl Run {
    /// True if another request may start: the run has time and budget left.
    pub fn next_request(&self) -> bool {
        if Instant::now() >= self.deadline {
            return false;
        }
        // fetch_update never takes the budget below zero, so a capped run
        // sends exactly --requests requests whatever the number of clients.
        self.budget
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                left.checked_sub(1)
            })
            .is_ok()
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    explain::report(run(&cli))
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    let (host, port) = &cli.server;
    let addrs = resolve(host, *port)?;
    // One request before the clients start: a server that is not there is a
    // setup error with a hint, not thousands of failed requests.
    let server = match cli.target {
        Target::UdpEcho => udp::probe(addrs[0], cli.timeout)?,
        Target::TcpEcho | Target::TcpOnce | Target::Time => echo::probe(&addrs, cli.timeout)?,
    };
    println!(
        "loadgen: {target} {server}, {clients} clients for {duration}{size}",
        target = cli
            .target
            .to_possible_value()
            .expect("no skipped variants")
            .get_name(),
        clients = cli.clients,
        duration = humantime::format_duration(cli.duration),
        size = if cli.target == Target::Time {
            String::new()
        } else {
            format!(", {}-byte requests", cli.size)
        },
    );
    let started = Instant::now();
    let shared = Arc::new(Run {
        server,
        size: cli.size as usize,
        timeout: cli.timeout,
        deadline: started + cli.duration,
        session_requests: cli.session_requests,
        budget: AtomicU64::new(cli.requests.unwrap_or(u64::MAX)),
        live: Arc::default(),
    });
    let clients = start_clients(cli.target, cli.clients, &shared)?;
    show_progress(&shared, started, &clients);
    let tallies = clients
        .into_iter()
        .map(|(client, _)| {
            client
                .join()
                .map_err(|_| anyhow::anyhow!("a client thread panicked"))
        })
        .collect::<anyhow::Result<Vec<Vec<Tally>>>>()?;
    let tallies: Vec<Tally> = tallies.into_iter().flatten().collect();
    // The run lasted until the last request ended, not until the last
    // queued client gave up waiting.
    let elapsed = tallies
        .iter()
        .filter_map(|tally| tally.last_done)
        .max()
        .map_or(started.elapsed(), |last| last - started);
    report(&tallies, elapsed, cli.clients)
}

/// A thread of clients and the flag it raises when they have all finished.
type ClientThread = (thread::JoinHandle<Vec<Tally>>, Arc<AtomicBool>);

/// Starts the clients: the TCP echo clients all on one thread, the others
/// on a thread each. Every thread returns its clients' tallies when the run
/// ends.
fn start_clients(
    target: Target,
    clients: u32,
    shared: &Arc<Run>,
) -> anyhow::Result<Vec<ClientThread>> {
    match target {
        Target::TcpEcho | Target::TcpOnce => {
            let once = target == Target::TcpOnce;
            let thread = spawn("TCP echo clients".to_string(), shared, move |run| {
                echo::clients(clients, once, run)
            })?;
            Ok(vec![thread])
        }
        Target::UdpEcho => a_thread_each(clients, shared, udp::client),
        Target::Time => a_thread_each(clients, shared, |_, run, tally| time::client(run, tally)),
    }
}

/// Starts `clients` threads, each running `client` with its own number.
fn a_thread_each(
    clients: u32,
    shared: &Arc<Run>,
    client: fn(u32, &Run, &mut Tally),
) -> anyhow::Result<Vec<ClientThread>> {
    (0..clients)
        .map(|id| {
            spawn(format!("client {id}"), shared, move |run| {
                let mut tally = Tally::new(Arc::clone(&run.live));
                client(id, run, &mut tally);
                vec![tally]
            })
        })
        .collect()
}

/// Starts a thread that runs `clients` and raises its flag when they end.
fn spawn(
    name: String,
    shared: &Arc<Run>,
    clients: impl FnOnce(&Run) -> Vec<Tally> + Send + 'static,
) -> anyhow::Result<ClientThread> {
    let shared = Arc::clone(shared);
    let done = Arc::new(AtomicBool::new(false));
    let done_by_clients = Arc::clone(&done);
    let handle = thread::Builder::new()
        .name(name.clone())
        .spawn(move || {
            let tallies = clients(&shared);
            done_by_clients.store(true, Ordering::Relaxed);
            tallies
        })
        .map_err(|err| {
            explain::hinted(
                format!("failed to start thread '{name}': {err}"),
                "the OS limits threads per user (ulimit -u) and memory: try fewer --clients",
            )
        })?;
    Ok((handle, done))
}

/// Waits for the clients, redrawing one status line a few times a second
/// when stderr is a terminal (never into a pipe or a log file).
fn show_progress(shared: &Run, started: Instant, clients: &[ClientThread]) {
    let terminal = std::io::stderr().is_terminal();
    let mut last_drawn = Instant::now();
    while !clients.iter().all(|(_, done)| done.load(Ordering::Relaxed)) {
        thread::sleep(Duration::from_millis(20));
        if terminal && last_drawn.elapsed() >= Duration::from_millis(250) {
            last_drawn = Instant::now();
            // \r returns to the start of the line; \x1b[K erases what was left of it.
            eprint!(
                "\r{:.1} s: {}\x1b[K",
                started.elapsed().as_secs_f64(),
                shared.live.line()
            );
        }
    }
    if terminal {
        eprint!("\r\x1b[K");
    }
}

/// How many of the first error messages the summary shows.
const ERRORS_SHOWN: usize = 5;

/// Prints the summary; the run fails if any request failed or was lost.
fn report(tallies: &[Tally], elapsed: Duration, clients: u32) -> anyhow::Result<()> {
    let (mut sent, mut rtts) = (0, Vec::new());
    let (mut errors, mut lost, mut late, mut served) = (0, 0, 0, 0);
    let mut messages = Vec::new();
    for tally in tallies {
        sent += tally.sent;
        rtts.extend_from_slice(&tally.rtts);
        errors += tally.errors;
        lost += tally.lost;
        late += tally.late;
        served += u32::from(!tally.rtts.is_empty());
        messages.extend(tally.messages.iter().cloned());
    }
    rtts.sort_unstable();
    let answered = rtts.len();
    let seconds = elapsed.as_secs_f64();
    println!("requests: {sent} sent, {answered} answered in {seconds:.2} s");
    println!("requests/s: {:.0}", answered as f64 / seconds);
    if let Some(&max) = rtts.last() {
        let (p50, p99) = (percentile(&rtts, 50.0), percentile(&rtts, 99.0));
        let (p50, p99, max) = (rtt::ms(p50), rtt::ms(p99), rtt::ms(max));
        println!("latency: p50 {p50}, p99 {p99}, max {max}");
    }
    println!("errors: {errors}");
    for message in messages.iter().take(ERRORS_SHOWN) {
        println!("  {message}");
    }
    println!("lost: {lost} (no reply within the timeout)");
    if late > 0 {
        // Over UDP: replies to requests already counted lost, or duplicates.
        println!("late replies ignored: {late}");
    }
    println!("clients served: {served} of {clients}");
    if clients > served {
        println!(
            "  {} clients never got an answer: they waited for the whole run (in the listen \
             backlog, or for a worker), or every request they sent was lost",
            clients - served
        );
    }
    if errors + lost > 0 {
        let what = match (errors, lost) {
            (0, lost) => format!("{lost} requests were lost"),
            (errors, 0) => format!("{errors} requests failed"),
            (errors, lost) => format!("{errors} requests failed and {lost} were lost"),
        };
        return Err(explain::hinted(
            what,
            "errors are listed above; a lost request got no reply within --timeout (UDP: a \
             datagram dropped; TCP: a connection the server never accepted, because a full listen \
             backlog drops the SYN, or never answered)",
        ));
    }
    if answered == 0 {
        return Err(explain::hinted(
            "no request was answered",
            "the server accepted but never replied within the run: try a longer --duration",
        ));
    }
    Ok(())
}

/// The `p`th percentile of sorted, non-empty `rtts` by nearest rank: the
/// smallest RTT that at least `p`% of the replies did not exceed.
fn percentile(rtts: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * rtts.len() as f64).ceil() as usize;
    rtts[rank.clamp(1, rtts.len()) - 1]
}

/// Parses `HOST:PORT`; the host is checked later, when it is resolved.
fn host_port(text: &str) -> Result<(String, u16), String> {
    let bad = || format!("invalid server '{text}': give HOST:PORT, such as 127.0.0.1:12000");
    let (host, port) = text.rsplit_once(':').ok_or_else(bad)?;
    let port = port.parse::<u16>().map_err(|_| bad())?;
    if host.is_empty() || port == 0 {
        return Err(bad());
    }
    Ok((host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let rtts: Vec<Duration> = (1..=100).map(Duration::from_micros).collect();
        assert_eq!(percentile(&rtts, 50.0), Duration::from_micros(50));
        assert_eq!(percentile(&rtts, 99.0), Duration::from_micros(99));
        assert_eq!(percentile(&rtts, 100.0), Duration::from_micros(100));
        assert_eq!(percentile(&rtts, 0.0), Duration::from_micros(1));
        assert_eq!(percentile(&rtts[..1], 99.0), Duration::from_micros(1));
    }
}
