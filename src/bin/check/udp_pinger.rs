//! udp-pinger: K&R assignment 2. The client sends `Ping <seq> <time>`
//! datagrams, waits at most a second for each reply, prints the reply and
//! its RTT or `Request timed out`, and ends with statistics (packets sent
//! and received, loss rate, min/avg/max RTT).
//!
//! check plays the assignment's lossy UDPPingerServer: it answers each ping
//! uppercased, except those its seeded random choice drops (about 30%; the
//! first is always answered, the second always dropped, so any run of two or
//! more pings shows both). The client runs once; every test judges that run.

use std::net::UdpSocket;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::Ctx;
use crate::report::{Failure, Outcome, Test};
use crate::spawn;

pub fn tests() -> Vec<Test> {
    vec![
        Test::new("each ping is one datagram: Ping <seq> <time>", 1, format),
        Test::new("each answered ping is printed", 1, answered),
        Test::new("each lost ping prints Request timed out", 2, lost),
        Test::new("statistics: loss rate and min/avg/max RTT", 2, statistics),
    ]
}

/// The client's one run, shared by the tests.
#[derive(Clone)]
struct Run {
    pings: Vec<Vec<u8>>,
    dropped: Vec<bool>,
    stdout: String,
    fate: String,
}

static RUN: Mutex<Option<Result<Run, String>>> = Mutex::new(None);

fn the_run(ctx: &Ctx) -> Result<Run, Failure> {
    let mut memo = RUN.lock().unwrap_or_else(|e| e.into_inner());
    if memo.is_none() {
        *memo = Some(run_client(ctx));
    }
    match memo.as_ref().expect("just filled") {
        Ok(run) => Ok(run.clone()),
        Err(e) => Err(Failure::new(
            e.clone(),
            "the --exec command could not be started",
        )),
    }
}

fn run_client(ctx: &Ctx) -> Result<Run, String> {
    let socket = UdpSocket::bind("127.0.0.1:0").map_err(|e| format!("cannot bind UDP: {e}"))?;
    let port = socket.local_addr().map_err(|e| e.to_string())?.port();
    let command = spawn::fill(
        ctx.exec.as_deref().unwrap_or(""),
        &[("host", "127.0.0.1".into()), ("port", port.to_string())],
    );
    let mut child = spawn::start(&command, &ctx.input).map_err(|e| format!("{e:#}"))?;
    let mut rng = ctx.rng("loss");
    let mut run = Run {
        pings: Vec::new(),
        dropped: Vec::new(),
        stdout: String::new(),
        fate: String::new(),
    };
    // The whole run may take a second per lost ping: allow ten waits.
    let end = Instant::now() + ctx.timeout * 10;
    let mut buf = vec![0u8; 65536];
    let _ = socket.set_read_timeout(Some(Duration::from_millis(20)));
    while Instant::now() < end && child.exited().is_none() {
        let Ok((n, from)) = socket.recv_from(&mut buf) else {
            continue;
        };
        let i = run.pings.len();
        let drop = match i {
            0 => false,
            1 => true,
            _ => rng.chance(0.3),
        };
        run.pings.push(buf[..n].to_vec());
        run.dropped.push(drop);
        if !drop {
            let _ = socket.send_to(&buf[..n].to_ascii_uppercase(), from);
        }
    }
    if child.wait_for(Duration::from_millis(200)).is_none() {
        run.fate = format!(
            "the client was still running after {:?} and was stopped",
            ctx.timeout * 10
        );
    }
    run.stdout = String::from_utf8_lossy(&child.stdout()).into_owned();
    Ok(run)
}

