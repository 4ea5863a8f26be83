//! socketlab's small shared library: only what two or more lab programs need.
//!
//! - [`cli`]: the command-line options every server and client shares.
//! - [`explain`]: turns a failed socket call into an `error:` line and a
//!   `hint:` line that says what happened on the wire.
//! - [`http`]: reading HTTP/1.1 heads and bodies from a byte stream (framing, chunked).
//! - [`listen`]: a TCP listening socket with a backlog big enough for a lab.
//! - [`limit`]: a cap on how many connections a server serves at once.
//! - [`log`]: one timestamped line per server event.
//! - [`random`]: a tiny seedable random number generator.
//! - [`rtt`]: round-trip times and ping-style statistics.
//! - [`printable`]: shows received bytes in a log line, escaping what is not text.

pub mod cli;
pub mod explain;
pub mod http;
pub mod limit;
pub mod listen;
pub mod log;
pub mod printable;
pub mod random;
pub mod rtt;
