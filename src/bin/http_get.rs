//! http_get: an HTTP/1.1 GET written by hand on a TCP socket.
//!
//! The TCP client socket of seed 003. HTTP is text on a TCP byte stream:
//! the client `connect()`s (the three-way handshake), `send()`s a request
//! head (a request line, header lines, each ended by CRLF, and an empty line
//! that ends the head, RFC 9112 §2.1), and reads until the response is
//! complete. One `recv()` is not "the response": it returns whatever has
//! arrived, so the program reads the head up to its empty line and then the
//! body as the head frames it (Content-Length, chunked, or until the server
//! closes; none at all after HEAD and for 204/304, RFC 9112 §6.3), using
//! `socketlab::http`.
//!
//! `--show-request` prints the bytes sent, as Wireshark's Follow TCP Stream
//! shows them; `--raw-request` sends any text instead, such as seed 003's
//! request with its stray empty line, and after the first response prints
//! whatever else the server sends.
//!
//! Terminal 1: `python3 -m http.server --bind 127.0.0.1 8000`
//! Terminal 2: `cargo run --bin http_get -- http://127.0.0.1:8000/ --show-request`
//! Worksheet:  labs/02-client-sockets.md

use std::fs::File;
use std::io::{self, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use clap::Parser;
use socketlab::explain::{self, Proto, Step};
use socketlab::http::{self, BodyLength, BodyReader, HttpUrl, RequestHead, ResponseHead};
use socketlab::printable;
use socketlab::rtt::ms;
use socketlab::{cli, connect};

/// With `--raw-request`, how long to wait for more after a complete
/// response (seed 003's request makes the server answer twice).
const MORE_RESPONSES_WAIT: Duration = Duration::from_secs(1);

/// ...and how much of it to keep, at most.
const MORE_RESPONSES_MAX: usize = 1024 * 1024;

/// Fetch an http:// URL with a GET request written by hand on a TCP socket (seed 003)
#[derive(Parser, Debug)]
#[command(name = "http_get", version)]
struct Cli {
    /// The URL to fetch: http://host[:port][/path][?query] (the port defaults to 80)
    #[arg(value_parser = parse_url)]
    url: HttpUrl,

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
    let (request, method) = match &cli.raw_request {
        Some(RawRequest(raw)) => (raw.clone(), first_word(raw)),
        None => {
            let head = build_request(cli);
            (head.to_bytes(), head.method)
        }
    };
    let addrs = cli::resolve(&cli.url.host, cli.url.port)?;
    // The times are measured from here: name resolution is not counted.
    let start = Instant::now();
    let stream = connect::tcp(&addrs, cli.timeout)?;
    let peer = stream
        .peer_addr()
        .context("failed to read the server's address")?;
    let connected = start.elapsed();
    if cli.show_request {
        println!("--- request: {} bytes sent to {peer} ---", request.len());
        write_stdout(&request)?;
        if !request.ends_with(b"\n") {
            println!();
        }
        println!("--- response ---");
    }
    (&stream).write_all(&request).context(Step::Send {
        proto: Proto::Tcp,
        peer,
    })?;
    // SO_RCVTIMEO: every read() below gives up after --timeout.
    stream
        .set_read_timeout(Some(cli.timeout))
        .context("failed to set the read timeout")?;

    let mut reader = BufReader::new(Recorder::new(&stream));
    let body = loop {
        if let Response::Final(body) =
            read_response(&mut reader, &method, peer, cli.output.as_ref())?
        {
            break body;
        }
    };
    let first_byte = reader.get_ref().first_byte.map(|at| at - start);
    let total = start.elapsed();
    println!("{body}");
    println!(
        "timing: connect {}, first byte {}, total {}",
        ms(connected),
        first_byte.map_or("-".to_string(), ms),
        ms(total)
    );
    if cli.raw_request.is_some() {
        print_rest_of_stream(&stream, &mut reader, peer)?;
    }
    Ok(())
}

/// The request head: request line, `Host` (RFC 9112 §3.2: HTTP/1.1 needs
/// it), `User-Agent`, then the extra headers. `Connection: close` asks the
/// server to close after its response: one request per connection.
fn build_request(cli: &Cli) -> RequestHead {
    let method = if cli.head { "HEAD" } else { "GET" };
    let mut request = RequestHead::new(method, &cli.url.path_and_query);
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
    for (name, value) in defaults {
        if !given(name) {
            request.headers.append(name, value);
        }
    }
    for (name, value) in &cli.headers {
        request.headers.append(name.as_str(), value.as_str());
    }
    request
}

/// One response read by [`read_response`].
enum Response {
    /// A 1xx interim response: the final one follows (RFC 9110 §15.2).
    Interim,
    /// The final response, with a line that says how its body was framed.
    Final(String),
}

/// Reads one response: prints its head exactly as received, then its body
/// (or saves it to `output`).
fn read_response(
    reader: &mut BufReader<Recorder<&TcpStream>>,
    method: &str,
    peer: SocketAddr,
    output: Option<&PathBuf>,
) -> anyhow::Result<Response> {
    let head_bytes = http::read_head(reader)
        .map_err(|err| head_error(err, &reader.get_ref().first_bytes, peer))?;
    write_stdout(&head_bytes)?;
    let head = ResponseHead::parse(&head_bytes)
        .map_err(|err| head_error(err, &reader.get_ref().first_bytes, peer))?;
    // A 1xx has no body, and the real response follows on the same connection.
    if head.is_interim() {
        println!(
            "(an interim {} response: the final response follows)",
            head.status
        );
        return Ok(Response::Interim);
    }
    let length = head.body_length(method).map_err(|err| {
        explain::hinted(
            format!("the response from {peer} frames its body ambiguously: {err}"),
            "the head gives the body's length in two ways that disagree (RFC 9112 §6.3), so \
             no client can tell where the body ends: the server, or something between, is broken",
        )
    })?;
    let framing = match length {
        BodyLength::Empty if method == "HEAD" => "none: a response to HEAD has no body",
        BodyLength::Empty if head.status == 204 || head.status == 304 => {
            "none: a 204 or 304 response has no body"
        }
        BodyLength::Empty => "Content-Length: 0",
        BodyLength::Length(_) => "its length was the Content-Length",
        BodyLength::Chunked => "chunked: decoded from its chunks",
        BodyLength::UntilClose => "no length given: read until the server closed the connection",
    };
    let mut body = BodyReader::new(&mut *reader, length);
    let (size, shown) = match output {
        Some(path) => {
            let mut file = File::create(path).map_err(|err| {
                file_failure(
                    format!("failed to create output file '{}': {err}", path.display()),
                    path,
                )
            })?;
            let size = copy_body(&mut body, &mut file, peer)?;
            (size, format!("; saved to '{}'", path.display()))
        }
        None => {
            let mut kept = Kept::new(MAX_SHOWN);
            let size = copy_body(&mut body, &mut kept, peer)?;
            (size, print_body(&kept)?)
        }
    };
    if let BodyReader::Chunked(chunked) = &body {
        for field in chunked.trailers() {
            let value = String::from_utf8_lossy(&field.value);
            println!("trailer after the last chunk: {}: {value}", field.name);
        }
    }
    Ok(Response::Final(format!(
        "body: {size} bytes ({framing}){shown}"
    )))
}

/// Moves the body from the socket to `sink`; returns its length.
fn copy_body(body: &mut impl Read, sink: &mut impl Write, peer: SocketAddr) -> anyhow::Result<u64> {
    let mut buf = [0u8; 16 * 1024];
    let mut total = 0;
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(err) if err.kind() == ErrorKind::Interrupted => continue,
            // A chunk-size line or CRLF that is wrong: the server's fault, not the socket's.
            Err(err) if err.kind() == ErrorKind::InvalidData => {
                return Err(explain::hinted(
                    format!(
                        "the response body from {peer} is not valid chunked coding, \
                         after {total} bytes: {err}"
                    ),
                    "a chunked body is chunks of `<size in hex>` CRLF `<data>` CRLF, ended by a \
                     chunk of size 0 and an empty line (RFC 9112 §7.1); the server sent \
                     something else, so it is broken",
                ));
            }
            Err(err) => {
                return Err(err)
                    .with_context(|| format!("after {total} bytes of the body"))
                    .context(Step::Receive {
                        proto: Proto::Tcp,
                        peer,
                    });
            }
        };
        // Only the --output file can fail here: a full disk, say.
        sink.write_all(&buf[..n]).map_err(|err| {
            explain::hinted(
                format!("failed to save the body: {err}"),
                "check that the disk is not full and that the file can still be written",
            )
        })?;
        total += n as u64;
    }
}

