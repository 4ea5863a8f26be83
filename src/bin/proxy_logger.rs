//! proxy_logger: a browser's "proxy" that prints every request line it is sent.
//!
//! K&R problem P12: a TCP server that prints the lines a client sends. A
//! browser told to use a proxy connects to it instead of the web server and
//! sends the whole request there, the full URL in the request line (`GET
//! http://example.com/ HTTP/1.1`, the *absolute form*, RFC 9112 §3.2.2). The
//! server is the classic one: `socket()`, `bind()`, `listen()`, `accept()` in a
//! loop, a thread per connection. A request head is lines of text ended by an
//! empty line (RFC 9112 §2.1), so the thread calls `read_line()` until that
//! line, printing each line as it arrives, escaped (a client cannot drive your
//! terminal). Look for *conditional GETs* (`If-Modified-Since`,
//! `If-None-Match`): the browser asking if a page it has cached has changed.
//!
//! It fetches nothing (`web_proxy` does) but answers at once, since a browser
//! resends a request that got no answer: `304 Not Modified` to a conditional
//! GET, so the browser shows its cached copy; `501 Not Implemented` to
//! `CONNECT` (an HTTPS tunnel); a short `200 OK` note to anything else. Then
//! it reads the connection's next request (keep-alive). A whole request must
//! arrive within `--request-timeout` of its first byte, so clients that send
//! a byte now and then cannot hold every thread. It binds 127.0.0.1: only
//! programs on this machine can use it.
//!
//! Terminal 1: `cargo run --bin proxy_logger`    (Ctrl-C prints the counts)
//! Terminal 2: `curl -x 127.0.0.1:2000 http://example.com/`
//!         or: `chromium --disable-background-networking --disable-component-update
//!              --user-data-dir=/tmp/p12 --proxy-server=127.0.0.1:2000 http://example.com/`
//! Worksheet:  labs/03-browser-proxy-logger.md

use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use clap::Parser;
use socket2::{Domain, Socket, Type};
use socketlab::cli::{self, ServerArgs};
use socketlab::explain::{self, Proto, Step};
use socketlab::limit::ConnectionLimit;
use socketlab::listen::{close_gracefully, pause_after_accept_error};
use socketlab::log::{self, Log};
use socketlab::printable;

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

/// listen(2)'s backlog: how many connections, handshake done, the kernel
/// queues for `accept()` (Linux caps it at net.core.somaxconn). The classic
/// `listen(1)` makes a browser, which opens several at once, wait on lost SYNs.
const BACKLOG: i32 = 1024;

/// The body of every `200 OK`.
const NOTE: &str = "proxy_logger logged this request; it fetches nothing (see its terminal)\n";

/// Requests so far, and how many were conditional: the Ctrl-C summary.
static REQUESTS: AtomicU64 = AtomicU64::new(0);
static CONDITIONAL: AtomicU64 = AtomicU64::new(0);

fn main() -> ExitCode {
    let cli = Cli::parse();
    explain::report(run(&cli))
}

/// socket(), bind(), listen(): a TCP socket that takes connections at `addr`.
fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    // SO_REUSEADDR: bind again at once after a restart while connections of
    // the last run sit in TIME_WAIT (on Windows it means more: Unix only).
    socket.set_reuse_address(cfg!(unix))?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// Listens, then the accept() loop: a thread per connection, at most
/// --max-clients at once.
fn run(cli: &Cli) -> anyhow::Result<()> {
    let addr = cli.server.addr();
    let listener = listen(addr).context(Step::Bind {
        proto: Proto::Tcp,
        addr,
    })?;
    let local = listener
        .local_addr()
        .context("failed to read the bound address")?;
    println!("proxy_logger listening on {local} (HTTP proxy)");
    // SIGINT (Ctrl-C) would end the process before it could say anything;
    // the ctrlc crate turns it into a call on a thread of its own.
    ctrlc::set_handler(print_counts_and_exit).context("failed to set a Ctrl-C handler")?;
    let (log, limits) = (cli.server.log(), (cli.request_timeout, cli.idle_timeout));
    let cap = ConnectionLimit::new(cli.max_clients as usize);
    loop {
        // At the cap, stop calling accept(): new clients wait in the backlog.
        let slot = cap.acquire_logged(log);
        let (stream, peer) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(err) => {
                log.note(format_args!("{}: {err}", Step::Accept));
                pause_after_accept_error(&err);
                continue;
            }
        };
        let spawned = thread::Builder::new().spawn(move || {
            let _slot = slot; // given back when this thread ends
            log.peer(peer, converse(stream, peer, log, limits));
        });
        if let Err(err) = spawned {
            log.peer(peer, format_args!("no thread for this connection: {err}"));
        }
    }
}

