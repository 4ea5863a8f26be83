//! crack_caesar against ciphertext from the real time_server and
//! time_client: recorded by a relay in the test, and captured with tcpdump
//! and printed by tshark where they are installed.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{Server, WAIT, assert_error_and_hint, run};

const SERVER: &str = env!("CARGO_BIN_EXE_time_server");
const CLIENT: &str = env!("CARGO_BIN_EXE_time_client");
const CRACK: &str = env!("CARGO_BIN_EXE_crack_caesar");

fn server() -> Server {
    Server::start(
        "env",
        &[
            "SOCKETLAB_NOW=2026-11-21T14:02:19.198Z",
            SERVER,
            "--port",
            "0",
            "--bind",
            "127.0.0.1",
        ],
    )
}

/// Runs `time_client --verbose` with `args` against `port`; returns the
/// client's stdout and the Caesar key it agreed on (its last exchange).
fn client(port: u16, args: &[&str]) -> (String, u8, u32, u32) {
    let port = port.to_string();
    let mut all = vec!["--port", port.as_str(), "--verbose"];
    all.extend_from_slice(args);
    let out = run(CLIENT, &all, b"");
    assert_eq!(out.code(), Some(0), "stderr: {}", out.stderr);
    let number_after = |label: &str| -> u32 {
        let line = out
            .stdout
            .lines()
            .rfind(|l| l.contains(label))
            .unwrap_or_else(|| panic!("no {label:?} in {}", out.stdout));
        line.split(label)
            .nth(1)
            .expect("label")
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|n| n.parse().ok())
            .expect("a number")
    };
    let key = u8::try_from(number_after("s mod 256 = ")).expect("a key below 256");
    let client_public = number_after("g^a mod p = ");
    let server_public = number_after("server's public key B = ");
    (out.stdout, key, client_public, server_public)
}

/// A TCP relay for one connection that records every chunk it forwards,
/// in hex, the way tshark prints `tcp.payload`.
fn relay(server: SocketAddr) -> (u16, Receiver<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("relay bind");
    let port = listener.local_addr().expect("relay address").port();
    let (done, recorded) = mpsc::channel();
    thread::spawn(move || {
        let (client, _) = listener.accept().expect("relay accept");
        let upstream = TcpStream::connect(server).expect("relay connect");
        let log = Arc::new(Mutex::new(Vec::new()));
        let forward = |mut from: TcpStream, mut to: TcpStream, log: Arc<Mutex<Vec<String>>>| {
            thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = from.read(&mut buf) {
                    let hex: String = buf[..n].iter().map(|b| format!("{b:02x}")).collect();
                    log.lock().expect("log").push(hex);
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = to.shutdown(Shutdown::Write);
            })
        };
        let up = forward(
            client.try_clone().expect("clone"),
            upstream.try_clone().expect("clone"),
            Arc::clone(&log),
        );
        let down = forward(upstream, client, Arc::clone(&log));
        let _ = up.join();
        let _ = down.join();
        let _ = done.send(log.lock().expect("log").clone());
    });
    (port, recorded)
}

fn crack(stdin: &str) -> String {
    let out = run(CRACK, &[], stdin.as_bytes());
    assert_eq!(out.code(), Some(0), "stderr: {}", out.stderr);
    out.stdout
}

#[test]
fn cracks_a_session_recorded_between_the_real_programs() {
    let server = server();
    let (port, recorded) = relay(server.addr);
    let (_, key, a, b) = client(port, &["--request", "date", "--count", "2"]);
    let lines = recorded
        .recv_timeout(WAIT)
        .expect("the relay recorded the session");
    let out = crack(&lines.join("\n"));
    assert!(out.contains(&format!("clear text: KEY {a}\n")), "{out}");
    assert!(out.contains(&format!("clear text: KEY {b}\n")), "{out}");
    assert!(
        out.contains(&format!("tried all 256 keys on 4 frames: best key {key} ")),
        "{out}"
    );
    assert_eq!(out.matches("  \"DATE\"\n").count(), 2, "{out}");
    assert_eq!(out.matches("  \"2026-11-21\"\n").count(), 2, "{out}");
    assert!(
        out.contains("gives secret")
            && out.contains(&format!(", key {key}: see crack_caesar --dh {a} {b}")),
        "{out}"
    );
}

