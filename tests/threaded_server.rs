//! threaded_server: a thread per connection against one at a time, the cap,
//! and the clients that misbehave (silent, non-UTF-8, reset).

mod common;

use std::collections::BTreeSet;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use common::{Server, WAIT};

const EXE: &str = env!("CARGO_BIN_EXE_threaded_server");
const BANNER: &str = "threaded_server over TCP is working\n";

/// How long a test watches for something that must *not* happen. Too short
/// can only let a broken server pass, never fail a working one.
const NOT_YET: Duration = Duration::from_millis(300);

fn start(extra: &[&str]) -> Server {
    let mut args = vec!["--port", "0"];
    args.extend_from_slice(extra);
    Server::start(EXE, &args)
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect to threaded_server");
    stream.set_read_timeout(Some(WAIT)).expect("read timeout");
    stream
}

fn local(stream: &TcpStream) -> SocketAddr {
    stream.local_addr().expect("local address")
}

/// Sends `message`, half-closes (FIN), and returns everything the server sent back.
fn talk(stream: &mut TcpStream, message: &[u8]) -> String {
    stream.write_all(message).expect("send");
    stream.shutdown(Shutdown::Write).expect("half-close");
    banner(stream)
}

fn banner(stream: &mut TcpStream) -> String {
    let mut reply = String::new();
    stream
        .read_to_string(&mut reply)
        .expect("the server's reply, then its FIN");
    reply
}

