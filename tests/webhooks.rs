//! Webhooks in process: who may manage them, which changes write messages
//! (and which never do), and delivery to a real local receiver over TCP:
//! signatures, retries with the same webhook-id, order, timeouts, giving
//! up, redelivery, Slack's format and the private-address policy.

mod common;

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
    time::Duration,
};

use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use common::{Options, Reply, TestApp};
use griot_registry::{
    app::{WebhookSettings, keys, lifecycle, webhooks::delivery},
    domain::{keys::KeyScope, time::Clock},
};
use poem::{
    EndpointExt, Route, Server, handler,
    http::{HeaderMap, Method, StatusCode},
    listener::TcpListener,
    web::Data,
};
use serde_json::{Value, json};
use tokio::sync::watch;

/// What the receiver got: headers and body of each POST.
#[derive(Clone, Debug)]
struct Received {
    headers: HeaderMap,
    body: String,
}

impl Received {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

/// A receiver on a loopback port: answers each POST with the next scripted
/// (status, delay), 200 when the script is empty.
#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<VecDeque<(u16, Duration)>>>,
}

#[handler]
async fn receive(req: &poem::Request, body: String, r: Data<&Receiver>) -> StatusCode {
    r.got.lock().unwrap().push(Received {
        headers: req.headers().clone(),
        body,
    });
    let next = r.script.lock().unwrap().pop_front();
    let (status, delay) = next.unwrap_or((200, Duration::ZERO));
    tokio::time::sleep(delay).await;
    StatusCode::from_u16(status).unwrap()
}

impl Receiver {
    /// Starts it; returns its URL.
    async fn start(&self) -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let app = Route::new().at("/hook", receive).data(self.clone());
        tokio::spawn(Server::new(TcpListener::bind(format!("127.0.0.1:{port}"))).run(app));
        // Wait until it accepts.
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        format!("http://127.0.0.1:{port}/hook")
    }

    fn then(&self, status: u16, delay: Duration) -> &Self {
        self.script.lock().unwrap().push_back((status, delay));
        self
    }

    fn got(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// Waits until `n` messages arrived (or fails after 20 s).
    async fn wait_for(&self, n: usize) -> Vec<Received> {
        for _ in 0..400 {
            let got = self.got();
            if got.len() >= n {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("expected {n} messages, got {:#?}", self.got());
    }
}

/// An app that may send to loopback (the receiver), with an admin key.
struct Fixture {
    app: TestApp,
    admin: String,
    _stop: watch::Sender<()>,
}

async fn fixture(settings: WebhookSettings) -> Fixture {
    fixture_at(settings, Clock::System).await
}

async fn fixture_at(settings: WebhookSettings, clock: Clock) -> Fixture {
    let app = TestApp::with(Options {
        webhooks: settings,
        clock,
        ..Options::default()
    })
    .await;
    let (_, admin) = keys::create(&app.store, "ops", KeyScope::Admin).unwrap();
    let (stop, stopped) = watch::channel(());
    tokio::spawn(delivery::run(app.state(), stopped));
    Fixture {
        app,
        admin: admin.expose().to_owned(),
        _stop: stop,
    }
}

fn private_ok() -> WebhookSettings {
    WebhookSettings {
        allow_private_targets: true,
        attempt_timeout: Duration::from_millis(500),
        ..WebhookSettings::default()
    }
}

impl Fixture {
    async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        self.app
            .request(method, path, Some(&self.admin.clone()), body)
            .await
    }

    /// Subscribes `url`; returns (id, secret).
    async fn subscribe(&self, url: &str, events: &[&str], extra: Value) -> (String, String) {
        let mut body = json!({"url": url, "events": events});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let created = self
            .admin(Method::POST, "/api/v1/webhooks", Some(body))
            .await
            .expect(StatusCode::CREATED);
        (
            created["id"].as_str().unwrap().to_owned(),
            created["secret"].as_str().unwrap().to_owned(),
        )
    }

    async fn deliveries(&self, id: &str) -> Value {
        self.admin(
            Method::GET,
            &format!("/api/v1/webhooks/{id}/deliveries"),
            None,
        )
        .await
        .expect(StatusCode::OK)
    }

    async fn fail_run(&self, contract: &str) -> String {
        let run = self.app.create_run_for(contract).await;
        let id = run["id"].as_str().unwrap().to_owned();
        self.app
            .update_run(&id, json!({"status": "failed"}))
            .await
            .expect(StatusCode::OK);
        id
    }
}

/// The Standard Webhooks check, written from the spec: HMAC-SHA256 keyed
/// with the base64-decoded secret over `id.timestamp.body`, base64, as one
/// of the space-separated `v1,` signatures.
fn verify(secret: &str, m: &Received) -> bool {
    let key = BASE64
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let signed = format!(
        "{}.{}.{}",
        m.header("webhook-id"),
        m.header("webhook-timestamp"),
        m.body
    );
    let tag = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key),
        signed.as_bytes(),
    );
    let expected = format!("v1,{}", BASE64.encode(tag.as_ref()));
    m.header("webhook-signature")
        .split(' ')
        .any(|s| s == expected)
}

