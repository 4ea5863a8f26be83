//! Reading a message head across partial reads, parsing it with httparse,
//! and writing it back in wire form (RFC 9112 §2-§5).

use std::fmt;
use std::io::{self, BufRead, ErrorKind, Write};

use super::headers::Headers;
use super::{MAX_HEAD_BYTES, MAX_HEADERS};

/// Why no head could be read.
#[derive(Debug)]
pub enum HeadError {
    /// The peer closed the connection before the first byte of a head: on a
    /// kept-alive connection that is the normal end, not a failure.
    Closed,
    /// The peer closed the connection in the middle of a head.
    Truncated { received: usize },
    /// The head is over [`MAX_HEAD_BYTES`] (answer 431).
    TooLarge,
    /// The head has over [`MAX_HEADERS`] fields (answer 431).
    TooManyHeaders,
    /// The head is not HTTP/1.x; says which part is wrong, never echoes it.
    Malformed(&'static str),
    /// The read itself failed: a reset, or a read timeout
    /// (see `explain::is_timeout`). The OS error is this error's `source()`,
    /// not part of its text: print the chain (anyhow's `{:#}`) or match it.
    Io(io::Error),
}

impl HeadError {
    /// The status code a server answers this with, if it answers at all:
    /// 431 for the limits, 400 for a bad or cut-off head; none when the
    /// connection is closed or broken.
    pub fn status(&self) -> Option<u16> {
        match self {
            HeadError::TooLarge | HeadError::TooManyHeaders => Some(431),
            HeadError::Malformed(_) | HeadError::Truncated { .. } => Some(400),
            HeadError::Closed | HeadError::Io(_) => None,
        }
    }
}

impl fmt::Display for HeadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeadError::Closed => write!(f, "connection closed before a message began"),
            HeadError::Truncated { received } => write!(
                f,
                "connection closed in the middle of a message head (after {received} bytes)"
            ),
            HeadError::TooLarge => write!(f, "message head larger than {MAX_HEAD_BYTES} bytes"),
            HeadError::TooManyHeaders => write!(f, "more than {MAX_HEADERS} header fields"),
            HeadError::Malformed(reason) => write!(f, "malformed message head: {reason}"),
            HeadError::Io(_) => write!(f, "reading a message head failed"),
        }
    }
}

impl std::error::Error for HeadError {
    // The OS error stays reachable in the chain, so `explain` finds it.
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            HeadError::Io(err) => Some(err),
            _ => None,
        }
    }
}

impl From<HeadError> for io::Error {
    fn from(err: HeadError) -> io::Error {
        match err {
            HeadError::Io(err) => err,
            HeadError::Closed | HeadError::Truncated { .. } => {
                io::Error::new(ErrorKind::UnexpectedEof, err)
            }
            _ => io::Error::new(ErrorKind::InvalidData, err),
        }
    }
}

/// Reads one head, up to and including the empty line that ends it, and
/// leaves every byte after it (the body, the next request) in `reader`.
///
/// Lines end with CRLF, but a bare LF is accepted too (RFC 9112 §2.2), and
/// empty lines before a request line are skipped (§2.2: some clients send
/// an extra CRLF after a POST body).
pub fn read_head<R: BufRead + ?Sized>(reader: &mut R) -> Result<Vec<u8>, HeadError> {
    read_block(reader, MAX_HEAD_BYTES, true)
}

