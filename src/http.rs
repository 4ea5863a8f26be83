//! HTTP/1.1 messages on a byte stream: heads, body framing, chunked coding.
//!
//! TCP delivers a byte stream, not messages, so an HTTP peer has to find the
//! message boundaries itself (RFC 9112). Every message is a *head* (a start
//! line and header fields, ended by an empty line) and then maybe a *body*,
//! whose length the head announces in one of three ways (§6.3): a
//! `Content-Length`, the `chunked` transfer coding, or (responses only) "until
//! the server closes the connection". A `read()` can return any part of
//! this: half a head, a head and the start of its body, two pipelined
//! requests. So heads are read from a [`BufRead`], which keeps whatever came
//! after the empty line for the body reader or the next message.
//!
//! ```no_run
//! use std::io::{BufReader, Read, Write};
//! use std::net::TcpStream;
//! use socketlab::http::{BodyReader, RequestHead, ResponseHead};
//!
//! # fn main() -> anyhow::Result<()> {
//! let mut stream = TcpStream::connect("127.0.0.1:8000")?;
//! let mut request = RequestHead::new("GET", "/");
//! request.headers.append("Host", "127.0.0.1:8000");
//! request.write_to(&mut stream)?;
//!
//! let mut reader = BufReader::new(stream);
//! let response = ResponseHead::read_from(&mut reader)?;
//! let length = response.body_length(&request.method)?;
//! let mut body = Vec::new();
//! BodyReader::new(&mut reader, length).read_to_end(&mut body)?;
//! # Ok(())
//! # }
//! ```
//!
//! Parsing the start line and fields is done by the `httparse` crate; reading
//! across partial reads, the limits, the framing rules and the chunked coding
//! are written out here, because they are what the labs are about.

use std::fmt;
use std::io::{self, BufRead, ErrorKind, Read, Write};
use std::str::FromStr;

/// The largest head accepted, start line and fields and the empty line.
/// Bigger heads get `431 Request Header Fields Too Large` (RFC 6585 §5).
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// The most header fields accepted in one head (also 431).
pub const MAX_HEADERS: usize = 100;

/// The longest chunk-size line accepted (the size in hex and any chunk
/// extensions), so a peer cannot make us buffer an endless line.
pub const MAX_CHUNK_LINE: usize = 4096;

// ---------------------------------------------------------------------------
// Headers
// ---------------------------------------------------------------------------

/// One header field: the name as the peer spelled it, the value as raw bytes
/// (RFC 9110 §5.5 allows bytes that are not text, so no UTF-8 is assumed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub name: String,
    pub value: Vec<u8>,
}

/// Header fields in the order they arrived. Names compare without regard to
/// case (RFC 9110 §5.1), but keep their spelling so a head is forwarded as
/// it came; a name may appear several times (`Set-Cookie`, `Via`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers {
    fields: Vec<Header>,
}

impl Headers {
    pub fn new() -> Headers {
        Headers::default()
    }

    pub fn len(&self) -> usize {
        self.fields.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Every field, in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Header> {
        self.fields.iter()
    }

    /// The value of the first field called `name`.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.fields
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_slice())
    }

    /// The value of the first field called `name`, if it is UTF-8 text.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The values of every field called `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.fields
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_slice())
    }

    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Adds a field at the end, after any others of the same name.
    pub fn append(&mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) {
        self.fields.push(Header {
            name: name.into(),
            value: value.into(),
        });
    }

    /// Replaces every field called `name` with one field at the end.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) {
        let name = name.into();
        self.remove(&name);
        self.append(name, value);
    }

    /// Removes every field called `name`; returns how many there were.
    pub fn remove(&mut self, name: &str) -> usize {
        let before = self.fields.len();
        self.fields.retain(|h| !h.name.eq_ignore_ascii_case(name));
        before - self.fields.len()
    }

    /// The elements of the comma-separated list in every field called `name`
    /// (RFC 9110 §5.6.1), whitespace trimmed, empty elements skipped, commas
    /// inside "quoted strings" kept. `Connection: keep-alive, Upgrade` gives
    /// `keep-alive` and `Upgrade`. An element that is not UTF-8 comes out as
    /// "\u{fffd}", which matches no token but still counts (so a
    /// `Transfer-Encoding` cannot hide a coding behind a bad byte).
    pub fn list<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.get_all(name)
            .flat_map(split_list)
            .map(|element| std::str::from_utf8(element).unwrap_or("\u{fffd}"))
    }

    /// True when the list in the fields called `name` has `token`, ignoring
    /// case: `has_token("Connection", "close")`,
    /// `has_token("Cache-Control", "no-cache")`.
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.list(name).any(|t| t.eq_ignore_ascii_case(token))
    }
}

