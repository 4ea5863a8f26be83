//! udp_server and udp_client: the K&R UDP lab, the pinger, and bad input.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::Duration;

use common::{Server, WAIT, assert_error_and_hint, free_udp_port, have_tool, run};

const SERVER: &str = env!("CARGO_BIN_EXE_udp_server");
const CLIENT: &str = env!("CARGO_BIN_EXE_udp_client");

fn udp_server(extra: &[&str]) -> Server {
    let mut args = vec!["--bind", "127.0.0.1", "--port", "0"];
    args.extend_from_slice(extra);
    Server::start(SERVER, &args)
}

/// Sends one datagram from a fresh socket and returns the reply.
fn round_trip(server: &Server, datagram: &[u8]) -> Vec<u8> {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("client socket");
    socket.set_read_timeout(Some(WAIT)).expect("timeout");
    socket.send_to(datagram, server.addr).expect("send");
    let mut buf = vec![0u8; 70_000];
    let (n, from) = socket.recv_from(&mut buf).expect("a reply");
    assert_eq!(from, server.addr, "reply from the server's address");
    buf.truncate(n);
    buf
}

#[test]
fn classic_python_client_gets_the_uppercased_line() {
    if !have_tool("python3") {
        return;
    }
    let server = udp_server(&[]);
    let port = server.port().to_string();
    let out = run(
        "python3",
        &["tests/classic/UDPClient.py", "127.0.0.1", &port],
        b"hello from python\n",
    );
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, "Input lowercase sentence:HELLO FROM PYTHON\n");
    server.expect_line("received 17 bytes \"hello from python\"");
}

#[test]
fn udp_client_works_against_the_classic_python_server() {
    if !have_tool("python3") {
        return;
    }
    let server = Server::start("python3", &["tests/classic/UDPServer.py", "0"]);
    let port = server.port().to_string();
    let out = run(CLIENT, &["--port", &port, "hello", "python", "server"], b"");
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let mut lines = out.stdout.lines();
    assert_eq!(lines.next(), Some("HELLO PYTHON SERVER"));
    let rtt = lines.next().expect("an RTT line");
    assert!(
        rtt.starts_with("RTT ") && rtt.contains(" ms (19 bytes from 127.0.0.1:"),
        "{rtt}"
    );
}

#[test]
fn udp_client_prompts_like_the_classic_lab() {
    let server = udp_server(&[]);
    let port = server.port().to_string();
    let out = run(CLIENT, &["--port", &port], b"typed line\n");
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert!(
        out.stdout
            .starts_with("Input lowercase sentence:TYPED LINE\n"),
        "{}",
        out.stdout
    );
}

