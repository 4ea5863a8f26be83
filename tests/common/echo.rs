//! The uppercase echo protocol's contract, which tcp_server (a thread per
//! connection) and event_server (an event loop) both keep: each test takes
//! the server's executable, so tests/tcp.rs and tests/event_server.rs run the
//! very same checks against their server.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::thread;
use std::time::Duration;

use super::{Server, WAIT, assert_error_and_hint, have_tool, run};

/// The suite's TCP client, for the tests that drive a server through it.
const CLIENT: &str = env!("CARGO_BIN_EXE_tcp_client");

/// Starts `exe` on loopback, port 0, with `extra` options.
pub fn start(exe: &str, extra: &[&str]) -> Server {
    let mut args = vec!["--bind", "127.0.0.1", "--port", "0"];
    args.extend_from_slice(extra);
    Server::start(exe, &args)
}

/// A connection to `server` whose reads give up after [`WAIT`].
pub fn connect(server: &Server) -> TcpStream {
    let stream = TcpStream::connect_timeout(&server.addr, WAIT).expect("connect");
    stream.set_read_timeout(Some(WAIT)).expect("read timeout");
    stream
}

/// Sends `message`, half-closes, and reads the whole reply.
pub fn exchange(server: &Server, message: &[u8]) -> Vec<u8> {
    let mut stream = connect(server);
    stream.write_all(message).expect("send");
    stream.shutdown(Shutdown::Write).expect("FIN");
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).expect("reply until FIN");
    reply
}

pub fn a_client_that_never_reads_its_replies_is_closed(exe: &str) {
    let server = start(exe, &["--idle-timeout", "300ms"]);
    let mut stream = connect(&server);
    // Send far more than the socket buffers hold and never read: the
    // server's replies wait unsent, it stops reading from us, and after
    // --idle-timeout without a byte moving it closes the connection.
    stream.set_write_timeout(Some(WAIT)).expect("timeout");
    let chunk = vec![b'x'; 65_536];
    for _ in 0..400 {
        if stream.write_all(&chunk).is_err() {
            break; // the server closed on us: what this test waits for
        }
        if server
            .wait_for_line("has not read its replies", Duration::ZERO)
            .is_some()
        {
            break;
        }
    }
    server.expect_line("has not read its replies for 300ms: closing");
    assert_eq!(exchange(&server, b"next"), b"NEXT");
}

pub fn a_client_that_resets_mid_stream_does_not_disturb_the_server(exe: &str) {
    let server = start(exe, &[]);
    let stream = connect(&server);
    (&stream).write_all(b"partial message").expect("send");
    let mut echo = [0u8; 15];
    (&stream).read_exact(&mut echo).expect("echo");
    // SO_LINGER with a zero timeout makes close() send a RST, not a FIN.
    socket2::SockRef::from(&stream)
        .set_linger(Some(Duration::ZERO))
        .expect("linger");
    drop(stream);
    server.expect_line("connected");
    server.expect_line(&format!(
        "error: {}",
        super::os_error(ErrorKind::ConnectionReset)
    ));
    assert_eq!(exchange(&server, b"still serving"), b"STILL SERVING");
}

pub fn a_hundred_concurrent_clients_each_get_their_own_reply(exe: &str) {
    let server = start(exe, &[]);
    let addr = server.addr;
    let clients: Vec<_> = (0..100)
        .map(|i| {
            thread::spawn(move || {
                let mut stream = TcpStream::connect_timeout(&addr, WAIT).expect("connect");
                stream.set_read_timeout(Some(WAIT)).expect("timeout");
                let message = format!("client number {i} says hi");
                stream.write_all(message.as_bytes()).expect("send");
                stream.shutdown(Shutdown::Write).expect("FIN");
                let mut reply = String::new();
                stream.read_to_string(&mut reply).expect("reply");
                assert_eq!(reply, message.to_uppercase());
            })
        })
        .collect();
    for client in clients {
        client.join().expect("every client got its own reply");
    }
}

pub fn at_max_clients_the_next_client_waits_in_the_backlog(exe: &str) {
    let server = start(exe, &["--max-clients", "1"]);
    let first = connect(&server);
    server.expect_line("connected");
    // The kernel completes the second handshake from the backlog, but the
    // server does not accept() it while the only slot is taken.
    let mut second = connect(&server);
    second.write_all(b"waiting").expect("send");
    second.shutdown(Shutdown::Write).expect("FIN");
    server.expect_line(
        "at the cap: 1 connections are being served (--max-clients 1); new clients wait in the listen backlog",
    );
    second
        .set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    let mut buf = [0u8; 16];
    let early = second.read(&mut buf);
    assert!(
        early
            .as_ref()
            .is_err_and(|e| matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)),
        "{early:?}"
    );
    drop(first);
    second.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut reply = Vec::new();
    second
        .read_to_end(&mut reply)
        .expect("served once the first left");
    assert_eq!(reply, b"WAITING");
}

pub fn idle_connections_are_closed(exe: &str) {
    let server = start(exe, &["--idle-timeout", "200ms"]);
    let mut stream = connect(&server);
    let mut buf = [0u8; 1];
    assert_eq!(stream.read(&mut buf).expect("the server's FIN"), 0);
    server.expect_line("idle for 200ms: closing");
}

