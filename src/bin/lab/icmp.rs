//! The experiments of labs/09-icmp-traceroute.md, on the three-host
//! topology of scripts/three_hosts.sh (host-a, router, host-b), built under
//! names of their own and removed afterwards: a TTL of 1 answered by the
//! router, the far host's port unreachable ending a trace, a firewall that
//! drops ICMP, loss on the router, and why ping needs no root here.
//!
//! Namespaces need root, `ip` and `nft`; without them each observation is
//! reported "not checked", never failed.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::harness::{self, WAIT};
use crate::{Experiment, Report};

pub const EXPERIMENTS: &[Experiment] = &[
    Experiment {
        name: "ttl-one-router",
        worksheet: "labs/09-icmp-traceroute.md, Part A",
        summary: "icmp_ping --ttl 1 from host-a to host-b: the router, not host-b, answers Time Exceeded (11/0)",
        run: ttl_one_router,
    },
    Experiment {
        name: "trace-port-unreachable",
        worksheet: "labs/09-icmp-traceroute.md, Part B",
        summary: "traceroute host-a -> host-b: hop 1 is the router, hop 2 host-b, whose Port Unreachable (3/3) ends the trace",
        run: trace_port_unreachable,
    },
    Experiment {
        name: "icmp-dropped",
        worksheet: "labs/09-icmp-traceroute.md, Part C",
        summary: "a router that drops ICMP: ping times out, traceroute shows \"*\" and never ends",
        run: icmp_dropped,
    },
    Experiment {
        name: "router-loss",
        worksheet: "labs/09-icmp-traceroute.md, Part D",
        summary: "three_hosts.sh loss 25%: icmp_ping's loss figure is about 25% (random, not seeded)",
        run: router_loss,
    },
    Experiment {
        name: "ping-without-root",
        worksheet: "labs/09-icmp-traceroute.md, Part E",
        summary: "a ping socket is refused while net.ipv4.ping_group_range leaves the group out (root too), allowed once it includes it",
        run: ping_without_root,
    },
];

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/three_hosts.sh");
const HOST_B: &str = "10.20.2.2";
const ROUTER: &str = "10.20.1.1";

