//! http_get: an HTTP/1.1 GET written by hand on a TCP socket.
//!
//! The TCP client socket of seed 003. HTTP is text on a TCP byte stream.
//! The client `connect()`s (the three-way handshake), writes its request
//! head with one `write_all()`: a request line, header lines, each ended by
//! CRLF, and an empty line that ends the head (RFC 9112 §2.1). Then it reads
//! the response: the status line and the header lines with `read_line()` up
//! to the empty line, then the body as the head frames it (RFC 9112 §6.3):
//! exactly Content-Length bytes, chunk by chunk (`Transfer-Encoding:
//! chunked`, §7.1), or until the server closes; none after HEAD and for 204
//! and 304. One `recv()` is not "the response": it returns whatever has
//! arrived, so the framing, never the reads, says where the response ends.
//!
//! The extras come after the lesson: `--show-request` prints the bytes sent;
//! `--raw-request` sends any text instead (seed 003's request with its stray
//! empty line) and prints whatever else the server sends; `--output` saves
//! the body byte for byte; the last line times connect, first byte, total.
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

/// The longest response head read: more without its empty line is a head with no end.
const MAX_HEAD: usize = 64 * 1024;
/// How many 1xx interim responses are read before giving up (real servers send one or two).
const MAX_INTERIM: usize = 10;
/// With `--raw-request`: how long to wait for more after the response, and how much to keep.
const MORE_WAIT: Duration = Duration::from_secs(1);
const MORE_MAX: u64 = 1024 * 1024;
/// What a head must be (the rule a bad one breaks).
const EMPTY_LINE: &str = "a response head is a status line and `Name: value` header lines, \
                          ended by an empty line (RFC 9112 §2.1, §5)";

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

    /// Send exactly this text as the request (\r \n \t \\ are escapes); after
    /// the response, print whatever else the server sends
    #[arg(long, value_name = "TEXT", value_parser = unescape,
          conflicts_with_all = ["user_agent", "head"])]
    raw_request: Option<String>,

    /// How long to wait for the connection, and then for each read
    #[arg(long, default_value = "10s", value_parser = cli::positive_duration)]
    timeout: Duration,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    explain::report(run(&cli))
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    let request = cli.raw_request.clone().unwrap_or_else(|| request_head(cli));
    let addrs = cli::resolve(&cli.url.host, cli.url.port)?;
    let start = Instant::now(); // name resolution is not timed
    // connect(): SYN, SYN-ACK, ACK, with the first of the addresses that answers.
    let stream = connect::tcp(&addrs, cli.timeout)?;
    let connected = start.elapsed();
    let peer = stream
        .peer_addr()
        .context("failed to read the server's address")?;
    if cli.show_request {
        let title = format!("request: {} bytes sent to {peer}", request.len());
        print_framed(&title, request.as_bytes())?;
        println!("--- response ---");
    }
    // write_all(): send() until the kernel has taken every byte of the request.
    let send = Step::Send {
        proto: Proto::Tcp,
        peer,
    };
    (&stream).write_all(request.as_bytes()).context(send)?;
    // SO_RCVTIMEO: every read() below gives up after --timeout.
    stream
        .set_read_timeout(Some(cli.timeout))
        .context("failed to set the read timeout")?;
    // A buffer over the socket, so that read_line() can look for the LF.
    let mut conn = BufReader::new(&stream);
    let receive = Step::Receive {
        proto: Proto::Tcp,
        peer,
    };
    conn.fill_buf().context(receive)?; // the first read(): the first byte
    let first_byte = start.elapsed();
    let sink = Sink::open(cli.output.as_deref())?;
    let mut response = Response { conn, peer, sink };
    let head = response.final_head()?;
    let how = response.body(&head, method(cli) == "HEAD")?;
    println!("{}", response.sink.finish(how)?);
    let (connect, first, total) = (ms(connected), ms(first_byte), ms(start.elapsed()));
    println!("timing: connect {connect}, first byte {first}, total {total}");
    if cli.raw_request.is_some() {
        print_rest_of_stream(&stream, &mut response)?;
    }
    Ok(())
}