pub fn many_round_trips_on_one_connection(exe: &str) {
    let server = start(exe, &[]);
    let mut stream = connect(&server);
    for word in ["first", "second", "third"] {
        stream.write_all(word.as_bytes()).expect("send");
        let mut reply = vec![0u8; word.len()];
        stream.read_exact(&mut reply).expect("reply");
        assert_eq!(reply, word.to_uppercase().as_bytes());
    }
    stream.shutdown(Shutdown::Write).expect("FIN");
    // Each write waited for its echo, so each arrived in a read of its own.
    server.expect_line("closed: received 16 bytes in 3 reads, sent 16");
}

pub fn once_closes_an_idle_client_as_idle(exe: &str) {
    let server = start(exe, &["--once", "--idle-timeout", "200ms"]);
    let mut stream = connect(&server);
    let mut buf = [0u8; 1];
    assert_eq!(stream.read(&mut buf).expect("the server's FIN"), 0);
    server.expect_line("idle for 200ms: closing");
}

pub fn once_reads_1024_bytes_of_a_3000_byte_message_and_resets(exe: &str) {
    let server = start(exe, &["--once"]);
    let port = server.port().to_string();
    let message = "a".repeat(3000);
    let out = run(CLIENT, &["--port", &port, &message], b"");
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let reply = out.stdout.lines().next().expect("reply line");
    assert_eq!(reply, format!("From Server: {}", "A".repeat(1024)));
    server.expect_line("closed after one read: received 1024 bytes (--buffer 1024), sent 1024; more bytes were waiting unread");
}

pub fn once_with_a_short_message_closes_cleanly(exe: &str) {
    let server = start(exe, &["--once"]);
    assert_eq!(exchange(&server, b"short"), b"SHORT");
    let line = server.expect_line("closed after one read: received 5 bytes");
    assert!(!line.contains("unread"), "{line}");
}

pub fn one_mebibyte_comes_back_byte_exact(exe: &str) {
    let server = start(exe, &[]);
    let message: Vec<u8> = (0..1_048_576u32).map(|i| (i * 31 % 251) as u8).collect();
    let mut expected = message.clone();
    expected.make_ascii_uppercase();
    let mut stream = connect(&server);
    // Write from another thread while this one reads: the server echoes as
    // it reads, so a writer that never reads would fill both buffers and stall.
    let mut writer = stream.try_clone().expect("clone");
    let sender = thread::spawn(move || {
        writer.write_all(&message).expect("send 1 MiB");
        writer.shutdown(Shutdown::Write).expect("FIN");
    });
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).expect("reply until FIN");
    sender.join().expect("sender");
    assert_eq!(reply.len(), expected.len());
    assert!(
        reply == expected,
        "the reply differs from the uppercased message"
    );
    server.expect_line("closed: received 1048576 bytes in ");
    assert!(
        server
            .lines_so_far()
            .iter()
            .any(|l| l.ends_with("reads, sent 1048576"))
    );
}

/// With `nofile` descriptors, three held connections use the last ones: the
/// fourth client's accept() fails (EMFILE), it waits in the backlog, and it
/// is served once a descriptor is free again.
pub fn out_of_file_descriptors_the_server_serves_the_waiting_client_later(exe: &str, nofile: u32) {
    if !have_tool("prlimit") {
        return;
    }
    let nofile = format!("--nofile={nofile}");
    let mut args = vec![nofile.as_str(), exe, "--bind", "127.0.0.1", "--port", "0"];
    args.extend_from_slice(&["--max-clients", "100"]);
    let server = Server::start("prlimit", &args);
    let held: Vec<TcpStream> = (0..3).map(|_| connect(&server)).collect();
    for _ in 0..3 {
        server.expect_line("connected");
    }
    let mut fourth = connect(&server);
    fourth.write_all(b"waited for a descriptor").expect("send");
    fourth.shutdown(Shutdown::Write).expect("FIN");
    server.expect_line("accept failed: Too many open files");
    drop(held);
    let mut reply = Vec::new();
    fourth
        .read_to_end(&mut reply)
        .expect("served once a descriptor was free");
    assert_eq!(reply, b"WAITED FOR A DESCRIPTOR");
    assert_eq!(exchange(&server, b"still serving"), b"STILL SERVING");
}

/// Bad options (the shared ones, then `extra`) are usage errors (exit 2); a
/// taken port and an address not of this machine are an error and a hint.
pub fn bad_arguments_and_a_taken_port_fail_clearly(exe: &str, extra: &[&[&str]]) {
    let shared: &[&[&str]] = &[
        &["--buffer", "0"],
        &["--max-clients", "0"],
        &["--idle-timeout", "0s"],
        &["--port", "-1"],
    ];
    for args in shared.iter().chain(extra) {
        let out = run(exe, args, b"");
        assert_eq!(out.code(), Some(2), "{args:?}: {}", out.stderr);
    }
    let server = start(exe, &[]);
    let port = server.port().to_string();
    let out = run(exe, &["--bind", "127.0.0.1", "--port", &port], b"");
    assert_error_and_hint(
        &out,
        &format!("another socket already holds TCP port {port}"),
    );
    let out = run(exe, &["--bind", "192.0.2.1", "--port", "0"], b"");
    assert_error_and_hint(&out, "192.0.2.1 is not an address of this machine");
}