#[tokio::test]
async fn only_admin_keys_manage_webhooks_and_the_secret_is_shown_once() {
    let f = fixture(private_ok()).await;
    let body = json!({"url": "https://hooks.example.com/x", "events": ["run.failed"]});
    for key in [f.app.write_key.clone(), f.app.read_key.clone()] {
        f.app
            .request(
                Method::POST,
                "/api/v1/webhooks",
                Some(&key),
                Some(body.clone()),
            )
            .await
            .expect_error(StatusCode::FORBIDDEN, "FORBIDDEN");
        f.app
            .request(Method::GET, "/api/v1/webhooks", Some(&key), None)
            .await
            .expect_error(StatusCode::FORBIDDEN, "FORBIDDEN");
    }
    f.app
        .request(Method::GET, "/api/v1/webhooks", None, None)
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    let (id, secret) = f
        .subscribe(
            "https://hooks.example.com/x",
            &["run.failed", "run.created"],
            json!({}),
        )
        .await;
    assert!(id.starts_with("whk_"));
    let raw = BASE64
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    assert!(raw.len() >= 24);
    let list = f
        .admin(Method::GET, "/api/v1/webhooks", None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(list["items"][0]["id"], id.as_str());
    assert_eq!(
        list["items"][0]["events"],
        json!(["run.created", "run.failed"])
    );
    assert_eq!(list["items"][0]["format"], "standard");
    assert_eq!(list["items"][0]["enabled"], true);
    assert!(!list.to_string().contains(&secret));
    let one = f
        .admin(Method::GET, &format!("/api/v1/webhooks/{id}"), None)
        .await
        .expect(StatusCode::OK);
    assert!(one.get("secret").is_none());
    // An admin key also writes.
    f.app
        .request(
            Method::POST,
            "/api/v1/runs",
            Some(&f.admin.clone()),
            Some(json!({"contract_id": "c"})),
        )
        .await
        .expect(StatusCode::CREATED);
    f.admin(Method::DELETE, &format!("/api/v1/webhooks/{id}"), None)
        .await
        .expect(StatusCode::NO_CONTENT);
    f.admin(Method::GET, &format!("/api/v1/webhooks/{id}"), None)
        .await
        .expect_error(StatusCode::NOT_FOUND, "NOT_FOUND");
}

#[tokio::test]
async fn bad_subscriptions_are_refused_with_a_reason() {
    let f = fixture(WebhookSettings::default()).await;
    for (body, says) in [
        (json!({"url": "ftp://x/", "events": ["run.failed"]}), "http"),
        (json!({"url": "https://x.com/", "events": []}), "events"),
        (
            json!({"url": "https://x.com/", "events": ["run.exploded"]}),
            "events",
        ),
        (
            json!({"url": "https://x.com/", "events": ["webhook.test"]}),
            "webhook.test",
        ),
        (
            json!({"url": "http://127.0.0.1:9/", "events": ["run.failed"]}),
            "loopback",
        ),
        (
            json!({"url": "http://169.254.169.254/latest", "events": ["run.failed"]}),
            "link-local",
        ),
        (
            json!({"url": "http://[::ffff:10.0.0.1]/", "events": ["run.failed"]}),
            "private",
        ),
        (
            json!({"url": "https://user:pw@x.com/", "events": ["run.failed"]}),
            "password",
        ),
    ] {
        let r = f
            .admin(Method::POST, "/api/v1/webhooks", Some(body.clone()))
            .await;
        r.expect_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
        assert!(r.message().contains(says), "{body}: {}", r.message());
    }
    let list = f
        .admin(Method::GET, "/api/v1/webhooks", None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(list["items"], json!([]));
}

#[tokio::test]
async fn a_name_that_resolves_to_a_private_address_is_refused_when_sent() {
    let f = fixture(WebhookSettings {
        attempt_timeout: Duration::from_millis(500),
        ..WebhookSettings::default()
    })
    .await;
    let receiver = Receiver::default();
    let url = receiver.start().await.replace("127.0.0.1", "localhost");
    // A name passes at creation: it is checked after each DNS lookup.
    let (id, _) = f.subscribe(&url, &["run.failed"], json!({})).await;
    let tested = f
        .admin(Method::POST, &format!("/api/v1/webhooks/{id}/test"), None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(tested["state"], "failed");
    let error = tested["attempts"][0]["error"].as_str().unwrap();
    assert!(error.contains("loopback"), "{error}");
    assert_eq!(tested["attempts"][0]["response_status"], Value::Null);
    assert!(receiver.got().is_empty());
}

#[tokio::test]
async fn failures_are_delivered_signed_as_the_api_shows_them() {
    let f = fixture(private_ok()).await;
    let receiver = Receiver::default();
    let url = receiver.start().await;
    let (_, secret) = f
        .subscribe(&url, &["run.failed", "validation.failed"], json!({}))
        .await;
    let run_id = f.fail_run("orders").await;
    let validation = f
        .app
        .record_validation(json!({
            "contract_id": "orders", "run_id": run_id, "status": "failed",
            "errors": [{"code": "null_values", "message": "email has 3 nulls"}]
        }))
        .await;
    // Passed validations and live runs are not events.
    f.app
        .record_validation(json!({"contract_id": "orders", "status": "passed"}))
        .await;
    let got = receiver.wait_for(2).await;
    let (run_msg, val_msg) = (got[0].json(), got[1].json());
    assert_eq!(run_msg["type"], "run.failed");
    assert_eq!(run_msg["data"]["id"], run_id.as_str());
    assert_eq!(run_msg["data"]["status"], "failed");
    // The run as GET returns it at the time of the change.
    let api = f.app.get_run(&run_id).await.expect(StatusCode::OK);
    assert_eq!(run_msg["data"]["version"], 2);
    assert_eq!(run_msg["data"]["contract_id"], api["contract_id"]);
    assert_eq!(
        run_msg["data"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        api.as_object().unwrap().keys().collect::<Vec<_>>()
    );
    assert!(run_msg["timestamp"].as_str().unwrap().ends_with('Z'));
    assert_eq!(val_msg["type"], "validation.failed");
    assert_eq!(val_msg["data"], validation);
    for m in &got {
        assert!(m.header("webhook-id").starts_with("msg_"));
        assert!(verify(&secret, m), "signature of {m:?}");
        assert!(!verify("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", m));
        assert_eq!(m.header("content-type"), "application/json");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.got().len(), 2, "nothing else was sent");
}

#[tokio::test]
async fn refused_changes_send_nothing() {
    let f = fixture(private_ok()).await;
    let receiver = Receiver::default();
    let url = receiver.start().await;
    let (id, _) = f
        .subscribe(
            &url,
            &[
                "run.created",
                "run.failed",
                "run.completed",
                "validation.failed",
            ],
            json!({}),
        )
        .await;
    let run = f.app.create_run_for("c").await;
    let run_id = run["id"].as_str().unwrap();
    f.app
        .update_run(run_id, json!({"status": "completed"}))
        .await
        .expect(StatusCode::OK);
    receiver.wait_for(2).await;
    // 409: a final run cannot fail.
    f.app
        .update_run(run_id, json!({"status": "failed"}))
        .await
        .expect_error(StatusCode::CONFLICT, "INVALID_TRANSITION");
    // 412: If-Match names a version the run has left.
    let other = f.app.create_run_for("c").await;
    let other_id = other["id"].as_str().unwrap();
    let r = f
        .app
        .raw(
            Method::PATCH,
            &format!("/api/v1/runs/{other_id}"),
            &[
                ("X-API-Key", &f.app.write_key.clone()),
                ("Content-Type", "application/json"),
                ("If-Match", "\"7\""),
            ],
            json!({"status": "failed"}).to_string(),
        )
        .await;
    r.expect_error(StatusCode::PRECONDITION_FAILED, "PRECONDITION_FAILED");
    // 422: a validation linked to another contract's run.
    f.app
        .post(
            "/api/v1/validations",
            json!({"contract_id": "other", "run_id": run_id, "status": "failed"}),
        )
        .await
        .expect_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
    receiver.wait_for(3).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let types: Vec<String> = receiver
        .got()
        .iter()
        .map(|m| m.json()["type"].as_str().unwrap().to_owned())
        .collect();
    // created, completed, and the second run's creation: nothing for the
    // three refusals.
    assert_eq!(types, ["run.created", "run.completed", "run.created"]);
    assert_eq!(f.deliveries(&id).await["total"], 3);
}

#[tokio::test]
async fn retries_keep_the_webhook_id_and_each_subscription_its_order() {
    let f = fixture(private_ok()).await;
    let receiver = Receiver::default();
    let url = receiver.start().await;
    // The first message meets a 500, then a timeout, then gets through.
    receiver
        .then(500, Duration::ZERO)
        .then(200, Duration::from_secs(2));
    let (id, secret) = f
        .subscribe(&url, &["run.created"], json!({"contract_id": "mine"}))
        .await;
    let mut runs = Vec::new();
    for _ in 0..4 {
        runs.push(
            f.app.create_run_for("mine").await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
        // Another contract's runs are not this subscription's events.
        f.app.create_run_for("theirs").await;
    }
    let got = receiver.wait_for(6).await;
    let ids: Vec<&str> = got.iter().map(|m| m.header("webhook-id")).collect();
    assert_eq!(ids[0], ids[1], "a retry keeps its webhook-id");
    assert_eq!(ids[1], ids[2]);
    let subjects: Vec<String> = got[2..]
        .iter()
        .map(|m| m.json()["data"]["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(subjects, runs, "in order, after the first got through");
    for m in &got {
        assert!(verify(&secret, m));
    }
    let log = f.deliveries(&id).await;
    assert_eq!(log["total"], 4);
    let first = &log["items"][3];
    assert_eq!(first["state"], "delivered");
    let attempts = first["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 3);
    assert_eq!(attempts[0]["response_status"], 500);
    assert_eq!(attempts[0]["error"], "answered 500");
    assert_eq!(attempts[1]["response_status"], Value::Null);
    assert!(
        attempts[1]["error"]
            .as_str()
            .unwrap()
            .contains("no answer within"),
        "{}",
        attempts[1]
    );
    assert_eq!(attempts[2]["response_status"], 200);
    assert!(first["delivered_at"].is_string());
    assert_eq!(first["next_attempt_at"], Value::Null);
    // /metrics counts the attempts by result, and nothing is left pending.
    let metrics = f
        .app
        .html(Method::GET, "/metrics", &[], poem::Body::empty())
        .await
        .expect(StatusCode::OK);
    for line in [
        "griot_webhook_attempts_total{result=\"delivered\"} 4",
        "griot_webhook_attempts_total{result=\"failed\"} 2",
        "griot_webhook_outbox_pending 0",
        "griot_webhook_attempt_duration_seconds_count 6",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
    }
}

#[tokio::test]
async fn persistent_failure_disables_and_redelivery_enables_again() {
    let f = fixture(WebhookSettings {
        retry_window: Duration::from_secs(2),
        ..private_ok()
    })
    .await;
    let receiver = Receiver::default();
    let url = receiver.start().await;
    for _ in 0..20 {
        receiver.then(503, Duration::ZERO);
    }
    let (id, _) = f.subscribe(&url, &["run.failed"], json!({})).await;
    f.fail_run("c").await;
    let mut hook = Value::Null;
    for _ in 0..100 {
        hook = f
            .admin(Method::GET, &format!("/api/v1/webhooks/{id}"), None)
            .await
            .expect(StatusCode::OK);
        if hook["enabled"] == false {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(hook["enabled"], false, "{hook}");
    let reason = hook["disabled_reason"].as_str().unwrap();
    assert!(reason.contains("answered 503"), "{reason}");
    let log = f.deliveries(&id).await;
    let message = &log["items"][0];
    assert_eq!(message["state"], "failed");
    let tries = message["attempts"].as_array().unwrap().len();
    assert!(tries >= 2, "{message}");
    // Disabled: a new failure is not queued.
    f.fail_run("c").await;
    assert_eq!(f.deliveries(&id).await["total"], 1);
    // The receiver is fixed; redelivering enables the subscription.
    receiver.script.lock().unwrap().clear();
    let before = receiver.got().len();
    let msg_id = message["id"].as_str().unwrap();
    let again = f
        .admin(
            Method::POST,
            &format!("/api/v1/webhooks/{id}/deliveries/{msg_id}/redeliver"),
            None,
        )
        .await
        .expect(StatusCode::ACCEPTED);
    assert_eq!(again["state"], "pending");
    let got = receiver.wait_for(before + 1).await;
    assert_eq!(got[before].header("webhook-id"), msg_id);
    let hook = f
        .admin(Method::GET, &format!("/api/v1/webhooks/{id}"), None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(hook["enabled"], true);
    f.admin(
        Method::POST,
        &format!("/api/v1/webhooks/{id}/deliveries/msg_nope/redeliver"),
        None,
    )
    .await
    .expect_error(StatusCode::NOT_FOUND, "NOT_FOUND");
}

#[tokio::test]
async fn heartbeat_expiry_is_told_once_per_subscription() {
    let f = fixture_at(
        private_ok(),
        Clock::fixed(common::ts("2024-01-15T10:00:00Z")),
    )
    .await;
    let receiver = Receiver::default();
    let url = receiver.start().await;
    let (failures, _) = f.subscribe(&url, &["run.failed"], json!({})).await;
    let (both, _) = f
        .subscribe(&url, &["run.failed", "run.heartbeat_expired"], json!({}))
        .await;
    let run = f
        .app
        .create_run(json!({
            "contract_id": "c", "status": "running", "heartbeat_timeout_seconds": 60
        }))
        .await;
    f.app.clock.set(common::ts("2024-01-15T10:01:01Z"));
    let expired = lifecycle::sweep(&f.app.state()).await.unwrap();
    assert_eq!(expired, [run["id"].as_str().unwrap()]);
    let got = receiver.wait_for(2).await;
    let mut types: Vec<String> = got
        .iter()
        .map(|m| m.json()["type"].as_str().unwrap().to_owned())
        .collect();
    types.sort();
    assert_eq!(types, ["run.failed", "run.heartbeat_expired"]);
    assert_eq!(f.deliveries(&failures).await["total"], 1);
    assert_eq!(f.deliveries(&both).await["total"], 1);
    let msg = got[0].json();
    assert_eq!(
        msg["data"]["metadata"]["failure_reason"],
        "heartbeat_timeout"
    );
}

#[tokio::test]
async fn slack_messages_name_the_pipeline_contract_status_and_link_the_run() {
    let f = fixture(WebhookSettings {
        public_url: "https://griot.example.com".into(),
        ..private_ok()
    })
    .await;
    let receiver = Receiver::default();
    let url = receiver.start().await;
    let (id, _) = f
        .subscribe(
            &url,
            &["run.failed", "validation.warning"],
            json!({"format": "slack"}),
        )
        .await;
    let run = f
        .app
        .create_run(json!({"contract_id": "orders<&>", "pipeline_name": "nightly"}))
        .await;
    let run_id = run["id"].as_str().unwrap();
    f.app
        .update_run(run_id, json!({"status": "failed"}))
        .await
        .expect(StatusCode::OK);
    let got = receiver.wait_for(1).await;
    let text = got[0].json()["text"].as_str().unwrap().to_owned();
    assert!(text.contains("Run failed"), "{text}");
    assert!(text.contains("*nightly*"), "{text}");
    assert!(text.contains("orders&lt;&amp;&gt;"), "{text}");
    assert!(
        text.contains(&format!(
            "<https://griot.example.com/ui/runs/{run_id}|{run_id}>"
        )),
        "{text}"
    );
    // The test action speaks Slack too.
    let tested = f
        .admin(Method::POST, &format!("/api/v1/webhooks/{id}/test"), None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(tested["state"], "delivered");
    assert_eq!(tested["event"], "webhook.test");
    let got = receiver.wait_for(2).await;
    assert!(
        got[1].json()["text"]
            .as_str()
            .unwrap()
            .contains("Test message")
    );
}

#[tokio::test]
async fn messages_survive_a_restart_and_are_sent_after_it() {
    let receiver = Receiver::default();
    let url = receiver.start().await;
    let f = fixture(private_ok()).await;
    let (id, secret) = f.subscribe(&url, &["run.failed"], json!({})).await;
    // The worker is stopped before the change: the message waits in the
    // outbox, in the database.
    let Fixture { app, admin, _stop } = f;
    drop(_stop);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let run = app.create_run_for("c").await;
    let run_id = run["id"].as_str().unwrap().to_owned();
    app.update_run(&run_id, json!({"status": "failed"}))
        .await
        .expect(StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(receiver.got().is_empty());
    let app = app.restart();
    let (_stop, stopped) = watch::channel(());
    let worker = griot_registry::new_app(
        app.store.clone(),
        griot_registry::app::Settings {
            webhooks: private_ok(),
            ..Default::default()
        },
        app.clock.clone(),
    );
    tokio::spawn(delivery::run(worker, stopped));
    let got = receiver.wait_for(1).await;
    assert_eq!(got[0].json()["data"]["id"], run_id.as_str());
    assert!(verify(&secret, &got[0]));
    let log = app
        .request(
            Method::GET,
            &format!("/api/v1/webhooks/{id}/deliveries"),
            Some(&admin),
            None,
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(log["items"][0]["attempts"].as_array().unwrap().len(), 1);
}
