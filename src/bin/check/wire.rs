//! The peers' moves on a TCP connection, each with a bounded wait:
//! connecting, writing in pieces with pauses, half-closing, resetting,
//! and reading until the other side closes.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use socket2::SockRef;
use socketlab::explain::is_timeout;

use crate::report::Failure;

/// Connects within `timeout`, or fails with what the refusal means.
pub fn connect(addr: SocketAddr, timeout: Duration) -> Result<TcpStream, Failure> {
    let stream = TcpStream::connect_timeout(&addr, timeout).map_err(|err| {
        Failure::new(
            format!("connect to {addr} failed: {err}"),
            if err.kind() == io::ErrorKind::ConnectionRefused {
                "the SYN was answered with a RST: nothing listens on that port any more \
                 (did the server exit, or does it bind another port?)"
            } else {
                "no SYN-ACK came back in time: the server's listen backlog may be full, \
                 or a firewall drops the SYN"
            },
        )
    })?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// How a read until the end stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// `read()` returned 0: the peer's FIN.
    Closed,
    /// The peer reset the connection (a RST).
    Reset,
    /// Nothing for the whole wait.
    TimedOut,
    /// `max` bytes arrived.
    Full,
}

impl End {
    pub fn describe(&self) -> &'static str {
        match self {
            End::Closed => "the server closed the connection (FIN)",
            End::Reset => "the connection was reset (RST)",
            End::TimedOut => "nothing more came before the timeout and the connection stayed open",
            End::Full => "more bytes came than expected",
        }
    }
}

/// Reads until the peer closes, `max` bytes arrive, or `deadline` passes.
pub fn read_until_end(stream: &mut TcpStream, deadline: Instant, max: usize) -> (Vec<u8>, End) {
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return (got, End::TimedOut);
        }
        let _ = stream.set_read_timeout(Some(left));
        match stream.read(&mut buf) {
            // Ok(0): the peer's FIN; nothing more will come.
            Ok(0) => return (got, End::Closed),
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                if got.len() > max {
                    return (got, End::Full);
                }
            }
            // WouldBlock on Unix, TimedOut on Windows: the deadline passed.
            Err(err) if is_timeout(&err) => return (got, End::TimedOut),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return (got, End::Reset),
        }
    }
}

/// Writes `bytes` in pieces of `piece` bytes with `pause` between them:
/// the peer's `recv()` sees many short reads, as over a slow network.
pub fn write_in_pieces(
    stream: &mut TcpStream,
    bytes: &[u8],
    piece: usize,
    pause: Duration,
) -> io::Result<()> {
    for chunk in bytes.chunks(piece.max(1)) {
        stream.write_all(chunk)?;
        stream.flush()?;
        if !pause.is_zero() {
            thread::sleep(pause);
        }
    }
    Ok(())
}

/// Sends `message` from another thread and half-closes (FIN), while this
/// thread reads the reply until the server closes: a server that echoes a
/// megabyte as it reads must not wait for check to stop writing.
pub fn exchange(
    addr: SocketAddr,
    message: &[u8],
    piece: usize,
    pause: Duration,
    timeout: Duration,
) -> Result<(Vec<u8>, End), Failure> {
    let mut stream = connect(addr, timeout)?;
    let mut writer = stream.try_clone().map_err(|e| {
        Failure::new(
            format!("cannot duplicate the socket: {e}"),
            "check itself failed",
        )
    })?;
    let message = message.to_vec();
    let sending = thread::spawn(move || {
        let _ = writer.set_write_timeout(Some(timeout));
        let sent = write_in_pieces(&mut writer, &message, piece, pause);
        // shutdown(Write) sends FIN: "the whole message is there".
        let _ = writer.shutdown(Shutdown::Write);
        sent
    });
    // The reply may only start when the message is complete: allow the
    // time the slow writes take, plus the timeout for the reply itself.
    let deadline = Instant::now() + timeout;
    let got = read_until_end(&mut stream, deadline, 64 * 1024 * 1024);
    let _ = sending.join();
    Ok(got)
}

/// Closes with a RST instead of a FIN: SO_LINGER with a zero timeout
/// makes `close()` abort the connection (RFC 9293 §3.10.7.1).
pub fn reset(stream: TcpStream) {
    let _ = SockRef::from(&stream).set_linger(Some(Duration::ZERO));
    drop(stream);
}

/// Two clients that reset their connections (RST): one after half a
/// message, one before its first byte. A server may be reading from
/// either when the RST arrives; recv() then fails with ECONNRESET.
pub fn rude_clients(addr: SocketAddr, timeout: Duration) -> Result<(), Failure> {
    let mut mid_message = connect(addr, timeout)?;
    let _ = mid_message.write_all(b"half a mess");
    reset(mid_message);
    reset(connect(addr, timeout)?);
    Ok(())
}

/// Every byte value, `copies` times: a payload that no text decoding survives.
pub fn every_byte(copies: usize) -> Vec<u8> {
    (0..copies).flat_map(|_| 0..=255u8).collect()
}

/// `n` bytes of lowercase letters and spaces, seeded.
pub fn text(rng: &mut socketlab::random::Rng, n: usize) -> Vec<u8> {
    (0..n)
        .map(|_| match rng.in_range(0, 26) {
            26 => b' ',
            k => b'a' + k as u8,
        })
        .collect()
}

/// The ASCII uppercase of the bytes; every other byte unchanged.
pub fn upper(bytes: &[u8]) -> Vec<u8> {
    bytes.to_ascii_uppercase()
}

/// Client labs: waits until the client under test connects to check's
/// `listener`, or fails saying whether it ran at all.
pub fn accept_client(
    listener: &std::net::TcpListener,
    child: &mut crate::spawn::Child,
    end: Instant,
) -> Result<TcpStream, Failure> {
    let addr = listener.local_addr().map_err(|e| {
        Failure::new(
            format!("cannot read check's own address: {e}"),
            "check itself failed",
        )
    })?;
    let _ = listener.set_nonblocking(true);
    loop {
        if let Ok((stream, _)) = listener.accept() {
            let _ = stream.set_nonblocking(false);
            let _ = stream.set_nodelay(true);
            return Ok(stream);
        }
        if Instant::now() >= end || child.exited().is_some() {
            child.wait_for(Duration::from_millis(100));
            return Err(Failure::new(
                format!(
                    "the client never connected to {addr}; {}",
                    child.fate().unwrap_or("it was still running".into())
                ),
                "check replaced {host} and {port} in the command with its own server's address: does the client take them from the command line?",
            ));
        }
        thread::sleep(Duration::from_millis(5));
    }
}