/// Reads lines until an empty one: a head, or a chunked body's trailer
/// section. At most `max` bytes, counting skipped leading empty lines.
pub(super) fn read_block<R: BufRead + ?Sized>(
    reader: &mut R,
    max: usize,
    skip_leading_empty_lines: bool,
) -> Result<Vec<u8>, HeadError> {
    let mut block = Vec::new();
    let mut line_start = 0; // where the current line begins in `block`
    let mut skipped = 0; // bytes of leading empty lines thrown away
    loop {
        let available = match reader.fill_buf() {
            Ok(bytes) => bytes,
            // A signal arrived during read(2); nothing was lost, try again.
            Err(err) if err.kind() == ErrorKind::Interrupted => continue,
            Err(err) => return Err(HeadError::Io(err)),
        };
        // read(2) returned 0: the peer sent FIN, there will be no more bytes.
        if available.is_empty() {
            return Err(match block.len() {
                0 => HeadError::Closed,
                received => HeadError::Truncated { received },
            });
        }
        // Copy what arrived line by line, looking for the empty line.
        let mut used = 0;
        let mut complete = false;
        while !complete && used < available.len() && skipped + block.len() <= max {
            let line_end = match available[used..].iter().position(|&b| b == b'\n') {
                Some(newline) => used + newline + 1,
                None => available.len(), // the line's end has not arrived yet
            };
            block.extend_from_slice(&available[used..line_end]);
            used = line_end;
            if !block.ends_with(b"\n") {
                continue;
            }
            let line = &block[line_start..block.len() - 1];
            let empty = line.is_empty() || line == b"\r";
            if empty && line_start == 0 && skip_leading_empty_lines {
                skipped += block.len();
                block.clear();
            } else if empty {
                complete = true;
            } else {
                line_start = block.len();
            }
        }
        // Bytes after the empty line stay in the reader for the body.
        reader.consume(used);
        if skipped + block.len() > max {
            return Err(HeadError::TooLarge);
        }
        if complete {
            return Ok(block);
        }
    }
}

/// The HTTP version of a message; httparse accepts only HTTP/1.0 and 1.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

impl Version {
    fn from_minor(minor: Option<u8>) -> Version {
        match minor {
            Some(0) => Version::Http10,
            _ => Version::Http11,
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
        })
    }
}

/// A request head: `GET /index.html HTTP/1.1` and its fields (RFC 9112 §3).
/// How long its body is: [`RequestHead::body_length`], in `framing.rs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// The method as sent; methods are case-sensitive (RFC 9110 §9.1).
    pub method: String,
    /// The request-target: `/path?query` (origin-form), `http://host/path`
    /// (absolute-form, to a proxy), `host:443` (CONNECT), or `*`.
    pub target: String,
    pub version: Version,
    pub headers: Headers,
}

impl RequestHead {
    /// An HTTP/1.1 request with no fields yet.
    pub fn new(method: &str, target: &str) -> RequestHead {
        RequestHead {
            method: method.to_string(),
            target: target.to_string(),
            version: Version::Http11,
            headers: Headers::new(),
        }
    }

    /// Reads and parses the next request head from `reader`.
    pub fn read_from<R: BufRead + ?Sized>(reader: &mut R) -> Result<RequestHead, HeadError> {
        RequestHead::parse(&read_head(reader)?)
    }

    /// Parses a complete head as returned by [`read_head`].
    pub fn parse(head: &[u8]) -> Result<RequestHead, HeadError> {
        let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut request = httparse::Request::new(&mut fields);
        match request.parse(head) {
            Ok(httparse::Status::Complete(_)) => {}
            Ok(httparse::Status::Partial) => return Err(HeadError::Malformed("incomplete head")),
            Err(err) => return Err(parse_error(err)),
        }
        Ok(RequestHead {
            method: request.method.unwrap_or_default().to_string(),
            target: request.path.unwrap_or_default().to_string(),
            version: Version::from_minor(request.version),
            headers: copy_headers(request.headers),
        })
    }

    /// The head in wire form: request line, fields, empty line, each line
    /// ended with CRLF, one space after each colon.
    pub fn to_bytes(&self) -> Vec<u8> {
        let start_line = format!("{} {} {}", self.method, self.target, self.version);
        wire_form(&start_line, &self.headers)
    }

    /// Whether the client wants the connection kept open afterwards
    /// (RFC 9112 §9.3).
    pub fn keep_alive(&self) -> bool {
        keep_alive(self.version, &self.headers)
    }
}

/// A response head: `HTTP/1.1 200 OK` and its fields (RFC 9112 §4).
/// How long its body is: [`ResponseHead::body_length`], in `framing.rs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    pub version: Version,
    pub status: u16,
    /// The reason phrase; empty if the server sent none or sent bytes that
    /// are not text (clients must ignore it anyway, RFC 9112 §4).
    pub reason: String,
    pub headers: Headers,
}

