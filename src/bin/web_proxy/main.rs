//! web_proxy: a caching forward proxy for HTTP/1.1, with CONNECT tunnels.
//!
//! The K&R multithreaded web proxy lab, grown up. A browser (or curl) sends
//! the proxy the whole URL, `GET http://example.org/page HTTP/1.1`; the
//! proxy opens its own TCP connection to example.org, sends the request
//! there in the usual `GET /page` form, and relays the response back. In
//! between it keeps copies of what RFC 9111 allows in a cache, so a second
//! request for the same object is answered without the origin, or after a
//! cheap conditional request (`If-None-Match`, `304 Not Modified`). HTTPS
//! goes through a `CONNECT host:443` tunnel whose bytes the proxy copies
//! without understanding them, so it cannot cache them.
//!
//! One thread serves each client connection, for as many requests as the
//! client sends on it (keep-alive).
//!
//! The files, in the order a request meets them. Imports flow down the
//! table, with two exceptions: `disk.rs` builds an `entry.rs` entry, and
//! `proxy.rs`, the types every file shares, names the cache and the port
//! list. There is no cycle.
//!
//! | file | what it does |
//! |---|---|
//! | `main.rs` | flags, `listen()`, the accept loop; who may connect (403), how many at once (503) |
//! | `client.rs` | one client connection: read each request head (with a deadline), answer, keep alive; the access log |
//! | `tunnel.rs` | `CONNECT host:443`: a TCP connection relayed both ways, half-closes and idle limit included |
//! | `forward.rs` | one request: check it, ask the cache, revalidate or forward, hand the response to `relay` |
//! | `origin.rs` | talking to the origin: connect or reuse, send the request, read the response head, pass 1xx on |
//! | `relay.rs` | the response to the client, re-framed and streamed, with a copy for the cache |
//! | `hit.rs` | answering from the cache: the stored response with `Age`, a 304, a byte range |
//! | `stale.rs` | serving stale: when the origin is unreachable (RFC 9111 §4.2.4), and within `stale-while-revalidate` (RFC 5861) |
//! | `fields.rs` | hop-by-hop fields (RFC 9110 §7.6.1): what is never forwarded |
//! | `cache_status.rs` | `Cache-Status` (RFC 9211): why the cache did what it did |
//! | `cache.rs` | the store in memory: bounded by `--cache-size`, least recently used evicted |
//! | `entry.rs` | one stored response: head, body, times, and refreshing it after a 304 |
//! | `vary.rs` | `Vary` (RFC 9111 §4.1): which stored variant answers which request |
//! | `disk.rs` | `--cache-dir`: entries as files with a checksum, loaded at start |
//! | `policy.rs` | the RFC 9111 rules as pure functions: may it be stored, is it fresh, may it be reused |
//! | `allow.rs` | `--allow` networks, and where clients may go (`to_localhost`, `--http-ports`) |
//! | `proxy.rs` | what they all share: the settings, a client and its origin connection, an exchange's outcome, error answers |
//! | `http/` | HTTP/1.1 on a byte stream: heads, body framing, chunked coding, URLs |
//!
//! Terminal 1: `cargo run --bin web_proxy`
//! Terminal 2: `curl -v -x 127.0.0.1:8888 http://example.org/`
//!             (twice: the second answer carries `Cache-Status: web_proxy; hit`)
//! Worksheet:  labs/04-web-proxy.md

mod allow;
mod cache;
mod cache_status;
mod client;
mod disk;
mod entry;
mod fields;
mod forward;
mod hit;
mod http;
// The HTTP module's unit tests; tests/properties.rs and the integration
// tests compile `http` into themselves, and must not run these again.
#[cfg(test)]
#[path = "http/tests.rs"]
mod http_tests;
mod origin;
mod policy;
mod proxy;
mod relay;
mod stale;
mod tunnel;
mod vary;

use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use socketlab::cli::ServerArgs;
use socketlab::explain::{self, Step};
use socketlab::limit::{ConnectionLimit, Slot};
use socketlab::listen;
use socketlab::log::Log;

