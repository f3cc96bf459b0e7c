//! The HTTP load: scenarios, the connections that drive them, and what they
//! measure.

use std::{
    collections::BTreeMap,
    io,
    net::SocketAddr,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use griot_registry::domain::time::Timestamp;

use crate::{
    client::{Conn, Response, json_id, json_str},
    fill::{RunRef, contract_name, pipeline_name, pipeline_of},
    rng::Rng,
};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Op {
    CreateRun,
    UpdateRun,
    GetRun,
    ListByContractStatus,
    ListByDateRange,
    RecordValidation,
    Stats,
    ListAll,
    ListByStatus,
    ListByPipelineStatus,
    ListDeepOffset,
    ListDeepCursor,
    Health,
    ListValidations,
    ListValidationsByStatus,
    UiFront,
    UiRuns,
    UiRun,
    UiContract,
    ListByContract,
    ListByPipeline,
    ListByContractPipeline,
    ListValidationsByContract,
    ListCompleted,
    MlflowCreateRun,
    MlflowGetRun,
    MlflowUpdateRun,
    MlflowSearch,
}

impl Op {
    pub const ALL: [Op; 28] = [
        Op::CreateRun,
        Op::UpdateRun,
        Op::GetRun,
        Op::ListByContractStatus,
        Op::ListByDateRange,
        Op::RecordValidation,
        Op::Stats,
        Op::ListAll,
        Op::ListByStatus,
        Op::ListByPipelineStatus,
        Op::ListDeepOffset,
        Op::ListDeepCursor,
        Op::Health,
        Op::ListValidations,
        Op::ListValidationsByStatus,
        Op::UiFront,
        Op::UiRuns,
        Op::UiRun,
        Op::UiContract,
        Op::ListByContract,
        Op::ListByPipeline,
        Op::ListByContractPipeline,
        Op::ListValidationsByContract,
        Op::ListCompleted,
        Op::MlflowCreateRun,
        Op::MlflowGetRun,
        Op::MlflowUpdateRun,
        Op::MlflowSearch,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Op::CreateRun => "create_run",
            Op::UpdateRun => "update_run",
            Op::GetRun => "get_run",
            Op::ListByContractStatus => "list_contract_status",
            Op::ListByDateRange => "list_date_range",
            Op::RecordValidation => "record_validation",
            Op::Stats => "contract_stats",
            Op::ListAll => "list_all",
            Op::ListByStatus => "list_status",
            Op::ListByPipelineStatus => "list_pipeline_status",
            Op::ListDeepOffset => "list_deep_offset",
            Op::ListDeepCursor => "list_deep_cursor",
            Op::Health => "health",
            Op::ListValidations => "list_validations",
            Op::ListValidationsByStatus => "list_validations_status",
            Op::UiFront => "ui_front",
            Op::UiRuns => "ui_runs",
            Op::UiRun => "ui_run",
            Op::UiContract => "ui_contract",
            Op::ListByContract => "list_contract",
            Op::ListByPipeline => "list_pipeline",
            Op::ListByContractPipeline => "list_contract_pipeline",
            Op::ListValidationsByContract => "list_validations_contract",
            Op::ListCompleted => "list_completed",
            Op::MlflowCreateRun => "mlflow_create_run",
            Op::MlflowGetRun => "mlflow_get_run",
            Op::MlflowUpdateRun => "mlflow_update_run",
            Op::MlflowSearch => "mlflow_search_runs",
        }
    }

    fn index(self) -> usize {
        Op::ALL.iter().position(|o| *o == self).unwrap_or(0)
    }
}

pub struct Scenario {
    pub name: &'static str,
    pub what: &'static str,
    pub mix: &'static [(Op, u32)],
}

pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "create_run",
        what: "POST /api/v1/runs (pending run, small metadata)",
        mix: &[(Op::CreateRun, 1)],
    },
    Scenario {
        name: "update_run",
        what: "PATCH /api/v1/runs/{id}: pending->running + metadata, then a metadata-only patch, \
               on runs the load created",
        mix: &[(Op::UpdateRun, 1)],
    },
    Scenario {
        name: "get_run",
        what: "GET /api/v1/runs/{id} (with its validations), random filled run",
        mix: &[(Op::GetRun, 1)],
    },
    Scenario {
        name: "list_contract_status",
        what: "GET /api/v1/runs?contract_id=..&status=.. (page of 50 + total)",
        mix: &[(Op::ListByContractStatus, 1)],
    },
    Scenario {
        name: "list_date_range",
        what: "GET /api/v1/runs?start_date=..&end_date=.. (3-hour window, page of 50 + total)",
        mix: &[(Op::ListByDateRange, 1)],
    },
    Scenario {
        name: "list_all",
        what: "GET /api/v1/runs?limit=50 (no filter, page of 50 + total)",
        mix: &[(Op::ListAll, 1)],
    },
    Scenario {
        name: "list_status",
        what: "GET /api/v1/runs?status=.. (random status, page of 50 + total)",
        mix: &[(Op::ListByStatus, 1)],
    },
    Scenario {
        name: "list_pipeline_status",
        what: "GET /api/v1/runs?pipeline_name=..&status=completed (random pipeline)",
        mix: &[(Op::ListByPipelineStatus, 1)],
    },
    Scenario {
        name: "list_deep_offset",
        what: "GET /api/v1/runs?limit=50&offset=N/2 (half the filled runs deep)",
        mix: &[(Op::ListDeepOffset, 1)],
    },
    Scenario {
        name: "health",
        what: "GET /health (no database: the server's own floor, to read get_run against)",
        mix: &[(Op::Health, 1)],
    },
    Scenario {
        name: "list_deep_cursor",
        what: "GET /api/v1/runs?limit=50&cursor=.. (a cursor at the middle of the filled time window: as deep as list_deep_offset)",
        mix: &[(Op::ListDeepCursor, 1)],
    },
    Scenario {
        name: "list_validations",
        what: "GET /api/v1/validations?limit=50 (no filter, page of 50 + total)",
        mix: &[(Op::ListValidations, 1)],
    },
    Scenario {
        name: "list_validations_status",
        what: "GET /api/v1/validations?status=.. (random status, page of 50 + total)",
        mix: &[(Op::ListValidationsByStatus, 1)],
    },
    Scenario {
        name: "record_validation",
        what: "POST /api/v1/validations linked to a random filled run",
        mix: &[(Op::RecordValidation, 1)],
    },
    Scenario {
        name: "contract_stats",
        what: "GET /api/v1/validations/stats/{contract}?days=30",
        mix: &[(Op::Stats, 1)],
    },
    Scenario {
        name: "ui_front",
        what: "GET /ui (the dashboard's front page: the newest 50 runs of all, and the total)",
        mix: &[(Op::UiFront, 1)],
    },
    Scenario {
        name: "ui_runs",
        what: "GET /ui?contract_id=.. (the dashboard's runs list: HTML page of 50 + total)",
        mix: &[(Op::UiRuns, 1)],
    },
    Scenario {
        name: "ui_run",
        what: "GET /ui/runs/{id} (a run's page: fields, history, validations)",
        mix: &[(Op::UiRun, 1)],
    },
    Scenario {
        name: "ui_contract",
        what: "GET /ui/contracts/{contract} (30-day chart, counts per status, errors, latest)",
        mix: &[(Op::UiContract, 1)],
    },
    Scenario {
        name: "mixed",
        what: "30% get, 15% list by contract+status, 10% list by dates, 10% stats, \
               15% create, 10% patch, 10% validation",
        mix: &[
            (Op::GetRun, 30),
            (Op::ListByContractStatus, 15),
            (Op::ListByDateRange, 10),
            (Op::Stats, 10),
            (Op::CreateRun, 15),
            (Op::UpdateRun, 10),
            (Op::RecordValidation, 10),
        ],
    },
    Scenario {
        name: "list_contract",
        what: "GET /api/v1/runs?contract_id=.. (random contract, page of 50 + total)",
        mix: &[(Op::ListByContract, 1)],
    },
    Scenario {
        name: "list_pipeline",
        what: "GET /api/v1/runs?pipeline_name=.. (random pipeline, page of 50 + total)",
        mix: &[(Op::ListByPipeline, 1)],
    },
    Scenario {
        name: "list_contract_pipeline",
        what: "GET /api/v1/runs?contract_id=..&pipeline_name=.. (random contract and its \
               pipeline)",
        mix: &[(Op::ListByContractPipeline, 1)],
    },
    Scenario {
        name: "list_validations_contract",
        what: "GET /api/v1/validations?contract_id=.. (random contract, page of 50 + total)",
        mix: &[(Op::ListValidationsByContract, 1)],
    },
];

