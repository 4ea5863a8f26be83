//! How long a body is: the message framing rules of RFC 9112 §6.3, and the
//! ambiguous cases that allow request smuggling (§11.2).

use std::fmt;

use super::head::{RequestHead, ResponseHead, Version};
use super::headers::{Headers, trim_ows};

impl RequestHead {
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
            Some(0) | None => Ok(BodyLength::Empty),
            Some(n) => Ok(BodyLength::Length(n)),
        }
    }
}

impl ResponseHead {
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
            return Ok(BodyLength::Empty);
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
            Some(0) => Ok(BodyLength::Empty),
            Some(n) => Ok(BodyLength::Length(n)),
            None => Ok(BodyLength::UntilClose),
        }
    }
}

/// How a message's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyLength {
    /// No body, or `Content-Length: 0`.
    Empty,
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
    /// `chunked` applied more than once (§6.1: a sender "MUST NOT").
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
