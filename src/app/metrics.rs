//! The Prometheus metrics: one registry per `App`, rendered in the
//! OpenMetrics text format for `GET /metrics`.
//!
//! What the app records as it happens (requests, reaper sweeps) lives in
//! prometheus-client's own counters and histograms. What the store counts
//! (the writer, the reader pool, retention) stays in the store as plain
//! atomics (`store::stats`), and the collector here reads it, with the WAL
//! file's size and the runs per status, when a scrape comes in.

use std::{
    fmt,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric, NoLabelSet},
    metrics::{
        MetricType,
        counter::{ConstCounter, Counter},
        family::Family,
        gauge::{ConstGauge, Gauge},
        histogram::Histogram,
    },
    registry::{Registry, Unit},
};

use tracing::error;

use super::AppError;
use crate::{
    domain::{enums::StringEnum, run::RunStatus, webhooks::Attempt},
    store::{Store, StoreError, runs, stats::HistogramSnapshot, webhooks},
};

/// The content type of what [`Metrics::render`] returns.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// How long the runs-per-status counts are reused. Counting walks the
/// `runs_by_status` index, one entry per run (tens of milliseconds per
/// million runs): cheap once, not for every scrape of every Prometheus
/// replica. So the count runs at scrape time, at most once per this
/// interval, and scrapes in between answer the last count; the gauge can
/// lag by this much.
const RUNS_BY_STATUS_EVERY: Duration = Duration::from_secs(15);

/// Request latency buckets, in seconds: from 1 ms to 30 s (a `wait` can
/// hold a request for its whole timeout).
const REQUEST_SECONDS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// One request's labels. `route` is the path's template (a fixed string
/// from the spec, or `unmatched`) and `method` one of a fixed few, so the
/// label values cannot grow with what clients send.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: &'static str,
    pub method: &'static str,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

/// The registry's metrics. Cheap to share behind an `Arc`.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_seconds: Family<RequestLabels, Histogram, fn() -> Histogram>,
    sweeps: Family<ResultLabels, Counter>,
    reaped_runs: Counter,
    expired_keys: Counter,
    webhook_attempts: Family<ResultLabels, Counter>,
    webhook_seconds: Histogram,
    webhook_pending: Gauge,
    runs_by_status: Arc<RunsByStatus>,
    store: Store,
}

