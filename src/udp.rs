//! Waiting for a UDP datagram until a deadline. Used by udp_client and
//! loadgen (each request waits for its reply and skips late ones) and
//! udp_send (every reply until --timeout). A loop that skips datagrams must
//! not give each `recvfrom()` the whole timeout again, or a peer that keeps
//! sending would keep it waiting forever: before each call, the receive
//! timeout (`SO_RCVTIMEO`) is set to what is left until one deadline.

use std::io::{self, ErrorKind};
use std::net::{SocketAddr, UdpSocket};
use std::time::Instant;

use crate::explain::is_timeout;

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
    use std::time::Duration;

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
