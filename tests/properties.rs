//! Property tests (proptest) for the parsers a peer's bytes reach: the HTTP
//! head reader and body framing, the time-service frame decoder, and the
//! Diffie-Hellman + Caesar round trip.
//!
//! Two kinds of property:
//! - robustness: any bytes, split into reads of any sizes, give a value or a
//!   clean error, never a panic (a panic in a server thread is a dropped
//!   client, and in a library it is a crashed program);
//! - round trips: what the writing side produces, the reading side gives
//!   back unchanged, however TCP splits it.
//!
//! Case counts are modest so the file runs in seconds; proptest prints the
//! smallest failing input if a property breaks.

/// web_proxy's HTTP module, compiled into this test to fuzz its parsers.
#[path = "../src/bin/web_proxy/http/mod.rs"]
#[allow(dead_code, unused_imports)]
mod http;

use std::io::{self, BufReader, Read};

use http::{
    BodyLength, BodyReader, ChunkedReader, ChunkedWriter, HeadError, Headers, RequestHead,
    ResponseHead, read_head,
};
use proptest::prelude::*;
use socketlab::time_service::{
    FrameError, KeyPair, MAX_FRAME, P, caesar_key, decrypt, encrypt, read_frame, write_frame,
};

/// A reader that hands out its bytes in the given read sizes (cycled), the
/// way a TCP socket returns whatever has arrived, then EOF (the peer's FIN).
struct Splits {
    data: Vec<u8>,
    at: usize,
    sizes: Vec<usize>,
    turn: usize,
}

impl Splits {
    fn new(data: Vec<u8>, sizes: Vec<usize>) -> Splits {
        Splits {
            data,
            at: 0,
            sizes,
            turn: 0,
        }
    }

    /// As a `BufRead` with a tiny buffer, so `fill_buf` sees the splits too.
    fn buffered(data: Vec<u8>, sizes: Vec<usize>) -> BufReader<Splits> {
        BufReader::with_capacity(7, Splits::new(data, sizes))
    }
}

impl Read for Splits {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let size = self.sizes[self.turn % self.sizes.len()];
        self.turn += 1;
        let n = size.min(buf.len()).min(self.data.len() - self.at);
        buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// Read sizes from 1 byte to a few hundred.
fn read_sizes() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..300, 1..8)
}

/// Bytes that look enough like HTTP to get past the first check now and
/// then: pieces of real heads mixed with arbitrary bytes.
fn http_ish() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"GET / HTTP/1.1\r\n".to_vec()),
        Just(b"HTTP/1.1 200 OK\r\n".to_vec()),
        Just(b"HTTP/1.0 304 Not Modified\r\n".to_vec()),
        Just(b"Host: example.org\r\n".to_vec()),
        Just(b"Content-Length: 5\r\n".to_vec()),
        Just(b"Content-Length: 18446744073709551616\r\n".to_vec()),
        Just(b"Content-Length: 3, 3\r\n".to_vec()),
        Just(b"Transfer-Encoding: gzip, chunked\r\n".to_vec()),
        Just(b"Transfer-Encoding: chunked, chunked\r\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"5\r\nhello\r\n0\r\n\r\n".to_vec()),
        Just(b"ffffffffffffffffff\r\n".to_vec()),
        Just(b"1;ext=\"x\"\r\n".to_vec()),
        prop::collection::vec(any::<u8>(), 0..20),
    ];
    prop::collection::vec(piece, 0..12).prop_map(|pieces| pieces.concat())
}

/// Reads a body to the end, at most `limit` bytes, through `read`.
fn drain(mut body: impl Read, limit: usize) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 64];
    while out.len() < limit {
        match body.read(&mut buf)? {
            0 => break,
            n => out.extend_from_slice(&buf[..n]),
        }
    }
    Ok(out)
}

/// A header field name: an RFC 9110 token.
fn field_name() -> impl Strategy<Value = String> {
    "[A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]{0,15}"
}

/// A field value that survives the wire unchanged: visible ASCII and inner
/// spaces, no leading or trailing whitespace (RFC 9110 §5.5 strips it).
fn field_value() -> impl Strategy<Value = Vec<u8>> {
    "([!-~]([ !-~]{0,20}[!-~])?)?".prop_map(String::into_bytes)
}

