//! The Runs API: create, read, update and list pipeline runs.

use std::time::Duration;

use poem::{Request, web::Data};
use poem_openapi::{
    ApiResponse, Object, OpenApi,
    param::{Header, Path, Query},
    payload::Json,
    registry::Registry,
};

use serde::Deserialize;

use super::{
    ApiTags, answered_limit,
    auth::{ApiKeyAuth, ReadAccess},
    body::JsonBody,
    default_limit,
    enums::RunStatusBody,
    page_bounds, samples,
    types::{DateFilter, DateTime, JsonObject, Name, OneOf, self_valued_type},
    validations::{ValidationRefBody, ValidationSummaryBody, write_ref, write_summary},
    written::{self, JsonBytes, Obj, object},
};
use super::{
    auth,
    error::{ApiError, OpError, can},
};
use crate::{
    app::{self, App},
    domain::text::filter_value,
    domain::{Cursor, Page, time::TimeText},
    domain::{
        event::RunEvent,
        idempotency::malformed_key,
        run::{NewRunInput, Run, RunDetail, RunFilter, RunListItem, RunPatch, RunRecord},
    },
};

/// A new run. Unknown fields are refused, so a typo is reported rather than
/// ignored.
#[derive(Object, Deserialize, Debug)]
#[oai(rename = "CreateRunRequest", deny_unknown_fields, example)]
#[serde(deny_unknown_fields)]
pub struct CreateRunRequest {
    /// The data contract the pipeline loads data under. Required, not empty.
    pub contract_id: Name,
    /// The pipeline's name, such as an Airflow DAG id or a dbt project.
    #[oai(nullable)]
    pub pipeline_name: Option<Name>,
    /// The orchestrator's own id for this execution (an Airflow run_id).
    #[oai(nullable)]
    pub pipeline_id: Option<Name>,
    /// Initial status; `pending` when omitted.
    #[oai(nullable)]
    pub status: Option<RunStatusBody>,
    /// Free-form JSON object kept with the run.
    #[oai(nullable)]
    pub metadata: Option<JsonObject>,
    /// When the run started, to backfill a historical run; the time of the
    /// request when omitted. RFC 3339; without an offset it is taken as UTC.
    #[oai(nullable)]
    pub started_at: Option<DateTime>,
    /// When the run finished; only with a final status, for backfills. The
    /// time of the request when omitted.
    #[oai(nullable)]
    pub completed_at: Option<DateTime>,
    /// Fail the run automatically when it is pending or running and nothing
    /// (a heartbeat or an update) was heard from it for this many seconds
    /// (1 to 604800). No timeout when omitted.
    // The domain's MIN/MAX_HEARTBEAT_TIMEOUT_SECS: validators take only
    // literals, so tests/constraints.rs ties them.
    #[oai(nullable, validator(minimum(value = "1"), maximum(value = "604800")))]
    pub heartbeat_timeout_seconds: Option<u32>,
}

/// Changes to a run. Give at least one field; an absent field and a null
/// one both leave the stored value as it is. Unknown fields are refused.
#[derive(Object, Deserialize, Debug)]
#[oai(rename = "UpdateRunRequest", deny_unknown_fields, example)]
#[serde(deny_unknown_fields)]
pub struct UpdateRunRequest {
    /// The new status. A final status (`completed`, `failed`, `cancelled`)
    /// cannot be left; repeating the current status changes nothing.
    #[oai(nullable)]
    pub status: Option<RunStatusBody>,
    /// Merged into the stored metadata as a JSON merge patch (RFC 7396):
    /// given keys are set, keys given as null are removed, others stay.
    #[oai(nullable)]
    pub metadata: Option<JsonObject>,
    /// A new pipeline name.
    #[oai(nullable)]
    pub pipeline_name: Option<Name>,
    /// A new heartbeat timeout in seconds (up to 604800); 0 removes it.
    // MAX_HEARTBEAT_TIMEOUT_SECS, tied by tests/constraints.rs.
    #[oai(nullable, validator(maximum(value = "604800")))]
    pub heartbeat_timeout_seconds: Option<u32>,
    /// A new external pipeline id.
    #[oai(nullable)]
    pub pipeline_id: Option<Name>,
}

