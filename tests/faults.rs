//! Faults behind and in front of web_proxy: clients that reset mid-request,
//! origins that hang or close mid-body (tests/peers/origin.py), slow clients.
//! The affected transaction fails cleanly, the others going on at the same
//! time succeed, nothing incomplete is cached, and afterwards the proxy has
//! exactly the file descriptors and threads it had before.
//!
//! tests/web_proxy.rs has each fault on its own; this file runs them
//! together, next to good traffic, and counts what the proxy process holds
//! (/proc/PID/fd and /proc/PID/task), so Linux only.
#![cfg(target_os = "linux")]

mod common;
/// web_proxy's HTTP module, compiled into this test to read responses.
#[path = "../src/bin/web_proxy/http/mod.rs"]
#[allow(dead_code, unused_imports)]
mod http;

use std::io::{self, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use common::{Server, WAIT};
use http::{BodyReader, ResponseHead};
use socket2::SockRef;

const PROXY: &str = env!("CARGO_BIN_EXE_web_proxy");

fn proxy(extra: &[&str]) -> Server {
    let mut args = vec!["--port", "0"];
    args.extend_from_slice(extra);
    Server::start(PROXY, &args)
}

fn url(origin: SocketAddr, path: &str) -> String {
    format!("http://{origin}{path}")
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, WAIT).expect("connect");
    stream.set_read_timeout(Some(WAIT)).expect("read timeout");
    stream
}

/// One GET of `target` sent to `addr` on a new connection, `Connection:
/// close`: the status, and the body or why it could not be read whole.
fn get(addr: SocketAddr, target: &str) -> (u16, io::Result<Vec<u8>>) {
    let mut stream = connect(addr);
    let request = format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).expect("send");
    let mut reader = BufReader::new(stream);
    let head = ResponseHead::read_from(&mut reader).expect("a response head");
    let length = head.body_length("GET").expect("a valid framing");
    let mut body = Vec::new();
    let read = BodyReader::new(&mut reader, length).read_to_end(&mut body);
    (head.status, read.map(|_| body))
}

/// A GET through the proxy that must succeed with origin.py's pattern.
fn assert_good_get(proxy: SocketAddr, origin: SocketAddr, n: usize) {
    let (status, body) = get(proxy, &url(origin, &format!("/bytes/{n}")));
    assert_eq!(status, 200, "a good transaction failed");
    assert!(
        body.expect("a whole body") == common::origin_pattern(n),
        "a good transaction's body differs"
    );
}

/// How many requests the origin received for `path` (its /__stats).
fn origin_hits(origin: SocketAddr, path: &str) -> u64 {
    let (status, body) = get(origin, "/__stats");
    assert_eq!(status, 200);
    let stats = String::from_utf8(body.expect("stats")).expect("JSON is text");
    let key = format!("\"{path}\": ");
    match stats.find(&key) {
        Some(at) => stats[at + key.len()..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .expect("a count"),
        None => 0,
    }
}

/// Sends `bytes`, then resets the connection.
fn send_and_reset(addr: SocketAddr, bytes: &[u8]) {
    let mut stream = connect(addr);
    stream.write_all(bytes).expect("send");
    reset(stream);
}

/// Closes with a RST instead of a FIN: SO_LINGER with a zero timeout makes
/// close() abort the connection (RFC 9293 §3.10.4, ABORT).
fn reset(stream: TcpStream) {
    SockRef::from(&stream)
        .set_linger(Some(Duration::ZERO))
        .expect("SO_LINGER");
    drop(stream);
}

/// Open file descriptors and threads of process `pid`.
fn holdings(pid: u32) -> (usize, usize) {
    let count = |dir: &str| {
        std::fs::read_dir(format!("/proc/{pid}/{dir}"))
            .unwrap_or_else(|e| panic!("/proc/{pid}/{dir}: {e}"))
            .count()
    };
    (count("fd"), count("task"))
}

/// What the proxy holds once nothing changes for 100 ms: its baseline.
fn settled_holdings(pid: u32) -> (usize, usize) {
    let deadline = Instant::now() + WAIT;
    let (mut last, mut same) = (holdings(pid), 0);
    while same < 5 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
        let now = holdings(pid);
        same = if now == last { same + 1 } else { 0 };
        last = now;
    }
    last
}

