//! loadgen against the real servers, against fake servers that answer
//! wrongly, and with bad arguments.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use common::{Output, Server, assert_error_and_hint, free_tcp_port, free_udp_port, run};

const LOADGEN: &str = env!("CARGO_BIN_EXE_loadgen");

fn loadgen(target: &str, addr: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "--target",
        target,
        addr,
        "--clients",
        "4",
        "--duration",
        "300ms",
    ];
    args.extend_from_slice(extra);
    run(LOADGEN, &args, b"")
}

/// The number after `name: ` in the summary, e.g. `errors: 3`.
fn count(out: &Output, name: &str) -> u64 {
    let prefix = format!("{name}: ");
    let line = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {name:?} line in {}", out.stdout));
    line.split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number in {line:?}"))
}

/// `requests: 120 sent, 118 answered in 0.30 s` -> 118
fn answered(out: &Output) -> u64 {
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with("requests: "))
        .unwrap_or_else(|| panic!("no requests line in {}", out.stdout));
    let words: Vec<&str> = line.split_whitespace().collect();
    words[3].parse().expect("answered count")
}

fn assert_clean(out: &Output) {
    assert_eq!(
        out.code(),
        Some(0),
        "stdout: {}\nstderr: {}",
        out.stdout,
        out.stderr
    );
    assert!(answered(out) > 0, "{}", out.stdout);
    assert_eq!(count(out, "errors"), 0, "{}", out.stdout);
    assert_eq!(count(out, "lost"), 0, "{}", out.stdout);
    assert!(out.stdout.contains("latency: p50 "), "{}", out.stdout);
    assert!(
        out.stdout.contains("clients served: 4 of 4"),
        "{}",
        out.stdout
    );
}

#[test]
fn udp_server_answers_every_request() {
    let server = Server::start(
        env!("CARGO_BIN_EXE_udp_server"),
        &["--port", "0", "--quiet"],
    );
    let out = loadgen("udp-echo", &format!("localhost:{}", server.port()), &[]);
    assert_clean(&out);
}

#[test]
fn tcp_server_answers_on_kept_connections() {
    let server = Server::start(
        env!("CARGO_BIN_EXE_tcp_server"),
        &["--port", "0", "--quiet"],
    );
    let out = loadgen("tcp-echo", &server.addr.to_string(), &["--size", "3000"]);
    assert_clean(&out);
}

#[test]
fn tcp_server_once_answers_a_connection_per_request() {
    let server = Server::start(
        env!("CARGO_BIN_EXE_tcp_server"),
        &["--port", "0", "--quiet", "--once"],
    );
    let out = loadgen("tcp-once", &server.addr.to_string(), &[]);
    assert_clean(&out);
}

#[test]
fn tcp_once_reports_the_classic_servers_cut_reply_as_errors() {
    // One recv(1024): a 2000-byte request comes back cut (or reset).
    let server = Server::start(
        env!("CARGO_BIN_EXE_tcp_server"),
        &["--port", "0", "--quiet", "--once"],
    );
    let out = loadgen("tcp-once", &server.addr.to_string(), &["--size", "2000"]);
    assert_error_and_hint(&out, "got no reply within --timeout");
    assert!(count(&out, "errors") > 0, "{}", out.stdout);
}

#[test]
fn time_server_queues_clients_beyond_its_workers_and_serves_them_all() {
    // 2 workers, 4 clients: two wait in the backlog until a session ends.
    let server = Server::start(
        env!("CARGO_BIN_EXE_time_server"),
        &["--port", "0", "--quiet", "--threads", "2"],
    );
    let out = loadgen(
        "time",
        &server.addr.to_string(),
        &["--session-requests", "20"],
    );
    assert_clean(&out);
}

