//! proxy_logger: a browser's "proxy" that prints every request line it is sent (K&R P12).
//!
//! A browser told to use a proxy sends it the whole request, the full URL in the request line
//! (`GET http://example.com/ HTTP/1.1`, RFC 9112 §3.2.2). The server is the classic one:
//! `socket()`, `bind()`, `listen()`, `accept()` in a loop, a thread per connection that calls
//! `read_line()` up to the empty line ending a request head (RFC 9112 §2.1), printing each line,
//! escaped, as it arrives. Watch for conditional GETs (`If-None-Match`, `If-Modified-Since`). It
//! fetches nothing but answers at once, 304 to a conditional GET, 501 to CONNECT, a short note
//! otherwise, then reads the next request (keep-alive).
//!
//! Terminal 1: `cargo run --bin proxy_logger`    (Ctrl-C prints the counts)
//! Terminal 2: `curl -x 127.0.0.1:2000 http://example.com/`
//!         or: `chromium --disable-background-networking --disable-component-update
//!              --user-data-dir=/tmp/p12 --proxy-server=127.0.0.1:2000 http://example.com/`
//! Worksheet:  labs/03-browser-proxy-logger.md

use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use socket2::{Domain, Socket, Type};
use socketlab::cli::{self, ServerArgs};
use socketlab::explain::{self, Proto, Step};
use socketlab::log::Log;

/// Print every HTTP request a browser sends to its proxy, and answer it with a short note (K&R P12).
#[derive(Parser, Debug)]
#[command(
    name = "proxy_logger",
    version,
    mut_arg("bind", |a| a.default_value("127.0.0.1")),
    mut_arg("port", |a| a.default_value("2000"))
)]
struct Cli {
    #[command(flatten)]
    server: ServerArgs,
    /// Most connections served at once; more wait in the listen backlog
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..))]
    max_clients: u32,
    /// A whole request (head and body) must arrive within this long of its first byte; else 408
    #[arg(long, default_value = "30s", value_parser = cli::positive_duration)]
    request_timeout: Duration,
    /// A connection silent this long before its next request is closed
    #[arg(long, default_value = "60s", value_parser = cli::positive_duration)]
    idle_timeout: Duration,
}

/// Requests so far, and how many were conditional: the Ctrl-C summary.
static REQUESTS: AtomicU64 = AtomicU64::new(0);
static CONDITIONAL: AtomicU64 = AtomicU64::new(0);

fn main() -> std::process::ExitCode {
    explain::report(run(&Cli::parse()))
}

/// socket(), bind(), listen(): a TCP socket that takes connections at `addr`.
fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    // SO_REUSEADDR: bind again at once while the last run's connections sit in TIME_WAIT.
    socket.set_reuse_address(cfg!(unix))?;
    socket.bind(&addr.into())?;
    // The backlog: connections, handshake done, queued for accept() (capped by somaxconn).
    // listen(1) would make a browser, which opens several at once, wait on lost SYNs.
    socket.listen(1024)?;
    Ok(socket.into())
}

/// Listens, then the accept() loop: a thread per connection, at most --max-clients at once.
fn run(cli: &Cli) -> anyhow::Result<()> {
    let addr = cli.server.addr();
    let listener = listen(addr).context(Step::Bind(Proto::Tcp, addr))?;
    let local = listener.local_addr().context("getsockname() failed")?;
    println!("proxy_logger listening on {local} (HTTP proxy)");
    // SIGINT (Ctrl-C) would end the process silently; ctrlc runs this instead, even with --quiet.
    ctrlc::set_handler(|| {
        let (total, conditional) = (requests(REQUESTS.load(SeqCst)), CONDITIONAL.load(SeqCst));
        let counts = format!("stopped: {total}, {conditional} of them conditional");
        Log::new(false).note(counts);
        std::process::exit(0);
    })
    .context("failed to set a Ctrl-C handler")?;
    let cap = socketlab::limit::ConnectionLimit::new(cli.max_clients as usize);
    let (log, limits) = (cli.server.log(), [cli.request_timeout, cli.idle_timeout]);
    loop {
        // At the cap, stop calling accept(): new clients wait in the backlog.
        let slot = cap.acquire_logged(log);
        let (stream, peer) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(err) => {
                log.note(format_args!("{}: {err}", Step::Accept));
                socketlab::listen::pause_after_accept_error(&err);
                continue;
            }
        };
        let spawned = std::thread::Builder::new().spawn(move || {
            let _slot = slot; // given back when this thread ends
            log.peer(peer, converse(&stream, peer, log, limits));
        });
        if let Err(err) = spawned {
            log.peer(peer, format_args!("no thread for this connection: {err}"));
        }
    }
}

