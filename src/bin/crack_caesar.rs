//! crack_caesar: recovers the Caesar key and the plain text of a captured
//! time service session, and the shared secret from its public keys.
//!
//! Why the time service's "encryption" is a toy. A byte Caesar shift has
//! 256 keys, so trying them all takes microseconds; the right one is the
//! one whose output looks like the protocol (`TIME`, `14:02:19.198`). And
//! the key exchange is no help: with p = 257, g = 11 reaches only 64 of the
//! 256 possible values, so anyone who saw the two public keys finds a
//! private key by trying them all, and with it the shared secret.
//!
//! Capture a session, then crack it:
//!
//! Terminal 1: `cargo run --bin time_server`
//! Terminal 2: `sudo tcpdump -i lo -w time.pcap 'tcp port 7777'`
//! Terminal 3: `cargo run --bin time_client -- --request time --count 3`
//! Then:       `tshark -r time.pcap -T fields -e tcp.payload | cargo run --bin crack_caesar`
//! And:        `cargo run --bin crack_caesar -- --dh A B` with the two `KEY` numbers
//! Worksheet:  labs/05-time-service.md, protocol: labs/time-protocol.md

use std::io::BufRead;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use socketlab::explain;
use socketlab::printable;
use socketlab::time_service::{G, Hello, KeyPair, P, Request, caesar_key, decrypt, power_mod};

/// Recover the Caesar key and plain text from captured time service payloads, or the DH secret from two public keys.
#[derive(Parser, Debug)]
#[command(name = "crack_caesar", version)]
struct Cli {
    /// Captured TCP payloads in hex, one per segment, as `tshark -T fields -e tcp.payload`
    /// prints them; read from stdin, one per line, when none are given
    #[arg(conflicts_with = "dh")]
    hex: Vec<String>,

    /// Recover the shared secret and the Caesar key from the two public keys
    /// seen in a capture (the client's A and the server's B, each 1 to 256)
    #[arg(long, num_args = 2, value_names = ["A", "B"], value_parser = clap::value_parser!(u32).range(1..=256))]
    dh: Option<Vec<u32>>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    explain::report(run(&cli))
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    if let Some(keys) = &cli.dh {
        return crack_dh(keys[0], keys[1]);
    }
    let lines = if cli.hex.is_empty() {
        read_stdin()?
    } else {
        cli.hex.clone()
    };
    let capture = Capture::parse(&lines)?;
    crack_caesar(&capture)
}

fn read_stdin() -> anyhow::Result<Vec<String>> {
    std::io::stdin()
        .lock()
        .lines()
        .collect::<Result<_, _>>()
        .context("failed to read stdin")
}

/// What a capture holds: the handshake lines (sent in the clear) and the
/// payloads of the frames (shifted by the unknown key).
#[derive(Debug, Default)]
struct Capture {
    handshake: Vec<String>,
    public_keys: Vec<u32>,
    ciphertexts: Vec<Vec<u8>>,
}

impl Capture {
    fn parse(lines: &[String]) -> anyhow::Result<Capture> {
        let mut capture = Capture::default();
        for (number, line) in lines.iter().enumerate() {
            // tshark prints an empty field for segments without payload
            // (SYN, pure ACKs, FIN), older versions separate bytes with ':',
            // and a file saved on Windows ends its lines with '\r'.
            let hex: String = line
                .chars()
                .filter(|c| !matches!(c, ':' | ' ' | '\t' | '\r'))
                .collect();
            if hex.is_empty() {
                continue;
            }
            let bytes = decode_hex(&hex).map_err(|why| {
                explain::hinted(
                    format!("line {}: invalid hex '{}': {why}", number + 1, line.trim()),
                    "give one TCP payload per line in hex, as `tshark -T fields -e tcp.payload` \
                     prints it, and nothing else (no -e tcp.srcport columns)",
                )
            })?;
            capture.add_segment(&bytes);
        }
        if capture.ciphertexts.is_empty() {
            return Err(explain::hinted(
                "no frames in the input: give the hex payloads of a captured session",
                "capture a time_client session that asks something (tcpdump -w), then pipe \
                 `tshark -r FILE -T fields -e tcp.payload` into crack_caesar",
            ));
        }
        Ok(capture)
    }

