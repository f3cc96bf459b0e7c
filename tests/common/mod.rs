//! Shared steps for the integration tests: an app on its own temporary
//! database, keys of each scope, and short named requests.
#![allow(dead_code)]

pub mod server;

use std::path::PathBuf;

use griot_registry::{
    App, HttpOptions,
    app::Settings,
    app::WebhookSettings,
    app::keys,
    build_app,
    domain::{keys::KeyScope, limits::Limits, time::Clock, time::Timestamp},
    store::{Store, StoreOptions},
};
use poem::{EndpointExt, endpoint::BoxEndpoint, http::Method, http::StatusCode, test::TestClient};
use serde_json::{Value, json};
use tempfile::TempDir;

pub struct TestApp {
    state: App,
    pub client: TestClient<BoxEndpoint<'static, poem::Response>>,
    pub store: Store,
    pub clock: Clock,
    pub write_key: String,
    pub read_key: String,
    pub dir: TempDir,
}

/// A response, reduced to what tests look at.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: poem::http::HeaderMap,
    pub body: Value,
}

impl Reply {
    /// The error code of an error body.
    pub fn code(&self) -> &str {
        self.body["detail"]["code"]
            .as_str()
            .unwrap_or("<no error code>")
    }

    pub fn message(&self) -> &str {
        self.body["detail"]["message"]
            .as_str()
            .unwrap_or("<no error message>")
    }

    #[track_caller]
    pub fn expect(self, status: StatusCode) -> Value {
        assert_eq!(self.status, status, "unexpected reply: {:#}", self.body);
        self.body
    }

    /// Asserts an error in the project's one shape.
    #[track_caller]
    pub fn expect_error(&self, status: StatusCode, code: &str) {
        assert_eq!(self.status, status, "unexpected reply: {:#}", self.body);
        assert_eq!(self.code(), code, "unexpected reply: {:#}", self.body);
        assert!(!self.message().is_empty());
        let detail = self.body["detail"].as_object().expect("detail object");
        assert_eq!(detail.len(), 2, "detail has exactly code and message");
    }
}

pub struct Options {
    pub require_auth_for_reads: bool,
    pub max_body_bytes: usize,
    pub clock: Clock,
    pub limits: Limits,
    pub webhooks: WebhookSettings,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            require_auth_for_reads: false,
            max_body_bytes: HttpOptions::default().max_body_bytes,
            clock: Clock::System,
            limits: Limits::default(),
            webhooks: WebhookSettings::default(),
        }
    }
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::with(Options::default()).await
    }

    pub async fn with(options: Options) -> Self {
        Self::in_dir(tempfile::tempdir().expect("temp dir"), options)
    }

    /// An app on `dir/registry.db`, which may already hold data.
    pub fn in_dir(dir: TempDir, options: Options) -> Self {
        let store = Store::open(&dir.path().join("registry.db"), &StoreOptions::default())
            .expect("open store");
        let (_, write) = keys::create(&store, "pipeline-bot", KeyScope::Write).expect("write key");
        let (_, read) = keys::create(&store, "dashboard", KeyScope::Read).expect("read key");
        Self::on(
            dir,
            store,
            options,
            write.expose().into(),
            read.expose().into(),
        )
    }

    /// A new app on the same database file, as after a restart.
    pub fn restart(self) -> Self {
        let TestApp {
            dir,
            write_key,
            read_key,
            store,
            ..
        } = self;
        drop(store);
        let store = Store::open(&dir.path().join("registry.db"), &StoreOptions::default())
            .expect("reopen store");
        Self::on(dir, store, Options::default(), write_key, read_key)
    }

    fn on(
        dir: TempDir,
        store: Store,
        options: Options,
        write_key: String,
        read_key: String,
    ) -> Self {
        let state = griot_registry::new_app(
            store.clone(),
            Settings {
                require_auth_for_reads: options.require_auth_for_reads,
                limits: options.limits,
                webhooks: options.webhooks,
                ..Settings::default()
            },
            options.clock.clone(),
        );
        let app = build_app(
            state.clone(),
            &HttpOptions {
                max_body_bytes: options.max_body_bytes,
                ..HttpOptions::default()
            },
        );
        Self {
            state,
            client: TestClient::new(app.boxed()),
            store,
            clock: options.clock,
            write_key,
            read_key,
            dir,
        }
    }

    /// The state the app serves with, for background work such as sweeps.
    pub fn state(&self) -> App {
        self.state.clone()
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("registry.db")
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut headers = Vec::new();
        if let Some(k) = key {
            headers.push(("X-API-Key", k));
        }
        match body {
            Some(b) => {
                headers.push(("Content-Type", "application/json"));
                self.raw(method, path, &headers, b.to_string()).await
            }
            None => self.raw(method, path, &headers, poem::Body::empty()).await,
        }
    }

    /// A request with any headers and body, for bodies that are not JSON
    /// values.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<poem::Body>,
    ) -> Reply {
        let (status, headers, bytes) = self.send(method, path, headers, body).await;
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                panic!(
                    "{status}: body is not JSON: {}",
                    String::from_utf8_lossy(&bytes)
                )
            })
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.request(Method::GET, path, None, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.request(
            Method::POST,
            path,
            Some(&self.write_key.clone()),
            Some(body),
        )
        .await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Reply {
        self.request(
            Method::PATCH,
            path,
            Some(&self.write_key.clone()),
            Some(body),
        )
        .await
    }

    /// Creates a run and returns it.
    pub async fn create_run(&self, body: Value) -> Value {
        self.post("/api/v1/runs", body)
            .await
            .expect(StatusCode::CREATED)
    }

    pub async fn create_run_for(&self, contract: &str) -> Value {
        self.create_run(json!({"contract_id": contract})).await
    }

    pub async fn get_run(&self, id: &str) -> Reply {
        self.get(&format!("/api/v1/runs/{id}")).await
    }

    pub async fn update_run(&self, id: &str, body: Value) -> Reply {
        self.patch(&format!("/api/v1/runs/{id}"), body).await
    }

    pub async fn list_runs(&self, query: &str) -> Value {
        self.get(&format!("/api/v1/runs?{query}"))
            .await
            .expect(StatusCode::OK)
    }

    pub async fn record_validation(&self, body: Value) -> Value {
        self.post("/api/v1/validations", body)
            .await
            .expect(StatusCode::CREATED)
    }
}