/// One connection: request after request while the client keeps it open
/// (keep-alive, RFC 9112 §9.3). Returns how it ended, for the log.
fn converse(stream: TcpStream, peer: SocketAddr, log: Log, limits: (Duration, Duration)) -> String {
    let (request_timeout, idle_timeout) = limits;
    let mut writer = match stream.try_clone() {
        Ok(writer) => writer,
        Err(err) => return format!("cannot use the connection: {err}"),
    };
    let mut reader = BufReader::new(Timed {
        stream,
        deadline: Instant::now(),
    });
    for served in 0.. {
        // Wait up to --idle-timeout for the first byte of the next request.
        reader.get_mut().deadline = Instant::now() + idle_timeout;
        let after = requests(served);
        match reader.fill_buf() {
            Ok([]) => return format!("the client closed the connection after {after}"),
            Ok(_) => {}
            Err(err) if explain::is_timeout(&err) => {
                return format!("silent for --idle-timeout: closed the connection after {after}");
            }
            Err(err) => return format!("the connection failed after {after}: {err}"),
        }
        // From its first byte on, the whole request has one deadline: a client
        // that sends a byte now and then cannot hold this thread for ever.
        reader.get_mut().deadline = Instant::now() + request_timeout;
        let (number, on) = (REQUESTS.fetch_add(1, SeqCst) + 1, served + 1);
        log.peer(
            peer,
            format!("request {number} (number {on} on this connection):"),
        );
        let (what, status, head) = match read_request(&mut reader, peer, log) {
            Ok(head) => head.verdict(),
            Err(err) => match refusal(err) {
                Ok((why, status)) => (why, status, Head::default()),
                Err(err) => return format!("connection ended: {err}"),
            },
        };
        log.peer(peer, format_args!("{what}: answered {status}"));
        if let Err(err) = answer(&mut writer, status, &head) {
            return format!("connection ended: failed to send the answer: {err}");
        }
        if !head.keep_alive() {
            close_gracefully(&writer);
            return format!("closed the connection after {}", requests(served + 1));
        }
    }
    unreachable!("no connection serves 2^64 requests")
}

/// Reads one request: `read_line` until the empty line that ends its head,
/// printing each line as it arrives; then reads its body and drops it.
fn read_request(reader: &mut BufReader<Timed>, peer: SocketAddr, log: Log) -> io::Result<Head> {
    let mut head = Head::default();
    let mut left: u64 = 64 * 1024; // with take(): no line grows for ever
    loop {
        let mut line = String::new();
        left -= reader.by_ref().take(left).read_line(&mut line)? as u64;
        let Some(text) = line.strip_suffix('\n') else {
            return Err(bad(if left == 0 {
                "a head over 64 KiB"
            } else {
                "a cut-off head"
            }));
        };
        let text = text.strip_suffix('\r').unwrap_or(text);
        if text.is_empty() {
            break;
        }
        log.peer(
            peer,
            format_args!("  {}", printable::quoted(text.as_bytes(), 2000)),
        );
        head.take(text)?;
    }
    // The next request starts right after the body (RFC 9112 §6.3). A
    // chunked body would need decoding: the connection closes after it.
    let length = head.length.filter(|_| !head.chunked).unwrap_or(0);
    if io::copy(&mut reader.by_ref().take(length), &mut io::sink())? < length {
        return Err(ErrorKind::UnexpectedEof.into());
    }
    Ok(head)
}

/// What proxy_logger needs to know of a request head.
#[derive(Default)]
struct Head {
    method: String,
    version: String,
    length: Option<u64>,
    chunked: bool,
    close: bool,
    validators: Vec<&'static str>,
}

impl Head {
    /// Takes one line in: first the request line `METHOD TARGET HTTP/1.1`
    /// (RFC 9112 §3), then header fields `Name: value`.
    fn take(&mut self, line: &str) -> io::Result<()> {
        if self.method.is_empty() {
            let [method, target, version] = line.split(' ').collect::<Vec<_>>()[..] else {
                return Err(bad("not a request line (METHOD TARGET HTTP/1.1)"));
            };
            if method.is_empty() || target.is_empty() || !version.starts_with("HTTP/1.") {
                return Err(bad("not a request line (METHOD TARGET HTTP/1.1)"));
            }
            (self.method, self.version) = (method.to_string(), version.to_string());
            return Ok(());
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| bad("a line without a colon"))?;
        let value = value.trim();
        match name.to_ascii_lowercase().as_str() {
            // Digits, and only once: else no telling where the body ends and
            // the next request begins (RFC 9112 §6.3).
            "content-length"
                if self.length.is_none() && value.bytes().all(|b| b.is_ascii_digit()) =>
            {
                self.length = Some(value.parse().map_err(|_| bad("a bad Content-Length"))?);
            }
            "content-length" => return Err(bad("a bad or second Content-Length")),
            "transfer-encoding" => self.chunked = true,
            "connection" => self.close |= value.eq_ignore_ascii_case("close"),
            "if-none-match" => self.validators.push("If-None-Match"),
            "if-modified-since" => self.validators.push("If-Modified-Since"),
            _ => {}
        }
        Ok(())
    }

