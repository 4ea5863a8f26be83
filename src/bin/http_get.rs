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
/// The most of a body kept in memory to be printed.
const MAX_SHOWN: usize = 4 * 1024 * 1024;
/// With `--raw-request`: how long to wait for more after the response, and how much to keep.
const MORE_WAIT: Duration = Duration::from_secs(1);
const MORE_MAX: usize = 1024 * 1024;
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

    /// An extra header, 'Name: value' (repeat for more; replaces a default header of that name)
    #[arg(long = "header", value_name = "'NAME: VALUE'", value_parser = header_field)]
    headers: Vec<(String, String)>,

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
          conflicts_with_all = ["user_agent", "headers", "head"])]
    raw_request: Option<RawRequest>,

    /// How long to wait for the connection, and then for each read
    #[arg(long, default_value = "10s", value_parser = cli::positive_duration)]
    timeout: Duration,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    explain::report(run(&cli))
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    let request = match &cli.raw_request {
        Some(RawRequest(raw)) => raw.clone(),
        None => request_head(cli).into_bytes(),
    };
    let addrs = cli::resolve(&cli.url.host, cli.url.port)?;
    let start = Instant::now(); // name resolution is not timed
    // connect(): SYN, SYN-ACK, ACK, with the first of the addresses that answers.
    let stream = connect::tcp(&addrs, cli.timeout)?;
    let connected = start.elapsed();
    let peer = stream
        .peer_addr()
        .context("failed to read the server's address")?;
    if cli.show_request {
        print_framed(
            &format!("request: {} bytes sent to {peer}", request.len()),
            &request,
        )?;
        println!("--- response ---");
    }
    // write_all(): send() until the kernel has taken every byte of the request.
    let send = Step::Send {
        proto: Proto::Tcp,
        peer,
    };
    (&stream).write_all(&request).context(send)?;
    // SO_RCVTIMEO: every read() below gives up after --timeout.
    stream
        .set_read_timeout(Some(cli.timeout))
        .context("failed to set the read timeout")?;
    // A buffer over the socket, so that read_line() can look for the LF.
    let mut conn = Conn {
        reader: BufReader::new(&stream),
        peer,
    };
    let receive = conn.receive();
    conn.reader.fill_buf().context(receive)?; // the first read(): the first byte
    let first_byte = start.elapsed();
    let summary = conn.final_response(method(cli) == "HEAD", cli.output.as_deref())?;
    println!("{summary}");
    let (connect, first, total) = (ms(connected), ms(first_byte), ms(start.elapsed()));
    println!("timing: connect {connect}, first byte {first}, total {total}");
    if cli.raw_request.is_some() {
        print_rest_of_stream(&stream, &mut conn)?;
    }
    Ok(())
}

/// The request head, written by hand: the request line, `Host` (RFC 9112
/// §3.2: HTTP/1.1 needs it), `User-Agent`, `Accept`, `Connection: close`
/// (one request per connection), the --header lines, every line ended by
/// CRLF, and the empty line that ends the head.
fn request_head(cli: &Cli) -> String {
    let mut head = format!("{} {} HTTP/1.1\r\n", method(cli), cli.url.path);
    let defaults = [
        ("Host", cli.url.authority()),
        ("User-Agent", cli.user_agent.clone()),
        ("Accept", "*/*".to_string()),
        ("Connection", "close".to_string()),
    ];
    let given = |name: &str| {
        cli.headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
    };
    for (name, value) in defaults.iter().filter(|(name, _)| !given(name)) {
        head += &format!("{name}: {value}\r\n");
    }
    for (name, value) in &cli.headers {
        head += &format!("{name}: {value}\r\n");
    }
    head + "\r\n"
}

/// The receiving side of the connection: a buffer over the socket, and the server's address.
struct Conn<'a> {
    reader: BufReader<&'a TcpStream>,
    peer: SocketAddr,
}

/// A response head: its bytes as received, its status code and its fields.
struct Head {
    bytes: Vec<u8>,
    status: u16,
    fields: Vec<(String, String)>,
}

