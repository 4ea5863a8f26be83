//! Load tests: a thousand clients at once, and slow clients among quick ones,
//! against tcp_server (a thread per connection), event_server (one thread,
//! an event loop), threaded_server and time_server (a fixed pool).
//!
//! The servers cap their threads (`--max-clients`, the pool's `--threads`)
//! and stop calling `accept()` at the cap, so the kernel queues further
//! clients in the listen backlog (1024, `socketlab::listen::BACKLOG`): every
//! one of a thousand simultaneous clients must be answered, none refused or
//! dropped, and the server's threads must come back to what they were.
//!
//! Counts threads in /proc, so Linux only.
#![cfg(target_os = "linux")]

mod common;

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{Server, WAIT};
use socketlab::time_service::{encode_frame, read_frame};

const TCP_SERVER: &str = env!("CARGO_BIN_EXE_tcp_server");
const EVENT_SERVER: &str = env!("CARGO_BIN_EXE_event_server");
const THREADED_SERVER: &str = env!("CARGO_BIN_EXE_threaded_server");
const TIME_SERVER: &str = env!("CARGO_BIN_EXE_time_server");

/// Clients connected at the same time.
const CLIENTS: usize = 1000;
/// Threads that open and drive them (a thousand threads would measure the
/// test, not the server).
const DRIVERS: usize = 8;
/// The bound for a whole thousand-client run on a busy two-core machine.
const LOAD_WAIT: Duration = Duration::from_secs(60);

/// One thousand-client run at a time: each needs a thousand descriptors
/// and both cores.
static ONE_LOAD_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The soft limit on open files (`ulimit -n`) of this process, from /proc.
fn open_files_limit() -> u64 {
    let limits = std::fs::read_to_string("/proc/self/limits").expect("/proc/self/limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("a Max open files line");
    let soft = line.split_whitespace().nth(3).expect("a soft limit");
    soft.parse().unwrap_or(u64::MAX) // "unlimited"
}

/// Makes sure this process may hold `needed` descriptors: raises the soft
/// limit up to the hard one with `prlimit` (util-linux; no privilege needed
/// for that) if it is lower, and fails clearly if that is not enough.
fn ensure_open_files(needed: u64) {
    if open_files_limit() >= needed {
        return;
    }
    let _ = std::process::Command::new("prlimit")
        .args([
            "--pid",
            &std::process::id().to_string(),
            &format!("--nofile={needed}:"),
        ])
        .status();
    let limit = open_files_limit();
    assert!(
        limit >= needed,
        "this test holds {CLIENTS} connections at once and needs {needed} open files, \
         but the soft limit (ulimit -n) is {limit} and prlimit could not raise it: \
         run `ulimit -n 4096` before `cargo test` (.ci/run must do it)"
    );
}

/// The number of threads of process `pid` (/proc/PID/task has one entry each).
fn thread_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("/proc/PID/task")
        .count()
}

/// The thread count once it has stopped changing (the same for 100 ms), so
/// a thread that is just starting or ending is not taken for the baseline.
fn settled_thread_count(pid: u32) -> usize {
    let deadline = Instant::now() + WAIT;
    let (mut last, mut same) = (thread_count(pid), 0);
    while same < 5 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
        let now = thread_count(pid);
        same = if now == last { same + 1 } else { 0 };
        last = now;
    }
    last
}

