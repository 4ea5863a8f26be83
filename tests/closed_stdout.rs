//! Every server that logs, with its stdout closed after the first line (what
//! `udp_server | head -1` does): the next log line meets a broken pipe
//! (EPIPE), and the server must end quietly with exit status 0 (src/log.rs),
//! never panic with "failed printing to stdout: Broken pipe" (status 101).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::process::{Child, ChildStderr, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use common::{WAIT, listening_addr};

/// How long one poke waits for an answer; the server may end before it answers.
const POKE_WAIT: Duration = Duration::from_millis(500);

/// A server whose stdout was closed after its first line; killed when dropped.
struct Orphaned {
    child: Child,
    addr: SocketAddr,
    stderr: Receiver<String>,
}

impl Orphaned {
    /// Starts `exe` on a free loopback port, reads the first line, and closes
    /// the reading end of the stdout pipe before returning.
    fn start(exe: &str) -> Orphaned {
        let mut child = Command::new(exe)
            .args(["--bind", "127.0.0.1", "--port", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {exe}: {e}"));
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, first_line) = mpsc::channel();
        thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            drop(reader); // like `head -1` exiting: nobody reads stdout any more
            let _ = tx.send(line);
        });
        let stderr = read_all(child.stderr.take().expect("stderr is piped"));
        let mut server = Orphaned {
            child,
            addr: "0.0.0.0:0".parse().expect("placeholder"),
            stderr,
        };
        let line = first_line.recv_timeout(WAIT).unwrap_or_default();
        server.addr = listening_addr(&line)
            .unwrap_or_else(|| panic!("{exe}: no address in the first line {line:?}"));
        server
    }

    /// Pokes the server (so it has something to log) until it exits, for at
    /// most [`WAIT`]; returns its exit status and everything on its stderr.
    fn poke_until_exit(&mut self, poke: fn(SocketAddr)) -> (ExitStatus, String) {
        let deadline = Instant::now() + WAIT;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait for the server") {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "still running {WAIT:?} after its stdout was closed and it was sent traffic"
            );
            poke(self.addr);
        };
        let stderr = self.stderr.recv_timeout(WAIT).unwrap_or_default();
        (status, stderr)
    }
}

impl Drop for Orphaned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Collects a pipe's text until it closes, in a thread.
fn read_all(mut pipe: ChildStderr) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut text = String::new();
        let _ = pipe.read_to_string(&mut text);
        let _ = tx.send(text);
    });
    rx
}

/// One datagram: udp_server logs each one it receives.
fn datagram(addr: SocketAddr) {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("client socket");
    socket.set_read_timeout(Some(POKE_WAIT)).expect("timeout");
    let _ = socket.send_to(b"hello", addr);
    let _ = socket.recv(&mut [0u8; 64]);
}

/// One TCP connection carrying an HTTP proxy request (any bytes to the
/// uppercase and banner servers, a bad first message to time_server):
/// every TCP server logs the connection or the request. Errors are ignored,
/// since the server may end in the middle of the exchange.
fn connection(addr: SocketAddr) {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, POKE_WAIT) else {
        return;
    };
    let _ = stream.set_read_timeout(Some(POKE_WAIT));
    let _ = stream.write_all(b"GET http://127.0.0.1:1/ HTTP/1.1\r\nHost: 127.0.0.1:1\r\n\r\n");
    let _ = stream.shutdown(Shutdown::Write);
    let _ = stream.read_to_end(&mut Vec::new());
}

fn assert_ends_quietly(exe: &str, poke: fn(SocketAddr)) {
    let mut server = Orphaned::start(exe);
    let (status, stderr) = server.poke_until_exit(poke);
    assert_eq!(
        status.code(),
        Some(0),
        "{exe} with a closed stdout: {status} (101 is a panic); stderr: {stderr}"
    );
    for bad in ["panicked", "Broken pipe", "broken pipe"] {
        assert!(!stderr.contains(bad), "{exe} stderr has {bad:?}: {stderr}");
    }
}

#[test]
fn udp_server_ends_quietly_when_stdout_is_closed() {
    assert_ends_quietly(env!("CARGO_BIN_EXE_udp_server"), datagram);
}

#[test]
fn tcp_server_ends_quietly_when_stdout_is_closed() {
    assert_ends_quietly(env!("CARGO_BIN_EXE_tcp_server"), connection);
}

#[test]
fn event_server_ends_quietly_when_stdout_is_closed() {
    assert_ends_quietly(env!("CARGO_BIN_EXE_event_server"), connection);
}

#[test]
fn threaded_server_ends_quietly_when_stdout_is_closed() {
    assert_ends_quietly(env!("CARGO_BIN_EXE_threaded_server"), connection);
}

#[test]
fn time_server_ends_quietly_when_stdout_is_closed() {
    assert_ends_quietly(env!("CARGO_BIN_EXE_time_server"), connection);
}

#[test]
fn proxy_logger_ends_quietly_when_stdout_is_closed() {
    assert_ends_quietly(env!("CARGO_BIN_EXE_proxy_logger"), connection);
}

#[test]
fn web_proxy_ends_quietly_when_stdout_is_closed() {
    // The request is for 127.0.0.1:1, where nothing listens: a 502 and its
    // access-log line, without any origin.
    assert_ends_quietly(env!("CARGO_BIN_EXE_web_proxy"), connection);
}
