//! Runs: create, read, change, heartbeat, list and wait.

use std::time::Duration;

use super::{
    App, AppError,
    webhooks::{Outbox, Subject},
};
use crate::{
    domain::{
        DomainError, Page, Position,
        event::RunEvent,
        idempotency::validate_key,
        keys::Caller,
        run::{
            LIVE_STATUSES, NewRunInput, Run, RunDetail, RunFilter, RunListItem, RunPatch,
            RunRecord, RunStatus,
        },
        webhooks::{EventType, run_status_event},
    },
    store::{Connection, StoreError, events, idempotency, runs, validations},
};

/// What a create did: made the run, or found the one an earlier request
/// with the same Idempotency-Key made.
pub struct Created {
    pub detail: RunDetail,
    pub replayed: bool,
}

/// Creates a run for `caller`. With an `idempotency_key`, a repeat of the
/// same request by the same key returns the run the first made, and the
/// same key with a different request is refused; both decided in the
/// transaction that creates, so two concurrent creates with one key make
/// one run.
pub async fn create(
    app: &App,
    caller: &Caller,
    input: NewRunInput,
    idempotency_key: Option<&str>,
) -> Result<Created, AppError> {
    let now = app.clock.now();
    let claim = idempotency_key
        .map(|key| {
            Ok::<_, DomainError>(Claim {
                api_key_id: caller.key_id,
                key: validate_key(key)?,
                request_hash: input.fingerprint(),
                since: now.plus_seconds(-app.settings.idempotency_retention_secs),
            })
        })
        .transpose()?;
    let run = input.into_run(&caller.name, now)?;
    // The size of a new run depends on the request alone, so it is checked
    // before the write is queued: nothing to undo, and the writer's time is
    // not spent on a refusal.
    app.settings.limits.check_new_run_metadata(&run.metadata)?;
    let outbox = app.outbox.clone();
    let (created, enqueued) = app
        .store
        .write(move |tx| create_once(tx, &outbox, run, claim.as_ref()))
        .await?;
    app.outbox.written(enqueued);
    Ok(created)
}

/// An Idempotency-Key as presented with a create.
struct Claim {
    api_key_id: i64,
    key: String,
    request_hash: String,
    /// Uses older than this are forgotten.
    since: crate::domain::time::Timestamp,
}

/// Creates the run (or finds the one its Idempotency-Key made), with its
/// creation event and its webhook messages; also says how many messages.
fn create_once(
    tx: &Connection,
    outbox: &Outbox,
    run: Run,
    claim: Option<&Claim>,
) -> Result<(Created, usize), AppError> {
    if let Some(c) = claim
        && let Some(prior) = idempotency::find(tx, c.api_key_id, &c.key, c.since)?
    {
        if prior.request_hash != c.request_hash {
            return Err(DomainError::invalid(format!(
                "Idempotency-Key '{}' was already used for a different request body; send a \
                 new key for a new run",
                c.key
            ))
            .into());
        }
        let created = Created {
            detail: detail(tx, &prior.run_id)?,
            replayed: true,
        };
        return Ok((created, 0));
    }
    runs::insert(tx, &run)?;
    events::append(tx, &RunEvent::created(&run))?;
    if let Some(c) = claim {
        idempotency::record(
            tx,
            c.api_key_id,
            &c.key,
            &c.request_hash,
            &run.id,
            run.updated_at,
        )?;
    }
    let detail = RunDetail {
        run,
        validations: Vec::new(),
    };
    // A run reported after the fact in a final status is both created and
    // finished.
    let enqueued = outbox.enqueue(
        tx,
        Subject::Run(&detail),
        &[
            &[EventType::RunCreated],
            run_status_event(detail.run.status, false),
        ],
        detail.run.updated_at,
    )?;
    let created = Created {
        detail,
        replayed: false,
    };
    Ok((created, enqueued))
}

/// The run with its validations, oldest first.
fn detail(conn: &Connection, id: &str) -> Result<RunDetail, AppError> {
    let run = found(conn, id)?;
    let validations = validations::refs_for_run(conn, id)?;
    Ok(RunDetail { run, validations })
}

