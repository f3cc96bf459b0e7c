//! The Validations API: record data-quality results, read them back, and
//! report a contract's trends.

use poem::{Request, web::Data};
use poem_openapi::{
    ApiResponse, Object, OpenApi,
    param::{Path, Query},
    payload::Json,
};

use serde::Deserialize;

use super::{
    ApiTags,
    auth::{ApiKeyAuth, ReadAccess},
    body::JsonBody,
    default_limit,
    enums::{GranularityBody, ValidationStatusBody},
    page_bounds, samples,
    types::{DateFilter, DateTime, JsonObject, Name, OneOf},
    written::{self, JsonBytes, Obj, object},
};
use super::{
    auth,
    error::{OpError, can},
};
use crate::{
    app::{self, App},
    domain::text::filter_value,
    domain::validation::{
        Bucket, CommonError, Granularity, NewValidationInput, StatusCounts, Validation,
        ValidationFilter, ValidationIssue, ValidationRecord, ValidationRef, ValidationStats,
        ValidationWarning,
    },
    domain::{Cursor, Page},
};

/// A validation as its run lists it.
#[derive(Object, Debug)]
#[oai(rename = "ValidationRef")]
pub struct ValidationRefBody {
    pub id: String,
    pub status: ValidationStatusBody,
    pub recorded_at: DateTime,
}

impl From<ValidationRef> for ValidationRefBody {
    fn from(v: ValidationRef) -> Self {
        Self {
            id: v.id,
            status: v.status.into(),
            recorded_at: v.recorded_at.into(),
        }
    }
}

/// Writes a [`ValidationRefBody`].
pub fn write_ref(o: &mut Obj<'_>, v: &ValidationRef) {
    o.str("id", &v.id)
        .str("status", v.status.as_str())
        .str("recorded_at", &v.recorded_at.to_string());
}

/// How many validations have each status.
#[derive(Object, Debug)]
#[oai(rename = "StatusCounts")]
pub struct ValidationSummaryBody {
    pub passed: u64,
    pub failed: u64,
    pub warning: u64,
    pub skipped: u64,
    /// The sum of the four.
    pub total: u64,
}

impl From<StatusCounts> for ValidationSummaryBody {
    fn from(c: StatusCounts) -> Self {
        Self {
            passed: c.passed,
            failed: c.failed,
            warning: c.warning,
            skipped: c.skipped,
            total: c.total(),
        }
    }
}

/// Writes a [`ValidationSummaryBody`].
pub fn write_summary(o: &mut Obj<'_>, c: &StatusCounts) {
    o.num("passed", c.passed)
        .num("failed", c.failed)
        .num("warning", c.warning)
        .num("skipped", c.skipped)
        .num("total", c.total());
}

/// One failed check.
#[derive(Object, Debug, Clone, Deserialize)]
#[oai(rename = "ValidationIssue", deny_unknown_fields)]
#[serde(deny_unknown_fields)]
pub struct IssueBody {
    /// A stable code for the kind of failure, such as `null_values`.
    pub code: Name,
    /// What failed, for a person.
    // The domain's MIN/MAX_MESSAGE_LEN and NOT_BLANK_PATTERN: validators take
    // only literals, so tests/constraints.rs ties them.
    #[oai(validator(min_length = 1, max_length = 4096, pattern = r"\S"))]
    pub message: String,
    /// Where: a column or field path.
    #[oai(nullable, validator(max_length = 4096))]
    pub path: Option<String>,
    /// How many rows failed this check.
    #[oai(nullable)]
    pub row_count: Option<u64>,
}

/// One warning.
#[derive(Object, Debug, Clone, Deserialize)]
#[oai(rename = "ValidationWarning", deny_unknown_fields)]
#[serde(deny_unknown_fields)]
pub struct WarningBody {
    pub code: Name,
    #[oai(validator(min_length = 1, max_length = 4096, pattern = r"\S"))]
    pub message: String,
}

