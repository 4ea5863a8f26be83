//! The reference captures in captures/, made by scripts/capture.sh: each
//! one is a pcap that tcpdump can read, under 100 KB, whose .txt holds the
//! ladder drawn from that very pcap, and which still shows what
//! labs/06-packet-tracing-and-firewall.md says it shows. Reading a pcap needs
//! no root.

mod common;
mod ladder;

use std::path::PathBuf;

fn captures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("captures")
}

#[test]
fn every_reference_capture_is_readable_small_and_shows_its_packets() {
    common::require!("tcpdump", "python3");
    for scenario in ladder::REFERENCE_SCENARIOS {
        let pcap = captures().join(format!("{scenario}.pcap"));
        let txt_path = captures().join(format!("{scenario}.txt"));
        ladder::check_pcap(scenario, &pcap);
        let txt = std::fs::read_to_string(&txt_path)
            .unwrap_or_else(|e| panic!("{}: {e}", txt_path.display()));
        ladder::check(scenario, &ladder::arrows(&txt));
        ladder::check_ladder_matches_pcap(&txt_path);
    }
}

#[test]
fn every_file_in_captures_is_a_known_scenario() {
    let mut names: Vec<String> = std::fs::read_dir(captures())
        .expect("captures/")
        .map(|entry| {
            let entry = entry.expect("an entry");
            entry.file_name().to_string_lossy().into_owned()
        })
        .collect();
    names.sort();
    let mut expected: Vec<String> = ladder::REFERENCE_SCENARIOS
        .iter()
        .flat_map(|s| [format!("{s}.pcap"), format!("{s}.txt")])
        .collect();
    expected.sort();
    assert_eq!(
        names, expected,
        "captures/ holds exactly the reference captures"
    );
}
