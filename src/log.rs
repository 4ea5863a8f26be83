//! One timestamped line per server event, on stdout. Used by every server
//! that logs: udp_server, tcp_server, event_server, threaded_server,
//! proxy_logger, time_server, web_proxy, web_server and heartbeat_server.
//!
//! `2026-11-21T14:02:19.198Z 127.0.0.1:54321 received 5 bytes "hello"`
//!
//! The time is UTC (RFC 3339), so lines from two machines can be compared.
//! Rust's stdout is line-buffered even into a pipe: each line reaches a
//! script or a test at once. When nobody reads the log any more
//! (`udp_server | head -1`), `write()` fails with `EPIPE` (Rust ignores
//! SIGPIPE): the server ends quietly with status 0, as `yes | head -1`
//! does, instead of panicking as `println!` would. Any other failure (a
//! full disk) loses that line only: a log must never stop a server.

use std::fmt::Display;
use std::io::{ErrorKind, Write};
use std::net::SocketAddr;
use std::time::SystemTime;

/// A server's event log; `--quiet` turns it off.
#[derive(Debug, Clone, Copy)]
pub struct Log {
    quiet: bool,
}

impl Log {
    pub fn new(quiet: bool) -> Log {
        Log { quiet }
    }

    /// Logs an event that concerns one peer.
    pub fn peer(&self, peer: SocketAddr, what: impl Display) {
        if !self.quiet {
            write_line(&line(SystemTime::now(), Some(peer), &what));
        }
    }

    /// Logs an event of the server as a whole.
    pub fn note(&self, what: impl Display) {
        if !self.quiet {
            write_line(&line(SystemTime::now(), None, &what));
        }
    }
}

pub fn line(time: SystemTime, peer: Option<SocketAddr>, what: &dyn Display) -> String {
    let time = humantime::format_rfc3339_millis(time);
    match peer {
        Some(peer) => format!("{time} {peer} {what}"),
        None => format!("{time} {what}"),
    }
}

/// Writes one line to stdout; ends the process quietly if nobody reads it.
fn write_line(line: &str) {
    let written = writeln!(std::io::stdout().lock(), "{line}");
    if written.is_err_and(|err| err.kind() == ErrorKind::BrokenPipe) {
        std::process::exit(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn lines_start_with_a_utc_timestamp() {
        let time = UNIX_EPOCH + Duration::from_millis(1_763_733_739_198);
        let peer = "127.0.0.1:54321".parse().ok();
        assert_eq!(
            line(time, peer, &"received 5 bytes"),
            "2025-11-21T14:02:19.198Z 127.0.0.1:54321 received 5 bytes"
        );
        assert_eq!(
            line(time, None, &"stopped"),
            "2025-11-21T14:02:19.198Z stopped"
        );
    }
}
