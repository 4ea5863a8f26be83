//! Reading HTTP/1.1 responses the way a strict but fair client does, and
//! keeping enough of what came to say what was wrong with it.
//!
//! The head ends at the first empty line (RFC 9112 §2.1). Lines should end
//! with CRLF; a bare LF is accepted (§2.2 allows it) but remembered, so one
//! test can fail it and the rest can go on. The body is framed by
//! `Transfer-Encoding: chunked`, then `Content-Length`, then the close of
//! the connection (§6.3); HEAD, 1xx, 204 and 304 responses have none.

use std::io::Read;
use std::net::TcpStream;
use std::time::Instant;

use crate::wire::End;

/// The longest response head check reads (RFC 9112 sets no limit; servers use 8 to 64 KiB).
const MAX_HEAD: usize = 1024 * 1024;
/// The longest body check keeps: every test body is far smaller.
const MAX_BODY: usize = 64 * 1024 * 1024;

/// A connection and the bytes read from it but not used yet.
pub struct Conn {
    pub stream: TcpStream,
    buf: Vec<u8>,
    pub deadline: Instant,
}

/// A response as it came.
#[derive(Debug, Default)]
pub struct Response {
    pub status: u16,
    pub head: Vec<u8>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// A head line ended with LF alone.
    pub bare_lf: bool,
    /// The body arrived whole by its framing.
    pub complete: bool,
    /// How the body was framed: "chunked", "length" or "close".
    pub framing: &'static str,
    /// Why reading stopped early, if it did.
    pub end: Option<End>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The peer will close after this response (HTTP/1.0, or `Connection: close`).
    pub fn closes(&self) -> bool {
        self.head.starts_with(b"HTTP/1.0")
            || self
                .header("connection")
                .is_some_and(|v| v.to_ascii_lowercase().contains("close"))
    }
}

impl Conn {
    pub fn new(stream: TcpStream, deadline: Instant) -> Conn {
        Conn {
            stream,
            buf: Vec::new(),
            deadline,
        }
    }

