//! socketlab's small shared library: only what two or more programs use.
//! Each module names the programs that use it; a module only one program
//! needs lives next to that program (`src/bin/<program>/<module>.rs`).
//!
//! - [`cli`]: the command-line options every server and client shares
//!   (every server and client, loadgen).
//! - [`connect`]: a TCP connection to the first of a server's addresses that
//!   answers (tcp_client, time_client, http_get, smtp_client, loadgen,
//!   web_proxy).
//! - [`explain`]: turns a failed socket call into an `error:` line and a
//!   `hint:` line that says what happened on the wire (every program).
//! - [`limit`]: a cap on how many connections a server serves at once
//!   (tcp_server, event_server, threaded_server, proxy_logger, time_server,
//!   web_proxy, web_server).
//! - [`listen`]: a TCP listening socket with a real backlog (event_server,
//!   web_proxy, web_server), the pause after a failed `accept()` and a
//!   graceful close (threaded_server, time_server and those three).
//! - [`log`]: one timestamped line per server event (every server:
//!   udp_server, tcp_server, event_server, threaded_server, proxy_logger,
//!   time_server, web_proxy, web_server, heartbeat_server).
//! - [`printable`]: shows received bytes in a log line, escaping what is not
//!   text (the servers, udp_send, http_get, loadgen, lab, crack_caesar).
//! - [`random`]: a tiny seedable random number generator (udp_server,
//!   time_server, time_client, heartbeat_server, loadgen, lab).
//! - [`rtt`]: round-trip times and ping-style statistics (udp_client,
//!   tcp_client, time_client, http_get, heartbeat_server, loadgen).
//! - [`time_service`]: the time service's key exchange, Caesar shift and
//!   frames (time_server, time_client, crack_caesar, loadgen).
//! - [`udp`]: waiting for a UDP datagram until a deadline (udp_client,
//!   udp_send).

pub mod cli;
pub mod connect;
pub mod explain;
pub mod limit;
pub mod listen;
pub mod log;
pub mod printable;
pub mod random;
pub mod rtt;
pub mod time_service;
pub mod udp;
