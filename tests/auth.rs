//! X-API-Key authentication on every route.

mod common;

use common::{Options, TestApp};
use griot_registry::{
    app::keys,
    domain::{keys::KeyScope, time::Timestamp},
    store::keys as key_store,
};
use poem::http::{Method, StatusCode};
use r2d2_sqlite::rusqlite;
use serde_json::{Value, json};

/// The kinds of credential a request can carry.
#[derive(Debug, Clone, Copy)]
enum Cred {
    None,
    Malformed,
    Unknown,
    Revoked,
    Read,
    Write,
}

const CREDS: [Cred; 6] = [
    Cred::None,
    Cred::Malformed,
    Cred::Unknown,
    Cred::Revoked,
    Cred::Read,
    Cred::Write,
];

struct Fixture {
    app: TestApp,
    revoked_key: String,
    run_id: String,
    validation_id: String,
}

async fn fixture(require_auth_for_reads: bool) -> Fixture {
    let app = TestApp::with(Options {
        require_auth_for_reads,
        ..Default::default()
    })
    .await;
    let (_, revoked) = keys::create(&app.store, "old-bot", KeyScope::Write).unwrap();
    app.store
        .write_blocking(move |tx| key_store::revoke(tx, "old-bot", Timestamp::now()))
        .unwrap();
    let run_id = app.create_run_for("c").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let validation_id = app
        .record_validation(json!({"contract_id": "c", "status": "passed"}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    Fixture {
        app,
        revoked_key: revoked.expose().to_owned(),
        run_id,
        validation_id,
    }
}

impl Fixture {
    fn key(&self, cred: Cred) -> Option<String> {
        match cred {
            Cred::None => None,
            Cred::Malformed => Some("not-a-key".into()),
            Cred::Unknown => Some(format!("grk_{}", "0".repeat(64))),
            Cred::Revoked => Some(self.revoked_key.clone()),
            Cred::Read => Some(self.app.read_key.clone()),
            Cred::Write => Some(self.app.write_key.clone()),
        }
    }

    /// Every route, with a body that succeeds for a write key.
    fn routes(&self) -> Vec<(Method, String, Option<Value>)> {
        vec![
            (
                Method::POST,
                "/api/v1/runs".into(),
                Some(json!({"contract_id": "c"})),
            ),
            (
                Method::PATCH,
                format!("/api/v1/runs/{}", self.run_id),
                Some(json!({"metadata": {"touched": true}})),
            ),
            (
                Method::POST,
                "/api/v1/validations".into(),
                Some(json!({"contract_id": "c", "status": "failed"})),
            ),
            (Method::GET, "/api/v1/runs".into(), None),
            (Method::GET, format!("/api/v1/runs/{}", self.run_id), None),
            (Method::GET, "/api/v1/validations".into(), None),
            (
                Method::GET,
                format!("/api/v1/validations/{}", self.validation_id),
                None,
            ),
            (Method::GET, "/api/v1/validations/stats/c".into(), None),
            (
                Method::POST,
                format!("/api/v1/runs/{}/heartbeat", self.run_id),
                Some(json!({})),
            ),
            (
                Method::GET,
                format!("/api/v1/runs/{}/events", self.run_id),
                None,
            ),
            (
                Method::GET,
                format!("/api/v1/runs/{}/wait?timeout=0", self.run_id),
                None,
            ),
        ]
    }
}

fn expected(
    method: &Method,
    path: &str,
    cred: Cred,
    reads_protected: bool,
) -> (StatusCode, Option<&'static str>) {
    let write = method != Method::GET;
    let ok = if method == Method::POST && !path.ends_with("/heartbeat") {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    match cred {
        Cred::Malformed => (StatusCode::UNAUTHORIZED, Some("malformed")),
        Cred::Unknown => (StatusCode::UNAUTHORIZED, Some("unknown")),
        Cred::Revoked => (StatusCode::UNAUTHORIZED, Some("revoked")),
        Cred::None if write || reads_protected => (StatusCode::UNAUTHORIZED, Some("API key")),
        Cred::Read if write => (StatusCode::FORBIDDEN, Some("read scope")),
        _ => (ok, None),
    }
}

async fn check_matrix(reads_protected: bool) {
    let f = fixture(reads_protected).await;
    let before = count_rows(&f.app);
    let mut writes_ok = 0;
    for (method, path, body) in f.routes() {
        for cred in CREDS {
            let key = f.key(cred);
            let r = f
                .app
                .request(method.clone(), &path, key.as_deref(), body.clone())
                .await;
            let (status, word) = expected(&method, &path, cred, reads_protected);
            let what = format!("{method} {path} with {cred:?} key");
            assert_eq!(r.status, status, "{what}: {:#}", r.body);
            if let Some(word) = word {
                let code = match status {
                    StatusCode::FORBIDDEN => "FORBIDDEN",
                    _ => "UNAUTHORIZED",
                };
                r.expect_error(status, code);
                assert!(r.message().contains(word), "{what}: {}", r.message());
            } else if status == StatusCode::CREATED {
                writes_ok += 1;
            }
        }
    }
    // Only the two POSTs with a write key stored anything.
    assert_eq!(count_rows(&f.app), before + writes_ok);
    assert_eq!(writes_ok, 2);
}

fn count_rows(app: &TestApp) -> usize {
    let conn = rusqlite::Connection::open(app.db_path()).unwrap();
    let n: i64 = conn
        .query_row(
            "SELECT (SELECT count(*) FROM runs) + (SELECT count(*) FROM validations)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    n as usize
}

#[tokio::test]
async fn every_route_with_every_kind_of_key_reads_open() {
    check_matrix(false).await;
}

#[tokio::test]
async fn every_route_with_every_kind_of_key_reads_protected() {
    check_matrix(true).await;
}

#[tokio::test]
async fn health_stays_open_when_reads_are_protected() {
    let app = TestApp::with(Options {
        require_auth_for_reads: true,
        ..Default::default()
    })
    .await;
    app.get("/health").await.expect(StatusCode::OK);
    app.get("/health/ready").await.expect(StatusCode::OK);
}

#[tokio::test]
async fn created_by_and_recorded_by_are_the_key_name() {
    let app = TestApp::spawn().await;
    let run = app.create_run_for("c").await;
    assert_eq!(run["created_by"], "pipeline-bot");
    let v = app
        .record_validation(json!({"contract_id": "c", "status": "passed"}))
        .await;
    assert_eq!(v["recorded_by"], "pipeline-bot");
}

#[tokio::test]
async fn a_key_revoked_while_serving_is_refused_at_once() {
    let app = TestApp::spawn().await;
    app.create_run_for("c").await;
    app.store
        .write_blocking(move |tx| key_store::revoke(tx, "pipeline-bot", Timestamp::now()))
        .unwrap();
    let r = app.post("/api/v1/runs", json!({"contract_id": "c"})).await;
    r.expect_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    assert!(r.message().contains("revoked"));
}

#[tokio::test]
async fn the_key_table_holds_no_secret() {
    let app = TestApp::spawn().await;
    let conn = rusqlite::Connection::open(app.db_path()).unwrap();
    let mut stmt = conn.prepare("SELECT * FROM api_keys").unwrap();
    let columns = stmt.column_count();
    let mut rows = stmt.query([]).unwrap();
    let mut dump = String::new();
    while let Some(row) = rows.next().unwrap() {
        for i in 0..columns {
            let v: rusqlite::types::Value = row.get(i).unwrap();
            dump.push_str(&format!("{v:?} "));
        }
    }
    assert!(dump.contains("pipeline-bot"));
    for secret in [&app.write_key, &app.read_key] {
        assert!(!dump.contains(secret.as_str()));
        assert!(!dump.contains(&secret[4..]), "not even without the prefix");
    }
}

#[tokio::test]
async fn bootstrap_twice_on_the_same_file_gives_one_key() {
    let app = TestApp::spawn().await;
    let secret = format!("grk_{}", "ab".repeat(32));
    assert_eq!(
        keys::bootstrap(&app.store, &secret, "automation").unwrap(),
        keys::Bootstrap::Created
    );
    assert_eq!(
        keys::bootstrap(&app.store, &secret, "automation").unwrap(),
        keys::Bootstrap::AlreadyThere
    );
    let all = app.store.read_blocking(key_store::list).unwrap();
    assert_eq!(all.iter().filter(|k| k.name == "automation").count(), 1);
    let run = app
        .request(
            Method::POST,
            "/api/v1/runs",
            Some(&secret),
            Some(json!({"contract_id": "c"})),
        )
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(run["created_by"], "automation");
}

#[tokio::test]
async fn bootstrap_refuses_a_malformed_secret_and_a_taken_name() {
    let app = TestApp::spawn().await;
    let err = keys::bootstrap(&app.store, "short", "x").unwrap_err();
    assert!(err.to_string().contains("grk_"), "{err}");
    let secret = format!("grk_{}", "cd".repeat(32));
    let err = keys::bootstrap(&app.store, &secret, "pipeline-bot").unwrap_err();
    assert!(
        err.to_string().contains("GRIOT_BOOTSTRAP_API_KEY_NAME"),
        "{err}"
    );
}

#[tokio::test]
async fn key_names_are_unique() {
    let app = TestApp::spawn().await;
    let err = keys::create(&app.store, "pipeline-bot", KeyScope::Read).unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
}

#[tokio::test]
async fn last_used_is_recorded() {
    let app = TestApp::spawn().await;
    app.create_run_for("c").await;
    // The touch is written off the request path; give it a moment.
    let mut used = None;
    for _ in 0..50 {
        let keys = app.store.read_blocking(key_store::list).unwrap();
        used = keys
            .into_iter()
            .find(|k| k.name == "pipeline-bot")
            .and_then(|k| k.last_used_at);
        if used.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(used.is_some(), "last_used_at was not recorded");
}

#[tokio::test]
async fn the_spec_declares_the_api_key_scheme() {
    let app = TestApp::spawn().await;
    let spec = app.get("/openapi.json").await.expect(StatusCode::OK);
    let scheme = &spec["components"]["securitySchemes"]["ApiKeyAuth"];
    assert_eq!(scheme["type"], "apiKey");
    assert_eq!(scheme["in"], "header");
    assert_eq!(scheme["name"], "X-API-Key");
    let create = &spec["paths"]["/api/v1/runs"]["post"];
    assert_eq!(create["security"], json!([{"ApiKeyAuth": []}]));
    // Reads inherit the document's default: a key, or none.
    let list = &spec["paths"]["/api/v1/runs"]["get"];
    assert!(list.get("security").is_none());
    assert_eq!(spec["security"], json!([{"ApiKeyAuth": []}, {}]));
    // The probes never need one.
    assert_eq!(spec["paths"]["/health"]["get"]["security"], json!([]));
}

#[tokio::test]
async fn a_non_ascii_key_is_named_as_such_on_reads_and_writes() {
    let app = TestApp::spawn().await;
    // A key with a non-breaking space picked up where it was pasted.
    let pasted = format!("grk_{}\u{a0}", "ab".repeat(32));
    let body = json!({"contract_id": "c"}).to_string();
    for (method, path) in [
        (Method::POST, "/api/v1/runs"),
        (Method::GET, "/api/v1/runs"),
        (Method::POST, "/api/v1/validations"),
    ] {
        let r = app
            .raw(
                method.clone(),
                path,
                &[("X-API-Key", &pasted), ("Content-Type", "application/json")],
                body.clone(),
            )
            .await;
        r.expect_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
        assert!(
            r.message()
                .contains("the X-API-Key header holds non-ASCII bytes"),
            "{method} {path}: {}",
            r.message()
        );
    }
}
