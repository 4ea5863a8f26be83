//! What every part of a transaction shares, imported by all and importing
//! none of them: the settings every connection thread reads ([`Proxy`]),
//! a client connection and its origin connection ([`Client`], [`Origin`]),
//! how an exchange ended ([`Outcome`]), and the short answer the proxy
//! gives itself when it cannot forward ([`send_error`]).

use std::io::{self, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use socketlab::explain;
use socketlab::log::Log;

use crate::allow::PortRange;
use crate::cache::Cache;
use crate::http::{Headers, ResponseHead, Version};

/// What every connection thread needs: the settings and the cache.
pub struct Proxy {
    /// The address we listen on; also our name in `Via`, so a request that
    /// comes back to us is recognised.
    pub local: SocketAddr,
    /// Our name in `Cache-Status` (RFC 9211).
    pub name: &'static str,
    pub cache: Option<Cache>,
    pub connect_ports: Vec<u16>,
    /// Where plain HTTP may go (squid's Safe_ports).
    pub http_ports: Vec<PortRange>,
    pub origin_timeout: Duration,
    pub idle_timeout: Duration,
    /// How long a whole request head may take once it has begun.
    pub head_timeout: Duration,
    /// How long a tunnel may carry nothing either way before it is closed.
    pub tunnel_idle_timeout: Duration,
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

/// A client connection and the origin connection it last used.
pub struct Client {
    pub reader: BufReader<TcpStream>,
    pub writer: TcpStream,
    pub origin: Option<Origin>,
    /// The client's address: where it may go depends on it.
    pub peer: SocketAddr,
}

/// A kept-alive connection to the origin of the previous request, reused
/// when the next request goes to the same `host:port`.
pub struct Origin {
    pub authority: String,
    pub reader: BufReader<TcpStream>,
    pub writer: TcpStream,
}

/// How one exchange ended, for the access log and the client loop.
#[derive(Debug)]
pub struct Outcome {
    pub status: u16,
    /// HIT, MISS, REVALIDATED, BYPASS (cache off, or a method the cache
    /// does not handle), TUNNEL (CONNECT), NONE (an error the proxy answered).
    pub cache: &'static str,
    /// Body bytes sent to the client.
    pub bytes: u64,
    /// False when the client connection must close after this response.
    pub keep_alive: bool,
}

impl Outcome {
    /// An answer the proxy made itself; the connection closes after it.
    pub fn error(status: u16, bytes: u64) -> Outcome {
        Outcome {
            status,
            cache: "NONE",
            bytes,
            keep_alive: false,
        }
    }
}

/// Sends a short text response the proxy makes itself, and closes.
pub fn send_error(
    writer: &mut impl Write,
    status: u16,
    message: &str,
    proxy: &Proxy,
) -> io::Result<u64> {
    let reason = reason_phrase(status);
    let body = format!("{status} {reason}: {message}\n");
    let mut head = ResponseHead::new(status, reason);
    head.headers
        .append("Content-Type", "text/plain; charset=utf-8");
    head.headers
        .append("Content-Length", body.len().to_string());
    head.headers.append("Via", proxy.via(Version::Http11));
    head.headers
        .append("Cache-Status", format!("{}; detail=\"error\"", proxy.name));
    head.headers.append("Connection", "close");
    let mut bytes = head.to_bytes();
    bytes.extend_from_slice(body.as_bytes());
    writer.write_all(&bytes)?;
    Ok(body.len() as u64)
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        403 => "Forbidden",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        508 => "Loop Detected",
        _ => "Error",
    }
}

/// True when a failed `socketlab::connect::tcp` got no answer to its SYN
/// within the timeout (a gateway timeout, 504) rather than a refusal (502).
pub fn connect_timed_out(err: &anyhow::Error) -> bool {
    err.root_cause()
        .downcast_ref::<io::Error>()
        .is_some_and(explain::is_timeout)
}

/// An answer the proxy gives itself because the request cannot be
/// forwarded; the connection closes after it.
pub struct Refusal {
    pub status: u16,
    pub message: &'static str,
    /// An interim response already went to the client: a retry would send
    /// it twice, and an error answer would follow a 1xx (still valid).
    pub interim_sent: bool,
}

pub fn refuse(status: u16, message: &'static str) -> Refusal {
    Refusal {
        status,
        message,
        interim_sent: false,
    }
}