/// What a command printed and how it ended.
struct Ran {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Runs `program args` with `env`, waiting at most `wait` (killed after that).
fn run(program: &str, args: &[&str], env: &[(&str, &str)], wait: Duration) -> anyhow::Result<Ran> {
    let mut child = Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("failed to start '{program}'"))?;
    let mut stdout = child.stdout.take().context("stdout was piped")?;
    let mut stderr = child.stderr.take().context("stderr was piped")?;
    let out = thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let err = thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + wait;
    let status = loop {
        if let Some(status) = child.try_wait().context("failed to wait for a child")? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "'{program} {}' did not end within {}",
                args.join(" "),
                humantime::format_duration(wait)
            );
        }
        thread::sleep(Duration::from_millis(5));
    };
    Ok(Ran {
        ok: status.success(),
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

/// Why the topology cannot be built here, if it cannot.
fn cannot_build() -> Option<String> {
    if !cfg!(target_os = "linux") {
        let os = std::env::consts::OS;
        return Some(format!(
            "network namespaces are Linux's, and this is {os}: use WSL2 or a Linux VM"
        ));
    }
    #[cfg(unix)]
    // SAFETY: geteuid() cannot fail and touches no memory of ours.
    if unsafe { libc::geteuid() } != 0 {
        return Some("network namespaces need root: run `sudo target/debug/lab ...`".into());
    }
    for tool in ["ip", "nft"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            return Some(format!("'{tool}' is not installed"));
        }
    }
    if !Path::new(SCRIPT).is_file() {
        return Some(format!("{SCRIPT} is not there (lab was built elsewhere)"));
    }
    None
}

/// The topology under names of this run; `down --force` when dropped.
struct Topology {
    names: [String; 3],
}

impl Topology {
    fn up(experiment: &str) -> anyhow::Result<Topology> {
        remove_stale();
        let id = std::process::id();
        let names = ["a", "r", "b"].map(|x| format!("lab9-{id}-{experiment}-{x}"));
        let topology = Topology { names };
        let up = topology.script(&["up"])?;
        if !up.ok {
            bail!("three_hosts.sh up failed: {}", up.stderr.trim());
        }
        Ok(topology)
    }

    fn script(&self, args: &[&str]) -> anyhow::Result<Ran> {
        let env = [
            ("LAB_HOST_A", self.names[0].as_str()),
            ("LAB_ROUTER", self.names[1].as_str()),
            ("LAB_HOST_B", self.names[2].as_str()),
        ];
        let mut all = vec![SCRIPT];
        all.extend_from_slice(args);
        run("bash", &all, &env, WAIT)
    }

    /// Runs the lab program `name` on host-a.
    fn on_a(&self, name: &str, args: &[&str]) -> anyhow::Result<Ran> {
        let path = harness::sibling(name)?;
        let path = path.to_str().context("the program's path is not UTF-8")?;
        let mut all = vec!["netns", "exec", &self.names[0], path];
        all.extend_from_slice(args);
        run("ip", &all, &[], WAIT)
    }
}

/// Removes the namespaces of an earlier lab that was killed before it could
/// (`lab9-PID-...` whose PID is gone).
fn remove_stale() {
    let Ok(list) = run("ip", &["netns", "list"], &[], WAIT) else {
        return;
    };
    for name in list
        .stdout
        .lines()
        .filter_map(|l| l.split_whitespace().next())
    {
        let pid = name.strip_prefix("lab9-").and_then(|r| r.split('-').next());
        if pid
            .is_some_and(|p| p.parse::<u32>().is_ok() && !Path::new(&format!("/proc/{p}")).exists())
        {
            let _ = run("ip", &["netns", "del", name], &[], WAIT);
        }
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        let _ = self.script(&["down", "--force"]);
    }
}

/// The topology, or None after marking every expected observation not checked.
fn topology_or_skip(
    r: &mut Report,
    name: &str,
    expected: &[&str],
) -> anyhow::Result<Option<Topology>> {
    if let Some(why) = cannot_build() {
        for e in expected {
            r.not_checked(*e, &why);
        }
        return Ok(None);
    }
    r.did(format!(
        "sudo scripts/three_hosts.sh up   (namespaces lab9-*-{name}-a, -r, -b)"
    ));
    Topology::up(name).map(Some)
}

fn ttl_one_router(r: &mut Report) -> anyhow::Result<()> {
    let expected = "the router 10.20.1.1 answers a TTL of 1 with Time Exceeded (type 11, code 0)";
    let Some(net) = topology_or_skip(r, "ttl", &[expected])? else {
        return Ok(());
    };
    r.did(format!("on host-a: icmp_ping -c 1 --ttl 1 {HOST_B}"));
    let out = net.on_a("icmp_ping", &["-c", "1", "--ttl", "1", HOST_B])?;
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with("From"))
        .unwrap_or("(no ICMP error)");
    r.saw(line);
    r.check(
        line.contains(&format!("From {ROUTER} ")) && line.contains("(type 11, code 0)"),
        expected,
    );
    r.why(
        "the router takes 1 off the TTL before forwarding; at 0 it drops the packet and tells \
         the sender with ICMP Time Exceeded from its own address (RFC 792, RFC 1812 5.3.1)",
    );
    Ok(())
}

fn trace_port_unreachable(r: &mut Report) -> anyhow::Result<()> {
    let expected = [
        "hop 1 is the router 10.20.1.1, hop 2 is host-b 10.20.2.2, three times each",
        "the trace ends at hop 2 without a mark: host-b's Port Unreachable (3/3)",
    ];
    let Some(net) = topology_or_skip(r, "trace", &expected)? else {
        return Ok(());
    };
    r.did(format!("on host-a: traceroute {HOST_B}"));
    let out = net.on_a("traceroute", &[HOST_B])?;
    let lines: Vec<&str> = out.stdout.lines().collect();
    for line in &lines {
        r.saw(*line);
    }
    let hop = |n: usize, addr: &str| {
        lines.get(n).is_some_and(|l| {
            l.starts_with(&format!("{n:>2}  {addr}  ")) && l.matches(" ms").count() == 3
        })
    };
    r.check(hop(1, ROUTER) && hop(2, HOST_B), expected[0]);
    r.check(
        out.ok && lines.len() == 3 && !lines[2].contains('!'),
        expected[1],
    );
    r.why(
        "TTL 1 dies at the router (Time Exceeded); TTL 2 reaches host-b, where no program has \
         UDP port 33437 open, so its kernel answers Port Unreachable, and that is the end",
    );
    Ok(())
}