impl<'a> IntoIterator for &'a Headers {
    type Item = &'a Header;
    type IntoIter = std::slice::Iter<'a, Header>;
    fn into_iter(self) -> Self::IntoIter {
        self.fields.iter()
    }
}

/// Splits one field value at the commas that are not inside a quoted
/// string, trims optional whitespace (OWS: spaces and tabs) and drops empty
/// elements, which RFC 9110 §5.6.1 says a recipient must ignore.
fn split_list(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut elements = Vec::new();
    let (mut start, mut in_quotes, mut escaped) = (0, false, false);
    for (i, &byte) in value.iter().enumerate() {
        match byte {
            _ if escaped => escaped = false,
            b'\\' if in_quotes => escaped = true,
            b'"' => in_quotes = !in_quotes,
            b',' if !in_quotes => {
                elements.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    elements.push(&value[start..]);
    elements
        .into_iter()
        .map(trim_ows)
        .filter(|element| !element.is_empty())
}

fn trim_ows(mut bytes: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = bytes {
        bytes = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = bytes {
        bytes = rest;
    }
    bytes
}

// ---------------------------------------------------------------------------
// Reading a head
// ---------------------------------------------------------------------------

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
    /// (see `explain::is_timeout`).
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
fn read_block<R: BufRead + ?Sized>(
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
        // Take whole lines while looking for the empty one.
        let mut used = 0;
        let mut complete = false;
        while let Some(newline) = available[used..].iter().position(|&b| b == b'\n') {
            let end = used + newline + 1;
            block.extend_from_slice(&available[used..end]);
            used = end;
            let line = &block[line_start..block.len() - 1];
            if line.is_empty() || line == b"\r" {
                if line_start == 0 && skip_leading_empty_lines {
                    skipped += block.len();
                    block.clear();
                    if skipped > max {
                        break;
                    }
                    continue;
                }
                complete = true;
                break;
            }
            line_start = block.len();
            if block.len() > max {
                break;
            }
        }
        if !complete {
            // The rest is the start of a line whose end has not arrived yet.
            let partial = &available[used..];
            let room = (max + 1).saturating_sub(block.len() + skipped);
            block.extend_from_slice(&partial[..partial.len().min(room)]);
            used += partial.len().min(room);
        }
        reader.consume(used);
        if block.len() + skipped > max {
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
    /// ended with CRLF, one space after each colon. These are exactly the
    /// bytes [`write_to`](Self::write_to) sends.
    pub fn to_bytes(&self) -> Vec<u8> {
        let start_line = format!("{} {} {}", self.method, self.target, self.version);
        wire_form(&start_line, &self.headers)
    }

    /// Sends the head with one `write_all`, so it leaves in as few TCP
    /// segments as possible.
    pub fn write_to<W: Write + ?Sized>(&self, writer: &mut W) -> io::Result<()> {
        writer.write_all(&self.to_bytes())
    }

    /// How long the body is (RFC 9112 §6.3). A request without
    /// `Content-Length` or `Transfer-Encoding` has no body; ambiguous
    /// framing is an error, because a proxy and an origin that picked
    /// different answers would disagree on where the next request starts
    /// (request smuggling, §11.2).
    pub fn body_length(&self) -> Result<BodyLength, FramingError> {
        if self.headers.contains("Transfer-Encoding") {
            if self.version == Version::Http10 {
                return Err(FramingError::TransferEncodingInHttp10);
            }
            if self.headers.contains("Content-Length") {
                return Err(FramingError::LengthAndTransferEncoding);
            }
            return match chunked_is_final(&self.headers)? {
                true => Ok(BodyLength::Chunked),
                // §6.3 item 4: the server cannot tell where it ends.
                false => Err(FramingError::NotChunked),
            };
        }
        match content_length(&self.headers)? {
            Some(0) | None => Ok(BodyLength::None),
            Some(n) => Ok(BodyLength::Length(n)),
        }
    }

    /// Whether the client wants the connection kept open afterwards
    /// (RFC 9112 §9.3).
    pub fn keep_alive(&self) -> bool {
        keep_alive(self.version, &self.headers)
    }
}

/// A response head: `HTTP/1.1 200 OK` and its fields (RFC 9112 §4).
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

    /// How long the body of this response to a `request_method` request is
    /// (RFC 9112 §6.3): none after HEAD, for 1xx, 204 and 304, and for a 2xx
    /// to CONNECT (the connection becomes a tunnel); then chunked, then
    /// Content-Length; otherwise until the server closes the connection.
    /// `Transfer-Encoding` together with `Content-Length` is an error here
    /// too (§6.3 item 3: "ought to be handled as an error").
    pub fn body_length(&self, request_method: &str) -> Result<BodyLength, FramingError> {
        let bodiless = request_method == "HEAD"
            || (100..200).contains(&self.status)
            || self.status == 204
            || self.status == 304
            || (request_method == "CONNECT" && (200..300).contains(&self.status));
        if bodiless {
            return Ok(BodyLength::None);
        }
        if self.headers.contains("Transfer-Encoding") {
            if self.version == Version::Http10 {
                return Err(FramingError::TransferEncodingInHttp10);
            }
            if self.headers.contains("Content-Length") {
                return Err(FramingError::LengthAndTransferEncoding);
            }
            return match chunked_is_final(&self.headers)? {
                true => Ok(BodyLength::Chunked),
                // §6.3 item 4: e.g. `Transfer-Encoding: gzip` alone.
                false => Ok(BodyLength::UntilClose),
            };
        }
        match content_length(&self.headers)? {
            Some(0) => Ok(BodyLength::None),
            Some(n) => Ok(BodyLength::Length(n)),
            None => Ok(BodyLength::UntilClose),
        }
    }

    /// Whether the server will keep the connection open afterwards
    /// (RFC 9112 §9.3). A body read until close ends it regardless.
    pub fn keep_alive(&self) -> bool {
        keep_alive(self.version, &self.headers)
    }
}

/// Turns httparse's error into a short reason that names the bad part.
fn parse_error(err: httparse::Error) -> HeadError {
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

fn copy_headers(fields: &[httparse::Header<'_>]) -> Headers {
    let mut headers = Headers::new();
    for field in fields {
        headers.append(field.name, field.value);
    }
    headers
}

fn wire_form(start_line: &str, headers: &Headers) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(start_line.as_bytes());
    out.extend_from_slice(b"\r\n");
    for field in headers {
        out.extend_from_slice(field.name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(&field.value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// RFC 9112 §9.3: `Connection: close` ends it; otherwise HTTP/1.1 persists
/// and HTTP/1.0 persists only with `Connection: keep-alive`.
fn keep_alive(version: Version, headers: &Headers) -> bool {
    if headers.has_token("Connection", "close") {
        return false;
    }
    version == Version::Http11 || headers.has_token("Connection", "keep-alive")
}

// ---------------------------------------------------------------------------
// Body framing (RFC 9112 §6)
// ---------------------------------------------------------------------------

/// How a message's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyLength {
    /// No body at all.
    None,
    /// Exactly this many bytes (`Content-Length`, §6.2).
    Length(u64),
    /// The chunked transfer coding (§7.1).
    Chunked,
    /// Everything until the peer closes (responses only, §6.3 item 8); the
    /// connection cannot be reused afterwards.
    UntilClose,
}

/// A head whose body length is ambiguous or invalid (answer 400 to a
/// request, 502 to a response from an origin).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FramingError {
    /// Both `Content-Length` and `Transfer-Encoding` (§6.3 item 3).
    LengthAndTransferEncoding,
    /// A `Content-Length` that is not a decimal number that fits in 64 bits.
    InvalidContentLength,
    /// Several `Content-Length` values that differ (§6.3 item 5).
    ConflictingContentLength,
    /// A request whose last transfer coding is not chunked (§6.3 item 4).
    NotChunked,
    /// `chunked` applied more than once (§7: "MUST NOT").
    ChunkedTwice,
    /// `Transfer-Encoding` in an HTTP/1.0 message, which predates it (§6.1).
    TransferEncodingInHttp10,
}

impl fmt::Display for FramingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FramingError::LengthAndTransferEncoding => {
                "both content-length and transfer-encoding (possible request smuggling)"
            }
            FramingError::InvalidContentLength => "invalid content-length",
            FramingError::ConflictingContentLength => "conflicting content-length values",
            FramingError::NotChunked => "transfer-encoding does not end with chunked",
            FramingError::ChunkedTwice => "transfer-encoding applies chunked more than once",
            FramingError::TransferEncodingInHttp10 => "transfer-encoding in an HTTP/1.0 message",
        })
    }
}

impl std::error::Error for FramingError {}

/// Whether the codings in `Transfer-Encoding` end with `chunked`, the only
/// coding that marks where the body ends (RFC 9112 §6.1). `gzip, chunked`
/// is chunked framing around a gzipped body.
fn chunked_is_final(headers: &Headers) -> Result<bool, FramingError> {
    let codings: Vec<&str> = headers.list("Transfer-Encoding").collect();
    let chunked_count = codings
        .iter()
        .filter(|c| c.eq_ignore_ascii_case("chunked"))
        .count();
    match codings.last() {
        _ if chunked_count > 1 => Err(FramingError::ChunkedTwice),
        Some(last) => Ok(last.eq_ignore_ascii_case("chunked")),
        None => Ok(false),
    }
}

/// The `Content-Length`, if there is one. Repeats of the same number (in
/// several fields, or as a list `5, 5`) are accepted as one (§6.3 item 5).
fn content_length(headers: &Headers) -> Result<Option<u64>, FramingError> {
    let mut length = None;
    for value in headers.get_all("Content-Length") {
        for element in value.split(|&b| b == b',').map(trim_ows) {
            let n = parse_decimal(element).ok_or(FramingError::InvalidContentLength)?;
            match length {
                Some(previous) if previous != n => {
                    return Err(FramingError::ConflictingContentLength);
                }
                _ => length = Some(n),
            }
        }
    }
    Ok(length)
}

/// `1*DIGIT` as a u64: no sign, no spaces, no hex, no overflow.
fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

// ---------------------------------------------------------------------------
// Reading a body
// ---------------------------------------------------------------------------

/// A message body as a [`Read`]: bytes come out as the peer sent them, minus
/// the chunked framing. Reading stops at the body's end, so what follows (the
/// next pipelined message) stays in the inner reader. Pass `&mut reader` to
/// keep using it afterwards.
#[derive(Debug)]
pub enum BodyReader<R> {
    None,
    Length(LengthReader<R>),
    Chunked(ChunkedReader<R>),
    UntilClose(R),
}

impl<R: BufRead> BodyReader<R> {
    pub fn new(reader: R, length: BodyLength) -> BodyReader<R> {
        match length {
            BodyLength::None => BodyReader::None,
            BodyLength::Length(n) => BodyReader::Length(LengthReader::new(reader, n)),
            BodyLength::Chunked => BodyReader::Chunked(ChunkedReader::new(reader)),
            BodyLength::UntilClose => BodyReader::UntilClose(reader),
        }
    }
}

impl<R: BufRead> Read for BodyReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            BodyReader::None => Ok(0),
            BodyReader::Length(body) => body.read(buf),
            BodyReader::Chunked(body) => body.read(buf),
            BodyReader::UntilClose(body) => body.read(buf),
        }
    }
}

