//! web_server: serves the files of a folder to browsers over HTTP/1.1.
//!
//! The K&R Web Server assignment. A web server is a TCP server (`socket()`,
//! `bind()`, `listen()`, `accept()`) whose clients send text requests: a
//! request line (`GET /index.html HTTP/1.1`), header lines, and an empty
//! line (RFC 9112 §2.1). The server reads that head line by line, finds the
//! file the path names under its root folder, and writes back a status line
//! (`HTTP/1.1 200 OK`), headers that give the body's type and its length in
//! bytes, an empty line, then the file's bytes exactly as they are on disk.
//! A missing file gets `404 Not Found`. Because every response says how
//! long its body is, the connection can stay open for the next request
//! (keep-alive); a browser fetching a page and its image uses it.
//!
//! The path comes from the network, so it is checked before it touches the
//! disk: `..`, its encoded form `%2e%2e`, and symbolic links that lead out
//! of the root are refused, or any file on the machine could be read.
//!
//! Each connection gets a thread (the assignment's optional exercise), up to
//! `--max-clients`; a client that is silent longer than `--idle`, or takes
//! longer than `--head-timeout` to send one request head, is disconnected.
//!
//! It binds 0.0.0.0:6789 by default, the handout's port, so a browser on
//! another host can reach it: give `--bind 127.0.0.1` to serve only this one.
//!
//! Terminal 1: `cargo run --bin web_server` (serves www/)
//! Terminal 2: `curl -v http://127.0.0.1:6789/index.html`, or open that URL in a browser,
//!             or `cargo run --bin http_get -- http://127.0.0.1:6789/`
//! Worksheet:  labs/07-web-server.md

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use clap::Parser;
use socketlab::cli::{self, ServerArgs};
use socketlab::deadline::Timed;
use socketlab::explain::{self, hinted};
use socketlab::limit::{ConnectionLimit, Slot};
use socketlab::listen;
use socketlab::log::Log;
use socketlab::printable;

/// The longest request line or header line read; longer is a 400 (RFC 9112 §3 leaves the limit to the server).
const MAX_LINE: u64 = 8 * 1024;

/// The most header lines in one request head.
const MAX_HEADERS: usize = 100;

/// How long a response may take to be written before the client is given up on.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Serve the files of a folder over HTTP/1.1: GET and HEAD, 200/404, keep-alive (K&R assignment 1)
#[derive(Parser, Debug)]
#[command(
    name = "web_server",
    version,
    mut_arg("port", |a| a.default_value("6789"))
)]
struct Cli {
    #[command(flatten)]
    server: ServerArgs,

    /// The folder whose files are served; `/` is its index.html
    #[arg(long, default_value = "www")]
    root: PathBuf,

    /// Most connections served at once (a thread each); more wait in the listen backlog
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    max_clients: u32,

    /// How long a kept-alive connection may sit without a new request before it is closed
    #[arg(long, default_value = "5s", value_parser = cli::positive_duration)]
    idle: Duration,

    /// How long a client may take to send one whole request head (slow clients are cut off)
    #[arg(long, default_value = "10s", value_parser = cli::positive_duration)]
    head_timeout: Duration,
}

/// What every connection's thread needs.
#[derive(Debug)]
struct Site {
    /// The root folder, absolute and with every symbolic link resolved.
    root: PathBuf,
    idle: Duration,
    head_timeout: Duration,
    log: Log,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    explain::report(run(&cli))
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    let root = site_root(&cli.root)?;
    let listener = listen::tcp(cli.server.addr())?;
    let local = listener
        .local_addr()
        .context("failed to read the bound address")?;
    println!("web_server listening on {local} (TCP, HTTP/1.1)");
    let site = Arc::new(Site {
        root,
        idle: cli.idle,
        head_timeout: cli.head_timeout,
        log: cli.server.log(),
    });
    site.log.note(format_args!(
        "serving {} (a thread per connection, at most {} at once)",
        site.root.display(),
        cli.max_clients
    ));
    accept_loop(&listener, &site, cli.max_clients as usize)
}

/// The root as an absolute path with its symbolic links resolved, so a file's
/// own resolved path can be compared with it.
fn site_root(root: &Path) -> anyhow::Result<PathBuf> {
    let resolved = root.canonicalize().map_err(|err| {
        hinted(
            format!("cannot serve folder '{}': {err}", root.display()),
            "--root names the folder to serve; the default, www, is relative to where the \
             program runs: run it from the repository's top folder, or give --root with a path",
        )
    })?;
    if !resolved.is_dir() {
        return Err(hinted(
            format!("cannot serve '{}': it is not a folder", root.display()),
            "--root must name a folder (the server adds the path of each request to it)",
        ));
    }
    Ok(resolved)
}

