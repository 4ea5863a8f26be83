//! Starting the lab's own programs and waiting on them, every wait bounded.
//!
//! An experiment runs the same binaries a student runs: the ones `cargo
//! build` put next to `lab` itself. A server is started on `--port 0` and
//! its first line, `<program> listening on ADDR (...)`, says which port the
//! OS gave it. Every child is killed when its [`Program`] is dropped, so an
//! experiment that fails half-way leaves nothing running.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// The longest any single wait in an experiment may take: far more than
/// anything on loopback needs, so reaching it means something is wrong.
pub const WAIT: Duration = Duration::from_secs(10);

/// The path of a lab program built next to this one (`target/debug/udp_server`).
pub fn sibling(name: &str) -> anyhow::Result<PathBuf> {
    let lab = std::env::current_exe().context("failed to find the lab program's own path")?;
    let path = lab.with_file_name(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if !path.is_file() {
        bail!(
            "cannot find the program '{name}' next to lab (looked for {}): run `cargo build` first, which builds every program",
            path.display()
        );
    }
    Ok(path)
}

/// A program started in the background, its stdout read line by line as it
/// prints; killed when dropped.
pub struct Program {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    seen: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<String>>,
}

impl Program {
    /// Starts the sibling program `name` with `args`; its stdin is a pipe
    /// that [`Program::type_line`] writes to.
    pub fn start(name: &str, args: &[&str]) -> anyhow::Result<Program> {
        Program::start_with_env(name, args, &[])
    }

    /// Like [`Program::start`], with extra environment variables.
    pub fn start_with_env(
        name: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> anyhow::Result<Program> {
        let mut child = Command::new(sibling(name)?)
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("failed to start '{name}'"))?;
        let stdout = child.stdout.take().expect("stdout was piped");
        let stderr_pipe = child.stderr.take().expect("stderr was piped");
        let (tx, lines) = mpsc::channel();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen_by_reader = Arc::clone(&seen);
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                lock(&seen_by_reader).push(line.clone());
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let stderr_by_reader = Arc::clone(&stderr);
        thread::spawn(move || {
            let mut pipe = stderr_pipe;
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = pipe.read(&mut buf) {
                lock(&stderr_by_reader).push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Ok(Program {
            name: name.to_string(),
            stdin: child.stdin.take(),
            child,
            lines,
            seen,
            stderr,
        })
    }

    /// Starts a server on loopback with `--port 0` and returns it with the
    /// address its first line names.
    pub fn server(name: &str, args: &[&str]) -> anyhow::Result<(Program, SocketAddr)> {
        Program::server_with_env(name, args, &[])
    }

    /// Like [`Program::server`], with extra environment variables.
    pub fn server_with_env(
        name: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> anyhow::Result<(Program, SocketAddr)> {
        let mut all = vec!["--bind", "127.0.0.1", "--port", "0"];
        all.extend_from_slice(args);
        let server = Program::start_with_env(name, &all, env)?;
        let first = server.expect_line("listening on")?;
        let addr = first
            .split(" listening on ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|addr| addr.parse().ok())
            .with_context(|| format!("{name}'s first line names no address: {first:?}"))?;
        Ok((server, addr))
    }

    /// Waits up to `wait` for a stdout line containing `needle`.
    pub fn wait_for_line(&self, needle: &str, wait: Duration) -> Option<String> {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return Some(line),
                Ok(_) => continue,
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    /// Waits up to [`WAIT`] for a stdout line containing `needle`.
    pub fn expect_line(&self, needle: &str) -> anyhow::Result<String> {
        match self.wait_for_line(needle, WAIT) {
            Some(line) => Ok(line),
            None => bail!(
                "{} printed no line with {needle:?} within {}; it printed {:?} and on stderr {:?}",
                self.name,
                humantime::format_duration(WAIT),
                self.lines_so_far(),
                self.stderr()
            ),
        }
    }

    /// Every stdout line printed so far, including those already waited for.
    pub fn lines_so_far(&self) -> Vec<String> {
        lock(&self.seen).clone()
    }

    pub fn stderr(&self) -> String {
        lock(&self.stderr).clone()
    }

    /// Types a line on the program's stdin, as a student at its prompt would.
    pub fn type_line(&mut self, line: &str) -> anyhow::Result<()> {
        let stdin = self
            .stdin
            .as_mut()
            .with_context(|| format!("{}'s stdin is closed", self.name))?;
        writeln!(stdin, "{line}")
            .and_then(|()| stdin.flush())
            .with_context(|| format!("failed to type {line:?} to {}", self.name))
    }

    /// The exit status if the program has ended.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Waits (at most [`WAIT`]) until the reader threads have drained the
    /// pipes of a program that has exited: each holds its own reference to
    /// what it collects until end of file.
    fn wait_for_readers(&self) {
        let deadline = Instant::now() + WAIT;
        while (Arc::strong_count(&self.seen) > 1 || Arc::strong_count(&self.stderr) > 1)
            && Instant::now() < deadline
        {
            thread::sleep(Duration::from_millis(1));
        }
    }

    /// The exit status if the program ends within `wait`, None if it is still running.
    pub fn exit_within(&mut self, wait: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits up to `wait` for the program to end, and for its last output
    /// to be read; still running is an error.
    pub fn wait_for_exit(&mut self, wait: Duration) -> anyhow::Result<ExitStatus> {
        match self.exit_within(wait) {
            Some(status) => {
                self.wait_for_readers();
                Ok(status)
            }
            None => bail!(
                "{} did not exit within {}",
                self.name,
                humantime::format_duration(wait)
            ),
        }
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A program that ran to the end: what it printed, how it exited, how long it took.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Finished {
    /// The exit code (None if a signal ended it).
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// The first stderr line that starts with `prefix` (`error: `, `hint: `).
    pub fn stderr_line(&self, prefix: &str) -> Option<&str> {
        self.stderr.lines().find(|l| l.starts_with(prefix))
    }

    /// The first stdout line that starts with `prefix`.
    pub fn stdout_line(&self, prefix: &str) -> Option<&str> {
        self.stdout.lines().find(|l| l.starts_with(prefix))
    }
}

/// Runs the sibling program `name` with `args` and no input, waiting up to
/// [`WAIT`] for it to exit (it is killed if it takes longer).
pub fn run(name: &str, args: &[&str]) -> anyhow::Result<Finished> {
    run_with_stdin(name, args, b"")
}

/// Like [`run`], with `input` on the program's stdin.
pub fn run_with_stdin(name: &str, args: &[&str], input: &[u8]) -> anyhow::Result<Finished> {
    let started = Instant::now();
    let mut program = Program::start(name, args)?;
    if let Some(mut stdin) = program.stdin.take() {
        // A program that exits before reading its input closes the pipe;
        // that is its business, not an error here.
        let _ = stdin.write_all(input);
    }
    let status = program.wait_for_exit(WAIT)?;
    let elapsed = started.elapsed();
    let mut stdout = program.lines_so_far().join("\n");
    if !stdout.is_empty() {
        stdout.push('\n');
    }
    Ok(Finished {
        status,
        stdout,
        stderr: program.stderr(),
        elapsed,
    })
}

/// The number after `local address HOST:` in a client's `RTT ...` line.
pub fn local_port(output: &str) -> Option<u16> {
    let line = output.lines().find(|l| l.contains("local address "))?;
    let addr = line.split("local address ").nth(1)?;
    let addr: SocketAddr = addr.trim_end_matches(')').parse().ok()?;
    Some(addr.port())
}

/// How a command line is shown in a report: long arguments are abbreviated.
pub fn shown(name: &str, args: &[&str]) -> String {
    let mut text = name.to_string();
    for arg in args {
        text.push(' ');
        if arg.len() > 40 {
            text.push_str(&format!("<{} bytes>", arg.len()));
        } else if arg.contains(' ') || arg.is_empty() {
            text.push_str(&format!("'{arg}'"));
        } else {
            text.push_str(arg);
        }
    }
    text
}

/// Milliseconds with one decimal, for the report.
pub fn ms(duration: Duration) -> String {
    format!("{:.1} ms", duration.as_secs_f64() * 1000.0)
}

// A reader thread that panicked leaves complete lines behind: ignore poisoning.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A TCP port on loopback where nothing listens: bound by the OS's choice,
/// then released.
pub fn free_tcp_port() -> anyhow::Result<u16> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .context("failed to find a free TCP port")
}

/// A UDP port on loopback that no socket holds: bound by the OS's choice,
/// then released.
pub fn free_udp_port() -> anyhow::Result<u16> {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .context("failed to find a free UDP port")
}

/// `exit status 1`, or how a signal ended the program.
pub fn exit_text(status: ExitStatus) -> String {
    match status.code() {
        Some(code) => format!("exit status {code}"),
        None => "killed by a signal".to_string(),
    }
}