#[test]
fn requests_caps_the_run() {
    let server = Server::start(
        env!("CARGO_BIN_EXE_tcp_server"),
        &["--port", "0", "--quiet"],
    );
    // 10 requests take well under the 5 s the run may last.
    let addr = server.addr.to_string();
    let args = [
        "--target",
        "tcp-echo",
        &addr,
        "--clients",
        "4",
        "--requests",
        "10",
        "--duration",
        "5s",
    ];
    let out = run(LOADGEN, &args, b"");
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert!(
        out.stdout.contains("requests: 10 sent, 10 answered"),
        "{}",
        out.stdout
    );
}

#[test]
fn udp_loss_is_counted_as_lost_and_fails_the_run() {
    let server = Server::start(
        env!("CARGO_BIN_EXE_udp_server"),
        &["--port", "0", "--quiet", "--drop", "0.5", "--seed", "1"],
    );
    let out = loadgen("udp-echo", &server.addr.to_string(), &["--timeout", "20ms"]);
    assert_error_and_hint(&out, "no reply within --timeout");
    assert!(out.stderr.contains("requests were lost"), "{}", out.stderr);
    assert!(count(&out, "lost") > 0, "{}", out.stdout);
    assert!(answered(&out) > 0, "{}", out.stdout);
    // A lost request is not an error: nothing wrong came back.
    assert_eq!(count(&out, "errors"), 0, "{}", out.stdout);
}

/// A flag that tells a fake server's thread to end.
fn stop_flag() -> Arc<AtomicBool> {
    Arc::new(AtomicBool::new(false))
}

#[test]
fn crossed_udp_replies_are_errors() {
    // A fake server that answers each datagram with the one before it,
    // uppercased: client 1 gets client 2's reply.
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let addr = socket.local_addr().expect("address");
    socket
        .set_read_timeout(Some(Duration::from_millis(50)))
        .expect("timeout");
    let stop = stop_flag();
    let stopped = Arc::clone(&stop);
    let fake = thread::spawn(move || {
        let mut previous: Option<Vec<u8>> = None;
        let mut buf = [0u8; 2048];
        while !stopped.load(Ordering::Relaxed) {
            let Ok((len, peer)) = socket.recv_from(&mut buf) else {
                continue;
            };
            let this = buf[..len].to_ascii_uppercase();
            let reply = previous.replace(this.clone()).unwrap_or(this);
            let _ = socket.send_to(&reply, peer);
        }
    });
    let out = loadgen("udp-echo", &addr.to_string(), &[]);
    stop.store(true, Ordering::Relaxed);
    fake.join().expect("fake server");
    assert_error_and_hint(&out, "got no reply within --timeout");
    assert!(count(&out, "errors") > 0, "{}", out.stdout);
    assert!(
        out.stdout.contains("wrong reply: expected \"LOADGEN "),
        "{}",
        out.stdout
    );
}

#[test]
fn a_duplicated_udp_reply_is_not_taken_for_the_next_one() {
    // A fake server that sends every reply twice: the copy of reply N
    // arrives while the client waits for reply N+1, and must be skipped.
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let addr = socket.local_addr().expect("address");
    socket
        .set_read_timeout(Some(Duration::from_millis(50)))
        .expect("timeout");
    let stop = stop_flag();
    let stopped = Arc::clone(&stop);
    let fake = thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while !stopped.load(Ordering::Relaxed) {
            let Ok((len, peer)) = socket.recv_from(&mut buf) else {
                continue;
            };
            let reply = buf[..len].to_ascii_uppercase();
            let _ = socket.send_to(&reply, peer);
            let _ = socket.send_to(&reply, peer);
        }
    });
    let out = loadgen("udp-echo", &addr.to_string(), &[]);
    stop.store(true, Ordering::Relaxed);
    fake.join().expect("fake server");
    assert_clean(&out);
    assert!(count(&out, "late replies ignored") > 0, "{}", out.stdout);
}