/// A slot, then `accept()`, then a thread that owns the connection: a slow
/// client holds up only its own thread.
fn accept_loop(listener: &TcpListener, site: &Arc<Site>, max: usize) -> ! {
    let log = site.log;
    let limit = ConnectionLimit::new(max);
    loop {
        let slot = limit.acquire_logged(log);
        let (stream, peer) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(err) => {
                log.note(format_args!("accept failed: {err} (still serving)"));
                listen::pause_after_accept_error(&err);
                continue;
            }
        };
        let site = Arc::clone(site);
        let spawned = thread::Builder::new()
            .name(format!("client {peer}"))
            .spawn(move || serve_connection(stream, peer, &site, slot));
        if let Err(err) = spawned {
            log.peer(
                peer,
                format_args!("could not start a thread ({err}); connection closed"),
            );
        }
    }
}

/// One connection: requests one after the other (keep-alive) until the
/// client closes, falls silent, or a response says `Connection: close`.
fn serve_connection(stream: TcpStream, peer: SocketAddr, site: &Site, slot: Slot) {
    let log = site.log;
    log.peer(peer, "connected");
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    let mut reader = BufReader::new(Timed {
        stream: &stream,
        deadline: Instant::now(),
    });
    let why = loop {
        match serve_one(&mut reader, &stream, peer, site) {
            Ok(Next::KeepAlive) => {}
            Ok(Next::Close(why)) => break why,
            Err(err) => break format!("failed: {err} (the client went away mid-response)"),
        }
    };
    log.peer(peer, format_args!("closed: {why}"));
    listen::close_gracefully(&stream);
    drop(slot);
}

/// What happens to the connection after one request.
enum Next {
    KeepAlive,
    Close(String),
}

/// Waits for a request, reads its head, sends the response.
fn serve_one(
    reader: &mut BufReader<Timed<'_>>,
    stream: &TcpStream,
    peer: SocketAddr,
    site: &Site,
) -> io::Result<Next> {
    // Between requests: wait up to --idle for the first byte of the next one.
    reader.get_mut().allow(site.idle);
    match reader.fill_buf() {
        // Ok(0 bytes): the client's FIN; it has no more requests.
        Ok([]) => return Ok(Next::Close("the client closed (FIN)".into())),
        Ok(_) => {}
        Err(err) if explain::is_timeout(&err) => {
            return Ok(Next::Close(format!(
                "no new request for {} (--idle)",
                humantime::format_duration(site.idle)
            )));
        }
        Err(err) => return Ok(Next::Close(format!("read failed: {err}"))),
    }
    // The request has begun: all of its head must arrive by the deadline.
    reader.get_mut().allow(site.head_timeout);
    let mut line = String::from("(no request line)");
    let response = match read_request(reader, &mut line) {
        Ok(request) => respond(&request, &site.root),
        Err(Bad::Timeout) => {
            let why = format!(
                "the request head was not complete within {} (--head-timeout)",
                humantime::format_duration(site.head_timeout)
            );
            let response = Response::error(408, "Request Timeout", &why);
            return finish(stream, peer, site.log, &line, response);
        }
        Err(Bad::Closed) => return Ok(Next::Close("the client closed mid-request".into())),
        Err(Bad::Request(why)) => Response::error(400, "Bad Request", &why),
    };
    finish(stream, peer, site.log, &line, response)
}

/// Sends `response`, logs it, and says whether the connection goes on.
fn finish(
    stream: &TcpStream,
    peer: SocketAddr,
    log: Log,
    request: &str,
    response: Response,
) -> io::Result<Next> {
    let (status, close) = (response.to_string(), response.close);
    let sent = response.send(stream)?;
    log.peer(
        peer,
        format_args!("{request} -> {status} ({sent} body bytes)"),
    );
    Ok(if close {
        Next::Close("the response said Connection: close".into())
    } else {
        Next::KeepAlive
    })
}

// ---------------------------------------------------------------------------
// Reading the request head: read_line until the empty line (RFC 9112 §2.1).

