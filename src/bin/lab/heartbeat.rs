//! The experiment of the heartbeat part of labs/01-udp-tcp.md: seeded loss
//! seen as gaps in the sequence numbers, and a client that stops.

use crate::harness::{self, Program};
use crate::{Experiment, Report};

pub const EXPERIMENTS: &[Experiment] = &[Experiment {
    name: "heartbeat-stop",
    worksheet: "labs/01-udp-tcp.md, the heartbeat part",
    summary: "12 heartbeats through heartbeat_server --drop 0.3 --seed 7: the gaps are the dropped ones, and the stop is noticed",
    run: heartbeat_stop,
}];

fn heartbeat_stop(r: &mut Report) -> anyhow::Result<()> {
    let args = ["--drop", "0.3", "--seed", "7", "--dead-after", "500ms"];
    let (server, addr) = Program::server("heartbeat_server", &args)?;
    r.did(format!(
        "heartbeat_server --drop 0.3 --seed 7 --dead-after 500ms on {addr}"
    ));
    let port = addr.port().to_string();
    let client = [
        "--port",
        &port,
        "--count",
        "12",
        "--interval",
        "50ms",
        "--quiet",
    ];
    r.did("heartbeat_client --count 12 --interval 50ms, then it stops");
    harness::run("heartbeat_client", &client)?;
    let stopped = server.expect_line("stopped:")?;
    let lines = server.lines_so_far();
    let dropped: Vec<u64> = lines
        .iter()
        .filter_map(|l| l.split("dropped \"heartbeat ").nth(1))
        .filter_map(|rest| rest.split(' ').next()?.parse().ok())
        .collect();
    let lost: Vec<&String> = lines.iter().filter(|l| l.contains(" lost ")).collect();
    r.saw(format!(
        "the server dropped heartbeats {dropped:?} (simulated loss)"
    ));
    for line in &lost {
        r.saw(format!("heartbeat_server: {}", after_timestamp(line)));
    }
    r.saw(format!("heartbeat_server: {}", after_timestamp(&stopped)));
    let last_kept = (1..=12).rev().find(|s| !dropped.contains(s)).unwrap_or(0);
    let counted = dropped.iter().filter(|&&s| s < last_kept).count();
    r.check(
        lost.last()
            .is_some_and(|l| l.contains(&format!("(lost so far: {counted})"))),
        format!(
            "every dropped heartbeat before the last one that arrived is reported lost ({counted})"
        ),
    );
    r.check(
        stopped.contains(&format!("the last was {last_kept}")),
        format!(
            "after 500ms of silence the client is reported stopped; the last heard was {last_kept}"
        ),
    );
    r.why(
        "the sequence numbers show the gaps; a heartbeat dropped after the last one that \
         arrived leaves no gap, since nothing after it says it was sent. UDP has no FIN, so \
         only the silence says the client stopped",
    );
    Ok(())
}

/// A log line without its timestamp.
fn after_timestamp(line: &str) -> &str {
    line.split_once(' ').map_or(line, |(_, rest)| rest)
}
