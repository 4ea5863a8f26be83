//! time_server and time_client, run for real: the protocol of
//! labs/time-protocol.md, the seed's menu, the pinned clock, --plain
//! mismatches, the 33rd client of a 32-worker pool, and bad peers.

mod common;

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::Duration;

use common::{Server, WAIT, assert_error_and_hint, free_tcp_port, run, run_with_env};
use socketlab::random::Rng;
use socketlab::time_service::{Hello, KeyPair, caesar_key, encode_frame, read_frame, read_line};

const SERVER: &str = env!("CARGO_BIN_EXE_time_server");
const CLIENT: &str = env!("CARGO_BIN_EXE_time_client");
const NOW: &str = "2026-11-21T14:02:19.198Z";

/// time_server on a free loopback port with the clock pinned to [`NOW`].
/// `env` execs the server, so the fixture's pid and kill() are the server's.
fn server(args: &[&str]) -> Server {
    let now = format!("SOCKETLAB_NOW={NOW}");
    let mut all = vec![now.as_str(), SERVER, "--port", "0", "--bind", "127.0.0.1"];
    all.extend_from_slice(args);
    Server::start("env", &all)
}

fn client(server: &Server, args: &[&str], stdin: &[u8]) -> common::Output {
    let port = server.port().to_string();
    let mut all = vec!["--port", port.as_str()];
    all.extend_from_slice(args);
    run(CLIENT, &all, stdin)
}

/// A client written in the test, to send exactly the bytes a test needs.
struct Raw {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Raw {
    fn connect(addr: SocketAddr) -> Raw {
        let stream = TcpStream::connect_timeout(&addr, WAIT).expect("connect");
        stream.set_read_timeout(Some(WAIT)).expect("read timeout");
        stream.set_nodelay(true).expect("nodelay");
        Raw {
            writer: stream.try_clone().expect("clone"),
            reader: BufReader::new(stream),
        }
    }

    fn local(&self) -> SocketAddr {
        self.writer.local_addr().expect("local address")
    }

    fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("send");
    }

    /// The next line from the server; empty at end of stream.
    fn line(&mut self) -> String {
        read_line(&mut self.reader)
            .expect("read a line")
            .unwrap_or_default()
    }

    /// Sends `KEY A` for `private`, returns the server's public key.
    fn exchange(&mut self, private: u32) -> u32 {
        self.send(format!("{}\n", Hello::Key(KeyPair::from_private(private).public)).as_bytes());
        match Hello::parse(&self.line()) {
            Ok(Hello::Key(public)) => public,
            other => panic!("expected KEY B, got {other:?}"),
        }
    }

    /// A full key exchange, repeated on key 0 as the protocol says.
    fn handshake(&mut self) -> u8 {
        let mut rng = Rng::from_entropy();
        loop {
            let pair = KeyPair::generate(&mut rng);
            let key = caesar_key(pair.shared_secret(self.exchange(pair.private)));
            if key != 0 {
                return key;
            }
        }
    }

    fn ask(&mut self, key: u8, request: &[u8]) -> String {
        self.send(&encode_frame(key, request));
        self.answer(key)
    }

    fn answer(&mut self, key: u8) -> String {
        let frame = read_frame(&mut self.reader, key)
            .expect("a frame")
            .expect("an answer, not the end of the stream");
        String::from_utf8(frame).expect("UTF-8 answer")
    }

    /// True when the server has closed the connection (FIN or RST).
    fn closed_by_server(&mut self) -> bool {
        let mut byte = [0u8; 1];
        match self.reader.read(&mut byte) {
            Ok(0) => true,
            Ok(_) => false,
            Err(err) => err.kind() == std::io::ErrorKind::ConnectionReset,
        }
    }
}

const MENU: &str = "Select one of the option below:\n\
1. Request time from the server.\n\
2. Request date from the server.\n\
3. Request temperature from the server.\n\
4. Exit\n";

