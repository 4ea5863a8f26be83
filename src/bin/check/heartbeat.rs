//! heartbeat-server and heartbeat-client: the UDP heartbeat, the optional
//! exercise of K&R assignment 2. The client sends `heartbeat SEQ
//! SECS.MICROS` (a sequence number and the Unix time it was sent, as
//! socketlab's heartbeat_client does) every interval; the server reports
//! each heartbeat's one-way delay, the numbers that never came (lost), the
//! late or repeated ones, and a client that has been silent for longer
//! than its dead-after time (stopped).
//!
//! heartbeat-server: a heartbeat server only prints, so check runs it
//! itself once per test (`--exec` with `{port}`, `{host}` and
//! `{dead_after}`, a whole number of seconds: 1), plays its client, and
//! reads what it printed on stdout and stderr. The wording is the
//! server's own; check looks, in the lines, for the sequence numbers it
//! sent, the numbers a report needs, and a keyword:
//! lost: `lost`, `miss`, `gap`, `drop` or `skip` with the count or a missing number;
//! late or duplicated: `late`, `dup`, `repeat`, `again`, `order`, `old` or `earlier`;
//! stopped: `stop`, `dead`, `silen`, `gone`, `timed out`, `timeout` or `inactive`.
//! A program that prints through a buffer must flush each line
//! (`print(..., flush=True)`; check sets PYTHONUNBUFFERED=1 for Python).
//!
//! heartbeat-client: check listens on UDP, runs the client once with
//! `{host}`, `{port}` and `{interval}` (seconds: 0.2), and judges the
//! datagrams: a sequence number and a timestamp in each, numbers rising by
//! one, timestamps on check's clock, one heartbeat per interval.

use std::net::UdpSocket;
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::Ctx;
use crate::report::{Failure, Outcome, Test};
use crate::spawn::{self, Child};

/// The `{dead_after}` check gives the server, in seconds.
pub const DEAD_AFTER: u64 = 1;
/// The `{interval}` check gives the client, in seconds.
pub const INTERVAL: f64 = 0.2;
/// How old check makes the timestamps of the delay test: the server must
/// report a one-way delay of at least this.
const AGE: Duration = Duration::from_millis(1500);

pub fn server_tests() -> Vec<Test> {
    vec![
        Test::new(
            "each heartbeat is reported with its one-way delay",
            2,
            s_delay,
        ),
        Test::new(
            "a gap in the numbers is reported as lost heartbeats",
            2,
            s_gap,
        ),
        Test::new("a duplicated heartbeat is reported", 1, s_duplicate),
        Test::new("a late (out-of-order) heartbeat is reported", 1, s_late),
        Test::new("garbage datagrams do not stop the server", 1, s_garbage),
        Test::new(
            "a silence longer than the dead-after time (1 s) is reported as stopped",
            2,
            s_stopped,
        ),
    ]
}

// ----- check as the client (heartbeat-server) -----

/// One run of the server under test, and check's socket that plays its client.
struct Server {
    child: Child,
    socket: UdpSocket,
    port: u16,
}

impl Server {
    fn start(ctx: &Ctx) -> Result<Server, Failure> {
        let socket = UdpSocket::bind("127.0.0.1:0")
            .map_err(|e| Failure::new(format!("cannot bind UDP: {e}"), "check itself failed"))?;
        let port = UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .map_err(|e| Failure::new(format!("no free port: {e}"), "check itself failed"))?
            .port();
        let command = spawn::fill(
            ctx.exec.as_deref().unwrap_or(""),
            &[
                ("port", port.to_string()),
                ("host", "127.0.0.1".into()),
                ("dead_after", DEAD_AFTER.to_string()),
            ],
        );
        let mut child = spawn::start(&command, &ctx.input).map_err(|e| {
            Failure::new(format!("{e:#}"), "the --exec command could not be started")
        })?;
        let started = Instant::now();
        loop {
            let ready = match crate::labs::bound_in_proc(port, true) {
                Some(bound) => bound,
                // No /proc: its first line says it listens, or it had a second.
                None => !child.stdout().is_empty() || started.elapsed() > Duration::from_secs(1),
            };
            if ready {
                break;
            }
            if let Some(fate) = child.fate() {
                return Err(Failure::new(
                    format!("'{command}' ended before it bound UDP port {port}: {fate}"),
                    "check replaced {port} with a free port and {dead_after} with 1 (seconds): does the program take them from the command line?",
                ));
            }
            if started.elapsed() >= ctx.start_timeout {
                return Err(Failure::new(
                    format!(
                        "'{command}' did not bind UDP port {port} within {:?}",
                        ctx.start_timeout
                    ),
                    "check replaced {port} with a free port: does the program take its port from the command line?",
                ));
            }
            thread::sleep(Duration::from_millis(20));
        }
        Ok(Server {
            child,
            socket,
            port,
        })
    }

