//! smtp_client: sends one email by speaking SMTP by hand on a TCP socket.
//!
//! The K&R Mail Client assignment. SMTP (RFC 5321) is a dialogue of text
//! lines on one TCP connection: the server speaks first (`220` greeting),
//! then the client sends one command at a time (`EHLO`, `MAIL FROM:`, one
//! `RCPT TO:` per recipient, `DATA`, `QUIT`) and reads the reply to each
//! before the next. Every reply starts with a three-digit code: 2yz done,
//! 3yz go on, 4yz failed for now (try later), 5yz failed for good. A reply
//! of several lines has a `-` after the code on every line but the last
//! (`250-SIZE`, ..., `250 HELP`), so the client must read until the line
//! with a space. After `354` the client sends the message itself, headers
//! and body, and ends it with a line holding a single `.`; a body line that
//! starts with `.` gets a second one (dot-stuffing), or it could end the
//! message early.
//!
//! The partner is a local mail sink that delivers nothing: run
//! `python3 tests/peers/smtp_sink.py mail/` (saves each message under mail/)
//! or `python3 -m aiosmtpd -n` (prints it). Both listen on 127.0.0.1:8025.
//!
//! Terminal 1: `python3 tests/peers/smtp_sink.py mail/`
//! Terminal 2: `cargo run --bin smtp_client -- --to alice@example.com --show-dialogue`
//! Worksheet:  labs/08-mail.md

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::Parser;
use socketlab::cli::ClientArgs;
use socketlab::connect;
use socketlab::explain::{self, Proto, Step, hinted};

/// The longest line SMTP allows, CRLF included (RFC 5321 §4.5.3.1.6).
const MAX_LINE: usize = 1000;

/// Send one email by speaking SMTP by hand: EHLO, MAIL FROM, RCPT TO, DATA, QUIT (K&R assignment 3)
#[derive(Parser, Debug)]
#[command(
    name = "smtp_client",
    version,
    mut_arg("port", |a| a.default_value("8025")),
    mut_arg("timeout", |a| a.default_value("10s"))
)]
struct Cli {
    #[command(flatten)]
    server: ClientArgs,

    /// The sender: MAIL FROM and the From: header
    #[arg(long, default_value = "student@localhost")]
    from: String,

    /// A recipient: RCPT TO and the To: header (repeat for several)
    #[arg(long, required = true)]
    to: Vec<String>,

    /// The Subject: header
    #[arg(long, default_value = "Hello from smtp_client")]
    subject: String,

    /// The text of the message (lines may start with '.': they are dot-stuffed)
    #[arg(long, default_value = "I love computer networks!")]
    body: String,

    /// Attach this file (an image, say) as a MIME multipart message, base64-encoded
    #[arg(long, value_name = "FILE")]
    attach: Option<PathBuf>,

    /// The name the client gives itself in EHLO/HELO
    #[arg(long, default_value = "localhost")]
    helo_name: String,

    /// Print both sides of the dialogue as the wire carried them (C: client, S: server)
    #[arg(long)]
    show_dialogue: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    explain::report(run(&cli))
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    // The message is built before connecting: a bad --attach fails here,
    // without a half-finished dialogue.
    let message = compose(cli, SystemTime::now())?;
    let stream = connect::tcp(&cli.server.resolve()?, cli.server.timeout)?;
    let peer = stream
        .peer_addr()
        .context("failed to read the server's address")?;
    // Every reply is waited for at most --timeout; so is every write.
    stream
        .set_read_timeout(Some(cli.server.timeout))
        .and_then(|()| stream.set_write_timeout(Some(cli.server.timeout)))
        .context("failed to set the socket timeouts")?;
    let mut smtp = Dialogue {
        reader: BufReader::new(&stream),
        stream: &stream,
        peer,
        show: cli.show_dialogue,
    };
    let accepted = send_mail(&mut smtp, cli, &message)?;
    println!(
        "smtp_client: message accepted by {peer} for {} recipient(s): {accepted}",
        cli.to.len()
    );
    Ok(())
}