/// A parsed request head: what the response depends on.
#[derive(Debug)]
struct Request {
    method: String,
    target: String,
    /// HTTP/1.0 closes after each response unless it asks for keep-alive.
    keep_alive: bool,
    /// A request with a body that is not read: the connection must close after it.
    has_body: bool,
}

/// Why no request could be read.
enum Bad {
    /// The head did not arrive by the deadline.
    Timeout,
    /// The client closed before the head was complete.
    Closed,
    /// The bytes are not an HTTP/1.1 request head: a 400, with why.
    Request(String),
}

impl From<io::Error> for Bad {
    fn from(err: io::Error) -> Bad {
        if explain::is_timeout(&err) {
            Bad::Timeout
        } else {
            Bad::Closed
        }
    }
}

/// Reads the request line and the header lines up to the empty line.
/// `shown` gets the request line, quoted for the log.
fn read_request(reader: &mut BufReader<Timed<'_>>, shown: &mut String) -> Result<Request, Bad> {
    let line = read_line(reader)?;
    *shown = printable::quoted(line.as_bytes(), 100).to_string();
    let (method, target, version) = request_line(&line)?;
    let mut keep_alive = version == "HTTP/1.1";
    let (mut host, mut has_body) = (false, false);
    for count in 0.. {
        let line = read_line(reader)?;
        if line.is_empty() {
            break;
        }
        if count == MAX_HEADERS {
            return Err(Bad::Request(format!(
                "more than {MAX_HEADERS} header lines"
            )));
        }
        let (name, value) = header(&line)?;
        match name.to_ascii_lowercase().as_str() {
            "host" => host = true,
            "connection" if value.eq_ignore_ascii_case("close") => keep_alive = false,
            "connection" if value.eq_ignore_ascii_case("keep-alive") => keep_alive = true,
            "content-length" => has_body |= value != "0",
            "transfer-encoding" => has_body = true,
            _ => {}
        }
    }
    // RFC 9112 §3.2: an HTTP/1.1 request without Host is a 400.
    if version == "HTTP/1.1" && !host {
        return Err(Bad::Request(
            "an HTTP/1.1 request must have a Host header".into(),
        ));
    }
    Ok(Request {
        method,
        target,
        keep_alive,
        has_body,
    })
}

/// One line without its CRLF (a bare LF is accepted too, RFC 9112 §2.2).
fn read_line(reader: &mut BufReader<Timed<'_>>) -> Result<String, Bad> {
    let mut line = Vec::new();
    // take(): a line never ends is still bounded.
    let read = reader
        .by_ref()
        .take(MAX_LINE)
        .read_until(b'\n', &mut line)?;
    if read == 0 {
        return Err(Bad::Closed);
    }
    if line.last() != Some(&b'\n') {
        return Err(if read as u64 == MAX_LINE {
            Bad::Request(format!("a line longer than {MAX_LINE} bytes"))
        } else {
            Bad::Closed
        });
    }
    line.pop();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    String::from_utf8(line).map_err(|_| Bad::Request("a head line that is not text".into()))
}

/// `METHOD SP request-target SP HTTP-version` (RFC 9112 §3).
fn request_line(line: &str) -> Result<(String, String, String), Bad> {
    let parts: Vec<&str> = line.split(' ').collect();
    let [method, target, version] = parts[..] else {
        return Err(Bad::Request(format!(
            "the request line {line:?} is not METHOD PATH VERSION"
        )));
    };
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    };
    if !token(method) || target.is_empty() {
        return Err(Bad::Request(format!(
            "the request line {line:?} is malformed"
        )));
    }
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(Bad::Request(format!(
            "the version {version:?} is not HTTP/1.0 or HTTP/1.1"
        )));
    }
    Ok((method.into(), target.into(), version.into()))
}

/// `name: value`, the value without the spaces around it (RFC 9112 §5).
fn header(line: &str) -> Result<(&str, &str), Bad> {
    match line.split_once(':') {
        Some((name, value)) if !name.is_empty() && !name.contains([' ', '\t']) => {
            Ok((name, value.trim_matches([' ', '\t'])))
        }
        _ => Err(Bad::Request(format!(
            "the header line {line:?} has no 'name:'"
        ))),
    }
}

// ---------------------------------------------------------------------------
// From request to response: the method, then the path, then the file.

