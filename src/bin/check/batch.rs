//! `--batch DIR`: grade every submission in a folder, one subfolder per
//! student. Each is checked by a fresh `check` process (so one student's
//! program cannot disturb the next) with the `--exec` command run inside
//! the subfolder; its report goes to `check.txt` and `check.json` there,
//! and one line per student to standard output.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::Context;

use crate::Cli;

/// Runs the lab for every subfolder of `dir`; Ok(true) if all passed.
pub fn run(cli: &Cli, dir: &Path) -> anyhow::Result<bool> {
    let Some(exec) = &cli.exec else {
        return Err(crate::labs::usage(
            "--batch needs --exec 'COMMAND' (run inside each submission's folder)".into(),
        ));
    };
    let mut subs: Vec<_> = fs::read_dir(dir)
        .with_context(|| format!("failed to read the folder '{}'", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    subs.sort();
    let seed = cli.seed.unwrap_or(1);
    let me = std::env::current_exe().context("failed to find check's own executable")?;
    let mut all = true;
    for sub in &subs {
        let command = format!("cd {} && {exec}", quoted(sub));
        let mut args = vec![
            crate::labs::name(cli.lab).to_string(),
            "--exec".into(),
            command,
            "--seed".into(),
            seed.to_string(),
            "--timeout".into(),
            humantime::format_duration(cli.timeout).to_string(),
            "--start-timeout".into(),
            humantime::format_duration(cli.start_timeout).to_string(),
            "--json".into(),
            sub.join("check.json").display().to_string(),
        ];
        if let Some(input) = &cli.input {
            args.extend(["--input".to_string(), input.clone()]);
        }
        let out = Command::new(&me)
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("failed to run check for '{}'", sub.display()))?;
        let _ = fs::write(
            sub.join("check.txt"),
            [out.stdout.as_slice(), out.stderr.as_slice()].concat(),
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let last = text.lines().rev().find(|l| l.starts_with("score: "));
        let verdict = match last {
            Some(score) => score.to_string(),
            None => format!(
                "not graded: {}",
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .next()
                    .unwrap_or("no output")
            ),
        };
        all &= out.status.success();
        let name = sub.file_name().map_or_else(
            || sub.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        println!("{name}: {verdict}");
    }
    if subs.is_empty() {
        println!("no submissions (subfolders) in '{}'", dir.display());
    }
    Ok(all && !subs.is_empty())
}

/// A path as one shell word.
#[cfg(unix)]
fn quoted(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', r"'\''"))
}

#[cfg(not(unix))]
fn quoted(path: &Path) -> String {
    format!("/d \"{}\"", path.display())
}