#[test]
fn the_menu_session_driven_through_stdin() {
    let server = server(&[]);
    let out = client(&server, &[], b"1\n2\n3\nfive\n4\n1\n");
    assert_eq!(out.code(), Some(0), "stderr: {}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(
        lines[0].starts_with(&format!("Connected to the server at {}", server.addr)),
        "{lines:?}"
    );
    // The menu, exactly as the seed prints it, before every choice.
    assert_eq!(out.stdout.matches(MENU).count(), 5, "{}", out.stdout);
    let responses: Vec<&str> = lines
        .iter()
        .filter(|l| l.starts_with("Response: "))
        .copied()
        .collect();
    assert_eq!(responses.len(), 3, "{lines:?}");
    assert!(
        responses[0].starts_with("Response: 14:02:19.198 with RTT "),
        "{responses:?}"
    );
    assert!(
        responses[1].starts_with("Response: 2026-11-21 with RTT "),
        "{responses:?}"
    );
    assert!(responses[2].contains(" \u{b0}C ("), "{responses:?}");
    assert!(
        responses.iter().all(|r| r.ends_with(" ms")),
        "{responses:?}"
    );
    assert!(
        out.stdout.contains("'five' is not on the menu"),
        "{}",
        out.stdout
    );
    // 4 ends the session: the 1 after it is never sent.
    assert_eq!(lines.last(), Some(&"Connection closed"));
    server.expect_line("\"DATE\" -> 2026-11-21");
    server.expect_line("connection closed");
}