/// The position of the first line containing every one of `needles`,
/// waiting (up to [`WAIT`]) for it: a client can see the server's FIN before
/// the server's log line about it has reached this test.
fn position(server: &Server, needles: &[&str]) -> usize {
    let deadline = Instant::now() + WAIT;
    loop {
        let lines = server.lines_so_far();
        if let Some(at) = lines
            .iter()
            .position(|l| needles.iter().all(|n| l.contains(n)))
        {
            return at;
        }
        assert!(
            Instant::now() < deadline,
            "no line with {needles:?} in {lines:#?}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(target_os = "linux")]
fn thread_count(pid: u32) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let line = status
        .lines()
        .find(|l| l.starts_with("Threads:"))
        .expect("Threads: line");
    line["Threads:".len()..]
        .trim()
        .parse()
        .expect("a thread count")
}

/// Waits (bounded) until the process has `n` threads: a connection's thread
/// starts just after its `Accepted` line. Returns the last count seen.
#[cfg(target_os = "linux")]
fn threads_reach(pid: u32, n: usize) -> usize {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let count = thread_count(pid);
        if count == n || std::time::Instant::now() > deadline {
            return count;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn twenty_silent_clients_are_all_accepted_before_any_of_them_sends() {
    let server = start(&[]);
    assert!(
        server
            .expect_line("a thread per connection")
            .contains("at most 256")
    );
    let mut clients: Vec<TcpStream> = (0..20).map(|_| connect(server.addr)).collect();
    let accepted: BTreeSet<String> = (0..20)
        .map(|_| {
            let line = server.expect_line("Accepted connection from ");
            line.rsplit(' ').next().expect("an address").to_string()
        })
        .collect();
    let expected: BTreeSet<String> = clients.iter().map(|c| local(c).to_string()).collect();
    assert_eq!(accepted, expected);
    assert!(!server.lines_so_far().iter().any(|l| l.contains("Received")));

    #[cfg(target_os = "linux")]
    assert_eq!(
        threads_reach(server.pid(), 21),
        21,
        "the accept loop and one thread per client"
    );

    for (i, client) in clients.iter_mut().enumerate() {
        assert_eq!(talk(client, format!("client {i}").as_bytes()), BANNER);
    }
    for (i, client) in clients.iter().enumerate() {
        let peer = local(client).to_string();
        server.expect_line(&format!(
            "{peer} Received: \"client {i}\" ({} bytes; the client half-closed)",
            8 + i / 10
        ));
    }
}

#[test]
fn a_thread_per_connection_lets_a_quick_client_pass_a_silent_one() {
    let server = start(&[]);
    let mut silent = connect(server.addr);
    server.expect_line(&format!("Accepted connection from {}", local(&silent)));
    let mut quick = connect(server.addr);
    assert_eq!(
        talk(&mut quick, b"quick"),
        BANNER,
        "served while the first client says nothing"
    );
    assert_eq!(talk(&mut silent, b"slow"), BANNER);
}

#[test]
fn single_accepts_the_second_client_only_after_the_first_is_done() {
    let server = start(&["--single"]);
    server.expect_line("one connection at a time");
    let mut first = connect(server.addr);
    server.expect_line(&format!("Accepted connection from {}", local(&first)));
    // The second client's handshake completes in the kernel's backlog, so
    // its connect() and send() succeed; only accept() has not happened.
    let mut second = connect(server.addr);
    second.write_all(b"second").expect("send");
    second.shutdown(Shutdown::Write).expect("half-close");
    let second_accepted = format!("Accepted connection from {}", local(&second));
    assert_eq!(
        server.wait_for_line(&second_accepted, NOT_YET),
        None,
        "accepted while the first was served"
    );

    assert_eq!(talk(&mut first, b"first"), BANNER);
    assert_eq!(banner(&mut second), BANNER);
    server.expect_line(&format!("{} Received: \"second\"", local(&second)));
    let first_done = position(
        &server,
        &[&local(&first).to_string(), "sent the banner and closed"],
    );
    assert!(
        first_done < position(&server, &[&second_accepted]),
        "{:#?}",
        server.lines_so_far()
    );
}

#[test]
fn at_the_cap_new_clients_wait_in_the_backlog_and_the_thread_count_stays_put() {
    let server = start(&["--max-clients", "2"]);
    let mut a = connect(server.addr);
    let mut b = connect(server.addr);
    server.expect_line(&format!("Accepted connection from {}", local(&a)));
    server.expect_line(&format!("Accepted connection from {}", local(&b)));
    server.expect_line("at the cap: 2 connections are being served (--max-clients 2)");

    // The third client is queued, not refused: connect() and send() succeed.
    let mut c = connect(server.addr);
    c.write_all(b"third").expect("send");
    c.shutdown(Shutdown::Write).expect("half-close");
    let c_accepted = format!("Accepted connection from {}", local(&c));
    assert_eq!(
        server.wait_for_line(&c_accepted, NOT_YET),
        None,
        "accepted beyond the cap"
    );
    #[cfg(target_os = "linux")]
    assert_eq!(
        thread_count(server.pid()),
        3,
        "the accept loop and two connection threads"
    );

    assert_eq!(talk(&mut a, b"first"), BANNER);
    server.expect_line("a connection finished: accepting again");
    server.expect_line(&c_accepted);
    assert_eq!(banner(&mut c), BANNER);
    assert_eq!(talk(&mut b, b"second"), BANNER);
    let a_done = position(
        &server,
        &[&local(&a).to_string(), "sent the banner and closed"],
    );
    assert!(
        a_done < position(&server, &[&c_accepted]),
        "{:#?}",
        server.lines_so_far()
    );
}

#[test]
fn bytes_that_are_not_utf8_are_logged_escaped_and_still_answered() {
    let server = start(&[]);
    let mut client = connect(server.addr);
    // 0xff and 0xfe never occur in UTF-8; 0xc3 starts a two-byte character cut short.
    assert_eq!(talk(&mut client, b"\xff\xfeok\xc3"), BANNER);
    server.expect_line(&format!(
        r#"{} Received: "\xff\xfeok\xc3" (5 bytes; the client half-closed)"#,
        local(&client)
    ));
}

#[test]
fn a_client_that_pauses_gets_the_banner_after_idle() {
    // Seed 003's client sends and waits for the answer without half-closing:
    // the pause ends its message.
    let server = start(&["--idle", "200ms", "--reply", "custom banner"]);
    let mut client = connect(server.addr);
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("send");
    assert_eq!(banner(&mut client), "custom banner\n");
    server.expect_line(&format!(
        r#"{} Received: "GET / HTTP/1.1\r\nHost: x\r\n\r\n" (27 bytes; the client paused for 200ms)"#,
        local(&client)
    ));
}

#[test]
fn a_client_that_resets_is_logged_and_the_server_goes_on() {
    let mut server = start(&["--idle", "5s"]);
    let client = connect(server.addr);
    let peer = local(&client);
    server.expect_line(&format!("Accepted connection from {peer}"));
    (&client).write_all(b"partial").expect("send");
    // SO_LINGER with a zero timeout turns close() into a RST.
    socket2::SockRef::from(&client)
        .set_linger(Some(Duration::ZERO))
        .expect("SO_LINGER");
    drop(client);
    let line = server.expect_line(&format!("{peer} connection failed while reading"));
    assert!(line.contains("reset") && line.contains("TCP RST"), "{line}");
    assert!(server.is_running(), "the server must survive a reset");

    let mut next = connect(server.addr);
    assert_eq!(talk(&mut next, b"after"), BANNER);
}

#[test]
fn a_port_in_use_ends_the_server_with_a_hint() {
    let server = start(&[]);
    let port = server.port().to_string();
    let out = common::run(EXE, &["--port", &port], b"");
    common::assert_error_and_hint(&out, "already holds TCP port");
    for bad in [
        &["--max-clients", "0"][..],
        &["--idle", "0s"],
        &["--message-timeout", "0s"],
        &["--message-timeout", "soon"],
        &["--bind", "localhost"],
    ] {
        assert_eq!(common::run(EXE, bad, b"").code(), Some(2), "{bad:?}");
    }
}

#[test]
fn at_most_64_kib_is_read_from_a_client() {
    let server = start(&["--idle", "5s"]);
    let mut client = connect(server.addr);
    // More than the limit, without a half-close and without a pause: only
    // the limit ends the read. (Closing with the rest unread may then send
    // a RST, so the reply is not checked here.)
    client.write_all(&vec![b'x'; 70_000]).expect("send");
    let line = server.expect_line(&format!("{} Received: \"xxx", local(&client)));
    assert!(
        line.ends_with("(65536 bytes; 64 KiB, the most read from a client)"),
        "{line}"
    );
    assert!(line.contains("\"..."), "the log line is cut short: {line}");
}

/// Waits (bounded) until some line printed so far contains `needle`, in
/// whatever order the lines came; returns it.
fn logged(server: &Server, needle: &str) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(line) = server
            .lines_so_far()
            .into_iter()
            .find(|l| l.contains(needle))
        {
            return line;
        }
        assert!(
            Instant::now() < deadline,
            "no line with {needle:?}: {:#?}",
            server.lines_so_far()
        );
        let _ = server.wait_for_line(needle, Duration::from_millis(50));
    }
}

/// A client that sends one byte every 200 ms (each `read()` timeout paces
/// it) until the server answers, then half-closes and reads to the end.
/// Returns how many bytes it sent and what the server answered.
fn trickle(mut stream: TcpStream) -> (usize, Vec<u8>) {
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("read timeout");
    let give_up = Instant::now() + WAIT;
    let mut sent = 0;
    let mut reply = Vec::new();
    while reply.is_empty() {
        assert!(Instant::now() < give_up, "no answer while trickling");
        stream.write_all(b".").expect("the server still reads");
        sent += 1;
        let mut buf = [0u8; 256];
        match stream.read(&mut buf) {
            Ok(n) => reply.extend_from_slice(&buf[..n]),
            Err(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(err) => panic!("trickling client: {err}"),
        }
    }
    stream.shutdown(Shutdown::Write).expect("half-close");
    stream.set_read_timeout(Some(WAIT)).expect("read timeout");
    stream
        .read_to_end(&mut reply)
        .expect("the rest, then the FIN");
    (sent, reply)
}

#[test]
fn trickling_and_silent_clients_end_at_the_message_timeout_and_a_quick_one_is_served() {
    // Bad peers: one client that never sends, one that sends a byte every
    // 200 ms (never pausing for --idle 2s, so only the deadline ends its
    // message); together they hold both places of --max-clients 2.
    let server = start(&[
        "--max-clients",
        "2",
        "--idle",
        "2s",
        "--message-timeout",
        "3s",
    ]);
    let mut silent = connect(server.addr);
    server.expect_line(&format!("Accepted connection from {}", local(&silent)));
    let trickler = connect(server.addr);
    let slow = local(&trickler);
    server.expect_line(&format!("Accepted connection from {slow}"));
    let trickling = thread::spawn(move || trickle(trickler));
    server.expect_line("at the cap: 2 connections");

    // The quick client waits in the backlog, and is answered once the
    // deadline has freed a place.
    let mut quick = connect(server.addr);
    assert_eq!(talk(&mut quick, b"quick"), BANNER);
    assert_eq!(banner(&mut silent), BANNER);
    let (sent, reply) = trickling.join().expect("trickling client");
    assert_eq!(
        String::from_utf8_lossy(&reply),
        BANNER,
        "after {sent} bytes"
    );

    // The three log lines come in any order: wait until all are there.
    let silent_line = logged(
        &server,
        &format!(
            "{} Received: \"\" (0 bytes; the client sent nothing for 3s (--message-timeout))",
            local(&silent)
        ),
    );
    let slow_line = logged(&server, &format!("{slow} Received: \"."));
    assert!(
        slow_line.ends_with("the client was still sending after 3s (--message-timeout))"),
        "{slow_line}"
    );
    logged(&server, &format!("{} Received: \"quick\"", local(&quick)));
    assert!(silent_line.contains("sent nothing"));
    let quick_accepted = position(
        &server,
        &[&format!("Accepted connection from {}", local(&quick))],
    );
    let first_cut = position(&server, &["(--message-timeout))"]);
    assert!(
        first_cut < quick_accepted,
        "the quick client was accepted beyond the cap: {:#?}",
        server.lines_so_far()
    );
}

#[test]
fn with_single_a_silent_client_blocks_the_next_only_until_the_message_timeout() {
    // Bad peer: a client that connects and never sends. One at a time, it
    // holds the accept loop itself: head-of-line blocking, but bounded.
    let server = start(&["--single", "--message-timeout", "1s"]);
    let mut silent = connect(server.addr);
    server.expect_line(&format!("Accepted connection from {}", local(&silent)));
    let mut next = connect(server.addr);
    assert_eq!(talk(&mut next, b"next"), BANNER);
    assert_eq!(banner(&mut silent), BANNER);
    let cut = position(
        &server,
        &[&local(&silent).to_string(), "sent nothing for 1s"],
    );
    let next_accepted = position(
        &server,
        &[&format!("Accepted connection from {}", local(&next))],
    );
    assert!(cut < next_accepted, "{:#?}", server.lines_so_far());
}