/// A validation result to record. Unknown fields are refused, so a typo is
/// reported rather than ignored.
#[derive(Object, Debug, Deserialize)]
#[oai(rename = "CreateValidationRequest", deny_unknown_fields, example)]
#[serde(deny_unknown_fields)]
pub struct CreateValidationRequest {
    /// The data contract the dataset was checked against.
    pub contract_id: Name,
    /// The run this check belongs to. The run must exist and be about the
    /// same contract.
    #[oai(nullable)]
    pub run_id: Option<Name>,
    pub status: ValidationStatusBody,
    /// The checks that failed.
    #[oai(nullable)]
    pub errors: Option<Vec<IssueBody>>,
    /// The warnings raised.
    #[oai(nullable)]
    pub warnings: Option<Vec<WarningBody>>,
    /// Measurements. `rows_validated`, `rows_passed`, `rows_failed` and
    /// `duration_ms` must be non-negative integers when present; other keys
    /// are kept as given.
    #[oai(nullable)]
    pub metrics: Option<JsonObject>,
    /// Free-form JSON object kept with the record.
    #[oai(nullable)]
    pub metadata: Option<JsonObject>,
    /// When the check ran, to backfill; the time of the request when
    /// omitted.
    #[oai(nullable)]
    pub recorded_at: Option<DateTime>,
}

/// A recorded validation.
#[derive(Object, Debug)]
#[oai(rename = "Validation", example)]
pub struct ValidationBody {
    /// Server-generated: `val_` followed by a ULID.
    pub id: String,
    pub contract_id: String,
    #[oai(nullable)]
    pub run_id: Option<String>,
    pub status: ValidationStatusBody,
    pub errors: Vec<IssueBody>,
    pub warnings: Vec<WarningBody>,
    pub metrics: JsonObject,
    pub metadata: JsonObject,
    pub recorded_at: DateTime,
    /// The name of the API key that recorded it.
    pub recorded_by: String,
}

impl From<Validation> for ValidationBody {
    fn from(v: Validation) -> Self {
        Self {
            id: v.id,
            contract_id: v.contract_id,
            run_id: v.run_id,
            status: v.status.into(),
            errors: v
                .errors
                .into_iter()
                .map(|e| IssueBody {
                    code: Name(e.code),
                    message: e.message,
                    path: e.path,
                    row_count: e.row_count,
                })
                .collect(),
            warnings: v
                .warnings
                .into_iter()
                .map(|w| WarningBody {
                    code: Name(w.code),
                    message: w.message,
                })
                .collect(),
            metrics: JsonObject(v.metrics),
            metadata: JsonObject(v.metadata),
            recorded_at: v.recorded_at.into(),
            recorded_by: v.recorded_by,
        }
    }
}

/// Writes a stored validation as [`ValidationBody`], in its field order.
fn write_validation(o: &mut Obj<'_>, v: &ValidationRecord) {
    o.str("id", &v.id)
        .str("contract_id", &v.contract_id)
        .opt_str("run_id", v.run_id.as_deref())
        .str("status", v.status.as_str())
        .list("errors", &v.errors, |o, e| {
            o.str("code", &e.code)
                .str("message", &e.message)
                .opt_str("path", e.path.as_deref())
                .opt_num("row_count", e.row_count);
        })
        .list("warnings", &v.warnings, |o, w| {
            o.str("code", &w.code).str("message", &w.message);
        })
        .raw("metrics", &v.metrics.0)
        .raw("metadata", &v.metadata.0)
        .str("recorded_at", &v.recorded_at.0)
        .str("recorded_by", &v.recorded_by);
}

/// The bytes a stored validation is likely to take written.
fn size_of(v: &ValidationRecord) -> usize {
    let listed: usize = v
        .errors
        .iter()
        .map(|e| 100 + e.message.len())
        .sum::<usize>()
        + v.warnings
            .iter()
            .map(|w| 60 + w.message.len())
            .sum::<usize>();
    400 + listed + v.metrics.0.len() + v.metadata.0.len()
}

