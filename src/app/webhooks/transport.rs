//! Sends one webhook message: hyper-util's client on the hyper stack poem
//! already brings, rustls (ring) with the system's roots for https, a
//! connect and a total timeout, a capped read of the answer, and the
//! target checked after DNS: the resolver hands the connector only the
//! addresses the policy allows, so a name cannot be checked as public and
//! then connect somewhere private.

use std::{
    future::Future,
    io,
    net::SocketAddr,
    pin::Pin,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use http_body_util::{BodyExt, Full};
use hyper::{
    Method, Request, Uri,
    body::Bytes,
    header::{CONTENT_TYPE, HeaderName, HeaderValue, USER_AGENT},
};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::{
    client::legacy::{
        Client,
        connect::{HttpConnector, dns::Name},
    },
    rt::TokioExecutor,
};
use tracing::warn;

use crate::domain::webhooks::{Target, check_ip};

/// How long opening a TCP connection may take (at most the total).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How much of an answer is read; the rest is dropped with the connection.
const MAX_ANSWER_BYTES: usize = 16 * 1024;
/// How much of a refusal's body the delivery log keeps.
const ANSWER_SNIPPET_CHARS: usize = 200;

/// What one attempt came to.
#[derive(Debug, Clone)]
pub struct Sent {
    /// The receiver's status code; none when no answer came.
    pub status: Option<u16>,
    /// Why it failed, for a person; none for a 2xx.
    pub error: Option<String>,
    pub latency: Duration,
}

/// The resolver behind the connector: DNS through the OS, then the SSRF
/// policy on every address.
#[derive(Clone)]
pub struct CheckedResolver {
    allow_private: bool,
}

impl tower_service::Service<Name> for CheckedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, io::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), io::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            if allow_private {
                return Ok(found.into_iter());
            }
            let mut refused = None;
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| match check_ip(a.ip()) {
                    Ok(()) => true,
                    Err(e) => {
                        refused.get_or_insert(e);
                        false
                    }
                })
                .collect();
            match (allowed.is_empty(), refused) {
                (true, Some(why)) => Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    format!("{} resolves to a refused address: {why}", name.as_str()),
                )),
                _ => Ok(allowed.into_iter()),
            }
        })
    }
}

/// The HTTP client webhook messages go out through.
pub struct Transport {
    client: Client<HttpsConnector<HttpConnector<CheckedResolver>>, Full<Bytes>>,
    allow_private: bool,
    /// How long one attempt may take, connection and answer included.
    timeout: Duration,
}

impl Transport {
    pub fn new(allow_private: bool, timeout: Duration) -> Self {
        let mut http = HttpConnector::new_with_resolver(CheckedResolver { allow_private });
        http.set_connect_timeout(Some(CONNECT_TIMEOUT.min(timeout)));
        http.enforce_http(false);
        let connector = tls_builder()
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Self {
            client: Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(30))
                .pool_max_idle_per_host(2)
                .build(connector),
            allow_private,
            timeout,
        }
    }

    /// POSTs `body` as JSON with `headers`. Never fails: what went wrong is
    /// in the answer, for the delivery log.
    pub async fn post(&self, url: &str, headers: &[(HeaderName, String)], body: String) -> Sent {
        let started = Instant::now();
        let outcome = tokio::time::timeout(self.timeout, self.attempt(url, headers, body)).await;
        let latency = started.elapsed();
        match outcome {
            Ok(Ok((status, snippet))) => Sent {
                status: Some(status),
                error: (!(200..300).contains(&status)).then(|| {
                    if snippet.is_empty() {
                        format!("answered {status}")
                    } else {
                        format!("answered {status}: {snippet}")
                    }
                }),
                latency,
            },
            Ok(Err(why)) => Sent {
                status: None,
                error: Some(why),
                latency,
            },
            Err(_) => Sent {
                status: None,
                error: Some(format!(
                    "no answer within {:.1} s",
                    self.timeout.as_secs_f64()
                )),
                latency,
            },
        }
    }

    async fn attempt(
        &self,
        url: &str,
        headers: &[(HeaderName, String)],
        body: String,
    ) -> Result<(u16, String), String> {
        let target = Target::parse(url).map_err(|e| e.to_string())?;
        // The connector skips the resolver for an address written in the
        // URL, so the policy is applied to it here.
        if !self.allow_private
            && let Some(ip) = target.literal_ip()
        {
            check_ip(ip).map_err(|e| e.to_string())?;
        }
        let uri: Uri = url.parse().map_err(|e| format!("bad URL: {e}"))?;
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(CONTENT_TYPE, "application/json")
            .header(
                USER_AGENT,
                concat!("griot-registry-webhooks/", env!("CARGO_PKG_VERSION")),
            );
        for (name, value) in headers {
            let value = HeaderValue::from_str(value).map_err(|e| format!("bad header: {e}"))?;
            req = req.header(name, value);
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| format!("cannot build the request: {e}"))?;
        let resp = self
            .client
            .request(req)
            .await
            .map_err(|e| connect_error(&e))?;
        let status = resp.status().as_u16();
        let mut body = resp.into_body();
        let mut kept = Vec::new();
        while kept.len() < MAX_ANSWER_BYTES {
            match body.frame().await {
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        kept.extend_from_slice(data);
                    }
                }
                // The status is what counts; a broken body after it does not
                // change what the receiver said.
                Some(Err(_)) | None => break,
            }
        }
        let snippet: String = String::from_utf8_lossy(&kept)
            .chars()
            .filter(|c| !c.is_control())
            .take(ANSWER_SNIPPET_CHARS)
            .collect();
        Ok((status, snippet))
    }
}

/// hyper-util's error says "client error (Connect)"; the cause below it
/// says what happened.
fn connect_error(e: &hyper_util::client::legacy::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        parts.push(s.to_string());
        source = s.source();
    }
    parts.dedup();
    format!("cannot deliver: {}", parts.join(": "))
}

/// rustls with the system's trusted roots; without any, https targets fail
/// with a clear error and http ones still work.
fn tls_builder() -> hyper_rustls::HttpsConnectorBuilder<hyper_rustls::builderstates::WantsSchemes> {
    match HttpsConnectorBuilder::new().with_native_roots() {
        Ok(builder) => builder,
        Err(e) => {
            warn!(error = %e, "no trusted CA certificates: https webhook targets will fail");
            HttpsConnectorBuilder::new().with_tls_config(
                rustls::ClientConfig::builder()
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth(),
            )
        }
    }
}