#[test]
fn an_echo_that_does_not_uppercase_is_an_error() {
    // A fake tcp_server that sends the bytes back unchanged.
    let addr = fake_tcp_server(|mut stream| {
        let mut buf = [0u8; 1024];
        while let Ok(n @ 1..) = stream.read(&mut buf) {
            if stream.write_all(&buf[..n]).is_err() {
                break;
            }
        }
    });
    let out = loadgen("tcp-echo", &addr, &[]);
    assert_error_and_hint(&out, "got no reply within --timeout");
    assert!(count(&out, "errors") > 0, "{}", out.stdout);
    assert!(
        out.stdout.contains("wrong reply: expected \"LOADGEN 0 1 ")
            || out.stdout.contains("wrong reply: expected \"LOADGEN 1 1 "),
        "{}",
        out.stdout
    );
    assert_eq!(answered(&out), 0, "{}", out.stdout);
}

/// A fake TCP server: `serve` gets each accepted connection on a thread.
fn fake_tcp_server(serve: fn(std::net::TcpStream)) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            thread::spawn(move || serve(stream));
        }
    });
    addr.to_string()
}

#[test]
fn a_server_that_never_replies_loses_every_request_within_the_timeout() {
    // Reads every request and never answers; after the client's FIN
    // (tcp-once) it keeps the connection open past the client's timeout.
    let addr = fake_tcp_server(|mut stream| {
        let mut buf = [0u8; 1024];
        while let Ok(1..) = stream.read(&mut buf) {}
        thread::sleep(Duration::from_secs(1));
    });
    for target in ["tcp-echo", "tcp-once"] {
        let out = loadgen(target, &addr, &["--timeout", "200ms"]);
        assert_error_and_hint(&out, "a lost request got no reply within --timeout");
        assert!(out.stderr.contains("requests were lost"), "{}", out.stderr);
        assert_eq!(answered(&out), 0, "{target}: {}", out.stdout);
        assert_eq!(count(&out, "errors"), 0, "{target}: {}", out.stdout);
        // Each of the 4 clients gives a request up after 200 ms, in a run
        // of 300 ms: its first request is lost, and a second one if it
        // started before the end (usually 8 in all).
        let lost = count(&out, "lost");
        assert!((4..=8).contains(&lost), "{target}: {}", out.stdout);
        assert!(
            out.stdout.contains("clients served: 0 of 4"),
            "{target}: {}",
            out.stdout
        );
    }
}

#[test]
fn a_server_that_closes_mid_reply_is_an_error() {
    // Answers half of the first request, then closes.
    let addr = fake_tcp_server(|mut stream| {
        let mut buf = [0u8; 1024];
        if let Ok(n @ 2..) = stream.read(&mut buf) {
            let _ = stream.write_all(&buf[..n / 2].to_ascii_uppercase());
        }
    });
    let out = loadgen("tcp-echo", &addr, &[]);
    assert_error_and_hint(&out, "got no reply within --timeout");
    assert!(out.stderr.contains("requests failed"), "{}", out.stderr);
    assert!(
        out.stdout
            .contains("the server closed the connection before the whole reply came back"),
        "{}",
        out.stdout
    );
    assert_eq!(answered(&out), 0, "{}", out.stdout);
    // tcp-once reads to the FIN: half a reply is a wrong one.
    let out = loadgen("tcp-once", &addr, &[]);
    assert_error_and_hint(&out, "got no reply within --timeout");
    assert!(out.stdout.contains("wrong reply"), "{}", out.stdout);
}

