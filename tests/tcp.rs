//! tcp_server and tcp_client: the K&R TCP lab, the byte stream, and bad
//! peers. tcp_server gives each connection a blocking socket and a thread,
//! under a cap, with an idle limit and a deadline for each whole message.
//! (event_server, the same protocol on an event loop: tests/event_server.rs.)

mod common;

use std::io::{ErrorKind, Read, Write};
use std::thread;
use std::time::Duration;

use common::echo::{self, connect, exchange};
use common::{Server, WAIT, assert_error_and_hint, free_tcp_port, have_tool, run};

const SERVER: &str = env!("CARGO_BIN_EXE_tcp_server");
const CLIENT: &str = env!("CARGO_BIN_EXE_tcp_client");

fn tcp_server(extra: &[&str]) -> Server {
    let mut args = vec!["--bind", "127.0.0.1", "--port", "0"];
    args.extend_from_slice(extra);
    Server::start(SERVER, &args)
}

#[test]
fn classic_python_client_gets_the_uppercased_line() {
    if !have_tool("python3") {
        return;
    }
    let server = tcp_server(&[]);
    let port = server.port().to_string();
    let out = run(
        "python3",
        &["tests/classic/TCPClient.py", "127.0.0.1", &port],
        b"hello from python\n",
    );
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "Input lowercase sentence:From Server: HELLO FROM PYTHON\n"
    );
    server.expect_line("closed: received 17 bytes in 1 read, sent 17");
}

#[test]
fn tcp_client_works_against_the_classic_python_server() {
    if !have_tool("python3") {
        return;
    }
    let server = Server::start("python3", &["tests/classic/TCPServer.py", "0"]);
    let port = server.port().to_string();
    let out = run(CLIENT, &["--port", &port, "hello", "python", "server"], b"");
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let mut lines = out.stdout.lines();
    assert_eq!(lines.next(), Some("From Server: HELLO PYTHON SERVER"));
    assert!(
        lines
            .next()
            .is_some_and(|l| l.starts_with("RTT ") && l.contains("19 bytes from 127.0.0.1:"))
    );
}

#[test]
fn tcp_client_prompts_like_the_classic_lab_and_resolves_localhost() {
    let server = Server::start(SERVER, &["--bind", "0.0.0.0", "--port", "0"]);
    let port = server.port().to_string();
    let out = run(
        CLIENT,
        &["--host", "localhost", "--port", &port],
        b"typed line\n",
    );
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert!(
        out.stdout
            .starts_with("Input lowercase sentence:From Server: TYPED LINE\n"),
        "{}",
        out.stdout
    );
}

#[test]
fn only_ascii_letters_change_and_other_bytes_pass_through() {
    let server = tcp_server(&[]);
    assert_eq!(
        exchange(&server, b"caf\xc3\xa9 \xff\x00 abc-123 &*!"),
        b"CAF\xc3\xa9 \xff\x00 ABC-123 &*!"
    );
}

#[test]
fn one_mebibyte_comes_back_byte_exact() {
    echo::one_mebibyte_comes_back_byte_exact(SERVER);
}

#[test]
fn many_round_trips_on_one_connection() {
    echo::many_round_trips_on_one_connection(SERVER);
}

#[test]
fn a_hundred_concurrent_clients_each_get_their_own_reply() {
    echo::a_hundred_concurrent_clients_each_get_their_own_reply(SERVER);
}

#[test]
fn client_before_server_is_refused_with_a_rst_hint() {
    let port = free_tcp_port().to_string();
    let out = run(CLIENT, &["--port", &port, "hello"], b"");
    assert_error_and_hint(&out, "answered the SYN with a RST");
    assert!(
        out.stderr
            .contains(&format!("failed to connect TCP socket to 127.0.0.1:{port}")),
        "{}",
        out.stderr
    );
    assert!(
        out.stdout.is_empty(),
        "no prompt before the connection fails: {}",
        out.stdout
    );
}

#[test]
fn wrong_port_is_refused_and_the_server_sees_nothing() {
    let server = tcp_server(&[]);
    let wrong = free_tcp_port().to_string();
    let out = run(CLIENT, &["--port", &wrong, "hello"], b"");
    assert_error_and_hint(
        &out,
        &format!("no program is listening on TCP port {wrong}"),
    );
    assert_eq!(exchange(&server, b"marker"), b"MARKER");
    assert!(
        !server
            .lines_so_far()
            .iter()
            .any(|l| l.contains("received 5 bytes")),
        "{:?}",
        server.lines_so_far()
    );
}

#[test]
fn an_unresolvable_host_is_explained() {
    let out = run(CLIENT, &["--host", "no-such-host.invalid", "hello"], b"");
    assert_error_and_hint(&out, "could not be turned into an IP address");
}

#[test]
fn once_reads_1024_bytes_of_a_3000_byte_message_and_resets() {
    echo::once_reads_1024_bytes_of_a_3000_byte_message_and_resets(SERVER);
}

#[test]
fn once_with_a_short_message_closes_cleanly() {
    echo::once_with_a_short_message_closes_cleanly(SERVER);
}

#[test]
fn a_client_that_resets_mid_stream_does_not_disturb_the_server() {
    echo::a_client_that_resets_mid_stream_does_not_disturb_the_server(SERVER);
}

#[test]
fn at_max_clients_the_next_client_waits_in_the_backlog() {
    echo::at_max_clients_the_next_client_waits_in_the_backlog(SERVER);
}

#[test]
fn out_of_file_descriptors_the_server_logs_and_serves_the_waiting_client_later() {
    // 7 descriptors: stdin, stdout, stderr, the listener, and three connections.
    echo::out_of_file_descriptors_the_server_serves_the_waiting_client_later(SERVER, 7);
}