/// The most of a body kept in memory to be printed, so a server that sends
/// without end cannot use up this machine's memory.
const MAX_SHOWN: usize = 4 * 1024 * 1024;

/// The start of a body that is to be printed: at most `limit` bytes are
/// kept, and whether more came is noted.
struct Kept {
    bytes: Vec<u8>,
    limit: usize,
    cut: bool,
}

impl Kept {
    fn new(limit: usize) -> Kept {
        Kept {
            bytes: Vec::new(),
            limit,
            cut: false,
        }
    }
}

impl Write for Kept {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = self.limit - self.bytes.len();
        self.bytes.extend_from_slice(&buf[..buf.len().min(room)]);
        self.cut |= buf.len() > room;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Prints a text body as it is; a binary one would garble the terminal and
/// a huge one flood it, so for those only the size is printed. Returns what
/// to add to the body line.
fn print_body(body: &Kept) -> anyhow::Result<String> {
    if body.cut {
        println!("[more than {} MiB, not shown]", body.limit / (1024 * 1024));
        return Ok("; too long to print: save it with --output FILE".to_string());
    }
    match std::str::from_utf8(&body.bytes) {
        Ok(text) => {
            write_stdout(text.as_bytes())?;
            if !text.is_empty() && !text.ends_with('\n') {
                println!();
            }
            Ok(String::new())
        }
        Err(_) => {
            println!("[binary data, not shown]");
            Ok("; not text: save it with --output FILE".to_string())
        }
    }
}

/// `--raw-request`: prints whatever the server sends after the response,
/// exactly as it arrives, until it closes the connection, stays quiet for
/// [`MORE_RESPONSES_WAIT`], or has sent [`MORE_RESPONSES_MAX`] bytes. A
/// server that found a second request in what was sent (seed 003's stray
/// empty line) answers that one too.
fn print_rest_of_stream(
    stream: &TcpStream,
    reader: &mut BufReader<Recorder<&TcpStream>>,
    peer: SocketAddr,
) -> anyhow::Result<()> {
    stream
        .set_read_timeout(Some(MORE_RESPONSES_WAIT))
        .context("failed to set the read timeout")?;
    let mut rest = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let end = loop {
        // BufReader hands out what it already holds first, then read()s.
        match reader.read(&mut buf) {
            Ok(0) => break "the server closed the connection".to_string(),
            Ok(n) => {
                rest.extend_from_slice(&buf[..n]);
                if rest.len() >= MORE_RESPONSES_MAX {
                    break format!("stopped reading after {MORE_RESPONSES_MAX} bytes");
                }
            }
            Err(err) if explain::is_timeout(&err) => {
                break format!(
                    "nothing more within {}; the connection is still open",
                    humantime::format_duration(MORE_RESPONSES_WAIT)
                );
            }
            Err(err) if err.kind() == ErrorKind::Interrupted => continue,
            Err(err) => {
                return Err(err).context(Step::Receive {
                    proto: Proto::Tcp,
                    peer,
                });
            }
        }
    };
    if !rest.is_empty() {
        println!("--- {} more bytes after the response ---", rest.len());
        write_stdout(&rest)?;
        if !rest.ends_with(b"\n") {
            println!();
        }
    }
    println!("--- {end} ---");
    Ok(())
}

/// Explains a response head that could not be read: the socket's own error
/// (with its hint), or what the server sent instead of HTTP.
fn head_error(err: http::HeadError, began: &[u8], peer: SocketAddr) -> anyhow::Error {
    let receive = Step::Receive {
        proto: Proto::Tcp,
        peer,
    };
    match err {
        http::HeadError::Io(err) => anyhow::Error::new(err).context(receive),
        http::HeadError::Closed => anyhow::Error::new(io::Error::new(
            ErrorKind::UnexpectedEof,
            "the server closed the connection without sending a response",
        ))
        .context(receive),
        other => explain::hinted(
            format!(
                "the reply from {peer} is not an HTTP/1.x response ({other}); it began {}",
                printable::quoted(began, 120)
            ),
            "a program listens on that port, but it did not answer with an HTTP status line \
             and header lines ended by an empty line (RFC 9112 §2.1): check the port, or see \
             what it says with `ncat HOST PORT`",
        ),
    }
}

/// Parses the URL argument, or says why it is not one http_get can fetch.
fn parse_url(text: &str) -> Result<HttpUrl, String> {
    HttpUrl::parse(text).map_err(|err| {
        let why = match err {
            http::UrlError::UnsupportedScheme(scheme) if scheme.eq_ignore_ascii_case("https") => {
                "https needs TLS, and http_get speaks plain HTTP on a TCP socket; use http://"
                    .to_string()
            }
            other => other.to_string(),
        };
        format!("invalid URL '{text}': {why}")
    })
}

/// Parses `--header 'Name: value'`. The name must be a token (RFC 9110
/// §5.1) and the value must not hold a line break, which would end the
/// header line early (use --raw-request to send such bytes on purpose).
fn header_field(text: &str) -> Result<(String, String), String> {
    let (name, value) = text
        .split_once(':')
        .ok_or_else(|| format!("invalid header '{text}': write it as 'Name: value'"))?;
    let tchar = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() || !name.chars().all(tchar) {
        return Err(format!(
            "invalid header name '{name}': letters, digits and -, no spaces"
        ));
    }
    if value.contains(['\r', '\n', '\0']) {
        return Err(format!(
            "invalid header value in '{}': no line breaks",
            text.escape_debug()
        ));
    }
    Ok((name.to_string(), value.trim().to_string()))
}

/// The bytes of `--raw-request`, sent as they are.
#[derive(Debug, Clone)]
struct RawRequest(Vec<u8>);

/// Turns the `\r`, `\n`, `\t` and `\\` escapes of `--raw-request` into bytes.
fn unescape(text: &str) -> Result<RawRequest, String> {
    let mut out = Vec::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
            continue;
        }
        out.push(match chars.next() {
            Some('r') => b'\r',
            Some('n') => b'\n',
            Some('t') => b'\t',
            Some('\\') => b'\\',
            other => {
                let seq = other.map_or("\\".to_string(), |c| format!("\\{c}"));
                return Err(format!(
                    "unknown escape '{seq}' (use \\r, \\n, \\t or \\\\)"
                ));
            }
        });
    }
    Ok(RawRequest(out))
}