use allow::{Cidr, PortRange};
use cache::Cache;
use proxy::Proxy;

/// A caching forward proxy for HTTP/1.1 with CONNECT tunnels (K&R web proxy lab)
#[derive(Parser, Debug)]
#[command(
    name = "web_proxy",
    version,
    mut_arg("bind", |a| a.default_value("127.0.0.1")),
    mut_arg("port", |a| a.default_value("8888"))
)]
struct Cli {
    #[command(flatten)]
    server: ServerArgs,

    /// Clients allowed to use the proxy, as CIDR blocks (repeat for more); others get 403
    #[arg(long = "allow", value_name = "CIDR", default_values = ["127.0.0.0/8", "::1/128"])]
    allow: Vec<Cidr>,

    /// Client connections served at once; one more gets 503 Service Unavailable.
    /// Lowered to what the file-descriptor limit (ulimit -n) allows
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    max_clients: u32,

    /// Forward every request to its origin and store nothing
    #[arg(long)]
    no_cache: bool,

    /// Memory the cache may use for stored responses (bytes, or with K, M, G)
    #[arg(long, value_name = "BYTES", default_value = "32M", value_parser = allow::byte_size)]
    cache_size: usize,

    /// Also keep cached responses in this directory, so they survive a restart
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<std::path::PathBuf>,

    /// Ports CONNECT may open tunnels to (comma-separated); others get 403
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        default_value = "443"
    )]
    connect_ports: Vec<u16>,

    /// Ports plain HTTP may be forwarded to (ports or ranges, comma-separated); others get 403
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        default_value = "80,21,443,70,210,280,488,591,777,1025-65535"
    )]
    http_ports: Vec<PortRange>,

    /// How long an origin may stay silent before the client gets 504 Gateway Timeout
    #[arg(long, default_value = "10s", value_parser = socketlab::cli::positive_duration)]
    origin_timeout: Duration,

    /// How long a kept-alive client connection may sit idle before it is closed
    #[arg(long, default_value = "15s", value_parser = socketlab::cli::positive_duration)]
    idle_timeout: Duration,

    /// How long a whole request head may take once its first byte came (then 408)
    #[arg(long, default_value = "10s", value_parser = socketlab::cli::positive_duration)]
    head_timeout: Duration,

    /// How long a CONNECT tunnel may carry nothing either way before it is closed
    #[arg(long, default_value = "5min", value_parser = socketlab::cli::positive_duration)]
    tunnel_idle_timeout: Duration,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    explain::report(run(&cli))
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    let listener = listen::tcp(cli.server.addr())?;
    let local = listener
        .local_addr()
        .context("failed to read the bound address")?;
    let max_clients = fit_to_fd_limit(cli.max_clients as usize, fd_limit());
    let fits = match max_clients < cli.max_clients as usize {
        true => format!(
            ", lowered from {} to fit the file-descriptor limit",
            cli.max_clients
        ),
        false => String::new(),
    };
    println!("web_proxy listening on {local} (HTTP proxy, --max-clients {max_clients}{fits})");
    let log = cli.server.log();
    let cache = match cli.no_cache {
        true => None,
        false => Some(open_cache(cli, log)?),
    };
    let proxy = Arc::new(Proxy {
        local,
        name: "web_proxy",
        cache,
        connect_ports: cli.connect_ports.clone(),
        http_ports: cli.http_ports.clone(),
        origin_timeout: cli.origin_timeout,
        idle_timeout: cli.idle_timeout,
        head_timeout: cli.head_timeout,
        tunnel_idle_timeout: cli.tunnel_idle_timeout,
        log,
    });
    let limits = Limits {
        clients: ConnectionLimit::new(max_clients),
        refusals: ConnectionLimit::new(REFUSING_AT_ONCE),
    };
    for incoming in listener.incoming() {
        match incoming {
            Ok(stream) => admit(stream, &proxy, &cli.allow, &limits),
            // accept() fails for one connection (it was reset while queued,
            // or the process ran out of file descriptors, EMFILE): keep
            // serving, after a pause, since EMFILE fails again at once.
            Err(err) => {
                log.note(format_args!("{}: {err} (still serving)", Step::Accept));
                listen::pause_after_accept_error(&err);
            }
        }
    }
    Ok(())
}

