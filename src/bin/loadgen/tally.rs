//! What one client saw: every round-trip time, and each request that failed
//! or got no reply.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How one request ended.
pub enum Outcome {
    /// The right reply came back after this long.
    Answered(Duration),
    /// A wrong reply, a reset, a closed connection: the message says which.
    Failed(String),
    /// No reply within the timeout.
    Lost,
}

/// How many error messages each client keeps (the summary shows a few).
const MESSAGES_KEPT: usize = 3;

/// One client's counts; joined into the summary when the run ends.
pub struct Tally {
    pub sent: u64,
    pub rtts: Vec<Duration>,
    pub errors: u64,
    pub lost: u64,
    /// UDP replies to earlier requests: late (counted lost) or duplicated.
    pub late: u64,
    pub messages: Vec<String>,
    /// When this client's last request ended.
    pub last_done: Option<Instant>,
    live: Arc<Live>,
}

impl Tally {
    pub fn new(live: Arc<Live>) -> Tally {
        Tally {
            sent: 0,
            rtts: Vec::new(),
            errors: 0,
            lost: 0,
            late: 0,
            messages: Vec::new(),
            last_done: None,
            live,
        }
    }

    pub fn record(&mut self, outcome: Outcome) {
        self.sent += 1;
        self.last_done = Some(Instant::now());
        match outcome {
            Outcome::Answered(rtt) => {
                self.rtts.push(rtt);
                self.live.answered.fetch_add(1, Ordering::Relaxed);
            }
            Outcome::Failed(message) => {
                self.errors += 1;
                if self.messages.len() < MESSAGES_KEPT {
                    self.messages.push(message);
                }
                self.live.errors.fetch_add(1, Ordering::Relaxed);
            }
            Outcome::Lost => {
                self.lost += 1;
                self.live.lost.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Running totals of every client, for the progress line.
#[derive(Default)]
pub struct Live {
    answered: AtomicU64,
    errors: AtomicU64,
    lost: AtomicU64,
}

impl Live {
    /// `12345 answered, 0 errors, 0 lost`
    pub fn line(&self) -> String {
        format!(
            "{} answered, {} errors, {} lost",
            self.answered.load(Ordering::Relaxed),
            self.errors.load(Ordering::Relaxed),
            self.lost.load(Ordering::Relaxed)
        )
    }
}