#[test]
fn bad_arguments_and_a_taken_port_fail_clearly() {
    let deadline: &[&[&str]] = &[&["--deadline", "0s"], &["--deadline", "soon"]];
    echo::bad_arguments_and_a_taken_port_fail_clearly(SERVER, deadline);
}

#[test]
fn idle_connections_are_closed() {
    echo::idle_connections_are_closed(SERVER);
}

#[test]
fn once_closes_an_idle_client_as_idle() {
    echo::once_closes_an_idle_client_as_idle(SERVER);
}

#[test]
fn a_client_that_never_reads_its_replies_is_closed() {
    echo::a_client_that_never_reads_its_replies_is_closed(SERVER);
}

#[test]
fn a_reply_without_a_fin_is_printed_with_a_note() {
    // A peer that answers but keeps the connection open, unlike tcp_server.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listener");
    let port = listener.local_addr().expect("address").port().to_string();
    let peer = thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("accept");
        let mut message = Vec::new();
        stream
            .read_to_end(&mut message)
            .expect("the client's message and FIN");
        stream
            .write_all(&message.to_ascii_uppercase())
            .expect("reply");
        thread::sleep(Duration::from_secs(2)); // holds the connection past the client's timeout
    });
    let out = run(
        CLIENT,
        &["--port", &port, "--timeout", "300ms", "no fin"],
        b"",
    );
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert!(
        out.stdout.starts_with("From Server: NO FIN\n"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("note: the server sent this but did not close the connection (no FIN)"),
        "{}",
        out.stdout
    );
    peer.join().expect("peer");
}

#[test]
fn ncat_is_a_tcp_client_of_tcp_server() {
    if !have_tool("ncat") {
        return;
    }
    let server = tcp_server(&[]);
    // ncat half-closes when its stdin ends, then prints the reply until our FIN.
    let out = run(
        "ncat",
        &["127.0.0.1", &server.port().to_string()],
        b"typed into ncat\n",
    );
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, "TYPED INTO NCAT\n");
}

/// The thread count of process `pid` (Linux: one /proc/PID/task entry each).
#[cfg(target_os = "linux")]
fn threads_of(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("/proc/PID/task")
        .count()
}

/// Polls `condition` every 10 ms until it holds, for at most [`WAIT`].
#[cfg(target_os = "linux")]
fn wait_until(what: &str, condition: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + WAIT;
    while !condition() {
        assert!(std::time::Instant::now() < deadline, "never: {what}");
        thread::sleep(Duration::from_millis(10));
    }
}

#[cfg(target_os = "linux")]
#[test]
fn each_connection_has_a_thread_of_its_own_until_it_closes() {
    use std::net::{Shutdown, TcpStream};
    let server = tcp_server(&[]);
    let pid = server.pid();
    // Before any client: the main thread, blocked in accept().
    let alone = threads_of(pid);
    let held: Vec<TcpStream> = (0..3).map(|_| connect(&server)).collect();
    for _ in 0..3 {
        server.expect_line("connected");
    }
    wait_until("a thread for each of 3 connections", || {
        threads_of(pid) == alone + 3
    });
    for stream in &held {
        stream.shutdown(Shutdown::Write).expect("FIN");
    }
    for _ in 0..3 {
        server.expect_line("closed: received 0 bytes in 0 reads, sent 0");
    }
    wait_until("the threads ended with their connections", || {
        threads_of(pid) == alone
    });
}

/// A client that sends one byte every 100 ms on its own thread, never
/// finishing its message. True once the server has cut it off (a write
/// fails, or a read sees the server's FIN or reset); false if that did not
/// happen within [`WAIT`].
fn trickle(server: &Server) -> thread::JoinHandle<bool> {
    let mut stream = connect(server);
    thread::spawn(move || {
        stream.set_nonblocking(true).expect("non-blocking");
        let give_up = std::time::Instant::now() + WAIT;
        let mut echo = [0u8; 64];
        while std::time::Instant::now() < give_up {
            if stream.write_all(b"s").is_err() {
                return true;
            }
            match stream.read(&mut echo) {
                Ok(0) => return true,
                Err(err) if err.kind() != ErrorKind::WouldBlock => return true,
                _ => {}
            }
            thread::sleep(Duration::from_millis(100)); // the slowness under test
        }
        false
    })
}

/// Issue 11, 8b: without the idle limit and the whole-message deadline, a
/// few clients that trickle a byte at a time or send nothing hold every
/// thread for ever and lock everyone else out.
#[test]
fn trickling_and_silent_clients_are_cut_off_and_quick_clients_are_answered() {
    // Three slots, all taken: two clients trickle a byte every 100 ms (never
    // idle for 500 ms, never done), one is silent.
    let server = tcp_server(&[
        "--max-clients",
        "3",
        "--idle-timeout",
        "500ms",
        "--deadline",
        "2s",
    ]);
    let tricklers = [trickle(&server), trickle(&server)];
    let silent = connect(&server);
    for _ in 0..3 {
        server.expect_line("connected");
    }
    // A quick client waits in the backlog until the silent one is closed by
    // --idle-timeout, and is answered.
    assert_eq!(exchange(&server, b"quick"), b"QUICK");
    let silent_local = silent.local_addr().expect("address");
    server.expect_line(&format!("{silent_local} idle for 500ms: closing"));
    // The tricklers are closed by --deadline, however steadily they send:
    // it is not moved by each byte.
    server.expect_line("not finished within --deadline 2s: closing");
    server.expect_line("not finished within --deadline 2s: closing");
    for trickler in tricklers {
        assert!(
            trickler.join().expect("trickler thread"),
            "a trickling client was never cut off"
        );
    }
    assert_eq!(exchange(&server, b"after them"), b"AFTER THEM");
}