    /// What the request is, for the log, and the status to answer with.
    fn verdict(self) -> (String, &'static str, Head) {
        let (method, validators) = (self.method.as_str(), self.validators.join(", "));
        let (what, status) = match method {
            "CONNECT" => ("CONNECT, a tunnel for HTTPS".into(), "501 Not Implemented"),
            // With other methods these fields are preconditions, not cache
            // validation (RFC 9110 §13.1.2, §13.1.3).
            "GET" | "HEAD" if !validators.is_empty() => {
                CONDITIONAL.fetch_add(1, SeqCst);
                (
                    format!("conditional {method} ({validators})"),
                    "304 Not Modified",
                )
            }
            _ => (format!("plain {method}"), "200 OK"),
        };
        (what, status, self)
    }

    /// HTTP/1.1 keeps a connection open unless told `Connection: close`
    /// (RFC 9112 §9.3); this server closes after HTTP/1.0, chunked bodies
    /// and requests it could not read.
    fn keep_alive(&self) -> bool {
        self.version == "HTTP/1.1" && !self.close && !self.chunked
    }
}

fn bad(why: &str) -> io::Error {
    io::Error::new(ErrorKind::InvalidData, why)
}

/// Why a request could not be read, and the answer: 408 when it came too
/// slowly, 400 when it is not one. Err: the client is gone.
fn refusal(err: io::Error) -> io::Result<(String, &'static str)> {
    match err.kind() {
        // SO_RCVTIMEO expired: EAGAIN on Unix, a timeout on Windows.
        ErrorKind::WouldBlock | ErrorKind::TimedOut => {
            let why = "the request did not arrive within --request-timeout";
            Ok((why.into(), "408 Request Timeout"))
        }
        // Not a request, or not text (read_line() takes UTF-8 only).
        ErrorKind::InvalidData => Ok((err.to_string(), "400 Bad Request")),
        _ => Err(err),
    }
}

/// Writes a response: status line, header fields, empty line, body. A 304
/// has no body (RFC 9110 §15.4.5); the answer to HEAD is the head of GET's.
fn answer(w: &mut TcpStream, status: &str, head: &Head) -> io::Result<()> {
    let mut response = format!("HTTP/1.1 {status}\r\n");
    let body = match status {
        "304 Not Modified" => String::new(),
        "200 OK" => NOTE.into(),
        _ => format!("{status}\n"),
    };
    if !body.is_empty() {
        // no-store: the browser must not cache this note in place of the page.
        response += "Content-Type: text/plain; charset=utf-8\r\nCache-Control: no-store\r\n";
        response += &format!("Content-Length: {}\r\n", body.len());
    }
    if !head.keep_alive() {
        response += "Connection: close\r\n";
    }
    response += "\r\n";
    if head.method != "HEAD" {
        response += &body;
    }
    w.write_all(response.as_bytes())
}

/// The socket, read against a deadline: before each `read()` the receive
/// timeout (SO_RCVTIMEO) is set to what is left of it.
struct Timed {
    stream: TcpStream,
    deadline: Instant,
}

impl Read for Timed {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ErrorKind::TimedOut.into());
        }
        self.stream.set_read_timeout(Some(left))?;
        self.stream.read(buf)
    }
}

/// Ctrl-C: the counts, even with --quiet; a closed stdout is no error here.
fn print_counts_and_exit() {
    let (total, conditional) = (REQUESTS.load(SeqCst), CONDITIONAL.load(SeqCst));
    let counts = format!(
        "stopped: {}, {conditional} of them conditional",
        requests(total)
    );
    let _ = writeln!(
        io::stdout(),
        "{}",
        log::line(SystemTime::now(), None, &counts)
    );
    std::process::exit(0);
}

/// `1 request`, `2 requests`.
fn requests(n: u64) -> String {
    format!("{n} request{}", if n == 1 { "" } else { "s" })
}
