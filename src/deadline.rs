//! A deadline for a whole message, not for each `read()`. Used by
//! proxy_logger (a request head) and time_server (a handshake, a frame).
//!
//! A socket's read timeout (SO_RCVTIMEO) bounds one `read()` and starts
//! again with the next, so a client sending a byte at a time could stretch
//! it for ever. [`Timed`] sets it before each `read()` to the time left
//! until its deadline, and fails with `TimedOut` once that has passed.

use std::io::{self, ErrorKind, Read};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// A TCP stream whose reads must all be done by `deadline`. Put a
/// `BufReader` over it, and give each message its time with [`Timed::allow`].
pub struct Timed {
    pub stream: TcpStream,
    pub deadline: Instant,
}

impl Timed {
    /// From now on, reads must be done within `limit`.
    pub fn allow(&mut self, limit: Duration) {
        self.deadline = Instant::now() + limit;
    }
}

impl Read for Timed {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ErrorKind::TimedOut.into());
        }
        self.stream.set_read_timeout(Some(left))?;
        self.stream.read(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;

    /// A peer that sends a byte every 50 ms for 2 s never ends its line: a
    /// plain read timeout of 300 ms would be met by every byte, and the read
    /// would end at the peer's close; the deadline ends it with TimedOut.
    #[test]
    fn a_trickling_peer_cannot_stretch_the_deadline() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let addr = listener.local_addr().expect("local address");
        let trickler = std::thread::spawn(move || {
            let mut client = TcpStream::connect(addr).expect("connect");
            for _ in 0..40 {
                if client.write_all(b"x").is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        let (stream, _) = listener.accept().expect("accept");
        let deadline = Instant::now() + Duration::from_millis(300);
        let mut reader = BufReader::new(Timed { stream, deadline });
        let err = reader
            .read_line(&mut String::new())
            .expect_err("no line ends");
        assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
        drop(reader);
        trickler.join().expect("trickler thread");
    }
}
