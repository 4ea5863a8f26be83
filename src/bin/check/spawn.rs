//! Starting an `--exec` command and stopping it with everything it started.
//!
//! The command runs through `sh -c` (on Windows `cmd /C`), so a student can
//! write `cd sub && python3 server.py {port}`. On Unix it gets a process
//! group of its own (`setpgid(0, 0)`): the shell, the interpreter and any
//! child they fork are all in it, and one `kill(-pgid, SIGKILL)` ends them
//! all, where killing only the shell would leave the server listening.

use std::io::{Read, Write};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context;

/// The process groups still running, so that Ctrl-C can end them: they
/// are not in check's own group, so the terminal's SIGINT never reaches them.
static RUNNING: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// Installs the Ctrl-C handler: kill every group check started, then exit 130.
pub fn stop_all_on_ctrl_c() {
    let _ = ctrlc::set_handler(|| {
        for pid in RUNNING.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
            kill_group_id(pid);
        }
        std::process::exit(130);
    });
}

/// The most of a program's output kept (its start and its end matter).
const KEEP: usize = 4 * 1024 * 1024;

/// A running `--exec` command; stopped (the whole group) when dropped.
pub struct Child {
    child: std::process::Child,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    stopped: bool,
}

/// `template` with every `{name}` replaced by its value.
pub fn fill(template: &str, vars: &[(&str, String)]) -> String {
    vars.iter()
        .fold(template.to_string(), |text, (name, value)| {
            text.replace(&format!("{{{name}}}"), value)
        })
}

/// Starts the command; its output is collected by two threads so that a
/// program that logs a lot never blocks on a full pipe.
pub fn start(command: &str, stdin: &[u8]) -> anyhow::Result<Child> {
    let mut cmd = shell(command);
    // Python buffers print() into a pipe until it exits; check reads the
    // lines while the program runs (the heartbeat server), so ask for none.
    cmd.env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .with_context(|| format!("failed to start '{command}'"))?;
    RUNNING
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(child.id());
    let stdout = collect(child.stdout.take());
    let stderr = collect(child.stderr.take());
    if let Some(mut pipe) = child.stdin.take() {
        let input = stdin.to_vec();
        // The program may never read its stdin; a thread keeps that from blocking check.
        thread::spawn(move || {
            let _ = pipe.write_all(&input);
        });
    }
    Ok(Child {
        child,
        stdout,
        stderr,
        stopped: false,
    })
}

#[cfg(unix)]
fn shell(command: &str) -> Command {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new("sh");
    cmd.args(["-c", command]).process_group(0);
    cmd
}

#[cfg(not(unix))]
fn shell(command: &str) -> Command {
    let mut cmd = Command::new("cmd");
    cmd.args(["/C", command]);
    cmd
}

fn collect(pipe: Option<impl Read + Send + 'static>) -> Arc<Mutex<Vec<u8>>> {
    let out = Arc::new(Mutex::new(Vec::new()));
    if let Some(mut pipe) = pipe {
        let sink = Arc::clone(&out);
        thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n @ 1..) = pipe.read(&mut buf) {
                let mut kept = sink.lock().unwrap_or_else(|e| e.into_inner());
                if kept.len() < KEEP {
                    kept.extend_from_slice(&buf[..n]);
                }
            }
        });
    }
    out
}

impl Child {
    /// The exit status, if the program has ended.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Waits at most `limit` for the program to end by itself.
    pub fn wait_for(&mut self, limit: Duration) -> Option<ExitStatus> {
        let end = Instant::now() + limit;
        loop {
            if let Some(status) = self.exited() {
                // Its output may still be in the pipes: give the readers a moment.
                thread::sleep(Duration::from_millis(20));
                return Some(status);
            }
            if Instant::now() >= end {
                return None;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn stdout(&self) -> Vec<u8> {
        self.stdout
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn stderr(&self) -> Vec<u8> {
        self.stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The last line the program wrote to stderr, for a hint.
    pub fn stderr_tail(&self) -> String {
        let err = self.stderr.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(&err)
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim()
            .to_string()
    }

    /// What became of the program, for a failed test's hint.
    pub fn fate(&mut self) -> Option<String> {
        let status = self.exited()?;
        let tail = self.stderr_tail();
        Some(if tail.is_empty() {
            format!("the program has exited: {status}")
        } else {
            format!("the program has exited: {status}; its last words on stderr: {tail}")
        })
    }

    /// Kills the program and everything it started, and reaps it.
    pub fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        let pid = self.child.id();
        RUNNING
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|&p| p != pid);
        kill_group(&mut self.child);
        let _ = self.child.wait();
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.stop();
    }
}

/// SIGKILL to the process group the command leads, then to the command
/// itself in case the group is already gone.
fn kill_group(child: &mut std::process::Child) {
    kill_group_id(child.id());
    let _ = child.kill();
}

/// `kill -KILL -- -PGID`: the shell's own kill, so no libc binding is needed.
#[cfg(unix)]
fn kill_group_id(pid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

#[cfg(not(unix))]
fn kill_group_id(pid: u32) {
    let _ = Command::new("taskkill")
        .args(["/F", "/T", "/PID", &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}