/// The method of a raw request: what comes before its first space.
fn first_word(request: &[u8]) -> String {
    let end = request
        .iter()
        .position(|&b| b == b' ' || b == b'\r' || b == b'\n');
    String::from_utf8_lossy(&request[..end.unwrap_or(request.len())]).into_owned()
}

/// Writes to the terminal (or pipe). A failure there is no network matter,
/// so the OS error becomes part of the message and no socket hint is given.
fn write_stdout(bytes: &[u8]) -> anyhow::Result<()> {
    io::stdout()
        .write_all(bytes)
        .map_err(|err| anyhow!("failed to write to stdout: {err}"))
}

/// `--output` could not be written: a matter of this machine's files.
fn file_failure(message: String, path: &Path) -> anyhow::Error {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    explain::hinted(
        message,
        format!(
            "check that the directory '{}' exists, that you may write there, and that the \
             disk is not full",
            dir.display()
        ),
    )
}

/// A reader that notes when the first byte arrives (the time to first
/// byte) and keeps the first few bytes, to show a reply that is not HTTP.
#[derive(Debug)]
struct Recorder<R> {
    inner: R,
    first_byte: Option<Instant>,
    first_bytes: Vec<u8>,
}

impl<R> Recorder<R> {
    /// How many of the first bytes are kept.
    const KEPT: usize = 256;