/// One connection: request after request while it is kept open (RFC 9112 §9.3); how it ended.
fn converse(stream: &TcpStream, peer: SocketAddr, log: Log, limits: [Duration; 2]) -> String {
    let [request_timeout, idle_timeout] = limits;
    let deadline = Instant::now();
    let mut reader = BufReader::new(socketlab::deadline::Timed { stream, deadline });
    for served in 0.. {
        // Wait up to --idle-timeout for the first byte of the next request.
        reader.get_mut().allow(idle_timeout);
        let after = requests(served);
        match reader.fill_buf() {
            Ok([]) => return format!("the client closed the connection after {after}"),
            Ok(_) => {}
            Err(err) if explain::is_timeout(&err) => {
                return format!("silent for --idle-timeout: closed the connection after {after}");
            }
            Err(err) => return format!("the connection failed after {after}: {err}"),
        }
        // From its first byte on, one deadline for the whole request: no trickling for ever.
        reader.get_mut().allow(request_timeout);
        let (number, on) = (REQUESTS.fetch_add(1, SeqCst) + 1, served + 1);
        let first = format!("request {number} (number {on} on this connection):");
        log.peer(peer, first);
        let ((what, status), request) = match read_request(&mut reader, peer, log) {
            Ok(request) => (verdict(&request), request),
            // SO_RCVTIMEO expired (EAGAIN on Unix) or the deadline passed: 408.
            Err(err) if explain::is_timeout(&err) => {
                let why = "the request did not arrive within --request-timeout";
                ((why.into(), "408 Request Timeout"), Request::default())
            }
            // Not a request, or not text (read_line() takes UTF-8 only): 400.
            Err(err) if err.kind() == ErrorKind::InvalidData => {
                ((err.to_string(), "400 Bad Request"), Request::default())
            }
            Err(err) => return format!("connection ended: {err}"),
        };
        log.peer(peer, format_args!("{what}: answered {status}"));
        if let Err(err) = answer(stream, status, &request) {
            return format!("connection ended: failed to send the answer: {err}");
        }
        if !request.keep_alive {
            socketlab::listen::close_gracefully(stream);
            return format!("closed the connection after {}", requests(served + 1));
        }
    }
    unreachable!("no connection serves 2^64 requests")
}

#[derive(Default)]
struct Request {
    method: String,
    /// The conditional GET's fields, If-None-Match and If-Modified-Since, as the client wrote them.
    validators: Vec<String>,
    keep_alive: bool,
}

/// Reads one request: `read_line()` to the empty line, printing each line; then drops its body.
fn read_request(reader: &mut impl BufRead, peer: SocketAddr, log: Log) -> io::Result<Request> {
    let bad = |why: &str| io::Error::new(ErrorKind::InvalidData, why);
    let (mut request, mut length, mut chunked) = (Request::default(), None, false);
    let mut left: u64 = 64 * 1024; // with take(): no line grows for ever
    loop {
        let mut line = String::new();
        left -= reader.by_ref().take(left).read_line(&mut line)? as u64;
        if left == 0 {
            return Err(bad("a head over 64 KiB"));
        }
        let text = line.strip_suffix('\n').ok_or(bad("a cut-off head"))?;
        let text = text.strip_suffix('\r').unwrap_or(text);
        if text.is_empty() {
            break;
        }
        let shown = socketlab::printable::quoted(text.as_bytes(), 2000);
        log.peer(peer, format_args!("  {shown}"));
        if request.method.is_empty() {
            // The request line: METHOD TARGET HTTP/1.x (RFC 9112 §3); no space in the target.
            let words: Vec<&str> = text.split(' ').collect();
            if words.len() != 3 || words.contains(&"") || !words[2].starts_with("HTTP/1.") {
                return Err(bad("not a request line (METHOD TARGET HTTP/1.1)"));
            }
            // HTTP/1.1 keeps the connection open unless told `Connection: close` (RFC 9112 §9.3).
            (request.method, request.keep_alive) = (words[0].into(), words[2] == "HTTP/1.1");
            continue;
        }
        let (name, value) = text.split_once(':').ok_or(bad("a line without a colon"))?;
        let value = value.trim();
        match name.to_ascii_lowercase().as_str() {
            // Digits, once: else no telling where the next request begins (RFC 9112 §6.3).
            "content-length" if length.is_none() && value.bytes().all(|b| b.is_ascii_digit()) => {
                length = Some(value.parse().map_err(|_| bad("a bad Content-Length"))?);
            }
            "content-length" => return Err(bad("a bad or second Content-Length")),
            // A chunked body is not decoded, so no telling where the next request begins.
            "transfer-encoding" => (chunked, request.keep_alive) = (true, false),
            "connection" if value.eq_ignore_ascii_case("close") => request.keep_alive = false,
            "if-none-match" | "if-modified-since" => request.validators.push(name.into()),
            _ => {}
        }
    }
    let length = length.filter(|_| !chunked).unwrap_or(0);
    if io::copy(&mut reader.by_ref().take(length), &mut io::sink())? < length {
        return Err(bad("a cut-off body"));
    }
    Ok(request)
}

/// What the request is, for the log, and the status to answer it with.
fn verdict(request: &Request) -> (String, &'static str) {
    let (method, validators) = (&request.method, request.validators.join(", "));
    match method.as_str() {
        "CONNECT" => ("CONNECT, a tunnel for HTTPS".into(), "501 Not Implemented"),
        // Other methods take these fields as preconditions, not cache validation (RFC 9110 §13.1).
        "GET" | "HEAD" if !validators.is_empty() => {
            CONDITIONAL.fetch_add(1, SeqCst);
            let what = format!("conditional {method} ({validators})");
            (what, "304 Not Modified")
        }
        _ => (format!("plain {method}"), "200 OK"),
    }
}

/// Writes a response: status line, header fields, empty line, body.
fn answer(mut w: &TcpStream, status: &str, request: &Request) -> io::Result<()> {
    let close = (!request.keep_alive).then_some("Connection: close\r\n");
    let close = close.unwrap_or_default();
    // A 304 has no body (RFC 9110 §15.4.5).
    if status == "304 Not Modified" {
        return w.write_all(format!("HTTP/1.1 {status}\r\n{close}\r\n").as_bytes());
    }
    let note = "proxy_logger logged this request; it fetches nothing (see its terminal)";
    let body = format!("{}\n", if status == "200 OK" { note } else { status });
    // The answer to HEAD is the head of GET's; no-store: the browser must not cache the note.
    let length = body.len();
    let body = if request.method == "HEAD" { "" } else { &body };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Cache-Control: no-store\r\nContent-Length: {length}\r\n{close}\r\n{body}"
    );
    w.write_all(response.as_bytes())
}

fn requests(n: u64) -> String {
    format!("{n} request{}", if n == 1 { "" } else { "s" })
}
