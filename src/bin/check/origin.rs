//! The origin server check runs itself, for the web-proxy and http-client
//! labs: HTTP/1.1 with keep-alive, every framing, and the adversaries.
//!
//! Routes (any method; HEAD gets the head alone):
//!   /text/N       N bytes of seeded text, Content-Length
//!   /bin/N        N bytes cycling through every byte value, Content-Length
//!   /chunked/N    N bytes of text in chunks of 1000, with a chunk extension and a trailer
//!   /close/N      N bytes of text, no length: the body ends when the connection closes
//!   /pieces/N     N bytes of text, Content-Length, written 7 bytes at a time with pauses
//!   /status/CODE  that status with a short text body
//!   /echo         the request body back (POST)
//!   /cacheable/N  N bytes of text with Cache-Control: max-age=300
//!   /flaky        503 the first time, then 200 (an error must not be cached)
//!   /hang         never answers
//!   /truncated/N  promises N bytes, sends half, closes
//!
//! `stop()` closes the listening socket, so a new connection is refused:
//! "the origin is gone", for the cache test.

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::http::{self, Conn};
use crate::wire;

pub struct Origin {
    pub addr: SocketAddr,
    seed: u64,
    stop: Arc<AtomicBool>,
    /// Every request head that arrived, in order.
    pub requests: Arc<Mutex<Vec<Vec<u8>>>>,
    accepting: Option<JoinHandle<()>>,
    open: Open,
}

struct Shared {
    seed: u64,
    stop: Arc<AtomicBool>,
    requests: Arc<Mutex<Vec<Vec<u8>>>>,
    flaky: AtomicUsize,
}

/// The origin's open connections, so that stop() can end them too: a
/// proxy must not get the object again over a connection it kept alive.
type Open = Arc<Mutex<Vec<TcpStream>>>;

/// How long a connection to the origin may live at most.
const LIFETIME: Duration = Duration::from_secs(30);

impl Origin {
    pub fn start(seed: u64) -> std::io::Result<Origin> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let shared = Arc::new(Shared {
            seed,
            stop: Arc::clone(&stop),
            requests: Arc::clone(&requests),
            flaky: AtomicUsize::new(0),
        });
        let open: Open = Arc::default();
        let tracked = Arc::clone(&open);
        let accepting = thread::spawn(move || accept_loop(&listener, &shared, &tracked));
        Ok(Origin {
            addr,
            seed,
            stop,
            requests,
            accepting: Some(accepting),
            open,
        })
    }

    /// The bytes `path` serves (for the routes with a body of their own).
    pub fn body(&self, path: &str) -> Vec<u8> {
        body_for(self.seed, path)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Closes the listening socket: new connections are refused.
    /// Closes the listening socket, so new connections are refused, and
    /// ends the open ones (shutdown both ways: the peer reads EOF).
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.accepting.take() {
            let _ = t.join();
        }
        for stream in self
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    }

    pub fn request_count(&self) -> usize {
        self.requests.lock().map(|r| r.len()).unwrap_or(0)
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.stop();
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>, open: &Open) {
    // Non-blocking accept polled every few ms, so stop() can close the listener.
    while !shared.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                let shared = Arc::clone(shared);
                let _ = stream.set_nonblocking(false);
                if let Ok(clone) = stream.try_clone() {
                    open.lock().unwrap_or_else(|e| e.into_inner()).push(clone);
                }
                thread::spawn(move || serve(stream, &shared));
            }
            Err(_) => thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// The text of every route with a body of its own; deterministic by seed and path.
pub fn body_for(seed: u64, path: &str) -> Vec<u8> {
    let n: usize = path
        .rsplit('/')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    if path.starts_with("/bin/") {
        return (0..n).map(|i| (i % 256) as u8).collect();
    }
    let mut rng = socketlab::random::Rng::seeded(seed ^ n as u64);
    wire::text(&mut rng, n)
}

