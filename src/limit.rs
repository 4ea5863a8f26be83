//! A cap on how many connections a server serves at once. Used by
//! tcp_server, event_server, threaded_server, proxy_logger, time_server,
//! web_proxy and web_server.
//!
//! A server takes a [`Slot`] *before* it calls `accept()`. At the cap it
//! stops accepting, so new clients finish their handshake with the kernel
//! and wait in the listen backlog: they are queued, not refused. Dropping a
//! slot (when its connection's thread ends) lets the accept loop go on.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use crate::log::Log;

/// How many connections may be served at once, and how many are.
#[derive(Debug)]
pub struct ConnectionLimit {
    max: usize,
    active: Mutex<usize>,
    freed: Condvar,
}

/// The right to serve one connection under its limit; gives it back when dropped.
#[derive(Debug)]
pub struct Slot(Arc<ConnectionLimit>);

impl ConnectionLimit {
    pub fn new(max: usize) -> Arc<ConnectionLimit> {
        assert!(max > 0, "a limit of 0 connections would serve no one");
        let (active, freed) = (Mutex::new(0), Condvar::new());
        Arc::new(ConnectionLimit { max, active, freed })
    }

    pub fn try_acquire(self: &Arc<Self>) -> Option<Slot> {
        let mut active = self.lock();
        (*active < self.max).then(|| {
            *active += 1;
            Slot(Arc::clone(self))
        })
    }

    pub fn acquire(self: &Arc<Self>) -> Slot {
        let full = |active: &mut usize| *active >= self.max;
        let wait = self.freed.wait_while(self.lock(), full);
        *wait.unwrap_or_else(PoisonError::into_inner) += 1;
        Slot(Arc::clone(self))
    }

    /// A slot for the next connection: at once if one is free, otherwise after
    /// logging that the server is at its cap and waiting for a connection to end.
    pub fn acquire_logged(self: &Arc<Self>, log: Log) -> Slot {
        self.try_acquire().unwrap_or_else(|| {
            log_at_cap(log, self.max);
            let slot = self.acquire();
            log_accepting_again(log);
            slot
        })
    }

    // A thread that panicked while holding the lock leaves a count that is
    // still right (it is changed in one step), so poisoning is ignored.
    fn lock(&self) -> MutexGuard<'_, usize> {
        self.active.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Logs the cap; event_server, whose event loop counts its connections itself, calls it too.
pub fn log_at_cap(log: Log, max: usize) {
    log.note(format_args!(
        "at the cap: {max} connections are being served (--max-clients {max}); \
         new clients wait in the listen backlog"
    ));
}

pub fn log_accepting_again(log: Log) {
    log.note("a connection finished: accepting again");
}

impl Drop for Slot {
    fn drop(&mut self) {
        *self.0.lock() -= 1;
        self.0.freed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn slots_are_capped_and_given_back() {
        let limit = ConnectionLimit::new(2);
        let a = limit.try_acquire().expect("first slot");
        let _b = limit.try_acquire().expect("second slot");
        assert!(limit.try_acquire().is_none());
        drop(a);
        let _c = limit.try_acquire().expect("the slot given back");
        assert!(limit.try_acquire().is_none());
    }

    #[test]
    fn acquire_waits_for_a_free_slot() {
        let limit = ConnectionLimit::new(1);
        let held = limit.acquire();
        let waiter = {
            let limit = Arc::clone(&limit);
            std::thread::spawn(move || drop(limit.acquire()))
        };
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            !waiter.is_finished(),
            "acquire returned while the only slot was held"
        );
        drop(held);
        waiter.join().expect("waiter thread");
        assert!(
            limit.try_acquire().is_some(),
            "the waiter gave its slot back"
        );
    }
}