#[test]
fn the_end_of_input_ends_the_menu() {
    let server = server(&[]);
    let out = client(&server, &[], b"2\n");
    assert_eq!(out.code(), Some(0), "stderr: {}", out.stderr);
    assert!(
        out.stdout.contains("Response: 2026-11-21 with RTT"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.ends_with("Connection closed\n"),
        "{}",
        out.stdout
    );
}

#[test]
fn each_request_with_the_clock_pinned() {
    let server = server(&[]);
    for (request, answer) in [("time", "14:02:19.198"), ("date", "2026-11-21")] {
        let out = client(&server, &["--request", request], b"");
        assert_eq!(out.code(), Some(0), "stderr: {}", out.stderr);
        assert!(
            out.stdout
                .starts_with(&format!("Response: {answer} with RTT ")),
            "{}",
            out.stdout
        );
        assert_eq!(out.stdout.lines().count(), 1, "{}", out.stdout);
    }
    // A host name works, not just an address.
    let out = client(&server, &["--host", "localhost", "--request", "temp"], b"");
    assert_eq!(out.code(), Some(0), "stderr: {}", out.stderr);
    // This machine's sensor if it has one; otherwise the simulated value,
    // which the pinned clock pins too (14:02 UTC: 19.7 degrees).
    let has_sensor = std::fs::read_dir("/sys/class/thermal")
        .map(|dir| {
            dir.filter_map(Result::ok)
                .any(|e| e.path().join("temp").exists())
        })
        .unwrap_or(false);
    let expected = if has_sensor {
        "(sensor thermal_zone"
    } else {
        "Response: 19.7 \u{b0}C (simulated) with RTT"
    };
    assert!(out.stdout.contains(expected), "{}", out.stdout);
}

#[test]
fn count_prints_rtt_statistics() {
    let server = server(&[]);
    let out = client(&server, &["--request", "date", "--count", "3"], b"");
    assert_eq!(out.code(), Some(0), "stderr: {}", out.stderr);
    assert_eq!(
        out.stdout.matches("Response: 2026-11-21 with RTT").count(),
        3,
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains(&format!("--- {} ping statistics ---", server.addr)),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("3 packets transmitted, 3 received, 0% packet loss"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("rtt min/avg/max/mdev = "),
        "{}",
        out.stdout
    );
}

#[test]
fn verbose_shows_numbers_that_agree_with_the_protocol() {
    let server = server(&[]);
    let out = client(&server, &["--request", "time", "--verbose"], b"");
    assert_eq!(out.code(), Some(0), "stderr: {}", out.stderr);
    // The last exchange is the one used (an earlier one may have given key 0).
    let mine = out
        .stdout
        .lines()
        .rfind(|l| l.contains("my private key a = "))
        .expect("a line");
    let theirs = out
        .stdout
        .lines()
        .rfind(|l| l.contains("server's public key B = "))
        .expect("a line");
    let number_after = |line: &str, label: &str| -> u32 {
        line.split(label)
            .nth(1)
            .expect(label)
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .expect("digits")
            .parse()
            .expect("a number")
    };
    let a = number_after(mine, "a = ");
    let public = number_after(mine, "g^a mod p = ");
    let b = number_after(theirs, "B = ");
    let key = number_after(theirs, "s mod 256 = ");
    assert_eq!(KeyPair::from_private(a).public, public);
    assert_eq!(
        u32::from(caesar_key(KeyPair::from_private(a).shared_secret(b))),
        key
    );
    assert_ne!(key, 0);
}

#[test]
fn the_python_client_in_the_protocol_document_works() {
    if !common::have_tool("python3") {
        return;
    }
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/labs/time-protocol.md"
    ))
    .expect("protocol doc");
    let code = doc
        .split("```python\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a python block");
    let server = server(&[]);
    let code = code.replace("7777", &server.port().to_string());
    let out = run("python3", &["-c", &code], b"");
    assert_eq!(out.code(), Some(0), "stderr: {}", out.stderr);
    assert!(
        out.stdout.contains("TIME -> 14:02:19.198\n"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("DATE -> 2026-11-21\n"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("TEMP -> "), "{}", out.stdout);
}

#[test]
fn plain_mode_sends_plain_frames() {
    let server = server(&["--plain"]);
    let out = client(&server, &["--plain", "--request", "time"], b"");
    assert_eq!(out.code(), Some(0), "stderr: {}", out.stderr);
    assert!(
        out.stdout.starts_with("Response: 14:02:19.198 with RTT"),
        "{}",
        out.stdout
    );
    // On the wire: PLAIN both ways, then readable frames.
    let mut raw = Raw::connect(server.addr);
    raw.send(b"PLAIN\n");
    assert_eq!(raw.line(), "PLAIN\n");
    raw.send(b"\x00\x04DATE");
    let mut answer = [0u8; 12];
    raw.reader.read_exact(&mut answer).expect("answer");
    assert_eq!(&answer, b"\x00\x0a2026-11-21");
}

#[test]
fn a_plain_client_and_an_encrypting_server_both_say_so() {
    let server = server(&[]);
    let out = client(&server, &["--plain", "--request", "time"], b"");
    assert_eq!(out.code(), Some(1));
    assert!(
        out.stderr
            .contains("error: the server refused the handshake: this server encrypts"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("run time_client without --plain"),
        "{}",
        out.stderr
    );
    assert_error_and_hint(&out, "both run with --plain or both without");
    server.expect_line("handshake refused: this server encrypts");
    // ... and the server still serves.
    assert_eq!(client(&server, &["--request", "date"], b"").code(), Some(0));
}

#[test]
fn an_encrypting_client_and_a_plain_server_both_say_so() {
    let server = server(&["--plain"]);
    let out = client(&server, &["--request", "time"], b"");
    assert_eq!(out.code(), Some(1));
    assert!(
        out.stderr
            .contains("error: the server refused the handshake: this server is plain"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("run time_client with --plain"),
        "{}",
        out.stderr
    );
    assert_error_and_hint(&out, "both run with --plain or both without");
    server.expect_line("handshake refused: this server is plain");
}

/// A one-connection server written in the test that reads the client's
/// first line and answers `reply` (or just closes when it is empty).
fn wrong_server(reply: &'static [u8]) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    thread::spawn(move || {
        let (stream, _) = listener.accept().expect("accept");
        let mut reader = BufReader::new(stream.try_clone().expect("clone"));
        let _ = read_line(&mut reader);
        let _ = (&stream).write_all(reply);
    });
    port
}

#[test]
fn a_server_that_does_not_speak_the_protocol_is_an_error_with_a_hint() {
    // Bad inputs: an HTTP status line, a key out of range, and silence
    // (the connection closed without a handshake line).
    for (reply, error) in [
        (
            &b"HTTP/1.1 400 Bad Request\r\n"[..],
            "error: the server's handshake line makes no sense: expected 'KEY <public key>' or 'PLAIN', got \"HTTP/1.1 400 Bad Request\"",
        ),
        (
            b"KEY 300\n",
            "error: the server's handshake line makes no sense: public key '300' is not a number from 1 to 256",
        ),
        (
            b"",
            "error: the server closed the connection during the key exchange",
        ),
    ] {
        let port = wrong_server(reply).to_string();
        let out = run(CLIENT, &["--port", &port, "--request", "time"], b"");
        assert_error_and_hint(&out, "is another service listening on that port?");
        assert!(out.stderr.starts_with(error), "{}", out.stderr);
    }
}

#[test]
fn a_session_the_server_ends_is_an_error_with_a_hint() {
    // A server that agrees a key, then closes instead of answering.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port().to_string();
    thread::spawn(move || {
        let (stream, _) = listener.accept().expect("accept");
        let mut reader = BufReader::new(stream.try_clone().expect("clone"));
        let line = read_line(&mut reader).expect("read").expect("a line");
        let Ok(Hello::Key(_)) = Hello::parse(&line) else {
            return;
        };
        // Public key 1: the secret is 1 whatever the client picked.
        let _ = (&stream).write_all(b"KEY 1\n");
        let _ = read_frame(&mut reader, 1);
    });
    let out = run(CLIENT, &["--port", &port, "--request", "date"], b"");
    assert_error_and_hint(&out, "its log says why");
    assert!(
        out.stderr
            .starts_with("error: the server closed the connection before answering DATE"),
        "{}",
        out.stderr
    );
}

#[test]
fn menu_input_that_is_not_utf8_is_a_wrong_choice() {
    let server = server(&[]);
    let out = client(&server, &[], b"\xff\xfe\n2\n4\n");
    assert_eq!(out.code(), Some(0), "stderr: {}", out.stderr);
    assert!(
        out.stdout
            .contains("is not on the menu: type 1, 2, 3 or 4."),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("Response: 2026-11-21 with RTT"),
        "{}",
        out.stdout
    );
}

#[test]
fn frames_split_across_reads_and_frames_sent_together() {
    let server = server(&[]);
    let mut raw = Raw::connect(server.addr);
    let key = raw.handshake();
    // One byte per write, with TCP_NODELAY: the server's read()s get the
    // frame in pieces. (The pauses only make separate segments likely; the
    // test passes the same if the bytes coalesce.)
    for byte in encode_frame(key, b"TIME") {
        raw.send(&[byte]);
        thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(raw.answer(key), "14:02:19.198");
    // Two frames in one write: two answers, in order.
    let mut both = encode_frame(key, b"DATE");
    both.extend(encode_frame(key, b"TIME"));
    raw.send(&both);
    assert_eq!(raw.answer(key), "2026-11-21");
    assert_eq!(raw.answer(key), "14:02:19.198");
}

#[test]
fn a_key_of_zero_makes_both_sides_exchange_again() {
    let server = server(&[]);
    // A private key of 32 gives A = 11^32 mod 257 = 256, and the secret
    // B^32 is 256 (key 0) whenever the server's private key is odd: half the
    // time. 64 connections all missing it would take a 2^-64 chance.
    for _ in 0..64 {
        let mut raw = Raw::connect(server.addr);
        let secret = KeyPair::from_private(32).shared_secret(raw.exchange(32));
        if caesar_key(secret) != 0 {
            continue;
        }
        // Key 0: the server must now wait for a fresh KEY line, not frames.
        let key = raw.handshake();
        assert_eq!(raw.ask(key, b"DATE"), "2026-11-21");
        server.expect_line("exchanging again");
        return;
    }
    panic!("64 connections and never a key of 0");
}

#[test]
fn thirty_three_clients_against_thirty_two_workers() {
    let server = server(&["--threads", "32"]);
    let mut served: Vec<Raw> = (0..32)
        .map(|_| {
            let mut raw = Raw::connect(server.addr);
            raw.handshake();
            raw
        })
        .collect();
    for _ in 0..32 {
        server.expect_line(" connection open");
    }
    // The 33rd: its connect() succeeds (the kernel completes the handshake
    // and queues it in the backlog) but its key exchange is not answered.
    let mut waiting = spawn_client(&server, &["--request", "date", "--timeout", "1s"]);
    let notice = waiting.wait_for_line("waiting for a free worker");
    assert!(notice.contains("all its workers are busy"), "{notice}");
    let opens = |s: &Server| {
        s.lines_so_far()
            .iter()
            .filter(|l| l.ends_with(" connection open"))
            .count()
    };
    assert_eq!(
        opens(&server),
        32,
        "the 33rd was accepted while 32 workers were busy"
    );
    // The wait for a worker is not limited by --timeout (1s): outlast it.
    // (A pause, not synchronisation: the test passes the same without it.)
    thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        opens(&server),
        32,
        "the 33rd was accepted while 32 workers were busy"
    );
    // One of the 32 leaves: now, and not before, the 33rd is served.
    let leaving = served.remove(7);
    let leaver = leaving.local();
    drop(leaving);
    let answer = waiting.wait_for_line("Response: ");
    assert!(
        answer.starts_with("Response: 2026-11-21 with RTT"),
        "{answer}"
    );
    assert_eq!(waiting.wait_for_exit(), Some(0));
    server.expect_line("\"DATE\" -> 2026-11-21");
    let lines = server.lines_so_far();
    let closed = lines
        .iter()
        .position(|l| l.contains(&format!("{leaver} connection closed")))
        .expect("leaver's close is logged");
    let last_open = lines
        .iter()
        .rposition(|l| l.ends_with(" connection open"))
        .expect("opens");
    assert!(
        closed < last_open,
        "the 33rd was served before a worker was free: {lines:#?}"
    );
    assert_eq!(opens(&server), 33);
    drop(served);
}

#[test]
fn bad_handshakes_get_an_error_line_and_the_server_goes_on() {
    let server = server(&["--threads", "2"]);
    for (line, expected) in [
        (
            "KEY abc\n",
            "ERROR public key 'abc' is not a number from 1 to 256\n",
        ),
        (
            "KEY 0\n",
            "ERROR public key '0' is not a number from 1 to 256\n",
        ),
        (
            "KEY 257\n",
            "ERROR public key '257' is not a number from 1 to 256\n",
        ),
        (
            "KEY -5\n",
            "ERROR public key '-5' is not a number from 1 to 256\n",
        ),
        (
            "KEY 99999999999999999999\n",
            "ERROR public key '99999999999999999999' is not a number from 1 to 256\n",
        ),
        (
            "GET / HTTP/1.1\r\n",
            "ERROR expected 'KEY <public key>' or 'PLAIN', got \"GET / HTTP/1.1\"\n",
        ),
        (
            "\n",
            "ERROR expected 'KEY <public key>' or 'PLAIN', got \"\"\n",
        ),
    ] {
        let mut raw = Raw::connect(server.addr);
        raw.send(line.as_bytes());
        assert_eq!(raw.line(), expected, "for {line:?}");
        assert!(raw.closed_by_server(), "for {line:?}");
        server.expect_line(&format!(
            "{} connection closed: handshake refused",
            raw.local()
        ));
    }
    // A KEY line longer than 256 bytes (the protocol's limit): refused as
    // not a handshake line at all, whatever it began with.
    let mut raw = Raw::connect(server.addr);
    raw.send(format!("KEY {}\n", "9".repeat(300)).as_bytes());
    assert_eq!(
        raw.line(),
        format!(
            "ERROR expected 'KEY <public key>' or 'PLAIN', got \"KEY {}\"...\n",
            "9".repeat(36)
        )
    );
    assert!(raw.closed_by_server());
    server.expect_line(&format!(
        "{} connection closed: handshake refused: expected 'KEY",
        raw.local()
    ));
    drop(raw);
    // 100 kB of binary garbage without a newline: refused after 256 bytes.
    let mut raw = Raw::connect(server.addr);
    let garbage: Vec<u8> = (0..100_000u32)
        .map(|i| (i * 7 % 251) as u8 + 1)
        .filter(|&b| b != b'\n')
        .collect();
    let _ = raw.writer.write_all(&garbage); // the server may reset before it all arrives
    server.expect_line(&format!(
        "{} connection closed: handshake refused: expected 'KEY",
        raw.local()
    ));
    assert_still_serves(&server);
}

#[test]
fn bad_frames_get_an_error_answer_and_the_server_goes_on() {
    let server = server(&["--threads", "2"]);
    let mut raw = Raw::connect(server.addr);
    let key = raw.handshake();
    // Unknown and empty requests: an error answer, and the connection stays.
    assert_eq!(
        raw.ask(key, b"HELLO"),
        "ERROR unknown request \"HELLO\": ask TIME, DATE or TEMP"
    );
    assert_eq!(
        raw.ask(key, b"time"),
        "ERROR unknown request \"time\": ask TIME, DATE or TEMP"
    );
    assert_eq!(
        raw.ask(key, b""),
        "ERROR unknown request \"\": ask TIME, DATE or TEMP"
    );
    assert_eq!(
        raw.ask(key, &[0xff, 0, 0x0a]),
        "ERROR unknown request \"\\xff\\u{0}\\n\": ask TIME, DATE or TEMP"
    );
    assert_eq!(raw.ask(key, b"TIME"), "14:02:19.198");
    // An oversized frame: an error answer, then the server closes.
    raw.send(&[0xff, 0xff]);
    assert_eq!(
        raw.answer(key),
        "ERROR frame of 65535 bytes is longer than 1024"
    );
    assert!(raw.closed_by_server());
    server.expect_line(&format!(
        "{} connection closed: frame of 65535 bytes is longer than 1024",
        raw.local()
    ));

    // A client that vanishes in the middle of a frame.
    let mut raw = Raw::connect(server.addr);
    let key = raw.handshake();
    let frame = encode_frame(key, b"TEMP");
    raw.send(&frame[..4]);
    let who = raw.local();
    drop(raw);
    server.expect_line(&format!("{who} connection closed: the peer closed the connection in the middle of a frame (4 of 6 bytes received)"));

    // A client that vanishes before the key exchange.
    let raw = Raw::connect(server.addr);
    let who = raw.local();
    drop(raw);
    server.expect_line(&format!(
        "{who} connection closed: the client left before the key exchange"
    ));
    assert_still_serves(&server);
}

#[test]
fn a_silent_client_is_dropped_after_the_handshake_timeout() {
    // One worker: while the silent client holds it nobody else is served,
    // so the good client's answer proves the timeout freed the worker.
    let server = server(&["--threads", "1", "--handshake-timeout", "300ms"]);
    let silent = Raw::connect(server.addr);
    server.expect_line(&format!("{} connection open", silent.local()));
    let out = client(&server, &["--request", "date", "--timeout", "10s"], b"");
    assert_eq!(out.code(), Some(0), "stderr: {}", out.stderr);
    assert!(
        out.stdout.contains("Response: 2026-11-21"),
        "{}",
        out.stdout
    );
    // The client has its answer; wait until the log line for it is read too.
    server.expect_line("\"DATE\"");
    let lines = server.lines_so_far();
    let dropped = lines
        .iter()
        .position(|l| {
            l.contains(&format!(
                "{} connection closed: no handshake line within 300ms",
                silent.local()
            ))
        })
        .unwrap_or_else(|| panic!("silent client not dropped: {lines:#?}"));
    let date = lines
        .iter()
        .position(|l| l.contains("\"DATE\""))
        .expect("the good client was served");
    assert!(dropped < date, "{lines:#?}");
}

#[test]
fn a_client_trickling_its_handshake_is_dropped_at_the_deadline() {
    use std::io::ErrorKind;
    use std::time::Duration;
    // SO_RCVTIMEO bounds each read(), so a client sending a byte at a time
    // could hold a worker for ever; the deadline is for the whole line.
    let server = server(&["--threads", "1", "--handshake-timeout", "1s"]);
    let mut slow = std::net::TcpStream::connect_timeout(&server.addr, WAIT).expect("connect");
    let local = slow.local_addr().expect("local address");
    server.expect_line(&format!("{local} connection open"));
    // The 400 ms read timeout paces the trickle: "KEY 5" without its
    // newline, a byte every 400 ms, 2 s in all, unless the server closes.
    slow.set_read_timeout(Some(Duration::from_millis(400)))
        .expect("timeout");
    let mut closed_early = false;
    for byte in b"KEY 5" {
        if slow.write_all(&[*byte]).is_err() {
            closed_early = true;
            break;
        }
        let mut buf = [0u8; 64];
        match slow.read(&mut buf) {
            Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            // 0 bytes (the server's FIN) or a reset: the server gave up on us.
            _ => {
                closed_early = true;
                break;
            }
        }
    }
    assert!(
        closed_early,
        "the server waited for the whole trickled line"
    );
    server.expect_line(&format!(
        "{local} connection closed: no handshake line within 1s"
    ));
    // The worker is free again: a good client is served.
    let out = client(&server, &["--request", "date", "--timeout", "10s"], b"");
    assert_eq!(out.code(), Some(0), "stderr: {}", out.stderr);
}

#[test]
fn a_client_trickling_a_request_frame_is_dropped_at_the_request_timeout() {
    // Bad peer: after the key exchange, a frame sent a byte every 400 ms,
    // 2.4 s in all; SO_RCVTIMEO alone would restart with every byte.
    let server = server(&["--threads", "1", "--request-timeout", "1s"]);
    let mut slow = Raw::connect(server.addr);
    let key = slow.handshake();
    let local = slow.local();
    let frame = encode_frame(key, b"TIME");
    slow.reader
        .get_ref()
        .set_read_timeout(Some(Duration::from_millis(400)))
        .expect("timeout");
    let mut told = Vec::new();
    for byte in &frame[..frame.len() - 1] {
        if slow.writer.write_all(&[*byte]).is_err() {
            break;
        }
        let mut buf = [0u8; 128];
        match slow.reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => told.extend_from_slice(&buf[..n]),
            // The pacing timeout: nothing from the server yet.
            Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    server.expect_line(&format!(
        "{local} connection closed: request frame not complete within 1s (--request-timeout"
    ));
    let told = read_frame(&mut &told[..], key).expect("a whole frame");
    assert_eq!(
        told.as_deref(),
        Some(&b"ERROR request not complete within 1s"[..])
    );
    // The only worker is free again: a quick client is served.
    assert_still_serves(&server);
}

#[test]
fn idle_clients_after_the_handshake_are_told_and_closed_and_the_next_is_served() {
    // Bad peers: 33 clients that finish the key exchange and then send
    // nothing, against 32 workers: 32 hold every worker, the 33rd waits in
    // the backlog with them. Only --idle-timeout frees the workers.
    let server = server(&["--threads", "32", "--idle-timeout", "2s"]);
    let mut idle: Vec<(Raw, u8)> = (0..32)
        .map(|_| {
            let mut raw = Raw::connect(server.addr);
            let key = raw.handshake();
            (raw, key)
        })
        .collect();
    let queued = Raw::connect(server.addr);
    let queued_local = queued.local();
    // A quick client, behind all of them: served once the limit passes.
    let out = client(&server, &["--request", "date", "--timeout", "10s"], b"");
    assert_eq!(out.code(), Some(0), "stderr: {}", out.stderr);
    assert!(
        out.stdout.contains("Response: 2026-11-21 with RTT"),
        "{}",
        out.stdout
    );
    // Every idle client was told why, in an ERROR frame, then closed.
    for (raw, key) in &mut idle {
        assert_eq!(
            raw.answer(*key),
            "ERROR idle for 2s: the server closes the session to free its worker for other clients"
        );
        assert!(raw.closed_by_server());
    }
    let lines = server.lines_so_far();
    let first_idle_close = lines
        .iter()
        .position(|l| l.contains("connection closed: no request for 2s (--idle-timeout)"))
        .unwrap_or_else(|| panic!("no idle close: {lines:#?}"));
    let queued_open = lines
        .iter()
        .position(|l| l.contains(&format!("{queued_local} connection open")))
        .unwrap_or_else(|| panic!("the 33rd was never accepted: {lines:#?}"));
    assert!(
        first_idle_close < queued_open,
        "the 33rd was accepted while 32 workers were busy: {lines:#?}"
    );
    drop(queued);
}

#[test]
fn the_menu_after_the_idle_timeout_says_the_server_ended_the_session() {
    let server = server(&["--idle-timeout", "1s"]);
    let mut child = Command::new(CLIENT)
        .args(["--port", &server.port().to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start time_client");
    let mut stdin = child.stdin.take().expect("piped");
    stdin.write_all(b"2\n").expect("choice");
    server.expect_line("\"DATE\" -> 2026-11-21");
    server.expect_line("connection closed: no request for 1s (--idle-timeout)");
    // Back at the menu after the limit: the client says what happened
    // instead of printing the server's ERROR frame as a response.
    stdin.write_all(b"1\n").expect("choice");
    drop(stdin);
    let out = finish(child);
    assert_error_and_hint(&out, "--idle-timeout");
    assert!(
        out.stderr.starts_with(
            "error: the server ended the session: ERROR idle for 1s: the server closes the session"
        ),
        "{}",
        out.stderr
    );
    assert_eq!(
        out.stdout.matches("Response: ").count(),
        1,
        "{}",
        out.stdout
    );
}

#[test]
fn a_bad_clock_setting_is_a_setup_error() {
    let out = run_with_env(
        SERVER,
        &["--port", "0"],
        b"",
        &[("SOCKETLAB_NOW", "yesterday")],
    );
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr
            .starts_with("error: invalid SOCKETLAB_NOW 'yesterday'"),
        "{}",
        out.stderr
    );
    assert_error_and_hint(&out, "unset SOCKETLAB_NOW");
}

#[test]
fn client_before_server_is_refused_with_a_hint() {
    let port = free_tcp_port().to_string();
    let out = run(CLIENT, &["--port", &port, "--request", "time"], b"");
    assert_error_and_hint(&out, "RST");
}

#[test]
fn help_shows_every_default() {
    let out = run(SERVER, &["--help"], b"");
    for default in [
        "[default: 7777]",
        "[default: 32]",
        "[default: 5s]",
        "[default: 2m]",
        "[default: 0.0.0.0]",
    ] {
        assert!(
            out.stdout.contains(default),
            "time_server --help lacks {default}: {}",
            out.stdout
        );
    }
    let out = run(CLIENT, &["--help"], b"");
    for default in [
        "[default: 7777]",
        "[default: 127.0.0.1]",
        "[default: 5s]",
        "[default: 1]",
    ] {
        assert!(
            out.stdout.contains(default),
            "time_client --help lacks {default}: {}",
            out.stdout
        );
    }
    for bad in [
        &["--threads", "0"][..],
        &["--threads", "x"],
        &["--handshake-timeout", "0s"],
        &["--request-timeout", "0s"],
        &["--idle-timeout", "0s"],
        &["--idle-timeout", "later"],
    ] {
        assert_eq!(run(SERVER, bad, b"").code(), Some(2), "{bad:?}");
    }
    assert_eq!(
        run(CLIENT, &["--count", "3"], b"").code(),
        Some(2),
        "--count without --request"
    );
    assert_eq!(run(CLIENT, &["--request", "weather"], b"").code(), Some(2));
}

/// Waits (bounded) for a client started with piped stdout and stderr to
/// exit, and collects what it printed.
fn finish(child: Child) -> common::Output {
    let pid = child.id().to_string();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let Ok(out) = rx.recv_timeout(WAIT) else {
        let _ = Command::new("kill").args(["-KILL", &pid]).status();
        panic!("time_client did not exit within {WAIT:?}");
    };
    let out = out.expect("time_client's output");
    common::Output {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        stdout_bytes: out.stdout,
    }
}

/// A good client still gets its answer.
fn assert_still_serves(server: &Server) {
    let out = client(server, &["--request", "time", "--timeout", "10s"], b"");
    assert_eq!(out.code(), Some(0), "stderr: {}", out.stderr);
    // (It may first print that it waits for a free worker: a worker that
    // closed a bad client reads what that client still sends for up to a
    // second before it closes the socket.)
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with("Response: 14:02:19.198")),
        "{}",
        out.stdout
    );
}

/// A time_client left running, whose stdout lines arrive as it prints them.
struct Running {
    child: Child,
    lines: Receiver<String>,
}

fn spawn_client(server: &Server, args: &[&str]) -> Running {
    let mut child = Command::new(CLIENT)
        .args(["--port", &server.port().to_string()])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start time_client");
    let stdout = child.stdout.take().expect("piped");
    let (tx, lines) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    Running { child, lines }
}

impl Running {
    fn wait_for_line(&mut self, needle: &str) -> String {
        loop {
            match self.lines.recv_timeout(WAIT) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => continue,
                Err(err) => panic!("time_client printed no {needle:?} within {WAIT:?}: {err}"),
            }
        }
    }

    fn wait_for_exit(&mut self) -> Option<i32> {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status.code();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "time_client did not exit"
            );
            thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
