//! proxy_logger: a browser's "proxy" that prints every request it is sent.
//!
//! K&R chapter 2, problem P12. A browser configured to use an HTTP proxy
//! opens a TCP connection to the proxy instead of to the web server, and
//! sends it the whole request, with the full URL in the request line
//! (`GET http://example.com/ HTTP/1.1`, the *absolute form*, RFC 9112
//! §3.2.2). proxy_logger accepts those connections and prints each request
//! head as it arrived, so you can see what a browser really sends: the
//! headers, several requests on one kept-alive connection, and the
//! *conditional GETs* (`If-Modified-Since`, `If-None-Match`) with which it
//! asks whether a page it has cached has changed.
//!
//! It forwards nothing. Every request gets a short answer at once, because a
//! browser whose request gets no answer sends it again: a conditional GET
//! gets `304 Not Modified` (so the browser shows its cached copy), a
//! `CONNECT` (the start of an HTTPS tunnel) gets `501 Not Implemented`, and
//! anything else gets a `200 OK` note that says it was logged. For a proxy
//! that really fetches pages, see `web_proxy`.
//!
//! It binds 127.0.0.1 by default: only programs on this machine can use it.
//!
//! Terminal 1: `cargo run --bin proxy_logger`
//! Terminal 2: `curl -x 127.0.0.1:2000 http://example.com/`
//!         or: `chromium --user-data-dir=/tmp/p12 --proxy-server=127.0.0.1:2000 http://example.com/`
//! (Chromium never sends requests for 127.0.0.1 or localhost to a proxy
//! unless you add `--proxy-bypass-list='<-loopback>'`.)
//! Ctrl-C in terminal 1 prints how many requests came, and how many were conditional.
//! Worksheet:  labs/03-browser-proxy-logger.md

use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use clap::Parser;
use socketlab::cli::ServerArgs;
use socketlab::explain::{self, Step};
use socketlab::http::{
    self, BodyLength, BodyReader, FramingError, HeadError, RequestHead, ResponseHead, Version,
};
use socketlab::limit::ConnectionLimit;
use socketlab::listen;
use socketlab::log::{self, Log};

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
}

/// How long a kept-alive connection may sit idle before it is closed.
/// Browsers keep proxy connections open for reuse; this frees the thread.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// How many connections are served at once (a browser opens a handful);
/// more wait in the listen backlog until one closes.
const MAX_CONNECTIONS: usize = 64;

/// The body of every `200 OK`. It says `no-store`, so the browser does not
/// keep this note in its cache in place of the real page.
const NOTE: &str = "proxy_logger logged this request; it fetches nothing (see its terminal)\n";

/// Every request so far, and those that were conditional, for the summary
/// on Ctrl-C.
static REQUESTS: AtomicU64 = AtomicU64::new(0);
static CONDITIONAL: AtomicU64 = AtomicU64::new(0);

fn main() -> ExitCode {
    let cli = Cli::parse();
    explain::report(run(&cli))
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    let listener = listen::tcp(cli.server.addr())?;
    let local = listener
        .local_addr()
        .context("failed to read the bound address")?;
    println!("proxy_logger listening on {local} (HTTP proxy)");
    // SIGINT (Ctrl-C) would end the process before it could say anything;
    // the ctrlc crate turns it into a call on a thread of its own.
    ctrlc::set_handler(print_summary_and_exit).context("failed to set a Ctrl-C handler")?;
    serve(&listener, cli.server.log());
    Ok(())
}

/// Ctrl-C: how many requests came, how many of them were conditional.
fn print_summary_and_exit() {
    let requests = REQUESTS.load(Ordering::SeqCst);
    let conditional = CONDITIONAL.load(Ordering::SeqCst);
    let summary = format!(
        "stopped: {}, {conditional} of them conditional",
        plural(requests, "request")
    );
    // Printed even with --quiet: it is the result, not a log line.
    println!("{}", log::line(SystemTime::now(), None, &summary));
    std::process::exit(0);
}

/// `1 request`, `2 requests`.
fn plural(n: u64, noun: &str) -> String {
    match n {
        1 => format!("1 {noun}"),
        n => format!("{n} {noun}s"),
    }
}

