//! The time service protocol (labs/time-protocol.md): a Diffie-Hellman key
//! exchange in clear text lines, then length-prefixed frames whose payload
//! bytes are Caesar-shifted by the agreed key.
//!
//! Used by time_server, time_client, crack_caesar, loadgen and check. A toy
//! on purpose: with p = 257 there are at most 256 keys, and g = 11 reaches
//! only 64 of them, so a capture gives everything away.

use std::fmt;
use std::io::{self, BufRead, Read, Write};

use crate::printable::quoted;
use crate::random::Rng;

/// The Diffie-Hellman prime `p` and generator `g`.
pub const P: u32 = 257;
pub const G: u32 = 11;
/// The longest frame payload either side accepts, in bytes.
pub const MAX_FRAME: usize = 1024;
/// The longest handshake line either side reads, in bytes.
pub const MAX_LINE: u64 = 256;

/// `base^exp mod m` by square-and-multiply. Every intermediate value is
/// below `m * m`, which fits a u32 for m = 257.
pub fn power_mod(base: u32, exp: u32, m: u32) -> u32 {
    let (mut result, mut base, mut exp) = (1 % m, base % m, exp);
    while exp > 0 {
        if exp & 1 == 1 {
            result = result * base % m;
        }
        base = base * base % m;
        exp >>= 1;
    }
    result
}

/// One side's Diffie-Hellman numbers: a secret private key and the public
/// key `g^private mod p` that is sent in the clear.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyPair {
    pub private: u32,
    pub public: u32,
}

impl KeyPair {
    pub fn from_private(private: u32) -> KeyPair {
        let public = power_mod(G, private, P);
        KeyPair { private, public }
    }

    /// A fresh key pair with a private key from 2 to 255. 64, 128 and 192 are kept on purpose
    /// (labs/time-protocol.md, "weak private keys"): 11 has order 64 mod 257, so they give the
    /// public key 1 and the shared secret 1 whatever the peer picks. Real Diffie-Hellman refuses
    /// such keys (RFC 8446 §4.2.8.1: 1 < Y < p-1).
    pub fn generate(rng: &mut Rng) -> KeyPair {
        KeyPair::from_private(rng.in_range(2, 255) as u32)
    }

    /// The shared secret: the peer's public key to the power of our private
    /// key, mod p. Both sides get the same number, `g^(ab) mod p`.
    pub fn shared_secret(&self, their_public: u32) -> u32 {
        power_mod(their_public, self.private, P)
    }
}

/// The Caesar key for a shared secret: the secret mod 256. A secret of 256
/// gives key 0, which would send plain text: both sides then exchange again.
pub fn caesar_key(secret: u32) -> u8 {
    (secret % 256) as u8
}

/// Shifts every byte up by `key`, wrapping at 256.
pub fn encrypt(key: u8, bytes: &[u8]) -> Vec<u8> {
    bytes.iter().map(|b| b.wrapping_add(key)).collect()
}

/// Shifts every byte down by `key`: the inverse of [`encrypt`].
pub fn decrypt(key: u8, bytes: &[u8]) -> Vec<u8> {
    bytes.iter().map(|b| b.wrapping_sub(key)).collect()
}

/// A handshake line: `KEY <public key>` or `PLAIN`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hello {
    Key(u32),
    Plain,
}

impl Hello {
    /// Parses one handshake line (without or with its `\n` / `\r\n`).
    pub fn parse(line: &str) -> Result<Hello, String> {
        let line = line.trim_end_matches(['\r', '\n']);
        if line == "PLAIN" {
            return Ok(Hello::Plain);
        }
        let Some(number) = line.strip_prefix("KEY ") else {
            let got = quoted(line.as_bytes(), 40);
            return Err(format!("expected 'KEY <public key>' or 'PLAIN', got {got}"));
        };
        // Digits only: Rust's parse would also take "+5", which the
        // protocol (decimal text) does not allow.
        let digits = number.bytes().all(|b| b.is_ascii_digit());
        match number.parse::<u32>() {
            Ok(key @ 1..=256) if digits => Ok(Hello::Key(key)),
            _ => Err(format!(
                "public key '{}' is not a number from 1 to 256",
                quoted(number.as_bytes(), 20).trim_matches('"')
            )),
        }
    }
}

impl fmt::Display for Hello {
    /// The line as sent, without its `\n`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Hello::Key(public) => write!(f, "KEY {public}"),
            Hello::Plain => f.write_str("PLAIN"),
        }
    }
}

/// Reads one handshake line of at most [`MAX_LINE`] bytes; `Ok(None)` if the peer closed first.
pub fn read_line(reader: &mut impl BufRead) -> io::Result<Option<String>> {
    let mut line = Vec::new();
    // take() bounds the read: a peer that never sends '\n' cannot make us
    // buffer without limit.
    let read = reader.take(MAX_LINE).read_until(b'\n', &mut line)?;
    Ok((read > 0).then(|| String::from_utf8_lossy(&line).into_owned()))
}

/// A request the service answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    Time,
    Date,
    Temp,
}