/// A body of exactly `Content-Length` bytes (RFC 9112 §6.2). A peer that
/// closes before the last byte gives an `UnexpectedEof` error, never a short
/// body that looks complete (a proxy must not cache or forward it as whole).
#[derive(Debug)]
pub struct LengthReader<R> {
    inner: R,
    remaining: u64,
}

impl<R: Read> LengthReader<R> {
    pub fn new(inner: R, length: u64) -> LengthReader<R> {
        LengthReader {
            inner,
            remaining: length,
        }
    }

    /// Bytes still to come.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }
}

impl<R: Read> Read for LengthReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let wanted = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..wanted])?;
        if n == 0 {
            return Err(io::Error::new(
                ErrorKind::UnexpectedEof,
                format!(
                    "peer closed the connection {} bytes before the end of the body",
                    self.remaining
                ),
            ));
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

/// Where a [`ChunkedReader`] is in the chunked coding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// Next comes a chunk-size line.
    Size,
    /// Inside a chunk's data, this many bytes left.
    Data(u64),
    /// Next comes the CRLF after a chunk's data.
    DataEnd,
    /// The last chunk and the trailer section have been read.
    Done,
}

/// Decodes the chunked transfer coding (RFC 9112 §7.1):
///
/// ```text
/// 1a;name=value\r\n     chunk-size in hex, optional chunk extensions (ignored)
/// <26 bytes of data>\r\n
/// 0\r\n                 the last chunk
/// Expires: never\r\n    optional trailer fields (kept in `trailers()`)
/// \r\n
/// ```
///
/// Errors are `io::Error`s: `InvalidData` for a bad size line or a missing
/// CRLF, `UnexpectedEof` when the peer closes before the last chunk.
#[derive(Debug)]
pub struct ChunkedReader<R> {
    inner: R,
    state: ChunkState,
    trailers: Headers,
}

