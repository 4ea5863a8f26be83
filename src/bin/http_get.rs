//! http_get: an HTTP/1.1 GET written by hand on a TCP socket (seed 003).
//!
//! HTTP is text on a TCP byte stream. `connect()`, then one `write_all()` of
//! the request head: lines ended by CRLF, then an empty line (RFC 9112 §2.1).
//! The response head is read line by line (`read_until(b'\n')`) up to its
//! empty line, then the body as the head frames it (RFC 9112 §6.3): exactly
//! Content-Length bytes, chunked (§7.1), or until the server closes. One
//! `recv()` is not "the response": the framing says where it ends.
//!
//! Terminal 1: `python3 -m http.server --bind 127.0.0.1 8000`
//! Terminal 2: `cargo run --bin http_get -- http://127.0.0.1:8000/ --show-request`
//! Worksheet:  labs/02-client-sockets.md

use std::fs::File;
use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use clap::Parser;
use socketlab::explain::{self, Proto, Step, hinted};
use socketlab::printable::quoted;
use socketlab::{cli, connect, rtt::ms};

/// The longest response head: more without its empty line is a head with no end.
const MAX_HEAD: usize = 64 * 1024;
/// How many 1xx interim responses are read before giving up (servers send one or two).
const MAX_INTERIM: usize = 10;
const HEAD_RULE: &str = "a response head is a status line and `Name: value` header lines, \
                         ended by an empty line (RFC 9112 §2.1, §5)";
const CHUNK_RULE: &str = "a chunked body is chunks of `<size in hex>` CRLF `<data>` CRLF, ended \
                          by a chunk of size 0, trailer lines and an empty line (RFC 9112 §7.1)";

/// Fetch an http:// URL with a GET request written by hand on a TCP socket (seed 003)
#[derive(Parser, Debug)]
#[command(name = "http_get", version)]
struct Cli {
    /// The URL to fetch: http://host[:port][/path][?query] (the port defaults to 80)
    #[arg(value_parser = parse_url)]
    url: Url,
    /// The User-Agent header: how the client names itself to the server
    #[arg(long, default_value = concat!("http_get/", env!("CARGO_PKG_VERSION"), " (socketlab)"))]
    user_agent: String,
    /// Send HEAD instead of GET: the same response head, no body
    #[arg(long)]
    head: bool,
    /// Print the request bytes before the response
    #[arg(long)]
    show_request: bool,
    /// Write the body, byte for byte, to this file instead of printing it
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Send this text as the request (escapes: \r \n \t \\); print what follows the response
    #[arg(long, value_name = "TEXT", value_parser = unescape,
          conflicts_with_all = ["user_agent", "head"])]
    raw_request: Option<String>,
    /// How long to wait for the connection, and then for each read
    #[arg(long, default_value = "10s", value_parser = cli::positive_duration)]
    timeout: Duration,
}

fn main() -> ExitCode {
    explain::report(run(&Cli::parse()))
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    let request = cli.raw_request.clone().unwrap_or_else(|| request_head(cli));
    let addrs = cli::resolve(&cli.url.host, cli.url.port)?;
    let start = Instant::now(); // name resolution is not timed
    // connect(): SYN, SYN-ACK, ACK, with the first of the addresses that answers.
    let stream = connect::tcp(&addrs, cli.timeout)?;
    let connected = start.elapsed();
    let peer = stream.peer_addr().context("getpeername() failed")?;
    if cli.show_request {
        let title = format!("request: {} bytes sent to {peer}", request.len());
        print_framed(&title, request.as_bytes())?;
        println!("--- response ---");
    }
    // write_all(): send() until the kernel has taken every byte of the request.
    let send = Step::Send(Proto::Tcp, peer);
    (&stream).write_all(request.as_bytes()).context(send)?;
    // SO_RCVTIMEO: every read() below gives up after --timeout.
    let timeout = stream.set_read_timeout(Some(cli.timeout));
    timeout.context("failed to set the read timeout")?;
    // A buffer over the socket, so that read_until() can look for the LF.
    let mut conn = BufReader::new(&stream);
    conn.fill_buf().context(receive(peer))?; // the first read(): the first byte
    let first_byte = start.elapsed();
    let mut response = Response {
        conn,
        peer,
        file: cli.output.as_deref().map(create).transpose()?,
        size: 0,
        last: b'\n',
    };
    let how = response.read(request.starts_with("HEAD "))?;
    let ended = response.last == b'\n' || cli.output.is_some();
    let newline = if ended { "" } else { "\n" };
    print!("{newline}body: {} bytes ({how})", response.size);
    if let Some(path) = &cli.output {
        print!("; saved to '{}'", path.display());
    }
    println!();
    let (connect, first, total) = (ms(connected), ms(first_byte), ms(start.elapsed()));
    println!("timing: connect {connect}, first byte {first}, total {total}");
    if cli.raw_request.is_some() {
        response.print_rest(&stream)?;
    }
    Ok(())
}