/// An HTML answer of the dashboard.
#[derive(Debug)]
pub struct Html {
    pub status: StatusCode,
    pub headers: poem::http::HeaderMap,
    pub text: String,
}

impl Html {
    #[track_caller]
    pub fn expect(self, status: StatusCode) -> String {
        assert_eq!(self.status, status, "unexpected page:\n{}", self.text);
        self.text
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl TestApp {
    /// A dashboard request: any method, headers and body, the answer as text.
    pub async fn html(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<poem::Body>,
    ) -> Html {
        let (status, headers, bytes) = self.send(method, path, headers, body).await;
        Html {
            status,
            headers,
            text: String::from_utf8(bytes).expect("the page is UTF-8"),
        }
    }

    /// Sends a request; answers its status, headers and body bytes.
    async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<poem::Body>,
    ) -> (StatusCode, poem::http::HeaderMap, Vec<u8>) {
        let mut req = self.client.request(method, path).body(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.0;
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().into_vec().await.expect("body");
        (status, headers, bytes)
    }

    /// GET of a dashboard page, with no key.
    pub async fn page(&self, path: &str) -> Html {
        self.html(Method::GET, path, &[], poem::Body::empty()).await
    }
}

/// The ids of a list answer's items, in order.
pub fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["id"].as_str().expect("id").to_owned())
        .collect()
}

pub fn ts(s: &str) -> Timestamp {
    Timestamp::parse_lenient(s).expect("timestamp")
}

/// insta settings shared by every snapshot: files under the top-level
/// snapshots/ folder, and volatile fields redacted.
pub fn snapshot_settings() -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.set_snapshot_path(concat!(env!("CARGO_MANIFEST_DIR"), "/snapshots"));
    s.set_prepend_module_to_snapshot(true);
    s.set_omit_expression(true);
    s
}

/// An HTTP client on the app served from `store` with default settings: for
/// tests that open the store with options of their own.
pub fn client_on(store: Store) -> TestClient<BoxEndpoint<'static, poem::Response>> {
    let app = build_app(
        griot_registry::new_app(store, Default::default(), Clock::System),
        &HttpOptions::default(),
    );
    TestClient::new(app.boxed())
}

/// A read that holds one reader connection of `store` until released.
pub struct HeldReader {
    release: std::sync::mpsc::Sender<()>,
    holder: std::thread::JoinHandle<Result<(), griot_registry::store::StoreError>>,
}

impl HeldReader {
    /// Takes a reader connection and returns once it is held.
    pub fn take(store: &Store) -> Self {
        let (holding, held) = std::sync::mpsc::channel();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let holder = std::thread::spawn({
            let store = store.clone();
            move || {
                store.read_blocking(|_| {
                    holding.send(()).unwrap();
                    released.recv().unwrap();
                    Ok(())
                })
            }
        });
        held.recv().unwrap();
        Self { release, holder }
    }

    /// Lets the connection go and waits until the read has ended.
    pub fn release(self) {
        self.release.send(()).unwrap();
        self.holder.join().unwrap().unwrap();
    }
}