#[test]
fn only_ascii_letters_change_and_other_bytes_pass_through() {
    let server = udp_server(&[]);
    // UTF-8 "é" (c3 a9), a byte that is not UTF-8 (ff), NUL, digits, punctuation.
    let reply = round_trip(&server, b"caf\xc3\xa9 \xff\x00 abc-123 &*!");
    assert_eq!(reply, b"CAF\xc3\xa9 \xff\x00 ABC-123 &*!");
    server.expect_line(r#"received 20 bytes "café \xff\u{0} abc-123 &*!""#);
}

#[test]
fn localhost_reaches_a_server_bound_to_every_interface() {
    let server = Server::start(SERVER, &["--bind", "0.0.0.0", "--port", "0"]);
    let port = server.port().to_string();
    let out = run(
        CLIENT,
        &["--host", "localhost", "--port", &port, "via", "localhost"],
        b"",
    );
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert!(out.stdout.starts_with("VIA LOCALHOST\n"), "{}", out.stdout);
}

// Linux and macOS: silence. Windows hands an unconnected UDP socket the
// ICMP port unreachable too, as WSAECONNRESET (10054), at once.
#[cfg_attr(windows, ignore = "Windows reports the port unreachable as 10054")]
#[test]
fn client_before_server_unconnected_times_out_with_a_hint() {
    let port = free_udp_port().to_string();
    let out = run(
        CLIENT,
        &["--port", &port, "--timeout", "300ms", "anyone there"],
        b"",
    );
    assert_error_and_hint(&out, "no reply at all");
    assert!(
        out.stderr
            .contains("an unconnected UDP socket never hears the ICMP port unreachable"),
        "{}",
        out.stderr
    );
}

#[test]
fn client_before_server_connected_is_refused_by_the_icmp_port_unreachable() {
    let port = free_udp_port().to_string();
    // A long timeout: the refusal must come from the ICMP error, not the clock.
    let out = run(
        CLIENT,
        &[
            "--port",
            &port,
            "--connect",
            "--timeout",
            "30s",
            "anyone there",
        ],
        b"",
    );
    // The hint is chosen by the ErrorKind: ECONNREFUSED on Linux and
    // macOS, WSAECONNRESET (10054) on Windows; both name the ICMP error.
    assert_error_and_hint(&out, "ICMP port unreachable came back");
    assert!(
        out.stderr.contains("failed to receive a reply"),
        "{}",
        out.stderr
    );
}

/// The pinger counts each ICMP port unreachable as an error reply and goes
/// on, as ping does, on every OS: Linux and macOS report it on the connected
/// socket as ECONNREFUSED, Windows as WSAECONNRESET (10054), which used to
/// end the run at the first ping.
#[test]
fn pinger_before_server_counts_every_port_unreachable_and_finishes_the_run() {
    let port = free_udp_port().to_string();
    let args = [
        "--port",
        &port,
        "--connect",
        "--count",
        "3",
        "--interval",
        "0s",
        "--timeout",
        "30s",
    ];
    let out = run(CLIENT, &args, b"");
    let unreachable = out
        .stdout
        .lines()
        .filter(|l| l.ends_with("Destination Port Unreachable"))
        .count();
    assert_eq!(unreachable, 3, "{}", out.stdout);
    assert!(
        out.stdout
            .contains("3 packets transmitted, 0 received, +3 errors, 100% packet loss"),
        "{}",
        out.stdout
    );
    assert_error_and_hint(&out, "ICMP port unreachable");
}

// Linux and macOS: silence. Windows hands an unconnected UDP socket the
// ICMP port unreachable too, as WSAECONNRESET (10054), at once.
#[cfg_attr(windows, ignore = "Windows reports the port unreachable as 10054")]
#[test]
fn wrong_port_is_silence_for_unconnected_udp_and_the_server_sees_nothing() {
    let server = udp_server(&[]);
    let wrong = free_udp_port().to_string();
    let out = run(
        CLIENT,
        &["--port", &wrong, "--timeout", "300ms", "hello"],
        b"",
    );
    assert_error_and_hint(&out, "the wrong host or port");
    let port = server.port().to_string();
    let out = run(CLIENT, &["--port", &port, "marker"], b"");
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    server.expect_line("received 6 bytes \"marker\"");
    assert!(
        !server
            .lines_so_far()
            .iter()
            .any(|l| l.contains("\"hello\"")),
        "the server got the datagram sent to the wrong port"
    );
}

/// One pinger run against a fresh server: the seqs the server dropped (from
/// its log, the deterministic part), the seqs the client saw time out, and
/// the client's output.
fn ping_run(seed: &str) -> (BTreeSet<u32>, BTreeSet<u32>, String) {
    let server = udp_server(&["--drop", "0.3", "--seed", seed]);
    let port = server.port().to_string();
    // A 1 s timeout, so a slow reply on a loaded machine is not taken for a loss.
    let args = [
        "--port",
        &port,
        "--count",
        "10",
        "--interval",
        "0s",
        "--timeout",
        "1s",
    ];
    let out = run(CLIENT, &args, b"");
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let timed_out = out
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("Request timed out: seq="))
        .map(|seq| seq.parse().expect("a seq number"))
        .collect();
    let dropped = server
        .lines_so_far()
        .iter()
        .filter(|l| l.ends_with("(simulated loss)"))
        .map(|l| {
            let ping = l.split("\"Ping ").nth(1).expect("a dropped ping");
            ping.split(' ')
                .next()
                .and_then(|seq| seq.parse().ok())
                .expect("its seq")
        })
        .collect();
    (dropped, timed_out, out.stdout)
}

#[test]
fn pinger_with_seeded_loss_loses_the_same_pings_twice() {
    let (first, timed_out, summary) = ping_run("7");
    assert_eq!(
        first, timed_out,
        "the client's timeouts are the server's drops"
    );
    let (second, _, _) = ping_run("7");
    assert_eq!(first, second, "same seed, same losses");
    assert!(
        !first.is_empty() && first.len() < 10,
        "some but not all lost: {first:?}"
    );
    let loss_line = format!(
        "10 packets transmitted, {} received, {}% packet loss, time ",
        10 - first.len(),
        first.len() * 10
    );
    assert!(summary.contains(&loss_line), "{summary}");
    let rtt_line = summary
        .lines()
        .find(|l| l.starts_with("rtt min/avg/max/mdev = "))
        .expect("rtt line");
    let numbers = rtt_line
        .trim_start_matches("rtt min/avg/max/mdev = ")
        .trim_end_matches(" ms");
    let values: Vec<f64> = numbers
        .split('/')
        .map(|v| v.parse().expect("a number"))
        .collect();
    assert_eq!(values.len(), 4, "{rtt_line}");
    assert!(
        values[0] <= values[1] && values[1] <= values[2],
        "min <= avg <= max: {rtt_line}"
    );
    let (other, _, _) = ping_run("8");
    assert_ne!(first, other, "another seed loses other pings");
}