fn found(conn: &Connection, id: &str) -> Result<Run, AppError> {
    runs::find(conn, id)?.ok_or_else(|| AppError::not_found("Run", id))
}

pub async fn get(app: &App, id: String) -> Result<RunDetail, AppError> {
    app.store.read(move |c| detail(c, &id)).await
}

/// [`get`], the run as reads answer with it: nothing parsed. Read on the
/// async worker itself when the run has at most `INLINE_VALIDATIONS`
/// validations (`Store::read_bounded`).
pub async fn get_record(app: &App, id: String) -> Result<RunDetail<RunRecord>, AppError> {
    let inline_id = id.clone();
    let whole_id = id.clone();
    app.store
        .read_bounded(
            move |c| record_upto(c, &inline_id, INLINE_VALIDATIONS),
            move |c| Ok::<_, AppError>(record_upto(c, &whole_id, usize::MAX)?.flatten()),
        )
        .await?
        .ok_or_else(|| AppError::not_found("Run", &id))
}

/// The run as reads answer with it, if it has at most `max` validations:
/// `None` when it has more, `Some(None)` when there is no such run. Its
/// validations are read in the run's snapshot (`runs::with_record`), and
/// not at all when its counts say it has none.
fn record_upto(
    c: &Connection,
    id: &str,
    max: usize,
) -> Result<Option<Option<RunDetail<RunRecord>>>, StoreError> {
    let read = runs::with_record(c, id, |run, count| {
        let validations = match count {
            0 => Some(Vec::new()),
            n if n > max as u64 => None,
            _ => validations::refs_for_run_upto(c, id, max)?,
        };
        Ok(validations.map(|validations| RunDetail { run, validations }))
    })?;
    Ok(match read {
        None => Some(None),
        Some(detail) => detail.map(Some),
    })
}

/// The most validations a get run reads on the async worker; a run with
/// more is read on the read threads, under the query deadline.
const INLINE_VALIDATIONS: usize = 64;

/// Applies `patch` in one write transaction, so concurrent patches of one
/// run each see the other's result: no metadata key is lost to a race. The
/// change and its event are written together. With `accepted_versions`
/// (If-Match), a run at none of them is refused. The merged metadata is
/// checked against the limits on the row as stored, so a refused patch
/// leaves the run and its history as they were.
pub async fn update(
    app: &App,
    caller: &Caller,
    id: String,
    patch: RunPatch,
    accepted_versions: Option<Vec<i64>>,
) -> Result<RunDetail, AppError> {
    let patch = patch.validated()?;
    let now = app.clock.now();
    let limits = app.settings.limits;
    let actor = caller.name.clone();
    let outbox = app.outbox.clone();
    let (detail, enqueued) = app
        .store
        .write(move |tx| {
            let mut run = found(tx, &id)?;
            run.check_version(accepted_versions.as_deref())?;
            let stored = run.clone();
            let changed = patch.apply(&mut run, now)?;
            if patch.metadata.is_some() {
                limits.check_merged_metadata(&stored.metadata, &run.metadata)?;
            }
            // A repeated update of a final run changes nothing, not even the
            // heartbeat: nothing to write.
            if run != stored {
                runs::save(tx, &run)?;
            }
            if changed {
                events::append(
                    tx,
                    &RunEvent::for_update(
                        &id,
                        stored.status,
                        run.status,
                        patch.changes(),
                        &actor,
                        now,
                    ),
                )?;
            }
            let validations = validations::refs_for_run(tx, &id)?;
            let detail = RunDetail { run, validations };
            let enqueued = if detail.run.status == stored.status {
                0
            } else {
                outbox.enqueue(
                    tx,
                    Subject::Run(&detail),
                    &[run_status_event(detail.run.status, false)],
                    now,
                )?
            };
            Ok::<_, AppError>((detail, enqueued))
        })
        .await?;
    app.outbox.written(enqueued);
    if detail.run.status.is_final() {
        app.watch.finished(&detail.run.id);
    }
    Ok(detail)
}