impl ResponseHead {
    /// An HTTP/1.1 response with no fields yet.
    pub fn new(status: u16, reason: &str) -> ResponseHead {
        ResponseHead {
            version: Version::Http11,
            status,
            reason: reason.to_string(),
            headers: Headers::new(),
        }
    }

    /// Reads and parses the next response head from `reader`.
    pub fn read_from<R: BufRead + ?Sized>(reader: &mut R) -> Result<ResponseHead, HeadError> {
        ResponseHead::parse(&read_head(reader)?)
    }

    /// Parses a complete head as returned by [`read_head`].
    pub fn parse(head: &[u8]) -> Result<ResponseHead, HeadError> {
        let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut fields);
        match response.parse(head) {
            Ok(httparse::Status::Complete(_)) => {}
            Ok(httparse::Status::Partial) => return Err(HeadError::Malformed("incomplete head")),
            Err(err) => return Err(parse_error(err)),
        }
        Ok(ResponseHead {
            version: Version::from_minor(response.version),
            status: response.code.unwrap_or_default(),
            reason: response.reason.unwrap_or_default().to_string(),
            headers: copy_headers(response.headers),
        })
    }

    /// The head in wire form, as [`RequestHead::to_bytes`].
    pub fn to_bytes(&self) -> Vec<u8> {
        let start_line = format!("{} {:03} {}", self.version, self.status, self.reason);
        wire_form(&start_line, &self.headers)
    }

    /// Sends the head with one `write_all`.
    pub fn write_to<W: Write + ?Sized>(&self, writer: &mut W) -> io::Result<()> {
        writer.write_all(&self.to_bytes())
    }

    /// Whether the server will keep the connection open afterwards
    /// (RFC 9112 §9.3). A body read until close ends it regardless.
    pub fn keep_alive(&self) -> bool {
        keep_alive(self.version, &self.headers)
    }

    /// An interim response (1xx other than 101, e.g. `100 Continue` after
    /// `Expect: 100-continue`): the final response is still to come on the
    /// same connection (RFC 9110 §15.2).
    pub fn is_interim(&self) -> bool {
        (100..200).contains(&self.status) && self.status != 101
    }
}

/// Turns httparse's error into a short reason that names the bad part.
pub(super) fn parse_error(err: httparse::Error) -> HeadError {
    use httparse::Error::*;
    HeadError::Malformed(match err {
        TooManyHeaders => return HeadError::TooManyHeaders,
        HeaderName => "invalid header field name",
        HeaderValue => "invalid header field value",
        NewLine => "invalid line ending",
        Status => "invalid status code",
        Token => "invalid method, request target or token",
        Version => "not HTTP/1.0 or HTTP/1.1",
    })
}

pub(super) fn copy_headers(fields: &[httparse::Header<'_>]) -> Headers {
    let mut headers = Headers::new();
    for field in fields {
        headers.append(field.name, field.value);
    }
    headers
}

/// The start line, each field as `Name: value`, then the empty line, all
/// ended by CRLF (RFC 9112 §2.1).
fn wire_form(start_line: &str, headers: &Headers) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(start_line.as_bytes());
    out.extend_from_slice(b"\r\n");
    append_fields(&mut out, headers);
    out
}

/// Each field as `Name: value` CRLF, then the empty line that ends them.
pub(super) fn append_fields(out: &mut Vec<u8>, headers: &Headers) {
    for field in headers {
        out.extend_from_slice(field.name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(&field.value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// RFC 9112 §9.3: `Connection: close` ends it; otherwise HTTP/1.1 persists
/// and HTTP/1.0 persists only with `Connection: keep-alive`.
fn keep_alive(version: Version, headers: &Headers) -> bool {
    if headers.has_token("Connection", "close") {
        return false;
    }
    version == Version::Http11 || headers.has_token("Connection", "keep-alive")
}
