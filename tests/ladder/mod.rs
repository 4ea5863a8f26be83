//! Reading the ladder diagram that scripts/capture.sh writes into
//! `SCENARIO.txt`, and what each scenario's ladder must show (the packets the
//! worksheet labs/06-packet-tracing-and-firewall.md talks about). Shared by
//! tests/scripts.rs (fresh captures) and tests/captures.rs (the reference
//! captures in captures/).
#![allow(dead_code)]

use std::path::Path;

use crate::common::{self, run};

/// The scenarios with a reference capture in captures/.
pub const REFERENCE_SCENARIOS: &[&str] = &[
    "tcp-echo",
    "udp-echo",
    "tcp-refused",
    "udp-port-unreachable",
    "time-service",
    "http-via-proxy",
];

/// One arrow of the ladder: between which columns, which way it points,
/// and its label.
#[derive(Debug, Clone, PartialEq)]
pub struct Arrow {
    /// The gap it crosses: 0 between the first two columns (the client and
    /// the server, or the client and the proxy), 1 between the next two
    /// (the proxy and the origin).
    pub gap: usize,
    /// Rightwards, to the server (`---->|`), or leftwards (`|<----`).
    pub to_server: bool,
    pub label: String,
}

/// The arrows of the ladder section of a capture's .txt, in order.
pub fn arrows(txt: &str) -> Vec<Arrow> {
    ladder_section(txt)
        .lines()
        .filter_map(|line| {
            // An arrow starts at a column's `|` followed by `-` or `<`.
            let start = line.find("|-").or_else(|| line.find("|<-"))?;
            let gap = line[..start].matches('|').count();
            let end = start + 1 + line[start + 1..].find('|')?;
            let arrow = &line[start..=end];
            let label = arrow
                .trim_matches(|c| c == '|' || c == '<' || c == '>' || c == '-' || c == ' ')
                .to_string();
            Some(Arrow {
                gap,
                to_server: arrow.ends_with(">|"),
                label,
            })
        })
        .collect()
}

/// The text between the `## Ladder` heading and the next heading.
pub fn ladder_section(txt: &str) -> &str {
    let start = txt
        .find("## Ladder")
        .unwrap_or_else(|| panic!("no ladder section in:\n{txt}"));
    let rest = &txt[start..];
    let end = rest[1..].find("\n## ").map_or(rest.len(), |i| i + 1);
    &rest[..end]
}

/// The ladder.py command the section's heading names, as words:
/// `python3 scripts/ladder.py tcp-echo.pcap client server:40123`.
pub fn ladder_command(txt: &str) -> Vec<String> {
    let heading = ladder_section(txt).lines().next().expect("heading");
    let command = heading
        .strip_prefix("## Ladder: ")
        .unwrap_or_else(|| panic!("unexpected ladder heading {heading:?}"));
    command.split_whitespace().map(str::to_string).collect()
}

/// Asserts that `arrows` show what the worksheet says about `scenario`.
pub fn check(scenario: &str, arrows: &[Arrow]) {
    let to = |label: &str| Arrow {
        gap: 0,
        to_server: true,
        label: label.into(),
    };
    let from = |label: &str| Arrow {
        gap: 0,
        to_server: false,
        label: label.into(),
    };
    let has = |to_server: bool, pred: &dyn Fn(&str) -> bool| {
        arrows
            .iter()
            .position(|a| a.gap == 0 && a.to_server == to_server && pred(&a.label))
    };
    match scenario {
        "tcp-refused" => assert_eq!(
            arrows,
            [to("SYN seq=0"), from("RST-ACK seq=0 ack=1")],
            "the SYN answered by a RST"
        ),
        "udp-echo" => assert_eq!(
            arrows,
            [to("UDP 5 bytes \"hello\""), from("UDP 5 bytes \"HELLO\"")],
            "one datagram each way, nothing else"
        ),
        "udp-port-unreachable" => assert_eq!(
            arrows,
            [to("UDP 5 bytes \"hello\""), from("ICMP port unreachable")],
            "the datagram answered by an ICMP port unreachable"
        ),
        "tcp-echo" | "time-service" => {
            assert!(arrows.len() >= 7, "too few packets: {arrows:#?}");
            assert_eq!(
                arrows[..3],
                [
                    to("SYN seq=0"),
                    from("SYN-ACK seq=0 ack=1"),
                    to("ACK seq=1 ack=1")
                ],
                "the three-way handshake: {arrows:#?}"
            );
            let sent = has(true, &|l| is_request(scenario, l))
                .unwrap_or_else(|| panic!("no request: {arrows:#?}"));
            let answered = has(false, &|l| is_reply(scenario, l))
                .unwrap_or_else(|| panic!("no reply: {arrows:#?}"));
            let client_fin = has(true, &|l| l.starts_with("FIN"))
                .unwrap_or_else(|| panic!("no FIN from the client: {arrows:#?}"));
            let server_fin = has(false, &|l| l.starts_with("FIN"))
                .unwrap_or_else(|| panic!("no FIN from the server: {arrows:#?}"));
            assert!(sent < client_fin && answered < server_fin, "{arrows:#?}");
            let last = arrows.last().expect("packets");
            assert!(
                last.to_server && last.label.starts_with("ACK "),
                "the client ACKs the server's FIN last: {arrows:#?}"
            );
        }
        "http-via-proxy" => check_proxy(arrows),
        other => panic!("no expectations for scenario {other:?}"),
    }
}