/// The request head, written by hand: the request line, `Host` (RFC 9112
/// §3.2: HTTP/1.1 needs it), `User-Agent`, `Accept`, `Connection: close`
/// (one request per connection), each line ended by CRLF, and the empty
/// line that ends the head.
fn request_head(cli: &Cli) -> String {
    let (method, path, host) = (method(cli), &cli.url.path, cli.url.authority());
    let agent = &cli.user_agent;
    format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {agent}\r\nAccept: */*\r\n\
         Connection: close\r\n\r\n"
    )
}

/// The receiving side: a buffer over the socket, the server's address, where the body goes.
struct Response<'a> {
    conn: BufReader<&'a TcpStream>,
    peer: SocketAddr,
    sink: Sink,
}

/// What a final response head says about its body.
struct Head {
    status: u16,
    /// The values of every Content-Length field.
    lengths: Vec<String>,
    /// The last Transfer-Encoding field's value.
    codings: Option<String>,
}

impl Response<'_> {
    /// Reads heads until a final one: a 1xx is an interim response, the
    /// final one follows on the same connection (RFC 9110 §15.2).
    fn final_head(&mut self) -> anyhow::Result<Head> {
        for _ in 0..=MAX_INTERIM {
            let head = self.head()?;
            if head.status >= 200 {
                return Ok(head);
            }
            println!(
                "(an interim {} response: the final response follows)",
                head.status
            );
        }
        let what = format!("more than {MAX_INTERIM} interim (1xx) responses, no final one");
        let rule = "a 1xx response says that the final response follows, and a server sends one \
                    or two (100 Continue, 103 Early Hints, RFC 9110 §15.2)";
        Err(self.broken(what, rule))
    }

    /// The status line (`HTTP/1.1 200 OK`), then header lines (`Name: value`)
    /// until the empty line, each read with read_line (RFC 9112 §2.1, §4, §5);
    /// printed once whole.
    fn head(&mut self) -> anyhow::Result<Head> {
        let mut bytes = Vec::new();
        let line = self.line(&mut bytes, MAX_HEAD)?;
        if bytes.is_empty() {
            return Err(self.closed("without sending a response"));
        }
        let Some(status) = line.as_deref().and_then(status_code) else {
            let what = format!("no status line; it began {}", quoted(&bytes, 120));
            let rule =
                "a response begins with a status line such as `HTTP/1.1 200 OK` (RFC 9112 §4)";
            return Err(self.broken(what, rule));
        };
        let mut head = Head {
            status,
            lengths: Vec::new(),
            codings: None,
        };
        loop {
            let room = MAX_HEAD.saturating_sub(bytes.len());
            let line = match self.line(&mut bytes, room)? {
                Some(line) if line.is_empty() => break,
                Some(line) => line,
                None if bytes.len() == MAX_HEAD => {
                    return Err(self.broken(format!("no end after {MAX_HEAD} bytes"), EMPTY_LINE));
                }
                None => {
                    let when = format!("in the response head, after {} bytes", bytes.len());
                    return Err(self.closed(&when));
                }
            };
            let Some((name, value)) = line.split_once(':').filter(|(name, _)| is_token(name))
            else {
                let what = format!("a bad header line {}", quoted(line.as_bytes(), 120));
                return Err(self.broken(what, EMPTY_LINE));
            };
            if name.eq_ignore_ascii_case("Content-Length") {
                head.lengths.push(value.trim().to_string());
            } else if name.eq_ignore_ascii_case("Transfer-Encoding") {
                head.codings = Some(value.trim().to_string());
            }
        }
        write_stdout(&bytes)?;
        Ok(head)
    }

    /// `read_until(b'\n')`, at most `max` bytes, appended to `buf`. Returns
    /// the line without its CRLF (a bare LF ends a line too, RFC 9112 §2.2),
    /// or None if it has no end: the server closed first, or `max` was reached.
    fn line(&mut self, buf: &mut Vec<u8>, max: usize) -> anyhow::Result<Option<String>> {
        let start = buf.len();
        let mut limited = (&mut self.conn).take(max as u64);
        limited.read_until(b'\n', buf).context(self.receive())?;
        let Some(line) = buf[start..].strip_suffix(b"\n") else {
            return Ok(None);
        };
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        Ok(Some(String::from_utf8_lossy(line).into_owned()))
    }

    /// Reads the body as the head frames it (RFC 9112 §6.3); returns how its end was found.
    fn body(&mut self, head: &Head, head_only: bool) -> anyhow::Result<&'static str> {
        let lengths = &head.lengths;
        // The last coding decides: `gzip, chunked` is chunked (RFC 9112 §6.1).
        let last_coding = head
            .codings
            .as_deref()
            .map(|c| c.rsplit(',').next().unwrap_or(c).trim());
        Ok(match lengths.first() {
            _ if head_only => "none: a response to HEAD has no body",
            _ if [204, 304].contains(&head.status) => "none: a 204 or 304 response has no body",
            Some(_) if last_coding.is_some() => {
                let rule = "a body's length is given in one way, or no client can tell where it \
                            ends (RFC 9112 §6.3)";
                let what = "both Content-Length and Transfer-Encoding frame its body";
                return Err(self.broken(what.into(), rule));
            }
            None if last_coding.is_some_and(|c| c.eq_ignore_ascii_case("chunked")) => {
                self.chunked()?;
                "chunked: decoded from its chunks"
            }
            None => {
                self.copy(None)?;
                "no length given: read until the server closed the connection"
            }
            Some(n) => {
                // Repeated Content-Length fields must agree (RFC 9110 §8.6).
                let valid = n.bytes().all(|b| b.is_ascii_digit()) && lengths.iter().all(|l| l == n);
                let Some(length) = n.parse().ok().filter(|_| valid) else {
                    let what = format!(
                        "Content-Length {}",
                        quoted(lengths.join(", ").as_bytes(), 60)
                    );
                    let rule = "Content-Length is one number in decimal digits (RFC 9110 §8.6)";
                    return Err(self.broken(what, rule));
                };
                self.copy(Some(length))?;
                "its length was the Content-Length"
            }
        })
    }

    /// `Transfer-Encoding: chunked` (RFC 9112 §7.1): `<size in hex>[;ext]`
    /// CRLF `<data>` CRLF, again and again, until a chunk of size 0; then
    /// trailer fields and an empty line.
    fn chunked(&mut self) -> anyhow::Result<()> {
        let bad = |this: &Self, what: &str| {
            let rule = "a chunked body is chunks of `<size in hex>` CRLF `<data>` CRLF, ended by \
                        a chunk of size 0 and an empty line (RFC 9112 §7.1)";
            this.broken(
                format!("after {} bytes of the body, {what}", this.sink.size),
                rule,
            )
        };
        loop {
            let Some(line) = self.line(&mut Vec::new(), 4096)? else {
                return Err(bad(self, "a chunk-size line with no end"));
            };
            // from_str_radix would take a sign: only hex digits are a size.
            let hex = line.split(';').next().unwrap_or_default().trim();
            let size = u64::from_str_radix(hex, 16).ok();
            let Some(size) = size.filter(|_| hex.bytes().all(|b| b.is_ascii_hexdigit())) else {
                return Err(bad(
                    self,
                    &format!("chunk size {}", quoted(line.as_bytes(), 40)),
                ));
            };
            if size == 0 {
                break;
            }
            self.copy(Some(size))?;
            if self.line(&mut Vec::new(), 2)? != Some(String::new()) {
                return Err(bad(self, "no CRLF after the chunk's data"));
            }
        }
        while self.sink.trailers.len() <= 100 {
            match self.line(&mut Vec::new(), 4096)? {
                Some(trailer) if trailer.is_empty() => return Ok(()),
                Some(trailer) => self.sink.trailers.push(trailer),
                None => break,
            }
        }
        Err(bad(self, "no empty line after the trailer fields"))
    }

    /// Copies body bytes from the socket to the sink: exactly `length` of
    /// them (fewer is an error), or, with None, all until the server closes.
    fn copy(&mut self, length: Option<u64>) -> anyhow::Result<()> {
        let mut left = length.unwrap_or(u64::MAX);
        while left > 0 {
            let (size, receive) = (self.sink.size, self.receive());
            // fill_buf(): what the buffer holds, or one read() into it.
            let piece = self.conn.fill_buf();
            let piece = piece
                .with_context(|| format!("after {size} bytes of the body"))
                .context(receive)?;
            // read() returned 0: the server sent its FIN.
            if piece.is_empty() && length.is_none() {
                return Ok(());
            } else if piece.is_empty() {
                return Err(self.closed(&format!(
                    "after {size} bytes of the body ({left} more were promised)"
                )));
            }
            let n = left.min(piece.len() as u64) as usize;
            self.sink.write(&piece[..n])?;
            self.conn.consume(n);
            left -= n as u64;
        }
        Ok(())
    }

    fn receive(&self) -> Step {
        Step::Receive {
            proto: Proto::Tcp,
            peer: self.peer,
        }
    }

    /// The server closed the connection (read() returned 0) too early.
    fn closed(&self, when: &str) -> anyhow::Error {
        let why = format!("the server closed the connection {when}");
        anyhow::Error::new(io::Error::new(ErrorKind::UnexpectedEof, why)).context(self.receive())
    }

    /// A reply that breaks HTTP/1.1's rules: `what` is wrong, `rule` says what was expected.
    fn broken(&self, what: String, rule: &str) -> anyhow::Error {
        let peer = self.peer;
        hinted(
            format!("the reply from {peer} is not a valid HTTP/1.x response: {what}"),
            format!(
                "{rule}; the server sent something else, so it is broken or not an HTTP server \
                 (check the port, or see what it says with `ncat HOST PORT`)"
            ),
        )
    }
}

/// The status code of `HTTP/1.x NNN reason`, if the line is one (RFC 9112 §4).
fn status_code(line: &str) -> Option<u16> {
    let mut words = line.splitn(3, ' ');
    let version = words.next()?.strip_prefix("HTTP/1.")?;
    let code = words.next()?;
    let digits = |s: &str, n| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    let code: u16 = code
        .parse()
        .ok()
        .filter(|_| digits(version, 1) && digits(code, 3))?;
    (code >= 100).then_some(code)
}

/// True for an HTTP token (RFC 9110 §5.6.2), such as a header name.
fn is_token(name: &str) -> bool {
    let tchar = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    !name.is_empty() && name.chars().all(tchar)
}

// ---- The extras: --output, --raw-request, the URL and its escapes ----

/// Where the body goes: the --output file, byte for byte, or stdout.
struct Sink {
    file: Option<(File, PathBuf)>,
    size: u64,
    /// The last byte printed, so that the `body:` line starts a line of its own.
    last: u8,
    trailers: Vec<String>,
}

impl Sink {
    fn open(output: Option<&Path>) -> anyhow::Result<Sink> {
        let file = match output {
            Some(path) => Some((
                File::create(path).map_err(|err| cannot_create(path, err))?,
                path.into(),
            )),
            None => None,
        };
        Ok(Sink {
            file,
            size: 0,
            last: b'\n',
            trailers: Vec::new(),
        })
    }

    fn write(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        self.size += bytes.len() as u64;
        let Some((file, _)) = &mut self.file else {
            self.last = bytes.last().copied().unwrap_or(self.last);
            return write_stdout(bytes);
        };
        file.write_all(bytes).map_err(|err| {
            let hint = "check that the disk is not full and that the file can still be written";
            hinted(format!("failed to save the body: {err}"), hint)
        })
    }

    /// The `body:` line, after the trailer fields.
    fn finish(&self, how: &str) -> anyhow::Result<String> {
        if self.last != b'\n' {
            println!();
        }
        for trailer in &self.trailers {
            println!("trailer after the last chunk: {trailer}");
        }
        let saved = self
            .file
            .as_ref()
            .map(|(_, path)| format!("; saved to '{}'", path.display()));
        Ok(format!(
            "body: {} bytes ({how}){}",
            self.size,
            saved.unwrap_or_default()
        ))
    }
}

fn cannot_create(path: &Path, err: io::Error) -> anyhow::Error {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    let dir = dir.unwrap_or(Path::new(".")).display();
    hinted(
        format!("failed to create output file '{}': {err}", path.display()),
        format!(
            "check that the directory '{dir}' exists, that you may write there, and that the disk is not full"
        ),
    )
}

/// `--raw-request`: prints whatever the server sends after the response,
/// until it closes, stays quiet for [`MORE_WAIT`], or has sent [`MORE_MAX`]
/// bytes. A server that found a second request in what was sent (seed
/// 003's stray empty line) answers that one too.
fn print_rest_of_stream(stream: &TcpStream, response: &mut Response) -> anyhow::Result<()> {
    stream
        .set_read_timeout(Some(MORE_WAIT))
        .context("failed to set the read timeout")?;
    let mut rest = Vec::new();
    // BufReader hands out what it already holds first, then read()s.
    let end = match (&mut response.conn).take(MORE_MAX).read_to_end(&mut rest) {
        Ok(_) if rest.len() as u64 >= MORE_MAX => format!("stopped reading after {MORE_MAX} bytes"),
        Ok(_) => "the server closed the connection".to_string(),
        Err(err) if explain::is_timeout(&err) => {
            let wait = humantime::format_duration(MORE_WAIT);
            format!("nothing more within {wait}; the connection is still open")
        }
        Err(err) => return Err(err).context(response.receive()),
    };
    if !rest.is_empty() {
        print_framed(
            &format!("{} more bytes after the response", rest.len()),
            &rest,
        )?;
    }
    println!("--- {end} ---");
    Ok(())
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

/// GET, HEAD with --head, or the first word of --raw-request.
fn method(cli: &Cli) -> &str {
    match &cli.raw_request {
        Some(raw) => raw.split([' ', '\r', '\n']).next().unwrap_or_default(),
        None if cli.head => "HEAD",
        None => "GET",
    }
}

/// An `http://host[:port][/path][?query]` URL (RFC 9110 §4.2.1).
#[derive(Debug, Clone)]
struct Url {
    /// A name or an IP address (an IPv6 one in brackets).
    host: String,
    port: u16,
    /// What goes in the request line: starts with `/`, no `#fragment`.
    path: String,
}

impl Url {
    /// The `Host` field's value (RFC 9110 §7.2): the port is left out when it is 80.
    fn authority(&self) -> String {
        match self.port {
            80 => self.host.clone(),
            port => format!("{}:{port}", self.host),
        }
    }
}

fn parse_url(text: &str) -> Result<Url, String> {
    let why = |why: &str| format!("invalid URL '{text}': {why}");
    let Some((scheme, rest)) = text.split_once("://") else {
        return Err(why("it must start with http://"));
    };
    if scheme.eq_ignore_ascii_case("https") {
        return Err(why(
            "https needs TLS, and http_get speaks plain HTTP; use http://",
        ));
    } else if !scheme.eq_ignore_ascii_case("http") || !text.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(why("only http://, without spaces or non-ASCII characters"));
    }
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
    let (host, path) = (host.to_string(), format!("{slash}{path}"));
    Ok(Url { host, port, path })
}

/// Turns the `\r`, `\n`, `\t` and `\\` escapes of `--raw-request` into characters.
fn unescape(text: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        out.push(match chars.next() {
            Some('r') => '\r',
            Some('n') => '\n',
            Some('t') => '\t',
            Some('\\') => '\\',
            other => {
                let seq = other.map_or(String::new(), String::from);
                return Err(format!(
                    "unknown escape '\\{seq}' (use \\r, \\n, \\t or \\\\)"
                ));
            }
        });
    }
    Ok(out)
}