impl Conn<'_> {
    /// Reads heads until a final one (a 1xx is an interim response, the
    /// final one follows on the same connection, RFC 9110 §15.2), then its body.
    fn final_response(&mut self, head_only: bool, output: Option<&Path>) -> anyhow::Result<String> {
        for _ in 0..=MAX_INTERIM {
            let head = self.head()?;
            write_stdout(&head.bytes)?;
            if head.status >= 200 {
                return self.body(&head, head_only, &mut Sink::open(output)?);
            }
            println!(
                "(an interim {} response: the final response follows)",
                head.status
            );
        }
        let what = format!("more than {MAX_INTERIM} interim (1xx) responses, no final one");
        let rule = "a 1xx response says that the final response follows, and a server sends one \
                    or two (100 Continue, 103 Early Hints, RFC 9110 §15.2)";
        Err(broken(self.peer, what, rule))
    }

    /// The status line (`HTTP/1.1 200 OK`), then header lines (`Name: value`)
    /// until the empty line, each read with read_line (RFC 9112 §2.1, §4, §5).
    fn head(&mut self) -> anyhow::Result<Head> {
        let mut bytes = Vec::new();
        let status = match self.line(&mut bytes, MAX_HEAD)? {
            _ if bytes.is_empty() => return Err(self.closed("without sending a response")),
            Some(line) => status_code(&line),
            None => None,
        };
        let Some(status) = status else {
            let began = quoted(&bytes, 120);
            let rule =
                "a response begins with a status line such as `HTTP/1.1 200 OK` (RFC 9112 §4)";
            return Err(broken(
                self.peer,
                format!("no status line; it began {began}"),
                rule,
            ));
        };
        let mut fields = Vec::new();
        loop {
            let room = MAX_HEAD.saturating_sub(bytes.len());
            let Some(line) = self.line(&mut bytes, room)? else {
                return Err(match bytes.len() {
                    MAX_HEAD => broken(
                        self.peer,
                        format!("no end after {MAX_HEAD} bytes"),
                        EMPTY_LINE,
                    ),
                    _ => self.closed(&format!(
                        "in the response head, after {} bytes",
                        bytes.len()
                    )),
                });
            };
            if line.is_empty() {
                return Ok(Head {
                    bytes,
                    status,
                    fields,
                });
            }
            match line.split_once(':') {
                Some((name, value)) if is_token(name) => {
                    fields.push((name.to_string(), value.trim().to_string()));
                }
                _ => {
                    let what = format!("a bad header line {}", quoted(line.as_bytes(), 120));
                    return Err(broken(self.peer, what, EMPTY_LINE));
                }
            }
        }
    }

    /// `read_until(b'\n')`, at most `max` bytes, appended to `buf`. Returns
    /// the line without its CRLF (a bare LF ends a line too, RFC 9112 §2.2),
    /// or None if it has no end: the server closed first, or `max` was reached.
    fn line(&mut self, buf: &mut Vec<u8>, max: usize) -> anyhow::Result<Option<String>> {
        let start = buf.len();
        let mut limited = (&mut self.reader).take(max as u64);
        limited.read_until(b'\n', buf).context(self.receive())?;
        let Some(line) = buf[start..].strip_suffix(b"\n") else {
            return Ok(None);
        };
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        Ok(Some(String::from_utf8_lossy(line).into_owned()))
    }

    /// Reads the body as the head frames it (RFC 9112 §6.3) into `sink`.
    fn body(&mut self, head: &Head, head_only: bool, sink: &mut Sink) -> anyhow::Result<String> {
        let values = |name: &str| -> Vec<String> {
            let fields = head
                .fields
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case(name));
            fields
                .flat_map(|(_, v)| v.split(',').map(|s| s.trim().to_string()))
                .collect()
        };
        let (codings, lengths) = (values("Transfer-Encoding"), values("Content-Length"));
        let mut trailers = Vec::new();
        let how = match lengths.first() {
            _ if head_only => "none: a response to HEAD has no body",
            _ if [204, 304].contains(&head.status) => "none: a 204 or 304 response has no body",
            Some(_) if !codings.is_empty() => {
                let what = "both Content-Length and Transfer-Encoding frame its body".to_string();
                let rule = "a body's length is given in one way, or no client can tell where it \
                            ends (RFC 9112 §6.3)";
                return Err(broken(self.peer, what, rule));
            }
            None if codings
                .last()
                .is_some_and(|c| c.eq_ignore_ascii_case("chunked")) =>
            {
                trailers = self.chunked(sink)?;
                "chunked: decoded from its chunks"
            }
            None => {
                self.copy(None, sink)?;
                "no length given: read until the server closed the connection"
            }
            Some(n) if n == "0" && lengths.iter().all(|l| l == n) => "Content-Length: 0",
            Some(n) => {
                let valid = n.bytes().all(|b| b.is_ascii_digit()) && lengths.iter().all(|l| l == n);
                let length = n.parse().ok().filter(|_| valid);
                let what = format!(
                    "Content-Length {}",
                    quoted(lengths.join(", ").as_bytes(), 60)
                );
                let rule = "Content-Length is one number in decimal digits (RFC 9110 §8.6)";
                let length = length.ok_or_else(|| broken(self.peer, what, rule))?;
                self.copy(Some(length), sink)?;
                "its length was the Content-Length"
            }
        };
        let size = sink.size;
        let shown = sink.finish()?;
        for trailer in trailers {
            println!("trailer after the last chunk: {trailer}");
        }
        Ok(format!("body: {size} bytes ({how}){shown}"))
    }

    /// `Transfer-Encoding: chunked` (RFC 9112 §7.1): `<size in hex>[;ext]`
    /// CRLF `<data>` CRLF, again and again, until a chunk of size 0; then
    /// trailer fields and an empty line. Returns the trailer fields.
    fn chunked(&mut self, sink: &mut Sink) -> anyhow::Result<Vec<String>> {
        let peer = self.peer;
        let rule = "a chunked body is chunks of `<size in hex>` CRLF `<data>` CRLF, ended by a \
                    chunk of size 0 and an empty line (RFC 9112 §7.1)";
        let bad = |sink: &Sink, what: String| {
            broken(
                peer,
                format!("after {} bytes of the body, {what}", sink.size),
                rule,
            )
        };
        loop {
            let line = self.line(&mut Vec::new(), 4096)?;
            let line = line.ok_or_else(|| bad(sink, "a chunk-size line with no end".into()))?;
            let hex = line.split(';').next().unwrap_or_default().trim();
            let size = u64::from_str_radix(hex, 16).ok();
            let size = size.filter(|_| hex.bytes().all(|b| b.is_ascii_hexdigit()));
            let size = size
                .ok_or_else(|| bad(sink, format!("chunk size {}", quoted(line.as_bytes(), 40))))?;
            if size == 0 {
                break;
            }
            self.copy(Some(size), sink)?;
            if self
                .line(&mut Vec::new(), 2)?
                .is_none_or(|end| !end.is_empty())
            {
                return Err(bad(sink, "no CRLF after the chunk's data".into()));
            }
        }
        let mut trailers = Vec::new();
        while trailers.len() <= 100 {
            match self.line(&mut Vec::new(), 4096)? {
                Some(trailer) if trailer.is_empty() => return Ok(trailers),
                Some(trailer) => trailers.push(trailer),
                None => break,
            }
        }
        Err(bad(sink, "no empty line after the trailer fields".into()))
    }

    /// Copies body bytes from the socket to `sink`: exactly `length` of them
    /// (fewer is an error), or, with None, all until the server closes.
    fn copy(&mut self, length: Option<u64>, sink: &mut Sink) -> anyhow::Result<()> {
        let mut buf = [0u8; 16 * 1024];
        let mut left = length.unwrap_or(u64::MAX);
        while left > 0 {
            let want = left.min(buf.len() as u64) as usize;
            let n = match self.reader.read(&mut buf[..want]) {
                Ok(0) if length.is_none() => return Ok(()),
                // read() returned 0: the server sent its FIN before the whole body.
                Ok(0) => {
                    let when = format!(
                        "after {} bytes of the body ({left} more were promised)",
                        sink.size
                    );
                    return Err(self.closed(&when));
                }
                Ok(n) => n,
                Err(err) if err.kind() == ErrorKind::Interrupted => continue,
                Err(err) => {
                    let after = format!("after {} bytes of the body", sink.size);
                    return Err(err).context(after).context(self.receive());
                }
            };
            sink.write(&buf[..n])?;
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
}

/// The status code of `HTTP/1.x NNN reason`, if the line is one (RFC 9112 §4).
fn status_code(line: &str) -> Option<u16> {
    let mut words = line.splitn(3, ' ');
    let version = words.next()?.strip_prefix("HTTP/1.")?;
    let code = words.next()?;
    let digits = |s: &str, n| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    let code = code
        .parse()
        .ok()
        .filter(|_| digits(version, 1) && digits(code, 3));
    code.filter(|code| *code >= 100)
}

// ---- The extras: errors a broken server causes, the sink, --raw-request, arguments ----

/// A reply that breaks HTTP/1.1's rules: `what` is wrong, `rule` says what was expected.
fn broken(peer: SocketAddr, what: String, rule: &str) -> anyhow::Error {
    hinted(
        format!("the reply from {peer} is not a valid HTTP/1.x response: {what}"),
        format!(
            "{rule}; the server sent something else, so it is broken or not an HTTP server \
             (check the port, or see what it says with `ncat HOST PORT`)"
        ),
    )
}

/// Where the body goes: the --output file, byte for byte, or memory, to be
/// printed (at most MAX_SHOWN bytes kept, so an endless body cannot fill it).
struct Sink {
    file: Option<(File, PathBuf)>,
    kept: Vec<u8>,
    size: u64,
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
            kept: Vec::new(),
            size: 0,
        })
    }

    fn write(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        self.size += bytes.len() as u64;
        let Some((file, _)) = &mut self.file else {
            let room = MAX_SHOWN.saturating_sub(self.kept.len());
            self.kept.extend_from_slice(&bytes[..bytes.len().min(room)]);
            return Ok(());
        };
        file.write_all(bytes).map_err(|err| {
            let hint = "check that the disk is not full and that the file can still be written";
            hinted(format!("failed to save the body: {err}"), hint)
        })
    }

    /// Prints a text body as it is; a binary one would garble the terminal
    /// and a huge one flood it. Returns what to add to the `body:` line.
    fn finish(&self) -> anyhow::Result<String> {
        if let Some((_, path)) = &self.file {
            return Ok(format!("; saved to '{}'", path.display()));
        }
        if self.size > self.kept.len() as u64 {
            println!("[more than {} MiB, not shown]", MAX_SHOWN / (1024 * 1024));
            return Ok("; too long to print: save it with --output FILE".to_string());
        }
        if std::str::from_utf8(&self.kept).is_err() {
            println!("[binary data, not shown]");
            return Ok("; not text: save it with --output FILE".to_string());
        }
        if !self.kept.is_empty() {
            print_framed("", &self.kept)?;
        }
        Ok(String::new())
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
fn print_rest_of_stream(stream: &TcpStream, conn: &mut Conn) -> anyhow::Result<()> {
    let wait = Some(MORE_WAIT);
    stream
        .set_read_timeout(wait)
        .context("failed to set the read timeout")?;
    let mut rest = Vec::new();
    // BufReader hands out what it already holds first, then read()s.
    let end = match (&mut conn.reader)
        .take(MORE_MAX as u64)
        .read_to_end(&mut rest)
    {
        Ok(_) if rest.len() >= MORE_MAX => format!("stopped reading after {MORE_MAX} bytes"),
        Ok(_) => "the server closed the connection".to_string(),
        Err(err) if explain::is_timeout(&err) => format!(
            "nothing more within {}; the connection is still open",
            humantime::format_duration(MORE_WAIT)
        ),
        Err(err) => return Err(err).context(conn.receive()),
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

/// Prints `--- title ---` (unless empty) and `bytes` exactly, on lines of their own.
fn print_framed(title: &str, bytes: &[u8]) -> anyhow::Result<()> {
    if !title.is_empty() {
        println!("--- {title} ---");
    }
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
fn method(cli: &Cli) -> String {
    let Some(RawRequest(raw)) = &cli.raw_request else {
        return (if cli.head { "HEAD" } else { "GET" }).to_string();
    };
    let word = raw
        .split(|b| b" \r\n".contains(b))
        .next()
        .unwrap_or_default();
    String::from_utf8_lossy(word).into_owned()
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
    let (scheme, rest) = text
        .split_once("://")
        .ok_or_else(|| why("it must start with http://"))?;
    if scheme.eq_ignore_ascii_case("https") {
        return Err(why(
            "https needs TLS, and http_get speaks plain HTTP; use http://",
        ));
    } else if !scheme.eq_ignore_ascii_case("http") || !text.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(why("only http://, without spaces or non-ASCII characters"));
    }
    let rest = rest.split('#').next().unwrap_or_default();
    let (authority, path) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
    let (host, port) = match authority
        .rsplit_once(':')
        .filter(|(_, port)| !port.contains(']'))
    {
        Some((host, port)) => (host, port.parse().ok().filter(|&p| p != 0).ok_or(port)),
        None => (authority, Ok(80)),
    };
    let port = port.map_err(|port| why(&format!("invalid port '{port}'")))?;
    if host.is_empty() || host.contains('@') {
        return Err(why("no host"));
    }
    let path = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    };
    Ok(Url {
        host: host.to_string(),
        port,
        path,
    })
}

/// True for an HTTP token (RFC 9110 §5.6.2), such as a header name.
fn is_token(name: &str) -> bool {
    let tchar = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    !name.is_empty() && name.chars().all(tchar)
}

/// `--header 'Name: value'`: a token name, and no line break in the value,
/// which would end the header line early (--raw-request sends such bytes).
fn header_field(text: &str) -> Result<(String, String), String> {
    match text.split_once(':') {
        Some((name, value)) if is_token(name) && !value.contains(['\r', '\n', '\0']) => {
            Ok((name.to_string(), value.trim().to_string()))
        }
        _ => Err(format!(
            "invalid header '{}': write it as one line 'Name: value', the name without spaces",
            text.escape_debug()
        )),
    }
}

/// The bytes of `--raw-request` (a type of its own: clap would take a `Vec<u8>` for many values).
#[derive(Debug, Clone)]
struct RawRequest(Vec<u8>);

/// Turns the `\r`, `\n`, `\t` and `\\` escapes of `--raw-request` into bytes.
fn unescape(text: &str) -> Result<RawRequest, String> {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        out.push(match c {
            '\\' => match chars.next() {
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
            },
            c => c,
        });
    }
    Ok(RawRequest(out.into_bytes()))
}
