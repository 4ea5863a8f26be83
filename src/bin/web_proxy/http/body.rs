//! Reading a body (Content-Length, chunked, until close) and writing the
//! chunked coding (RFC 9112 §6-§7).

use std::io::{self, BufRead, ErrorKind, Read, Write};

use super::framing::BodyLength;
use super::head::{HeadError, append_fields, copy_headers, parse_error, read_block};
use super::headers::{Headers, trim_ows};
use super::{MAX_CHUNK_LINE, MAX_HEAD_BYTES, MAX_HEADERS};

/// A message body as a [`Read`]: bytes come out as the peer sent them, minus
/// the chunked framing. Reading stops at the body's end, so what follows (the
/// next pipelined message) stays in the inner reader. Pass `&mut reader` to
/// keep using it afterwards.
#[derive(Debug)]
pub enum BodyReader<R> {
    Empty,
    Length(LengthReader<R>),
    Chunked(ChunkedReader<R>),
    UntilClose(R),
}

impl<R: BufRead> BodyReader<R> {
    pub fn new(reader: R, length: BodyLength) -> BodyReader<R> {
        match length {
            BodyLength::Empty => BodyReader::Empty,
            BodyLength::Length(n) => BodyReader::Length(LengthReader::new(reader, n)),
            BodyLength::Chunked => BodyReader::Chunked(ChunkedReader::new(reader)),
            BodyLength::UntilClose => BodyReader::UntilClose(reader),
        }
    }
}

impl<R: BufRead> Read for BodyReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            BodyReader::Empty => Ok(0),
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
    #[cfg(test)]
    pub fn trailers(&self) -> &Headers {
        &self.trailers
    }

    /// True once the last chunk and the trailers have been read.
    #[cfg(test)]
    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    fn read_size_line(&mut self) -> io::Result<u64> {
        let line = read_crlf_line(&mut self.inner, MAX_CHUNK_LINE, "a chunk-size line")?;
        parse_chunk_size(&line)
    }

    fn read_data_end(&mut self) -> io::Result<()> {
        // The line after the data must be empty: just its CRLF.
        match read_crlf_line(&mut self.inner, 0, "the CRLF after chunk data") {
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
        if buf.is_empty() {
            return Ok(0);
        }
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

/// Reads one line of the chunked framing, at most `max` bytes before its
/// CRLF, and returns it without the CRLF. Unlike in a head, a bare LF is
/// refused here: two parsers that disagree about where a chunk line ends
/// disagree about where the body ends, which is request smuggling again.
fn read_crlf_line<R: BufRead + ?Sized>(
    reader: &mut R,
    max: usize,
    what: &str,
) -> io::Result<Vec<u8>> {
    let mut line = Vec::new();
    loop {
        let available = match reader.fill_buf() {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        if available.is_empty() {
            return Err(unexpected_eof(&format!(
                "peer closed the connection in {what}"
            )));
        }
        let (taken, found_lf) = match available.iter().position(|&b| b == b'\n') {
            Some(newline) => (newline + 1, true),
            None => (available.len(), false),
        };
        line.extend_from_slice(&available[..taken]);
        reader.consume(taken);
        if found_lf {
            return match line.strip_suffix(b"\r\n") {
                Some(content) if content.len() <= max => Ok(content.to_vec()),
                Some(_) => Err(invalid_data(&format!("{what} is too long"))),
                None => Err(invalid_data(&format!("{what} ends in a bare LF"))),
            };
        }
        // + 1: the line's CR may be here with its LF still to come.
        if line.len() > max + 1 {
            return Err(invalid_data(&format!("{what} is too long")));
        }
    }
}

/// `chunk-size [ chunk-ext ]`: hex digits, then optionally whitespace and
/// `;name=value` extensions, which mean nothing to us and are ignored (but
/// may not hide control characters such as a bare CR).
fn parse_chunk_size(line: &[u8]) -> io::Result<u64> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 {
        return Err(invalid_data("chunk size is not a hex number"));
    }
    let extensions = trim_ows(&line[digits..]);
    if !(extensions.is_empty() || extensions.starts_with(b";")) {
        return Err(invalid_data("chunk size is not a hex number"));
    }
    if extensions
        .iter()
        .any(|&b| b.is_ascii_control() && b != b'\t')
    {
        return Err(invalid_data("control character in a chunk extension"));
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
        append_fields(&mut end, trailers);
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
