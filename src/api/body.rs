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

use crate::error::{ApiError, ErrorCode};

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
    fn json_content_types() {
        assert!(is_json("application/json"));
        assert!(is_json("application/json; charset=utf-8"));
        assert!(is_json("application/merge-patch+json"));
        assert!(!is_json("application/x-www-form-urlencoded"));
        assert!(!is_json("text/plain"));
    }
}