/// One scenario of the MLflow comparison: the same work asked of each
/// server through its own API.
pub struct Pair {
    pub name: &'static str,
    pub griot: Scenario,
    pub mlflow: Scenario,
}

/// MLflow's tracking REST API, version 2.0.
pub const MLFLOW_API: &str = "/api/2.0/mlflow";

pub const VS_MLFLOW: &[Pair] = &[
    Pair {
        name: "create",
        griot: Scenario {
            name: "create_run",
            what: "POST /api/v1/runs (pending run: contract, pipeline name and id, 3 metadata keys)",
            mix: &[(Op::CreateRun, 1)],
        },
        mlflow: Scenario {
            name: "mlflow_create_run",
            what: "POST /api/2.0/mlflow/runs/create (start_time and 6 tags: contract, pipeline \
                   name and id, the same 3 metadata keys)",
            mix: &[(Op::MlflowCreateRun, 1)],
        },
    },
    Pair {
        name: "get",
        griot: Scenario {
            name: "get_run",
            what: "GET /api/v1/runs/{id}, random filled run",
            mix: &[(Op::GetRun, 1)],
        },
        mlflow: Scenario {
            name: "mlflow_get_run",
            what: "GET /api/2.0/mlflow/runs/get?run_id=.., random filled run",
            mix: &[(Op::MlflowGetRun, 1)],
        },
    },
    Pair {
        name: "update",
        griot: Scenario {
            name: "update_run",
            what: "PATCH /api/v1/runs/{id} on runs the load created: pending->running with 2 \
                   metadata keys, then a patch of 2 metadata keys, alternating",
            mix: &[(Op::UpdateRun, 1)],
        },
        mlflow: Scenario {
            name: "mlflow_update_run",
            what: "on runs the load created: POST runs/update (RUNNING->FINISHED, end_time), \
                   then POST runs/log-batch with 2 tags, alternating",
            mix: &[(Op::MlflowUpdateRun, 1)],
        },
    },
    Pair {
        name: "search",
        griot: Scenario {
            name: "list_completed",
            what: "GET /api/v1/runs?status=completed&limit=50 (newest first, with the total)",
            mix: &[(Op::ListCompleted, 1)],
        },
        mlflow: Scenario {
            name: "mlflow_search_runs",
            what: "POST /api/2.0/mlflow/runs/search, filter attributes.status = 'FINISHED', \
                   max_results 50 (newest first by its default order)",
            mix: &[(Op::MlflowSearch, 1)],
        },
    },
];

/// What every connection shares.
pub struct Target {
    pub addr: SocketAddr,
    pub api_key: String,
    /// The MLflow experiment the runs go into, when the target is MLflow's
    /// tracking server.
    pub experiment_id: Option<String>,
    pub runs: Arc<Vec<RunRef>>,
    pub contracts: u32,
    pub pipelines: u32,
    /// `started_at` of the oldest and newest filled run, Unix microseconds.
    pub window: (i64, i64),
    pub seed: u64,
    /// Pending runs the load created, waiting to be patched.
    pub pending: Mutex<Vec<String>>,
}