/// A stored validation, as [`ValidationBody`].
fn write_one(v: &ValidationRecord) -> JsonBytes<ValidationBody> {
    JsonBytes::written(object(size_of(v), |o| write_validation(o, v)))
}

/// A page of stored validations, as [`ValidationPage`].
fn write_page(
    page: &Page<ValidationRecord>,
    at: (u32, u64),
    next_cursor: Option<&str>,
) -> JsonBytes<ValidationPage> {
    JsonBytes::written(written::page(
        page,
        at,
        next_cursor,
        size_of,
        write_validation,
    ))
}

/// One page of validations.
#[derive(Object, Debug)]
#[oai(rename = "ValidationPage", example)]
pub struct ValidationPage {
    /// Newest first, ties ordered by id.
    pub items: Vec<ValidationBody>,
    /// How many validations match the filters, across all pages.
    pub total: u64,
    /// The page size asked for, or the number of items when `truncated`.
    pub limit: u32,
    pub offset: u64,
    /// True when the page holds fewer than the `limit` asked for because
    /// its items reached the server's byte budget (`--max-page-bytes`);
    /// `limit` then says how many it holds. More items may follow: the
    /// next page starts at `offset + limit`.
    pub truncated: bool,
    /// Pass it as `cursor` for the page after this one;
    /// null on the last page.
    #[oai(nullable)]
    pub next_cursor: Option<String>,
}

/// Counts for one bucket of time.
#[derive(Object, Debug)]
#[oai(rename = "StatsBucket")]
pub struct BucketBody {
    /// The bucket's first instant.
    pub start: DateTime,
    pub counts: ValidationSummaryBody,
    /// Percentage (0 to 100, rounded to two decimals) of `passed` among the
    /// bucket's validations that were not skipped; null when there are none.
    #[oai(nullable)]
    pub pass_rate: Option<f64>,
}

impl From<Bucket> for BucketBody {
    fn from(b: Bucket) -> Self {
        Self {
            start: b.start.into(),
            pass_rate: b.counts.pass_rate(),
            counts: b.counts.into(),
        }
    }
}

/// An error code and how often it was reported.
#[derive(Object, Debug)]
#[oai(rename = "CommonError")]
pub struct CommonErrorBody {
    pub code: String,
    pub count: u64,
    /// One of the messages reported with this code.
    pub sample_message: String,
}

impl From<CommonError> for CommonErrorBody {
    fn from(e: CommonError) -> Self {
        Self {
            code: e.code,
            count: e.count,
            sample_message: e.sample_message,
        }
    }
}

/// A contract's validation trends over a window ending now.
#[derive(Object, Debug)]
#[oai(rename = "ValidationStats", example)]
pub struct ValidationStatsBody {
    pub contract_id: String,
    pub days: u32,
    pub granularity: GranularityBody,
    /// The window's first instant (now minus `days`).
    pub window_start: DateTime,
    /// The window's last instant (now).
    pub window_end: DateTime,
    /// Counts over the whole window.
    pub totals: ValidationSummaryBody,
    /// Percentage (0 to 100, rounded to two decimals) of `passed` among the
    /// validations that were not skipped (`warning` counts as not passed);
    /// null when there are none.
    #[oai(nullable)]
    pub pass_rate: Option<f64>,
    /// Mean of `metrics.duration_ms` over the validations that report it,
    /// rounded to two decimals; null when none do.
    #[oai(nullable)]
    pub avg_duration_ms: Option<f64>,
    /// Every bucket of the window, oldest first, empty ones included.
    pub buckets: Vec<BucketBody>,
    /// The ten most frequent error codes, most frequent first.
    pub common_errors: Vec<CommonErrorBody>,
}

impl From<ValidationStats> for ValidationStatsBody {
    fn from(s: ValidationStats) -> Self {
        Self {
            contract_id: s.contract_id,
            days: s.days,
            granularity: s.granularity.into(),
            window_start: s.window_start.into(),
            window_end: s.window_end.into(),
            pass_rate: s.totals.pass_rate(),
            totals: s.totals.into(),
            avg_duration_ms: s.avg_duration_ms,
            buckets: s.buckets.into_iter().map(Into::into).collect(),
            common_errors: s.common_errors.into_iter().map(Into::into).collect(),
        }
    }
}

