//! lab: runs the worksheet experiments on this machine and checks each
//! answer against what the worksheet expects.
//!
//! Every question the worksheets ask ("what happens if you run the client
//! before the server?") has an experiment here that does exactly what the
//! question says, with the real programs started on loopback, and prints
//! what it did, what it saw (the exact error, the ports, the bytes, the
//! timings) and why, then a verdict against the worksheet's answer for this
//! OS. The answers in the worksheets are Linux's; where another OS
//! legitimately differs (Windows reports an ICMP port unreachable to an
//! unconnected UDP socket as 10054), the report says so and marks that
//! observation as not checked rather than failed.
//!
//! `lab` starts the programs that `cargo build` put next to it, so build first:
//!
//! `cargo build`
//! `cargo run --bin lab -- list`                      names every experiment
//! `cargo run --bin lab -- run udp-client-first`      runs one (or several)
//! `cargo run --bin lab -- all`                       runs them all, in seconds
//!
//! The exit status is 0 only if every observation matched (1 otherwise, 2
//! for an unknown experiment name). Worksheets: labs/*.md, each question
//! names the experiment that answers it.

mod harness;
mod heartbeat;
mod icmp;
mod mail;
mod threads;
mod time_service;
mod udp_tcp;
mod web;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Run the worksheet experiments on this machine and check what they show (labs/*.md)
#[derive(Parser, Debug)]
#[command(name = "lab", version, arg_required_else_help = true)]
struct Cli {
    #[command(subcommand)]
    command: Action,
}

#[derive(Subcommand, Debug)]
enum Action {
    /// Name every experiment with one line on what it shows
    List,
    /// Run the named experiments, in the order given
    Run {
        /// Experiment names, as `lab list` prints them
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Run every experiment
    All,
}

/// One worksheet question, answered by running the programs.
pub struct Experiment {
    /// Short kebab-case name for `lab run`.
    pub name: &'static str,
    /// The worksheet and the question it answers.
    pub worksheet: &'static str,
    /// What it shows, in one line for `lab list`.
    pub summary: &'static str,
    pub run: fn(&mut Report) -> anyhow::Result<()>,
}

/// Every experiment, in worksheet order.
fn experiments() -> Vec<&'static Experiment> {
    udp_tcp::EXPERIMENTS
        .iter()
        .chain(heartbeat::EXPERIMENTS)
        .chain(threads::EXPERIMENTS)
        .chain(time_service::EXPERIMENTS)
        .chain(web::EXPERIMENTS)
        .chain(mail::EXPERIMENTS)
        .chain(icmp::EXPERIMENTS)
        .collect()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let all = experiments();
    match cli.command {
        Action::List => {
            list(&all);
            ExitCode::SUCCESS
        }
        Action::All => run_all(&all),
        Action::Run { names } => match choose(&all, &names) {
            Ok(chosen) => run_all(&chosen),
            Err(unknown) => {
                eprintln!("error: unknown experiment '{unknown}'; the experiments are:");
                for line in list_lines(&all) {
                    eprintln!("{line}");
                }
                ExitCode::from(2)
            }
        },
    }
}

fn list(all: &[&Experiment]) {
    for line in list_lines(all) {
        println!("{line}");
    }
}

/// `name  summary (worksheet)`, the names in one column.
fn list_lines(all: &[&Experiment]) -> Vec<String> {
    let width = all.iter().map(|e| e.name.len()).max().unwrap_or(0);
    all.iter()
        .map(|e| {
            format!(
                "{:width$}  {} ({})",
                e.name,
                e.summary,
                e.worksheet,
                width = width
            )
        })
        .collect()
}

/// The experiments named, in the order given; the first unknown name is the error.
fn choose<'a>(all: &[&'a Experiment], names: &[String]) -> Result<Vec<&'a Experiment>, String> {
    names
        .iter()
        .map(|name| {
            all.iter()
                .find(|e| e.name == name)
                .copied()
                .ok_or_else(|| name.clone())
        })
        .collect()
}

/// Runs each experiment and prints its report; with more than one, a summary.
fn run_all(chosen: &[&Experiment]) -> ExitCode {
    let mut failed = Vec::new();
    for (i, experiment) in chosen.iter().enumerate() {
        if i > 0 {
            println!();
        }
        if !run_one(experiment) {
            failed.push(experiment.name);
        }
    }
    if chosen.len() > 1 {
        println!();
        match failed.len() {
            0 => println!("lab: {} experiments, all passed", chosen.len()),
            n => println!(
                "lab: {} experiments, {} passed, {n} failed: {}",
                chosen.len(),
                chosen.len() - n,
                failed.join(", ")
            ),
        }
    }
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Runs one experiment; true if every observation matched.
fn run_one(experiment: &Experiment) -> bool {
    println!(
        "== {}: {} ({})",
        experiment.name, experiment.summary, experiment.worksheet
    );
    let mut report = Report::default();
    let finished = (experiment.run)(&mut report);
    if let Err(err) = &finished {
        // The experiment could not finish: that is a failed observation too.
        report.line("error", format!("{err:#}"));
        if let Some(hint) = socketlab::explain::hint_for(err) {
            report.line("hint", hint);
        }
    }
    let verdict = report.verdict(finished.is_ok());
    println!("{verdict}");
    finished.is_ok() && report.failed == 0
}

/// What one experiment prints, line by line as it goes, and its tally of
/// observations checked against the worksheet.
#[derive(Debug, Default)]
pub struct Report {
    passed: usize,
    failed: usize,
    not_checked: usize,
}

impl Report {
    /// What the experiment did: the command, as a student would type it.
    pub fn did(&mut self, text: impl AsRef<str>) {
        self.line("did", text);
    }

    /// What it observed: an error line, a port, the bytes, a time.
    pub fn saw(&mut self, text: impl AsRef<str>) {
        self.line("saw", text);
    }

    /// Why it happened, in the worksheet's words.
    pub fn why(&mut self, text: impl AsRef<str>) {
        self.line("why", text);
    }

    /// One observation against the worksheet's answer: `expected` says what
    /// the worksheet expects (and what was seen).
    pub fn check(&mut self, matched: bool, expected: impl AsRef<str>) {
        if matched {
            self.passed += 1;
            self.line("ok", expected);
        } else {
            self.failed += 1;
            self.line("FAIL", format!("expected {}", expected.as_ref()));
        }
    }

    /// An observation whose expected answer is Linux's. Elsewhere it is
    /// shown but not checked: `elsewhere` says what that OS is expected to do.
    pub fn check_linux(&mut self, matched: bool, expected: impl AsRef<str>, elsewhere: &str) {
        if cfg!(target_os = "linux") {
            self.check(matched, expected);
        } else {
            self.not_checked(
                expected,
                &format!(
                    "the worksheet's answer is Linux's, and this is {}; {elsewhere}",
                    std::env::consts::OS
                ),
            );
        }
    }

    /// An observation that could not be made here (a tool is missing):
    /// shown, not counted as passed or failed.
    pub fn not_checked(&mut self, expected: impl AsRef<str>, why: &str) {
        self.not_checked += 1;
        self.line(
            "skip",
            format!("not checked: {} ({why})", expected.as_ref()),
        );
    }

    fn line(&mut self, tag: &str, text: impl AsRef<str>) {
        let mut lines = text.as_ref().lines();
        println!("{:<5} {}", format!("{tag}:"), lines.next().unwrap_or(""));
        for more in lines {
            println!("      {more}");
        }
    }

    /// The last line: PASS only if the experiment finished and nothing failed.
    fn verdict(&self, finished: bool) -> String {
        let checked = self.passed + self.failed;
        let skipped = match self.not_checked {
            0 => String::new(),
            n => format!(", {n} not checked here"),
        };
        if !finished {
            format!(
                "verdict: FAIL (the experiment could not finish; {} of {checked} observations matched before that)",
                self.passed
            )
        } else if self.failed > 0 {
            format!(
                "verdict: FAIL ({} of {checked} observations differ from the worksheet{skipped})",
                self.failed
            )
        } else if checked == 0 {
            format!("verdict: PASS (nothing could be checked here{skipped})")
        } else {
            format!(
                "verdict: PASS ({checked} of {checked} observations as the worksheet expects{skipped})"
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_kebab_case() {
        let all = experiments();
        for (i, e) in all.iter().enumerate() {
            assert!(
                e.name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "{}",
                e.name
            );
            assert!(all[i + 1..].iter().all(|o| o.name != e.name), "{}", e.name);
        }
    }

    #[test]
    fn choose_keeps_the_order_and_names_the_unknown() {
        let all = experiments();
        let chosen = choose(&all, &[all[1].name.into(), all[0].name.into()]).expect("known");
        assert_eq!(chosen[0].name, all[1].name);
        assert_eq!(choose(&all, &["nope".into()]).err(), Some("nope".into()));
    }

    #[test]
    fn verdicts() {
        let report = |passed, failed, not_checked| Report {
            passed,
            failed,
            not_checked,
        };
        assert_eq!(
            report(3, 0, 0).verdict(true),
            "verdict: PASS (3 of 3 observations as the worksheet expects)"
        );
        assert_eq!(
            report(2, 0, 1).verdict(true),
            "verdict: PASS (2 of 2 observations as the worksheet expects, 1 not checked here)"
        );
        assert_eq!(
            report(2, 1, 0).verdict(true),
            "verdict: FAIL (1 of 3 observations differ from the worksheet)"
        );
        assert!(report(2, 0, 0).verdict(false).starts_with("verdict: FAIL"));
    }
}