impl<R: BufRead> ChunkedReader<R> {
    pub fn new(inner: R) -> ChunkedReader<R> {
        ChunkedReader {
            inner,
            state: ChunkState::Size,
            trailers: Headers::new(),
        }
    }

    /// The trailer fields after the last chunk (§7.1.2); empty until the body
    /// has been read to its end, and usually empty after.
    pub fn trailers(&self) -> &Headers {
        &self.trailers
    }

    /// True once the last chunk and the trailers have been read.
    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    fn read_size_line(&mut self) -> io::Result<u64> {
        let line = read_line(&mut self.inner, MAX_CHUNK_LINE)?;
        parse_chunk_size(&line)
    }

    fn read_data_end(&mut self) -> io::Result<()> {
        // The line after the data must be empty: just its CRLF.
        match read_line(&mut self.inner, 0) {
            Err(err) if err.kind() == ErrorKind::InvalidData => {
                Err(invalid_data("chunk data is not followed by CRLF"))
            }
            other => other.map(drop),
        }
    }

    fn read_trailers(&mut self) -> io::Result<()> {
        let block =
            read_block(&mut self.inner, MAX_HEAD_BYTES, false).map_err(|err| match err {
                HeadError::Closed | HeadError::Truncated { .. } => {
                    unexpected_eof("peer closed the connection in the chunked trailer section")
                }
                other => io::Error::from(other),
            })?;
        let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
        match httparse::parse_headers(&block, &mut fields) {
            Ok(httparse::Status::Complete((_, fields))) => {
                self.trailers = copy_headers(fields);
                Ok(())
            }
            Ok(httparse::Status::Partial) => Err(invalid_data("incomplete trailer section")),
            Err(err) => Err(io::Error::from(parse_error(err))),
        }
    }
}