/// `UpdateRunRequest` as the spec publishes it: with `minProperties: 1`,
/// which the derived schema cannot say, so that `{}` is documented as the
/// refusal it is.
pub struct UpdateRunBody(pub UpdateRunRequest);

self_valued_type!(
    UpdateRunBody,
    name = UpdateRunRequest::name(),
    schema = UpdateRunRequest::schema_ref(),
    register = |registry: &mut Registry| {
        UpdateRunRequest::register(registry);
        if let Some(schema) = registry.schemas.get_mut(UpdateRunRequest::name().as_ref()) {
            schema.min_properties = Some(1);
        }
    },
);

impl<'de> Deserialize<'de> for UpdateRunBody {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        UpdateRunRequest::deserialize(d).map(UpdateRunBody)
    }
}

/// The fields every view of a run carries.
#[derive(Object, Debug)]
#[oai(rename = "RunFields")]
pub struct RunFields {
    /// Server-generated: `run_` followed by a ULID, so ids sort by creation.
    pub id: String,
    /// The data contract the run is about.
    pub contract_id: String,
    /// The pipeline's name, if reported.
    #[oai(nullable)]
    pub pipeline_name: Option<String>,
    /// The orchestrator's id for this execution, if reported.
    #[oai(nullable)]
    pub pipeline_id: Option<String>,
    pub status: RunStatusBody,
    /// Free-form metadata; `{}` when none was given.
    pub metadata: JsonObject,
    /// When the run started (RFC 3339, UTC).
    pub started_at: DateTime,
    /// When the run reached a final status; null while pending or running.
    #[oai(nullable)]
    pub completed_at: Option<DateTime>,
    /// The name of the API key that created the run.
    pub created_by: String,
    /// When the run last changed.
    pub updated_at: DateTime,
    /// Grows by one with every change (not with heartbeats). Send it back in
    /// `If-Match` to update only the version you read; also the ETag.
    pub version: i64,
    /// Seconds of silence after which a pending or running run is failed.
    #[oai(nullable)]
    pub heartbeat_timeout_seconds: Option<u32>,
    /// The last heartbeat or update while the run was live.
    #[oai(nullable)]
    pub last_heartbeat_at: Option<DateTime>,
    /// When the run will be failed if nothing is heard from it; null for
    /// final runs and runs without a timeout.
    #[oai(nullable)]
    pub heartbeat_deadline: Option<DateTime>,
}

impl From<Run> for RunFields {
    fn from(r: Run) -> Self {
        let heartbeat_deadline = r.heartbeat_deadline().map(Into::into);
        Self {
            version: r.version,
            heartbeat_timeout_seconds: r.heartbeat_timeout_seconds,
            last_heartbeat_at: r.last_heartbeat_at.map(Into::into),
            heartbeat_deadline,
            id: r.id,
            contract_id: r.contract_id,
            pipeline_name: r.pipeline_name,
            pipeline_id: r.pipeline_id,
            status: r.status.into(),
            metadata: JsonObject(r.metadata),
            started_at: r.started_at.into(),
            completed_at: r.completed_at.map(Into::into),
            created_by: r.created_by,
            updated_at: r.updated_at.into(),
        }
    }
}

fn time(t: &Option<TimeText>) -> Option<&str> {
    t.as_ref().map(|t| t.0.as_str())
}

/// Writes a stored run as [`RunFields`], in its field order.
fn write_fields(o: &mut Obj<'_>, r: &RunRecord) {
    o.str("id", &r.id)
        .str("contract_id", &r.contract_id)
        .opt_str("pipeline_name", r.pipeline_name.as_deref())
        .opt_str("pipeline_id", r.pipeline_id.as_deref())
        .str("status", r.status.as_str())
        .raw("metadata", &r.metadata.0)
        .str("started_at", &r.started_at.0)
        .opt_str("completed_at", time(&r.completed_at))
        .str("created_by", &r.created_by)
        .str("updated_at", &r.updated_at.0)
        .num("version", r.version)
        .opt_num("heartbeat_timeout_seconds", r.heartbeat_timeout_seconds)
        .opt_str("last_heartbeat_at", time(&r.last_heartbeat_at))
        .opt_str("heartbeat_deadline", time(&r.heartbeat_deadline));
}