impl Metrics {
    pub fn new(store: Store) -> Self {
        let mut registry = Registry::with_prefix("griot");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route template, method and status",
            requests.clone(),
        );
        let request_seconds: Family<RequestLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(|| Histogram::new(REQUEST_SECONDS.iter().copied()));
        registry.register_with_unit(
            "http_request_duration",
            "Time to answer an HTTP request, by route template, method and status",
            Unit::Seconds,
            request_seconds.clone(),
        );
        let sweeps = Family::<ResultLabels, Counter>::default();
        // Both series from the start, so a rate over them is defined.
        for result in ["ok", "error"] {
            sweeps.get_or_create_owned(&ResultLabels { result });
        }
        registry.register(
            "reaper_sweeps",
            "Heartbeat sweeps run by the reaper, by result (ok or error)",
            sweeps.clone(),
        );
        let reaped_runs = Counter::default();
        registry.register(
            "reaper_runs_failed",
            "Runs the reaper failed because their heartbeat timed out",
            reaped_runs.clone(),
        );
        let expired_keys = Counter::default();
        registry.register(
            "reaper_idempotency_keys_expired",
            "Idempotency keys the reaper forgot after their retention",
            expired_keys.clone(),
        );
        let webhook_attempts = Family::<ResultLabels, Counter>::default();
        for result in ["delivered", "failed"] {
            webhook_attempts.get_or_create_owned(&ResultLabels { result });
        }
        registry.register(
            "webhook_attempts",
            "Webhook delivery attempts, by result (delivered: a 2xx answer; failed: any other \
             answer, a timeout or a refused target)",
            webhook_attempts.clone(),
        );
        let webhook_seconds = Histogram::new(REQUEST_SECONDS.iter().copied());
        registry.register_with_unit(
            "webhook_attempt_duration",
            "Time from sending a webhook message to the end of the receiver's answer",
            Unit::Seconds,
            webhook_seconds.clone(),
        );
        let webhook_pending = Gauge::default();
        registry.register(
            "webhook_outbox_pending",
            "Webhook messages waiting for delivery (counted at each scrape)",
            webhook_pending.clone(),
        );
        let runs_by_status = Arc::new(RunsByStatus::default());
        registry.register_collector(Box::new(StoreCollector {
            store: store.clone(),
            runs_by_status: runs_by_status.clone(),
        }));
        Self {
            registry,
            requests,
            request_seconds,
            sweeps,
            reaped_runs,
            expired_keys,
            webhook_attempts,
            webhook_seconds,
            webhook_pending,
            runs_by_status,
            store,
        }
    }

    /// Counts one webhook delivery attempt.
    pub fn record_delivery(&self, attempt: &Attempt, took: Duration) {
        let result = if attempt.succeeded() {
            "delivered"
        } else {
            "failed"
        };
        self.webhook_attempts
            .get_or_create(&ResultLabels { result })
            .inc();
        self.webhook_seconds.observe(took.as_secs_f64());
    }

    /// Counts one answered request and its latency.
    pub fn record_request(&self, labels: &RequestLabels, took: Duration) {
        self.requests.get_or_create(labels).inc();
        self.request_seconds
            .get_or_create(labels)
            .observe(took.as_secs_f64());
    }

    /// Counts one reaper sweep: `Some((runs failed, keys forgotten))` when
    /// it committed, `None` when it failed.
    pub fn record_sweep(&self, outcome: Option<(usize, usize)>) {
        let result = if outcome.is_some() { "ok" } else { "error" };
        self.sweeps.get_or_create(&ResultLabels { result }).inc();
        if let Some((failed, forgotten)) = outcome {
            self.reaped_runs.inc_by(failed as u64);
            self.expired_keys.inc_by(forgotten as u64);
        }
    }

    /// Every metric in the OpenMetrics text format, ending with `# EOF`.
    pub async fn render(&self) -> Result<String, AppError> {
        self.runs_by_status.refresh(&self.store).await?;
        let pending = self.store.read(webhooks::pending_count).await?;
        self.webhook_pending
            .set(i64::try_from(pending).unwrap_or(i64::MAX));
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            // Writing to a String cannot fail; only a metric's own encoder
            // can. The text then lacks its `# EOF`, and Prometheus reports
            // the scrape as failed.
            error!(error = %e, "the metrics could not be written in full");
        }
        Ok(out)
    }
}

/// Runs per status, as counted at one moment.
type RunCounts = Vec<(RunStatus, u64)>;

/// The last count of runs per status, and when it was taken.
#[derive(Default)]
struct RunsByStatus {
    last: Mutex<Option<(Instant, RunCounts)>>,
    /// One count at a time; scrapes arriving meanwhile wait for it.
    counting: tokio::sync::Mutex<()>,
}

impl RunsByStatus {
    fn fresh(&self) -> bool {
        self.last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_some_and(|(at, _)| at.elapsed() < RUNS_BY_STATUS_EVERY)
    }

    async fn refresh(&self, store: &Store) -> Result<(), StoreError> {
        if self.fresh() {
            return Ok(());
        }
        let _counting = self.counting.lock().await;
        if self.fresh() {
            return Ok(());
        }
        let counts = store.read(runs::count_by_status).await?;
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Some((Instant::now(), counts));
        Ok(())
    }

    /// Every status with its count (0 for statuses without runs, so a
    /// series does not vanish when its last run moves on).
    fn counts(&self) -> Vec<(RunStatus, u64)> {
        let last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        let counted = last.as_ref().map(|(_, c)| c.as_slice()).unwrap_or_default();
        RunStatus::all()
            .iter()
            .map(|&status| {
                let n = counted
                    .iter()
                    .find(|(s, _)| *s == status)
                    .map_or(0, |c| c.1);
                (status, n)
            })
            .collect()
    }
}

/// Reads the store's counters, the WAL file's size and the runs per status
/// when a scrape comes in.
struct StoreCollector {
    store: Store,
    runs_by_status: Arc<RunsByStatus>,
}

impl fmt::Debug for StoreCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StoreCollector")
    }
}

