//! A server whose database connections are all busy answers 503 with
//! Retry-After, in the usual error shape, instead of a 500.

mod common;

use std::time::Duration;

use common::{HeldReader, client_on};
use griot_registry::store::{Store, StoreOptions};
use poem::http::StatusCode;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_read_pool_answers_503_with_retry_after() {
    // Arrange: one reader connection, held by a read that waits for us.
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(
        &dir.path().join("registry.db"),
        &StoreOptions {
            read_connections: 1,
            pool_timeout: Duration::from_millis(100),
            ..StoreOptions::default()
        },
    )
    .unwrap();
    let held = HeldReader::take(&store);
    let client = client_on(store);

    // Act (a list: a get run is read on the async worker, tests/reads.rs)
    let resp = client.get("/api/v1/runs").send().await;

    // Assert
    resp.assert_status(StatusCode::SERVICE_UNAVAILABLE);
    resp.assert_header("Retry-After", "1");
    let body: Value = resp.0.into_body().into_json().await.unwrap();
    assert_eq!(body["detail"]["code"], "SERVICE_UNAVAILABLE", "{body:#}");
    assert!(
        body["detail"]["message"]
            .as_str()
            .unwrap()
            .contains("Retry-After"),
        "{body:#}"
    );
    assert_eq!(body["detail"].as_object().unwrap().len(), 2, "{body:#}");

    held.release();
}