/// A stored run with its validations, as [`RunBody`].
fn write_run(d: &RunDetail<RunRecord>) -> JsonBytes<RunBody> {
    JsonBytes::written(object(1024 + d.run.metadata.0.len(), |o| {
        write_fields(o, &d.run);
        o.list("validations", &d.validations, write_ref);
    }))
}

/// A page of stored runs, as [`RunPage`].
fn write_page(
    page: &Page<RunListItem<RunRecord>>,
    at: (u32, u64),
    next_cursor: Option<&str>,
) -> JsonBytes<RunPage> {
    let size = |i: &RunListItem<RunRecord>| 700 + i.run.metadata.0.len();
    JsonBytes::written(written::page(page, at, next_cursor, size, |o, item| {
        write_fields(o, &item.run);
        o.obj("validation_summary", |o| {
            write_summary(o, &item.validation_summary)
        });
    }))
}

/// A run with every validation recorded during it.
#[derive(Object, Debug)]
#[oai(rename = "Run", example)]
pub struct RunBody {
    #[oai(flatten)]
    pub fields: RunFields,
    /// The run's validations, oldest first.
    pub validations: Vec<ValidationRefBody>,
}

impl From<RunDetail> for RunBody {
    fn from(d: RunDetail) -> Self {
        Self {
            fields: d.run.into(),
            validations: d.validations.into_iter().map(Into::into).collect(),
        }
    }
}

/// A run as lists show it: with counts of its validations per status
/// instead of the validations themselves.
#[derive(Object, Debug)]
#[oai(rename = "RunListItem", example)]
pub struct RunListItemBody {
    #[oai(flatten)]
    pub fields: RunFields,
    pub validation_summary: ValidationSummaryBody,
}

impl From<RunListItem> for RunListItemBody {
    fn from(i: RunListItem) -> Self {
        Self {
            fields: i.run.into(),
            validation_summary: i.validation_summary.into(),
        }
    }
}

/// One page of runs.
#[derive(Object, Debug)]
#[oai(rename = "RunPage", example)]
pub struct RunPage {
    /// Newest `started_at` first; runs that started together are ordered by
    /// id, so paging never skips or repeats a run.
    pub items: Vec<RunListItemBody>,
    /// How many runs match the filters, across all pages.
    pub total: u64,
    /// The page size asked for, or the number of items when `truncated`.
    pub limit: u32,
    pub offset: u64,
    /// True when the page holds fewer than the `limit` asked for because
    /// its items reached the server's byte budget (`--max-page-bytes`);
    /// `limit` then says how many it holds. More items may follow: the
    /// next page starts at `offset + limit`.
    pub truncated: bool,
    /// Pass it as `cursor` for the page after this one:
    /// each page then costs the same however deep, and runs created
    /// meanwhile neither shift nor repeat what follows. Null on the last
    /// page.
    #[oai(nullable)]
    pub next_cursor: Option<String>,
}

#[derive(ApiResponse)]
enum CreatedRun {
    /// The run was created.
    #[oai(status = 201)]
    Created(
        JsonBytes<RunBody>,
        /// The run's version, quoted (`"1"`): send it back in `If-Match`.
        #[oai(header = "ETag")]
        String,
    ),
    /// The Idempotency-Key already created this run for the same request:
    /// nothing new was created, and this is that run as it is now.
    #[oai(status = 200)]
    Replayed(
        JsonBytes<RunBody>,
        /// `true`: this answer replays an earlier create.
        #[oai(header = "Idempotent-Replayed")]
        String,
        /// The run's version, quoted: send it back in `If-Match`.
        #[oai(header = "ETag")]
        String,
    ),
}

#[derive(ApiResponse)]
enum TaggedRun {
    /// The run; its ETag is its version.
    #[oai(status = 200)]
    Ok(
        JsonBytes<RunBody>,
        /// The run's version, quoted (`"2"`): send it back in `If-Match`.
        #[oai(header = "ETag")]
        String,
    ),
}

fn etag(version: i64) -> String {
    format!("\"{version}\"")
}

impl TaggedRun {
    fn of(detail: RunDetail) -> Self {
        Self::of_record(&detail.record())
    }

    fn of_record(detail: &RunDetail<RunRecord>) -> Self {
        TaggedRun::Ok(write_run(detail), etag(detail.run.version))
    }
}

