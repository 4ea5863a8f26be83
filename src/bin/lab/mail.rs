//! The experiment of labs/08-mail.md: dot-stuffing, seen on the wire and
//! undone by a real SMTP server (aiosmtpd, through tests/peers/smtp_sink.py).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;

use anyhow::{Context, bail};

use crate::harness::{self, WAIT};
use crate::{Experiment, Report};

pub const EXPERIMENTS: &[Experiment] = &[Experiment {
    name: "dot-stuffing",
    worksheet: "labs/08-mail.md, Part C",
    summary: "a body with a lone '.' line: smtp_client sends '..', the lone '.' ends the message, aiosmtpd saves the '.' back",
    run: dot_stuffing,
}];

/// The mail sink, tests/peers/smtp_sink.py, found from where lab was built.
const SINK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/smtp_sink.py");

/// The sink's process and folder, both removed when dropped.
struct Sink {
    child: Child,
    folder: PathBuf,
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.folder);
    }
}

/// A python3 that can import aiosmtpd (Debian's own, if a pyenv one cannot).
fn python_with_aiosmtpd() -> Option<&'static str> {
    ["python3", "/usr/bin/python3"].into_iter().find(|py| {
        Command::new(py)
            .args(["-c", "import aiosmtpd"])
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// Starts the sink on a free port; returns it and its port.
fn start_sink(python: &str) -> anyhow::Result<(Sink, u16)> {
    let folder = std::env::temp_dir().join(format!("socketlab-lab-mail-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&folder);
    let mut child = Command::new(python)
        .args([
            SINK,
            folder.to_str().context("temp folder name is not UTF-8")?,
            "0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("failed to start the mail sink")?;
    let stdout = child.stdout.take().context("no stdout")?;
    let sink = Sink { child, folder };
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let first = rx.recv_timeout(WAIT).unwrap_or_default();
    let Some(port) = first
        .trim_end()
        .strip_suffix(" (SMTP)")
        .and_then(|l| l.rsplit(':').next())
    else {
        bail!("the mail sink did not start: its first line was {first:?}");
    };
    let port = port
        .parse()
        .with_context(|| format!("no port in {first:?}"))?;
    Ok((sink, port))
}

fn dot_stuffing(r: &mut Report) -> anyhow::Result<()> {
    let Some(python) = python_with_aiosmtpd() else {
        r.not_checked(
            "the body arrives with its '.' lines intact",
            "python3-aiosmtpd is not installed: apt-get install python3-aiosmtpd",
        );
        return Ok(());
    };
    let (sink, port) = start_sink(python)?;
    r.did(format!(
        "started the mail sink (aiosmtpd) on 127.0.0.1:{port}"
    ));
    let port = port.to_string();
    let body = "first line\n.\n.starts with a dot\nlast line";
    let args = [
        "--port",
        &port,
        "--to",
        "alice@example.com",
        "--body",
        body,
        "--show-dialogue",
    ];
    r.did("smtp_client --to alice@example.com --show-dialogue with the body: first line / . / .starts with a dot / last line");
    let out = harness::run("smtp_client", &args)?;
    let wire: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("C: ."))
        .collect();
    r.saw(format!("on the wire: {}", wire.join("   ")));
    r.check(
        wire == ["C: ..", "C: ..starts with a dot", "C: ."],
        "each body line that starts with '.' gets a second '.', and a lone '.' ends the message",
    );
    let saved = std::fs::read(sink.folder.join("001.eml")).unwrap_or_default();
    let text = String::from_utf8_lossy(&saved);
    let body_saved = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    r.saw(format!("the sink saved the body {body_saved:?}"));
    r.check(
        body_saved == "first line\r\n.\r\n.starts with a dot\r\nlast line\r\n",
        "the server removed the extra dots: the body arrived exactly as written",
    );
    r.why(
        "a line holding a single '.' ends the message (RFC 5321 §4.5.2), so a body line that \
         starts with '.' would be ambiguous; the client doubles the dot and the server removes \
         one, which makes any text safe to send",
    );
    Ok(())
}
