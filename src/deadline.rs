//! Deadlines for a whole message, not a timeout for each call. Used by
//! proxy_logger, web_server and time_server ([`Timed`]: a request head, a
//! handshake line, a frame over TCP), and by udp_client, udp_send and loadgen
//! ([`recv_until`]: each reply over UDP, skipping late ones).
//!
//! A socket's receive timeout (`SO_RCVTIMEO`) bounds one `read()` or
//! `recvfrom()` and starts again with the next, so a peer that sends a byte
//! at a time, or keeps sending datagrams, could stretch it for ever. Here it
//! is set before each call to the time left until one deadline.

use std::io::{self, ErrorKind, Read};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use crate::explain::is_timeout;

/// A TCP stream whose reads fail with `TimedOut` past `deadline`. Put a `BufReader`
/// over it, and give each message its time with [`Timed::allow`] before reading it.
pub struct Timed<'a> {
    pub stream: &'a TcpStream,
    pub deadline: Instant,
}

impl Timed<'_> {
    /// From now on, reads must be done within `limit`.
    pub fn allow(&mut self, limit: Duration) {
        self.deadline = Instant::now() + limit;
    }
}

impl Read for Timed<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ErrorKind::TimedOut.into());
        }
        self.stream.set_read_timeout(Some(left))?;
        self.stream.read(buf)
    }
}

/// `recvfrom()` into `buf`, waiting no later than `deadline`: the datagram's
/// length and sender, or `None` once the deadline has passed with nothing.
/// Other errors are the OS's, such as ECONNREFUSED on a connected socket
/// (an ICMP port unreachable came back).
pub fn recv_until(
    socket: &UdpSocket,
    buf: &mut [u8],
    deadline: Instant,
) -> io::Result<Option<(usize, SocketAddr)>> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        socket.set_read_timeout(Some(left))?;
        match socket.recv_from(buf) {
            Ok(got) => return Ok(Some(got)),
            // EAGAIN (WSAETIMEDOUT on Windows): the timeout expired.
            Err(err) if is_timeout(&err) => return Ok(None),
            // A signal interrupted the wait; nothing was lost.
            Err(err) if err.kind() == ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        }
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
        let mut reader = BufReader::new(Timed {
            stream: &stream,
            deadline,
        });
        let err = reader
            .read_line(&mut String::new())
            .expect_err("no line ends");
        assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
        drop(reader);
        drop(stream); // closed: the trickler's next write fails, and it stops
        trickler.join().expect("trickler thread");
    }

    fn pair() -> (UdpSocket, UdpSocket) {
        let a = UdpSocket::bind("127.0.0.1:0").expect("bind a");
        let b = UdpSocket::bind("127.0.0.1:0").expect("bind b");
        (a, b)
    }

    #[test]
    fn a_datagram_before_the_deadline_comes_with_its_sender() {
        let (a, b) = pair();
        b.send_to(b"hello", a.local_addr().expect("addr"))
            .expect("send");
        let mut buf = [0u8; 16];
        let deadline = Instant::now() + Duration::from_secs(10);
        let got = recv_until(&a, &mut buf, deadline).expect("receive");
        assert_eq!(got, Some((5, b.local_addr().expect("addr"))));
        assert_eq!(&buf[..5], b"hello");
    }

    #[test]
    fn silence_until_the_deadline_is_none_and_a_past_deadline_waits_not() {
        let (a, _b) = pair();
        let mut buf = [0u8; 16];
        let deadline = Instant::now() + Duration::from_millis(50);
        assert_eq!(recv_until(&a, &mut buf, deadline).expect("no error"), None);
        assert!(Instant::now() >= deadline, "returned before the deadline");
        // A datagram waits in the buffer, but the deadline has passed already.
        let (c, d) = pair();
        d.send_to(b"late", c.local_addr().expect("addr"))
            .expect("send");
        assert_eq!(recv_until(&c, &mut buf, deadline).expect("no error"), None);
    }

    #[test]
    fn an_icmp_port_unreachable_on_a_connected_socket_is_an_error() {
        let (a, b) = pair();
        let gone = b.local_addr().expect("addr");
        drop(b);
        a.connect(gone).expect("connect");
        a.send(b"anyone?").expect("send");
        let deadline = Instant::now() + Duration::from_secs(10);
        let err = recv_until(&a, &mut [0u8; 16], deadline).expect_err("refused");
        assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
    }
}