/// The dialogue of RFC 5321 §3.3, one command and one reply at a time.
/// Returns the server's reply to the message.
fn send_mail(smtp: &mut Dialogue, cli: &Cli, message: &[String]) -> anyhow::Result<Reply> {
    // The server speaks first: 220 "ready" (RFC 5321 §3.1).
    smtp.expect_reply("the greeting", &[220])?;
    // EHLO asks for the extensions too; a server that only knows RFC 821
    // answers 500/502 ("unrecognised"), and HELO is the fallback (§3.2).
    let ehlo = smtp.command(&format!("EHLO {}", cli.helo_name))?;
    if matches!(ehlo.code, 500 | 502) {
        smtp.expect(&format!("HELO {}", cli.helo_name), &[250])?;
    } else {
        smtp.check(&format!("EHLO {}", cli.helo_name), ehlo, &[250])?;
    }
    smtp.expect(&format!("MAIL FROM:<{}>", cli.from), &[250])?;
    for to in &cli.to {
        // 251: "not local, will forward" is a success too.
        smtp.expect(&format!("RCPT TO:<{to}>"), &[250, 251])?;
    }
    // 354: "start mail input; end with <CRLF>.<CRLF>".
    smtp.expect("DATA", &[354])?;
    smtp.send_message(message)?;
    let accepted = smtp.expect_reply("the message (after the lone '.')", &[250])?;
    smtp.expect("QUIT", &[221])?;
    Ok(accepted)
}

/// One SMTP connection: the stream for writing, a buffered reader for the
/// reply lines, and whether to echo both sides.
struct Dialogue<'a> {
    reader: BufReader<&'a TcpStream>,
    stream: &'a TcpStream,
    peer: SocketAddr,
    show: bool,
}

/// A complete reply: its code, and the text of each of its lines.
#[derive(Debug)]
struct Reply {
    code: u16,
    lines: Vec<String>,
}

impl std::fmt::Display for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.code, self.lines.join(" / "))
    }
}

impl Dialogue<'_> {
    /// Sends a command and checks that its reply has one of `codes`.
    fn expect(&mut self, command: &str, codes: &[u16]) -> anyhow::Result<Reply> {
        let reply = self.command(command)?;
        self.check(command, reply, codes)
    }

    /// Sends one command line and reads its whole reply.
    fn command(&mut self, command: &str) -> anyhow::Result<Reply> {
        self.write(format!("{command}\r\n").as_bytes(), &[command])?;
        self.read_reply(command)
    }

    /// Reads a reply the client did not ask for with a command (the
    /// greeting, the reply to the message) and checks its code.
    fn expect_reply(&mut self, what: &str, codes: &[u16]) -> anyhow::Result<Reply> {
        let reply = self.read_reply(what)?;
        self.check(what, reply, codes)
    }

    /// An unexpected code is an error that says what the code means. The
    /// client still says QUIT, politely, unless the server is closing (421).
    fn check(&mut self, after: &str, reply: Reply, codes: &[u16]) -> anyhow::Result<Reply> {
        if codes.contains(&reply.code) {
            return Ok(reply);
        }
        if reply.code != 421 {
            let _ = self.write(b"QUIT\r\n", &["QUIT"]);
            let _ = self.read_reply("QUIT");
        }
        let expected: Vec<String> = codes.iter().map(u16::to_string).collect();
        Err(hinted(
            format!(
                "the server answered {after} with {reply} (expected {})",
                expected.join(" or ")
            ),
            meaning(reply.code, after),
        ))
    }

    /// Sends the message after DATA: each line dot-stuffed and ended with
    /// CRLF, then the lone "." that ends it (RFC 5321 §4.5.2).
    fn send_message(&mut self, message: &[String]) -> anyhow::Result<()> {
        let mut wire = Vec::new();
        let mut shown = Vec::new();
        for line in message {
            // A line that starts with "." gets one more: the server removes
            // it, so only the lone "." below ends the message.
            let stuffed = if line.starts_with('.') {
                format!(".{line}")
            } else {
                line.clone()
            };
            wire.extend_from_slice(stuffed.as_bytes());
            wire.extend_from_slice(b"\r\n");
            shown.push(stuffed);
        }
        wire.extend_from_slice(b".\r\n");
        shown.push(".".to_string());
        let shown: Vec<&str> = shown.iter().map(String::as_str).collect();
        self.write(&wire, &shown)
    }

    /// Writes bytes to the server; with --show-dialogue, shows `lines`.
    fn write(&mut self, bytes: &[u8], lines: &[&str]) -> anyhow::Result<()> {
        if self.show {
            for line in lines {
                println!("C: {line}");
            }
        }
        self.stream
            .write_all(bytes)
            .context(Step::Send(Proto::Tcp, self.peer))
    }

    /// Reads one whole reply: `250-...` lines go on, `250 ...` ends it
    /// (RFC 5321 §4.2.1), and every line must carry the same code.
    fn read_reply(&mut self, after: &str) -> anyhow::Result<Reply> {
        let mut lines: Vec<(u16, String)> = Vec::new();
        loop {
            let line = self.read_line(after)?;
            if self.show {
                println!("S: {line}");
            }
            let (code, more, text) =
                parse_reply_line(&line).ok_or_else(|| garbled(&line, after))?;
            if lines.is_empty() || code == lines[0].0 {
                lines.push((code, text.to_string()));
            } else {
                return Err(garbled(&line, after));
            }
            if !more {
                let code = lines[0].0;
                let lines = lines.into_iter().map(|(_, text)| text).collect();
                return Ok(Reply { code, lines });
            }
        }
    }

    /// One reply line without its CRLF; the server closing first is an error.
    fn read_line(&mut self, after: &str) -> anyhow::Result<String> {
        let mut line = Vec::new();
        let read = (&mut self.reader)
            .take(MAX_LINE as u64 * 8)
            .read_until(b'\n', &mut line)
            .context(Step::Receive(Proto::Tcp, self.peer))?;
        if read == 0 {
            return Err(hinted(
                format!(
                    "the server closed the connection while smtp_client waited for the reply to {after}"
                ),
                "its FIN came instead of a reply: the server gave up on this client (a limit on \
                 connections, a rule against this sender, a crash, or it is no SMTP server and \
                 tired of waiting for the client to speak first); its log says which",
            ));
        }
        while line.last().is_some_and(|&b| b == b'\n' || b == b'\r') {
            line.pop();
        }
        Ok(String::from_utf8_lossy(&line).into_owned())
    }
}