/// The response to a well-formed request.
fn respond(request: &Request, root: &Path) -> Response {
    let mut response = match request.method.as_str() {
        "GET" | "HEAD" => file_response(&request.target, root),
        // Known methods this server does not allow on files: 405 with Allow (RFC 9110 §15.5.6).
        "POST" | "PUT" | "DELETE" | "PATCH" | "OPTIONS" | "TRACE" | "CONNECT" => {
            let mut r = Response::error(
                405,
                "Method Not Allowed",
                &format!(
                    "{} is not allowed here: this server only reads files",
                    request.method
                ),
            );
            r.extra = Some("Allow: GET, HEAD");
            r
        }
        // A method it does not know at all: 501 (RFC 9110 §15.6.2).
        other => Response::error(501, "Not Implemented", &format!("unknown method {other:?}")),
    };
    response.head_only = request.method == "HEAD";
    response.close |= !request.keep_alive || request.has_body;
    response
}

/// 200 with the file, or why not: 301 for a folder without its slash, 403, 404.
fn file_response(target: &str, root: &Path) -> Response {
    let path = match local_path(target) {
        Ok(path) => path,
        Err(Refused::Malformed(why)) => return Response::error(400, "Bad Request", &why),
        Err(Refused::Forbidden(why)) => return Response::error(403, "Forbidden", &why),
    };
    let mut file_path = root.join(&path);
    if file_path.is_dir() {
        let path_part = target.split('?').next().unwrap_or("");
        if !path_part.ends_with('/') {
            // Relative links in the folder's index.html need the slash.
            let why = "this folder's address ends with /";
            let mut r = Response::error(301, "Moved Permanently", why);
            r.location = Some(format!("{path_part}/"));
            return r;
        }
        file_path.push("index.html");
    }
    let not_found =
        || Response::error(404, "Not Found", &format!("{target} is not on this server"));
    // canonicalize() resolves every symbolic link: a link inside the root
    // that points outside it resolves to a path outside the root.
    let Ok(resolved) = file_path.canonicalize() else {
        return not_found();
    };
    if !resolved.starts_with(root) {
        return Response::error(403, "Forbidden", "that path leads out of the served folder");
    }
    match File::open(&resolved).and_then(|f| f.metadata().map(|m| (f, m))) {
        Ok((file, meta)) if meta.is_file() => {
            Response::file(file, meta.len(), content_type(&resolved))
        }
        Ok(_) => not_found(),
        Err(err) if err.kind() == io::ErrorKind::PermissionDenied => {
            Response::error(403, "Forbidden", "the server may not read that file")
        }
        Err(_) => not_found(),
    }
}

/// Why a request target names no file under the root.
enum Refused {
    Malformed(String),
    Forbidden(String),
}

/// The request target as a relative path: the query dropped, `%XX`
/// decoded (RFC 3986 §2.1), and every `..` refused *after* decoding, so
/// `%2e%2e` is caught too. `.` and empty segments (`//`) are skipped, so an
/// absolute path such as `//etc/passwd` stays under the root.
fn local_path(target: &str) -> Result<PathBuf, Refused> {
    let Some(path) = target.strip_prefix('/') else {
        return Err(Refused::Malformed(format!(
            "the target {target:?} does not start with /"
        )));
    };
    let path = path.split(['?', '#']).next().unwrap_or("");
    let decoded = percent_decode(path).ok_or_else(|| {
        Refused::Malformed(format!(
            "the target {target:?} has a % not followed by two hex digits"
        ))
    })?;
    let decoded = String::from_utf8(decoded)
        .map_err(|_| Refused::Malformed("the decoded path is not UTF-8".into()))?;
    if decoded.contains('\0') {
        return Err(Refused::Malformed("the path contains a NUL byte".into()));
    }
    let mut relative = PathBuf::new();
    for segment in decoded.split('/') {
        match Path::new(segment).components().next() {
            None | Some(Component::CurDir) => {}
            Some(Component::Normal(_)) if !segment.contains('\\') => relative.push(segment),
            _ => {
                return Err(Refused::Forbidden(format!(
                    "the path segment {segment:?} would leave the served folder"
                )));
            }
        }
    }
    Ok(relative)
}

/// Decodes `%XX` escapes; None if a `%` is not followed by two hex digits.
fn percent_decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

/// Content-Type from the file name's extension (RFC 9110 §8.3).
fn content_type(path: &Path) -> &'static str {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    match ext.to_ascii_lowercase().as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "txt" | "md" => "text/plain; charset=utf-8",
        "json" => "application/json",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "svg" => "image/svg+xml",
        "ico" => "image/x-icon",
        "pdf" => "application/pdf",
        // Unknown bytes: the browser offers to save them instead of showing them.
        _ => "application/octet-stream",
    }
}

