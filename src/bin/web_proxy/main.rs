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
mod policy;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use socketlab::cli::ServerArgs;
use socketlab::explain;

use allow::Cidr;

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

fn run(_cli: &Cli) -> anyhow::Result<()> {
    Ok(())
}