/// The accept loop: a thread per connection, at most [`MAX_CONNECTIONS`].
fn serve(listener: &TcpListener, log: Log) {
    let limit = ConnectionLimit::new(MAX_CONNECTIONS);
    loop {
        let slot = limit.acquire_logged(log);
        let (stream, peer) = match listener.accept() {
            Ok(accepted) => accepted,
            // A client that reset before accept() (ECONNABORTED), or no
            // file descriptors left (EMFILE): one connection lost, go on.
            Err(err) => {
                log.note(format_args!("{}: {err}", Step::Accept));
                listen::pause_after_accept_error(&err);
                continue;
            }
        };
        let spawned = thread::Builder::new().spawn(move || {
            let _slot = slot;
            // A second handle on the socket, to close it gracefully at the
            // end: after a 400 there may be request bytes left unread.
            let closer = stream.try_clone();
            let conversation = converse(stream, peer, log);
            if let Ok(closer) = closer {
                listen::close_gracefully(&closer);
            }
            match conversation {
                Ok(0) => log.peer(peer, "closed the connection without a request"),
                Ok(n) => log.peer(
                    peer,
                    format_args!("connection closed after {}", plural(n, "request")),
                ),
                Err(err) => log.peer(peer, format_args!("connection ended: {err:#}")),
            }
        });
        // The OS refused a new thread (out of memory or over its thread
        // limit): this connection is dropped, the server goes on.
        if let Err(err) = spawned {
            log.peer(peer, format_args!("no thread for this connection: {err}"));
        }
    }
}

/// Serves one connection: request after request while the client keeps it
/// alive (RFC 9112 §9.3). Returns how many requests it carried.
fn converse(stream: TcpStream, peer: SocketAddr, log: Log) -> anyhow::Result<u64> {
    stream
        .set_read_timeout(Some(IDLE_TIMEOUT))
        .context("failed to set the idle timeout")?;
    let mut writer = stream
        .try_clone()
        .context("failed to clone the socket handle")?;
    // The BufReader keeps what one read() returned beyond a head: the body,
    // or the next pipelined request.
    let mut reader = BufReader::new(stream);
    let mut served = 0;
    loop {
        let raw = match http::read_head(&mut reader) {
            Ok(raw) => raw,
            // FIN between requests: the normal end of a kept-alive connection.
            Err(HeadError::Closed) => return Ok(served),
            Err(HeadError::Io(err)) if explain::is_timeout(&err) => {
                log.peer(peer, format_args!("idle for {IDLE_TIMEOUT:?}, closing"));
                return Ok(served);
            }
            Err(err) => return Err(refuse(&mut writer, err.status(), err.into())),
        };
        served += 1;
        let head = match RequestHead::parse(&raw) {
            Ok(head) => head,
            Err(err) => return Err(refuse(&mut writer, err.status(), err.into())),
        };
        let length = head.body_length();
        let kind = match length {
            Ok(_) => Kind::of(&head),
            Err(err) => Kind::Unframed(err),
        };
        let number = REQUESTS.fetch_add(1, Ordering::SeqCst) + 1;
        if matches!(kind, Kind::Conditional(_)) {
            CONDITIONAL.fetch_add(1, Ordering::SeqCst);
        }
        log.peer(peer, describe(&raw, &head, &kind, number, served));
        let Ok(length) = length else {
            // No clear end of the body, so no telling where the next request
            // starts (request smuggling, RFC 9112 §11.2): answer and close.
            writer
                .write_all(&answer(&head, &kind, false))
                .context("failed to send the answer")?;
            return Ok(served);
        };
        discard_body(&mut reader, &mut writer, &head, length)?;
        let keep_alive = head.keep_alive();
        writer
            .write_all(&answer(&head, &kind, keep_alive))
            .context("failed to send the answer")?;
        if !keep_alive {
            return Ok(served);
        }
    }
}