// ---------------------------------------------------------------------------
// Writing the response: status line, headers, empty line, body.

/// One response, ready to send.
struct Response {
    status: u16,
    reason: &'static str,
    content_type: &'static str,
    length: u64,
    body: Body,
    head_only: bool,
    close: bool,
    location: Option<String>,
    extra: Option<&'static str>,
}

enum Body {
    File(File),
    Page(String),
}

impl Response {
    fn file(file: File, length: u64, content_type: &'static str) -> Response {
        Response {
            status: 200,
            reason: "OK",
            content_type,
            length,
            body: Body::File(file),
            head_only: false,
            close: false,
            location: None,
            extra: None,
        }
    }

    /// An error page: a small HTML body that says what went wrong. A 400
    /// and a 408 close the connection, since where the next request starts
    /// is unknown.
    fn error(status: u16, reason: &'static str, why: &str) -> Response {
        let why = why
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;");
        let page = format!(
            "<!DOCTYPE html>\n<html><head><title>{status} {reason}</title></head>\n\
             <body><h1>{status} {reason}</h1><p>{why}</p><hr><p>web_server (socketlab)</p></body></html>\n"
        );
        Response {
            status,
            reason,
            content_type: "text/html; charset=utf-8",
            length: page.len() as u64,
            body: Body::Page(page),
            head_only: false,
            close: matches!(status, 400 | 408),
            location: None,
            extra: None,
        }
    }

    /// Writes the head, then (unless HEAD) the body; returns the body bytes sent.
    fn send(self, mut stream: &TcpStream) -> io::Result<u64> {
        let mut head = format!(
            "HTTP/1.1 {} {}\r\nDate: {}\r\nServer: web_server (socketlab)\r\n\
             Content-Type: {}\r\nContent-Length: {}\r\nConnection: {}\r\n",
            self.status,
            self.reason,
            httpdate::fmt_http_date(SystemTime::now()),
            self.content_type,
            self.length,
            if self.close { "close" } else { "keep-alive" }
        );
        if let Some(location) = &self.location {
            head.push_str(&format!("Location: {location}\r\n"));
        }
        if let Some(extra) = self.extra {
            head.push_str(&format!("{extra}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes())?;
        if self.head_only {
            return Ok(0);
        }
        // The body goes out as bytes, never as text: an image must arrive
        // exactly as it is on disk, or it does not decode.
        match self.body {
            Body::Page(page) => stream
                .write_all(page.as_bytes())
                .map(|()| page.len() as u64),
            Body::File(file) => io::copy(&mut file.take(self.length), &mut stream),
        }
    }
}

impl std::fmt::Display for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forbidden(target: &str) -> bool {
        matches!(local_path(target), Err(Refused::Forbidden(_)))
    }

    #[test]
    fn paths_stay_under_the_root() {
        assert_eq!(
            local_path("/files/bytes.bin?x=1").ok(),
            Some(PathBuf::from("files/bytes.bin"))
        );
        assert_eq!(
            local_path("//etc/./passwd").ok(),
            Some(PathBuf::from("etc/passwd"))
        );
        assert_eq!(local_path("/a%20b").ok(), Some(PathBuf::from("a b")));
        // Tried: plain, encoded (either case), with an encoded slash, in the middle.
        for target in [
            "/..",
            "/../etc",
            "/%2e%2e/x",
            "/%2E%2E/x",
            "/..%2fx",
            "/a/../../b",
        ] {
            assert!(forbidden(target), "{target}");
        }
    }

    #[test]
    fn targets_that_are_not_paths_are_malformed() {
        // Tried: absolute-form, no slash, a bad escape, a cut escape, NUL, not UTF-8.
        for target in ["http://h/x", "x", "/%zz", "/%2", "/a%00", "/%ff"] {
            assert!(
                matches!(local_path(target), Err(Refused::Malformed(_))),
                "{target}"
            );
        }
    }

    #[test]
    fn types_come_from_the_extension() {
        assert_eq!(
            content_type(Path::new("a/INDEX.HTML")),
            "text/html; charset=utf-8"
        );
        assert_eq!(content_type(Path::new("socket.png")), "image/png");
        assert_eq!(
            content_type(Path::new("bytes.bin")),
            "application/octet-stream"
        );
        assert_eq!(
            content_type(Path::new("README")),
            "application/octet-stream"
        );
    }
}