#[derive(ApiResponse)]
enum CreatedValidation {
    /// The validation was recorded.
    #[oai(status = 201)]
    Created(JsonBytes<ValidationBody>),
}

fn default_days() -> i64 {
    30
}

fn default_granularity() -> OneOf<GranularityBody> {
    OneOf(GranularityBody::Day)
}

pub struct ValidationsApi;

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Validations")]
impl ValidationsApi {
    /// Record a validation
    ///
    /// Stores the result of checking a dataset against a data contract,
    /// optionally as part of a run (in any status, final ones included).
    /// `recorded_by` is the name of the API key that sent the request.
    #[oai(
        path = "/validations",
        method = "post",
        operation_id = "record_validation"
    )]
    async fn record_validation(
        &self,
        auth: ApiKeyAuth,
        app: Data<&App>,
        body: JsonBody<CreateValidationRequest>,
    ) -> Result<CreatedValidation, OpError<{ can::WRITE | can::BODY | can::INTERNAL }>> {
        let caller = auth.writer()?;
        let b = body.0;
        let validation = NewValidationInput {
            contract_id: b.contract_id.0,
            run_id: b.run_id.map(|n| n.0),
            status: Some(b.status.into()),
            errors: b
                .errors
                .unwrap_or_default()
                .into_iter()
                .map(|e| ValidationIssue {
                    code: e.code.0,
                    message: e.message,
                    path: e.path,
                    row_count: e.row_count,
                })
                .collect(),
            warnings: b
                .warnings
                .unwrap_or_default()
                .into_iter()
                .map(|w| ValidationWarning {
                    code: w.code.0,
                    message: w.message,
                })
                .collect(),
            metrics: b.metrics.map(|m| m.0).unwrap_or_default(),
            metadata: b.metadata.map(|m| m.0).unwrap_or_default(),
            recorded_at: b.recorded_at.map(|t| t.0),
        };
        let stored = app::validations::record(&app, &caller, validation).await?;
        Ok(CreatedValidation::Created(write_one(&stored.record())))
    }

    /// Get a validation
    ///
    /// Returns the full record, errors, warnings and metrics included.
    #[oai(
        path = "/validations/:validation_id",
        method = "get",
        operation_id = "get_validation"
    )]
    async fn get_validation(
        &self,
        access: ReadAccess,
        req: &Request,
        app: Data<&App>,
        /// The validation's id, as returned when it was recorded.
        #[oai(example = "samples::validation_id")]
        validation_id: Path<String>,
    ) -> Result<JsonBytes<ValidationBody>, OpError<{ can::READ | can::NOT_FOUND | can::INTERNAL }>>
    {
        auth::read(&app, access, req).await?;
        let v = app::validations::get_record(&app, validation_id.0).await?;
        Ok(write_one(&v))
    }

    /// List validations
    ///
    /// Validations matching every given filter, newest first, one page at a
    /// time. Dates bound `recorded_at` and follow the same rules as for runs.
    #[oai(
        path = "/validations",
        method = "get",
        operation_id = "list_validations"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn list_validations(
        &self,
        access: ReadAccess,
        req: &Request,
        app: Data<&App>,
        /// Only validations of this contract.
        #[oai(example = "samples::contract_filter")]
        contract_id: Query<Option<String>>,
        /// Only validations recorded in this run.
        #[oai(example = "samples::run_filter")]
        run_id: Query<Option<String>>,
        /// Only validations with this status.
        #[oai(example = "samples::validation_status_filter")]
        status: Query<Option<OneOf<ValidationStatusBody>>>,
        /// Only validations recorded at or after this time (inclusive): a
        /// date (`2024-01-15`, midnight UTC) or an RFC 3339 date-time
        /// (`2024-01-15T10:00:00Z`; without an offset, UTC).
        #[oai(example = "samples::start_date")]
        start_date: Query<Option<DateFilter>>,
        /// Only validations recorded before this time (exclusive); the same
        /// forms as `start_date`.
        #[oai(example = "samples::end_date")]
        end_date: Query<Option<DateFilter>>,
        /// Page size: 1 to 1000.
        #[oai(
            default = "default_limit",
            example = "default_limit",
            validator(minimum(value = "1"), maximum(value = "1000"))
        )]
        limit: Query<i64>,
        /// How many matching validations to skip.
        #[oai(default, example = "samples::zero", validator(minimum(value = "0")))]
        offset: Query<i64>,
        // No example: a prefilled cursor would start every Try it out in
        // the middle of the list.
        /// Start right after the validation this names: the `next_cursor`
        /// of the previous page, passed unchanged (an `offset` then skips
        /// that many more).
        // domain::VALIDATION_CURSOR_PATTERN; tests/constraints.rs ties them.
        #[oai(validator(pattern = r"^-?[0-9]{1,18}\.val_[0-9A-Z]{26}$"))]
        cursor: Query<Option<String>>,
    ) -> Result<JsonBytes<ValidationPage>, OpError<{ can::READ | can::INVALID | can::INTERNAL }>>
    {
        auth::read(&app, access, req).await?;
        let (limit, offset) = page_bounds(limit.0, offset.0);
        let position = super::position(offset, cursor.0)?;
        let filter = ValidationFilter {
            contract_id: filter_value(contract_id.0),
            run_id: filter_value(run_id.0),
            status: status.0.map(|s| s.0.into()),
            start_date: start_date.0.map(|t| t.0),
            end_date: end_date.0.map(|t| t.0),
            count_up_to: None,
        };
        let page = app::validations::list_records(&app, filter, (limit, position)).await?;
        let next_cursor = super::next_cursor(&page.items, page.more, |v| {
            Cursor::from_stored(&v.recorded_at, &v.id)
        })?;
        Ok(write_page(&page, (limit, offset), next_cursor.as_deref()))
    }

    /// Validation stats for a contract
    ///
    /// Over the last `days` days: counts per status, the pass rate, the
    /// mean duration, counts per hour, day or week (every bucket, empty
    /// ones included, so a chart has no gaps) and the ten most common
    /// error codes. A contract with no validations gets zeros.
    #[oai(
        path = "/validations/stats/:contract_id",
        method = "get",
        operation_id = "get_validation_stats"
    )]
    async fn stats(
        &self,
        access: ReadAccess,
        req: &Request,
        app: Data<&App>,
        /// The contract to report on.
        #[oai(example = "samples::contract_id")]
        contract_id: Path<String>,
        /// How many days back from now the window reaches: 1 to 366.
        #[oai(
            default = "default_days",
            example = "default_days",
            validator(minimum(value = "1"), maximum(value = "366"))
        )]
        days: Query<i64>,
        /// The width of each bucket.
        #[oai(default = "default_granularity", example = "default_granularity")]
        granularity: Query<OneOf<GranularityBody>>,
    ) -> Result<Json<ValidationStatsBody>, OpError<{ can::READ | can::INVALID | can::INTERNAL }>>
    {
        auth::read(&app, access, req).await?;
        let days = u32::try_from(days.0).unwrap_or(30);
        let granularity: Granularity = granularity.0.0.into();
        let contract = contract_id.0.trim().to_owned();
        let stats = app::validations::stats(&app, contract, days, granularity).await?;
        Ok(Json(stats.into()))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::{
        domain::{
            Position,
            run::{Run, RunStatus},
            time::Timestamp,
            validation::ValidationStatus,
        },
        store::{self, Connection},
    };

    fn text(bytes: &[u8]) -> &str {
        std::str::from_utf8(bytes).unwrap()
    }

    /// A page, and a validation, written from the stored text are byte for
    /// byte what the objects serialise to: errors with and without a path
    /// or row count, warnings, metrics and metadata in their given key order
    /// and text that needs escaping, with and without a run.
    #[test]
    fn written_validations_are_what_the_objects_serialise_to() {
        let mut conn = Connection::open_in_memory().unwrap();
        store::migrate(&mut conn).unwrap();
        let t0 = Timestamp::parse_stored("2026-01-02T03:04:05.000001Z").unwrap();
        let run = Run {
            id: "run_01HZZZZZZZZZZZZZZZZZZZZZZZ".into(),
            contract_id: "orders".into(),
            pipeline_name: None,
            pipeline_id: None,
            status: RunStatus::Running,
            metadata: Default::default(),
            started_at: t0,
            completed_at: None,
            created_by: "k".into(),
            updated_at: t0,
            version: 1,
            heartbeat_timeout_seconds: None,
            last_heartbeat_at: None,
        };
        store::runs::insert(&conn, &run).unwrap();
        let object = |v: serde_json::Value| v.as_object().unwrap().clone();
        for i in 0..6u32 {
            let v = Validation {
                id: format!("val_{i:026}"),
                contract_id: format!("orders \"{i}\" ✓"),
                run_id: (i % 2 == 0).then(|| run.id.clone()),
                status: ValidationStatus::ALL[i as usize % ValidationStatus::ALL.len()],
                errors: (0..i % 3)
                    .map(|n| ValidationIssue {
                        code: format!("code_{n}"),
                        message: format!("line\nbreak \u{1} {n}"),
                        path: (n == 1).then(|| "a.\"b\"".to_owned()),
                        row_count: (n == 0).then_some(u64::from(i) * 1000),
                    })
                    .collect(),
                warnings: (0..i % 2)
                    .map(|n| ValidationWarning {
                        code: format!("w{n}"),
                        message: "tab\there".into(),
                    })
                    .collect(),
                metrics: object(json!({"rows_validated": i, "duration_ms": 12, "ratio": 0.5})),
                metadata: object(json!({"z": [null, {"y": "🚀"}], "a": false})),
                recorded_at: t0.plus_seconds(i64::from(i)),
                recorded_by: "pipeline \\ key".into(),
            };
            store::validations::insert(&conn, &v).unwrap();
            let stored = store::validations::find_record(&conn, &v.id)
                .unwrap()
                .unwrap();
            // A write answers from `Validation::record`, without reading
            // the row back.
            assert_eq!(v.record(), stored);
            let written = write_one(&stored);
            assert_eq!(
                text(written.body()),
                text(JsonBytes::of(&ValidationBody::from(v)).body())
            );
        }
        // The table takes any JSON in metrics and metadata; what is not an
        // object reads as {} either way.
        conn.execute(
            "UPDATE validations SET metrics = '[1]', metadata = ' null' WHERE id = ?1",
            ["val_00000000000000000000000003"],
        )
        .unwrap();
        let odd = "val_00000000000000000000000003";
        let parsed = store::validations::find(&conn, odd).unwrap().unwrap();
        let stored = store::validations::find_record(&conn, odd)
            .unwrap()
            .unwrap();
        assert_eq!(
            text(write_one(&stored).body()),
            text(JsonBytes::of(&ValidationBody::from(parsed)).body())
        );
        let filter = ValidationFilter::default();
        let at = (4, &Position::Offset(1));
        let parsed = store::validations::list(&conn, &filter, at, usize::MAX).unwrap();
        let stored = store::validations::list_records(&conn, &filter, at, usize::MAX).unwrap();
        assert!(stored.more);
        let expected = ValidationPage {
            items: parsed.items.into_iter().map(Into::into).collect(),
            total: parsed.total,
            limit: 4,
            offset: 1,
            truncated: false,
            next_cursor: Some("1.val_x".into()),
        };
        let written = write_page(&stored, (4, 1), Some("1.val_x"));
        assert_eq!(text(written.body()), text(JsonBytes::of(&expected).body()));
    }
}
