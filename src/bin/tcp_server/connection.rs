//! One client's connection: what it sent, what is waiting to go back, and
//! one turn of serving it when the event loop says its socket is ready.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::time::{Duration, Instant};

use mio::net::TcpStream;

/// Reads one connection may make in a turn: a client that never stops
/// sending must not keep the others waiting.
const READS_PER_TURN: usize = 16;

pub struct Connection {
    pub stream: TcpStream,
    pub peer: SocketAddr,
    /// Uppercased bytes the kernel had no room for yet: the client's
    /// receive window and our send buffer are full.
    unsent: Vec<u8>,
    /// The client's FIN came: finish once `unsent` is sent.
    fin_received: bool,
    received: u64,
    sent: u64,
    reads: u64,
    /// When a byte last moved either way, for --idle-timeout.
    pub last_progress: Instant,
}

/// Where a turn left the connection.
pub enum Turn {
    /// Read or write said WouldBlock: the next event for this socket comes
    /// when it is ready again.
    Waiting,
    /// It used up its reads for this turn and may have more bytes waiting.
    Busy,
    /// Done: the reply is sent.
    Finished,
}

/// Why a connection is closed.
pub enum End {
    Finished,
    /// Nothing came from the client for --idle-timeout.
    Idle,
    /// Replies waited to be sent for --idle-timeout: the client sends but
    /// does not read.
    NotReading,
    Failed(io::Error),
}

impl Connection {
    pub fn new(stream: TcpStream, peer: SocketAddr) -> Connection {
        Connection {
            stream,
            peer,
            unsent: Vec::new(),
            fin_received: false,
            received: 0,
            sent: 0,
            reads: 0,
            last_progress: Instant::now(),
        }
    }

    /// The streaming echo: send what is waiting, then read, uppercase and
    /// send again, until a call would block; after the client's FIN and the
    /// last reply byte, send our own FIN.
    pub fn serve_stream(&mut self, buffer: &mut [u8]) -> io::Result<Turn> {
        for _ in 0..READS_PER_TURN {
            // While the client does not take its replies, read nothing
            // more from it: TCP's flow control then slows the client down,
            // and the server holds at most one buffer for it.
            if !self.flush()? {
                return Ok(Turn::Waiting);
            }
            if self.fin_received {
                // shutdown(Write) sends our FIN after the last reply byte.
                self.stream.shutdown(Shutdown::Write)?;
                return Ok(Turn::Finished);
            }
            match self.stream.read(buffer) {
                // A read of 0 bytes: the client sent its FIN, it has no more to say.
                Ok(0) => self.fin_received = true,
                Ok(n) => self.echo(&mut buffer[..n]),
                // Nothing to read now: the loop will hear when there is.
                Err(err) if err.kind() == ErrorKind::WouldBlock => return Ok(Turn::Waiting),
                // A signal interrupted the call: make it again.
                Err(err) if err.kind() == ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
        Ok(Turn::Busy)
    }

    /// The classic server: one `recv(buffer)`, reply, close.
    pub fn serve_once(&mut self, buffer: &mut [u8]) -> io::Result<Turn> {
        if self.reads == 0 {
            match self.stream.read(buffer) {
                Ok(n) => self.echo(&mut buffer[..n]),
                Err(err) if err.kind() == ErrorKind::WouldBlock => return Ok(Turn::Waiting),
                Err(err) if err.kind() == ErrorKind::Interrupted => return Ok(Turn::Busy),
                Err(err) => return Err(err),
            }
        }
        if self.flush()? {
            Ok(Turn::Finished)
        } else {
            Ok(Turn::Waiting)
        }
    }

    /// Uppercases what one read brought and queues it to go back. ASCII a-z
    /// only: bytes, not text, because a read can end in the middle of a
    /// multi-byte UTF-8 character.
    fn echo(&mut self, bytes: &mut [u8]) {
        self.received += bytes.len() as u64;
        self.reads += 1;
        self.last_progress = Instant::now();
        bytes.make_ascii_uppercase();
        self.unsent.extend_from_slice(bytes);
    }

    /// Writes what is waiting. False if the kernel took only part of it:
    /// the rest goes when the socket is writable again.
    fn flush(&mut self) -> io::Result<bool> {
        while !self.unsent.is_empty() {
            match self.stream.write(&self.unsent) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.unsent.drain(..n);
                    self.sent += n as u64;
                    self.last_progress = Instant::now();
                }
                // The send buffer is full.
                Err(err) if err.kind() == ErrorKind::WouldBlock => return Ok(false),
                Err(err) if err.kind() == ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
        Ok(true)
    }

    /// Why this connection, idle for --idle-timeout, is closed.
    pub fn why_idle(&self) -> End {
        if self.unsent.is_empty() {
            End::Idle
        } else {
            End::NotReading
        }
    }

    /// The log line for the end of this connection.
    pub fn ending(&self, end: &End, once: bool, buffer: usize, idle: Duration) -> String {
        let idle = humantime::format_duration(idle);
        match end {
            End::Failed(err) => format!("error: {err}"),
            End::Idle => format!("idle for {idle}: closing"),
            End::NotReading => format!("has not read its replies for {idle}: closing"),
            End::Finished if once => format!(
                "closed after one read: received {n} bytes (--buffer {buffer}), sent {n}{unread}",
                n = self.received,
                unread = if self.has_unread_data() {
                    "; more bytes were waiting unread, so the kernel answers the close with a RST"
                } else {
                    ""
                }
            ),
            // How many reads the bytes took shows that TCP is a stream: it
            // keeps the bytes and their order, not the sender's write
            // boundaries.
            End::Finished => format!(
                "closed: received {} bytes in {}, sent {}",
                self.received,
                if self.reads == 1 {
                    "1 read".to_string()
                } else {
                    format!("{} reads", self.reads)
                },
                self.sent
            ),
        }
    }

    /// True if the client sent bytes that were never read. Closing a socket
    /// with unread data makes the kernel reset the connection (RFC 1122
    /// §4.2.2.13). The socket is non-blocking, so peek() answers at once:
    /// Ok(1) means a byte is waiting in the receive buffer.
    fn has_unread_data(&self) -> bool {
        let mut probe = [0u8; 1];
        matches!(self.stream.peek(&mut probe), Ok(1))
    }
}