/// The request head: lines ended by CRLF, `Host` required (RFC 9112 §3.2), then an empty line.
fn request_head(cli: &Cli) -> String {
    let method = if cli.head { "HEAD" } else { "GET" };
    let (path, host, agent) = (&cli.url.path, &cli.url.authority, &cli.user_agent);
    format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {agent}\r\nAccept: */*\r\n\
         Connection: close\r\n\r\n"
    )
}

/// The receiving side: a buffer over the socket, and where the body goes (stdout if no file).
struct Response<'a> {
    conn: BufReader<&'a TcpStream>,
    peer: SocketAddr,
    file: Option<File>,
    size: u64,
    /// The body's last byte: a printed body that ends mid-line gets its line ended.
    last: u8,
}

/// How a head frames its body: Content-Length, and whether Transfer-Encoding ends in chunked.
type Framing = (Option<u64>, Option<bool>);

impl Response<'_> {
    /// The final head, then the body as it frames it (RFC 9112 §6.3); says how it was framed.
    fn read(&mut self, head_only: bool) -> anyhow::Result<&'static str> {
        Ok(match self.final_head()? {
            _ if head_only => "none: a response to HEAD has no body",
            (204 | 304, _) => "none: a 204 or 304 response has no body",
            (_, (Some(_), Some(_))) => {
                let what = "both Content-Length and Transfer-Encoding frame its body";
                let rule = "a body's length is given in one way, or no client can tell where it \
                            ends (RFC 9112 §6.3)";
                return self.broken(what, rule);
            }
            (_, (_, Some(true))) => {
                self.chunked()?;
                "chunked: decoded from its chunks"
            }
            (_, (None, _)) => {
                self.copy(None)?;
                "no length given: read until the server closed the connection"
            }
            (_, (length, _)) => {
                self.copy(length)?;
                "its length was the Content-Length"
            }
        })
    }

    /// Heads until a final one (a 1xx is interim, RFC 9110 §15.2), each printed once whole.
    fn final_head(&mut self) -> anyhow::Result<(u16, Framing)> {
        for _ in 0..=MAX_INTERIM {
            let mut bytes = Vec::new();
            let line = self.line(&mut bytes, MAX_HEAD)?;
            if bytes.is_empty() {
                return self.closed("without sending a response");
            }
            let Some(status) = line.as_deref().and_then(status_code) else {
                let what = format!("no status line; it began {}", quoted(&bytes, 120));
                let rule = "a response begins with a status line (`HTTP/1.1 200 OK`, RFC 9112 §4)";
                return self.broken(what, rule);
            };
            let framing = self.fields(&mut bytes, "response head", HEAD_RULE)?;
            write_stdout(&bytes)?;
            if status >= 200 {
                return Ok((status, framing));
            }
            println!("(an interim {status} response: the final response follows)");
        }
        let what = format!("more than {MAX_INTERIM} interim (1xx) responses, no final one");
        let rule = "a 1xx response says that the final response follows, and a server \
                    sends one or two (100 Continue, 103 Early Hints, RFC 9110 §15.2)";
        self.broken(what, rule)
    }

    /// The `Name: value` lines after a status line or a last chunk, up to an empty line (RFC 9112
    /// §2.1, §5), onto `bytes`; `part` names them in an error, `rule` in its hint.
    fn fields(&mut self, bytes: &mut Vec<u8>, part: &str, rule: &str) -> anyhow::Result<Framing> {
        let (mut length, mut chunked) = (None, None);
        loop {
            let line = match self.line(bytes, MAX_HEAD)? {
                Some(line) if line.is_empty() => return Ok((length, chunked)),
                Some(line) => line,
                None if bytes.len() == MAX_HEAD => {
                    return self.broken(format!("no end after {MAX_HEAD} bytes"), rule);
                }
                None => return self.closed(format!("in the {part}, after {} bytes", bytes.len())),
            };
            let is_name = |n: &str| !n.is_empty() && n.bytes().all(|b| b.is_ascii_graphic());
            let Some((name, value)) = line.split_once(':').filter(|(n, _)| is_name(n)) else {
                let what = format!("a bad header line {}", quoted(line.as_bytes(), 120));
                return self.broken(what, rule);
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("Transfer-Encoding") {
                // The last coding decides: `gzip, chunked` is chunked (RFC 9112 §6.1).
                let last = value.rsplit(',').next().unwrap_or_default();
                chunked = Some(last.trim().eq_ignore_ascii_case("chunked"));
            } else if name.eq_ignore_ascii_case("Content-Length") {
                // Decimal digits, and repeated fields must agree (RFC 9110 §8.6).
                let digits = value.bytes().all(|b| b.is_ascii_digit());
                let n = value.parse().ok().filter(|_| digits);
                if n.is_none() || (length.is_some() && length != n) {
                    let what = format!("Content-Length {}", quoted(value.as_bytes(), 60));
                    let rule = "Content-Length is one number in decimal digits (RFC 9110 §8.6)";
                    return self.broken(what, rule);
                }
                length = n;
            }
        }
    }

    /// A line onto `buf` (within `max` bytes), returned without CRLF or LF; None if it has no end.
    fn line(&mut self, buf: &mut Vec<u8>, max: usize) -> anyhow::Result<Option<String>> {
        let start = buf.len();
        let mut limited = (&mut self.conn).take(max.saturating_sub(start) as u64);
        limited.read_until(b'\n', buf).context(receive(self.peer))?;
        let line = buf[start..].strip_suffix(b"\n");
        let line = line.map(|line| line.strip_suffix(b"\r").unwrap_or(line));
        Ok(line.map(|line| String::from_utf8_lossy(line).into_owned()))
    }

    /// Chunks of `<size in hex>` CRLF `<data>` CRLF until size 0, then trailers (RFC 9112 §7.1).
    fn chunked(&mut self) -> anyhow::Result<()> {
        let bad = |this: &Self, what: &str| {
            let size = this.size;
            this.broken(
                format!("after {size} bytes of the body, {what}"),
                CHUNK_RULE,
            )
        };
        loop {
            let Some(line) = self.line(&mut Vec::new(), 4096)? else {
                return bad(self, "a chunk-size line with no end");
            };
            // from_str_radix would take a sign: only hex digits are a size.
            let hex = line.split(';').next().unwrap_or_default().trim();
            let size = u64::from_str_radix(hex, 16).ok();
            let Some(size) = size.filter(|_| hex.bytes().all(|b| b.is_ascii_hexdigit())) else {
                let what = format!("chunk size {}", quoted(line.as_bytes(), 40));
                return bad(self, &what);
            };
            if size == 0 {
                // Trailer fields (RFC 9112 §7.1.2): header lines up to an empty line, skipped.
                self.fields(&mut Vec::new(), "trailer fields", CHUNK_RULE)?;
                return Ok(());
            }
            self.copy(Some(size))?;
            if self.line(&mut Vec::new(), 2)? != Some(String::new()) {
                return bad(self, "no CRLF after the chunk's data");
            }
        }
    }

    /// Copies `length` body bytes (fewer is an error), or with None all until the server closes.
    fn copy(&mut self, length: Option<u64>) -> anyhow::Result<()> {
        let mut body = (&mut self.conn).take(length.unwrap_or(u64::MAX));
        loop {
            // fill_buf(): what the buffer holds, or one read(); empty at the FIN or after `length`.
            let (size, piece) = (self.size, body.fill_buf());
            let after = || format!("after {size} bytes of the body");
            let piece = piece.with_context(after).context(receive(self.peer))?;
            let (n, Some(&last)) = (piece.len(), piece.last()) else {
                break;
            };
            self.size += n as u64;
            self.last = last;
            match &mut self.file {
                Some(file) => file.write_all(piece).map_err(|err| {
                    let hint = "check that the disk is not full";
                    hinted(format!("failed to save the body: {err}"), hint)
                })?,
                None => write_stdout(piece)?,
            }
            body.consume(n);
        }
        let (size, left) = (self.size, body.limit());
        if length.is_some() && left > 0 {
            let when = format!("after {size} bytes of the body ({left} more were promised)");
            return self.closed(when);
        }
        Ok(())
    }

    /// The server closed the connection (read() returned 0) too early.
    fn closed<T>(&self, when: impl std::fmt::Display) -> anyhow::Result<T> {
        let why = format!("the server closed the connection {when}");
        let eof = io::Error::new(ErrorKind::UnexpectedEof, why);
        Err(eof).context(receive(self.peer))
    }

    /// A reply that breaks HTTP/1.1's rules: `what` is wrong, `rule` says what was expected.
    fn broken<T>(&self, what: impl std::fmt::Display, rule: &str) -> anyhow::Result<T> {
        let peer = self.peer;
        let message = format!("the reply from {peer} is not a valid HTTP/1.x response: {what}");
        let hint = "the server sent something else, so it is broken or not an HTTP server \
                    (check the port, or see what it says with `ncat HOST PORT`)";
        Err(hinted(message, format!("{rule}; {hint}")))
    }

    /// `--raw-request`: prints what comes after the response (a second one, for seed 003's).
    fn print_rest(&mut self, stream: &TcpStream) -> anyhow::Result<()> {
        let timeout = stream.set_read_timeout(Some(Duration::from_secs(1)));
        timeout.context("failed to set the read timeout")?;
        let mut rest = Vec::new();
        // The BufReader hands out what it already holds first, then read()s.
        let read = (&mut self.conn).take(1 << 20).read_to_end(&mut rest);
        if !rest.is_empty() {
            let title = format!("{} more bytes after the response", rest.len());
            print_framed(&title, &rest)?;
        }
        let end = match read {
            Ok(n) if n == 1 << 20 => "stopped reading after 1048576 bytes",
            Ok(_) => "the server closed the connection",
            Err(err) if explain::is_timeout(&err) => "nothing more in 1s; the connection is open",
            Err(err) => return Err(err).context(receive(self.peer)),
        };
        println!("--- {end} ---");
        Ok(())
    }
}

/// The step a failed read() names in the `error:` line.
fn receive(peer: SocketAddr) -> Step {
    Step::Receive(Proto::Tcp, peer)
}

/// The status code of `HTTP/1.x NNN reason` (RFC 9112 §4), if the line is a status line.
fn status_code(line: &str) -> Option<u16> {
    let (version, rest) = line.split_once(' ')?;
    let code = rest.split(' ').next()?;
    let digits = |text: &str, n| text.len() == n && text.bytes().all(|b| b.is_ascii_digit());
    let valid = digits(version.strip_prefix("HTTP/1.")?, 1) && digits(code, 3);
    code.parse().ok().filter(|&code| valid && code >= 100)
}

// ---- The extras: --output, the URL, the escapes of --raw-request ----

/// Creates the --output file, with a hint if it cannot be.
fn create(path: &Path) -> anyhow::Result<File> {
    File::create(path).map_err(|err| {
        let error = format!("failed to create output file '{}': {err}", path.display());
        let hint = "check that its directory exists and that you may write there";
        hinted(error, hint)
    })
}

/// Prints `--- title ---` and `bytes` exactly, on lines of their own.
fn print_framed(title: &str, bytes: &[u8]) -> anyhow::Result<()> {
    println!("--- {title} ---");
    write_stdout(bytes)?;
    if !bytes.ends_with(b"\n") {
        println!();
    }
    Ok(())
}

/// Writes to the terminal or pipe; a failure there is no network matter.
fn write_stdout(bytes: &[u8]) -> anyhow::Result<()> {
    let mut stdout = io::stdout().lock();
    let written = stdout.write_all(bytes).and_then(|()| stdout.flush());
    written.map_err(|err| anyhow!("failed to write to stdout: {err}"))
}

/// An `http://host[:port][/path][?query]` URL (RFC 9110 §4.2.1).
#[derive(Debug, Clone)]
struct Url {
    /// `host[:port]` as written: the `Host` field's value (RFC 9110 §7.2).
    authority: String,
    /// A name or an IP address (an IPv6 one in brackets).
    host: String,
    port: u16,
    /// What goes in the request line: starts with `/`, no `#fragment`.
    path: String,
}

fn parse_url(text: &str) -> Result<Url, String> {
    let why = |why: &str| format!("invalid URL '{text}': {why}");
    if text.starts_with("https://") {
        return Err(why("https needs TLS; http_get speaks plain HTTP"));
    }
    let rest = text.strip_prefix("http://");
    let rest = rest.filter(|_| text.bytes().all(|b| b.is_ascii_graphic()));
    let rest = rest.ok_or_else(|| why("only http://, without spaces or non-ASCII characters"))?;
    let rest = rest.split('#').next().unwrap_or_default();
    let (authority, path) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
    // The last ':' starts the port, unless it is inside an IPv6 address's brackets.
    let (host, port) = match authority.rsplit_once(':').filter(|(_, p)| !p.contains(']')) {
        Some((host, port)) => (host, port.parse().ok().filter(|&p| p != 0).ok_or(port)),
        None => (authority, Ok(80)),
    };
    let port = port.map_err(|port| why(&format!("invalid port '{port}'")))?;
    if host.is_empty() || host.contains('@') {
        return Err(why("no host"));
    }
    let slash = if path.starts_with('/') { "" } else { "/" };
    Ok(Url {
        authority: authority.into(),
        host: host.into(),
        port,
        path: format!("{slash}{path}"),
    })
}

/// Turns the `\r`, `\n`, `\t` and `\\` escapes of `--raw-request` into characters.
fn unescape(text: &str) -> Result<String, String> {
    let mut parts = Vec::new();
    for part in text.split(r"\\") {
        let part = part.replace(r"\r", "\r").replace(r"\n", "\n");
        let part = part.replace(r"\t", "\t");
        if part.contains('\\') {
            return Err(r"a \ must start \r, \n, \t or \\".into());
        }
        parts.push(part);
    }
    Ok(parts.join("\\"))
}