impl Request {
    /// The request's payload on the wire.
    pub fn as_str(&self) -> &'static str {
        match self {
            Request::Time => "TIME",
            Request::Date => "DATE",
            Request::Temp => "TEMP",
        }
    }

    /// The request a payload names, if any (exact, upper case).
    pub fn parse(payload: &[u8]) -> Option<Request> {
        [Request::Time, Request::Date, Request::Temp]
            .into_iter()
            .find(|request| request.as_str().as_bytes() == payload)
    }
}

/// Builds one frame: a 2-byte big-endian length, then the payload shifted
/// by `key` (key 0: as it is). Panics over 65535 bytes, which no request or
/// answer is (they are at most [`MAX_FRAME`]).
pub fn encode_frame(key: u8, payload: &[u8]) -> Vec<u8> {
    let len = u16::try_from(payload.len()).expect("frames are built from short payloads");
    [&len.to_be_bytes()[..], &encrypt(key, payload)].concat()
}

/// Sends one frame in one `write_all()`, so header and payload leave in the
/// same segment (no Nagle delay between them).
pub fn write_frame(writer: &mut impl Write, key: u8, payload: &[u8]) -> io::Result<()> {
    writer.write_all(&encode_frame(key, payload))?;
    writer.flush()
}

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {0} bytes is longer than {MAX_FRAME}")]
    TooLong(usize),
    #[error(
        "the peer closed the connection in the middle of a frame \
         ({got} of {expected} bytes received)"
    )]
    Truncated { expected: usize, got: usize },
    /// The socket failed (reset, timeout, ...). Not a source(): the message already is the OS
    /// error, and `{:#}` would repeat it.
    #[error("{0}")]
    Io(io::Error),
}