    /// One TCP segment's payload: a handshake line, or one or more frames.
    fn add_segment(&mut self, bytes: &[u8]) {
        let text = String::from_utf8_lossy(bytes);
        if text.ends_with('\n') {
            let line = text.trim_end();
            if line.starts_with("ERROR ") || Hello::parse(line).is_ok() {
                if let Ok(Hello::Key(public)) = Hello::parse(line) {
                    self.public_keys.push(public);
                }
                self.handshake.push(line.to_string());
                return;
            }
        }
        match split_frames(bytes) {
            Some(frames) => self.ciphertexts.extend(frames),
            // Not whole frames (a frame split over segments): crack it as it is.
            None => self.ciphertexts.push(bytes.to_vec()),
        }
    }
}

/// Splits a segment into frames (2-byte big-endian length, then payload),
/// if it is exactly a sequence of whole frames.
fn split_frames(mut bytes: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut frames = Vec::new();
    while !bytes.is_empty() {
        let (header, rest) = bytes.split_first_chunk::<2>()?;
        let len = usize::from(u16::from_be_bytes(*header));
        if rest.len() < len {
            return None;
        }
        frames.push(rest[..len].to_vec());
        bytes = &rest[len..];
    }
    Some(frames)
}

fn decode_hex(hex: &str) -> Result<Vec<u8>, &'static str> {
    if hex.len() % 2 != 0 {
        return Err("an odd number of hex digits");
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                .ok_or("not a hex digit pair")
        })
        .collect()
}

/// Tries all 256 keys and prints the one whose output looks most like the protocol.
fn crack_caesar(capture: &Capture) -> anyhow::Result<()> {
    for line in &capture.handshake {
        println!("clear text: {line}");
    }
    let mut ranked: Vec<(i64, u8)> = (0..=255u8)
        .map(|key| {
            let score = capture
                .ciphertexts
                .iter()
                .map(|c| plausibility(&decrypt(key, c)))
                .sum();
            (score, key)
        })
        .collect();
    // Highest score first; equal scores keep the smaller key first.
    ranked.sort_by_key(|&(score, key)| (-score, key));
    let (best_score, best_key) = ranked[0];
    let (next_score, next_key) = ranked[1];
    let frames = capture.ciphertexts.len();
    println!(
        "tried all 256 keys on {frames} frame{}: best key {best_key} (score {best_score}; next best: key {next_key}, score {next_score})",
        if frames == 1 { "" } else { "s" }
    );
    for ciphertext in &capture.ciphertexts {
        println!(
            "  {}",
            printable::quoted(&decrypt(best_key, ciphertext), 80)
        );
    }
    if let [client, server, ..] = capture.public_keys[capture.public_keys.len().saturating_sub(2)..]
    {
        if let Some(private) = private_keys(client).first() {
            let secret = KeyPair::from_private(*private).shared_secret(server);
            println!(
                "the last key exchange (KEY {client}, KEY {server}) gives secret {secret}, key {}: see crack_caesar --dh {client} {server}",
                caesar_key(secret)
            );
        }
    }
    Ok(())
}

/// How much `text` looks like the protocol's plain text: requests in
/// capitals, answers of digits, ':', '-', '.', and "°C (simulated)".
fn plausibility(text: &[u8]) -> i64 {
    let per_byte: i64 = text
        .iter()
        .map(|&b| match b {
            b'A'..=b'Z' | b'0'..=b'9' | b':' | b'-' | b'.' | b' ' => 3,
            b'a'..=b'z' | b'(' | b')' | b'"' | b'\'' | b',' => 2,
            // The two bytes of '°' in UTF-8.
            0xc2 | 0xb0 => 1,
            0x21..=0x7e => 0,
            _ => -10,
        })
        .sum();
    let whole = if Request::parse(text).is_some() || text.starts_with(b"ERROR ") {
        20
    } else {
        0
    };
    per_byte + whole
}

