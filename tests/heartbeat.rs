//! heartbeat_client and heartbeat_server: one-way delay, seeded loss that
//! repeats, gaps, late and duplicated heartbeats, a client that stops, and
//! the lab's other UDP programs (udp_client, udp_server) as peers.

mod common;

use std::net::UdpSocket;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::Server;

const SERVER: &str = env!("CARGO_BIN_EXE_heartbeat_server");
const CLIENT: &str = env!("CARGO_BIN_EXE_heartbeat_client");

fn server(extra: &[&str]) -> Server {
    let mut args = vec!["--bind", "127.0.0.1", "--port", "0"];
    args.extend_from_slice(extra);
    Server::start(SERVER, &args)
}

/// Runs heartbeat_client to completion against `server`.
fn beats(server: &Server, count: u32) -> common::Output {
    let port = server.port().to_string();
    let count = count.to_string();
    let out = common::run(
        CLIENT,
        &["--port", &port, "--count", &count, "--interval", "20ms"],
        b"",
    );
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    out
}

/// A heartbeat written by hand, sent at `at`.
fn heartbeat(seq: u64, at: SystemTime) -> String {
    let since = at.duration_since(UNIX_EPOCH).expect("after 1970");
    format!(
        "heartbeat {seq} {}.{:06}",
        since.as_secs(),
        since.subsec_micros()
    )
}

/// The sequence numbers the server dropped (its `dropped "heartbeat N ..."` lines).
fn dropped(server: &Server) -> Vec<u64> {
    server
        .lines_so_far()
        .iter()
        .filter_map(|l| l.split("dropped \"heartbeat ").nth(1))
        .filter_map(|rest| rest.split(' ').next()?.parse().ok())
        .collect()
}

#[test]
fn each_heartbeat_gets_a_one_way_delay_and_the_stop_is_reported() {
    let server = server(&["--dead-after", "300ms"]);
    let out = beats(&server, 3);
    assert_eq!(
        out.stdout
            .lines()
            .filter(|l| l.starts_with("sent heartbeat "))
            .count(),
        3
    );
    for seq in 1..=3 {
        let line = server.expect_line(&format!(" heartbeat {seq}: one-way delay "));
        assert!(
            !line.contains("delay -"),
            "same host, same clock: never negative: {line}"
        );
    }
    server.expect_line(
        "stopped: no heartbeat for 300ms (--dead-after); the last was 3, 3 received, 0 lost",
    );
}

#[test]
fn seeded_loss_repeats_and_every_gap_is_reported() {
    let run = || {
        let server = server(&["--drop", "0.3", "--seed", "7", "--dead-after", "300ms"]);
        beats(&server, 12);
        let stopped = server.expect_line("stopped:");
        (dropped(&server), stopped, server.lines_so_far())
    };
    let (first, stopped, lines) = run();
    let (second, _, _) = run();
    assert!(!first.is_empty(), "a 30% drop loses some of 12: {lines:#?}");
    assert_eq!(first, second, "the same seed drops the same heartbeats");
    // Every dropped heartbeat but a trailing one shows up as lost.
    let last_kept = (1..=12)
        .rev()
        .find(|s| !first.contains(s))
        .expect("one arrived");
    let lost_lines = lines
        .iter()
        .filter(|l| l.contains(" lost "))
        .cloned()
        .collect::<Vec<_>>()
        .join("\n");
    let counted: Vec<u64> = first.iter().copied().filter(|&s| s < last_kept).collect();
    assert!(
        lost_lines.contains(&format!("(lost so far: {})", counted.len())),
        "{lost_lines}"
    );
    assert!(
        stopped.contains(&format!(
            "the last was {last_kept}, {} received, {} lost",
            last_kept - counted.len() as u64,
            counted.len()
        )),
        "{stopped}"
    );
}