/// Reads one frame and undoes the shift; `Ok(None)` if the peer closed the
/// connection between frames (the normal end of a session). TCP is a byte
/// stream, so a frame can arrive in pieces (or with the next one stuck to
/// it): this reads until the whole header, then the whole payload, is in,
/// and never reads past the frame.
pub fn read_frame(reader: &mut impl Read, key: u8) -> Result<Option<Vec<u8>>, FrameError> {
    let mut read = |n, buf: &mut Vec<u8>| reader.take(n).read_to_end(buf).map_err(FrameError::Io);
    let mut header = Vec::new();
    match read(2, &mut header)? {
        0 => return Ok(None),
        2 => {}
        got => return Err(FrameError::Truncated { expected: 2, got }),
    }
    let len = usize::from(u16::from_be_bytes([header[0], header[1]]));
    if len > MAX_FRAME {
        return Err(FrameError::TooLong(len));
    }
    let mut payload = Vec::with_capacity(len);
    match read(len as u64, &mut payload)? {
        got if got == len => Ok(Some(decrypt(key, &payload))),
        got => Err(FrameError::Truncated {
            expected: 2 + len,
            got: 2 + got,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// A reader that hands out at most `chunk` bytes per read(), the way a
    /// TCP socket may.
    struct Trickle<'a> {
        data: &'a [u8],
        chunk: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.chunk.min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    #[test]
    fn both_sides_agree_on_the_secret_for_every_pair_of_private_keys() {
        for a in 2..=255 {
            for b in 2..=255 {
                let (client, server) = (KeyPair::from_private(a), KeyPair::from_private(b));
                assert_eq!(
                    client.shared_secret(server.public),
                    server.shared_secret(client.public),
                    "a={a} b={b}"
                );
            }
        }
    }

    #[test]
    fn eleven_generates_only_64_values_mod_257() {
        let publics: BTreeSet<u32> = (0..256).map(|a| power_mod(G, a, P)).collect();
        assert_eq!(publics.len(), 64);
        let secrets: BTreeSet<u32> = (2..=255)
            .flat_map(|a| (2..=255).map(move |b| (a, b)))
            .map(|(a, b)| KeyPair::from_private(a).shared_secret(KeyPair::from_private(b).public))
            .collect();
        assert_eq!(secrets.len(), 64);
        // 256 is among them: its key is 0, which both sides must refuse.
        assert!(secrets.contains(&256));
        assert_eq!(caesar_key(256), 0);
    }

    #[test]
    fn private_keys_64_128_192_give_public_key_1_and_secret_1() {
        let weak: Vec<u32> = (2..=255)
            .filter(|&a| KeyPair::from_private(a).public == 1)
            .collect();
        assert_eq!(weak, [64, 128, 192]);
        for a in weak {
            for b in 2..=255 {
                let (mine, theirs) = (KeyPair::from_private(a), KeyPair::from_private(b));
                assert_eq!(mine.shared_secret(theirs.public), 1, "a={a} b={b}");
                assert_eq!(theirs.shared_secret(mine.public), 1, "a={a} b={b}");
            }
        }
        // They stay in the protocol: generate() can pick them.
        let mut rng = Rng::seeded(7);
        assert!((0..10_000).any(|_| KeyPair::generate(&mut rng).public == 1));
    }

    #[test]
    fn power_mod_matches_repeated_multiplication() {
        for exp in 0..300 {
            let slow = (0..exp).fold(1u32, |acc, _| acc * G % P);
            assert_eq!(power_mod(G, exp, P), slow, "exp={exp}");
        }
        assert_eq!(KeyPair::from_private(7).public, 146);
        assert_eq!(KeyPair::from_private(200).shared_secret(146), 253);
    }

    #[test]
    fn generated_private_keys_stay_in_range() {
        let mut rng = Rng::seeded(1);
        for _ in 0..1000 {
            let pair = KeyPair::generate(&mut rng);
            assert!((2..=255).contains(&pair.private));
            assert!((1..=256).contains(&pair.public));
        }
    }

    #[test]
    fn caesar_round_trips_every_byte_for_every_key() {
        let all: Vec<u8> = (0..=255).collect();
        for key in 0..=255u8 {
            let sent = encrypt(key, &all);
            assert_eq!(decrypt(key, &sent), all, "key {key}");
            if key != 0 {
                assert_ne!(sent, all, "key {key} must change every byte");
            }
        }
        // The seed's letters-only Caesar gives LIPPSASVPH; shifting bytes
        // moves W past Z to '['.
        assert_eq!(encrypt(4, b"HELLOWORLD"), b"LIPPS[SVPH");
        assert_eq!(encrypt(3, b"\x07"), b"\n");
    }

    #[test]
    fn handshake_lines() {
        assert_eq!(Hello::parse("KEY 97\n"), Ok(Hello::Key(97)));
        assert_eq!(Hello::parse("KEY 256\r\n"), Ok(Hello::Key(256)));
        assert_eq!(Hello::parse("PLAIN\n"), Ok(Hello::Plain));
        assert_eq!(Hello::Key(97).to_string(), "KEY 97");
        for bad in [
            "KEY 0",
            "KEY 257",
            "KEY -1",
            "KEY abc",
            "KEY ",
            "KEY 99999999999",
            "KEY +5",
            "KEY  5",
        ] {
            let err = Hello::parse(bad).expect_err(bad);
            assert!(
                err.contains("is not a number from 1 to 256"),
                "{bad}: {err}"
            );
        }
        for bad in ["HELLO", "key 5", "", "\u{0}\u{ff}"] {
            let err = Hello::parse(bad).expect_err(bad);
            assert!(
                err.starts_with("expected 'KEY <public key>' or 'PLAIN'"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn long_lines_are_cut_at_max_line() {
        let long = vec![b'x'; 1000];
        let line = read_line(&mut &long[..]).expect("read").expect("a line");
        assert_eq!(line.len(), MAX_LINE as usize);
        assert_eq!(read_line(&mut &b""[..]).expect("read"), None);
    }

    #[test]
    fn frames_survive_being_split_across_reads() {
        let key = 200;
        let mut stream = encode_frame(key, b"TIME");
        stream.extend(encode_frame(key, "6.0 \u{b0}C (simulated)".as_bytes()));
        stream.extend(encode_frame(key, b""));
        for chunk in 1..=stream.len() {
            let mut reader = Trickle {
                data: &stream,
                chunk,
            };
            let first = read_frame(&mut reader, key)
                .expect("first")
                .expect("a frame");
            let second = read_frame(&mut reader, key)
                .expect("second")
                .expect("a frame");
            let third = read_frame(&mut reader, key)
                .expect("third")
                .expect("a frame");
            assert_eq!(first, b"TIME", "chunk {chunk}");
            assert_eq!(
                second,
                "6.0 \u{b0}C (simulated)".as_bytes(),
                "chunk {chunk}"
            );
            assert_eq!(third, b"", "chunk {chunk}");
            assert!(read_frame(&mut reader, key).expect("end").is_none());
        }
    }

    #[test]
    fn frame_header_is_big_endian_and_clear() {
        assert_eq!(encode_frame(1, b"AB"), [0, 2, b'B', b'C']);
        assert_eq!(encode_frame(0, &[0; 300])[..2], [1, 44]);
    }

    #[test]
    fn bad_frames_are_errors() {
        let too_long = [0xea, 0x60];
        assert!(matches!(
            read_frame(&mut &too_long[..], 0),
            Err(FrameError::TooLong(60000))
        ));
        let half_header = [0u8];
        assert!(matches!(
            read_frame(&mut &half_header[..], 0),
            Err(FrameError::Truncated {
                expected: 2,
                got: 1
            })
        ));
        let half_payload = [0u8, 4, b'T', b'I'];
        let err = read_frame(&mut &half_payload[..], 0).expect_err("truncated");
        assert_eq!(
            err.to_string(),
            "the peer closed the connection in the middle of a frame (4 of 6 bytes received)"
        );
    }

    #[test]
    fn requests() {
        assert_eq!(Request::parse(b"TIME"), Some(Request::Time));
        assert_eq!(Request::parse(b"DATE"), Some(Request::Date));
        assert_eq!(Request::parse(b"TEMP"), Some(Request::Temp));
        for bad in [&b"time"[..], b"TIME\n", b"", b"TEMPS"] {
            assert_eq!(Request::parse(bad), None);
        }
        assert_eq!(Request::Temp.as_str(), "TEMP");
    }
}