fn icmp_dropped(r: &mut Report) -> anyhow::Result<()> {
    let expected = [
        "icmp_ping to host-b hears nothing at all (no reply, no error)",
        "traceroute shows \"* * *\" for every hop and never reaches host-b",
    ];
    let Some(net) = topology_or_skip(r, "drop", &expected)? else {
        return Ok(());
    };
    r.did("three_hosts.sh icmp drop   (the router forwards no ICMP and sends none)");
    net.script(&["icmp", "drop"])?;
    r.did(format!(
        "on host-a: icmp_ping -c 2 -i 200ms -W 300ms {HOST_B}"
    ));
    let ping = net.on_a(
        "icmp_ping",
        &["-c", "2", "-i", "200ms", "-W", "300ms", HOST_B],
    )?;
    let summary = ping
        .stdout
        .lines()
        .find(|l| l.contains("transmitted"))
        .unwrap_or("");
    r.saw(summary);
    r.check(
        !ping.ok && summary.contains("0 received, 100% packet loss") && !summary.contains("errors"),
        expected[0],
    );
    r.did(format!("on host-a: traceroute -m 3 -w 300ms {HOST_B}"));
    let trace = net.on_a("traceroute", &["-m", "3", "-w", "300ms", HOST_B])?;
    let hops: Vec<&str> = trace.stdout.lines().skip(1).collect();
    for line in &hops {
        r.saw(*line);
    }
    r.check(
        !trace.ok && hops.len() == 3 && hops.iter().all(|l| l.ends_with("* * *")),
        expected[1],
    );
    r.why(
        "the UDP probes still cross the router, but neither its Time Exceeded nor host-b's \
         Port Unreachable comes back: without ICMP, traceroute cannot tell a silent router \
         from a lost probe, and ping cannot tell a dropped request from a dead host",
    );
    Ok(())
}

fn router_loss(r: &mut Report) -> anyhow::Result<()> {
    let expected = "of 200 pings about 25% are lost (between 13% and 37%: the drop is random)";
    let Some(net) = topology_or_skip(r, "loss", &[expected])? else {
        return Ok(());
    };
    r.did(
        "three_hosts.sh loss 25%   (nftables numgen random on the router, host-a -> host-b only)",
    );
    net.script(&["loss", "25"])?;
    r.did(format!(
        "on host-a: icmp_ping -c 200 -i 2ms -W 50ms {HOST_B}"
    ));
    let out = net.on_a(
        "icmp_ping",
        &["-c", "200", "-i", "2ms", "-W", "50ms", HOST_B],
    )?;
    let summary = out
        .stdout
        .lines()
        .find(|l| l.contains("packet loss"))
        .unwrap_or("");
    r.saw(summary);
    let loss: Option<f64> = summary
        .split(", ")
        .find_map(|part| part.strip_suffix("% packet loss"))
        .and_then(|p| p.parse().ok());
    r.check(loss.is_some_and(|l| (13.0..=37.0).contains(&l)), expected);
    r.why(
        "each request has a 1 in 4 chance of being dropped on its way to host-b; 200 tries \
         land near 25% (one standard deviation is about 3 points). nftables cannot seed its \
         random numbers, so every run loses different pings",
    );
    Ok(())
}

fn ping_without_root(r: &mut Report) -> anyhow::Result<()> {
    let expected = [
        "with the range \"1 0\" (nobody) the ping socket is refused, and the hint names the sysctl, --raw and unshare -rn",
        "with the range \"0 2147483647\" the same icmp_ping, as the same user, gets its replies",
    ];
    let Some(net) = topology_or_skip(r, "root", &expected)? else {
        return Ok(());
    };
    let ns = net.names[0].as_str();
    let set = |range: &str| {
        run(
            "ip",
            &[
                "netns",
                "exec",
                ns,
                "sysctl",
                "-qw",
                &format!("net.ipv4.ping_group_range={range}"),
            ],
            &[],
            WAIT,
        )
    };
    r.did("on host-a: sysctl -w net.ipv4.ping_group_range=\"1 0\", then icmp_ping -c 1 127.0.0.1");
    set("1 0")?;
    let refused = net.on_a("icmp_ping", &["-c", "1", "127.0.0.1"])?;
    for line in refused.stderr.lines() {
        r.saw(line);
    }
    let hint = refused
        .stderr
        .lines()
        .find(|l| l.starts_with("hint:"))
        .unwrap_or("");
    r.check(
        !refused.ok
            && refused.stderr.contains("Permission denied")
            && ["sysctl -w", "--raw", "unshare -rn"]
                .iter()
                .all(|w| hint.contains(w)),
        expected[0],
    );
    r.did("on host-a: sysctl -w net.ipv4.ping_group_range=\"0 2147483647\", then the same");
    set("0 2147483647")?;
    let allowed = net.on_a("icmp_ping", &["-c", "1", "127.0.0.1"])?;
    r.saw(allowed.stdout.lines().nth(1).unwrap_or(""));
    r.check(
        allowed.ok && allowed.stdout.contains("icmp_seq=1 ttl=64"),
        expected[1],
    );
    r.why(
        "the kernel lets a process open a ping socket only if its group is in the range, and \
         root gets no exception; a range is set per network namespace, so inside its own \
         (unshare -rn) any user may allow itself. Systems that ship \"1 0\", or kernels \
         without ping sockets, leave ping to a raw socket: root or CAP_NET_RAW (iputils ping \
         has that capability on its file)",
    );
    Ok(())
}