#[test]
fn the_pinger_accepts_a_plain_echo_server() {
    // A server that echoes without uppercasing: replies start "Ping 1 ...".
    let echo = UdpSocket::bind("127.0.0.1:0").expect("echo socket");
    let port = echo.local_addr().expect("address").port().to_string();
    thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = echo.recv_from(&mut buf) {
            let _ = echo.send_to(&buf[..n], from);
        }
    });
    let out = run(
        CLIENT,
        &["--port", &port, "--count", "3", "--interval", "0s"],
        b"",
    );
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert!(
        out.stdout
            .contains("3 packets transmitted, 3 received, 0% packet loss"),
        "{}",
        out.stdout
    );
}

#[test]
fn bind_port_fixes_the_client_source_port() {
    let server = udp_server(&[]);
    let port = server.port().to_string();
    let source = free_udp_port();
    let out = run(
        CLIENT,
        &["--port", &port, "--bind-port", &source.to_string(), "p29"],
        b"",
    );
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert!(
        out.stdout.starts_with(&format!(
            "udp_client bound to local address 0.0.0.0:{source}\n"
        )),
        "{}",
        out.stdout
    );
    server.expect_line(&format!("127.0.0.1:{source} received 3 bytes"));
}

/// A --bind-port that another socket holds: the hint names the client's own
/// option, not the server's --port.
#[test]
fn a_taken_bind_port_names_bind_port_in_the_hint() {
    let held = UdpSocket::bind("0.0.0.0:0").expect("hold a port");
    let port = held.local_addr().expect("address").port().to_string();
    let out = run(CLIENT, &["--bind-port", &port, "hi"], b"");
    assert_error_and_hint(&out, "choose another --bind-port");
}

#[test]
fn bad_datagrams_are_answered_and_the_server_keeps_serving() {
    let server = udp_server(&[]);
    // An empty datagram is still a datagram: it gets an empty reply.
    assert_eq!(round_trip(&server, b""), b"");
    server.expect_line("received 0 bytes");
    // The largest IPv4 UDP payload, 65507 bytes, comes back whole.
    let big = vec![b'x'; 65_507];
    assert_eq!(round_trip(&server, &big), vec![b'X'; 65_507]);
    // Not UTF-8 at all.
    assert_eq!(round_trip(&server, &[0xff, 0xfe, b'a']), [0xff, 0xfe, b'A']);
    assert_eq!(round_trip(&server, b"still here"), b"STILL HERE");
}

#[test]
fn the_classic_buffer_truncates_long_datagrams_and_says_so() {
    let server = udp_server(&["--buffer", "2048"]);
    let reply = round_trip(&server, &[b'a'; 3000]);
    assert_eq!(reply, vec![b'A'; 2048]);
    server.expect_line(
        "sent a datagram of 3000 bytes, longer than --buffer 2048: only the first 2048 bytes were kept",
    );
    assert_eq!(round_trip(&server, b"next"), b"NEXT");
}

/// The same answer on every OS for a datagram longer than --buffer: Linux
/// and macOS truncate it in recvfrom(), Windows fails recvfrom() with
/// WSAEMSGSIZE (10040) and the server used to log an error and not reply.
#[test]
fn a_datagram_longer_than_a_tiny_buffer_is_truncated_and_answered_on_every_os() {
    let server = udp_server(&["--buffer", "10"]);
    assert_eq!(round_trip(&server, b"hello world, long"), b"HELLO WORL");
    server.expect_line("sent a datagram of 17 bytes, longer than --buffer 10");
    // Exactly --buffer bytes is not truncated.
    assert_eq!(round_trip(&server, b"0123456789"), b"0123456789");
    server.expect_line("0123456789");
    assert!(
        !server
            .lines_so_far()
            .iter()
            .any(|l| l.contains("of 10 bytes")),
        "a datagram of exactly --buffer bytes was reported as cut"
    );
}

#[test]
fn stdin_bytes_that_are_not_utf8_are_sent_as_they_are() {
    let server = udp_server(&[]);
    let port = server.port().to_string();
    let out = run(CLIENT, &["--port", &port], b"caf\xe9 \xff ok\r\n");
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert!(
        out.stdout_bytes
            .starts_with(b"Input lowercase sentence:CAF\xe9 \xff OK\n"),
        "{:?}",
        out.stdout
    );
}

