//! A small client of the registry's own API, for `exec`: create a run, send
//! heartbeats, record the result. Short timeouts, a bounded retry, and
//! failures reduced to one line a person can act on.
//!
//! It is hyper-util's client on the hyper stack poem already brings, with
//! rustls (ring) and the system's trusted roots for `https://` URLs.

use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::{
    Method, Request, StatusCode, Uri,
    body::Bytes,
    header::{CONTENT_TYPE, HeaderValue, USER_AGENT},
};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use serde_json::Value;
use tokio::time::{Instant, sleep, timeout};

/// How long opening a connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one request may take, answer included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts at a write before giving up: one retry covers a restart or a
/// dropped connection without holding a job back long.
const ATTEMPTS: u32 = 2;
/// The pause before a retry.
const RETRY_PAUSE: Duration = Duration::from_millis(300);

/// Why the registry did not do what was asked, in one line.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach {url}: {cause}")]
    Unreachable { url: String, cause: String },
    #[error("no answer from {url} within {:.1}s", .after.as_secs_f64())]
    Timeout { url: String, after: Duration },
    /// The registry answered, and refused (or failed): retrying the same
    /// request would not help, unless it is a 502, 503 or 504.
    #[error("{url} answered {status}{}", detail_suffix(.detail))]
    Refused {
        url: String,
        status: StatusCode,
        detail: Option<String>,
    },
    #[error("cannot use {url}: {cause}")]
    Setup { url: String, cause: String },
}

fn detail_suffix(detail: &Option<String>) -> String {
    detail.as_ref().map_or(String::new(), |d| format!(": {d}"))
}

impl ClientError {
    /// Whether the same request may succeed a moment later.
    fn is_transient(&self) -> bool {
        match self {
            ClientError::Unreachable { .. } | ClientError::Timeout { .. } => true,
            ClientError::Refused { status, .. } => matches!(status.as_u16(), 502..=504),
            ClientError::Setup { .. } => false,
        }
    }

    /// Whether the registry itself said no, so asking again is pointless.
    pub fn is_refusal(&self) -> bool {
        matches!(self, ClientError::Refused { .. }) && !self.is_transient()
    }
}