/// http-via-proxy: two connections, client-proxy (gap 0) and proxy-origin
/// (gap 1), each with its handshake, request, response and FINs, in the
/// order a forward proxy works.
fn check_proxy(arrows: &[Arrow]) {
    let find = |gap: usize, to_server: bool, pred: &dyn Fn(&str) -> bool, what: &str| {
        arrows
            .iter()
            .position(|a| a.gap == gap && a.to_server == to_server && pred(&a.label))
            .unwrap_or_else(|| panic!("no {what}: {arrows:#?}"))
    };
    let client_syn = find(0, true, &|l| l == "SYN seq=0", "SYN to the proxy");
    find(
        0,
        false,
        &|l| l.starts_with("SYN-ACK"),
        "SYN-ACK from the proxy",
    );
    let full_url = find(
        0,
        true,
        &|l| l.contains(" bytes \"GET http://127.0.0.1:"),
        "GET with the whole URL to the proxy",
    );
    let origin_syn = find(1, true, &|l| l == "SYN seq=0", "SYN to the origin");
    find(
        1,
        false,
        &|l| l.starts_with("SYN-ACK"),
        "SYN-ACK from the origin",
    );
    let path_only = find(
        1,
        true,
        &|l| l.contains(" bytes \"GET /hello.txt HTTP/1.1"),
        "GET /hello.txt to the origin",
    );
    let from_origin = find(
        1,
        false,
        &|l| l.contains(" bytes \"HTTP/1.0 200 OK"),
        "the origin's 200",
    );
    let to_client = find(
        0,
        false,
        &|l| l.contains(" bytes \"HTTP/1.1 200 OK"),
        "the proxy's 200",
    );
    assert!(
        client_syn < full_url && full_url < origin_syn,
        "the proxy connects to the origin after the request: {arrows:#?}"
    );
    assert!(
        origin_syn < path_only && path_only < from_origin && from_origin < to_client,
        "request, then response, relayed: {arrows:#?}"
    );
    for (gap, to_server) in [(0, true), (0, false), (1, true), (1, false)] {
        find(gap, to_server, &|l| l.starts_with("FIN"), "a FIN");
    }
}

/// The client's data in tcp-echo ("hello") and time-service (its
/// Diffie-Hellman public key, which travels in the clear).
fn is_request(scenario: &str, label: &str) -> bool {
    match scenario {
        "tcp-echo" => label.starts_with("PSH-ACK seq=1:6 ack=1 5 bytes \"hello\""),
        _ => label.contains(" bytes \"KEY "),
    }
}

/// The server's answer: "HELLO", or the server's public key.
fn is_reply(scenario: &str, label: &str) -> bool {
    match scenario {
        "tcp-echo" => label.starts_with("PSH-ACK seq=1:6 ") && label.ends_with("\"HELLO\""),
        _ => label.contains(" bytes \"KEY "),
    }
}

/// What `tcpdump -r FILE -n -A` must print for `scenario` (its own parse of
/// the packets, independent of ladder.py; -A adds each payload as ASCII).
pub fn tcpdump_shows(scenario: &str) -> &'static [&'static str] {
    match scenario {
        "tcp-refused" => &["Flags [S]", "Flags [R.]"],
        "udp-echo" => &["UDP, length 5", "hello", "HELLO"],
        "udp-port-unreachable" => &["UDP, length 5", "ICMP 127.0.0.1 udp port", "unreachable"],
        "tcp-echo" => &["Flags [S]", "Flags [S.]", "Flags [F.]", "hello", "HELLO"],
        "time-service" => &["Flags [S]", "Flags [S.]", "Flags [F.]", "KEY "],
        "http-via-proxy" => &[
            "Flags [S]",
            "GET http://127.0.0.1:",
            "GET /hello.txt HTTP/1.1",
        ],
        other => panic!("no tcpdump expectations for scenario {other:?}"),
    }
}

/// Checks a pcap with tcpdump: readable, small, and showing `scenario`'s packets.
pub fn check_pcap(scenario: &str, pcap: &Path) {
    let size = std::fs::metadata(pcap)
        .unwrap_or_else(|e| panic!("{}: {e}", pcap.display()))
        .len();
    assert!(size < 100_000, "{} is {size} bytes", pcap.display());
    let path = pcap.to_str().expect("a UTF-8 path");
    let out = run("tcpdump", &["-r", path, "-n", "-A"], b"");
    assert_eq!(out.code(), Some(0), "tcpdump -r {path}: {}", out.stderr);
    for needle in tcpdump_shows(scenario) {
        assert!(
            out.stdout.contains(needle),
            "tcpdump -r {path} shows no {needle:?}:\n{}",
            out.stdout
        );
    }
}

/// Redraws the ladder from the pcap next to `txt_path` with the command the
/// .txt names, and asserts the .txt holds exactly that diagram.
pub fn check_ladder_matches_pcap(txt_path: &Path) {
    let txt = std::fs::read_to_string(txt_path).expect("the .txt");
    let command = ladder_command(&txt);
    assert_eq!(
        command[..2],
        ["python3", "scripts/ladder.py"],
        "{command:?}"
    );
    let dir = txt_path.parent().expect("a folder");
    let pcap = dir.join(&command[2]);
    let mut args = vec![
        concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/ladder.py").to_string(),
        pcap.to_str().expect("UTF-8 path").to_string(),
    ];
    args.extend(command[3..].iter().cloned());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = common::run("python3", &args, b"");
    assert_eq!(out.code(), Some(0), "ladder.py: {}", out.stderr);
    assert!(
        ladder_section(&txt).contains(&out.stdout),
        "{} does not hold the ladder of {}:\n{}",
        txt_path.display(),
        pcap.display(),
        out.stdout
    );
}