impl<R: BufRead> Read for ChunkedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.state {
                ChunkState::Done => return Ok(0),
                ChunkState::Size => match self.read_size_line()? {
                    0 => {
                        self.read_trailers()?;
                        self.state = ChunkState::Done;
                    }
                    size => self.state = ChunkState::Data(size),
                },
                ChunkState::Data(remaining) => {
                    if buf.is_empty() {
                        return Ok(0);
                    }
                    let wanted = buf
                        .len()
                        .min(usize::try_from(remaining).unwrap_or(usize::MAX));
                    let n = self.inner.read(&mut buf[..wanted])?;
                    if n == 0 {
                        return Err(unexpected_eof("peer closed the connection inside a chunk"));
                    }
                    self.state = match remaining - n as u64 {
                        0 => ChunkState::DataEnd,
                        left => ChunkState::Data(left),
                    };
                    return Ok(n);
                }
                ChunkState::DataEnd => {
                    self.read_data_end()?;
                    self.state = ChunkState::Size;
                }
            }
        }
    }
}

/// Reads one line of at most `max` bytes (not counting its CRLF or LF) and
/// returns it without the line ending.
fn read_line<R: BufRead + ?Sized>(reader: &mut R, max: usize) -> io::Result<Vec<u8>> {
    let mut line = Vec::new();
    loop {
        let available = match reader.fill_buf() {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        if available.is_empty() {
            return Err(unexpected_eof(
                "peer closed the connection in a chunk-size line",
            ));
        }
        let (taken, found_end) = match available.iter().position(|&b| b == b'\n') {
            Some(newline) => (newline + 1, true),
            None => (available.len(), false),
        };
        line.extend_from_slice(&available[..taken]);
        reader.consume(taken);
        if found_end {
            line.pop(); // the LF
            if line.last() == Some(&b'\r') {
                line.pop();
            }
        }
        // +1: a CR whose LF has not arrived yet is still allowed.
        if line.len() > max + usize::from(!found_end) {
            return Err(invalid_data("chunk-size line too long"));
        }
        if found_end {
            return Ok(line);
        }
    }
}

/// `chunk-size [ chunk-ext ]`: hex digits, then optionally whitespace and
/// `;name=value` extensions, which mean nothing to us and are ignored.
fn parse_chunk_size(line: &[u8]) -> io::Result<u64> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 {
        return Err(invalid_data("chunk size is not a hex number"));
    }
    let rest = trim_ows(&line[digits..]);
    if !(rest.is_empty() || rest.starts_with(b";")) {
        return Err(invalid_data("chunk size is not a hex number"));
    }
    line[..digits]
        .iter()
        .try_fold(0u64, |size, &d| {
            let digit = char::from(d)
                .to_digit(16)
                .expect("checked to be a hex digit");
            size.checked_mul(16)?.checked_add(u64::from(digit))
        })
        .ok_or_else(|| invalid_data("chunk size does not fit in 64 bits"))
}

