//! Opening a TCP connection to a server that may have several addresses.

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::Context;

use crate::explain::{Proto, Step};

/// Connects to the first of `addrs` that accepts, each attempt bounded by
/// `timeout`: a host name can resolve to several addresses (`localhost` to
/// 127.0.0.1 and ::1), and a server may listen on only one of them. The
/// error, if every address fails, is the first address's: the one
/// [`crate::cli::resolve`] put first (IPv4), which the lab servers listen on.
pub fn tcp(addrs: &[SocketAddr], timeout: Duration) -> anyhow::Result<TcpStream> {
    let mut first_error = None;
    for &addr in addrs {
        // connect_timeout sends the SYN and waits up to `timeout` for the SYN-ACK.
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(stream) => return Ok(stream),
            Err(err) => {
                let step = Step::Connect {
                    proto: Proto::Tcp,
                    addr,
                };
                first_error.get_or_insert(anyhow::Error::new(err).context(step));
            }
        }
    }
    Err(first_error.unwrap_or_else(|| anyhow::anyhow!("no address to connect to")))
}

/// Reads everything until the peer's FIN, bounded by the stream's read
/// timeout. A reset that comes *after* some data is not an error here: it is
/// how a server that closes with unread data ends (the kernel answers the
/// close with a RST instead of a FIN), and the data before it is the reply.
/// Returns the bytes and whether the connection ended with a reset.
pub fn read_reply(stream: &mut TcpStream, peer: SocketAddr) -> anyhow::Result<(Vec<u8>, bool)> {
    use std::io::{ErrorKind, Read};
    let mut reply = Vec::new();
    match stream.read_to_end(&mut reply) {
        Ok(_) => Ok((reply, false)),
        Err(err) if err.kind() == ErrorKind::ConnectionReset && !reply.is_empty() => {
            Ok((reply, true))
        }
        Err(err) => Err(err).context(Step::Receive {
            proto: Proto::Tcp,
            peer,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn tries_each_address_until_one_accepts() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let good = listener.local_addr().expect("address");
        let closed = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port");
        let stream = tcp(&[closed, good], Duration::from_secs(2)).expect("second address accepts");
        assert_eq!(stream.peer_addr().expect("peer"), good);
    }

    #[test]
    fn when_all_fail_the_first_address_is_named() {
        let closed = |_| {
            TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("free port")
        };
        let [first, second]: [SocketAddr; 2] = [0, 1].map(closed);
        let err = tcp(&[first, second], Duration::from_secs(2)).expect_err("nothing listens");
        assert!(
            format!("{err:#}").contains(&format!("to {first}:")),
            "{err:#}"
        );
    }

    #[test]
    fn the_error_names_the_address_and_the_rst() {
        let closed = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port");
        let err = tcp(&[closed], Duration::from_secs(2)).expect_err("nothing listens");
        assert!(format!("{err:#}").contains(&format!("failed to connect TCP socket to {closed}")));
        assert!(
            crate::explain::hint_for(&err)
                .expect("hint")
                .contains("RST")
        );
    }
}