#[test]
fn gaps_late_duplicates_and_a_late_start_are_told_apart() {
    let server = server(&[]);
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let now = SystemTime::now();
    // Sent by hand: starts at 5, skips 6 and 7, then 6 comes late, 8 twice.
    for seq in [5, 8, 6, 8] {
        socket
            .send_to(heartbeat(seq, now).as_bytes(), server.addr)
            .expect("send");
    }
    server.expect_line("heartbeat 5 (the first heard; 1 to 4 were not)");
    server.expect_line("lost 2 heartbeat(s): 6 to 7 (lost so far: 2)");
    server.expect_line("heartbeat 6 after 8 (late or duplicated)");
    server.expect_line("heartbeat 8 after 8 (late or duplicated)");
}

#[test]
fn a_clock_ahead_and_garbage_are_reported_and_the_server_goes_on() {
    let server = server(&[]);
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let ahead = SystemTime::now() + Duration::from_secs(5);
    socket
        .send_to(heartbeat(1, ahead).as_bytes(), server.addr)
        .expect("send");
    server.expect_line("the clocks disagree");
    // Tried: plain text, binary, an empty datagram.
    for junk in [&b"hello"[..], b"\xff\x00\x01", b""] {
        socket.send_to(junk, server.addr).expect("send");
        server.expect_line(&format!(
            "sent {} bytes that are not a heartbeat",
            junk.len()
        ));
    }
    socket
        .send_to(heartbeat(2, SystemTime::now()).as_bytes(), server.addr)
        .expect("send");
    server.expect_line("heartbeat 2: one-way delay");
}

#[test]
fn udp_client_gets_no_reply_and_udp_server_answers_a_heartbeat_nobody_reads() {
    // udp_client's "hello" is not a heartbeat, and the heartbeat server never replies.
    let hb = server(&[]);
    let port = hb.port().to_string();
    let out = common::run(
        env!("CARGO_BIN_EXE_udp_client"),
        &["--port", &port, "--timeout", "300ms", "hello"],
        b"",
    );
    common::assert_error_and_hint(&out, "no reply at all");
    hb.expect_line("sent 5 bytes that are not a heartbeat: \"hello\"");
    // udp_server takes heartbeats as any datagram and answers them uppercased;
    // the client never calls recvfrom(), and its kernel just discards the replies.
    let udp = Server::start(
        env!("CARGO_BIN_EXE_udp_server"),
        &["--bind", "127.0.0.1", "--port", "0"],
    );
    beats(&udp, 2);
    udp.expect_line("received");
    udp.expect_line("\"heartbeat 2 ");
}

#[test]
fn no_server_is_not_an_error_for_a_heartbeat_and_setup_failures_are() {
    // Nothing listens: UDP has no handshake, so the client cannot tell.
    let port = common::free_udp_port().to_string();
    let out = common::run(
        CLIENT,
        &["--port", &port, "--count", "2", "--interval", "10ms"],
        b"",
    );
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert!(out.stdout.contains("sent 2 heartbeats"), "{}", out.stdout);
    let out = common::run(
        CLIENT,
        &["--host", "no-such-host.invalid", "--count", "1"],
        b"",
    );
    common::assert_error_and_hint(&out, "could not be turned into an IP address");
    let taken = server(&[]);
    let port = taken.port().to_string();
    let out = common::run(SERVER, &["--bind", "127.0.0.1", "--port", &port], b"");
    common::assert_error_and_hint(&out, "already holds UDP port");
    for bad in [["--drop", "1.5"], ["--dead-after", "0s"]] {
        assert_eq!(common::run(SERVER, &bad, b"").code(), Some(2), "{bad:?}");
    }
}

#[test]
fn a_broadcast_address_is_refused_by_the_os_with_a_hint() {
    // sendto() to 255.255.255.255 without SO_BROADCAST fails with EACCES.
    let out = common::run(CLIENT, &["--host", "255.255.255.255", "--count", "1"], b"");
    common::assert_error_and_hint(&out, "broadcast address");
    assert!(
        out.stderr
            .contains("failed to send to 255.255.255.255:12000 over UDP"),
        "{}",
        out.stderr
    );
}
