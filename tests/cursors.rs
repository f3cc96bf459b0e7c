//! Keyset paging: `cursor` in, `next_cursor` out, beside limit/offset.

mod common;

use common::{TestApp, ids};
use poem::http::StatusCode;
use serde_json::{Value, json};

/// Follows `next_cursor` from the first page to the last.
async fn walk(app: &TestApp, path: &str, query: &str, limit: u32) -> (Vec<String>, Vec<Value>) {
    let mut seen = Vec::new();
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{path}?{query}&limit={limit}");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let page = app.get(&url).await.expect(StatusCode::OK);
        seen.extend(ids(&page));
        cursor = page["next_cursor"].as_str().map(str::to_owned);
        pages.push(page);
        if cursor.is_none() {
            return (seen, pages);
        }
        assert!(pages.len() < 100, "the walk does not end");
    }
}

#[tokio::test]
async fn a_cursor_walk_sees_every_run_once_in_list_order() {
    let app = TestApp::spawn().await;
    // Ties on started_at are ordered by id, across page boundaries too.
    for i in 0..7 {
        app.create_run(json!({
            "contract_id": "c",
            "started_at": format!("2024-01-15T10:00:0{}Z", i % 3)
        }))
        .await;
    }
    app.create_run(json!({"contract_id": "other"})).await;
    let by_offset = ids(&app.list_runs("contract_id=c&limit=100").await);
    let (by_cursor, pages) = walk(&app, "/api/v1/runs", "contract_id=c", 3).await;
    assert_eq!(by_cursor, by_offset);
    assert_eq!(pages.len(), 3);
    for page in &pages {
        assert_eq!(
            page["total"], 7,
            "total counts every match, not what is left"
        );
        assert_eq!(page["offset"], 0);
    }
    assert_eq!(pages[2]["next_cursor"], Value::Null);
    // A full last page says so too: no empty page after it.
    let (exact, pages) = walk(&app, "/api/v1/runs", "contract_id=c", 7).await;
    assert_eq!(exact, by_offset);
    assert_eq!(pages.len(), 1);
}

#[tokio::test]
async fn runs_created_during_a_walk_do_not_shift_it() {
    let app = TestApp::spawn().await;
    for i in 0..6 {
        app.create_run(json!({
            "contract_id": "c",
            "started_at": format!("2024-01-15T10:00:0{i}Z")
        }))
        .await;
    }
    let first = app.list_runs("contract_id=c&limit=2").await;
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    // Newer runs arrive: with offset=2 the walk would see a run twice.
    for _ in 0..2 {
        app.create_run(json!({"contract_id": "c"})).await;
    }
    let rest = app
        .list_runs(&format!("contract_id=c&limit=10&cursor={cursor}"))
        .await;
    let mut seen = ids(&first);
    seen.extend(ids(&rest));
    let old: Vec<String> = ids(&app.list_runs("contract_id=c&limit=100").await)
        .into_iter()
        .skip(2)
        .collect();
    assert_eq!(seen, old);
}

#[tokio::test]
async fn validations_walk_by_cursor_too() {
    let app = TestApp::spawn().await;
    for i in 0..5 {
        app.record_validation(json!({
            "contract_id": "c", "status": "passed",
            "recorded_at": format!("2024-01-15T10:00:0{}Z", i % 2)
        }))
        .await;
    }
    let all = app
        .get("/api/v1/validations?contract_id=c&limit=100")
        .await
        .expect(StatusCode::OK);
    let (walked, _) = walk(&app, "/api/v1/validations", "contract_id=c", 2).await;
    assert_eq!(walked, ids(&all));
}

#[tokio::test]
async fn bad_cursors_are_refused_and_offsets_count_from_a_cursor() {
    let app = TestApp::spawn().await;
    for _ in 0..3 {
        app.create_run_for("c").await;
    }
    let cursor = app.list_runs("limit=1").await["next_cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    // An offset with a cursor skips that many more after it.
    let all = ids(&app.list_runs("limit=10").await);
    let both = app.list_runs(&format!("cursor={cursor}&offset=1")).await;
    assert_eq!(ids(&both), all[2..]);
    assert_eq!(both["offset"], 1);
    for bad in [
        "nope",
        "%00",
        "12.run_x",
        "12.val_01M8ED2VE6CDMP5AP5387D6ZTP",
        "",
    ] {
        let r = app.get(&format!("/api/v1/runs?cursor={bad}")).await;
        r.expect_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
        assert!(r.message().contains("cursor"), "{bad}: {}", r.message());
    }
    // Any cursor of the documented shape is a position: far in the future
    // is the top of the list, far in the past its end.
    let top = app
        .list_runs("cursor=999999999999999999.run_ZZZZZZZZZZZZZZZZZZZZZZZZZZ")
        .await;
    assert_eq!(ids(&top).len(), 3);
    let end = app
        .list_runs("cursor=-999999999999999999.run_00000000000000000000000000")
        .await;
    assert_eq!(ids(&end).len(), 0);
    assert_eq!(end["next_cursor"], Value::Null);
}
