//! What the storage counts about itself, as plain atomics: the writer's
//! queue, batches and commits, waits for a reader connection, and the rows
//! retention deleted. Recording is a few relaxed atomic adds; the metrics
//! exporter (`app::metrics`) reads them when scraped, so the store knows
//! nothing of Prometheus.

use std::{
    sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed},
    time::Duration,
};

use crate::domain::retention::Counts;

/// A histogram with fixed upper bounds, filled with atomics. Each bucket
/// counts the observations up to its bound and above the previous one;
/// the last bucket is +Inf.
pub struct AtomicHistogram {
    bounds: &'static [f64],
    /// One per bound, plus +Inf.
    buckets: Vec<AtomicU64>,
    /// The sum of the observations, as f64 bits.
    sum: AtomicU64,
}

/// A histogram as read at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// (upper bound, observations up to it and above the previous bound),
    /// ending with +Inf; the exporter makes them cumulative.
    pub buckets: Vec<(f64, u64)>,
    pub count: u64,
    pub sum: f64,
}

impl AtomicHistogram {
    pub fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0f64.to_bits()),
        }
    }

    pub fn observe(&self, value: f64) {
        let slot = self
            .bounds
            .iter()
            .position(|&bound| value <= bound)
            .unwrap_or(self.bounds.len());
        self.buckets[slot].fetch_add(1, Relaxed);
        // fetch_update retries when another thread added meanwhile.
        let _ = self.sum.fetch_update(Relaxed, Relaxed, |bits| {
            Some((f64::from_bits(bits) + value).to_bits())
        });
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let buckets: Vec<(f64, u64)> = self
            .bounds
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .zip(&self.buckets)
            .map(|(bound, n)| (bound, n.load(Relaxed)))
            .collect();
        HistogramSnapshot {
            count: buckets.iter().map(|&(_, n)| n).sum(),
            buckets,
            sum: f64::from_bits(self.sum.load(Relaxed)),
        }
    }
}

/// Seconds, from 100 µs to 10 s.
const SECONDS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Writes per batch, up to the writer's batch cap (64).
const BATCH_SIZES: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0];

/// The store's counters, shared by every clone of a `Store`.
pub struct StoreStats {
    /// Writes submitted and not yet taken into a batch by the writer.
    pub(super) queued: AtomicI64,
    /// Writes per committed (or failed) batch.
    pub batch_sizes: AtomicHistogram,
    /// Time from BEGIN to the end of COMMIT of each batch.
    pub commit_seconds: AtomicHistogram,
    /// How long each hold of the writer by the checkpoint thread lasted
    /// (waiting for the open batch, then copying the WAL's last frames):
    /// the writes queued meanwhile wait that long.
    pub checkpoint_hold_seconds: AtomicHistogram,
    /// Batches whose transaction failed as a whole.
    pub(super) failed_batches: AtomicU64,
    /// Time spent waiting for a reader connection from the pool.
    pub pool_wait_seconds: AtomicHistogram,
    /// Waits for a reader connection that gave up.
    pub(super) pool_timeouts: AtomicU64,
    /// Rows deleted by retention, by kind.
    pruned: [AtomicU64; 5],
}

impl Default for StoreStats {
    fn default() -> Self {
        Self {
            queued: AtomicI64::new(0),
            batch_sizes: AtomicHistogram::new(BATCH_SIZES),
            commit_seconds: AtomicHistogram::new(SECONDS),
            checkpoint_hold_seconds: AtomicHistogram::new(SECONDS),
            failed_batches: AtomicU64::new(0),
            pool_wait_seconds: AtomicHistogram::new(SECONDS),
            pool_timeouts: AtomicU64::new(0),
            pruned: Default::default(),
        }
    }
}

impl StoreStats {
    /// Writes waiting for the writer.
    pub fn queue_depth(&self) -> i64 {
        self.queued.load(Relaxed).max(0)
    }

    pub fn failed_batches(&self) -> u64 {
        self.failed_batches.load(Relaxed)
    }

    pub fn pool_timeouts(&self) -> u64 {
        self.pool_timeouts.load(Relaxed)
    }

    pub(super) fn record_batch(&self, size: usize, took: Duration, committed: bool) {
        self.batch_sizes.observe(size as f64);
        self.commit_seconds.observe(took.as_secs_f64());
        if !committed {
            self.failed_batches.fetch_add(1, Relaxed);
        }
    }

    pub(super) fn record_checkpoint_hold(&self, took: Duration) {
        self.checkpoint_hold_seconds.observe(took.as_secs_f64());
    }

    pub(super) fn record_pool_wait(&self, took: Duration, got: bool) {
        self.pool_wait_seconds.observe(took.as_secs_f64());
        if !got {
            self.pool_timeouts.fetch_add(1, Relaxed);
        }
    }

    pub(super) fn record_pruned(&self, counts: &Counts) {
        let kinds = [
            counts.runs,
            counts.events,
            counts.validations,
            counts.idempotency_keys,
            counts.webhook_messages,
        ];
        for (total, n) in self.pruned.iter().zip(kinds) {
            total.fetch_add(n, Relaxed);
        }
    }

    /// Rows retention deleted since start.
    pub fn pruned(&self) -> Counts {
        let [
            runs,
            events,
            validations,
            idempotency_keys,
            webhook_messages,
        ] = self.pruned.each_ref().map(|n| n.load(Relaxed));
        Counts {
            runs,
            events,
            validations,
            idempotency_keys,
            webhook_messages,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_observation_lands_in_one_bucket() {
        let h = AtomicHistogram::new(&[1.0, 2.0]);
        for v in [0.5, 1.0, 1.5, 3.0] {
            h.observe(v);
        }
        let s = h.snapshot();
        assert_eq!(s.buckets, vec![(1.0, 2), (2.0, 1), (f64::INFINITY, 1)]);
        assert_eq!(s.count, 4);
        assert!((s.sum - 6.0).abs() < 1e-9);
    }
}
