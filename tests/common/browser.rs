//! A real browser for the proxy tests: Debian's Chromium, headless.
//!
//! ```ignore
//! let Some(browser) = common::browser::Chromium::new() else { return }; // skip if not installed
//! let load = browser.load(&format!("http://{}/imgcheck", origin.addr), Some(proxy.addr));
//! assert_eq!(load.title(), Some("image loaded"), "{load:?}");
//! ```
//!
//! Each [`Chromium`] owns a fresh profile (`--user-data-dir`), and every
//! [`Chromium::load`] is one run of the browser with `--dump-dom`: it loads the
//! page, waits for its `load` event (so the page's images and scripts, and any
//! reload a script starts), prints the DOM and exits. Two loads with the same
//! `Chromium` share the profile, and so the HTTP disk cache: the second run is
//! a browser coming back to a page it has cached.
//!
//! Chromium never sends requests for loopback addresses (127.0.0.1,
//! localhost) to a proxy unless `--proxy-bypass-list='<-loopback>'` removes
//! that implicit bypass rule, which the tests need because their origins run
//! on loopback. Chromium also talks to Google in the background (update
//! checks, sign-in, network time) despite the flags that turn most of that
//! off, and those requests go to the proxy too: look for the lines you expect,
//! don't count all requests.

use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

use super::OwnGroup;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long one browser run may take before it is killed and the test fails.
/// A run takes under a second on an idle machine; a parallel `cargo test` on
/// two cores slows it down a lot.
pub const BROWSER_WAIT: Duration = Duration::from_secs(60);

/// The flags every run gets: headless without a display, no sandbox (the
/// tests may run as root, where Chromium refuses to sandbox), and as little
/// background traffic as the flags allow.
const FLAGS: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
];

/// Headless Chromium with a profile of its own, removed when dropped.
#[derive(Debug)]
pub struct Chromium {
    profile: PathBuf,
}

/// What one browser run printed.
#[derive(Debug)]
pub struct Load {
    /// The DOM after the page's load event (`--dump-dom`), as HTML.
    pub dom: String,
    /// Chromium's own log (it always complains about D-Bus in a container).
    pub stderr: String,
    pub status: ExitStatus,
}

impl Chromium {
    /// A browser with a fresh, empty profile, or None if `chromium` is not
    /// installed (which fails the test under `CI=true`, see `have_tool`).
    pub fn new() -> Option<Chromium> {
        if !super::have_tool("chromium") {
            return None;
        }
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!(
            "socketlab-chromium-{}-{}-{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let profile = std::env::temp_dir().join(name);
        std::fs::create_dir_all(&profile)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", profile.display()));
        Some(Chromium { profile })
    }

    /// The profile directory (`--user-data-dir`) that this browser's runs share.
    pub fn profile(&self) -> &Path {
        &self.profile
    }

    /// Loads `url` in one browser run, through the HTTP proxy at `proxy`
    /// (loopback included), or directly with `None`, and returns the DOM.
    /// Panics if the run takes longer than [`BROWSER_WAIT`].
    pub fn load(&self, url: &str, proxy: Option<SocketAddr>) -> Load {
        let mut args: Vec<String> = FLAGS.iter().map(|f| f.to_string()).collect();
        args.push(format!("--user-data-dir={}", self.profile.display()));
        match proxy {
            Some(proxy) => {
                args.push(format!("--proxy-server=http://{proxy}"));
                args.push("--proxy-bypass-list=<-loopback>".to_string());
            }
            None => args.push("--no-proxy-server".to_string()),
        }
        args.push("--dump-dom".to_string());
        args.push(url.to_string());
        run_bounded(&args)
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

impl Load {
    /// The text of the page's `<title>`, if it has one.
    pub fn title(&self) -> Option<&str> {
        let start = self.dom.find("<title>")? + "<title>".len();
        let len = self.dom[start..].find("</title>")?;
        Some(&self.dom[start..start + len])
    }
}

/// Runs chromium with `args` in a process group of its own, so that on a
/// timeout (or after a normal exit, for helpers it left behind) the whole
/// browser, renderer and helper processes included, can be killed at once.
fn run_bounded(args: &[String]) -> Load {
    let mut child = Command::new("chromium")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .own_group()
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start chromium: {e}"));
    let group = child.id();
    let stdout = read_in_background(child.stdout.take().expect("stdout is piped"));
    let stderr = read_in_background(child.stderr.take().expect("stderr is piped"));
    let deadline = Instant::now() + BROWSER_WAIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait on chromium") {
            break Some(status);
        }
        if Instant::now() > deadline {
            break None;
        }
        thread::sleep(Duration::from_millis(20));
    };
    kill_group(group);
    let status = status.unwrap_or_else(|| {
        let _ = child.wait();
        let err = stderr
            .recv_timeout(Duration::from_secs(5))
            .unwrap_or_default();
        panic!(
            "chromium {args:?} did not finish within {BROWSER_WAIT:?}; its log:\n{}",
            String::from_utf8_lossy(&err)
        );
    });
    let pipe_wait = Duration::from_secs(5);
    Load {
        dom: String::from_utf8_lossy(&stdout.recv_timeout(pipe_wait).unwrap_or_default())
            .into_owned(),
        stderr: String::from_utf8_lossy(&stderr.recv_timeout(pipe_wait).unwrap_or_default())
            .into_owned(),
        status,
    }
}

/// SIGKILL to every process in the group that chromium leads.
fn kill_group(group: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{group}")])
        .stderr(Stdio::null())
        .status();
}

fn read_in_background(mut pipe: impl Read + Send + 'static) -> Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut all = Vec::new();
        let _ = pipe.read_to_end(&mut all);
        let _ = tx.send(all);
    });
    rx
}