/// What kind of request a head is, which decides the answer.
enum Kind {
    /// A GET or HEAD that carries a validator of a cached copy
    /// (RFC 9110 §13.1.3, §13.1.2): the names of the fields.
    Conditional(Vec<&'static str>),
    /// CONNECT host:port, the start of a tunnel (RFC 9110 §9.3.6).
    Connect,
    /// Anything else.
    Plain,
    /// A request whose body has no single clear length (answered 400).
    Unframed(FramingError),
}

impl Kind {
    fn of(head: &RequestHead) -> Kind {
        if head.method == "CONNECT" {
            return Kind::Connect;
        }
        let validators: Vec<&'static str> = ["If-None-Match", "If-Modified-Since"]
            .into_iter()
            .filter(|name| head.headers.contains(name))
            .collect();
        // With other methods these fields are not cache validation:
        // If-None-Match is a precondition (412 when it fails) and
        // If-Modified-Since is ignored (RFC 9110 §13.1.2, §13.1.3).
        if !validators.is_empty() && (head.method == "GET" || head.method == "HEAD") {
            Kind::Conditional(validators)
        } else {
            Kind::Plain
        }
    }
}

/// The log entry for one request: its number, then the head line by line as
/// it arrived, then what it was and how it was answered.
fn describe(
    raw: &[u8],
    head: &RequestHead,
    kind: &Kind,
    number: u64,
    on_connection: u64,
) -> String {
    let mut text = format!("request {number} (number {on_connection} on this connection):");
    for line in raw.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if !line.is_empty() {
            text.push_str("\n    ");
            text.push_str(&printable(line));
        }
    }
    if head.target.starts_with('/') {
        text.push_str(
            "\n    (origin-form target: this client talks to proxy_logger as to a web server, not a proxy)",
        );
    }
    text.push_str("\n    ");
    text.push_str(&match kind {
        Kind::Conditional(validators) => format!(
            "conditional {} ({}): is the cached copy still good? answered 304 Not Modified",
            head.method,
            validators.join(", ")
        ),
        Kind::Connect => format!(
            "CONNECT: asks for a tunnel to {} (for HTTPS); answered 501 Not Implemented",
            printable(head.target.as_bytes())
        ),
        Kind::Plain => "answered 200 OK with a short note".to_string(),
        Kind::Unframed(err) => {
            format!("cannot tell where the body ends ({err}); answered 400 Bad Request")
        }
    });
    text
}

/// A head line for the terminal: bytes that are not UTF-8 become U+FFFD and
/// control characters are escaped, so a peer cannot send terminal escapes.
fn printable(line: &[u8]) -> String {
    String::from_utf8_lossy(line)
        .chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<char>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

/// Reads the request's body, if any, and throws it away: the next request
/// on the connection starts right after it (RFC 9112 §6.3).
fn discard_body(
    reader: &mut impl BufRead,
    writer: &mut TcpStream,
    head: &RequestHead,
    length: BodyLength,
) -> anyhow::Result<()> {
    // A client that sent `Expect: 100-continue` waits for this interim
    // response before it sends the body (RFC 9110 §10.1.1).
    // (HTTP/1.0 has no 1xx responses, so a 1.0 client never waits for one.)
    if length != BodyLength::Empty
        && head.version == Version::Http11
        && head.headers.has_token("Expect", "100-continue")
    {
        writer
            .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
            .context("failed to send 100 Continue")?;
    }
    io::copy(&mut BodyReader::new(reader, length), &mut io::sink())
        .context("failed to read the request body")?;
    Ok(())
}

/// The short answer to a request.
fn answer(head: &RequestHead, kind: &Kind, keep_alive: bool) -> Vec<u8> {
    let (mut response, body) = match kind {
        // No body: the browser uses its cached copy (RFC 9110 §15.4.5).
        Kind::Conditional(_) => (ResponseHead::new(304, "Not Modified"), ""),
        Kind::Connect => (
            ResponseHead::new(501, "Not Implemented"),
            "proxy_logger opens no tunnels: it logged the CONNECT, and that is all it learns of HTTPS\n",
        ),
        Kind::Plain => (ResponseHead::new(200, "OK"), NOTE),
        Kind::Unframed(_) => (ResponseHead::new(400, "Bad Request"), "400 Bad Request\n"),
    };
    if !body.is_empty() {
        response
            .headers
            .append("Content-Type", "text/plain; charset=utf-8");
        response
            .headers
            .append("Content-Length", body.len().to_string());
        response.headers.append("Cache-Control", "no-store");
    }
    if !keep_alive {
        response.headers.append("Connection", "close");
    }
    let mut bytes = response.to_bytes();
    // A response to HEAD has the head of the GET response and no body.
    if head.method != "HEAD" {
        bytes.extend_from_slice(body.as_bytes());
    }
    bytes
}

/// Answers a request that cannot be served (400, 431) with `Connection:
/// close` and returns `err`, which ends the connection: after a bad head
/// there is no telling where the next request would start.
fn refuse(writer: &mut TcpStream, status: Option<u16>, err: anyhow::Error) -> anyhow::Error {
    if let Some(status) = status {
        let reason = match status {
            431 => "Request Header Fields Too Large",
            _ => "Bad Request",
        };
        let body = format!("{status} {reason}\n");
        let mut response = ResponseHead::new(status, reason);
        response.headers.append("Content-Type", "text/plain");
        response
            .headers
            .append("Content-Length", body.len().to_string());
        response.headers.append("Connection", "close");
        let mut bytes = response.to_bytes();
        bytes.extend_from_slice(body.as_bytes());
        // The client may already be gone; the error below says what went wrong.
        let _ = writer.write_all(&bytes);
        return err.context(format!("answered {status} {reason}"));
    }
    err
}