impl Target {
    fn experiment(&self) -> &str {
        self.experiment_id.as_deref().unwrap_or_default()
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, Vec<String>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[derive(Default)]
pub struct Counts {
    /// Requests answered, with any status.
    pub answered: u64,
    /// Errors by kind: an HTTP status ("500") or "io: ...".
    pub errors: BTreeMap<String, u64>,
    /// The first body seen for each error kind, shortened.
    pub samples: BTreeMap<String, String>,
}

impl Counts {
    pub fn error(&mut self, kind: String, sample: impl FnOnce() -> String) {
        *self.errors.entry(kind.clone()).or_default() += 1;
        self.samples.entry(kind).or_insert_with(|| {
            let s = sample();
            s.chars().take(300).collect()
        });
    }

    pub fn merge(&mut self, other: Counts) {
        self.answered += other.answered;
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
        for (k, v) in other.samples {
            self.samples.entry(k).or_insert(v);
        }
    }

    pub fn error_total(&self) -> u64 {
        self.errors.values().sum()
    }
}

pub struct OpResult {
    pub op: Op,
    /// Latencies of answered requests (any status), microseconds, sorted.
    pub latencies_us: Vec<u32>,
    pub errors: u64,
}

pub struct ScenarioResult {
    pub name: &'static str,
    pub elapsed: Duration,
    pub counts: Counts,
    pub latencies_us: Vec<u32>,
    pub per_op: Vec<OpResult>,
}

impl ScenarioResult {
    pub fn per_sec(&self) -> f64 {
        self.counts.answered as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// The `q` quantile (0..=1) of sorted microseconds, in milliseconds.
pub fn quantile_ms(sorted_us: &[u32], q: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted_us.len() as f64).ceil() as usize).clamp(1, sorted_us.len());
    f64::from(sorted_us[rank - 1]) / 1000.0
}

struct Worker {
    n: usize,
    target: Arc<Target>,
    rng: Rng,
    conn: Option<Conn>,
    /// A run this connection moved to running, and whether its next patch
    /// is the metadata-only one.
    current: Option<String>,
    metadata_next: bool,
    seq: u64,
    latencies: Vec<Vec<u32>>,
    op_errors: Vec<u64>,
    counts: Counts,
}

fn weights(mix: &[(Op, u32)]) -> Vec<u32> {
    mix.iter().map(|m| m.1).collect()
}

const RUN_STATUSES: [&str; 5] = ["completed", "failed", "running", "pending", "cancelled"];
const VALIDATION_STATUSES: [&str; 4] = ["passed", "failed", "warning", "skipped"];

impl Worker {
    fn new(n: usize, target: &Arc<Target>, index: usize, conn: Conn) -> Self {
        Worker {
            n,
            target: Arc::clone(target),
            rng: Rng::fork(target.seed, (index * 1_000 + n) as u64 + 1),
            conn: Some(conn),
            current: None,
            metadata_next: false,
            seq: 0,
            latencies: vec![Vec::new(); Op::ALL.len()],
            op_errors: vec![0; Op::ALL.len()],
            counts: Counts::default(),
        }
    }

    /// Builds and sends one request of kind `op`.
    async fn send(&mut self, op: Op) -> io::Result<Response> {
        let t = Arc::clone(&self.target);
        self.seq += 1;
        if self.conn.as_ref().is_none_or(|c| c.closed) {
            self.conn = None;
            self.conn = Some(Conn::connect(t.addr).await?);
        }
        match op {
            Op::CreateRun => self.create_run(&t).await,
            Op::UpdateRun => self.update_run(&t).await,
            Op::GetRun => {
                let id = &self.random_run(&t).id;
                self.get(&format!("/api/v1/runs/{id}")).await
            }
            Op::ListByContractStatus => {
                let c = contract_name(self.random_contract(&t));
                let s = RUN_STATUSES[self.rng.below(RUN_STATUSES.len() as u64) as usize];
                self.get(&format!("/api/v1/runs?contract_id={c}&status={s}"))
                    .await
            }
            Op::ListByDateRange => {
                let path = self.date_range_path(&t)?;
                self.get(&path).await
            }
            Op::RecordValidation => {
                let body = self.validation_body(&t);
                self.conn()
                    .request("POST", "/api/v1/validations", Some(&t.api_key), Some(&body))
                    .await
            }
            Op::Stats => {
                let c = contract_name(self.random_contract(&t));
                self.get(&format!("/api/v1/validations/stats/{c}?days=30"))
                    .await
            }
            Op::ListAll => self.get("/api/v1/runs?limit=50").await,
            Op::ListByStatus => {
                let s = RUN_STATUSES[self.rng.below(RUN_STATUSES.len() as u64) as usize];
                self.get(&format!("/api/v1/runs?status={s}")).await
            }
            Op::ListByPipelineStatus => {
                let p = pipeline_name(self.rng.below(u64::from(t.pipelines)) as u32);
                self.get(&format!("/api/v1/runs?pipeline_name={p}&status=completed"))
                    .await
            }
            Op::ListDeepOffset => {
                let offset = t.runs.len() / 2;
                self.get(&format!("/api/v1/runs?limit=50&offset={offset}"))
                    .await
            }
            Op::Health => self.get("/health").await,
            Op::ListDeepCursor => {
                // Any time and id make a valid cursor: the middle of the
                // fill's window is about half the runs deep.
                let middle = (t.window.0 + t.window.1) / 2;
                let path = format!(
                    "/api/v1/runs?limit=50&cursor={middle}.run_{}",
                    "Z".repeat(26)
                );
                self.get(&path).await
            }
            Op::ListValidations => self.get("/api/v1/validations?limit=50").await,
            Op::ListValidationsByStatus => {
                let s = VALIDATION_STATUSES[self.rng.below(4) as usize];
                self.get(&format!("/api/v1/validations?status={s}")).await
            }
            Op::UiFront => self.get("/ui").await,
            Op::UiRuns => {
                let c = contract_name(self.random_contract(&t));
                self.get(&format!("/ui?contract_id={c}")).await
            }
            Op::UiRun => {
                let id = &self.random_run(&t).id;
                self.get(&format!("/ui/runs/{id}")).await
            }
            Op::UiContract => {
                let c = contract_name(self.random_contract(&t));
                self.get(&format!("/ui/contracts/{c}")).await
            }
            Op::ListByContract => {
                let c = contract_name(self.random_contract(&t));
                self.get(&format!("/api/v1/runs?contract_id={c}")).await
            }
            Op::ListByPipeline => {
                let p = pipeline_name(self.rng.below(u64::from(t.pipelines)) as u32);
                self.get(&format!("/api/v1/runs?pipeline_name={p}")).await
            }
            Op::ListByContractPipeline => {
                let c = self.random_contract(&t);
                let p = pipeline_name(pipeline_of(c, t.pipelines));
                let c = contract_name(c);
                self.get(&format!("/api/v1/runs?contract_id={c}&pipeline_name={p}"))
                    .await
            }
            Op::ListValidationsByContract => {
                let c = contract_name(self.random_contract(&t));
                self.get(&format!("/api/v1/validations?contract_id={c}"))
                    .await
            }
            Op::ListCompleted => self.get("/api/v1/runs?status=completed&limit=50").await,
            Op::MlflowCreateRun => self.mlflow_create_run(&t).await,
            Op::MlflowGetRun => {
                let id = &self.random_run(&t).id;
                self.get(&format!("{MLFLOW_API}/runs/get?run_id={id}"))
                    .await
            }
            Op::MlflowUpdateRun => self.mlflow_update_run(&t).await,
            Op::MlflowSearch => {
                let body = format!(
                    r#"{{"experiment_ids":["{}"],"filter":"attributes.status = 'FINISHED'","max_results":50}}"#,
                    t.experiment()
                );
                self.conn()
                    .request(
                        "POST",
                        &format!("{MLFLOW_API}/runs/search"),
                        None,
                        Some(&body),
                    )
                    .await
            }
        }
    }

    /// What `create_run` sends, as MLflow takes it: the run's fields and
    /// metadata become tags, the only run data `runs/create` accepts.
    async fn mlflow_create_run(&mut self, t: &Target) -> io::Result<Response> {
        let (n, seq) = (self.n, self.seq);
        let c = self.random_contract(t);
        let p = pipeline_name(pipeline_of(c, t.pipelines));
        let body = format!(
            r#"{{"experiment_id":"{}","start_time":{},"tags":[{{"key":"contract_id","value":"{}"}},{{"key":"pipeline_name","value":"{p}"}},{{"key":"pipeline_id","value":"bench-{n}-{seq}"}},{{"key":"dag_id","value":"{p}"}},{{"key":"trigger","value":"scheduled"}},{{"key":"attempt","value":"1"}}]}}"#,
            t.experiment(),
            Timestamp::now().unix_micros() / 1_000,
            contract_name(c)
        );
        let resp = self
            .conn()
            .request(
                "POST",
                &format!("{MLFLOW_API}/runs/create"),
                None,
                Some(&body),
            )
            .await?;
        if resp.status == 200
            && let Some(id) = json_str(&resp.body, "run_id")
        {
            t.pending().push(id);
        }
        Ok(resp)
    }

    /// `update_run`'s alternation in MLflow's terms: the status change is
    /// `runs/update` (the only way to change a run's status), the
    /// metadata-only patch is `runs/log-batch` of tags (MLflow's free-form
    /// key-values; `runs/update` takes none).
    async fn mlflow_update_run(&mut self, t: &Target) -> io::Result<Response> {
        let (id, metadata_only, moves) = match (self.current.take(), self.metadata_next) {
            (Some(id), true) => (id, true, false),
            (current, _) => match t.pending().pop() {
                Some(fresh) => (fresh, false, true),
                None => (
                    current.unwrap_or_else(|| self.random_run(t).id.clone()),
                    true,
                    false,
                ),
            },
        };
        let (path, body) = if metadata_only {
            (
                "runs/log-batch",
                format!(
                    r#"{{"run_id":"{id}","tags":[{{"key":"progress_pct","value":"{}"}},{{"key":"rows_processed","value":"{}"}}]}}"#,
                    self.rng.below(100),
                    self.rng.below(10_000_000)
                ),
            )
        } else {
            (
                "runs/update",
                format!(
                    r#"{{"run_id":"{id}","status":"FINISHED","end_time":{}}}"#,
                    Timestamp::now().unix_micros() / 1_000
                ),
            )
        };
        let resp = self
            .conn()
            .request("POST", &format!("{MLFLOW_API}/{path}"), None, Some(&body))
            .await?;
        self.metadata_next = moves;
        self.current = Some(id);
        Ok(resp)
    }

    /// The open connection (`send` opens it first).
    fn conn(&mut self) -> &mut Conn {
        self.conn.as_mut().expect("send connects first")
    }

    /// A GET without an API key.
    async fn get(&mut self, path: &str) -> io::Result<Response> {
        self.conn().request("GET", path, None, None).await
    }

    fn random_contract(&mut self, t: &Target) -> u32 {
        self.rng.below(u64::from(t.contracts)) as u32
    }

    fn random_run<'t>(&mut self, t: &'t Target) -> &'t RunRef {
        &t.runs[self.rng.below(t.runs.len() as u64) as usize]
    }