/// Waits (bounded) until the proxy is back to `baseline` descriptors and
/// threads; anything above it after every client has gone is a leak.
fn assert_back_to(proxy: &Server, baseline: (usize, usize)) {
    let deadline = Instant::now() + WAIT;
    loop {
        let now = holdings(proxy.pid());
        if now == baseline {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "after every client left the proxy holds {} fds and {} threads, \
             {} and {} before: leaked; fds: {:?}",
            now.0,
            now.1,
            baseline.0,
            baseline.1,
            std::fs::read_dir(format!("/proc/{}/fd", proxy.pid()))
                .map(|dir| dir
                    .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                    .collect::<Vec<_>>())
                .unwrap_or_default()
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// Reads from `stream` until the peer closes it; true if it did (FIN or RST)
/// within the read timeout.
fn closed_by_peer(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(err) if err.kind() == ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

#[test]
fn faults_end_only_their_own_transaction_and_leak_no_fd_or_thread() {
    let origin = common::origin();
    let proxy = proxy(&["--origin-timeout", "1s"]);
    // A first transaction, so anything the proxy creates once exists.
    assert_good_get(proxy.addr, origin.addr, 10);
    let baseline = settled_holdings(proxy.pid());

    thread::scope(|s| {
        // Good traffic all along.
        let good = s.spawn(|| {
            for n in 0..30 {
                assert_good_get(proxy.addr, origin.addr, 1000 + n);
            }
        });
        // An origin that never answers: 504 once --origin-timeout passes.
        let hang = s.spawn(|| get(proxy.addr, &url(origin.addr, "/hang")));
        // Origins that close mid-body: the head (200) was relayed already,
        // so the client sees the body cut short and the connection closed.
        let truncated = s.spawn(|| {
            ["/truncated/100000", "/truncated-cacheable/100000"].map(|path| {
                let (status, body) = get(proxy.addr, &url(origin.addr, path));
                (path, status, body.map(|b| b.len()))
            })
        });
        // Clients that reset: in the middle of a head, in the middle of a
        // request body, and while the proxy waits for the origin.
        let resets = s.spawn(|| {
            let target = url(origin.addr, "/echo");
            send_and_reset(
                proxy.addr,
                format!("GET {target} HTTP/1.1\r\nHo").as_bytes(),
            );
            send_and_reset(
                proxy.addr,
                format!(
                    "POST {target} HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n{}",
                    "x".repeat(1000)
                )
                .as_bytes(),
            );
            // Reset only once the origin has the request (it answers
            // after 300 ms), so the proxy is surely waiting for it.
            let slow = url(origin.addr, "/slow/300");
            let mut waiting = connect(proxy.addr);
            waiting
                .write_all(format!("GET {slow} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
                .expect("send");
            let deadline = Instant::now() + WAIT;
            while origin_hits(origin.addr, "/slow/300") == 0 {
                assert!(
                    Instant::now() < deadline,
                    "the request never reached the origin"
                );
                thread::sleep(Duration::from_millis(10));
            }
            reset(waiting);
        });

        let (status, _) = hang.join().expect("hang client");
        assert_eq!(status, 504, "an origin that hangs");
        for (path, status, body) in truncated.join().expect("truncated client") {
            assert_eq!(status, 200, "{path}: the head came before the cut");
            match body {
                Err(err) => assert_eq!(err.kind(), ErrorKind::UnexpectedEof, "{path}: {err}"),
                Ok(len) => panic!("{path}: {len} bytes read as a whole body of 100000"),
            }
        }
        resets.join().expect("resetting clients");
        good.join().expect("good traffic");
    });

    // Nothing incomplete was stored: the same request goes to the origin again.
    let (_, body) = get(proxy.addr, &url(origin.addr, "/truncated-cacheable/100000"));
    assert!(
        body.is_err(),
        "cut short again, not served whole from a cache"
    );
    assert_eq!(
        origin_hits(origin.addr, "/truncated-cacheable/100000"),
        2,
        "an incomplete response was cached"
    );
    assert_good_get(proxy.addr, origin.addr, 10);
    assert_back_to(&proxy, baseline);
}

#[test]
fn a_slow_client_does_not_hold_up_the_others_and_an_idle_one_is_closed() {
    let origin = common::origin();
    let proxy = proxy(&["--idle-timeout", "2s"]);
    assert_good_get(proxy.addr, origin.addr, 10);
    let baseline = settled_holdings(proxy.pid());

    // A slow client: most of its head at once, then a byte a second, each
    // pause shorter than --idle-timeout (which counts silence, not the
    // whole head), for longer than the timeout in all.
    let mut slow = connect(proxy.addr);
    let start = format!(
        "GET {} HTTP/1.1\r\nHost: x\r\nX-Slow: ",
        url(origin.addr, "/bytes/5")
    );
    slow.write_all(start.as_bytes()).expect("send");
    let trickle = thread::spawn({
        let mut slow = slow.try_clone().expect("clone");
        move || -> io::Result<()> {
            for byte in b"abc\r\n\r\n" {
                slow.write_all(&[*byte])?;
                if byte.is_ascii_alphabetic() {
                    // The slowness under test, not a synchronisation.
                    thread::sleep(Duration::from_secs(1));
                }
            }
            Ok(())
        }
    });
    for n in 0..20 {
        assert_good_get(proxy.addr, origin.addr, 100 + n);
    }
    // The good ones were served while the slow head was still arriving.
    assert!(
        !trickle.is_finished(),
        "the quick clients waited for the slow one"
    );
    trickle
        .join()
        .expect("trickle thread")
        .expect("the proxy kept the slow client connected");
    let mut reader = BufReader::new(slow.try_clone().expect("clone"));
    let head = ResponseHead::read_from(&mut reader).expect("the slow client is answered");
    assert_eq!(head.status, 200);
    let mut body = vec![0u8; 5];
    reader.read_exact(&mut body).expect("its body");
    assert_eq!(body, common::origin_pattern(5));
    // Kept alive, then silent: closed after --idle-timeout.
    assert!(
        closed_by_peer(&mut slow),
        "the idle kept-alive connection was not closed within {WAIT:?}"
    );
    drop((reader, slow));
    assert_back_to(&proxy, baseline);
}
