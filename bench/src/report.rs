//! The machine description and the results, as a markdown report for
//! stdout and as JSON.

use std::{
    fmt::Write as _,
    io::{BufRead, BufReader},
    path::Path,
};

use serde_json::{Value, json};

use crate::{
    load::{ScenarioResult, quantile_ms},
    raw::Rate,
};

pub struct Machine {
    pub nproc: usize,
    pub cpu_model: String,
    pub mem_total_kib: u64,
    pub kernel: String,
    pub tmp_dir: String,
    pub tmp_fs: String,
}

fn proc_field(file: &str, key: &str) -> Option<String> {
    std::fs::read_to_string(file).ok()?.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == key).then(|| v.trim().to_owned())
    })
}

/// The filesystem holding `dir`, from the longest matching mount point.
fn filesystem_of(dir: &Path) -> String {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 3 && dir.starts_with(f[1]))
                .then(|| (f[1].len(), format!("{} on {}", f[2], f[0])))
        })
        .max_by_key(|(len, _)| *len)
        .map_or_else(|| "unknown".into(), |(_, fs)| fs)
}

impl Machine {
    /// The machine as both reports' JSON gives it.
    pub fn json(&self) -> Value {
        json!({
            "nproc": self.nproc,
            "cpu_model": self.cpu_model,
            "mem_total_mib": self.mem_total_kib / 1024,
            "kernel": self.kernel,
            "tmp_dir": self.tmp_dir,
            "tmp_filesystem": self.tmp_fs,
        })
    }

    pub fn probe(tmp: &Path) -> Self {
        Machine {
            nproc: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu_model: proc_field("/proc/cpuinfo", "model name")
                .unwrap_or_else(|| "unknown".into()),
            mem_total_kib: proc_field("/proc/meminfo", "MemTotal")
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
                .unwrap_or(0),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map_or_else(|_| "unknown".into(), |s| s.trim().to_owned()),
            tmp_dir: tmp.display().to_string(),
            tmp_fs: filesystem_of(tmp),
        }
    }
}

/// What the server's log said during the run.
#[derive(Default)]
pub struct LogSummary {
    pub request_lines: u64,
    pub status_5xx: u64,
    pub warn: u64,
    pub error: u64,
    /// First few WARN/ERROR lines and 5xx request lines.
    pub samples: Vec<String>,
}

fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ ... final byte in @..~
            for d in chars.by_ref() {
                if ('@'..='~').contains(&d) && d != '[' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

pub fn scan_log(path: &Path) -> LogSummary {
    let mut s = LogSummary::default();
    let Ok(file) = std::fs::File::open(path) else {
        return s;
    };
    for line in BufReader::new(file).lines().map_while(Result::ok) {
        let line = strip_ansi(&line);
        let is_request = line.contains(" request ") || line.ends_with(" request");
        let five = line.contains("status=5");
        let warn = line.contains(" WARN ");
        let error = line.contains(" ERROR ");
        if is_request {
            s.request_lines += 1;
        }
        if five {
            s.status_5xx += 1;
        }
        if warn {
            s.warn += 1;
        }
        if error {
            s.error += 1;
        }
        if (five || warn || error) && s.samples.len() < 8 {
            s.samples.push(line.chars().take(400).collect());
        }
    }
    s
}

pub struct Fill {
    pub runs: u64,
    pub validations: u64,
    pub validation_errors: u64,
    pub contracts: u32,
    pub pipelines: u32,
    pub days: u32,
    pub batch: usize,
    pub seconds: f64,
    pub db_bytes: u64,
    pub run_statuses: Vec<(String, u64)>,
    pub validation_statuses: Vec<(String, u64)>,
}

pub struct ScenarioRow {
    pub result: ScenarioResult,
    pub rss_after_kib: u64,
    pub hwm_after_kib: u64,
    /// 100 = one core busy for the whole scenario.
    pub server_cpu_pct: f64,
    /// The part of `server_cpu_pct` spent in the kernel.
    pub server_sys_pct: f64,
    pub client_cpu_pct: f64,
}

pub struct Report {
    pub when: String,
    pub machine: Machine,
    pub flags: String,
    pub connections: usize,
    pub seconds: f64,
    pub durability: String,
    pub client_threads: usize,
    pub fill: Fill,
    pub raw_insert_schema: Rate,
    pub raw_insert_bare: Rate,
    /// Into the filled file, after the load; `None` if not measured.
    pub raw_insert_filled: Option<Rate>,
    pub raw_pk_read: Rate,
    pub server_bin: String,
    pub ready_ms: f64,
    pub idle_rss_kib: u64,
    pub idle_hwm_kib: u64,
    pub final_hwm_kib: u64,
    pub stop: String,
    pub log: LogSummary,
    pub scenarios: Vec<ScenarioRow>,
}

pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

pub fn r1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

pub fn r2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

pub struct Verdict {
    pub target: String,
    pub measured: String,
    pub met: Option<bool>,
}

impl Report {
    fn scenario(&self, name: &str) -> Option<&ScenarioRow> {
        self.scenarios.iter().find(|s| s.result.name == name)
    }

    pub fn create_ratio(&self) -> Option<f64> {
        self.scenario("create_run")
            .map(|s| s.result.per_sec() / self.raw_insert_schema.per_sec())
    }

    pub fn create_ratio_bare(&self) -> Option<f64> {
        self.scenario("create_run")
            .map(|s| s.result.per_sec() / self.raw_insert_bare.per_sec())
    }

    pub fn get_ratio(&self) -> Option<f64> {
        self.scenario("get_run")
            .map(|s| s.result.per_sec() / self.raw_pk_read.per_sec())
    }

    pub fn verdicts(&self) -> Vec<Verdict> {
        let mut v = Vec::new();
        v.extend(self.create_verdict());
        v.extend(self.p99_verdict());
        v.extend(self.list_verdicts());
        v.extend(self.ui_verdicts());
        v.push(Verdict {
            target: "idle RSS < 30 MB".into(),
            measured: format!("{:.1} MiB VmRSS after ready", mib(self.idle_rss_kib)),
            met: Some(mib(self.idle_rss_kib) < 30.0),
        });
        v
    }

    fn create_verdict(&self) -> Option<Verdict> {
        let r = self.create_ratio()?;
        Some(Verdict {
            target: "create throughput >= 60% of raw one-row-per-commit rate".into(),
            measured: format!(
                "{:.0}% ({:.0} vs {:.0} commits/s; {:.0}% of the PK-only table's {:.0}/s)",
                r * 100.0,
                self.scenario("create_run")
                    .map_or(0.0, |s| s.result.per_sec()),
                self.raw_insert_schema.per_sec(),
                self.create_ratio_bare().unwrap_or(0.0) * 100.0,
                self.raw_insert_bare.per_sec(),
            ),
            met: Some(r >= 0.6),
        })
    }

    fn p99_verdict(&self) -> Option<Verdict> {
        let p99 = |s: &ScenarioRow| quantile_ms(&s.result.latencies_us, 0.99);
        let at16 = if self.connections == 16 {
            String::new()
        } else {
            format!(" (measured at {} connections, not 16)", self.connections)
        };
        let worst = self
            .scenarios
            .iter()
            .max_by(|a, b| p99(a).total_cmp(&p99(b)))?;
        let over: Vec<String> = self
            .scenarios
            .iter()
            .filter(|s| p99(s) >= 20.0)
            .map(|s| format!("{} {:.1} ms", s.result.name, p99(s)))
            .collect();
        Some(Verdict {
            target: "p99 < 20 ms for every scenario at 16 connections".into(),
            measured: if over.is_empty() {
                format!(
                    "worst p99 {:.1} ms ({}){at16}",
                    p99(worst),
                    worst.result.name
                )
            } else {
                format!("over 20 ms: {}{at16}", over.join(", "))
            },
            met: Some(over.is_empty()),
        })
    }

    /// Issue 13: dashboard pages render in under 50 ms at 1M runs; the
    /// median is the page a person typically waits for, under the load of
    /// every connection asking at once.
    fn ui_verdicts(&self) -> Vec<Verdict> {
        let on = if self.fill.runs == 1_000_000 {
            String::new()
        } else {
            format!(" (measured on {} runs, not 1M)", self.fill.runs)
        };
        ["ui_front", "ui_runs", "ui_run", "ui_contract"]
            .into_iter()
            .filter_map(|name| {
                let s = self.scenario(name)?;
                let p50 = quantile_ms(&s.result.latencies_us, 0.5);
                Some(Verdict {
                    target: format!("dashboard page p50 < 50 ms on 1M runs: {name}"),
                    measured: format!("p50 {p50:.2} ms{on}"),
                    met: Some(p50 < 50.0),
                })
            })
            .collect()
    }

    fn list_verdicts(&self) -> Vec<Verdict> {
        let on = if self.fill.runs == 1_000_000 {
            String::new()
        } else {
            format!(" (measured on {} runs, not 1M)", self.fill.runs)
        };
        [
            "list_contract_status",
            "list_date_range",
            "list_all",
            "list_status",
            "list_pipeline_status",
            "list_deep_offset",
            "list_deep_cursor",
            "list_validations",
            "list_validations_status",
        ]
        .into_iter()
        .filter_map(|name| {
            let s = self.scenario(name)?;
            let p50 = quantile_ms(&s.result.latencies_us, 0.5);
            Some(Verdict {
                target: format!("filtered list p50 < 5 ms on 1M runs: {name}"),
                measured: format!("p50 {p50:.2} ms{on}"),
                met: Some(p50 < 5.0),
            })
        })
        .collect()
    }

    pub fn markdown(&self) -> String {
        let mut o = String::new();
        self.md_head(&mut o);
        self.md_fill(&mut o);
        self.md_server(&mut o);
        self.md_raw(&mut o);
        self.md_http(&mut o);
        if let Some(mixed) = self.scenario("mixed") {
            md_per_op(&mut o, mixed);
        }
        self.md_ratios(&mut o);
        self.md_targets(&mut o);
        self.md_errors(&mut o);
        self.md_log(&mut o);
        o
    }

    fn md_head(&self, o: &mut String) {
        let m = &self.machine;
        let _ = writeln!(o, "# griot-bench results ({})\n", self.when);
        let _ = writeln!(
            o,
            "Machine: {} × {} (nproc {}), {:.1} GiB RAM, Linux {}; temp files in {} ({}).\n",
            m.nproc,
            m.cpu_model,
            m.nproc,
            m.mem_total_kib as f64 / 1024.0 / 1024.0,
            m.kernel,
            m.tmp_dir,
            m.tmp_fs
        );
        let _ = writeln!(o, "Flags: `{}`\n", self.flags);
        let _ = writeln!(o, "Server: `{}`\n", self.server_bin);
    }

    fn md_fill(&self, o: &mut String) {
        let f = &self.fill;
        let _ = writeln!(
            o,
            "## Fill (through `Store::write_blocking`, {} runs per transaction)\n",
            f.batch
        );
        md_table_head(
            o,
            "| runs | validations | error rows | contracts | pipelines | days | fill time | runs/s | DB size |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        );
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} | {:.1} s | {:.0} | {:.0} MiB |\n",
            f.runs,
            f.validations,
            f.validation_errors,
            f.contracts,
            f.pipelines,
            f.days,
            f.seconds,
            f.runs as f64 / f.seconds.max(1e-9),
            f.db_bytes as f64 / 1024.0 / 1024.0
        );
        let list = |v: &[(String, u64)]| {
            v.iter()
                .map(|(s, n)| format!("{s} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(
            o,
            "Run statuses: {}. Validation statuses: {}.\n",
            list(&f.run_statuses),
            list(&f.validation_statuses)
        );
    }

    fn md_server(&self, o: &mut String) {
        let _ = writeln!(o, "## Server start and memory\n");
        md_table_head(
            o,
            "| spawn to 200 on /health/ready | idle VmRSS | VmHWM at the end | stop |",
            "|---:|---:|---:|---|",
        );
        let _ = writeln!(
            o,
            "| {:.0} ms | {:.1} MiB | {:.1} MiB | {} |\n",
            self.ready_ms,
            mib(self.idle_rss_kib),
            mib(self.final_hwm_kib),
            self.stop
        );
    }

    fn md_raw(&self, o: &mut String) {
        let _ = writeln!(
            o,
            "## Physical limits (rusqlite directly, same pragmas, durability {})\n",
            self.durability
        );
        md_table_head(
            o,
            "| measurement | operations | per second |",
            "|---|---:|---:|",
        );
        for (what, r) in [
            (
                "one-row INSERT, own BEGIN IMMEDIATE/COMMIT, `runs` from schema.sql (its CHECKs and all its indexes; no run_events row), fresh file",
                &self.raw_insert_schema,
            ),
            (
                "one-row INSERT, own BEGIN IMMEDIATE/COMMIT, `runs` columns + primary key only, fresh file",
                &self.raw_insert_bare,
            ),
            (
                "SELECT one `runs` row by primary key, random ids, filled DB, 1 connection",
                &self.raw_pk_read,
            ),
        ] {
            let _ = writeln!(o, "| {what} | {} | {:.0} |", r.ops, r.per_sec());
        }
        if let Some(r) = &self.raw_insert_filled {
            let _ = writeln!(
                o,
                "| one-row INSERT, own BEGIN IMMEDIATE/COMMIT, `runs` of the filled file, after the load | {} | {:.0} |",
                r.ops,
                r.per_sec()
            );
        }
        let _ = writeln!(o);
    }

    fn md_http(&self, o: &mut String) {
        let _ = writeln!(
            o,
            "## HTTP load ({} keep-alive connections, {} s per scenario, client on {} thread{})\n",
            self.connections,
            self.seconds,
            self.client_threads,
            if self.client_threads == 1 { "" } else { "s" }
        );
        md_table_head(
            o,
            "| scenario | requests | req/s | p50 ms | p90 ms | p99 ms | max ms | errors | server VmHWM after | server VmRSS after | server CPU (of it kernel) | client CPU |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        );
        for s in &self.scenarios {
            let r = &s.result;
            let errors = if r.counts.errors.is_empty() {
                "0".to_owned()
            } else {
                r.counts
                    .errors
                    .iter()
                    .map(|(k, n)| format!("{n} × {k}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            };
            let _ = writeln!(
                o,
                "| {} | {} | {:.0} | {} | {} | {:.1} MiB | {:.1} MiB | {:.0}% ({:.0}%) | {:.0}% |",
                r.name,
                r.counts.answered,
                r.per_sec(),
                latency_cells(&r.latencies_us),
                errors,
                mib(s.hwm_after_kib),
                mib(s.rss_after_kib),
                s.server_cpu_pct,
                s.server_sys_pct,
                s.client_cpu_pct
            );
        }
        let _ = writeln!(
            o,
            "\nCPU: 100% = one core busy for the whole scenario; in brackets the server's time in the kernel (syscalls: network, file reads, fsync). Latency is from writing the request to reading the last body byte, for every answered request. VmHWM is the server's peak RSS since it started, so it only grows.\n"
        );
    }

    fn md_ratios(&self, o: &mut String) {
        let _ = writeln!(o, "## Ratios to the physical limits\n");
        if let Some(r) = self.create_ratio() {
            let _ = writeln!(
                o,
                "- create_run: {:.0}% of the raw one-row-per-commit rate on the real `runs` table ({:.0}% of the PK-only table's rate).",
                r * 100.0,
                self.create_ratio_bare().unwrap_or(0.0) * 100.0
            );
        }
        if let Some(r) = self.get_ratio() {
            let _ = writeln!(
                o,
                "- get_run: {:.0}% of the raw primary-key read rate (one connection, no HTTP).",
                r * 100.0
            );
        }
        let _ = writeln!(o);
    }

    fn md_targets(&self, o: &mut String) {
        let _ = writeln!(o, "## Targets\n");
        md_table_head(o, "| target | measured | verdict |", "|---|---|---|");
        for v in self.verdicts() {
            let verdict = match v.met {
                Some(true) => "met",
                Some(false) => "MISSED",
                None => "n/a",
            };
            let _ = writeln!(o, "| {} | {} | {verdict} |", v.target, v.measured);
        }
        let _ = writeln!(o);
    }

    fn md_errors(&self, o: &mut String) {
        let samples: Vec<(String, String)> = self
            .scenarios
            .iter()
            .flat_map(|s| {
                s.result
                    .counts
                    .samples
                    .iter()
                    .map(move |(k, v)| (format!("{}: {k}", s.result.name), v.clone()))
            })
            .collect();
        if !samples.is_empty() {
            let _ = writeln!(o, "## Error samples (first body per kind)\n");
            for (k, v) in samples {
                let _ = writeln!(o, "- {k}: `{}`", v.replace('`', "'"));
            }
            let _ = writeln!(o);
        }
    }

    fn md_log(&self, o: &mut String) {
        let l = &self.log;
        let _ = writeln!(
            o,
            "Server log: {} request lines, {} with a 5xx status, {} WARN, {} ERROR.",
            l.request_lines, l.status_5xx, l.warn, l.error
        );
        for s in &l.samples {
            let _ = writeln!(o, "    {s}");
        }
    }

    pub fn json(&self) -> Value {
        let m = &self.machine;
        let rate = |r: &Rate| json!({"operations": r.ops, "seconds": r2(r.elapsed.as_secs_f64()), "per_sec": r1(r.per_sec())});
        let ratio = |r: Option<f64>| r.map(|r| (r * 1000.0).round() / 1000.0);
        json!({
            "when": self.when,
            "machine": m.json(),
            "flags": self.flags,
            "connections": self.connections,
            "seconds_per_scenario": self.seconds,
            "durability": self.durability,
            "client_threads": self.client_threads,
            "server_binary": self.server_bin,
            "fill": self.fill_json(),
            "server": self.server_json(),
            "raw": {
                "insert_one_row_per_commit_schema_runs": rate(&self.raw_insert_schema),
                "insert_one_row_per_commit_bare_runs": rate(&self.raw_insert_bare),
                "insert_one_row_per_commit_filled_runs": self.raw_insert_filled.as_ref().map(rate),
                "select_run_by_pk": rate(&self.raw_pk_read),
            },
            "scenarios": self.scenarios.iter().map(scenario_json).collect::<Vec<_>>(),
            "ratios": {
                "create_run_vs_raw_commit": ratio(self.create_ratio()),
                "create_run_vs_raw_commit_bare": ratio(self.create_ratio_bare()),
                "get_run_vs_raw_pk_read": ratio(self.get_ratio()),
            },
            "targets": self.verdicts().iter().map(|v| json!({
                "target": v.target, "measured": v.measured, "met": v.met,
            })).collect::<Vec<_>>(),
        })
    }

    fn fill_json(&self) -> Value {
        let f = &self.fill;
        let counts = |v: &[(String, u64)]| {
            v.iter()
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect::<serde_json::Map<_, _>>()
        };
        json!({
            "runs": f.runs,
            "validations": f.validations,
            "validation_error_rows": f.validation_errors,
            "contracts": f.contracts,
            "pipelines": f.pipelines,
            "days": f.days,
            "runs_per_transaction": f.batch,
            "seconds": r2(f.seconds),
            "runs_per_sec": r1(f.runs as f64 / f.seconds.max(1e-9)),
            "db_bytes": f.db_bytes,
            "run_statuses": counts(&f.run_statuses),
            "validation_statuses": counts(&f.validation_statuses),
        })
    }

    fn server_json(&self) -> Value {
        json!({
            "ready_ms": r1(self.ready_ms),
            "idle_vmrss_mib": r1(mib(self.idle_rss_kib)),
            "idle_vmhwm_mib": r1(mib(self.idle_hwm_kib)),
            "final_vmhwm_mib": r1(mib(self.final_hwm_kib)),
            "stop": self.stop,
            "log": {
                "request_lines": self.log.request_lines,
                "status_5xx_lines": self.log.status_5xx,
                "warn_lines": self.log.warn,
                "error_lines": self.log.error,
                "samples": self.log.samples,
            },
        })
    }
}

/// A markdown table's header row and alignment row.
fn md_table_head(o: &mut String, header: &str, align: &str) {
    let _ = writeln!(o, "{header}");
    let _ = writeln!(o, "{align}");
}

/// The p50, p90, p99 and max cells of a table row, in milliseconds.
fn latency_cells(sorted_us: &[u32]) -> String {
    [0.5, 0.9, 0.99, 1.0]
        .map(|q| format!("{:.2}", quantile_ms(sorted_us, q)))
        .join(" | ")
}

fn md_per_op(o: &mut String, mixed: &ScenarioRow) {
    let _ = writeln!(o, "### mixed, per operation\n");
    md_table_head(
        o,
        "| operation | requests | p50 ms | p90 ms | p99 ms | max ms | errors |",
        "|---|---:|---:|---:|---:|---:|---:|",
    );
    for p in &mixed.result.per_op {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} |",
            p.op.name(),
            p.latencies_us.len(),
            latency_cells(&p.latencies_us),
            p.errors
        );
    }
    let _ = writeln!(o);
}

fn latency_json(sorted_us: &[u32]) -> Value {
    json!({
        "p50_ms": r2(quantile_ms(sorted_us, 0.5)),
        "p90_ms": r2(quantile_ms(sorted_us, 0.9)),
        "p99_ms": r2(quantile_ms(sorted_us, 0.99)),
        "max_ms": r2(quantile_ms(sorted_us, 1.0)),
    })
}

pub fn scenario_json(s: &ScenarioRow) -> Value {
    let r = &s.result;
    json!({
        "name": r.name,
        "requests": r.counts.answered,
        "seconds": r2(r.elapsed.as_secs_f64()),
        "requests_per_sec": r1(r.per_sec()),
        "latency": latency_json(&r.latencies_us),
        "errors": r.counts.errors,
        "error_samples": r.counts.samples,
        "server_vmhwm_mib_after": r1(mib(s.hwm_after_kib)),
        "server_vmrss_mib_after": r1(mib(s.rss_after_kib)),
        "server_cpu_pct": r1(s.server_cpu_pct),
        "server_sys_cpu_pct": r1(s.server_sys_pct),
        "client_cpu_pct": r1(s.client_cpu_pct),
        "per_operation": r.per_op.iter().map(|p| json!({
            "operation": p.op.name(),
            "requests": p.latencies_us.len(),
            "errors": p.errors,
            "latency": latency_json(&p.latencies_us),
        })).collect::<Vec<_>>(),
    })
}