/// `250-text` or `250 text` (or a bare `250`): the code, whether more
/// lines follow, and the text.
fn parse_reply_line(line: &str) -> Option<(u16, bool, &str)> {
    let digits = line.get(..3)?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) || !(b'2'..=b'5').contains(&digits.as_bytes()[0])
    {
        return None;
    }
    let code = digits.parse().ok()?;
    match line.as_bytes().get(3) {
        None => Some((code, false, "")),
        Some(b' ') => Some((code, false, &line[4..])),
        Some(b'-') => Some((code, true, &line[4..])),
        Some(_) => None,
    }
}

fn garbled(line: &str, after: &str) -> anyhow::Error {
    hinted(
        format!("the server's answer to {after} is not an SMTP reply: {line:?}"),
        "an SMTP reply is a line that starts with a three-digit code (2yz to 5yz) and a space, \
         or a '-' when more lines of the same reply follow: is this port an SMTP server? \
         (an HTTP or SSH server on it would answer like this)",
    )
}

/// What a reply code means (RFC 5321 §4.2.2 and §4.2.3), for the hint.
fn meaning(code: u16, after: &str) -> String {
    match code {
        421 => "421: the server is closing the connection (it is shutting down, or has too many \
                clients); this is temporary (4yz): try again later"
            .into(),
        450..=452 => format!(
            "{code}: a temporary failure (4yz) at {after}: the server may accept it later; a real \
             mail client queues the message and retries (greylisting relies on that)"
        ),
        550 | 551 | 553 => format!(
            "{code}: a permanent refusal (5yz) at {after}: the mailbox does not exist, or this \
             server does not take mail for that address (a server that relayed mail for any \
             address would be an open relay); check the address"
        ),
        552 => "552: the message is bigger than the server accepts".into(),
        554 => format!("554: the server refused {after} for good (a policy or spam rule)"),
        500..=504 => format!(
            "{code}: the server did not understand {after} (syntax, an unknown command, or \
             commands out of order): compare the dialogue (--show-dialogue) with RFC 5321 §4.1"
        ),
        400..=499 => format!("{code}: a temporary failure (4yz): try again later"),
        505..=599 => format!("{code}: a permanent failure (5yz): the server will not take this"),
        _ => format!("{code} is not a code the server should send here (RFC 5321 §4.3.2)"),
    }
}

// ---------------------------------------------------------------------------
// The message itself (RFC 5322): header lines, an empty line, the body.