    /// A pending run with small metadata, kept for a later patch.
    async fn create_run(&mut self, t: &Target) -> io::Result<Response> {
        let (n, seq) = (self.n, self.seq);
        let c = self.random_contract(t);
        let p = pipeline_name(pipeline_of(c, t.pipelines));
        let body = format!(
            r#"{{"contract_id":"{}","pipeline_name":"{p}","pipeline_id":"bench-{n}-{seq}","status":"pending","metadata":{{"dag_id":"{p}","trigger":"scheduled","attempt":1}}}}"#,
            contract_name(c)
        );
        let resp = self
            .conn()
            .request("POST", "/api/v1/runs", Some(&t.api_key), Some(&body))
            .await?;
        if resp.status == 201
            && let Some(id) = json_id(&resp.body)
        {
            t.pending().push(id);
        }
        Ok(resp)
    }

    /// Moves a pending run to running, then patches its metadata.
    async fn update_run(&mut self, t: &Target) -> io::Result<Response> {
        let (id, body, moves) = self.next_patch(t);
        let resp = self
            .conn()
            .request(
                "PATCH",
                &format!("/api/v1/runs/{id}"),
                Some(&t.api_key),
                Some(&body),
            )
            .await?;
        self.metadata_next = moves;
        self.current = Some(id);
        Ok(resp)
    }