/// The private keys from 2 to 255 whose public key is `public`: a discrete
/// logarithm, by trying them all.
fn private_keys(public: u32) -> Vec<u32> {
    (2..=255)
        .filter(|&a| power_mod(G, a, P) == public)
        .collect()
}

/// `--dh A B`: finds a private key behind A, then computes the secret as
/// the client did.
fn crack_dh(client_public: u32, server_public: u32) -> anyhow::Result<()> {
    let reachable = (0..256)
        .filter(|&a| power_mod(G, a, P) == 1)
        .nth(1)
        .unwrap_or(256);
    println!(
        "{G} has order {reachable} mod {P}: g^a mod p takes only {reachable} of the 256 possible values, whatever a is"
    );
    let candidates = private_keys(client_public);
    let Some(&private) = candidates.first() else {
        return Err(explain::hinted(
            format!(
                "public key '{client_public}' is not a power of {G} mod {P}: no private key gives it"
            ),
            format!(
                "only {reachable} numbers can be public keys here: copy A from the client's \
                 `KEY A` line (the first line on the wire), then B from the server's"
            ),
        ));
    };
    let list: Vec<String> = candidates.iter().map(u32::to_string).collect();
    println!(
        "private keys that give A = {client_public}: {} (any one will do)",
        list.join(", ")
    );
    let secret = KeyPair::from_private(private).shared_secret(server_public);
    println!("shared secret s = B^a mod p = {server_public}^{private} mod {P} = {secret}");
    println!("Caesar key k = s mod 256 = {}", caesar_key(secret));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use socketlab::time_service::{encode_frame, encrypt};

    #[test]
    fn a_single_short_request_is_enough() {
        for key in 1..=255u8 {
            let capture = Capture {
                ciphertexts: vec![encrypt(key, b"TIME")],
                ..Capture::default()
            };
            let best = (0..=255u8)
                .max_by_key(|&k| {
                    (
                        capture
                            .ciphertexts
                            .iter()
                            .map(|c| plausibility(&decrypt(k, c)))
                            .sum::<i64>(),
                        std::cmp::Reverse(k),
                    )
                })
                .expect("256 keys");
            assert_eq!(best, key);
        }
    }

    #[test]
    fn segments_split_into_frames_and_handshake_lines() {
        let mut segment = encode_frame(9, b"TIME");
        segment.extend(encode_frame(9, b"DATE"));
        let lines: Vec<String> = [b"KEY 146\n".to_vec(), b"KEY 64\n".to_vec(), segment, vec![]]
            .iter()
            .map(|b| b.iter().map(|x| format!("{x:02x}")).collect())
            .collect();
        let capture = Capture::parse(&lines).expect("parses");
        assert_eq!(capture.handshake, ["KEY 146", "KEY 64"]);
        assert_eq!(capture.public_keys, [146, 64]);
        assert_eq!(
            capture.ciphertexts,
            [encrypt(9, b"TIME"), encrypt(9, b"DATE")]
        );
    }

    #[test]
    fn bad_hex_names_the_line() {
        let err = Capture::parse(&["0004".into(), "zz".into()]).expect_err("bad hex");
        assert_eq!(
            format!("{err:#}"),
            "line 2: invalid hex 'zz': not a hex digit pair"
        );
        let err = Capture::parse(&["abc".into()]).expect_err("odd");
        assert!(format!("{err:#}").contains("odd number"));
    }

    #[test]
    fn discrete_log_by_brute_force() {
        assert_eq!(private_keys(146), [7, 71, 135, 199]);
        assert_eq!(private_keys(3), Vec::<u32>::new());
    }
}
