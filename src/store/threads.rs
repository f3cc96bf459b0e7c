//! The threads reads run on: as many as there are reader connections, fed
//! from one queue.
//!
//! Tokio's blocking pool cost a get run more than its query did: each read
//! woke a pool thread, which then slept again on the reader pool when more
//! reads were running than there are connections, and the pool grew a
//! thread per read in flight (BENCHMARKS.md, "Reads on threads of their
//! own"). Here a thread that finishes a read takes the next one queued
//! without sleeping, and one is woken only when the queue had none awake.

use std::{
    collections::VecDeque,
    panic::AssertUnwindSafe,
    sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError},
};

use super::{StoreError, TaskError};

type Job = Box<dyn FnOnce() + Send>;

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    /// Threads waiting for a job.
    idle: usize,
    stopping: bool,
}

#[derive(Default)]
struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // A job runs outside the lock, so a poisoned queue is still whole.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The read threads; they end once this is dropped and the queue is empty.
pub(super) struct ReadThreads(Arc<Shared>);

impl ReadThreads {
    pub(super) fn start(count: u32) -> Result<Self, StoreError> {
        let shared = Arc::new(Shared::default());
        for i in 0..count.max(1) {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("griot-read-{i}"))
                .spawn(move || serve(&shared))
                .map_err(|e| StoreError::Task(TaskError::Spawn(e)))?;
        }
        Ok(Self(shared))
    }

    /// Queues `job` for the next free thread.
    pub(super) fn run(&self, job: impl FnOnce() + Send + 'static) {
        let mut queue = self.0.lock();
        queue.jobs.push_back(Box::new(job));
        let wake = queue.jobs.len() <= queue.idle;
        drop(queue);
        if wake {
            self.0.ready.notify_one();
        }
    }
}

impl Drop for ReadThreads {
    fn drop(&mut self) {
        self.0.lock().stopping = true;
        self.0.ready.notify_all();
    }
}

fn serve(shared: &Shared) {
    let mut queue = shared.lock();
    loop {
        if let Some(job) = queue.jobs.pop_front() {
            drop(queue);
            // A job that panics drops its answer's sender, which its caller
            // reports; the thread goes on to the next.
            let _ = std::panic::catch_unwind(AssertUnwindSafe(job));
            queue = shared.lock();
        } else if queue.stopping {
            return;
        } else {
            queue.idle += 1;
            queue = shared
                .ready
                .wait(queue)
                .unwrap_or_else(PoisonError::into_inner);
            queue.idle -= 1;
        }
    }
}