/// Waits (bounded) until process `pid` is back to `baseline` threads.
fn assert_threads_return_to(pid: u32, baseline: usize) {
    let deadline = Instant::now() + WAIT;
    loop {
        let now = thread_count(pid);
        if now == baseline {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the server still has {now} threads {WAIT:?} after the last client left, \
             {baseline} before the load: leaked threads"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// What one client of a server sends, and whether a reply is right.
struct Conversation {
    request: fn(usize) -> Vec<u8>,
    reply_is_right: fn(usize, &[u8]) -> bool,
}

/// Client `i`'s whole conversation on a fresh connection, as a warm-up.
fn converse_once(addr: SocketAddr, talk: &Conversation, i: usize) {
    let mut stream = TcpStream::connect_timeout(&addr, WAIT).expect("connect");
    stream.set_read_timeout(Some(WAIT)).expect("read timeout");
    stream.write_all(&(talk.request)(i)).expect("send");
    stream.shutdown(Shutdown::Write).expect("FIN");
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).expect("reply");
    assert!((talk.reply_is_right)(i, &reply), "warm-up reply {reply:?}");
}

/// Opens [`CLIENTS`] connections and keeps them all open; only then does
/// any client send its request (and FIN), and every client must get its
/// right reply. The server's threads come back to `baseline` after the
/// run; with `fixed_pool` they never leave it.
///
/// (A thread-per-connection server can briefly have more threads than its
/// cap: a connection's slot is given back as its work ends, a moment before
/// its thread has exited, so the peak is not asserted for those.)
fn thousand_clients(server: &Server, talk: &'static Conversation, fixed_pool: bool) {
    let _one = ONE_LOAD_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    ensure_open_files(CLIENTS as u64 + 200);
    // After one whole conversation the server has every thread it keeps
    // (time_server's pool starts after its first line).
    converse_once(server.addr, talk, 0);
    let baseline = settled_thread_count(server.pid());

    let all_connected = Arc::new(Barrier::new(DRIVERS + 1));
    let done = Arc::new(AtomicBool::new(false));
    let addr = server.addr;
    let drivers: Vec<_> = (0..DRIVERS)
        .map(|d| {
            let all_connected = Arc::clone(&all_connected);
            thread::spawn(move || -> Result<usize, String> {
                let ids: Vec<usize> = (d..CLIENTS).step_by(DRIVERS).collect();
                // connect() returns once the kernel completed the handshake,
                // whether or not the server has called accept() yet.
                let connected: io::Result<Vec<TcpStream>> = ids
                    .iter()
                    .map(|_| TcpStream::connect_timeout(&addr, WAIT))
                    .collect();
                all_connected.wait();
                let mut streams = connected.map_err(|e| format!("connect failed: {e}"))?;
                for (stream, &i) in streams.iter_mut().zip(&ids) {
                    stream
                        .write_all(&(talk.request)(i))
                        .and_then(|()| stream.shutdown(Shutdown::Write))
                        .map_err(|e| format!("client {i}: send failed: {e}"))?;
                }
                for (mut stream, &i) in streams.into_iter().zip(&ids) {
                    let mut reply = Vec::new();
                    stream
                        .set_read_timeout(Some(LOAD_WAIT))
                        .and_then(|()| stream.read_to_end(&mut reply))
                        .map_err(|e| format!("client {i}: no reply: {e}"))?;
                    if !(talk.reply_is_right)(i, &reply) {
                        return Err(format!(
                            "client {i}: wrong reply {:?}",
                            String::from_utf8_lossy(&reply)
                        ));
                    }
                }
                Ok(ids.len())
            })
        })
        .collect();
    // Every connection is open (or failed) before anyone sends.
    all_connected.wait();

    let peak = {
        let done = Arc::clone(&done);
        let pid = server.pid();
        thread::spawn(move || {
            let mut peak = 0;
            while !done.load(Ordering::Relaxed) {
                peak = peak.max(thread_count(pid));
                thread::sleep(Duration::from_millis(5));
            }
            peak
        })
    };
    let mut answered = 0;
    for driver in drivers {
        match driver.join().expect("a driver thread panicked") {
            Ok(n) => answered += n,
            Err(why) => {
                done.store(true, Ordering::Relaxed);
                panic!("{why}; server stderr: {}", server.stderr())
            }
        }
    }
    done.store(true, Ordering::Relaxed);
    let peak = peak.join().expect("the sampling thread");
    assert_eq!(answered, CLIENTS, "every client answered");
    if fixed_pool {
        assert_eq!(peak, baseline, "a fixed set of threads grew under load");
    }
    assert_threads_return_to(server.pid(), baseline);
}

static ECHO: Conversation = Conversation {
    request: |i| format!("client {i}\n").into_bytes(),
    reply_is_right: |i, reply| reply == format!("CLIENT {i}\n").as_bytes(),
};

static BANNER: Conversation = Conversation {
    request: |i| format!("client {i}").into_bytes(),
    reply_is_right: |_, reply| reply == b"load test banner\n",
};

/// `--plain` time_server: the handshake line, one DATE frame, and the FIN.
static TIME: Conversation = Conversation {
    request: |_| [&b"PLAIN\n"[..], &encode_frame(0, b"DATE")].concat(),
    reply_is_right: |_, reply| {
        let Some(mut frame) = reply.strip_prefix(b"PLAIN\n") else {
            return false;
        };
        // SOCKETLAB_NOW pins it to 2026-11-21 in other tests; here it is today.
        matches!(read_frame(&mut frame, 0), Ok(Some(date))
            if date.len() == 10 && date[4] == b'-' && date[7] == b'-' && frame.is_empty())
    },
};

#[test]
fn a_thousand_clients_of_event_server_are_all_answered() {
    common::require!("nofile:1200");
    let server = Server::start(
        EVENT_SERVER,
        &["--port", "0", "--quiet", "--max-clients", "64"],
    );
    // One event loop serves them all: not one thread more under load.
    thousand_clients(&server, &ECHO, true);
}

#[test]
fn a_thousand_clients_of_tcp_server_are_all_answered() {
    common::require!("nofile:1200");
    // A thread per connection, 64 at most: the others wait in the backlog.
    let server = Server::start(
        TCP_SERVER,
        &["--port", "0", "--quiet", "--max-clients", "64"],
    );
    thousand_clients(&server, &ECHO, false);
}

#[test]
fn a_thousand_clients_of_threaded_server_are_all_answered() {
    common::require!("nofile:1200");
    let server = Server::start(
        THREADED_SERVER,
        &[
            "--port",
            "0",
            "--quiet",
            "--max-clients",
            "64",
            "--reply",
            "load test banner",
        ],
    );
    thousand_clients(&server, &BANNER, false);
}

#[test]
fn a_thousand_clients_of_time_server_are_all_answered() {
    common::require!("nofile:1200");
    let server = Server::start(
        TIME_SERVER,
        &["--port", "0", "--quiet", "--plain", "--threads", "32"],
    );
    // A fixed pool: not one thread more under load.
    thousand_clients(&server, &TIME, true);
}

// ---------------------------------------------------------------------------
// Slow clients
// ---------------------------------------------------------------------------

/// A client that sends one byte a second on its own thread until stopped,
/// reading whatever comes back; then half-closes and reads to the end.
/// Returns what it received in all.
struct Trickler {
    stop: Arc<AtomicBool>,
    thread: thread::JoinHandle<io::Result<(usize, Vec<u8>)>>,
}

impl Trickler {
    fn start(addr: SocketAddr, echoes: bool) -> Trickler {
        let stop = Arc::new(AtomicBool::new(false));
        let stream = TcpStream::connect_timeout(&addr, WAIT).expect("connect");
        stream.set_read_timeout(Some(WAIT)).expect("read timeout");
        let stopped = Arc::clone(&stop);
        let thread = thread::spawn(move || {
            let mut stream = stream;
            let mut sent = 0;
            let mut received = Vec::new();
            while !stopped.load(Ordering::Relaxed) {
                stream.write_all(b"s")?;
                sent += 1;
                if echoes {
                    // The echo of this byte: the server serves us too.
                    let mut byte = [0u8; 1];
                    stream.read_exact(&mut byte)?;
                    received.push(byte[0]);
                }
                // The slowness under test, not a synchronisation.
                let until = Instant::now() + Duration::from_secs(1);
                while Instant::now() < until && !stopped.load(Ordering::Relaxed) {
                    thread::sleep(Duration::from_millis(10));
                }
            }
            stream.shutdown(Shutdown::Write)?;
            stream.read_to_end(&mut received)?;
            Ok((sent, received))
        });
        Trickler { stop, thread }
    }

    fn finish(self) -> (usize, Vec<u8>) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .join()
            .expect("trickler thread")
            .expect("the slow client stays connected and is answered")
    }

    fn is_running(&self) -> bool {
        !self.thread.is_finished()
    }
}

/// Three clients that send a byte a second and one that sends nothing,
/// beside 50 quick ones: the quick ones are all answered, the slow ones
/// keep being served, and the silent one is closed by --idle-timeout.
fn slow_and_silent_clients_beside_quick_ones(exe: &str) {
    let server = Server::start(exe, &["--port", "0", "--idle-timeout", "3s"]);
    let slow: Vec<Trickler> = (0..3).map(|_| Trickler::start(server.addr, true)).collect();
    let mut silent = TcpStream::connect_timeout(&server.addr, WAIT).expect("connect");
    silent.set_read_timeout(Some(WAIT)).expect("read timeout");
    let started = Instant::now();
    for i in 0..50 {
        converse_once(server.addr, &ECHO, i);
    }
    for client in &slow {
        assert!(
            client.is_running(),
            "a slow client was cut off while the others were served"
        );
    }
    // The silent client is closed by --idle-timeout: its read sees the FIN.
    let mut buf = [0u8; 8];
    assert_eq!(silent.read(&mut buf).expect("a FIN, not a timeout"), 0);
    server.expect_line(&format!(
        "{} idle for 3s: closing",
        silent.local_addr().expect("address")
    ));
    // The slow ones sent a byte at least every second, so they were never
    // idle for 3 s, and are still being served.
    assert!(started.elapsed() >= Duration::from_secs(3));
    for client in slow {
        let (sent, received) = client.finish();
        assert!(sent >= 3, "a byte a second for over 3 s, only {sent} sent");
        assert_eq!(received, vec![b'S'; sent], "every slow byte echoed");
    }
}

#[test]
fn slow_clients_of_event_server_do_not_starve_the_others_and_silent_ones_time_out() {
    slow_and_silent_clients_beside_quick_ones(EVENT_SERVER);
}

#[test]
fn slow_clients_of_tcp_server_do_not_starve_the_others_and_silent_ones_time_out() {
    // A byte a second for about 3 s stays well inside the default --deadline.
    slow_and_silent_clients_beside_quick_ones(TCP_SERVER);
}

#[test]
fn slow_clients_of_threaded_server_do_not_starve_the_others() {
    // --idle 5s: a byte a second is still one message, not a pause.
    let server = Server::start(
        THREADED_SERVER,
        &["--port", "0", "--idle", "5s", "--reply", "load test banner"],
    );
    let slow: Vec<Trickler> = (0..3)
        .map(|_| Trickler::start(server.addr, false))
        .collect();
    for i in 0..50 {
        converse_once(server.addr, &BANNER, i);
    }
    for client in &slow {
        assert!(client.is_running(), "a slow client was cut off");
    }
    // None of the slow clients has been answered yet: the quick ones
    // passed them.
    assert!(
        !server
            .lines_so_far()
            .iter()
            .any(|l| l.contains("Received: \"s")),
        "a slow client's message ended early"
    );
    for client in slow {
        let (sent, received) = client.finish();
        assert_eq!(received, b"load test banner\n", "after {sent} bytes");
    }
    server.expect_line("Received: \"s");
}