/// The versions an If-Match header accepts; None when any will do (no
/// header, or `*`). It may list several tags. A weak tag (`W/"3"`) never
/// matches If-Match (RFC 9110, 13.1.1); a bare `3` is read as `"3"`.
fn accepted_versions(if_match: Option<&str>) -> Result<Option<Vec<i64>>, ApiError> {
    let Some(raw) = if_match.map(str::trim) else {
        return Ok(None);
    };
    if raw == "*" {
        return Ok(None);
    }
    let mut versions = Vec::new();
    for tag in raw.split(',').map(str::trim) {
        let (weak, tag) = match tag.strip_prefix("W/") {
            Some(rest) => (true, rest),
            None => (false, tag),
        };
        let bare = tag
            .strip_prefix('"')
            .and_then(|t| t.strip_suffix('"'))
            .unwrap_or(tag);
        let version = bare.parse::<i64>().map_err(|_| {
            ApiError::validation(format!(
                "If-Match must hold run versions as sent in the ETag header (for example \
                 \"3\"), not {raw}"
            ))
        })?;
        if !weak {
            versions.push(version);
        }
    }
    Ok(Some(versions))
}

/// A run's history.
#[derive(Object, Debug)]
#[oai(rename = "RunEvent", example)]
pub struct RunEventBody {
    /// Increases with every event, across all runs.
    pub id: i64,
    pub run_id: String,
    /// `created`, `status_changed`, `updated` or `heartbeat_expired`.
    #[oai(rename = "type")]
    pub event_type: String,
    #[oai(nullable)]
    pub from_status: Option<RunStatusBody>,
    #[oai(nullable)]
    pub to_status: Option<RunStatusBody>,
    /// What the change asked for: the fields of the update, as sent.
    pub changes: JsonObject,
    /// The name of the API key that made the change, or `system`.
    pub actor: String,
    pub occurred_at: DateTime,
}

impl From<RunEvent> for RunEventBody {
    fn from(e: RunEvent) -> Self {
        Self {
            id: e.id,
            run_id: e.run_id,
            event_type: e.event_type.as_str().to_owned(),
            from_status: e.from_status.map(Into::into),
            to_status: e.to_status.map(Into::into),
            changes: JsonObject(e.changes),
            actor: e.actor,
            occurred_at: e.occurred_at.into(),
        }
    }
}

/// One page of a run's events, oldest first.
#[derive(Object, Debug)]
#[oai(rename = "RunEventPage", example)]
pub struct RunEventPage {
    pub items: Vec<RunEventBody>,
    pub total: u64,
    /// The page size asked for, or the number of items when `truncated`.
    pub limit: u32,
    pub offset: u64,
    /// True when the page holds fewer than the `limit` asked for because
    /// its items reached the server's byte budget (`--max-page-bytes`);
    /// `limit` then says how many it holds. More items may follow: the
    /// next page starts at `offset + limit`.
    pub truncated: bool,
}

/// The answer of a wait.
#[derive(Object, Debug)]
#[oai(rename = "RunWait", example)]
pub struct RunWaitBody {
    /// True when the run is in a final status; false when the wait timed
    /// out first, or the server is shutting down.
    pub done: bool,
    pub run: RunBody,
}

fn default_wait() -> i64 {
    30
}

