//! socketlab's small shared library: only what two or more lab programs need.
//!
//! - [`cli`]: the command-line options every server and client shares.
//! - [`connect`]: a TCP connection to the first of a server's addresses that answers.
//! - [`explain`]: turns a failed socket call into an `error:` line and a
//!   `hint:` line that says what happened on the wire.
//! - [`http`]: reading HTTP/1.1 heads and bodies from a byte stream (framing, chunked).
//! - [`limit`]: a cap on how many connections a server serves at once.
//! - [`listen`]: a TCP listening socket with a real backlog, and closing one gracefully.
//! - [`log`]: one timestamped line per server event.
//! - [`printable`]: shows received bytes in a log line, escaping what is not text.
//! - [`random`]: a tiny seedable random number generator.
//! - [`rtt`]: round-trip times and ping-style statistics.
//! - [`time_service`]: the time service's key exchange, Caesar shift and frames.
//! - [`udp`]: waiting for a UDP datagram until a deadline.

pub mod cli;
pub mod connect;
pub mod explain;
pub mod http;
pub mod limit;
pub mod listen;
pub mod log;
pub mod printable;
pub mod random;
pub mod rtt;
pub mod time_service;
pub mod udp;