/// The registry at a base URL (`http://host:8000`, or with a path prefix),
/// with the API key every request carries.
pub struct Registry {
    base: String,
    api_key: HeaderValue,
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl Registry {
    /// `base` is an http or https URL already checked by the command line
    /// (see [`parse_base_url`]).
    pub fn new(base: &str, api_key: &str) -> Result<Self, ClientError> {
        let setup = |cause: String| ClientError::Setup {
            url: base.to_owned(),
            cause,
        };
        let mut api_key = HeaderValue::from_str(api_key)
            .map_err(|_| setup("GRIOT_API_KEY holds characters a header cannot carry".into()))?;
        api_key.set_sensitive(true);
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        http.enforce_http(false);
        let tls = if base.starts_with("https://") {
            HttpsConnectorBuilder::new()
                .with_native_roots()
                .map_err(|e| setup(format!("no trusted CA certificates: {e}")))?
        } else {
            // Never used for plain http; it spares reading the system's
            // certificates on every run.
            HttpsConnectorBuilder::new().with_tls_config(
                rustls::ClientConfig::builder()
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth(),
            )
        };
        let connector = tls.https_or_http().enable_http1().wrap_connector(http);
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            api_key,
            client: Client::builder(TokioExecutor::new()).build(connector),
        })
    }

    /// Creates a run and returns its id. Retried once, within `budget`,
    /// with the same Idempotency-Key, so a retry never makes a second run.
    pub async fn create_run(
        &self,
        body: &Value,
        idempotency_key: &str,
        budget: Duration,
    ) -> Result<String, ClientError> {
        let url = format!("{}/api/v1/runs", self.base);
        let answer = self
            .send_retrying(
                Method::POST,
                &url,
                Some(("Idempotency-Key", idempotency_key)),
                Some(body),
                budget,
            )
            .await?;
        answer["id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| ClientError::Refused {
                url,
                status: StatusCode::OK,
                detail: Some("the answer has no run id".into()),
            })
    }

    /// One heartbeat, not retried: the next one follows soon.
    pub async fn heartbeat(&self, run_id: &str) -> Result<(), ClientError> {
        let url = format!("{}/api/v1/runs/{run_id}/heartbeat", self.base);
        self.send(Method::POST, &url, None, None, REQUEST_TIMEOUT)
            .await
            .map(drop)
    }

    /// Updates a run (status, metadata merge patch), retried once within
    /// `budget`: repeating the same update changes nothing more.
    pub async fn update_run(
        &self,
        run_id: &str,
        body: &Value,
        budget: Duration,
    ) -> Result<(), ClientError> {
        let url = format!("{}/api/v1/runs/{run_id}", self.base);
        self.send_retrying(Method::PATCH, &url, None, Some(body), budget)
            .await
            .map(drop)
    }

    /// Sends until an answer, a refusal, [`ATTEMPTS`] failures or the end of
    /// `budget`; each attempt gets at most [`REQUEST_TIMEOUT`] of it.
    async fn send_retrying(
        &self,
        method: Method,
        url: &str,
        header: Option<(&'static str, &str)>,
        body: Option<&Value>,
        budget: Duration,
    ) -> Result<Value, ClientError> {
        let deadline = Instant::now() + budget;
        let mut attempt = 1;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let result = self
                .send(method.clone(), url, header, body, left.min(REQUEST_TIMEOUT))
                .await;
            match result {
                Err(e)
                    if e.is_transient()
                        && attempt < ATTEMPTS
                        && Instant::now() + RETRY_PAUSE < deadline =>
                {
                    attempt += 1;
                    sleep(RETRY_PAUSE).await;
                }
                other => return other,
            }
        }
    }

    async fn send(
        &self,
        method: Method,
        url: &str,
        header: Option<(&'static str, &str)>,
        body: Option<&Value>,
        limit: Duration,
    ) -> Result<Value, ClientError> {
        let unreachable = |cause: String| ClientError::Unreachable {
            url: url.to_owned(),
            cause,
        };
        let uri: Uri = url.parse().map_err(|e| unreachable(format!("{e}")))?;
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header("X-API-Key", self.api_key.clone())
            .header(
                USER_AGENT,
                concat!("griot-registry-exec/", env!("CARGO_PKG_VERSION")),
            );
        if let Some((name, value)) = header {
            req = req.header(name, value);
        }
        let body = match body {
            Some(b) => {
                req = req.header(CONTENT_TYPE, "application/json");
                Full::new(Bytes::from(b.to_string()))
            }
            None => Full::new(Bytes::new()),
        };
        let req = req.body(body).map_err(|e| unreachable(e.to_string()))?;
        let exchange = async {
            let resp = self.client.request(req).await.map_err(|e| {
                // The outermost error says only "client error (Connect)";
                // the cause says what happened.
                let mut cause: &dyn std::error::Error = &e;
                while let Some(inner) = cause.source() {
                    cause = inner;
                }
                unreachable(cause.to_string())
            })?;
            let status = resp.status();
            let bytes = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| unreachable(e.to_string()))?
                .to_bytes();
            Ok((status, bytes))
        };
        let (status, bytes) =
            timeout(limit, exchange)
                .await
                .map_err(|_| ClientError::Timeout {
                    url: url.to_owned(),
                    after: limit,
                })??;
        let json: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(json);
        }
        // The project's one error shape: {"detail": {"code", "message"}}.
        let detail = &json["detail"];
        let detail = match (detail["code"].as_str(), detail["message"].as_str()) {
            (Some(code), Some(message)) => Some(format!("{code}: {message}")),
            _ => None,
        };
        Err(ClientError::Refused {
            url: url.to_owned(),
            status,
            detail,
        })
    }
}

/// Checks a registry base URL: `http://` or `https://`, a host, no query.
/// Returns it without a trailing slash.
pub fn parse_base_url(s: &str) -> Result<String, String> {
    let uri: Uri = s
        .parse()
        .map_err(|e| format!("not a URL ({e}); for example http://127.0.0.1:8000"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => {
            return Err(
                "the URL must start with http:// or https://, as in http://127.0.0.1:8000".into(),
            );
        }
    }
    if uri.host().is_none_or(str::is_empty) || uri.query().is_some() {
        return Err("the URL must name a host and carry no query".into());
    }
    Ok(s.trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls() {
        assert_eq!(
            parse_base_url("http://127.0.0.1:8000/").unwrap(),
            "http://127.0.0.1:8000"
        );
        assert_eq!(
            parse_base_url("https://example.org/registry").unwrap(),
            "https://example.org/registry"
        );
        assert!(parse_base_url("localhost:8000").is_err());
        assert!(parse_base_url("ftp://example.org").is_err());
        assert!(parse_base_url("http://example.org/?a=1").is_err());
        assert!(parse_base_url("not a url").is_err());
    }
}