pub struct RunsApi;

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Runs")]
impl RunsApi {
    /// Create a run
    ///
    /// Records the start of a pipeline execution. Only `contract_id` is
    /// required; `status` defaults to `pending` and `started_at` to now.
    /// `created_by` is the name of the API key that sent the request.
    ///
    /// Send an `Idempotency-Key` header (for example a UUID made once per
    /// run you mean to create) to make retries safe: a repeat with the same
    /// key and body returns the run it created, with 200 and
    /// `Idempotent-Replayed: true`, and creates nothing; the same key with
    /// another body is a 422. Keys belong to the API key that sent them and
    /// are remembered for 24 hours (`--idempotency-retention-hours`).
    /// Metadata over the server's cap (256 KiB of JSON by default,
    /// `--max-metadata-bytes`) is refused with 422.
    #[oai(path = "/runs", method = "post", operation_id = "create_run")]
    async fn create_run(
        &self,
        auth: ApiKeyAuth,
        req: &Request,
        app: Data<&App>,
        // No example value: Swagger UI would send the same key on every
        // Execute, and every later create would replay the first run.
        /// Makes retries of this create safe: 1 to 255 printable ASCII
        /// characters, such as a UUID made once per run you mean to create.
        #[oai(name = "Idempotency-Key")]
        idempotency_key: Header<Option<String>>,
        body: JsonBody<CreateRunRequest>,
    ) -> Result<CreatedRun, OpError<{ can::WRITE | can::BODY | can::INTERNAL }>> {
        let caller = auth.writer()?;
        let b = body.0;
        let input = NewRunInput {
            contract_id: b.contract_id.0,
            pipeline_name: b.pipeline_name.map(|n| n.0),
            pipeline_id: b.pipeline_id.map(|n| n.0),
            status: b.status.map(Into::into),
            metadata: b.metadata.map(|m| m.0),
            started_at: b.started_at.map(|t| t.0),
            completed_at: b.completed_at.map(|t| t.0),
            heartbeat_timeout_seconds: b.heartbeat_timeout_seconds,
        };
        // A header that is there but not text (non-ASCII bytes) reaches us as
        // absent; it must be refused, not ignored.
        let idempotency_key = match idempotency_key.0 {
            None if req.headers().contains_key("Idempotency-Key") => {
                return Err(malformed_key().into());
            }
            key => key,
        };
        let created = app::runs::create(&app, &caller, input, idempotency_key.as_deref()).await?;
        let tag = etag(created.detail.run.version);
        let body = write_run(&created.detail.record());
        Ok(if created.replayed {
            CreatedRun::Replayed(body, "true".into(), tag)
        } else {
            CreatedRun::Created(body, tag)
        })
    }

    /// Get a run
    ///
    /// Returns the run with every validation recorded during it, oldest
    /// first.
    #[oai(path = "/runs/:run_id", method = "get", operation_id = "get_run")]
    async fn get_run(
        &self,
        access: ReadAccess,
        req: &Request,
        app: Data<&App>,
        /// The run's id, as returned when it was created.
        #[oai(example = "samples::run_id")]
        run_id: Path<String>,
    ) -> Result<TaggedRun, OpError<{ can::READ | can::NOT_FOUND | can::INTERNAL }>> {
        auth::read(&app, access, req).await?;
        let detail = app::runs::get_record(&app, run_id.0).await?;
        Ok(TaggedRun::of_record(&detail))
    }

    /// Update a run
    ///
    /// Changes a run's status, metadata or pipeline fields. Metadata is
    /// merged (RFC 7396), so keys given at creation stay unless removed with
    /// null. Status follows the run lifecycle: `pending` may become any
    /// other status, `running` may become `completed`, `failed` or
    /// `cancelled`, and those three are final (409 if asked to leave one).
    /// Reaching a final status sets `completed_at`. Every update of a live
    /// run also counts as a heartbeat. With `If-Match: "<version>"` the
    /// update applies only if the run is still at that version (else 412).
    /// Metadata that the merge would take past the server's cap (256 KiB of
    /// JSON by default, `--max-metadata-bytes`) is refused with 422, and
    /// nothing about the run changes.
    #[oai(path = "/runs/:run_id", method = "patch", operation_id = "update_run")]
    async fn update_run(
        &self,
        auth: ApiKeyAuth,
        app: Data<&App>,
        /// The run's id.
        #[oai(example = "samples::run_id")]
        run_id: Path<String>,
        /// The version (ETag) the change is based on, such as `"3"`; `*` or
        /// none for any.
        #[oai(name = "If-Match", example = "samples::if_match")]
        if_match: Header<Option<String>>,
        body: JsonBody<UpdateRunBody>,
    ) -> Result<
        TaggedRun,
        OpError<
            {
                can::WRITE
                    | can::BODY
                    | can::NOT_FOUND
                    | can::CONFLICT
                    | can::PRECONDITION_FAILED
                    | can::INTERNAL
            },
        >,
    > {
        let caller = auth.writer()?;
        let expected = accepted_versions(if_match.0.as_deref())?;
        let b = body.0.0;
        let patch = RunPatch {
            status: b.status.map(Into::into),
            metadata: b.metadata.map(|m| m.0),
            pipeline_name: b.pipeline_name.map(|n| n.0),
            pipeline_id: b.pipeline_id.map(|n| n.0),
            heartbeat_timeout_seconds: b.heartbeat_timeout_seconds,
        };
        let detail = app::runs::update(&app, &caller, run_id.0, patch, expected).await?;
        Ok(TaggedRun::of(detail))
    }