/// One connection: requests until the client closes or asks to close.
fn serve(stream: TcpStream, shared: &Shared) {
    let born = Instant::now();
    let mut conn = Conn::new(stream, born + LIFETIME);
    while let Some(head) = http::read_request_head(&mut conn) {
        shared
            .requests
            .lock()
            .map(|mut r| r.push(head.clone()))
            .ok();
        let length = http::head_value(&head, "content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let Some(body) = http::read_body(&mut conn, length) else {
            return;
        };
        let line = String::from_utf8_lossy(&head)
            .lines()
            .next()
            .unwrap_or("")
            .to_string();
        let mut words = line.split_whitespace();
        let method = words.next().unwrap_or("").to_string();
        let target = words.next().unwrap_or("/").to_string();
        // A proxy may send the absolute form; the route is the path.
        let path = match target.strip_prefix("http://") {
            Some(rest) => rest
                .find('/')
                .map_or("/".to_string(), |i| rest[i..].to_string()),
            None => target,
        };
        let close =
            http::head_value(&head, "connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let keep = answer(&mut conn.stream, shared, &method, &path, &body, close);
        if !keep || close {
            let _ = conn.stream.shutdown(std::net::Shutdown::Write);
            // Read what is left until the client closes, so our close sends no RST.
            let _ = conn.rest();
            return;
        }
    }
}

/// How to answer one request: HEAD gets no body; `Connection: close` is echoed.
struct Reply<'a> {
    head_only: bool,
    conn_line: &'a str,
}

impl Reply<'_> {
    /// A response with Content-Length.
    fn send(&self, s: &mut TcpStream, status: &str, extra: &str, content: &[u8]) {
        let head = format!(
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\n{extra}{}\r\n",
            content.len(),
            self.conn_line
        );
        let _ = s.write_all(head.as_bytes());
        if !self.head_only {
            let _ = s.write_all(content);
        }
    }

    /// The body 7 bytes at a time, 2 ms apart: many short reads for the client.
    fn pieces(&self, s: &mut TcpStream, content: &[u8]) {
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n{}\r\n",
            content.len(),
            self.conn_line
        );
        let _ = s.write_all(head.as_bytes());
        if !self.head_only {
            let _ = wire::write_in_pieces(s, content, 7, Duration::from_millis(2));
        }
    }

    /// No length: the body ends when the origin closes (RFC 9112 §6.3).
    fn close_delimited(&self, s: &mut TcpStream, content: &[u8]) {
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
        if !self.head_only {
            let _ = s.write_all(content);
        }
    }
}

/// Writes the answer; false if the connection must end after it.
fn answer(
    s: &mut TcpStream,
    shared: &Shared,
    method: &str,
    path: &str,
    body: &[u8],
    close: bool,
) -> bool {
    let reply = Reply {
        head_only: method == "HEAD",
        conn_line: if close { "Connection: close\r\n" } else { "" },
    };
    let content = body_for(shared.seed, path);
    match path.split('/').nth(1).unwrap_or("") {
        "text" | "bin" => reply.send(s, "200 OK", "", &content),
        "cacheable" => reply.send(s, "200 OK", "Cache-Control: max-age=300\r\n", &content),
        "echo" => reply.send(s, "200 OK", "", body),
        "status" => {
            let code = path.rsplit('/').next().unwrap_or("500");
            let text = format!("check origin: status {code}\n");
            reply.send(s, &format!("{code} Status {code}"), "", text.as_bytes());
        }
        // The first answer is an error with no Cache-Control, the next ones are fine.
        "flaky" if shared.flaky.fetch_add(1, Ordering::SeqCst) == 0 => {
            reply.send(
                s,
                "503 Service Unavailable",
                "",
                b"check origin: busy, try again\n",
            );
        }
        "flaky" => reply.send(s, "200 OK", "", b"check origin: fine now\n"),
        "pieces" => reply.pieces(s, &content),
        "chunked" => chunked(s, &content, reply.head_only, reply.conn_line),
        "close" => {
            reply.close_delimited(s, &content);
            return false;
        }
        "truncated" => {
            // Content-Length promises the whole body; half of it comes, then FIN.
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
                content.len()
            );
            let _ = s.write_all(head.as_bytes());
            let _ = s.write_all(&content[..content.len() / 2]);
            return false;
        }
        "hang" => {
            let end = Instant::now() + LIFETIME;
            while !shared.stop.load(Ordering::SeqCst) && Instant::now() < end {
                thread::sleep(Duration::from_millis(20));
            }
            return false;
        }
        _ => reply.send(s, "404 Not Found", "", b"check origin: no such route\n"),
    }
    true
}

/// A chunked body (RFC 9112 §7.1) in chunks of 1000 bytes, the first with
/// an extension, and a trailer field after the last.
fn chunked(s: &mut TcpStream, content: &[u8], head_only: bool, conn_line: &str) {
    let head = format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n{conn_line}\r\n");
    let _ = s.write_all(head.as_bytes());
    if head_only {
        return;
    }
    let mut out = Vec::new();
    for (i, chunk) in content.chunks(1000).enumerate() {
        let ext = if i == 0 { ";check=1" } else { "" };
        out.extend_from_slice(format!("{:x}{ext}\r\n", chunk.len()).as_bytes());
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\nX-Check-Trailer: done\r\n\r\n");
    let _ = s.write_all(&out);
}
