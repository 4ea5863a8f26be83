//! udp_send against real UDP peers: ncat (as seed 003 used it), udp_server,
//! a peer that answers twice from two addresses, and nothing at all.

mod common;

use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::Duration;

use common::{OwnGroup, Server, WAIT};

const UDP_SEND: &str = env!("CARGO_BIN_EXE_udp_send");

/// `--timeout` where a reply is expected. udp_send always listens this long,
/// so it is a bound on how late a reply may come: ncat starts a shell and
/// `cat` for every new peer, which on a busy machine can take a while.
const REPLY_WAIT: &str = "3s";

/// `ncat -u -l 127.0.0.1 PORT -k --sh-exec cat`, killed when dropped.
struct Ncat {
    child: Child,
    port: u16,
}

impl Drop for Ncat {
    /// ncat forks a child for every UDP peer, and the children outlive
    /// their parent: the whole process group is ended, not just ncat.
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts ncat as a UDP echo server. ncat cannot pick a port itself, so this
/// takes a port that was free a moment ago and tries again (a few times) if
/// another program took it in between. `-v` makes ncat say when it listens.
fn start_ncat() -> Ncat {
    for _ in 0..5 {
        let port = common::free_udp_port();
        let mut child = Command::new("ncat")
            .args([
                "-v",
                "-u",
                "-l",
                "127.0.0.1",
                &port.to_string(),
                "-k",
                "--sh-exec",
                "cat",
            ])
            // A process group of its own, so that Drop can end its children too.
            .own_group()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ncat");
        let stderr = child.stderr.take().expect("stderr is piped");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut ncat = Ncat { child, port };
        loop {
            match rx.recv_timeout(WAIT) {
                Ok(line) if line.contains("Listening on") => return ncat,
                Ok(line) if line.contains("in use") => break,
                Ok(_) => continue,
                Err(_) => panic!("ncat exited or did not say it was listening within {WAIT:?}"),
            }
        }
        // The port was taken: ncat exits; try another.
        let _ = ncat.child.wait();
        ncat.port = 0;
    }
    panic!("ncat could not bind a free UDP port in 5 tries");
}

#[test]
fn the_seed_message_comes_back_from_ncat() {
    if !common::have_tool("ncat") {
        return;
    }
    let ncat = start_ncat();
    let port = ncat.port.to_string();
    let out = common::run(
        UDP_SEND,
        &[
            "--port",
            &port,
            "--timeout",
            REPLY_WAIT,
            "Hello udp lm3nitro.com server",
        ],
        b"",
    );
    assert_eq!(out.code(), Some(0), "stderr: {}", out.stderr);
    assert!(
        out.stdout
            .contains(&format!("sent 29 bytes to 127.0.0.1:{port} from port ")),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains(&format!(
            "reply from 127.0.0.1:{port}, 29 bytes: \"Hello udp lm3nitro.com server\""
        )),
        "{}",
        out.stdout
    );

    // `-k` keeps ncat serving: a second client (a new source port), by host
    // name, with the message typed on stdin, is answered too.
    let out = common::run(
        UDP_SEND,
        &[
            "--host",
            "localhost",
            "--port",
            &port,
            "--timeout",
            REPLY_WAIT,
        ],
        b"typed line\n",
    );
    assert_eq!(out.code(), Some(0), "stderr: {}", out.stderr);
    assert!(
        out.stdout.contains("Input lowercase sentence:"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("10 bytes: \"typed line\""),
        "{}",
        out.stdout
    );
}

#[test]
fn udp_server_answers_uppercased() {
    let server = Server::start(
        env!("CARGO_BIN_EXE_udp_server"),
        &["--bind", "127.0.0.1", "--port", "0"],
    );
    let out = common::run(
        UDP_SEND,
        &[
            "--port",
            &server.port().to_string(),
            "--timeout",
            REPLY_WAIT,
            "hello",
            "world",
        ],
        b"",
    );
    assert_eq!(out.code(), Some(0), "stderr: {}", out.stderr);
    assert!(
        out.stdout.contains(&format!(
            "reply from {}, 11 bytes: \"HELLO WORLD\"",
            server.addr
        )),
        "{}",
        out.stdout
    );
}

#[test]
fn every_reply_is_printed_with_the_address_it_came_from() {
    // The unconnected socket accepts datagrams from any address: this peer
    // answers once from the port it was sent to and once from another port.
    let peer = UdpSocket::bind("127.0.0.1:0").expect("bind peer");
    let other = UdpSocket::bind("127.0.0.1:0").expect("bind second peer");
    peer.set_read_timeout(Some(WAIT)).expect("timeout");
    let port = peer.local_addr().expect("addr").port().to_string();
    let (peer_addr, other_addr) = (
        peer.local_addr().expect("addr"),
        other.local_addr().expect("addr"),
    );
    let answer = thread::spawn(move || {
        let mut buf = [0u8; 64];
        let (len, client) = peer.recv_from(&mut buf).expect("a datagram from udp_send");
        peer.send_to(b"first\xff", client).expect("reply 1");
        other.send_to(b"second", client).expect("reply 2");
        buf[..len].to_vec()
    });
    let out = common::run(
        UDP_SEND,
        &["--port", &port, "--timeout", REPLY_WAIT, "ping"],
        b"",
    );
    assert_eq!(answer.join().expect("peer thread"), b"ping");
    assert_eq!(out.code(), Some(0), "stderr: {}", out.stderr);
    assert!(
        out.stdout
            .contains(&format!("reply from {peer_addr}, 6 bytes: \"first\\xff\"")),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains(&format!("reply from {other_addr}, 6 bytes: \"second\"")),
        "{}",
        out.stdout
    );
}

// Linux and macOS: silence. Windows hands an unconnected UDP socket the
// ICMP port unreachable too, as WSAECONNRESET (10054), at once.
#[cfg_attr(windows, ignore = "Windows reports the port unreachable as 10054")]
#[test]
fn nothing_listening_is_silence_then_the_udp_explanation() {
    let port = common::free_udp_port().to_string();
    let out = common::run(
        UDP_SEND,
        &["--port", &port, "--timeout", "200ms", "anyone?"],
        b"",
    );
    common::assert_error_and_hint(&out, "never hears the ICMP port unreachable");
    assert!(
        out.stderr.contains(&format!(
            "failed to receive a reply from 127.0.0.1:{port} over UDP: no reply within 200ms"
        )),
        "{}",
        out.stderr
    );
    assert!(
        out.stdout.contains("sent 7 bytes"),
        "the datagram is still sent: {}",
        out.stdout
    );
}

#[test]
fn bad_input_is_refused_cleanly() {
    // Usage errors: clap exits 2.
    for args in [
        &["--port", "abc", "x"][..],
        &["--port", "70000", "x"],
        &["--timeout", "0s", "x"],
        &["--timeout", "soon", "x"],
    ] {
        let out = common::run(UDP_SEND, args, b"");
        assert_eq!(out.code(), Some(2), "{args:?}: {}", out.stderr);
    }
    // A host that does not resolve, and stdin that ends before a line: run-time errors.
    let out = common::run(UDP_SEND, &["--host", "no-such-host.invalid", "x"], b"");
    common::assert_error_and_hint(&out, "could not be turned into an IP address");
    let out = common::run(UDP_SEND, &["--port", "9"], b"");
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(out.stderr.contains("error: no message"), "{}", out.stderr);
    // A line longer than any datagram: refused before sendto() (which would say EMSGSIZE).
    let mut long = vec![b'x'; 70_000];
    long.push(b'\n');
    let out = common::run(UDP_SEND, &["--port", "9"], &long);
    common::assert_error_and_hint(&out, "at most 65507 bytes");
    assert!(
        out.stderr.contains(
            "error: message of 70000 bytes is longer than the largest UDP datagram (65507 bytes)"
        ),
        "{}",
        out.stderr
    );
    assert!(!out.stdout.contains("sent "), "{}", out.stdout);
}

#[test]
fn replies_without_end_do_not_extend_the_wait_and_the_printed_port_is_the_source_port() {
    // The peer answers every 20 ms until udp_send has exited: a wait that
    // started its timeout again for each reply would never end, and
    // common::run would fail after WAIT.
    let peer = UdpSocket::bind("127.0.0.1:0").expect("bind peer");
    let port = peer.local_addr().expect("addr").port().to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = Arc::clone(&stop);
    let source = thread::spawn(move || {
        let mut buf = [0u8; 64];
        let (_, client) = peer.recv_from(&mut buf).expect("a datagram from udp_send");
        while !stopped.load(Ordering::Relaxed) {
            let _ = peer.send_to(b"again", client);
            thread::sleep(Duration::from_millis(20));
        }
        client.port()
    });
    let out = common::run(
        UDP_SEND,
        &["--port", &port, "--timeout", "300ms", "hi"],
        b"",
    );
    stop.store(true, Ordering::Relaxed);
    let source_port = source.join().expect("peer thread");
    assert_eq!(out.code(), Some(0), "stderr: {}", out.stderr);
    // The port udp_send names is the one bind() to port 0 gave it, and the
    // one its datagram came from.
    assert!(
        out.stdout.starts_with(&format!(
            "sent 2 bytes to 127.0.0.1:{port} from port {source_port}\n"
        )),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.matches(", 5 bytes: \"again\"").count() >= 2,
        "{}",
        out.stdout
    );
}
