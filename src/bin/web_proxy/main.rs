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
//! Terminal 1: `cargo run --bin web_proxy`
//! Terminal 2: `curl -v -x 127.0.0.1:8888 http://example.org/`
//!             (twice: the second answer carries `Cache-Status: web_proxy; hit`)
//! Worksheet:  labs/04-web-proxy.md

mod allow;
mod cache;
mod client;
mod forward;
mod http;
// The HTTP module's unit tests; tests/properties.rs and the integration
// tests compile `http` into themselves, and must not run these again.
#[cfg(test)]
#[path = "http/tests.rs"]
mod http_tests;
mod policy;
mod tunnel;

use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crate::http::{Headers, Version};
use anyhow::Context;
use clap::Parser;
use socketlab::cli::ServerArgs;
use socketlab::explain::{self, Step};
use socketlab::limit::{ConnectionLimit, Slot};
use socketlab::listen;
use socketlab::log::Log;

use allow::Cidr;
use cache::Cache;

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

    /// Client connections served at once; one more gets 503 Service Unavailable
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

    /// How long an origin may stay silent before the client gets 504 Gateway Timeout
    #[arg(long, default_value = "10s", value_parser = socketlab::cli::positive_duration)]
    origin_timeout: Duration,

    /// How long a kept-alive client connection may sit idle before it is closed
    #[arg(long, default_value = "15s", value_parser = socketlab::cli::positive_duration)]
    idle_timeout: Duration,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    explain::report(run(&cli))
}

/// What every connection thread needs: the settings and the cache.
pub struct Proxy {
    /// The address we listen on; also our name in `Via`, so a request that
    /// comes back to us is recognised.
    pub local: SocketAddr,
    /// Our name in `Cache-Status` (RFC 9211).
    pub name: &'static str,
    pub cache: Option<Cache>,
    pub connect_ports: Vec<u16>,
    pub origin_timeout: Duration,
    pub idle_timeout: Duration,
    pub log: Log,
}

impl Proxy {
    /// Our `Via` entry (RFC 9110 §7.6.3): the protocol we received the
    /// message with, and who we are.
    pub fn via(&self, received: Version) -> String {
        let protocol = match received {
            Version::Http10 => "1.0",
            Version::Http11 => "1.1",
        };
        format!("{protocol} {} ({})", self.local, self.name)
    }

    /// True if a `Via` entry of ours is already in the fields: the request
    /// went round in a loop back to us.
    pub fn is_our_via(&self, headers: &Headers) -> bool {
        let us = self.local.to_string();
        headers
            .list("Via")
            .any(|entry| entry.split_whitespace().nth(1) == Some(us.as_str()))
    }

    /// True if `addr` is this proxy's own listening socket.
    pub fn is_self(&self, addr: SocketAddr) -> bool {
        let same_port = addr.port() == self.local.port();
        addr == self.local
            || (same_port && self.local.ip().is_unspecified() && addr.ip().is_loopback())
    }
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    let listener = listen::tcp(cli.server.addr())?;
    let local = listener
        .local_addr()
        .context("failed to read the bound address")?;
    println!("web_proxy listening on {local} (HTTP proxy)");
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
        origin_timeout: cli.origin_timeout,
        idle_timeout: cli.idle_timeout,
        log,
    });
    let limit = ConnectionLimit::new(cli.max_clients as usize);
    for incoming in listener.incoming() {
        match incoming {
            Ok(stream) => admit(stream, &proxy, &cli.allow, &limit),
            // accept() fails for one connection (it was reset while queued,
            // or the process ran out of file descriptors): keep serving.
            Err(err) => log.note(format_args!("{}: {err} (still serving)", Step::Accept)),
        }
    }
    Ok(())
}

fn open_cache(cli: &Cli, log: Log) -> anyhow::Result<Cache> {
    let (cache, loaded) = Cache::open(cli.cache_size, cli.cache_dir.as_deref())?;
    if let Some(dir) = &cli.cache_dir {
        log.note(format_args!(
            "cache: {loaded} entries loaded from '{}'",
            dir.display()
        ));
    }
    Ok(cache)
}

/// Gives an accepted connection its own thread: to be served, or to be
/// told 403 (not in `--allow`) or 503 (over `--max-clients`).
fn admit(stream: TcpStream, proxy: &Arc<Proxy>, allow: &[Cidr], limit: &Arc<ConnectionLimit>) {
    // peer_addr() fails only if the client already reset the connection.
    let Ok(peer) = stream.peer_addr() else { return };
    let allowed = allow.iter().any(|net| net.contains(peer.ip()));
    let slot = if allowed { limit.try_acquire() } else { None };
    let thread_proxy = Arc::clone(proxy);
    let spawned = thread::Builder::new().spawn(move || match (allowed, slot) {
        (true, Some(slot)) => serve(stream, peer, &thread_proxy, slot),
        (false, _) => client::refuse(
            stream,
            peer,
            &thread_proxy,
            403,
            "your address is not allowed to use this proxy (see --allow)",
        ),
        (true, None) => client::refuse(
            stream,
            peer,
            &thread_proxy,
            503,
            "the proxy is serving --max-clients connections; try again soon",
        ),
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
