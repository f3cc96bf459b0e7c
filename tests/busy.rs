//! A server whose database connections are all busy answers 503 with
//! Retry-After, in the usual error shape, instead of a 500.

use std::{sync::mpsc, time::Duration};

use griot_registry::{
    HttpOptions, build_app,
    domain::time::Clock,
    store::{Store, StoreOptions},
};
use poem::{EndpointExt, http::StatusCode, test::TestClient};
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
    let (holding, held) = mpsc::channel();
    let (release, released) = mpsc::channel::<()>();
    let holder = std::thread::spawn({
        let store = store.clone();
        move || {
            store.read_blocking(|_| {
                holding.send(()).unwrap();
                released.recv().unwrap();
                Ok::<_, griot_registry::store::StoreError>(())
            })
        }
    });
    held.recv().unwrap();
    let app = build_app(
        griot_registry::new_app(store, Default::default(), Clock::System),
        &HttpOptions::default(),
    );
    let client = TestClient::new(app.boxed());

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

    release.send(()).unwrap();
    holder.join().unwrap().unwrap();
}