#[test]
fn stdin_that_ends_before_a_line_is_explained() {
    let out = run(CLIENT, &["--port", "9"], b"");
    assert_error_and_hint(&out, "give the message as arguments");
    assert_eq!(
        out.stdout, "Input lowercase sentence:\n",
        "the prompt's line is ended"
    );
}

#[test]
fn a_message_too_long_for_udp_is_refused_before_sending() {
    let server = udp_server(&[]);
    let port = server.port().to_string();
    let long = "y".repeat(65_508);
    let out = run(CLIENT, &["--port", &port, &long], b"");
    assert_error_and_hint(&out, "use TCP (tcp_client)");
    assert!(
        out.stderr.contains(
            "message of 65508 bytes is longer than the largest UDP datagram (65507 bytes)"
        ),
        "{}",
        out.stderr
    );
}

#[test]
fn bad_arguments_are_usage_errors() {
    for (exe, args) in [
        (SERVER, vec!["--drop", "1.5"]),
        (SERVER, vec!["--drop", "lots"]),
        (SERVER, vec!["--port", "abc"]),
        (SERVER, vec!["--buffer", "0"]),
        (SERVER, vec!["--bind", "256.0.0.1"]),
        (CLIENT, vec!["--count", "0"]),
        (CLIENT, vec!["--timeout", "0s", "x"]),
        (CLIENT, vec!["--timeout", "soon", "x"]),
        (CLIENT, vec!["--port", "65536", "x"]),
        (CLIENT, vec!["--count", "3", "a", "message"]),
        (CLIENT, vec!["--interval", "1s", "x"]),
        (CLIENT, vec!["--interval", "1s"]),
    ] {
        let out = run(exe, &args, b"");
        assert_eq!(out.code(), Some(2), "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.starts_with("error: "),
            "{args:?}: {}",
            out.stderr
        );
    }
    let out = run(SERVER, &["--help"], b"");
    for default in ["[default: 0.0.0.0]", "[default: 12000]", "[default: 65535]"] {
        assert!(out.stdout.contains(default), "--help lacks {default}");
    }
}

#[test]
fn ncat_is_a_udp_client_of_udp_server() {
    if !have_tool("ncat") {
        return;
    }
    let server = udp_server(&[]);
    let mut ncat = Command::new("ncat")
        .args(["-u", "127.0.0.1", &server.port().to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("ncat starts");
    // ncat exits when its stdin closes, so stdin stays open until the reply is read.
    let mut stdin = ncat.stdin.take().expect("stdin");
    stdin
        .write_all(b"hello from ncat\n")
        .expect("write to ncat");
    let stdout = ncat.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let reply = rx.recv_timeout(WAIT);
    let _ = ncat.kill();
    let _ = ncat.wait();
    assert_eq!(reply.expect("ncat printed the reply"), "HELLO FROM NCAT\n");
}

/// A peer that answers the first datagram with other datagrams, every 20 ms,
/// until told to stop: not one of them is the reply the client waits for.
fn noisy_peer() -> (String, Arc<AtomicBool>) {
    let peer = UdpSocket::bind("127.0.0.1:0").expect("peer socket");
    let port = peer.local_addr().expect("address").port().to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = Arc::clone(&stop);
    thread::spawn(move || {
        let mut buf = [0u8; 2048];
        let Ok((_, client)) = peer.recv_from(&mut buf) else {
            return;
        };
        while !stopped.load(Ordering::Relaxed) {
            let _ = peer.send_to(b"noise", client);
            thread::sleep(Duration::from_millis(20));
        }
    });
    (port, stop)
}

#[test]
fn datagrams_that_are_not_the_reply_do_not_extend_the_pings_timeout() {
    // A wait that started its timeout again for each datagram would never
    // end here (the noise goes on until the client exits) and run() would
    // fail after WAIT; one deadline per ping ends it after --timeout.
    let (port, stop) = noisy_peer();
    let out = run(
        CLIENT,
        &["--port", &port, "--count", "1", "--timeout", "300ms"],
        b"",
    );
    stop.store(true, Ordering::Relaxed);
    assert!(
        out.stdout.contains(&format!(
            "ignored 5 bytes from 127.0.0.1:{port}: not the reply to seq=1"
        )),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("Request timed out: seq=1"),
        "{}",
        out.stdout
    );
    assert_error_and_hint(&out, "no reply at all before the timeout");
}