/// Writes one metric without labels.
fn single(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    metric: &impl EncodeMetric,
) -> fmt::Result {
    metric.encode(encoder.encode_descriptor(name, help, unit, metric.metric_type())?)
}

/// Writes one metric family with a single label, one series per value.
fn labelled<M: EncodeMetric>(
    encoder: &mut DescriptorEncoder<'_>,
    (name, help, label): (&str, &str, &str),
    series: impl IntoIterator<Item = (&'static str, M)>,
) -> fmt::Result {
    let mut series = series.into_iter().peekable();
    let Some((_, first)) = series.peek() else {
        return Ok(());
    };
    let mut family = encoder.encode_descriptor(name, help, None, first.metric_type())?;
    for (value, metric) in series {
        metric.encode(family.encode_family(&[(label, value)])?)?;
    }
    Ok(())
}

fn histogram(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    h: &HistogramSnapshot,
) -> fmt::Result {
    encoder
        .encode_descriptor(name, help, unit, MetricType::Histogram)?
        .encode_histogram::<NoLabelSet>(h.sum, h.count, &h.buckets, None)
}

impl Collector for StoreCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        let stats = self.store.stats();
        let e = &mut encoder;
        single(
            e,
            "writer_queue_depth",
            "Writes waiting for the single writer thread.",
            None,
            &ConstGauge::new(stats.queue_depth()),
        )?;
        histogram(
            e,
            "writer_batch_size",
            "Writes committed together in one transaction (group commit).",
            None,
            &stats.batch_sizes.snapshot(),
        )?;
        histogram(
            e,
            "writer_commit_duration",
            "Time from BEGIN to the end of COMMIT of each write batch.",
            Some(&Unit::Seconds),
            &stats.commit_seconds.snapshot(),
        )?;
        histogram(
            e,
            "writer_checkpoint_hold_duration",
            "Time the checkpoint thread held the writer off to copy the WAL's last frames, so \
             that the WAL starts over; writes queued meanwhile wait that long.",
            Some(&Unit::Seconds),
            &stats.checkpoint_hold_seconds.snapshot(),
        )?;
        single(
            e,
            "writer_failed_batches",
            "Write batches whose transaction failed as a whole.",
            None,
            &ConstCounter::new(stats.failed_batches()),
        )?;
        histogram(
            e,
            "db_pool_wait_duration",
            "Time a read waited for a connection from the reader pool.",
            Some(&Unit::Seconds),
            &stats.pool_wait_seconds.snapshot(),
        )?;
        single(
            e,
            "db_pool_timeouts",
            "Reads that gave up waiting for a reader connection.",
            None,
            &ConstCounter::new(stats.pool_timeouts()),
        )?;
        let (open, idle) = self.store.pool_state();
        labelled(
            e,
            (
                "db_pool_connections",
                "Reader connections, by state (idle or in_use).",
                "state",
            ),
            [
                ("idle", ConstGauge::new(i64::from(idle))),
                (
                    "in_use",
                    ConstGauge::new(i64::from(open.saturating_sub(idle))),
                ),
            ],
        )?;
        single(
            e,
            "db_wal_size",
            "Size of the SQLite write-ahead log file.",
            Some(&Unit::Bytes),
            &ConstGauge::new(i64::try_from(self.store.wal_bytes()).unwrap_or(i64::MAX)),
        )?;
        labelled(
            e,
            (
                "runs",
                "Runs stored, by status (counted at most every 15 s).",
                "status",
            ),
            self.runs_by_status.counts().into_iter().map(|(s, n)| {
                (
                    s.as_str(),
                    ConstGauge::new(i64::try_from(n).unwrap_or(i64::MAX)),
                )
            }),
        )?;
        let pruned = stats.pruned();
        labelled(
            e,
            (
                "retention_deleted",
                "Rows deleted by retention (prune), by kind.",
                "kind",
            ),
            [
                ("runs", ConstCounter::new(pruned.runs)),
                ("events", ConstCounter::new(pruned.events)),
                ("validations", ConstCounter::new(pruned.validations)),
                (
                    "idempotency_keys",
                    ConstCounter::new(pruned.idempotency_keys),
                ),
                (
                    "webhook_messages",
                    ConstCounter::new(pruned.webhook_messages),
                ),
            ],
        )
    }
}
