//! HTTP/1.1 messages on a byte stream: heads, body framing, chunked coding.
//!
//! TCP delivers a byte stream, not messages, so an HTTP peer has to find the
//! message boundaries itself (RFC 9112). Every message is a *head* (a start
//! line and header fields, ended by an empty line) and then maybe a *body*,
//! whose length the head announces in one of three ways (§6.3): a
//! `Content-Length`, the `chunked` transfer coding, or (responses only) "until
//! the server closes the connection". A `read()` can return any part of
//! this: half a head, a head and the start of its body, two pipelined
//! requests. So heads are read from a [`BufRead`](std::io::BufRead), which keeps whatever came
//! after the empty line for the body reader or the next message.
//!
//! ```ignore
//! use std::io::{BufReader, Read, Write};
//! use std::net::TcpStream;
//! use crate::http::{BodyReader, RequestHead, ResponseHead};
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
//! At a glance:
//! - [`RequestHead`] / [`ResponseHead`]: `read_from` a `BufRead`, `parse`
//!   bytes from [`read_head`], `write_to` / `to_bytes` in wire form,
//!   `body_length` (RFC 9112 §6.3), `keep_alive` (§9.3).
//! - [`Headers`]: ordered fields with case-insensitive `get`, `get_all`,
//!   `remove`, `append`, `set`, and `list` / `has_token` for
//!   comma-separated values.
//! - [`HeadError`] and [`FramingError`]: what went wrong, and which status
//!   a server answers it with.
//! - [`BodyReader`] ([`LengthReader`], [`ChunkedReader`]): a body as a
//!   `Read`; [`ChunkedWriter`]: the chunked coding as a `Write`.
//! - [`HttpUrl`] and [`parse_authority`]: `http://host:port/path` and
//!   `host:port`.
//!
//! One file per part, under `src/bin/web_proxy/http/`: `headers.rs`, `head.rs` (reading and writing heads),
//! `framing.rs` (how long a body is), `body.rs` (reading and writing
//! bodies), `url.rs`.
//!
//! Parsing the start line and fields is done by the `httparse` crate; reading
//! across partial reads, the limits, the framing rules and the chunked coding
//! are written out here, because they are what the labs are about.

mod body;
mod framing;
mod head;
mod headers;
mod url;

pub use body::{BodyReader, ChunkedWriter};
pub use framing::BodyLength;
pub use head::{HeadError, RequestHead, ResponseHead, Version};
// Used by the tests (the unit tests in tests.rs, tests/properties.rs), not by
// the proxy itself.
#[cfg(test)]
pub use body::{ChunkedReader, LengthReader};
#[cfg(test)]
pub use framing::FramingError;
#[cfg(test)]
pub use head::read_head;
pub use headers::{Header, Headers};
pub use url::{HttpUrl, UrlError, parse_authority};

/// The largest head accepted, start line and fields and the empty line.
/// Bigger heads get `431 Request Header Fields Too Large` (RFC 6585 §5).
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// The most header fields accepted in one head (also 431).
pub const MAX_HEADERS: usize = 100;

/// The longest chunk-size line accepted (the size in hex and any chunk
/// extensions), so a peer cannot make us buffer an endless line.
pub const MAX_CHUNK_LINE: usize = 4096;