#[test]
fn dh_recovers_the_key_from_the_public_keys_alone() {
    let server = server();
    let (_, key, a, b) = client(server.port(), &["--request", "time"]);
    let out = run(CRACK, &["--dh", &a.to_string(), &b.to_string()], b"");
    assert_eq!(out.code(), Some(0), "stderr: {}", out.stderr);
    assert!(
        out.stdout.contains(
            "11 has order 64 mod 257: g^a mod p takes only 64 of the 256 possible values"
        ),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .ends_with(&format!("Caesar key k = s mod 256 = {key}\n")),
        "{}",
        out.stdout
    );
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    // 3 is not a power of 11 mod 257: no client could have sent it.
    let out = run(CRACK, &["--dh", "3", "64"], b"");
    assert_error_and_hint(&out, "only 64 numbers can be public keys");
    assert!(
        out.stderr
            .starts_with("error: public key '3' is not a power of 11 mod 257"),
        "{}",
        out.stderr
    );
    for bad in [
        &["--dh", "0", "5"][..],
        &["--dh", "257", "5"],
        &["--dh", "5"],
        &["--dh", "1", "2", "00"],
    ] {
        assert_eq!(run(CRACK, bad, b"").code(), Some(2), "{bad:?}");
    }
    let out = run(CRACK, &[], b"0004aabbccdd\nnot hex\n");
    assert_error_and_hint(&out, "tshark -T fields -e tcp.payload");
    assert!(
        out.stderr
            .starts_with("error: line 2: invalid hex 'not hex'"),
        "{}",
        out.stderr
    );
    let out = run(CRACK, &[], b"\n\n");
    assert_error_and_hint(&out, "pipe");
    assert!(
        out.stderr.starts_with("error: no frames in the input"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("panicked"));
}

#[test]
fn windows_line_ends_and_colon_separated_bytes_are_read() {
    // "TIME" shifted by 100, as an old tshark prints it, with CRLF.
    let out = crack("00:04:b8:ad:b1:a9\r\n\r\n");
    assert!(
        out.contains("best key 100 ") && out.contains("  \"TIME\"\n"),
        "{out}"
    );
}

#[test]
fn dh_with_public_key_1_gives_secret_1() {
    // A private key of 64, 128 or 192 sends KEY 1 (labs/time-protocol.md,
    // weak private keys): the secret is 1 whatever the server picked.
    for server_public in ["165", "4", "256"] {
        let out = run(CRACK, &["--dh", "1", server_public], b"");
        assert_eq!(out.code(), Some(0), "stderr: {}", out.stderr);
        assert!(
            out.stdout
                .contains("private keys that give A = 1: 64, 128, 192 (any one will do)"),
            "{}",
            out.stdout
        );
        assert!(
            out.stdout.ends_with("Caesar key k = s mod 256 = 1\n"),
            "{}",
            out.stdout
        );
    }
}

#[test]
fn cracks_a_tcpdump_capture_printed_by_tshark() {
    // tcpdump captures on lo, which needs root.
    common::require!("root", "tcpdump", "tshark");
    let server = server();
    let dir = std::env::temp_dir().join(format!("socketlab-crack-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let pcap = dir.join("time.pcap");
    // --immediate-mode hands each packet to tcpdump at once (not in blocks
    // filled over up to a second), and -U writes it to the file at once, so
    // the file can be read while tcpdump still runs.
    let mut tcpdump = Command::new("tcpdump")
        .args(["-i", "lo", "--immediate-mode", "-U", "-n", "-w"])
        .arg(&pcap)
        .arg(format!("tcp port {}", server.port()))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tcpdump");
    // tcpdump says "listening on lo" once its capture is open.
    let mut stderr = tcpdump.stderr.take().expect("piped");
    let (ready_tx, ready) = mpsc::channel();
    thread::spawn(move || {
        let mut seen = Vec::new();
        let mut buf = [0u8; 512];
        while let Ok(n @ 1..) = stderr.read(&mut buf) {
            seen.extend_from_slice(&buf[..n]);
            if String::from_utf8_lossy(&seen).contains("listening on") {
                let _ = ready_tx.send(());
            }
        }
    });
    let started = ready.recv_timeout(WAIT);
    if started.is_err() {
        let _ = tcpdump.kill();
        let _ = tcpdump.wait();
        panic!(
            "tcpdump did not start capturing within {WAIT:?} (are we allowed to capture on lo?)"
        );
    }
    let (_, key, _, _) = client(server.port(), &["--request", "time", "--count", "3"]);
    // Wait (bounded) until the capture holds all 6 frames, then stop tcpdump.
    let deadline = Instant::now() + WAIT;
    let payloads = loop {
        let out = Command::new("tshark")
            .args(["-r"])
            .arg(&pcap)
            .args(["-T", "fields", "-e", "tcp.payload"])
            .stderr(Stdio::null())
            .output()
            .expect("run tshark");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let frames = text
            .lines()
            .filter(|l| l.starts_with("0004") || l.starts_with("000c"))
            .count();
        if frames >= 6 {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "the capture never held 6 frames: {text}"
        );
        thread::sleep(Duration::from_millis(50));
    };
    let _ = tcpdump.kill();
    let _ = tcpdump.wait();
    let _ = std::fs::remove_dir_all(&dir);
    let out = crack(&payloads);
    assert!(out.contains(&format!("best key {key} ")), "{out}");
    assert_eq!(out.matches("  \"TIME\"\n").count(), 3, "{out}");
    assert_eq!(out.matches("  \"14:02:19.198\"\n").count(), 3, "{out}");
}