/// File descriptors one client may need at once: its socket and a clone,
/// an origin socket and a clone, and in a tunnel two more clones.
const FDS_PER_CLIENT: usize = 6;

/// Descriptors kept for everything else: the listener, stdio, cache files,
/// refusals in progress.
const FDS_RESERVED: usize = 32 + 2 * REFUSING_AT_ONCE;

/// Refusals (403, 503) answered at once, each on a short-lived thread of
/// its own; beyond that they are answered from the accept loop and closed.
const REFUSING_AT_ONCE: usize = 16;

/// The `--max-clients` slots and the refusal threads.
struct Limits {
    clients: Arc<ConnectionLimit>,
    refusals: Arc<ConnectionLimit>,
}

/// `wanted` clients, or fewer if the descriptor limit would run out first:
/// then accept() fails with EMFILE, which no client is told about.
fn fit_to_fd_limit(wanted: usize, limit: Option<usize>) -> usize {
    match limit {
        Some(fds) => wanted
            .min(fds.saturating_sub(FDS_RESERVED) / FDS_PER_CLIENT)
            .max(1),
        None => wanted,
    }
}

/// This process's soft limit on open files (`ulimit -n`, RLIMIT_NOFILE),
/// from /proc/self/limits on Linux; None where that cannot be read.
fn fd_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

fn open_cache(cli: &Cli, log: Log) -> anyhow::Result<Cache> {
    let (cache, loaded, removed) = Cache::open(cli.cache_size, cli.cache_dir.as_deref())?;
    if let Some(dir) = &cli.cache_dir {
        log.note(format_args!(
            "cache: {loaded} entries loaded from '{}', {removed} corrupt or unfinished files removed",
            dir.display()
        ));
    }
    Ok(cache)
}

/// Gives an accepted connection its own thread: to be served, or to be
/// told 403 (not in `--allow`) or 503 (over `--max-clients`). Refusals
/// hold a slot of their own, so a flood of them cannot grow the threads
/// without bound; without one, they are answered here and closed.
fn admit(stream: TcpStream, proxy: &Arc<Proxy>, allow: &[Cidr], limits: &Limits) {
    // peer_addr() fails only if the client already reset the connection.
    let Ok(peer) = stream.peer_addr() else { return };
    let allowed = allow.iter().any(|net| net.contains(peer.ip()));
    let refusal = match allowed {
        true => (
            503,
            "the proxy is serving --max-clients connections; try again soon",
        ),
        false => (
            403,
            "your address is not allowed to use this proxy (see --allow)",
        ),
    };
    let slot = allowed.then(|| limits.clients.try_acquire()).flatten();
    let refusing = match slot {
        Some(_) => None,
        None => limits.refusals.try_acquire(),
    };
    if slot.is_none() && refusing.is_none() {
        return client::refuse_now(stream, peer, proxy, refusal.0, refusal.1);
    }
    let thread_proxy = Arc::clone(proxy);
    let spawned = thread::Builder::new().spawn(move || match slot {
        Some(slot) => serve(stream, peer, &thread_proxy, slot),
        None => {
            client::refuse(stream, peer, &thread_proxy, refusal.0, refusal.1);
            drop(refusing);
        }
    });
    if let Err(err) = spawned {
        proxy
            .log
            .peer(peer, format_args!("no thread for this connection: {err}"));
    }
}

/// Serves a connection holding a `--max-clients` slot, which is given back
/// when the connection ends.
fn serve(stream: TcpStream, peer: SocketAddr, proxy: &Proxy, slot: Slot) {
    client::serve(stream, peer, proxy);
    drop(slot);
}