fn invalid_data(what: &str) -> io::Error {
    io::Error::new(ErrorKind::InvalidData, what.to_string())
}

fn unexpected_eof(what: &str) -> io::Error {
    io::Error::new(ErrorKind::UnexpectedEof, what.to_string())
}

// ---------------------------------------------------------------------------
// Writing a chunked body
// ---------------------------------------------------------------------------

/// Encodes a body in the chunked coding, for a sender that does not know
/// the length in advance, or a proxy that re-frames a body. Each `write` is
/// one chunk, sent with one `write_all`; wrap the stream in a `BufWriter`
/// if you write many small pieces. Call [`finish`](Self::finish) at the end,
/// or the peer waits for more.
#[derive(Debug)]
pub struct ChunkedWriter<W: Write> {
    inner: W,
}

impl<W: Write> ChunkedWriter<W> {
    pub fn new(inner: W) -> ChunkedWriter<W> {
        ChunkedWriter { inner }
    }

    /// Sends `data` as one chunk: its size in hex, CRLF, the data, CRLF.
    /// Empty data sends nothing, since an empty chunk would end the body.
    pub fn write_chunk(&mut self, data: &[u8]) -> io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        let mut chunk = Vec::with_capacity(data.len() + 20);
        chunk.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
        chunk.extend_from_slice(data);
        chunk.extend_from_slice(b"\r\n");
        self.inner.write_all(&chunk)
    }

    /// Sends the last chunk (`0`) and an empty trailer section; returns the
    /// inner writer.
    pub fn finish(self) -> io::Result<W> {
        self.finish_with_trailers(&Headers::new())
    }

    /// Sends the last chunk, then `trailers` as trailer fields (§7.1.2).
    pub fn finish_with_trailers(mut self, trailers: &Headers) -> io::Result<W> {
        let mut end = b"0\r\n".to_vec();
        for field in trailers {
            end.extend_from_slice(field.name.as_bytes());
            end.extend_from_slice(b": ");
            end.extend_from_slice(&field.value);
            end.extend_from_slice(b"\r\n");
        }
        end.extend_from_slice(b"\r\n");
        self.inner.write_all(&end)?;
        self.inner.flush()?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for ChunkedWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_chunk(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

// ---------------------------------------------------------------------------
// http:// URLs
// ---------------------------------------------------------------------------

/// An `http://host[:port][/path][?query]` URL (RFC 9110 §4.2.1), as given to
/// `http_get` or sent to a proxy in absolute-form (RFC 9112 §3.2.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    /// A name or an IP address; an IPv6 address without its brackets.
    pub host: String,
    /// 80 unless the URL says otherwise.
    pub port: u16,
    /// What goes in an origin-form request line: starts with `/`, never
    /// has a `#fragment` (fragments are not sent, RFC 9110 §4.2.5).
    pub path_and_query: String,
}

/// Why text is not an `http://` URL. The text quotes the bad part, so a
/// server should answer with a fixed message instead of echoing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlError {
    /// No `scheme://` at all, e.g. an origin-form `/path`.
    NotAbsolute,
    /// `https://`, `ftp://`... (a proxy answers 501).
    UnsupportedScheme(String),
    MissingHost,
    BadHost(String),
    BadPort(String),
    /// `user:password@host`, which HTTP URLs must not carry (RFC 9110 §4.2.4).
    UserInfo,
    /// A space, control or non-ASCII character: percent-encode it.
    BadCharacter,
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UrlError::NotAbsolute => write!(f, "url must start with http://"),
            UrlError::UnsupportedScheme(scheme) => {
                write!(
                    f,
                    "unsupported scheme '{scheme}' (only http:// is supported)"
                )
            }
            UrlError::MissingHost => write!(f, "url has no host"),
            UrlError::BadHost(host) => write!(f, "invalid host '{host}'"),
            UrlError::BadPort(port) => write!(f, "invalid port '{port}'"),
            UrlError::UserInfo => write!(f, "url must not contain user:password@"),
            UrlError::BadCharacter => write!(
                f,
                "url contains a space, control or non-ASCII character (percent-encode it)"
            ),
        }
    }
}

