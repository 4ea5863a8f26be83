//! Opening a TCP connection to a server that may have several addresses.
//! Used by tcp_client, time_client, http_get, smtp_client, loadgen and web_proxy.

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::explain::{Proto, Step};

const MIN_CONNECT: Duration = Duration::from_secs(if cfg!(windows) { 3 } else { 0 });

/// Connects to the first of `addrs` that accepts, each attempt bounded by
/// `timeout`: a host name can resolve to several addresses (`localhost` to
/// 127.0.0.1 and ::1), and a server may listen on only one of them. If every
/// address fails, the error is the first address's (IPv4 comes first, see
/// [`crate::cli::resolve`]), the one a student expects to hear about.
pub fn tcp(addrs: &[SocketAddr], timeout: Duration) -> anyhow::Result<TcpStream> {
    let mut first_error = None;
    // Windows answers a RST to its SYN by sending the SYN again, twice, and
    // says WSAECONNREFUSED (10061) only about 2 s later: a shorter bound
    // would report "refused" as a timeout. Linux and macOS report it at once.
    let timeout = timeout.max(MIN_CONNECT);
    for &addr in addrs {
        // connect_timeout sends the SYN and waits up to `timeout` for the SYN-ACK.
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(stream) => return Ok(stream),
            Err(err) => {
                let err = anyhow::Error::new(err).context(Step::Connect(Proto::Tcp, addr));
                first_error.get_or_insert(err);
            }
        }
    }
    Err(first_error.unwrap_or_else(|| anyhow::anyhow!("no address to connect to")))
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

    /// A port that refuses: bound (so no other test can take it) but not listening.
    fn refusing_port() -> (socket2::Socket, SocketAddr) {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("socket");
        socket
            .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .expect("bind");
        let addr = socket
            .local_addr()
            .expect("address")
            .as_socket()
            .expect("an IP address");
        (socket, addr)
    }

    #[test]
    fn when_all_fail_the_first_address_is_reported() {
        let ((_a, a), (_b, b)) = (refusing_port(), refusing_port());
        let err = tcp(&[a, b], Duration::from_secs(2)).expect_err("nothing listens");
        assert!(format!("{err:#}").contains(&a.to_string()), "{err:#}");
    }

    /// A refusal is reported as one, with a bound shorter than Windows'
    /// SYN retries after a RST (about 2 s before WSAECONNREFUSED 10061).
    #[test]
    fn refused_is_refused_even_with_a_short_timeout() {
        let (_held, closed) = refusing_port();
        let err = tcp(&[closed], Duration::from_millis(100)).expect_err("nothing listens");
        let io = err.downcast_ref::<std::io::Error>().expect("an OS error");
        assert_eq!(io.kind(), std::io::ErrorKind::ConnectionRefused, "{err:#}");
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