fn format(ctx: &Ctx) -> Outcome {
    let run = the_run(ctx)?;
    if run.pings.is_empty() {
        return Err(Failure::new(
            format!("no datagram arrived; {}", run.fate),
            "the pinger sends its pings to the {host} and {port} check gave it, over UDP",
        ));
    }
    let mut last: Option<u64> = None;
    for ping in &run.pings {
        let text = String::from_utf8_lossy(ping);
        let words: Vec<&str> = text.split_whitespace().collect();
        let seq = words.get(1).and_then(|s| s.parse::<u64>().ok());
        let ok = words.len() == 3
            && words[0].eq_ignore_ascii_case("ping")
            && words[2].parse::<f64>().is_ok()
            && seq.is_some();
        if !ok || last.is_some_and(|l| Some(l + 1) != seq) {
            return Err(Failure::bytes(
                b"Ping 1 1764595200.123456",
                ping,
                "a ping is not 'Ping <seq> <time>' with seq counting up by one",
                "the assignment's message is Ping, the sequence number (1, 2, 3, ...), and the time it was sent",
            ));
        }
        last = seq;
    }
    Ok(())
}

fn answered(ctx: &Ctx) -> Outcome {
    let run = the_run(ctx)?;
    if run.pings.is_empty() {
        return Err(Failure::new(
            "no pings arrived, so none was answered",
            "see the first test",
        ));
    }
    for (ping, dropped) in run.pings.iter().zip(&run.dropped) {
        let reply = String::from_utf8_lossy(&ping.to_ascii_uppercase()).into_owned();
        let seq = String::from_utf8_lossy(ping)
            .split_whitespace()
            .nth(1)
            .unwrap_or("?")
            .to_string();
        if *dropped || run.stdout.contains(&reply) || run.stdout.contains(&format!("seq={seq} ")) {
            continue;
        }
        return Err(Failure::new(
            format!("no line shows the reply to ping {seq} ({reply:?}, or seq={seq} with its RTT)"),
            "for each reply the pinger prints the server's message (or its sequence number) and the round-trip time",
        ));
    }
    Ok(())
}

fn lost(ctx: &Ctx) -> Outcome {
    let run = the_run(ctx)?;
    let dropped = run.dropped.iter().filter(|d| **d).count();
    let said = run
        .stdout
        .lines()
        .filter(|l| l.to_ascii_lowercase().contains("timed out"))
        .count();
    if said == dropped && dropped > 0 {
        return Ok(());
    }
    Err(Failure::new(
        format!(
            "check dropped {dropped} of {} pings; the client printed {said} 'Request timed out' line(s); {}",
            run.pings.len(),
            run.fate
        ),
        "set a timeout on the socket (settimeout(1)) and, when recvfrom() raises socket.timeout, print 'Request timed out' and go on to the next ping",
    ))
}

fn statistics(ctx: &Ctx) -> Outcome {
    let run = the_run(ctx)?;
    let n = run.pings.len();
    let dropped = run.dropped.iter().filter(|d| **d).count();
    if n == 0 {
        return Err(Failure::new("no pings arrived", "see the first test"));
    }
    let rate = 100.0 * dropped as f64 / n as f64;
    let out = run.stdout.to_ascii_lowercase();
    let percents: Vec<f64> = out
        .split(|c: char| c.is_whitespace() || c == ',' || c == '(' || c == ')')
        .filter_map(|w| w.strip_suffix('%').and_then(|p| p.parse().ok()))
        .collect();
    let rate_ok = percents.iter().any(|p| (p - rate).abs() <= 1.0);
    let rtt_ok = ["min", "avg", "max"].iter().all(|w| out.contains(w));
    if rate_ok && rtt_ok {
        return Ok(());
    }
    Err(Failure::new(
        format!(
            "{dropped} of {n} pings lost is {rate:.1}% loss; the client printed {} and {} min, avg and max",
            if percents.is_empty() {
                "no percentage".to_string()
            } else {
                format!("{percents:?}%")
            },
            if rtt_ok { "all of" } else { "not all of" }
        ),
        "after the last ping, print the packet loss rate (lost / sent, in %) and the minimum, average and maximum RTT of the replies, as ping does",
    ))
}
