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
    error::{
        AuthorizationError, ContentTypeError, ParseParamError, ParsePathError,
        ParseRequestPayloadError,
    },
    payload::Json,
};
use tracing::error;

use crate::{
    app::AppError,
    domain::{DomainError, keys::AuthError},
    store::StoreError,
};

/// What went wrong, for programs: stable, one per kind of failure.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[oai(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    /// 400: the body is not valid JSON.
    BadRequest,
    /// 401: no API key, or one that is malformed, unknown or revoked.
    Unauthorized,
    /// 403: the key is valid but its scope does not allow this (a read key
    /// on a write).
    Forbidden,
    /// 404: no such run, validation or endpoint.
    NotFound,
    /// 405: the endpoint exists but not with this method.
    MethodNotAllowed,
    /// 409: the run's status cannot change as asked (it is final, or a
    /// running run was sent back to pending).
    InvalidTransition,
    /// 409: the thing being created already exists.
    Conflict,
    /// 412: the If-Match header names a version the run has left.
    PreconditionFailed,
    /// 413: the body is larger than the server accepts.
    PayloadTooLarge,
    /// 415: the body is not sent as `application/json`.
    UnsupportedMediaType,
    /// 422: the request is well-formed but a field is missing, of the wrong
    /// type, or breaks a rule; the message names the field.
    ValidationError,
    /// 500: the server failed; the cause is in its log, not in the answer.
    Internal,
}

impl ErrorCode {
    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::BadRequest => StatusCode::BAD_REQUEST,
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::Forbidden => StatusCode::FORBIDDEN,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::InvalidTransition | ErrorCode::Conflict => StatusCode::CONFLICT,
            ErrorCode::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::ValidationError => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
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

/// Every error an operation can answer with. Handlers return
/// `Result<_, ApiError>`, so each operation documents these responses.
#[derive(ApiResponse, Debug)]
pub enum ApiError {
    /// The body is not valid JSON.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// No API key was sent, or it is malformed, unknown or revoked.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>),
    /// The API key's scope does not allow this operation.
    #[oai(status = 403)]
    Forbidden(Json<ErrorBody>),
    /// The run or validation does not exist.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// The change conflicts with the current state (a final run's status).
    #[oai(status = 409)]
    Conflict(Json<ErrorBody>),
    /// The If-Match header names a version the run has left.
    #[oai(status = 412)]
    PreconditionFailed(Json<ErrorBody>),
    /// The body is larger than the server's limit.
    #[oai(status = 413)]
    PayloadTooLarge(Json<ErrorBody>),
    /// The body is not sent as application/json.
    #[oai(status = 415)]
    UnsupportedMediaType(Json<ErrorBody>),
    /// A field is missing, has the wrong type, or breaks a rule.
    #[oai(status = 422)]
    Unprocessable(Json<ErrorBody>),
    /// The server failed; retrying may help.
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
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
            ErrorCode::BadRequest | ErrorCode::MethodNotAllowed => ApiError::BadRequest(body),
            ErrorCode::Unauthorized => ApiError::Unauthorized(body),
            ErrorCode::Forbidden => ApiError::Forbidden(body),
            ErrorCode::NotFound => ApiError::NotFound(body),
            ErrorCode::InvalidTransition | ErrorCode::Conflict => ApiError::Conflict(body),
            ErrorCode::PreconditionFailed => ApiError::PreconditionFailed(body),
            ErrorCode::PayloadTooLarge => ApiError::PayloadTooLarge(body),
            ErrorCode::UnsupportedMediaType => ApiError::UnsupportedMediaType(body),
            ErrorCode::ValidationError => ApiError::Unprocessable(body),
            ErrorCode::Internal => ApiError::Internal(body),
        }
    }

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
            AuthError::ReadOnly { .. } => ApiError::new(ErrorCode::Forbidden, err.to_string()),
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
            AppError::Store(e) => e.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    /// Storage failures are the server's: logged, never shown.
    fn from(err: StoreError) -> Self {
        ApiError::internal(&err)
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
    let api_error = api_error_for(&err);
    let status = match &api_error {
        ApiError::BadRequest(Json(body)) => body.detail.code.status(),
        _ => StatusCode::OK,
    };
    let mut resp = api_error.into_response();
    // 405 has no variant of its own (no operation answers it); it travels in
    // BadRequest's body and gets its real status here.
    if status == StatusCode::METHOD_NOT_ALLOWED {
        resp.set_status(status);
    }
    resp
}

fn api_error_for(err: &poem::Error) -> ApiError {
    if let Some(e) = err.downcast_ref::<ParseRequestPayloadError>() {
        // poem-openapi words a schema mismatch "failed to parse ..."; anything
        // else comes from the JSON parser itself.
        return if e.reason.starts_with("failed to parse") {
            ApiError::validation(format!("invalid request body: {}", e.reason))
        } else {
            ApiError::new(
                ErrorCode::BadRequest,
                format!("the request body is not valid JSON: {}", e.reason),
            )
        };
    }
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

/// Bits naming the error statuses an operation can answer with, for
/// [`OpError`].
pub mod can {
    /// 400: the body is not JSON.
    pub const BAD_JSON: u16 = 1 << 0;
    /// 401: the key is missing (where needed), malformed, unknown or revoked.
    pub const UNAUTHORIZED: u16 = 1 << 1;
    /// 403: the key's scope does not allow the operation.
    pub const FORBIDDEN: u16 = 1 << 2;
    /// 404: the run or validation named in the path does not exist.
    pub const NOT_FOUND: u16 = 1 << 3;
    /// 409: the run's state does not allow the change.
    pub const CONFLICT: u16 = 1 << 4;
    /// 412: If-Match names a version the run has left.
    pub const PRECONDITION_FAILED: u16 = 1 << 5;
    /// 413: the body is over the size cap.
    pub const TOO_LARGE: u16 = 1 << 6;
    /// 415: the body is not sent as JSON.
    pub const MEDIA_TYPE: u16 = 1 << 7;
    /// 422: a parameter or field breaks a rule.
    pub const INVALID: u16 = 1 << 8;
    /// 500: the server failed.
    pub const INTERNAL: u16 = 1 << 9;

    /// What any operation with a JSON body can be refused for.
    pub const BODY: u16 = BAD_JSON | TOO_LARGE | MEDIA_TYPE | INVALID;
    /// What a write can be refused for before it is looked at.
    pub const WRITE: u16 = UNAUTHORIZED | FORBIDDEN;
    /// What a read can be refused for before it is looked at: a key that was
    /// sent but is bad, or none where the server requires one.
    pub const READ: u16 = UNAUTHORIZED;

    pub(super) fn bit(status: u16) -> u16 {
        match status {
            400 => BAD_JSON,
            401 => UNAUTHORIZED,
            403 => FORBIDDEN,
            404 => NOT_FOUND,
            409 => CONFLICT,
            412 => PRECONDITION_FAILED,
            413 => TOO_LARGE,
            415 => MEDIA_TYPE,
            422 => INVALID,
            500 => INTERNAL,
            _ => 0,
        }
    }
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

impl<const S: u16> From<StoreError> for OpError<S> {
    fn from(err: StoreError) -> Self {
        OpError(err.into())
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