impl std::error::Error for UrlError {}

impl HttpUrl {
    pub fn parse(text: &str) -> Result<HttpUrl, UrlError> {
        if !text.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(UrlError::BadCharacter);
        }
        let (scheme, rest) = text.split_once("://").ok_or(UrlError::NotAbsolute)?;
        if !scheme.eq_ignore_ascii_case("http") {
            return Err(UrlError::UnsupportedScheme(scheme.to_string()));
        }
        let rest = rest.split('#').next().unwrap_or_default();
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path_and_query) = rest.split_at(authority_end);
        if authority.contains('@') {
            return Err(UrlError::UserInfo);
        }
        let (host, port) = split_host_port(authority)?;
        let path_and_query = match path_and_query {
            "" => "/".to_string(),
            query if query.starts_with('?') => format!("/{query}"),
            path => path.to_string(),
        };
        Ok(HttpUrl {
            host,
            port,
            path_and_query,
        })
    }

    /// `host` or `host:port` (port left out when it is 80), the value for a
    /// `Host` field (RFC 9110 §7.2); IPv6 addresses get their brackets back.
    pub fn authority(&self) -> String {
        let host = match self.host.contains(':') {
            true => format!("[{}]", self.host),
            false => self.host.clone(),
        };
        match self.port {
            80 => host,
            port => format!("{host}:{port}"),
        }
    }
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`; an empty port means 80.
fn split_host_port(authority: &str) -> Result<(String, u16), UrlError> {
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or_else(|| UrlError::BadHost(authority.to_string()))?;
        let port = match after {
            "" => None,
            after => Some(
                after
                    .strip_prefix(':')
                    .ok_or_else(|| UrlError::BadHost(authority.to_string()))?,
            ),
        };
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(UrlError::BadHost(host.to_string()));
        }
        (host, port)
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(UrlError::MissingHost);
    }
    if host.contains(['[', ']', ':', '\\']) && !authority.starts_with('[') {
        return Err(UrlError::BadHost(host.to_string()));
    }
    let port = match port {
        None | Some("") => 80,
        Some(text) => match text.parse::<u16>() {
            Ok(port) if port != 0 && text.bytes().all(|b| b.is_ascii_digit()) => port,
            _ => return Err(UrlError::BadPort(text.to_string())),
        },
    };
    Ok((host.to_string(), port))
}

impl FromStr for HttpUrl {
    type Err = UrlError;
    fn from_str(text: &str) -> Result<HttpUrl, UrlError> {
        HttpUrl::parse(text)
    }
}

impl fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}{}", self.authority(), self.path_and_query)
    }
}

#[cfg(test)]
mod tests;
