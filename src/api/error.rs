//! The one error shape on the wire, `{"detail": {"code", "message"}}`, and
//! the one place every failure is mapped to it: domain and store errors,
//! and the framework's own rejections (bad JSON, bad parameters, missing
//! credentials, unknown routes, oversized bodies).

use poem::{
    Response,
    error::{NotFoundError, ReadBodyError},
    http::StatusCode,
};
use poem_openapi::{
    ApiResponse, Enum, Object,
    error::{AuthorizationError, ContentTypeError, ParseParamError, ParsePathError},
    payload::Json,
};
use tracing::{error, warn};

use crate::{
    app::AppError,
    domain::{DomainError, keys::AuthError},
};

/// How long a client told 503 should wait before retrying, in seconds.
pub const RETRY_AFTER_SECS: u32 = 1;

/// The one table of error statuses. Each entry is a response: its
/// [`ApiError`] variant, its status, the [`can`] bit that documents it on an
/// operation (none for the statuses no operation lists), optionally the
/// Retry-After it carries, and the [`ErrorCode`]s it answers for. The
/// codes, the variants, `ErrorCode::status`, `ApiError::new` and
/// `can::bit` all come from here, so a status is written once.
///
/// Docs are matched as `tt` so they reach the derives as plain literals:
/// the first block documents the response (and so the spec), the ones
/// inside the braces each code.
macro_rules! error_table {
    ($(
        $(#[doc = $rdoc:tt])*
        $variant:ident = $status:tt $(can $bit:ident)? $(retry_after: $hty:ident = $secs:tt)? {
            $( $(#[doc = $cdoc:tt])* $code:ident, )+
        }
    )*) => {
        /// What went wrong, for programs: stable, one per kind of failure.
        #[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
        #[oai(rename_all = "SCREAMING_SNAKE_CASE")]
        pub enum ErrorCode {
            $($( $(#[doc = $cdoc])* $code, )+)*
        }

        impl ErrorCode {
            /// Every code, in the table's order.
            #[cfg(test)]
            const ALL: &[ErrorCode] = &[$($(ErrorCode::$code,)+)*];

            pub fn status(self) -> StatusCode {
                let status: u16 = match self {
                    $( $(ErrorCode::$code)|+ => $status, )*
                };
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }
        }

        /// Every error an operation can answer with. Handlers return
        /// `OpError<S>`, which documents the subset `S` of these responses.
        #[derive(ApiResponse, Debug)]
        pub enum ApiError {
            $(
                $(#[doc = $rdoc])*
                #[oai(status = $status)]
                $variant(Json<ErrorBody> $(, #[oai(header = "Retry-After")] $hty)?),
            )*
        }

        impl ApiError {
            pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
                let body = Json(ErrorBody {
                    detail: ErrorDetail {
                        code,
                        message: message.into(),
                    },
                });
                match code {
                    $( $(ErrorCode::$code)|+ => ApiError::$variant(body $(, $secs)?), )*
                }
            }
        }

        /// Bits naming the error statuses an operation can answer with, for
        /// [`OpError`].
        pub mod can {
            #[allow(non_camel_case_types, clippy::upper_case_acronyms)]
            enum Bit {
                $($( $bit, )?)*
            }

            $($(
                #[doc = concat!(stringify!($status), ": see `ApiError::", stringify!($variant), "`.")]
                pub const $bit: u16 = 1 << Bit::$bit as u16;
            )?)*

            /// What any operation with a JSON body can be refused for.
            pub const BODY: u16 = BAD_JSON | TOO_LARGE | MEDIA_TYPE | INVALID;
            /// What a write can be refused for before it is looked at.
            pub const WRITE: u16 = UNAUTHORIZED | FORBIDDEN;
            /// What a read can be refused for before it is looked at: a key
            /// that was sent but is bad, or none where the server requires
            /// one.
            pub const READ: u16 = UNAUTHORIZED;

            /// The bit of a status; 0 for one no operation documents.
            pub(super) fn bit(status: u16) -> u16 {
                match status {
                    $($( $status => $bit, )?)*
                    _ => 0,
                }
            }
        }
    };
}

error_table! {
    /// The body is not valid JSON.
    BadRequest = 400 can BAD_JSON {
        /// 400: the body is not valid JSON.
        BadRequest,
    }
    /// No API key was sent, or it is malformed, unknown or revoked.
    Unauthorized = 401 can UNAUTHORIZED {
        /// 401: no API key, or one that is malformed, unknown or revoked.
        Unauthorized,
    }
    /// The API key's scope does not allow this operation.
    Forbidden = 403 can FORBIDDEN {
        /// 403: the key is valid but its scope does not allow this (a read key
        /// on a write).
        Forbidden,
    }
    /// The run or validation does not exist.
    NotFound = 404 can NOT_FOUND {
        /// 404: no such run, validation or endpoint.
        NotFound,
    }
    /// The endpoint exists but not with this method. No operation lists it:
    /// it is the router's answer, not an operation's.
    MethodNotAllowed = 405 {
        /// 405: the endpoint exists but not with this method.
        MethodNotAllowed,
    }
    /// The body did not arrive in time. No operation lists it: it is the
    /// connection's answer, before any operation runs.
    RequestTimeout = 408 {
        /// 408: the request body did not arrive within the server's time
        /// limit (a stalled or very slow client).
        RequestTimeout,
    }
    /// The change conflicts with the current state (a final run's status).
    Conflict = 409 can CONFLICT {
        /// 409: the run's status cannot change as asked (it is final, or a
        /// running run was sent back to pending).
        InvalidTransition,
        /// 409: the thing being created already exists.
        Conflict,
    }
    /// The If-Match header names a version the run has left.
    PreconditionFailed = 412 can PRECONDITION_FAILED {
        /// 412: the If-Match header names a version the run has left.
        PreconditionFailed,
    }
    /// The body is larger than the server's limit.
    PayloadTooLarge = 413 can TOO_LARGE {
        /// 413: the body is larger than the server accepts.
        PayloadTooLarge,
    }
    /// The body is not sent as application/json.
    UnsupportedMediaType = 415 can MEDIA_TYPE {
        /// 415: the body is not sent as `application/json`.
        UnsupportedMediaType,
    }
    /// A field is missing, has the wrong type, or breaks a rule.
    Unprocessable = 422 can INVALID {
        /// 422: the request is well-formed but a field is missing, of the wrong
        /// type, or breaks a rule; the message names the field.
        ValidationError,
    }
    /// The server failed; retrying may help.
    Internal = 500 can INTERNAL {
        /// 500: the server failed; the cause is in its log, not in the answer.
        Internal,
    }
    /// The server is too busy to answer now; retry after Retry-After
    /// seconds. No operation lists it: any of them can meet it.
    ServiceUnavailable = 503 retry_after: u32 = RETRY_AFTER_SECS {
        /// 503: the server is too busy to answer now (no database connection
        /// came free in time); retry after the Retry-After header's seconds.
        ServiceUnavailable,
    }
}

#[derive(Object, Debug, Clone)]
pub struct ErrorDetail {
    /// Machine-readable kind of error.
    pub code: ErrorCode,
    /// What went wrong and how to fix it, for a person.
    pub message: String,
}

/// The body of every error response.
#[derive(Object, Debug, Clone)]
#[oai(rename = "Error", example)]
pub struct ErrorBody {
    pub detail: ErrorDetail,
}

impl ApiError {
    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ValidationError, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthorized, message)
    }

    /// Logs the cause for operators and tells the client only that the
    /// server failed: internals stay out of responses.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        error!(error = %cause, "request failed");
        Self::new(
            ErrorCode::Internal,
            "the server failed to handle the request; the cause is in its log",
        )
    }

    /// 503 with Retry-After, for a server too busy to take the request now
    /// (every database connection stayed busy past the pool's timeout).
    pub fn unavailable(cause: &dyn std::fmt::Display) -> Self {
        warn!(error = %cause, "request refused: the server is busy");
        Self::new(
            ErrorCode::ServiceUnavailable,
            "the server is too busy to handle the request now; retry after the seconds in the \
             Retry-After header",
        )
    }
}

impl From<DomainError> for ApiError {
    fn from(err: DomainError) -> Self {
        match err {
            DomainError::Invalid(_) => ApiError::validation(err.to_string()),
            DomainError::InvalidTransition { .. } | DomainError::NotLive { .. } => {
                ApiError::new(ErrorCode::InvalidTransition, err.to_string())
            }
            DomainError::VersionMismatch { .. } => {
                ApiError::new(ErrorCode::PreconditionFailed, err.to_string())
            }
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> Self {
        match err {
            AuthError::ReadOnly { .. } | AuthError::NotAdmin { .. } => {
                ApiError::new(ErrorCode::Forbidden, err.to_string())
            }
            AuthError::Malformed
            | AuthError::Unknown
            | AuthError::Revoked { .. }
            | AuthError::ReadsNeedKey => ApiError::unauthorized(err.to_string()),
        }
    }
}

impl From<AppError> for ApiError {
    fn from(err: AppError) -> Self {
        match err {
            AppError::NotFound { .. } => ApiError::new(ErrorCode::NotFound, err.to_string()),
            AppError::Domain(e) => e.into(),
            AppError::Auth(e) => e.into(),
            AppError::KeyNameTaken(_) | AppError::BootstrapNameTaken(_) => {
                ApiError::new(ErrorCode::Conflict, err.to_string())
            }
            AppError::Busy(e) => ApiError::unavailable(&e),
            AppError::Store(e) => ApiError::internal(&e),
        }
    }
}

/// Reshapes an error that did not come from a handler (poem's and
/// poem-openapi's own rejections) into the project's error shape. Errors a
/// handler returned are already shaped and pass through.
pub async fn render(err: poem::Error) -> Response {
    use poem::IntoResponse;
    if err.is_from_response() {
        return err.into_response();
    }
    api_error_for(&err).into_response()
}

/// Classifies a framework error by its type (or, for the errors poem gives
/// only a status, by that status); never by its English text.
///
/// `ParseRequestPayloadError` is not looked for: only poem-openapi's own
/// payload types (`Json<T>` as a request body) raise it, and every request
/// body here is a [`JsonBody`](crate::api::body::JsonBody), which refuses a
/// bad body itself and tells a syntax error (400) from a schema mismatch
/// (422) by serde_json's error category.
fn api_error_for(err: &poem::Error) -> ApiError {
    if let Some(e) = err.downcast_ref::<ParseParamError>() {
        return ApiError::validation(format!(
            "invalid parameter `{}`: {}",
            e.name,
            humanize(&e.reason)
        ));
    }
    if let Some(e) = err.downcast_ref::<ParsePathError>() {
        return ApiError::validation(format!(
            "invalid path parameter `{}`: {}",
            e.name,
            humanize(&e.reason)
        ));
    }
    if let Some(e) = err.downcast_ref::<ContentTypeError>() {
        return ApiError::new(
            ErrorCode::UnsupportedMediaType,
            format!("{e}; send the body as JSON with the header Content-Type: application/json"),
        );
    }
    if err.is::<AuthorizationError>() {
        return ApiError::unauthorized(
            "no API key: send one in the X-API-Key header (create one with \
             `griot-registry keys create --name NAME`)",
        );
    }
    if let Some(ReadBodyError::PayloadTooLarge) = err.downcast_ref::<ReadBodyError>() {
        return too_large();
    }
    if err.is::<NotFoundError>() || err.status() == StatusCode::NOT_FOUND {
        return ApiError::new(
            ErrorCode::NotFound,
            "no such endpoint; the API is described at /docs and /openapi.json",
        );
    }
    match err.status() {
        StatusCode::METHOD_NOT_ALLOWED => ApiError::new(
            ErrorCode::MethodNotAllowed,
            "this endpoint does not accept that method; see /docs",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => too_large(),
        s if s.is_client_error() => ApiError::new(ErrorCode::BadRequest, err.to_string()),
        _ => ApiError::internal(err),
    }
}

/// Rewords poem-openapi's parameter messages ("verification failed.
/// maximum(1000, exclusive: false)") for a person.
///
/// Text is the only thing poem-openapi offers here: `ParseParamError` and
/// `ParsePathError` carry the parameter's name and a `reason: String`
/// built from the validator's `Display` or the `ParseError` message, with
/// no kind to match on. So the wording is read here and nowhere else, and
/// the tests below build each form with poem-openapi's own code, so an
/// upgrade that changes the wording fails them (the "verification failed."
/// prefix comes from its derive and is covered by the limit tests in
/// tests/runs.rs and tests/validations.rs).
fn humanize(reason: &str) -> String {
    let reason = reason
        .split(" (occurred while parsing")
        .next()
        .unwrap_or(reason);
    if let Some(rule) = reason.strip_prefix("verification failed. ") {
        let bound = |name: &str| {
            rule.strip_prefix(name)
                .and_then(|r| r.split([',', ')']).next())
                .map(str::to_owned)
        };
        if let Some(n) = bound("maximum(") {
            return format!("must be at most {n}");
        }
        if let Some(n) = bound("minimum(") {
            return format!("must be at least {n}");
        }
        return format!("breaks the rule {rule}");
    }
    if let Some(rest) = reason.strip_prefix("failed to parse \"") {
        let (ty, detail) = rest.split_once("\": ").unwrap_or((rest, ""));
        if ty.starts_with("integer") {
            return "must be a whole number".to_owned();
        }
        return detail.to_owned();
    }
    reason.to_owned()
}

pub fn too_large() -> ApiError {
    ApiError::new(
        ErrorCode::PayloadTooLarge,
        "the request body is larger than the server accepts (see --max-body-bytes)",
    )
}

/// The errors of one operation: an [`ApiError`] at run time, documented in
/// the spec with only the statuses in `S` (bits from [`can`]), so each
/// operation lists exactly what it can answer. Handlers declare the set in
/// their return type, where a reader sees it next to the code that can
/// fail; schemathesis checks the declared set against real answers.
#[derive(Debug)]
pub struct OpError<const S: u16>(pub ApiError);

impl<const S: u16> ApiResponse for OpError<S> {
    const BAD_REQUEST_HANDLER: bool = false;

    fn meta() -> poem_openapi::registry::MetaResponses {
        let mut meta = ApiError::meta();
        meta.responses
            .retain(|r| r.status.is_some_and(|status| can::bit(status) & S != 0));
        meta
    }

    fn register(registry: &mut poem_openapi::registry::Registry) {
        ApiError::register(registry);
    }
}

impl<const S: u16> poem::IntoResponse for OpError<S> {
    fn into_response(self) -> Response {
        self.0.into_response()
    }
}

impl<const S: u16> From<OpError<S>> for poem::Error {
    fn from(err: OpError<S>) -> Self {
        err.0.into()
    }
}

impl<const S: u16> From<ApiError> for OpError<S> {
    fn from(err: ApiError) -> Self {
        OpError(err)
    }
}

impl<const S: u16> From<AppError> for OpError<S> {
    fn from(err: AppError) -> Self {
        OpError(err.into())
    }
}

impl<const S: u16> From<DomainError> for OpError<S> {
    fn from(err: DomainError) -> Self {
        OpError(err.into())
    }
}

#[cfg(test)]
mod tests {
    use poem::IntoResponse;
    use poem_openapi::types::{ParseError, ParseFromParameter};

    use super::*;

    #[test]
    fn every_code_answers_with_its_status_and_only_undocumented_ones_lack_a_bit() {
        for &code in ErrorCode::ALL {
            let resp = ApiError::new(code, "m").into_response();
            assert_eq!(resp.status(), code.status(), "{code:?}");
            let documented = can::bit(code.status().as_u16()) != 0;
            let undocumented = matches!(
                code,
                ErrorCode::MethodNotAllowed
                    | ErrorCode::RequestTimeout
                    | ErrorCode::ServiceUnavailable
            );
            assert_eq!(documented, !undocumented, "{code:?}");
            assert_eq!(
                resp.headers().contains_key("retry-after"),
                code == ErrorCode::ServiceUnavailable,
                "{code:?}"
            );
        }
    }

    #[test]
    fn operations_never_document_405_408_or_503() {
        let every = OpError::<{ u16::MAX }>::meta();
        let statuses: Vec<u16> = every.responses.iter().filter_map(|r| r.status).collect();
        assert!(
            statuses.contains(&400) && statuses.contains(&500),
            "{statuses:?}"
        );
        assert!(
            !statuses.contains(&405) && !statuses.contains(&408) && !statuses.contains(&503),
            "{statuses:?}"
        );
    }

    /// The reason poem-openapi's derive writes for a failed validator.
    fn verification(validator: impl std::fmt::Display) -> String {
        format!("verification failed. {validator}")
    }

    fn parse_failure<T: ParseFromParameter>(value: &str) -> String {
        match T::parse_from_parameter(value) {
            Err(e) => e.into_message(),
            Ok(_) => panic!("'{value}' parsed"),
        }
    }

    #[test]
    fn humanize_reads_each_form_poem_openapi_writes() {
        use poem_openapi::validation::{Maximum, Minimum};
        assert_eq!(
            humanize(&verification(Maximum::new(1000.0, false))),
            "must be at most 1000"
        );
        assert_eq!(
            humanize(&verification(Minimum::new(0.0, false))),
            "must be at least 0"
        );
        assert_eq!(
            humanize(&verification(poem_openapi::validation::MaxLength::new(3))),
            "breaks the rule maxLength(3)"
        );
        assert_eq!(
            humanize(&parse_failure::<i64>("abc")),
            "must be a whole number"
        );
        // A parse failure of any other type keeps the parser's detail.
        assert_eq!(
            humanize(&parse_failure::<bool>("maybe")),
            "provided string was not `true` or `false`"
        );
        // An error passed up from an inner type names that type at the end.
        let inner = ParseError::<bool>::custom("no").propagate::<i64>();
        assert_eq!(humanize(&inner.into_message()), "no");
        // Anything else is passed on unchanged.
        let missing = ParseError::<i64>::expected_input().into_message();
        assert_eq!(humanize(&missing), missing);
    }
}
