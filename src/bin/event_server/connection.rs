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
    /// Waiting in the loop's list for another turn (`Turn::MoreToRead`).
    pub queued: bool,
}

/// Where a turn left the connection.
pub enum Turn {
    /// Read or write said WouldBlock: the next event for this socket comes
    /// when it is ready again.
    Waiting,
    /// It used up its reads for this turn and may have more bytes waiting.
    MoreToRead,
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
            queued: false,
        }
    }

    /// The streaming echo: send what is waiting, then read, uppercase and
    /// send again, until a call would block; after the client's FIN and the
    /// last reply byte, send our own FIN. mio reports readiness once per
    /// change ("edge-triggered"): a turn that stops before read() says
    /// WouldBlock gets no new event for the bytes still waiting, so it
    /// returns `MoreToRead` and the loop comes back to it.
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
        Ok(Turn::MoreToRead)
    }

    /// The classic server: one `recv(buffer)`, reply, close.
    pub fn serve_once(&mut self, buffer: &mut [u8]) -> io::Result<Turn> {
        if self.reads == 0 {
            match self.stream.read(buffer) {
                // Like the classic server, a FIN with nothing before it
                // (Ok(0)) is also the one read: 0 bytes back, then close.
                Ok(n) => self.echo(&mut buffer[..n]),
                // The client has not sent yet: wait for its bytes.
                Err(err) if err.kind() == ErrorKind::WouldBlock => return Ok(Turn::Waiting),
                // A signal interrupted the call: come back to make it again.
                Err(err) if err.kind() == ErrorKind::Interrupted => return Ok(Turn::MoreToRead),
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

    /// The log lines for the end of this connection.
    pub fn log_lines(&self, end: &End, once: bool, buffer: usize, idle: Duration) -> Vec<String> {
        let idle = humantime::format_duration(idle);
        match end {
            End::Failed(err) => vec![format!("error: {err}")],
            End::Idle if once => vec![format!("idle for {idle}: closing")],
            End::Idle => vec![format!("idle for {idle}: closing"), self.totals()],
            End::NotReading => vec![format!("has not read its replies for {idle}: closing")],
            End::Finished if once => vec![format!(
                "closed after one read: received {n} bytes (--buffer {buffer}), sent {n}{unread}",
                n = self.received,
                unread = if self.has_unread_data() {
                    "; more bytes were waiting unread, so the kernel answers the close with a RST"
                } else {
                    ""
                }
            )],
            End::Finished => vec![self.totals()],
        }
    }

    /// `closed: received 16 bytes in 3 reads, sent 16`. How many reads the
    /// bytes took shows that TCP is a stream: it keeps the bytes and their
    /// order, not the sender's write boundaries.
    fn totals(&self) -> String {
        let reads = if self.reads == 1 {
            "1 read".to_string()
        } else {
            format!("{} reads", self.reads)
        };
        format!(
            "closed: received {} bytes in {reads}, sent {}",
            self.received, self.sent
        )
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream as StdStream};

    /// A connected pair on loopback: the client's blocking std stream and
    /// the server's side as a Connection.
    fn pair() -> (StdStream, Connection) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let client = StdStream::connect(listener.local_addr().expect("address")).expect("connect");
        let (server, peer) = listener.accept().expect("accept");
        server.set_nonblocking(true).expect("non-blocking");
        (client, Connection::new(TcpStream::from_std(server), peer))
    }

    /// Waits (up to 5 s) until `n` bytes are in the server side's receive buffer.
    fn wait_for_bytes(connection: &Connection, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut probe = vec![0u8; n];
        while !matches!(connection.stream.peek(&mut probe), Ok(got) if got == n) {
            assert!(Instant::now() < deadline, "{n} bytes never arrived");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn a_turn_reads_at_most_its_budget_then_asks_for_another() {
        let (mut client, mut connection) = pair();
        let buffer_size = 1024;
        let sent = (READS_PER_TURN + 4) * buffer_size;
        client.write_all(&vec![b'x'; sent]).expect("send");
        wait_for_bytes(&connection, sent);
        let mut buffer = vec![0u8; buffer_size];
        let turn = connection.serve_stream(&mut buffer).expect("first turn");
        assert!(matches!(turn, Turn::MoreToRead));
        assert_eq!(connection.received, (READS_PER_TURN * buffer_size) as u64);
        // The next turn reads the rest, and then waits for more.
        let turn = connection.serve_stream(&mut buffer).expect("second turn");
        assert!(matches!(turn, Turn::Waiting));
        assert_eq!(connection.received, sent as u64);
        let mut echo = vec![0u8; sent];
        client.read_exact(&mut echo).expect("the echo");
        assert!(echo.iter().all(|&b| b == b'X'));
    }

    #[test]
    fn the_fin_is_sent_after_the_last_reply_byte() {
        let (mut client, mut connection) = pair();
        client.write_all(b"last words").expect("send");
        client.shutdown(Shutdown::Write).expect("FIN");
        let mut buffer = vec![0u8; 1024];
        let deadline = Instant::now() + Duration::from_secs(5);
        while !matches!(connection.serve_stream(&mut buffer), Ok(Turn::Finished)) {
            assert!(Instant::now() < deadline, "never finished");
            std::thread::sleep(Duration::from_millis(1));
        }
        let mut reply = Vec::new();
        client.read_to_end(&mut reply).expect("reply, then our FIN");
        assert_eq!(reply, b"LAST WORDS");
        let lines = connection.log_lines(&End::Finished, false, 1024, Duration::from_secs(1));
        assert_eq!(lines, ["closed: received 10 bytes in 1 read, sent 10"]);
    }
}
