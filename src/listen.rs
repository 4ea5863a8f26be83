//! A TCP listening socket with the two choices `TcpListener::bind` hides
//! (`SO_REUSEADDR`, the `listen(2)` backlog): event_server, web_proxy and
//! web_server listen with [`tcp`]; the lesson servers call socket(), bind()
//! and listen() in their own files. threaded_server, proxy_logger,
//! time_server, web_proxy and web_server share the accept and close helpers.

use std::io::{self, ErrorKind, Read};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context;
use socket2::{Domain, Protocol, Socket, Type};

use crate::explain::{Proto, Step};

/// How many completed handshakes the kernel queues for `accept()`. The
/// classic lab's `listen(1)` makes the kernel drop SYNs as soon as one
/// client waits; 1024 keeps a thousand simultaneous clients queued
/// (Linux caps it at `net.core.somaxconn`, 4096 by default).
pub const BACKLOG: i32 = 1024;

/// Creates, binds and listens on a TCP socket at `addr`.
pub fn tcp(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    let step = || Step::Bind(Proto::Tcp, addr);
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        .with_context(step)?;
    // SO_REUSEADDR lets a restarted server bind its port while connections
    // of its previous run still sit in TIME_WAIT. (On Windows the option
    // means "share a port in use", so it is set on Unix only.)
    if cfg!(unix) {
        socket.set_reuse_address(true).with_context(step)?;
    }
    socket.bind(&addr.into()).with_context(step)?;
    socket.listen(BACKLOG).with_context(step)?;
    Ok(socket.into())
}

/// Call after a failed `accept()`, then accept again. A client that reset
/// before it was accepted (`ECONNABORTED`) is simply gone. But running out
/// of file descriptors (`EMFILE`) fails again at once, so pause briefly
/// rather than spin while other connections close and free some.
pub fn pause_after_accept_error(err: &io::Error) {
    if err.kind() != ErrorKind::ConnectionAborted {
        thread::sleep(Duration::from_millis(100));
    }
}

/// Closes a connection after the last response without destroying it
/// (RFC 9112 §9.6): closing a socket that still has unread input makes the
/// kernel send a RST, and a RST can make the client's kernel discard the
/// response it has not read yet. So: FIN first (`shutdown(Write)`), then
/// read and discard what the client still sends until its own FIN, for at
/// most a second.
pub fn close_gracefully(stream: &TcpStream) {
    let _ = stream.shutdown(Shutdown::Write);
    let deadline = Instant::now() + Duration::from_secs(1);
    let mut discard = [0u8; 16 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return;
        }
        // The client's FIN, a reset, or the timeout: done.
        if let Ok(0) | Err(_) = (&*stream).read(&mut discard) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_zero_gets_a_real_port_and_a_second_bind_fails() {
        let listener = tcp("127.0.0.1:0".parse().expect("address")).expect("bind");
        let addr = listener.local_addr().expect("local address");
        assert_ne!(addr.port(), 0);
        let err = tcp(addr).expect_err("port is taken");
        assert!(format!("{err:#}").contains(&format!("failed to bind TCP socket to {addr}")));
        assert!(
            crate::explain::hint_for(&err)
                .expect("hint")
                .contains("already holds TCP port")
        );
    }
}
