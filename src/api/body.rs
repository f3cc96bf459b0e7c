//! `JsonBody<T>`: a JSON request body whose schema comes from poem-openapi
//! (`T: Type`, from `#[derive(Object)]`) but which is parsed by serde, so a
//! refusal names the field at fault ("missing field `contract_id`",
//! "unknown variant `bogus`, expected one of ...") and a syntax error is
//! told apart from a schema error.

use poem::{Request, RequestBody};
use poem_openapi::{
    ApiExtractor, ApiExtractorType, ExtractParamOptions,
    payload::{ParsePayload, Payload},
    registry::{MetaMediaType, MetaRequest, MetaSchemaRef, Registry},
    types::Type,
};
use serde::de::DeserializeOwned;

use crate::api::error::{ApiError, ErrorCode};

pub struct JsonBody<T>(pub T);

const CONTENT_TYPE: &str = "application/json";

fn is_json(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .map(str::trim)
        .is_some_and(|m| m.eq_ignore_ascii_case(CONTENT_TYPE) || m.ends_with("+json"))
}

impl<T: Type + Send> Payload for JsonBody<T> {
    const CONTENT_TYPE: &'static str = CONTENT_TYPE;

    fn check_content_type(content_type: &str) -> bool {
        is_json(content_type)
    }

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<T: Type + DeserializeOwned + Send> ParsePayload for JsonBody<T> {
    const IS_REQUIRED: bool = true;

    async fn from_request(request: &Request, body: &mut RequestBody) -> poem::Result<Self> {
        let bytes = <Vec<u8> as poem::FromRequest>::from_request(request, body).await?;
        parse(&bytes).map(JsonBody).map_err(poem::Error::from)
    }
}

fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::validation(
            "the request body is empty; send a JSON object",
        ));
    }
    // serde reads a struct from an array too (fields by position); the API
    // takes objects only.
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return match serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
            Err(e) => Err(ApiError::new(
                ErrorCode::BadRequest,
                format!("the request body is not valid JSON: {e}"),
            )),
            Ok(_) => Err(ApiError::validation(
                "the request body must be a JSON object",
            )),
        };
    }
    if let Some(field) = nested_too_deep(bytes) {
        return Err(ApiError::validation(format!(
            "invalid `{field}`: JSON nested more than {MAX_DEPTH} levels deep"
        )));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        use serde_json::error::Category;
        let at = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            Category::Syntax | Category::Eof | Category::Io => ApiError::new(
                ErrorCode::BadRequest,
                format!("the request body is not valid JSON: {inner}"),
            ),
            // "." is the path of the body itself (a missing field, an
            // unknown one): the message names the field already.
            Category::Data if at == "." => {
                ApiError::validation(format!("invalid request body: {inner}"))
            }
            Category::Data => ApiError::validation(format!("invalid `{at}`: {inner}")),
        }
    })?;
    // Trailing garbage after the object is a syntax error, not ignored.
    de.end().map_err(|e| {
        ApiError::new(
            ErrorCode::BadRequest,
            format!("the request body is not valid JSON: {e}"),
        )
    })?;
    Ok(parsed)
}

/// How deep a body's JSON may nest, the body itself being level 1. Far more
/// than any real metadata needs, and under the parser's own limit (128),
/// past which it would only say "recursion limit exceeded".
pub const MAX_DEPTH: usize = 64;

/// The top-level field whose value nests past `MAX_DEPTH`, if any. A scan
/// of the raw bytes (strings skipped), so the refusal can name the field
/// and the parser never descends that far.
fn nested_too_deep(bytes: &[u8]) -> Option<String> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut string_start = 0;
    let mut last_string = (0, 0);
    let mut field = (0, 0);
    for (i, &b) in bytes.iter().enumerate() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => {
                    in_string = false;
                    last_string = (string_start, i);
                }
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => {
                in_string = true;
                string_start = i + 1;
            }
            b':' if depth == 1 => field = last_string,
            b'{' | b'[' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Some(String::from_utf8_lossy(&bytes[field.0..field.1]).into_owned());
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

impl<'a, T: Type + DeserializeOwned + Send> ApiExtractor<'a> for JsonBody<T> {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::RequestObject];

    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        <Self as Payload>::register(registry);
    }

    fn request_meta() -> Option<MetaRequest> {
        Some(MetaRequest {
            description: None,
            content: vec![MetaMediaType {
                content_type: CONTENT_TYPE,
                schema: <Self as Payload>::schema_ref(),
            }],
            required: true,
        })
    }

    async fn from_request(
        request: &'a Request,
        body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        match request.content_type() {
            // curl -d without -H sends form encoding; anything but JSON is
            // refused with a hint rather than guessed at.
            Some(ct) if !is_json(ct) => Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                format!(
                    "the body is sent as '{ct}'; send it as JSON with the header \
                     Content-Type: application/json"
                ),
            )
            .into()),
            _ => <Self as ParsePayload>::from_request(request, body).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_is_measured_outside_strings() {
        let deep = |n: usize| {
            format!(
                r#"{{"a": 1, "metadata": {}1{}}}"#,
                "[".repeat(n),
                "]".repeat(n)
            )
        };
        assert_eq!(nested_too_deep(deep(MAX_DEPTH - 1).as_bytes()), None);
        assert_eq!(
            nested_too_deep(deep(MAX_DEPTH).as_bytes()).as_deref(),
            Some("metadata")
        );
        let quoted = format!(r#"{{"m": "{}\\\" {{"}}"#, "[".repeat(200));
        assert_eq!(nested_too_deep(quoted.as_bytes()), None);
    }

    #[test]
    fn json_content_types() {
        assert!(is_json("application/json"));
        assert!(is_json("application/json; charset=utf-8"));
        assert!(is_json("application/merge-patch+json"));
        assert!(!is_json("application/x-www-form-urlencoded"));
        assert!(!is_json("text/plain"));
    }
}