/// Records a sign of life from a pending or running run.
pub async fn heartbeat(app: &App, id: String) -> Result<RunDetail, AppError> {
    let now = app.clock.now();
    app.store
        .write(move |tx| {
            let mut run = found(tx, &id)?;
            run.beat(now)?;
            runs::save(tx, &run)?;
            let validations = validations::refs_for_run(tx, &id)?;
            Ok(RunDetail { run, validations })
        })
        .await
}

/// A run's history, oldest first.
pub async fn events(app: &App, id: String, page: (u32, u64)) -> Result<Page<RunEvent>, AppError> {
    let max_bytes = app.settings.limits.max_page_bytes;
    app.store
        .read(move |c| {
            if runs::contract_of(c, &id)?.is_none() {
                return Err(AppError::not_found("Run", &id));
            }
            Ok(events::list(c, &id, page, max_bytes)?)
        })
        .await
}

/// Runs matching `filter`, newest first, each with its validation counts.
/// `stale` asks for live runs whose heartbeat is overdue now.
pub async fn list(
    app: &App,
    filter: RunFilter,
    stale: bool,
    page: (u32, Position),
) -> Result<Page<RunListItem>, AppError> {
    list_as(app, (filter, stale), page, runs::list).await
}

/// [`list`], each run as reads answer with it: nothing parsed.
pub async fn list_records(
    app: &App,
    filter: RunFilter,
    stale: bool,
    page: (u32, Position),
) -> Result<Page<RunListItem<RunRecord>>, AppError> {
    list_as(app, (filter, stale), page, runs::list_records).await
}

type ListRuns<R> = fn(
    &Connection,
    &RunFilter,
    &[RunStatus],
    (u32, &Position),
    usize,
) -> Result<Page<RunListItem<R>>, StoreError>;

async fn list_as<R: Send + 'static>(
    app: &App,
    (mut filter, stale): (RunFilter, bool),
    page: (u32, Position),
    list: ListRuns<R>,
) -> Result<Page<RunListItem<R>>, AppError> {
    filter.stale_at = stale.then(|| app.clock.now());
    let max_bytes = app.settings.limits.max_page_bytes;
    Ok(app
        .store
        .read(move |c| list(c, &filter, LIVE_STATUSES, (page.0, &page.1), max_bytes))
        .await?)
}

/// How many runs a contract has in each status, every status listed (0
/// when none).
pub async fn status_counts(
    app: &App,
    contract_id: String,
) -> Result<Vec<(RunStatus, u64)>, AppError> {
    let found = app
        .store
        .read(move |c| runs::count_by_status_of_contract(c, &contract_id))
        .await?;
    Ok(RunStatus::ALL
        .into_iter()
        .map(|s| (s, found.iter().find(|f| f.0 == s).map_or(0, |f| f.1)))
        .collect())
}

/// How a wait ended.
pub struct Waited {
    /// True when the run is final; false when time ran out or the server is
    /// shutting down.
    pub done: bool,
    pub detail: RunDetail,
}

/// Answers as soon as the run is final, after `timeout` with the run as it
/// is then, or at once when the server is shutting down. Waiting holds no
/// thread and no database connection.
pub async fn wait(app: &App, id: String, timeout: Duration) -> Result<Waited, AppError> {
    // Subscribe before reading, so a finish between the read and the wait
    // is not missed.
    let mut finished = app.watch.subscribe();
    let stopping = app.watch.stopping();
    tokio::pin!(stopping);
    let mut stopped = false;
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let detail = get(app, id.clone()).await?;
        let done = detail.run.status.is_final();
        if done || stopped || tokio::time::Instant::now() >= deadline {
            return Ok(Waited { done, detail });
        }
        // Sleep until this run finishes (or we fell behind and must look
        // again), or the time is up.
        loop {
            tokio::select! {
                msg = finished.recv() => match msg {
                    Ok(other) if other != id => continue,
                    _ => break,
                },
                () = tokio::time::sleep_until(deadline) => break,
                () = &mut stopping => {
                    stopped = true;
                    break;
                }
            }
        }
    }
}
