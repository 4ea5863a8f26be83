//! time_server's fixed pool of worker threads: the Rust Book's `ThreadPool`
//! (chapter 21), grown up for a server that must not fall over.
//!
//! A thread per connection (`threaded_server`) starts a thread for every
//! client, however many come. A pool starts `size` threads once; each
//! connection becomes a [`Job`] sent down a channel, and whichever
//! `Worker` is idle takes it. With every worker busy, new jobs wait.
//!
//! What is grown up compared with the book:
//! - [`ThreadPool::new`] returns an error instead of panicking when the OS
//!   will not start a thread (`thread::Builder::spawn`);
//! - a job that panics is caught, so its worker goes on serving;
//! - a poisoned lock is used anyway: the only thing it guards is the
//!   receiving end of the channel, which a panic cannot leave half-changed;
//! - its own reports go to stderr without `eprintln!`, which would panic
//!   if stderr were closed.
//!
//! Shutdown is the book's: dropping the pool drops the channel's sender, each
//! worker's `recv()` then fails once the queued jobs are done, its loop ends,
//! and `Drop` joins every thread.

use std::io::{self, Write};
use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};

/// A unit of work: a closure a worker runs once.
pub type Job = Box<dyn FnOnce() + Send + 'static>;

/// `size` worker threads fed by one channel of jobs.
pub struct ThreadPool {
    workers: Vec<Worker>,
    // An Option so Drop can drop the sender before joining the workers.
    sender: Option<Sender<Job>>,
}

/// One thread that runs jobs from the shared channel until it closes.
struct Worker {
    id: usize,
    thread: Option<JoinHandle<()>>,
}

impl ThreadPool {
    /// Starts `size` workers (named `worker-0`, `worker-1`, ...).
    pub fn new(size: usize) -> io::Result<ThreadPool> {
        if size == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a thread pool needs at least one worker",
            ));
        }
        let (sender, receiver) = mpsc::channel();
        // One receiver shared by all workers: the mutex makes sure each job
        // goes to exactly one of them.
        let receiver = Arc::new(Mutex::new(receiver));
        let workers = (0..size)
            .map(|id| Worker::new(id, Arc::clone(&receiver)))
            .collect::<io::Result<Vec<Worker>>>()?;
        Ok(ThreadPool {
            workers,
            sender: Some(sender),
        })
    }

    /// How many workers the pool has.
    pub fn size(&self) -> usize {
        self.workers.len()
    }

    /// Queues `job` for the next idle worker.
    pub fn execute<F>(&self, job: F) -> io::Result<()>
    where
        F: FnOnce() + Send + 'static,
    {
        let sender = self
            .sender
            .as_ref()
            .expect("the sender is only taken in drop");
        // send() fails only when every receiver is gone: every worker ended.
        sender
            .send(Box::new(job))
            .map_err(|_| io::Error::other("every worker thread of the pool has stopped"))
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        // Closing the channel tells each worker to stop after the queued jobs.
        drop(self.sender.take());
        for worker in &mut self.workers {
            if let Some(thread) = worker.thread.take() {
                // A worker catches its jobs' panics, so join() fails only if
                // the worker loop itself panicked; there is nothing left to do.
                if thread.join().is_err() {
                    report(format_args!(
                        "worker {} had stopped with a panic",
                        worker.id
                    ));
                }
            }
        }
    }
}

impl Worker {
    fn new(id: usize, receiver: Arc<Mutex<Receiver<Job>>>) -> io::Result<Worker> {
        let thread = thread::Builder::new()
            .name(format!("worker-{id}"))
            .spawn(move || {
                loop {
                    // The lock is held only while waiting for the next job;
                    // the temporary guard is dropped at the end of this statement.
                    let message = receiver
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .recv();
                    match message {
                        Ok(job) => run(id, job),
                        // The sender was dropped: the pool is shutting down.
                        Err(_) => break,
                    }
                }
            })?;
        Ok(Worker {
            id,
            thread: Some(thread),
        })
    }
}

/// Runs one job; a panic in it is reported and the worker carries on.
fn run(id: usize, job: Job) {
    if panic::catch_unwind(AssertUnwindSafe(job)).is_err() {
        report(format_args!(
            "worker {id}: a job panicked; the worker goes on"
        ));
    }
}

/// One line on stderr; if stderr is gone there is nobody to tell.
fn report(what: std::fmt::Arguments) {
    let _ = writeln!(io::stderr(), "{what}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Barrier;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[test]
    fn zero_workers_is_an_error_not_a_panic() {
        let err = ThreadPool::new(0).err().expect("rejected");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn drop_waits_for_every_queued_job() {
        let done = Arc::new(AtomicUsize::new(0));
        {
            let pool = ThreadPool::new(3).expect("pool");
            assert_eq!(pool.size(), 3);
            for _ in 0..20 {
                let done = Arc::clone(&done);
                pool.execute(move || {
                    done.fetch_add(1, Ordering::SeqCst);
                })
                .expect("queued");
            }
        }
        assert_eq!(done.load(Ordering::SeqCst), 20);
    }

    #[test]
    fn size_jobs_run_at_once_and_one_more_waits() {
        let pool = ThreadPool::new(2).expect("pool");
        // Both workers block on the barrier until the test thread joins it,
        // which proves two jobs run at the same time.
        let barrier = Arc::new(Barrier::new(3));
        let (started, third_started) = mpsc::channel();
        for _ in 0..2 {
            let barrier = Arc::clone(&barrier);
            pool.execute(move || {
                barrier.wait();
                barrier.wait();
            })
            .expect("queued");
        }
        pool.execute(move || started.send(()).expect("test is listening"))
            .expect("queued");
        barrier.wait();
        // Both workers are inside their jobs: the third cannot have started.
        assert!(third_started.try_recv().is_err());
        barrier.wait();
        third_started
            .recv_timeout(Duration::from_secs(10))
            .expect("the third job ran once a worker was free");
    }

    #[test]
    fn a_panicking_job_does_not_kill_its_worker() {
        let pool = ThreadPool::new(1).expect("pool");
        pool.execute(|| panic!("a job that fails")).expect("queued");
        let (tx, rx) = mpsc::channel();
        pool.execute(move || tx.send(42).expect("test is listening"))
            .expect("queued");
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok(42));
    }
}