/// The message as lines without CRLF, before dot-stuffing.
fn compose(cli: &Cli, now: SystemTime) -> anyhow::Result<Vec<String>> {
    let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let to: Vec<String> = cli.to.iter().map(|t| format!("<{t}>")).collect();
    let mut lines = vec![
        // RFC 5322 §3.3 dates look like HTTP's, with a numeric zone.
        format!(
            "Date: {}",
            httpdate::fmt_http_date(now).replace(" GMT", " +0000")
        ),
        format!("From: <{}>", cli.from),
        format!("To: {}", to.join(", ")),
        format!("Subject: {}", cli.subject),
        format!(
            "Message-ID: <{}.{}@{}>",
            since_epoch.as_nanos(),
            std::process::id(),
            cli.helo_name
        ),
        "MIME-Version: 1.0".to_string(),
    ];
    let body: Vec<String> = cli.body.lines().map(str::to_string).collect();
    match &cli.attach {
        None => {
            lines.push("Content-Type: text/plain; charset=utf-8".into());
            lines.push(String::new());
            lines.extend(body);
        }
        Some(path) => {
            let boundary = format!("=_socketlab_{}", since_epoch.as_nanos());
            lines.extend(multipart(&boundary, body, path)?);
        }
    }
    if let Some(long) = lines.iter().find(|l| l.len() > MAX_LINE - 2) {
        return Err(hinted(
            format!("a line of the message is {} bytes long", long.len()),
            "SMTP allows at most 998 bytes per line plus CRLF (RFC 5321 §4.5.3.1.6): break the \
             text into shorter lines",
        ));
    }
    Ok(lines)
}

/// A multipart/mixed body (RFC 2046 §5.1): the text, then the file in
/// base64, each part after a `--boundary` line, the end after `--boundary--`.
/// The boundary contains "=_", which base64 never produces.
fn multipart(boundary: &str, body: Vec<String>, path: &Path) -> anyhow::Result<Vec<String>> {
    let bytes = fs::read(path).map_err(|err| {
        hinted(
            format!("cannot read the attachment '{}': {err}", path.display()),
            "--attach names a file to send with the message; check the path",
        )
    })?;
    let name = path.file_name().map_or("attachment".into(), |n| {
        n.to_string_lossy().replace('"', "")
    });
    let mut lines = vec![
        format!("Content-Type: multipart/mixed; boundary=\"{boundary}\""),
        String::new(),
        "This is a MIME message: a mail program shows the text and the attachment.".into(),
        format!("--{boundary}"),
        "Content-Type: text/plain; charset=utf-8".into(),
        String::new(),
    ];
    lines.extend(body);
    lines.push(format!("--{boundary}"));
    lines.push(format!(
        "Content-Type: {}; name=\"{name}\"",
        attachment_type(path)
    ));
    lines.push("Content-Transfer-Encoding: base64".into());
    lines.push(format!(
        "Content-Disposition: attachment; filename=\"{name}\""
    ));
    lines.push(String::new());
    let encoded = base64(&bytes);
    // 76 characters per line (RFC 2045 §6.8); base64 is ASCII, so any cut is safe.
    lines.extend(
        encoded
            .as_bytes()
            .chunks(76)
            .map(|c| String::from_utf8_lossy(c).into_owned()),
    );
    lines.push(format!("--{boundary}--"));
    Ok(lines)
}

fn attachment_type(path: &Path) -> &'static str {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("txt") => "text/plain",
        Some("pdf") => "application/pdf",
        _ => "application/octet-stream",
    }
}

/// Base64 (RFC 4648 §4): every 3 bytes become 4 characters of 6 bits each;
/// a last group of 1 or 2 bytes is padded with `=`. It turns any bytes into
/// ASCII letters, which is all SMTP promised to carry.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for group in bytes.chunks(3) {
        let b = [
            group[0],
            *group.get(1).unwrap_or(&0),
            *group.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= group.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_test_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded, "{plain:?}");
        }
        assert_eq!(base64(&[0xff, 0xfe, 0x00]), "//4A");
    }

    #[test]
    fn reply_lines() {
        assert_eq!(
            parse_reply_line("250-SIZE 100"),
            Some((250, true, "SIZE 100"))
        );
        assert_eq!(parse_reply_line("250 HELP"), Some((250, false, "HELP")));
        assert_eq!(parse_reply_line("354"), Some((354, false, "")));
        // Garbled: not three digits, a first digit outside 2-5, no separator.
        for bad in [
            "",
            "25",
            "HTTP/1.1 400",
            "650 no",
            "250xHELP",
            "SSH-2.0-OpenSSH",
        ] {
            assert_eq!(parse_reply_line(bad), None, "{bad:?}");
        }
    }
}