    /// Sends datagrams 30 ms apart: the server reports each before the next.
    fn send(&self, datagrams: &[Vec<u8>]) {
        for d in datagrams {
            let _ = self.socket.send_to(d, ("127.0.0.1", self.port));
            thread::sleep(Duration::from_millis(30));
        }
    }

    /// Everything the server printed, stdout then stderr.
    fn output(&self) -> String {
        self.output_since((0, 0))
    }

    /// How much it has printed so far, on stdout and on stderr.
    fn printed(&self) -> (usize, usize) {
        (self.child.stdout().len(), self.child.stderr().len())
    }

    /// What it printed after [`Server::printed`] said `since`.
    fn output_since(&self, since: (usize, usize)) -> String {
        let out = self.child.stdout();
        let err = self.child.stderr();
        String::from_utf8_lossy(out.get(since.0..).unwrap_or_default()).into_owned()
            + "\n"
            + &String::from_utf8_lossy(err.get(since.1..).unwrap_or_default())
    }

    /// Waits (at most `limit`) until some printed line satisfies `found`;
    /// returns all the lines.
    fn wait_for(&mut self, limit: Duration, found: impl Fn(&str) -> bool) -> Vec<String> {
        let end = Instant::now() + limit;
        loop {
            let out = self.output();
            if out.lines().any(&found) || Instant::now() >= end || self.child.exited().is_some() {
                return out.lines().map(str::to_string).collect();
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

/// `heartbeat SEQ SECS.MICROS`, sent `age` ago.
fn heartbeat(seq: u64, age: Duration) -> Vec<u8> {
    let at = SystemTime::now()
        .checked_sub(age)
        .unwrap_or(UNIX_EPOCH)
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format!("heartbeat {seq} {}.{:06}", at.as_secs(), at.subsec_micros()).into_bytes()
}

/// The numbers in a line: runs of digits and dots, as decimals
/// (`127.0.0.1` is none; `12:04:05.250` is 12, 4 and 5.25).
fn numbers(line: &str) -> Vec<f64> {
    line.split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .map(|w| w.trim_matches('.'))
        .filter_map(|w| w.parse().ok())
        .collect()
}

fn has_number(line: &str, n: u64) -> bool {
    numbers(line).contains(&(n as f64))
}

fn has_word(line: &str, words: &[&str]) -> bool {
    let line = line.to_ascii_lowercase();
    words.iter().any(|w| line.contains(w))
}

const LOST: [&str; 5] = ["lost", "miss", "gap", "drop", "skip"];
const LATE: [&str; 7] = ["late", "dup", "repeat", "again", "order", "old", "earlier"];
const STOPPED: [&str; 7] = [
    "stop",
    "dead",
    "silen",
    "gone",
    "timed out",
    "timeout",
    "inactive",
];

/// The first sequence number of a test: three digits, seeded (no port or
/// year can be mistaken for it).
fn base(ctx: &Ctx, test: &str) -> u64 {
    ctx.rng(test).in_range(200, 899)
}

/// The last lines printed, for a failure's "received".
fn tail(lines: &[String]) -> Vec<u8> {
    let text: Vec<&str> = lines
        .iter()
        .map(String::as_str)
        .filter(|l| !l.trim().is_empty())
        .collect();
    text[text.len().saturating_sub(6)..].join("\n").into_bytes()
}

fn s_delay(ctx: &Ctx) -> Outcome {
    let mut server = Server::start(ctx)?;
    let b = base(ctx, "delay");
    let seqs = [b, b + 1, b + 2];
    let beats: Vec<Vec<u8>> = seqs.iter().map(|&s| heartbeat(s, AGE)).collect();
    server.send(&beats);
    // A delay of 1.5 s shows as 1.4 to 3.5 (seconds) or 1400 to 3500 (ms):
    // a loaded machine may be slow to deliver, never fast.
    let delayed = |l: &str| {
        numbers(l)
            .iter()
            .any(|&x| (1.4..3.5).contains(&x) || (1400.0..3500.0).contains(&x))
    };
    let done = |l: &str| has_number(l, b + 2) && delayed(l);
    let lines = server.wait_for(ctx.timeout, done);
    let missing = seqs
        .iter()
        .find(|&&s| !lines.iter().any(|l| has_number(l, s) && delayed(l)));
    let Some(seq) = missing else { return Ok(()) };
    let reported = lines.iter().any(|l| has_number(l, *seq));
    Err(Failure::bytes(
        format!("heartbeat {seq}: one-way delay 1500.000 ms").as_bytes(),
        &tail(&lines),
        if reported {
            format!(
                "heartbeat {seq} was sent 1.5 s before check sent it (its timestamp says so), and the line that reports it shows no delay from 1.4 to 3.5 s"
            )
        } else {
            format!("no line reports heartbeat {seq}")
        },
        "for each heartbeat print its number and its one-way delay: the time it arrived minus the time it carries (time.time() - sent, on one host both read the same clock)",
    ))
}

/// Runs the server, sends heartbeats numbered `b + offset`, and waits for
/// a line with one of `words` and one of the numbers `wanted`. Ok(None) if
/// such a line came, else Ok(Some(what was printed)).
fn judge(
    ctx: &Ctx,
    b: u64,
    offsets: &[u64],
    words: &[&str],
    wanted: &[u64],
) -> Result<Option<Vec<String>>, Failure> {
    let mut server = Server::start(ctx)?;
    let beats: Vec<Vec<u8>> = offsets
        .iter()
        .map(|&o| heartbeat(b + o, Duration::ZERO))
        .collect();
    server.send(&beats);
    let hit = |l: &str| has_word(l, words) && wanted.iter().any(|&w| has_number(l, w));
    let lines = server.wait_for(ctx.timeout, hit);
    Ok((!lines.iter().any(|l| hit(l))).then_some(lines))
}

fn s_gap(ctx: &Ctx) -> Outcome {
    // b, b+1, b+4: 2 lost (b+2 and b+3); a report gives the count or the numbers.
    let b = base(ctx, "gap");
    let Some(lines) = judge(ctx, b, &[0, 1, 4], &LOST, &[2, b + 2, b + 3])? else {
        return Ok(());
    };
    Err(Failure::bytes(
        format!("lost 2 heartbeat(s): {} to {}", b + 2, b + 3).as_bytes(),
        &tail(&lines),
        format!(
            "check sent {b}, {}, {}: no line says 2 were lost ({} and {})",
            b + 1,
            b + 4,
            b + 2,
            b + 3
        ),
        "keep the last number heard from each client (its address and port); a heartbeat numbered more than one above it means the ones between were lost: say how many, or which",
    ))
}

fn s_duplicate(ctx: &Ctx) -> Outcome {
    let b = base(ctx, "duplicate");
    let Some(lines) = judge(ctx, b, &[0, 1, 1, 2], &LATE, &[b + 1])? else {
        return Ok(());
    };
    Err(Failure::bytes(
        format!("heartbeat {} after {} (late or duplicated)", b + 1, b + 1).as_bytes(),
        &tail(&lines),
        format!(
            "check sent {b}, {}, {} again, {}: no line reports the second {} as a duplicate",
            b + 1,
            b + 1,
            b + 2,
            b + 1
        ),
        "UDP may deliver a datagram twice: a number not above the last one heard is a duplicate (or late); say so, and do not count it as new or as a gap",
    ))
}

fn s_late(ctx: &Ctx) -> Outcome {
    let b = base(ctx, "late");
    let Some(lines) = judge(ctx, b, &[0, 2, 1, 3], &LATE, &[b + 1])? else {
        return Ok(());
    };
    Err(Failure::bytes(
        format!("heartbeat {} after {} (late or duplicated)", b + 1, b + 2).as_bytes(),
        &tail(&lines),
        format!(
            "check sent {b}, {}, {}, {}: no line reports {} as late (out of order)",
            b + 2,
            b + 1,
            b + 3,
            b + 1
        ),
        "UDP may reorder datagrams: a number below the last one heard arrived late; say so (it was counted lost a moment ago)",
    ))
}

fn s_garbage(ctx: &Ctx) -> Outcome {
    let mut server = Server::start(ctx)?;
    let b = base(ctx, "garbage");
    let garbage: Vec<Vec<u8>> = vec![
        b"hello".to_vec(),
        Vec::new(),
        vec![0xff, 0xfe, 0x00, 0x80],
        b"heartbeat".to_vec(),
        b"heartbeat x 1764630000.000000".to_vec(),
        b"heartbeat 5 yesterday".to_vec(),
        b"heartbeat -3 1764630000.000000".to_vec(),
        vec![b'A'; 2000],
    ];
    server.send(&garbage);
    server.send(&[heartbeat(b, Duration::ZERO)]);
    let lines = server.wait_for(ctx.timeout, |l| has_number(l, b));
    if let Some(fate) = server.child.fate() {
        return Err(Failure::new(
            format!("after check's garbage datagrams {fate}"),
            "check sent 'hello', an empty datagram, bytes that are not UTF-8, 'heartbeat' alone, words for numbers and 2000 bytes: a bad datagram is reported and ignored (try/except around the parsing), never the end of the server",
        ));
    }
    if lines.iter().any(|l| has_number(l, b)) {
        return Ok(());
    }
    Err(Failure::bytes(
        format!("heartbeat {b}").as_bytes(),
        &tail(&lines),
        format!("after the garbage the server did not report heartbeat {b}"),
        "a bad datagram must not end the receive loop or stop the server from hearing the next: report it and go on",
    ))
}

fn s_stopped(ctx: &Ctx) -> Outcome {
    let mut server = Server::start(ctx)?;
    let b = base(ctx, "stopped");
    server.send(&[
        heartbeat(b, Duration::ZERO),
        heartbeat(b + 1, Duration::ZERO),
    ]);
    let silent_since = Instant::now();
    let before = server.printed();
    let dead_after = Duration::from_secs(DEAD_AFTER);
    let stopped = |l: &str| has_word(l, &STOPPED);
    let end = silent_since + dead_after + ctx.timeout;
    let lines = loop {
        let lines: Vec<String> = server.output().lines().map(str::to_string).collect();
        if server.output_since(before).lines().any(stopped) {
            break lines;
        }
        if Instant::now() >= end || server.child.exited().is_some() {
            return Err(Failure::bytes(
                format!("stopped: no heartbeat for 1s; the last was {}", b + 1).as_bytes(),
                &tail(&lines),
                format!(
                    "check sent {b} and {}, then nothing for {:?}: no line says the client stopped",
                    b + 1,
                    dead_after + ctx.timeout
                ),
                "UDP has no FIN: only a silence says a client has gone. Wait with a receive timeout (settimeout) set to the nearest deadline, and when it expires report the clients not heard from for {dead_after} seconds",
            ));
        }
        thread::sleep(Duration::from_millis(20));
    };
    let after = silent_since.elapsed();
    if after < dead_after.mul_f64(0.8) {
        return Err(Failure::bytes(
            b"",
            &tail(&lines),
            format!(
                "the client was reported stopped {after:?} after its last heartbeat, before {dead_after:?} of silence"
            ),
            "report a client stopped only when nothing came from it for the whole dead-after time ({dead_after} seconds)",
        ));
    }
    Ok(())
}

// ----- check as the server (heartbeat-client) -----

pub fn client_tests() -> Vec<Test> {
    vec![
        Test::new(
            "each heartbeat is one datagram: a number, then a timestamp",
            1,
            c_format,
        ),
        Test::new("the numbers rise by one", 1, c_sequence),
        Test::new(
            "the timestamp is the send time in seconds since 1970 (within 1 s of check's clock)",
            2,
            c_clock,
        ),
        Test::new(
            "one heartbeat per {interval} (0.2 s), on average",
            1,
            c_interval,
        ),
    ]
}

/// The most heartbeats check waits for.
const BEATS: usize = 8;

/// What the client sent in its one run: each datagram and when it came.
#[derive(Clone)]
struct Beats {
    got: Vec<(Vec<u8>, SystemTime)>,
    fate: String,
}

static BEATS_RUN: Mutex<Option<Result<Beats, String>>> = Mutex::new(None);

fn the_beats(ctx: &Ctx) -> Result<Beats, Failure> {
    let mut memo = BEATS_RUN.lock().unwrap_or_else(|e| e.into_inner());
    if memo.is_none() {
        *memo = Some(run_client(ctx));
    }
    match memo.as_ref().expect("just filled") {
        Ok(beats) if beats.got.is_empty() => Err(Failure::new(
            format!("no datagram arrived; {}", beats.fate),
            "the client sends its heartbeats over UDP to the {host} and {port} check gave it",
        )),
        Ok(beats) => Ok(beats.clone()),
        Err(e) => Err(Failure::new(
            e.clone(),
            "the --exec command could not be started",
        )),
    }
}

/// Runs the client until it has sent [`BEATS`] heartbeats, it exits, or
/// the timeout passes; then stops it.
fn run_client(ctx: &Ctx) -> Result<Beats, String> {
    let socket = UdpSocket::bind("127.0.0.1:0").map_err(|e| format!("cannot bind UDP: {e}"))?;
    let port = socket.local_addr().map_err(|e| e.to_string())?.port();
    let command = spawn::fill(
        ctx.exec.as_deref().unwrap_or(""),
        &[
            ("host", "127.0.0.1".into()),
            ("port", port.to_string()),
            ("interval", INTERVAL.to_string()),
        ],
    );
    let mut child = spawn::start(&command, &ctx.input).map_err(|e| format!("{e:#}"))?;
    let mut beats = Beats {
        got: Vec::new(),
        fate: String::new(),
    };
    let end = Instant::now() + ctx.timeout.max(Duration::from_secs(3));
    let mut buf = vec![0u8; 65536];
    let _ = socket.set_read_timeout(Some(Duration::from_millis(20)));
    while Instant::now() < end && beats.got.len() < BEATS {
        match socket.recv_from(&mut buf) {
            Ok((n, _)) => beats.got.push((buf[..n].to_vec(), SystemTime::now())),
            Err(_) if child.exited().is_some() => break,
            Err(_) => {}
        }
    }
    beats.fate = match child.fate() {
        Some(fate) => fate,
        None => "the client was still running (check stopped it)".into(),
    };
    Ok(beats)
}

/// The sequence number and the timestamp of a heartbeat: its first two
/// numbers (`heartbeat 7 1764630000.123456`), the first a whole number.
fn fields(datagram: &[u8]) -> Option<(u64, f64)> {
    let text = String::from_utf8_lossy(datagram);
    let mut numbers = text.split_whitespace().filter(|w| w.parse::<f64>().is_ok());
    let seq = numbers.next()?.parse().ok()?;
    let sent = numbers.next()?.parse().ok()?;
    Some((seq, sent))
}

fn c_format(ctx: &Ctx) -> Outcome {
    let beats = the_beats(ctx)?;
    match beats.got.iter().find(|(d, _)| fields(d).is_none()) {
        None => Ok(()),
        Some((d, _)) => Err(Failure::bytes(
            b"heartbeat 1 1764630000.123456",
            d,
            "a datagram does not hold a sequence number and then a timestamp",
            "each heartbeat is one datagram of text: a word, the sequence number, and the time it was sent in seconds since 1970 with a fraction (time.time()), separated by spaces",
        )),
    }
}

fn c_sequence(ctx: &Ctx) -> Outcome {
    let beats = the_beats(ctx)?;
    let seqs: Vec<u64> = beats
        .got
        .iter()
        .filter_map(|(d, _)| fields(d))
        .map(|f| f.0)
        .collect();
    if seqs.len() < 2 {
        return Err(Failure::new(
            format!(
                "{} heartbeat(s) with a number arrived; {}",
                seqs.len(),
                beats.fate
            ),
            "the client goes on sending, one heartbeat per interval, until it is stopped",
        ));
    }
    match seqs.windows(2).find(|w| w[1] != w[0] + 1) {
        None => Ok(()),
        Some(w) => Err(Failure::new(
            format!(
                "heartbeat {} came after {}: the numbers were {seqs:?}",
                w[1], w[0]
            ),
            "add one to the sequence number for each heartbeat sent: the server counts the numbers it never saw as lost",
        )),
    }
}

/// Each heartbeat's arrival on check's clock minus the time it carries.
/// check may read a datagram late (a busy machine), never early, so the
/// smallest difference is the truest.
fn c_clock(ctx: &Ctx) -> Outcome {
    let beats = the_beats(ctx)?;
    let offsets = beats.got.iter().filter_map(|(d, came)| {
        let (seq, sent) = fields(d)?;
        let now = came
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        Some((now - sent, seq, now, d))
    });
    let wrong = offsets.clone().find(|o| o.0 < -1.0).or_else(|| {
        offsets
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .filter(|o| o.0 > 1.0)
    });
    let Some((_, seq, now, d)) = wrong else {
        return Ok(());
    };
    let sent = fields(d).map_or(0.0, |f| f.1);
    Err(Failure::bytes(
        format!("heartbeat {seq} {now:.6}").as_bytes(),
        d,
        format!(
            "heartbeat {seq} says it was sent at {sent}; check's clock read {now:.6} when it came"
        ),
        "the timestamp is the send time in seconds since 1970-01-01 UTC, with a fraction (time.time() in Python, not milliseconds and not a local time of day): the server subtracts it from its own clock",
    ))
}

fn c_interval(ctx: &Ctx) -> Outcome {
    let beats = the_beats(ctx)?;
    let n = beats.got.len();
    let (Some(first), Some(last)) = (beats.got.first(), beats.got.last()) else {
        return Err(Failure::new("no heartbeats", "see the first test"));
    };
    let span = last
        .1
        .duration_since(first.1)
        .unwrap_or_default()
        .as_secs_f64();
    if n < 3 {
        return Err(Failure::new(
            format!(
                "only {n} heartbeat(s) came in {:?}; {}",
                ctx.timeout.max(Duration::from_secs(3)),
                beats.fate
            ),
            "the client sends one heartbeat per {interval} seconds until it is stopped",
        ));
    }
    let mean = span / (n - 1) as f64;
    if (INTERVAL * 0.6..=INTERVAL * 1.6).contains(&mean) {
        return Ok(());
    }
    Err(Failure::new(
        format!(
            "{n} heartbeats came {mean:.3} s apart on average; check asked for {INTERVAL} s ({{interval}})"
        ),
        "sleep for the interval between heartbeats (time.sleep(interval)), or better, until the next one is due, so the beats do not drift",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_in_a_log_line() {
        let line =
            "2026-12-01T23:52:27.732Z 127.0.0.1:40000 heartbeat 205: one-way delay 1500.250 ms";
        let found = numbers(line);
        assert!(
            found.contains(&205.0) && found.contains(&1500.25),
            "{found:?}"
        );
        assert!(has_number(line, 40000));
        // An address is no number, and 20 is not 205.
        assert!(!has_number(line, 127) && !has_number(line, 20));
    }

    #[test]
    fn heartbeat_fields_are_the_first_two_numbers() {
        assert_eq!(
            fields(b"heartbeat 7 1764630000.5"),
            Some((7, 1_764_630_000.5))
        );
        assert_eq!(fields(b"beat 3 at 12.5"), Some((3, 12.5)));
        // Tried: no timestamp, a fraction for a number, not text at all.
        for bad in [&b"heartbeat 7"[..], b"heartbeat 7.5 100.0", b"\xff\xfe"] {
            assert_eq!(fields(bad), None, "{bad:?}");
        }
    }
}