    /// Send a heartbeat
    ///
    /// Tells the registry that a pending or running run is alive, pushing
    /// back the moment its `heartbeat_timeout_seconds` would fail it. A run
    /// in a final status answers 409.
    #[oai(
        path = "/runs/:run_id/heartbeat",
        method = "post",
        operation_id = "heartbeat_run"
    )]
    async fn heartbeat(
        &self,
        auth: ApiKeyAuth,
        app: Data<&App>,
        /// The run's id.
        #[oai(example = "samples::run_id")]
        run_id: Path<String>,
    ) -> Result<TaggedRun, OpError<{ can::WRITE | can::NOT_FOUND | can::CONFLICT | can::INTERNAL }>>
    {
        auth.writer()?;
        let detail = app::runs::heartbeat(&app, run_id.0).await?;
        Ok(TaggedRun::of(detail))
    }

    /// List a run's events
    ///
    /// The run's history, oldest first: its creation, every status change
    /// and update with the key that made it, and a heartbeat expiry by
    /// `system`.
    #[oai(
        path = "/runs/:run_id/events",
        method = "get",
        operation_id = "list_run_events"
    )]
    async fn events(
        &self,
        access: ReadAccess,
        req: &Request,
        app: Data<&App>,
        /// The run's id.
        #[oai(example = "samples::run_id")]
        run_id: Path<String>,
        /// Page size: 1 to 1000.
        #[oai(
            default = "default_limit",
            example = "default_limit",
            validator(minimum(value = "1"), maximum(value = "1000"))
        )]
        limit: Query<i64>,
        /// How many events to skip.
        #[oai(default, example = "samples::zero", validator(minimum(value = "0")))]
        offset: Query<i64>,
    ) -> Result<
        Json<RunEventPage>,
        OpError<{ can::READ | can::NOT_FOUND | can::INVALID | can::INTERNAL }>,
    > {
        auth::read(&app, access, req).await?;
        let (limit, offset) = page_bounds(limit.0, offset.0);
        let page = app::runs::events(&app, run_id.0, (limit, offset)).await?;
        Ok(Json(RunEventPage {
            limit: answered_limit(limit, page.items.len(), page.truncated),
            items: page.items.into_iter().map(Into::into).collect(),
            total: page.total,
            offset,
            truncated: page.truncated,
        }))
    }

    /// Wait for a run to finish
    ///
    /// Answers as soon as the run is in a final status, or after `timeout`
    /// seconds with the run as it is then; `done` says which. Waiting costs
    /// the server no thread and no database connection, so a sensor can
    /// call this in a loop instead of polling. A server that is shutting
    /// down answers at once, `done` false.
    #[oai(
        path = "/runs/:run_id/wait",
        method = "get",
        operation_id = "wait_for_run"
    )]
    async fn wait(
        &self,
        access: ReadAccess,
        req: &Request,
        app: Data<&App>,
        /// The run's id.
        #[oai(example = "samples::run_id")]
        run_id: Path<String>,
        /// Seconds to wait at most: 0 to 60.
        #[oai(
            default = "default_wait",
            example = "samples::wait_seconds",
            validator(minimum(value = "0"), maximum(value = "60"))
        )]
        timeout: Query<i64>,
    ) -> Result<
        Json<RunWaitBody>,
        OpError<{ can::READ | can::NOT_FOUND | can::INVALID | can::INTERNAL }>,
    > {
        auth::read(&app, access, req).await?;
        let timeout = Duration::from_secs(timeout.0.unsigned_abs());
        let waited = app::runs::wait(&app, run_id.0, timeout).await?;
        Ok(Json(RunWaitBody {
            done: waited.done,
            run: waited.detail.into(),
        }))
    }

    /// List runs
    ///
    /// Runs matching every given filter, newest `started_at` first, one
    /// page at a time. Dates accept RFC 3339 (`2024-01-15T10:00:00Z`), a
    /// date-time without offset (taken as UTC) or a date (`2024-01-15`,
    /// midnight UTC).
    #[oai(path = "/runs", method = "get", operation_id = "list_runs")]
    #[allow(clippy::too_many_arguments)]
    async fn list_runs(
        &self,
        access: ReadAccess,
        req: &Request,
        app: Data<&App>,
        /// Only runs of this contract.
        #[oai(example = "samples::contract_filter")]
        contract_id: Query<Option<String>>,
        /// Only runs of this pipeline.
        #[oai(example = "samples::pipeline_filter")]
        pipeline_name: Query<Option<String>>,
        /// Only runs in this status.
        #[oai(example = "samples::run_status_filter")]
        status: Query<Option<OneOf<RunStatusBody>>>,
        /// Only runs that started at or after this time (inclusive): a date
        /// (`2024-01-15`, midnight UTC) or an RFC 3339 date-time
        /// (`2024-01-15T10:00:00Z`; without an offset, UTC).
        #[oai(example = "samples::start_date")]
        start_date: Query<Option<DateFilter>>,
        /// Only runs that started before this time (exclusive); the same
        /// forms as `start_date`.
        #[oai(example = "samples::end_date")]
        end_date: Query<Option<DateFilter>>,
        /// `true`: only pending or running runs whose heartbeat is overdue
        /// right now.
        #[oai(default, example = "samples::no")]
        stale: Query<bool>,
        /// Page size: 1 to 1000.
        #[oai(
            default = "default_limit",
            example = "default_limit",
            validator(minimum(value = "1"), maximum(value = "1000"))
        )]
        limit: Query<i64>,
        /// How many matching runs to skip.
        #[oai(default, example = "samples::zero", validator(minimum(value = "0")))]
        offset: Query<i64>,
        // No example: a prefilled cursor would start every Try it out in
        // the middle of the list.
        /// Start right after the run this names: the `next_cursor` of the
        /// previous page, passed unchanged (an `offset` then skips that many
        /// more). For walking every run, it beats `offset`: deep pages cost
        /// no more than the first.
        // domain::RUN_CURSOR_PATTERN; tests/constraints.rs ties them.
        #[oai(validator(pattern = r"^-?[0-9]{1,18}\.run_[0-9A-Z]{26}$"))]
        cursor: Query<Option<String>>,
    ) -> Result<JsonBytes<RunPage>, OpError<{ can::READ | can::INVALID | can::INTERNAL }>> {
        auth::read(&app, access, req).await?;
        let (limit, offset) = page_bounds(limit.0, offset.0);
        let position = super::position(offset, cursor.0)?;
        let filter = RunFilter {
            contract_id: filter_value(contract_id.0),
            pipeline_name: filter_value(pipeline_name.0),
            status: status.0.map(|s| s.0.into()),
            start_date: start_date.0.map(|t| t.0),
            end_date: end_date.0.map(|t| t.0),
            stale_at: None,
            count_up_to: None,
        };
        let page = app::runs::list_records(&app, filter, stale.0, (limit, position)).await?;
        let next_cursor = super::next_cursor(&page.items, page.more, |i| {
            Cursor::from_stored(&i.run.started_at, &i.run.id)
        })?;
        Ok(write_page(&page, (limit, offset), next_cursor.as_deref()))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::{
        domain::{Position, run::RunStatus, time::Timestamp, validation::Validation},
        store::{self, Connection},
    };

    /// Runs with every kind of field: absent and present options, text that
    /// needs escaping, metadata whose keys are not in sorted order, live and
    /// final runs with and without a heartbeat timeout, some validations.
    fn runs() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        store::migrate(&mut conn).unwrap();
        let t0 = Timestamp::parse_stored("2026-01-02T03:04:05.678901Z").unwrap();
        let metadata = [
            json!({}),
            json!({"z": 1, "a": {"y": [1, 2.5, null], "b": "quote \" backslash \\ tab \t"}}),
            json!({"émoji": "🚀", "ctl": "\u{1}\u{7f}", "line\nbreak": true}),
        ];
        for i in 0..9u32 {
            let status = RunStatus::ALL[(i as usize) % RunStatus::ALL.len()];
            let started_at = t0.plus_seconds(i64::from(i) * 60);
            let run = Run {
                id: format!("run_{:026}", i),
                contract_id: format!("contract \"{}\" ü", i % 3),
                pipeline_name: (i % 2 == 0).then(|| format!("pipe\\{i}")),
                pipeline_id: (i % 3 == 0).then(|| "id\u{2028}x".to_owned()),
                status,
                metadata: metadata[i as usize % 3].as_object().unwrap().clone(),
                started_at,
                completed_at: status.is_final().then(|| started_at.plus_micros(1)),
                created_by: "pipeline-key".into(),
                updated_at: started_at.plus_seconds(5),
                version: i64::from(i) + 1,
                heartbeat_timeout_seconds: (i % 2 == 1).then_some(30 + i),
                last_heartbeat_at: (i % 4 == 1).then(|| started_at.plus_seconds(10)),
            };
            store::runs::insert(&conn, &run).unwrap();
            if i % 3 != 2 {
                for (n, status) in ["passed", "failed", "failed"]
                    .iter()
                    .enumerate()
                    .take(1 + i as usize % 3)
                {
                    let v = Validation {
                        id: format!("val_{i:013}{n:013}"),
                        contract_id: run.contract_id.clone(),
                        run_id: Some(run.id.clone()),
                        status: crate::domain::validation::ValidationStatus::parse(status).unwrap(),
                        errors: vec![],
                        warnings: vec![],
                        metrics: Default::default(),
                        metadata: Default::default(),
                        recorded_at: started_at.plus_seconds(n as i64),
                        recorded_by: "pipeline-key".into(),
                    };
                    store::validations::insert(&conn, &v).unwrap();
                }
            }
        }
        conn
    }

    fn text(bytes: &[u8]) -> &str {
        std::str::from_utf8(bytes).unwrap()
    }

    /// A page written from the stored text is, byte for byte, what the
    /// `RunPage` object serialises to: the spec's schema and the answer
    /// cannot drift apart.
    #[test]
    fn written_pages_are_what_the_objects_serialise_to() {
        let conn = runs();
        let live = crate::domain::run::LIVE_STATUSES;
        for (limit, more) in [(50, false), (4, true)] {
            let at = (limit, &Position::Offset(1));
            let filter = RunFilter::default();
            let parsed = store::runs::list(&conn, &filter, live, at, usize::MAX).unwrap();
            let page = store::runs::list_records(&conn, &filter, live, at, usize::MAX).unwrap();
            assert_eq!(page.more, more);
            let cursor = more.then(|| "123.run_00000000000000000000000001".to_owned());
            let expected = RunPage {
                items: parsed.items.into_iter().map(Into::into).collect(),
                total: parsed.total,
                limit,
                offset: 1,
                truncated: false,
                next_cursor: cursor.clone(),
            };
            let written = write_page(&page, (limit, 1), cursor.as_deref());
            assert_eq!(text(written.body()), text(JsonBytes::of(&expected).body()));
        }
    }

    /// So is a run with its validations.
    #[test]
    fn written_runs_are_what_the_objects_serialise_to() {
        let conn = runs();
        for i in 0..9 {
            let id = format!("run_{:026}", i);
            let validations = store::validations::refs_for_run(&conn, &id).unwrap();
            let run = store::runs::find(&conn, &id).unwrap().unwrap();
            let expected: RunBody = RunDetail {
                run,
                validations: validations.clone(),
            }
            .into();
            let record = store::runs::with_record(&conn, &id, |record, _| Ok(record))
                .unwrap()
                .unwrap();
            let written = write_run(&RunDetail {
                run: record,
                validations,
            });
            assert_eq!(text(written.body()), text(JsonBytes::of(&expected).body()));
        }
    }

    /// A write answers from `Run::record`, without reading the row back:
    /// it must be the text a read of that row finds.
    #[test]
    fn a_runs_record_is_its_stored_row() {
        let conn = runs();
        for i in 0..9 {
            let id = format!("run_{:026}", i);
            let run = store::runs::find(&conn, &id).unwrap().unwrap();
            let stored = store::runs::with_record(&conn, &id, |record, _| Ok(record))
                .unwrap()
                .unwrap();
            assert_eq!(run.record(), stored, "{id}");
        }
    }
}