    fn new(inner: R) -> Recorder<R> {
        Recorder {
            inner,
            first_byte: None,
            first_bytes: Vec::new(),
        }
    }
}

impl<R: Read> Read for Recorder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 && self.first_byte.is_none() {
            self.first_byte = Some(Instant::now());
        }
        let room = Recorder::<R>::KEPT.saturating_sub(self.first_bytes.len());
        self.first_bytes.extend_from_slice(&buf[..n.min(room)]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_a_student_might_type() {
        let url = parse_url("http://localhost:8000/a?b=1#top").expect("valid");
        assert_eq!(
            (url.host.as_str(), url.port, url.path_and_query.as_str()),
            ("localhost", 8000, "/a?b=1")
        );
        for (text, why) in [
            ("https://example.com/", "https needs TLS"),
            ("example.com", "must start with http://"),
            ("http:///x", "no host"),
            ("http://h:abc/", "invalid port 'abc'"),
            ("http://h:0/", "invalid port '0'"),
        ] {
            let err = parse_url(text).expect_err(text);
            assert!(
                err.starts_with(&format!("invalid URL '{text}': ")) && err.contains(why),
                "{err}"
            );
        }
    }

    #[test]
    fn headers_must_be_one_line_with_a_token_name() {
        assert_eq!(
            header_field("X-Lab:  two words "),
            Ok(("X-Lab".into(), "two words".into()))
        );
        assert_eq!(header_field("Empty:"), Ok(("Empty".into(), String::new())));
        for bad in ["no colon", ": value", "Bad Name: v", "X: a\r\nY: b"] {
            assert!(header_field(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn raw_request_escapes() {
        let bytes = |text| unescape(text).map(|RawRequest(bytes)| bytes);
        assert_eq!(
            bytes(r"GET / HTTP/1.1\r\nHost: h\r\n\r\n"),
            Ok(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n".to_vec())
        );
        assert_eq!(bytes(r"a\\b\tc"), Ok(b"a\\b\tc".to_vec()));
        assert_eq!(bytes("caf\u{e9}"), Ok("caf\u{e9}".as_bytes().to_vec()));
        let err = bytes(r"\x41").expect_err("not an escape");
        assert!(err.contains(r"unknown escape '\x'"), "{err}");
        let err = bytes("trailing\\").expect_err("a lone backslash");
        assert!(err.contains(r"unknown escape '\'"), "{err}");
        assert_eq!(first_word(b"HEAD / HTTP/1.1\r\n"), "HEAD");
        assert_eq!(first_word(b"GET"), "GET");
    }

    #[test]
    fn the_request_is_crlf_text_with_host_and_user_agent() {
        let cli = Cli::try_parse_from([
            "http_get",
            "http://example.com:8080/p?q",
            "--user-agent",
            "lab/1",
            "--header",
            "X-One: 1",
            "--header",
            "accept: text/html",
        ])
        .expect("valid arguments");
        assert_eq!(
            String::from_utf8(build_request(&cli).to_bytes()).expect("text"),
            "GET /p?q HTTP/1.1\r\nHost: example.com:8080\r\nUser-Agent: lab/1\r\n\
             Connection: close\r\nX-One: 1\r\naccept: text/html\r\n\r\n"
        );
    }
}