    /// The run to patch, the patch, and whether it moves the run to running
    /// (so that the next patch is the metadata-only one).
    fn next_patch(&mut self, t: &Target) -> (String, String, bool) {
        let (n, seq) = (self.n, self.seq);
        match (self.current.take(), self.metadata_next) {
            (Some(id), true) => {
                let body = format!(
                    r#"{{"metadata":{{"progress_pct":{},"rows_processed":{}}}}}"#,
                    self.rng.below(100),
                    self.rng.below(10_000_000)
                );
                (id, body, false)
            }
            (current, _) => match t.pending().pop() {
                Some(fresh) => (
                    fresh,
                    format!(
                        r#"{{"status":"running","metadata":{{"worker":"bench-{n}","attempt":1}}}}"#
                    ),
                    true,
                ),
                // No pending run left: keep adding metadata to the one this
                // connection has.
                None => {
                    let id = match current {
                        Some(id) => id,
                        None => self.random_run(t).id.clone(),
                    };
                    (
                        id,
                        format!(r#"{{"metadata":{{"progress_pct":{seq}}}}}"#),
                        false,
                    )
                }
            },
        }
    }

    /// A 3-hour window of `started_at`, on whole minutes, inside the
    /// filled runs' window.
    fn date_range_path(&mut self, t: &Target) -> io::Result<String> {
        const WIDTH: i64 = 3 * 3_600 * 1_000_000;
        let (lo, hi) = t.window;
        let start = if hi - WIDTH > lo {
            self.rng.range(lo, hi - WIDTH)
        } else {
            lo
        };
        let start = start - start % 60_000_000;
        let fmt = |m: i64| Timestamp::from_unix_micros(m).map(|t| t.to_string());
        let (Some(a), Some(b)) = (fmt(start), fmt(start + WIDTH)) else {
            return Err(io::Error::other("timestamp out of range"));
        };
        Ok(format!("/api/v1/runs?start_date={a}&end_date={b}"))
    }

    /// A validation of a random filled run: 85% passed, 12% failed, 3%
    /// warning.
    fn validation_body(&mut self, t: &Target) -> String {
        let r = self.random_run(t);
        let rows = 1_000 + self.rng.below(1_000_000);
        let dur = 50 + self.rng.below(20_000);
        let roll = self.rng.below(100);
        let (contract, run) = (contract_name(r.contract), &r.id);
        if roll < 85 {
            format!(
                r#"{{"contract_id":"{contract}","run_id":"{run}","status":"passed","metrics":{{"rows_validated":{rows},"rows_passed":{rows},"rows_failed":0,"duration_ms":{dur}}}}}"#
            )
        } else if roll < 97 {
            let bad = 1 + rows / 200;
            format!(
                r#"{{"contract_id":"{contract}","run_id":"{run}","status":"failed","errors":[{{"code":"null_values","message":"email has {bad} nulls","path":"email","row_count":{bad}}}],"metrics":{{"rows_validated":{rows},"rows_passed":{},"rows_failed":{bad},"duration_ms":{dur}}}}}"#,
                rows - bad
            )
        } else {
            format!(
                r#"{{"contract_id":"{contract}","run_id":"{run}","status":"warning","warnings":[{{"code":"row_count_low","message":"row count below the 7-day average"}}],"metrics":{{"rows_validated":{rows},"duration_ms":{dur}}}}}"#
            )
        }
    }

    async fn run(mut self, mix: &'static [(Op, u32)], deadline: Instant) -> Self {
        let w = weights(mix);
        while Instant::now() < deadline {
            let op = mix[self.rng.weighted(&w)].0;
            let started = Instant::now();
            match self.send(op).await {
                Ok(resp) => {
                    let us = started.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
                    self.latencies[op.index()].push(us);
                    self.counts.answered += 1;
                    if !(200..300).contains(&resp.status) {
                        self.op_errors[op.index()] += 1;
                        self.counts
                            .error(format!("{} {}", resp.status, op.name()), || {
                                String::from_utf8_lossy(&resp.body).into_owned()
                            });
                    }
                }
                Err(e) => {
                    self.op_errors[op.index()] += 1;
                    self.counts
                        .error(format!("io {}", op.name()), || e.to_string());
                    self.conn = None;
                    // Do not spin if the server is gone.
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }
        self
    }
}

/// Creates pending runs until the pool holds `want`, outside any
/// measurement, so a patch scenario has runs to move.
pub async fn top_up_pending(target: &Arc<Target>, want: usize) -> Result<(), String> {
    let mut conn = Conn::connect(target.addr)
        .await
        .map_err(|e| format!("cannot connect to the server: {e}"))?;
    let mut n = 0u64;
    while target.pending().len() < want {
        n += 1;
        let contract = contract_name((n % u64::from(target.contracts)) as u32);
        let resp = match &target.experiment_id {
            None => {
                let body = format!(
                    r#"{{"contract_id":"{contract}","pipeline_name":"pipeline-000","status":"pending"}}"#
                );
                conn.request("POST", "/api/v1/runs", Some(&target.api_key), Some(&body))
                    .await
            }
            Some(experiment) => {
                let body = format!(
                    r#"{{"experiment_id":"{experiment}","start_time":{},"tags":[{{"key":"contract_id","value":"{contract}"}},{{"key":"pipeline_name","value":"pipeline-000"}}]}}"#,
                    Timestamp::now().unix_micros() / 1_000
                );
                conn.request("POST", &format!("{MLFLOW_API}/runs/create"), None, Some(&body))
                    .await
            }
        }
        .map_err(|e| format!("creating runs to patch: {e}"))?;
        let id = match target.experiment_id {
            None => json_id(&resp.body).filter(|_| resp.status == 201),
            Some(_) => json_str(&resp.body, "run_id").filter(|_| resp.status == 200),
        };
        match id {
            Some(id) => target.pending().push(id),
            _ => {
                return Err(format!(
                    "creating runs to patch got {}: {}",
                    resp.status,
                    String::from_utf8_lossy(&resp.body)
                ));
            }
        }
    }
    Ok(())
}

/// Drives `scenario` over `connections` keep-alive connections for
/// `duration`, each connection sending requests back to back.
pub async fn run_scenario(
    target: &Arc<Target>,
    scenario: &'static Scenario,
    index: usize,
    connections: usize,
    duration: Duration,
) -> Result<ScenarioResult, String> {
    if scenario
        .mix
        .iter()
        .any(|m| matches!(m.0, Op::UpdateRun | Op::MlflowUpdateRun))
    {
        top_up_pending(target, connections * 4).await?;
    }
    let conns = connect_all(target.addr, connections).await?;
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(n, conn)| {
            let worker = Worker::new(n, target, index, conn);
            tokio::spawn(worker.run(scenario.mix, deadline))
        })
        .collect();
    let mut counts = Counts::default();
    let mut per_op: Vec<(Vec<u32>, u64)> = vec![(Vec::new(), 0); Op::ALL.len()];
    for t in tasks {
        let w = t.await.map_err(|e| format!("a load task failed: {e}"))?;
        counts.merge(w.counts);
        for (i, (lat, err)) in w.latencies.into_iter().zip(w.op_errors).enumerate() {
            per_op[i].0.extend(lat);
            per_op[i].1 += err;
        }
    }
    let elapsed = started.elapsed();
    let mut all: Vec<u32> = per_op.iter().flat_map(|p| p.0.iter().copied()).collect();
    all.sort_unstable();
    Ok(ScenarioResult {
        name: scenario.name,
        elapsed,
        counts,
        latencies_us: all,
        per_op: op_results(scenario, per_op),
    })
}

/// Opens every connection before the clock starts.
async fn connect_all(addr: SocketAddr, connections: usize) -> Result<Vec<Conn>, String> {
    let mut conns = Vec::with_capacity(connections);
    for _ in 0..connections {
        conns.push(
            Conn::connect(addr)
                .await
                .map_err(|e| format!("cannot connect to the server: {e}"))?,
        );
    }
    Ok(conns)
}

/// The sorted latencies and error counts of the operations in the
/// scenario's mix, in `Op::ALL` order.
fn op_results(scenario: &Scenario, per_op: Vec<(Vec<u32>, u64)>) -> Vec<OpResult> {
    Op::ALL
        .iter()
        .zip(per_op)
        .filter(|(op, _)| scenario.mix.iter().any(|m| m.0 == **op))
        .map(|(op, (mut lat, errors))| {
            lat.sort_unstable();
            OpResult {
                op: *op,
                latencies_us: lat,
                errors,
            }
        })
        .collect()
}
