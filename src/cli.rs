//! Command-line options shared by every server and client, loadgen and check.
//!
//! A program flattens [`ServerArgs`] or [`ClientArgs`] into its own `Cli` and
//! overrides a default in one visible line, so `--help` shows the real one:
//! `mut_arg("port", |a| a.default_value("7777"))`.

use std::io::{self, BufRead, Write};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use crate::explain::Step;
use crate::log::Log;

/// Where a server listens, and whether it logs.
#[derive(Args, Debug, Clone)]
pub struct ServerArgs {
    /// Local address to bind: 0.0.0.0 serves every interface, 127.0.0.1 only this machine
    #[arg(long, default_value = "0.0.0.0")]
    pub bind: IpAddr,

    /// Port to listen on; 0 asks the OS for a free one (the first line printed names it)
    #[arg(long, default_value_t = 12000)]
    pub port: u16,

    /// Do not log a line per connection or datagram
    #[arg(long)]
    pub quiet: bool,
}

impl ServerArgs {
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.bind, self.port)
    }

    pub fn log(&self) -> Log {
        Log::new(self.quiet)
    }
}

/// Which server a client talks to, and how long it waits for it.
#[derive(Args, Debug, Clone)]
pub struct ClientArgs {
    /// Server host name or IP address
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,

    /// Server port
    #[arg(long, default_value_t = 12000)]
    pub port: u16,

    /// How long to wait for the server before giving up (e.g. 500ms, 2s)
    #[arg(long, default_value = "1s", value_parser = positive_duration)]
    pub timeout: Duration,
}

impl ClientArgs {
    /// [`resolve`] for `--host` (a name such as `localhost`, or an IP) and `--port`.
    pub fn resolve(&self) -> anyhow::Result<Vec<SocketAddr>> {
        resolve(&self.host, self.port)
    }
}

/// Resolves a host name or IP address with `getaddrinfo()`, IPv4 first:
/// `localhost` often lists `::1` before `127.0.0.1`, but the lab servers bind
/// `0.0.0.0`, which takes IPv4 only.
pub fn resolve(host: &str, port: u16) -> anyhow::Result<Vec<SocketAddr>> {
    let step = || Step::Resolve(host.into());
    // `[::1]` is how an IPv6 address is written next to a port; accept it alone too.
    let inside = host.strip_prefix('[').and_then(|h| h.strip_suffix(']'));
    let bare = inside.unwrap_or(host);
    let mut addrs: Vec<SocketAddr> = (bare, port).to_socket_addrs().with_context(step)?.collect();
    if addrs.is_empty() {
        let none = io::Error::other("the name has no IPv4 or IPv6 address");
        return Err(none).with_context(step);
    }
    addrs.sort_by_key(|addr| !addr.is_ipv4());
    Ok(addrs)
}

/// Parses a humantime duration such as `250ms` or `2s` (zero allowed).
pub fn duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .map_err(|e| format!("invalid duration '{text}': {e} (try 500ms or 2s)"))
}

/// Parses a humantime duration that must be longer than zero (a socket
/// timeout of zero would mean "wait forever" to the OS).
pub fn positive_duration(text: &str) -> Result<Duration, String> {
    let d = duration(text)?;
    let zero = format!("invalid duration '{text}': must be longer than zero");
    if d.is_zero() { Err(zero) } else { Ok(d) }
}

/// Joins the message words given on the command line, or, with none, prompts
/// like the classic lab (`Input lowercase sentence:`) and reads one line as
/// bytes: the servers transform bytes, so a line that is not UTF-8 goes as it is.
pub fn message_or_prompt(words: &[String]) -> anyhow::Result<Vec<u8>> {
    if !words.is_empty() {
        return Ok(words.join(" ").into_bytes());
    }
    print!("Input lowercase sentence:");
    io::stdout().flush().context("failed to write the prompt")?;
    let mut line = Vec::new();
    let read = io::stdin().lock().read_until(b'\n', &mut line);
    if read.context("failed to read a line from stdin")? == 0 {
        println!(); // end the prompt's line, so the error starts on its own
        return Err(crate::explain::hinted(
            "no message: stdin ended before a line was typed",
            "type a line and press Enter, or give the message as arguments after the options",
        ));
    }
    while line.last().is_some_and(|&b| b == b'\n' || b == b'\r') {
        line.pop();
    }
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    #[command(name = "test", mut_arg("port", |a| a.default_value("7777")))]
    struct Cli {
        #[command(flatten)]
        server: ServerArgs,
    }

    #[test]
    fn a_program_can_override_the_default_port() {
        let cli = Cli::try_parse_from(["test"]).expect("defaults parse");
        assert_eq!(cli.server.addr(), "0.0.0.0:7777".parse().expect("address"));
        let cli = Cli::try_parse_from(["test", "--port", "0", "--bind", "127.0.0.1"])
            .expect("flags parse");
        assert_eq!(cli.server.addr(), "127.0.0.1:0".parse().expect("address"));
    }

    #[test]
    fn bad_ports_and_addresses_are_usage_errors() {
        for args in [
            ["test", "--port", "abc"],
            ["test", "--port", "70000"],
            ["test", "--bind", "300.1.1.1"],
        ] {
            let err = Cli::try_parse_from(args).err().expect("rejected");
            assert_eq!(err.exit_code(), 2, "{args:?}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(positive_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(duration("0s"), Ok(Duration::ZERO));
        assert!(
            positive_duration("0s")
                .unwrap_err()
                .contains("longer than zero")
        );
        assert!(
            duration("soon")
                .unwrap_err()
                .contains("invalid duration 'soon'")
        );
    }

    #[test]
    fn localhost_resolves_ipv4_first() {
        let addrs = resolve("localhost", 12000).expect("localhost resolves");
        assert_eq!(addrs[0], "127.0.0.1:12000".parse().expect("address"));
    }

    #[test]
    fn ipv6_addresses_work_with_or_without_brackets() {
        for host in ["::1", "[::1]"] {
            assert_eq!(
                resolve(host, 80).expect("resolves")[0],
                "[::1]:80".parse().expect("address")
            );
        }
    }

    #[test]
    fn an_unresolvable_name_names_the_step() {
        let err = resolve("no-such-host.invalid", 80).expect_err("must fail");
        assert!(format!("{err:#}").starts_with("failed to resolve host 'no-such-host.invalid'"));
    }
}