    /// Reads more bytes into the buffer; Err says why none came.
    fn fill(&mut self) -> Result<(), End> {
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            let left = self.deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(End::TimedOut);
            }
            let _ = self.stream.set_read_timeout(Some(left));
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(End::Closed),
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(());
                }
                Err(err) if socketlab::explain::is_timeout(&err) => return Err(End::TimedOut),
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return Err(End::Reset),
            }
        }
    }

    /// Bytes up to and including the first `\n`.
    pub fn line(&mut self) -> Result<Vec<u8>, End> {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                return Ok(self.buf.drain(..=i).collect());
            }
            if self.buf.len() > 64 * 1024 {
                return Err(End::Full);
            }
            self.fill()?;
        }
    }

    /// Exactly `n` bytes; on an early end, what came.
    pub fn take(&mut self, n: usize) -> Result<Vec<u8>, (Vec<u8>, End)> {
        while self.buf.len() < n {
            if let Err(end) = self.fill() {
                return Err((std::mem::take(&mut self.buf), end));
            }
        }
        Ok(self.buf.drain(..n).collect())
    }

    /// Everything until the peer closes.
    pub fn rest(&mut self) -> (Vec<u8>, End) {
        loop {
            if let Err(end) = self.fill() {
                return (std::mem::take(&mut self.buf), end);
            }
            if self.buf.len() > MAX_BODY {
                return (std::mem::take(&mut self.buf), End::Full);
            }
        }
    }

    /// Bytes already read and not used (after a response: a protocol error).
    pub fn leftover(&self) -> &[u8] {
        &self.buf
    }

    /// Reads one response; `head_only` for a HEAD request. Err(what came, why)
    /// if no whole head arrived.
    pub fn response(&mut self, head_only: bool) -> Result<Response, (Vec<u8>, End)> {
        loop {
            let mut r = self.head()?;
            if (100..200).contains(&r.status) && r.status != 101 {
                continue; // an interim response (RFC 9110 §15.2); the real one follows
            }
            let bodiless = head_only || r.status == 204 || r.status == 304;
            self.body(&mut r, bodiless);
            return Ok(r);
        }
    }

    fn head(&mut self) -> Result<Response, (Vec<u8>, End)> {
        let mut r = Response::default();
        loop {
            let line = self.line().map_err(|end| {
                let mut got = std::mem::take(&mut r.head);
                got.extend_from_slice(&self.buf);
                (got, end)
            })?;
            r.head.extend_from_slice(&line);
            if r.head.len() > MAX_HEAD {
                return Err((r.head, End::Full));
            }
            if !line.ends_with(b"\r\n") {
                r.bare_lf = true;
            }
            let text = String::from_utf8_lossy(&line).trim_end().to_string();
            if r.status == 0 {
                let code = text.split_whitespace().nth(1).and_then(|c| c.parse().ok());
                match code {
                    Some(code) if text.starts_with("HTTP/") => r.status = code,
                    _ => return Err((r.head, End::Full)),
                }
            } else if text.is_empty() {
                return Ok(r);
            } else if let Some((name, value)) = text.split_once(':') {
                r.headers
                    .push((name.trim().to_string(), value.trim().to_string()));
            }
        }
    }

    fn body(&mut self, r: &mut Response, bodiless: bool) {
        if bodiless {
            r.complete = true;
            r.framing = "none";
            return;
        }
        let chunked = r
            .header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        let length = r
            .header("content-length")
            .and_then(|v| v.parse::<usize>().ok());
        if chunked {
            r.framing = "chunked";
            self.chunks(r);
        } else if let Some(n) = length {
            r.framing = "length";
            match self.take(n) {
                Ok(body) => (r.body, r.complete) = (body, true),
                Err((got, end)) => (r.body, r.end) = (got, Some(end)),
            }
        } else {
            r.framing = "close";
            let (body, end) = self.rest();
            r.complete = end == End::Closed;
            r.body = body;
            r.end = Some(end);
        }
    }

    /// A chunked body (RFC 9112 §7.1): size in hex, optional `;ext`, data, CRLF; `0` ends it.
    fn chunks(&mut self, r: &mut Response) {
        loop {
            let line = match self.line() {
                Ok(line) => line,
                Err(end) => return r.end = Some(end),
            };
            let text = String::from_utf8_lossy(&line);
            let size = text.split(';').next().unwrap_or("").trim();
            // A size that is not hex, or absurdly large, is a framing error.
            let Some(size) = usize::from_str_radix(size, 16)
                .ok()
                .filter(|&n| n <= MAX_BODY)
            else {
                return r.end = Some(End::Full);
            };
            if size == 0 {
                // Trailer fields, then the empty line.
                loop {
                    match self.line() {
                        Ok(l) if l == b"\r\n" || l == b"\n" => {
                            r.complete = true;
                            return;
                        }
                        Ok(_) => {}
                        Err(end) => return r.end = Some(end),
                    }
                }
            }
            match self.take(size + 2) {
                Ok(mut data) => {
                    data.truncate(size);
                    r.body.extend_from_slice(&data);
                }
                Err((got, end)) => {
                    r.body.extend_from_slice(&got[..got.len().min(size)]);
                    return r.end = Some(end);
                }
            }
        }
    }
}

/// Reads a request head (what a client sent check's origin): up to the
/// empty line; None if the client closed or the deadline passed first.
pub fn read_request_head(conn: &mut Conn) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    loop {
        let line = conn.line().ok()?;
        let empty = line == b"\r\n" || line == b"\n";
        head.extend_from_slice(&line);
        if empty {
            return Some(head);
        }
    }
}

/// A request body of `n` bytes after its head.
pub fn read_body(conn: &mut Conn, n: usize) -> Option<Vec<u8>> {
    conn.take(n).ok()
}

/// A header's value in a raw head.
pub fn head_value(head: &[u8], name: &str) -> Option<String> {
    String::from_utf8_lossy(head).lines().skip(1).find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}