#[test]
fn a_server_that_goes_away_mid_run_fails_the_requests_cleanly() {
    // tcp_server, killed once the clients are connecting: their kept
    // connections are reset and their reconnects refused, so requests fail
    // at once rather than wait for a timeout.
    let server = Server::start(
        env!("CARGO_BIN_EXE_tcp_server"),
        &["--bind", "127.0.0.1", "--port", "0"],
    );
    let addr = server.addr.to_string();
    let killer = thread::spawn(move || {
        // The first "connected" is loadgen's probe, the second a client's.
        server.expect_line("connected");
        server.expect_line("connected");
        drop(server);
    });
    let args = [
        "--target",
        "tcp-echo",
        &addr,
        "--clients",
        "4",
        "--duration",
        "2s",
    ];
    let out = run(LOADGEN, &args, b"");
    killer.join().expect("killer thread");
    assert_error_and_hint(&out, "got no reply within --timeout");
    assert!(out.stderr.contains("requests failed"), "{}", out.stderr);
    // A connect racing the kill can still wait out its timeout (a SYN
    // that met no listener and no RST), but nearly all fail at once.
    assert!(
        count(&out, "errors") > 100 * count(&out, "lost"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains(&common::os_error(std::io::ErrorKind::ConnectionRefused))
            || out
                .stdout
                .contains(&common::os_error(std::io::ErrorKind::ConnectionReset))
            || out
                .stdout
                .contains("closed the connection before the whole reply"),
        "{}",
        out.stdout
    );
}

#[test]
fn a_refused_target_is_an_error_with_a_hint() {
    let out = loadgen("tcp-echo", &format!("127.0.0.1:{}", free_tcp_port()), &[]);
    assert_error_and_hint(&out, "answered the SYN with a RST");
    let out = loadgen("time", &format!("127.0.0.1:{}", free_tcp_port()), &[]);
    assert_error_and_hint(&out, "answered the SYN with a RST");
    let out = loadgen("udp-echo", &format!("127.0.0.1:{}", free_udp_port()), &[]);
    assert_error_and_hint(&out, "ICMP port unreachable");
    let out = loadgen("udp-echo", "no-such-host.invalid:12000", &[]);
    assert_error_and_hint(&out, "could not be turned into an IP address");
}

#[test]
fn bad_arguments_exit_2() {
    for args in [
        &["127.0.0.1:1"][..],
        &["--target", "http", "127.0.0.1:1"],
        &["--target", "udp-echo"],
        &["--target", "udp-echo", "127.0.0.1"],
        &["--target", "udp-echo", "127.0.0.1:0"],
        &["--target", "udp-echo", "127.0.0.1:99999"],
        &["--target", "udp-echo", ":12000"],
        &["--target", "udp-echo", "127.0.0.1:1", "--clients", "0"],
        &["--target", "udp-echo", "127.0.0.1:1", "--duration", "0s"],
        &["--target", "udp-echo", "127.0.0.1:1", "--duration", "soon"],
        &["--target", "udp-echo", "127.0.0.1:1", "--size", "0"],
        &["--target", "udp-echo", "127.0.0.1:1", "--size", "70000"],
        &["--target", "udp-echo", "127.0.0.1:1", "--requests", "0"],
        &["--target", "udp-echo", "127.0.0.1:1", "--timeout", "0s"],
    ] {
        let out = run(LOADGEN, args, b"");
        assert_eq!(out.code(), Some(2), "{args:?}: {}", out.stderr);
        assert!(!out.stderr.contains("panicked"), "{args:?}: {}", out.stderr);
    }
}

#[test]
fn help_shows_every_default() {
    let out = run(LOADGEN, &["--help"], b"");
    for default in [
        "[default: 4]",
        "[default: 5s]",
        "[default: 32]",
        "[default: 1s]",
        "[default: 0]",
    ] {
        assert!(out.stdout.contains(default), "{default}: {}", out.stdout);
    }
}

#[test]
fn ipv6_servers_are_reached_over_ipv6() {
    let server = Server::start(
        env!("CARGO_BIN_EXE_tcp_server"),
        &["--bind", "::1", "--port", "0", "--quiet"],
    );
    let out = loadgen("tcp-echo", &format!("[::1]:{}", server.port()), &[]);
    assert_clean(&out);
    assert!(out.stdout.contains("tcp-echo [::1]:"), "{}", out.stdout);
    let server = Server::start(
        env!("CARGO_BIN_EXE_udp_server"),
        &["--bind", "::1", "--port", "0", "--quiet"],
    );
    let out = loadgen("udp-echo", &format!("[::1]:{}", server.port()), &[]);
    assert_clean(&out);
}