fn headers() -> impl Strategy<Value = Headers> {
    prop::collection::vec((field_name(), field_value()), 0..8).prop_map(|fields| {
        let mut headers = Headers::new();
        for (name, value) in fields {
            headers.append(name, value);
        }
        headers
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// read_head over any bytes in any read sizes: a head, or one of the
    /// named errors; and the same answer however the bytes were split.
    #[test]
    fn read_head_never_panics_and_ignores_read_splits(
        bytes in prop_oneof![http_ish(), prop::collection::vec(any::<u8>(), 0..400)],
        sizes in read_sizes(),
    ) {
        let split = read_head(&mut Splits::buffered(bytes.clone(), sizes));
        let whole = read_head(&mut BufReader::new(&bytes[..]));
        match (&split, &whole) {
            (Ok(a), Ok(b)) => prop_assert_eq!(a, b),
            (Err(a), Err(b)) => prop_assert_eq!(a.to_string(), b.to_string()),
            _ => prop_assert!(false, "split {split:?} but whole {whole:?}"),
        }
        if let Ok(head) = split {
            // What read_head returns is one block ending in an empty line.
            prop_assert!(head.ends_with(b"\n\n") || head.ends_with(b"\n\r\n"));
            // Parsing it and asking for its framing gives a value or an error.
            if let Ok(request) = RequestHead::parse(&head) {
                let _ = request.body_length();
                let _ = request.keep_alive();
            }
            if let Ok(response) = ResponseHead::parse(&head) {
                for method in ["GET", "HEAD", "CONNECT"] {
                    let _ = response.body_length(method);
                }
                let _ = response.keep_alive();
            }
        }
    }

    /// The parsers take any bytes, not just what read_head hands them.
    #[test]
    fn head_parsers_never_panic(bytes in prop_oneof![http_ish(), prop::collection::vec(any::<u8>(), 0..200)]) {
        match RequestHead::parse(&bytes) {
            Ok(request) => { let _ = request.body_length(); }
            Err(err) => prop_assert!(matches!(err, HeadError::Malformed(_) | HeadError::TooManyHeaders), "{err:?}"),
        }
        match ResponseHead::parse(&bytes) {
            Ok(response) => { let _ = response.body_length("GET"); }
            Err(err) => prop_assert!(matches!(err, HeadError::Malformed(_) | HeadError::TooManyHeaders), "{err:?}"),
        }
    }

    /// Whatever body framing and whatever bytes follow the head, the body
    /// reader gives bytes or an io::Error, never a panic, and never more
    /// than a Content-Length announced.
    #[test]
    fn body_readers_never_panic(
        body in http_ish(),
        sizes in read_sizes(),
        length in prop_oneof![
            Just(BodyLength::Empty),
            Just(BodyLength::Chunked),
            Just(BodyLength::UntilClose),
            (0u64..600).prop_map(BodyLength::Length),
        ],
    ) {
        let reader = BodyReader::new(Splits::buffered(body, sizes), length);
        if let Ok(read) = drain(reader, 1 << 16) {
            match length {
                BodyLength::Empty => prop_assert!(read.is_empty()),
                BodyLength::Length(n) => prop_assert_eq!(read.len() as u64, n),
                _ => {}
            }
        }
    }

    /// A request head written with to_bytes parses back equal.
    #[test]
    fn a_request_head_round_trips(
        method in "[A-Z]{1,10}",
        target in "/[!-~]{0,30}",
        http10 in any::<bool>(),
        headers in headers(),
    ) {
        let mut head = RequestHead::new(&method, &target);
        if http10 {
            head.version = http::Version::Http10;
        }
        head.headers = headers;
        let wire = head.to_bytes();
        let read = read_head(&mut BufReader::new(&wire[..])).expect("a complete head");
        prop_assert_eq!(&read, &wire);
        prop_assert_eq!(RequestHead::parse(&read).expect("parses"), head);
    }

    /// A response head written with to_bytes parses back equal.
    #[test]
    fn a_response_head_round_trips(
        status in 100u16..1000,
        reason in "([!-~]([ !-~]{0,20}[!-~])?)?",
        headers in headers(),
    ) {
        let mut head = ResponseHead::new(status, &reason);
        head.headers = headers;
        let wire = head.to_bytes();
        prop_assert_eq!(ResponseHead::parse(&wire).expect("parses"), head);
    }

    /// ChunkedWriter's output, read back by ChunkedReader in any read
    /// sizes, is the data that was written, whatever the chunking; and the
    /// reader stops at the last chunk, leaving what follows unread.
    #[test]
    fn chunked_coding_round_trips(
        chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..10),
        sizes in read_sizes(),
    ) {
        let mut writer = ChunkedWriter::new(Vec::new());
        for chunk in &chunks {
            writer.write_chunk(chunk).expect("writing to a Vec");
        }
        let mut wire = writer.finish().expect("writing to a Vec");
        wire.extend_from_slice(b"NEXT");
        let mut stream = Splits::buffered(wire, sizes);
        let mut reader = ChunkedReader::new(&mut stream);
        let read = drain(&mut reader, 1 << 20).expect("a valid chunked body");
        prop_assert_eq!(read, chunks.concat());
        prop_assert!(reader.is_done());
        let mut rest = Vec::new();
        stream.read_to_end(&mut rest).expect("reading a Vec");
        prop_assert_eq!(rest, b"NEXT".to_vec());
    }

    /// read_frame over any bytes in any read sizes: a frame, the end, or a
    /// FrameError; never more than MAX_FRAME bytes.
    #[test]
    fn read_frame_never_panics(
        bytes in prop::collection::vec(any::<u8>(), 0..1500),
        sizes in read_sizes(),
        key in any::<u8>(),
    ) {
        let mut reader = Splits::new(bytes.clone(), sizes);
        let mut frames = 0;
        loop {
            match read_frame(&mut reader, key) {
                Ok(Some(payload)) => {
                    prop_assert!(payload.len() <= MAX_FRAME);
                    frames += 1;
                }
                Ok(None) => break,
                Err(FrameError::TooLong(len)) => {
                    prop_assert!(len > MAX_FRAME);
                    break;
                }
                Err(FrameError::Truncated { expected, got }) => {
                    prop_assert!(got < expected);
                    break;
                }
                Err(FrameError::Io(err)) => prop_assert!(false, "no I/O error from a Vec: {err}"),
            }
            prop_assert!(frames <= bytes.len() / 2, "a frame is at least 2 bytes");
        }
    }

    /// Frames written back to back come out one by one, unchanged, however
    /// the stream is split, and then the end of the stream.
    #[test]
    fn frames_round_trip(
        payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..=MAX_FRAME), 0..5),
        sizes in read_sizes(),
        key in any::<u8>(),
    ) {
        let mut wire = Vec::new();
        for payload in &payloads {
            write_frame(&mut wire, key, payload).expect("writing to a Vec");
        }
        let mut reader = Splits::new(wire, sizes);
        for payload in &payloads {
            let read = read_frame(&mut reader, key).expect("a valid frame");
            prop_assert_eq!(read.as_ref(), Some(payload));
        }
        prop_assert!(read_frame(&mut reader, key).expect("the end").is_none());
    }

    /// Any two private keys agree on the shared secret, and the Caesar key
    /// derived from it decrypts what it encrypted.
    #[test]
    fn diffie_hellman_and_caesar_round_trip(
        a in 1u32..P,
        b in 1u32..P,
        bytes in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        let (alice, bob) = (KeyPair::from_private(a), KeyPair::from_private(b));
        prop_assert!((1..P).contains(&alice.public));
        let secret = alice.shared_secret(bob.public);
        prop_assert_eq!(secret, bob.shared_secret(alice.public));
        let key = caesar_key(secret);
        prop_assert_eq!(decrypt(key, &encrypt(key, &bytes)), bytes);
    }

    /// encrypt and decrypt are inverses for every key, and key 0 is the
    /// identity (which is why a shared secret of 256 means exchanging again).
    #[test]
    fn caesar_round_trips_for_any_key(key in any::<u8>(), bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let sealed = encrypt(key, &bytes);
        prop_assert_eq!(sealed.len(), bytes.len());
        prop_assert_eq!(decrypt(key, &sealed), bytes.clone());
        prop_assert_eq!(encrypt(key, &decrypt(key, &bytes)), bytes.clone());
        if key == 0 {
            prop_assert_eq!(sealed, bytes);
        }
    }
}
