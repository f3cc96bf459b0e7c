//! The dashboard, in process: each page shows what the registry holds,
//! stored values render as text, the filters and pages agree with the API,
//! and signing in works when reads need a key.

mod common;

use common::{Options, TestApp, ts};
use griot_registry::domain::time::Clock;
use poem::http::{Method, StatusCode};
use serde_json::{Value, json};

const NOW: &str = "2024-03-14T15:00:00Z";

async fn app_at_now() -> TestApp {
    TestApp::with(Options {
        clock: Clock::fixed(ts(NOW)),
        ..Options::default()
    })
    .await
}

/// The run ids a page links to, in order, once each.
fn run_links(page: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for part in page.split("href=\"/ui/runs/").skip(1) {
        let id = part.split(['"', '#']).next().unwrap_or_default().to_owned();
        if !out.contains(&id) {
            out.push(id);
        }
    }
    out
}

fn ids(page: &Value) -> Vec<String> {
    common::ids(page)
}

async fn seed_run(
    app: &TestApp,
    contract: &str,
    pipeline: &str,
    status: &str,
    started: &str,
) -> String {
    let run = app
        .create_run(json!({
            "contract_id": contract,
            "pipeline_name": pipeline,
            "status": status,
            "started_at": started,
        }))
        .await;
    run["id"].as_str().expect("id").to_owned()
}

#[tokio::test]
async fn the_front_page_leads_to_the_runs_list() {
    let app = TestApp::spawn().await;
    let resp = app.page("/").await;
    assert_eq!(resp.status, StatusCode::SEE_OTHER);
    assert_eq!(resp.header("location"), Some("/ui"));
}

#[tokio::test]
async fn the_runs_list_shows_each_run_with_its_status_and_validations() {
    let app = app_at_now().await;
    let failed = seed_run(&app, "orders", "nightly", "failed", "2024-03-14T10:00:00Z").await;
    let running = seed_run(&app, "orders", "hourly", "running", "2024-03-14T14:50:00Z").await;
    app.record_validation(json!({
        "contract_id": "orders", "run_id": failed, "status": "failed",
        "errors": [{"code": "null_values", "message": "customer_id has nulls"}],
    }))
    .await;
    app.record_validation(json!({"contract_id": "orders", "run_id": failed, "status": "passed"}))
        .await;

    let page = app.page("/ui").await;
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(
        page.header("content-security-policy")
            .unwrap()
            .contains("default-src 'none'")
    );
    let page = page.expect(StatusCode::OK);

    assert!(
        page.contains("<title>Runs · griot-registry</title>"),
        "{page}"
    );
    assert_eq!(run_links(&page), vec![running.clone(), failed.clone()]);
    assert!(page.contains("badge run-failed"));
    assert!(page.contains("badge run-running"));
    // Relative and absolute times, a duration, the validation summary.
    assert!(page.contains("10 min ago"), "{page}");
    assert!(page.contains("2024-03-14 14:50:00 UTC"));
    assert!(page.contains("10 min 0 s so far"), "{page}");
    assert!(
        page.contains("5 h 0 min<"),
        "a finished run's duration: {page}"
    );
    assert!(
        page.contains("datetime=\"2024-03-14T10:00:00.000000Z\""),
        "{page}"
    );
    assert!(page.contains("1 passed"));
    assert!(page.contains("1 failed"));
    // Labelled filters and the one-click views.
    for (id, label) in [
        ("f-contract", "Contract"),
        ("f-pipeline", "Pipeline"),
        ("f-status", "Status"),
    ] {
        assert!(
            page.contains(&format!("<label for=\"{id}\">{label}</label>")),
            "{id}"
        );
    }
    assert!(page.contains(
        "href=\"/ui?status=failed&amp;start_date=2024-03-14&amp;end_date=2024-03-15\">Failed today"
    ), "{page}");
    assert!(page.contains("href=\"/ui?status=running\">Running now"));
    assert!(page.contains("href=\"/ui?stale=true\">Stale"));
}

#[tokio::test]
async fn filters_and_pages_match_the_api() {
    let app = app_at_now().await;
    for i in 0..7 {
        let contract = if i % 3 == 0 { "billing" } else { "orders" };
        let status = if i % 2 == 0 { "failed" } else { "completed" };
        seed_run(
            &app,
            contract,
            &format!("p{}", i % 2),
            status,
            &format!("2024-03-0{}T08:00:00Z", i + 1),
        )
        .await;
    }
    let queries = [
        "",
        "contract_id=orders",
        "pipeline_name=p1",
        "status=failed",
        "start_date=2024-03-03&end_date=2024-03-06",
        "contract_id=orders&limit=2",
        "contract_id=orders&limit=2&offset=2",
        "limit=3&offset=6",
    ];
    for q in queries {
        let api = app.list_runs(q).await;
        let page = app.page(&format!("/ui?{q}")).await.expect(StatusCode::OK);
        assert_eq!(run_links(&page), ids(&api), "query {q}");
        let total = api["total"].as_u64().unwrap();
        assert!(
            page.contains(&format!(" of {total}")) || total == 0,
            "query {q}: {page}"
        );
    }

    // Paging links keep the filters and step by the page size.
    let first = app
        .page("/ui?contract_id=orders&limit=2")
        .await
        .expect(StatusCode::OK);
    assert!(
        first.contains("href=\"/ui?contract_id=orders&amp;limit=2&amp;offset=2\""),
        "{first}"
    );
    assert!(first.contains("Showing 1–2 of 4"));

    // "Failed today" after a failure today.
    let today = seed_run(&app, "orders", "p0", "failed", "2024-03-14T09:00:00Z").await;
    let page = app
        .page("/ui?status=failed&start_date=2024-03-14&end_date=2024-03-15")
        .await
        .expect(StatusCode::OK);
    assert_eq!(run_links(&page), vec![today]);
}

#[tokio::test]
async fn a_filter_that_does_not_parse_is_said_on_the_page() {
    let app = TestApp::spawn().await;
    let page = app
        .page("/ui?status=exploded&start_date=yesterdayish")
        .await;
    let text = page.expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        text.contains("&#39;exploded&#39; is not a run status")
            || text.contains("'exploded' is not a run status"),
        "{text}"
    );
    assert!(text.contains("started on or after"), "{text}");
}

#[tokio::test]
async fn the_stale_view_lists_runs_whose_heartbeat_lapsed() {
    let app = app_at_now().await;
    let quiet = app
        .create_run(
            json!({"contract_id": "c", "status": "running", "heartbeat_timeout_seconds": 60}),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    seed_run(&app, "c", "p", "running", "2024-03-14T14:00:00Z").await;
    app.clock.set(ts("2024-03-14T15:05:00Z"));
    let page = app.page("/ui?stale=true").await.expect(StatusCode::OK);
    assert_eq!(run_links(&page), vec![quiet.clone()]);
    // In the list of all runs, only the overdue one is marked.
    let all = app.page("/ui").await.expect(StatusCode::OK);
    assert_eq!(run_links(&all).len(), 2);
    assert_eq!(all.matches("badge stale").count(), 1, "{all}");
    let detail = app
        .page(&format!("/ui/runs/{quiet}"))
        .await
        .expect(StatusCode::OK);
    assert!(detail.contains("overdue"), "{detail}");
    assert!(detail.contains("1 min 0 s"), "the timeout: {detail}");
}

#[tokio::test]
async fn a_run_page_tells_the_whole_story() {
    let app = app_at_now().await;
    let run = app
        .create_run(json!({
            "contract_id": "orders", "pipeline_name": "nightly", "pipeline_id": "dag-run-7",
            "status": "running", "heartbeat_timeout_seconds": 600,
            "metadata": {"rows": 1200, "source": {"table": "raw.orders"}},
        }))
        .await;
    let id = run["id"].as_str().unwrap();
    app.update_run(
        id,
        json!({"status": "failed", "metadata": {"error": "disk full"}}),
    )
    .await
    .expect(StatusCode::OK);
    app.record_validation(json!({
        "contract_id": "orders", "run_id": id, "status": "failed",
        "errors": [{"code": "null_values", "message": "customer_id has 3 nulls", "path": "customer_id", "row_count": 3}],
        "warnings": [{"code": "row_count_drop", "message": "30% fewer rows"}],
        "metrics": {"rows_validated": 1200, "duration_ms": 850},
    }))
    .await;

    let page = app
        .page(&format!("/ui/runs/{id}"))
        .await
        .expect(StatusCode::OK);
    assert!(
        page.contains("<title>Run of nightly · griot-registry</title>"),
        "{page}"
    );
    for field in ["dag-run-7", "orders", "pipeline-bot", "badge run-failed"] {
        assert!(page.contains(field), "{field} missing: {page}");
    }
    // Metadata pretty-printed.
    assert!(
        page.contains("&quot;source&quot;: {\n    &quot;table&quot;: &quot;raw.orders&quot;"),
        "{page}"
    );
    // The timeline: created, then the status change, each with its actor.
    assert_eq!(
        page.matches("by <strong class=\"actor\">pipeline-bot</strong>")
            .count(),
        2,
        "{page}"
    );
    assert!(page.contains("status changed"));
    // The validation with its error, warning and metrics.
    for text in [
        "null_values",
        "customer_id has 3 nulls",
        "row_count_drop",
        "30% fewer rows",
        "rows_validated",
        "1200",
        "duration_ms",
    ] {
        assert!(page.contains(text), "{text} missing");
    }
    // A final run has no deadline any more.
    assert!(page.contains("none: the run is failed"), "{page}");
}

#[tokio::test]
async fn a_live_run_shows_its_heartbeat_deadline() {
    let app = app_at_now().await;
    let run = app
        .create_run(
            json!({"contract_id": "c", "status": "running", "heartbeat_timeout_seconds": 300}),
        )
        .await;
    let page = app
        .page(&format!("/ui/runs/{}", run["id"].as_str().unwrap()))
        .await
        .expect(StatusCode::OK);
    assert!(page.contains("2024-03-14 15:05:00 UTC"), "deadline: {page}");
    assert!(page.contains("in 5 min"));
    assert!(page.contains("on time"));
}

#[tokio::test]
async fn hostile_values_render_as_text() {
    let app = TestApp::spawn().await;
    let script = "<script>alert(1)</script>";
    let run = app
        .create_run(json!({
            "contract_id": "<b>c</b>",
            "pipeline_name": script,
            "metadata": {"note": "<img src=x onerror=alert(2)>", "<i>key</i>": "\"quoted\" & more"},
        }))
        .await;
    let id = run["id"].as_str().unwrap();
    app.update_run(
        id,
        json!({"metadata": {"more": "</pre><script>alert(3)</script>"}}),
    )
    .await
    .expect(StatusCode::OK);
    app.record_validation(json!({
        "contract_id": "<b>c</b>", "run_id": id, "status": "failed",
        "errors": [{"code": "<x>", "message": "<script>alert(4)</script>"}],
    }))
    .await;
    let pages = [
        "/ui".to_owned(),
        format!("/ui/runs/{id}"),
        "/ui/validations".to_owned(),
        "/ui/contracts/%3Cb%3Ec%3C%2Fb%3E".to_owned(),
    ];
    for path in pages {
        let page = app.page(&path).await.expect(StatusCode::OK);
        assert!(
            !page.contains("<script"),
            "{path} has a script element: {page}"
        );
        assert!(!page.contains("<img"), "{path} has an img element");
        assert!(
            !page.contains("<b>c</b>"),
            "{path} has markup from a contract id"
        );
        assert!(page.contains("&lt;b&gt;c&lt;/b&gt;"), "{path}: {page}");
    }
    let detail = app
        .page(&format!("/ui/runs/{id}"))
        .await
        .expect(StatusCode::OK);
    assert!(detail.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(detail.contains("&lt;img src=x onerror=alert(2)&gt;"));
    assert!(detail.contains("&lt;/pre&gt;&lt;script&gt;alert(3)"));
    assert!(detail.contains("&lt;script&gt;alert(4)&lt;/script&gt;"));
    // A link to the contract is percent-encoded, not a second path.
    assert!(
        detail.contains("href=\"/ui/contracts/%3Cb%3Ec%3C%2Fb%3E\""),
        "{detail}"
    );
}

#[tokio::test]
async fn an_unknown_run_or_page_answers_the_404_page() {
    let app = TestApp::spawn().await;
    for path in [
        "/ui/runs/run_nope",
        "/ui/no-such-page",
        "/ui/contracts/never-seen",
    ] {
        let page = app.page(path).await;
        assert_eq!(
            page.header("content-type"),
            Some("text/html; charset=utf-8"),
            "{path}"
        );
        let text = page.expect(StatusCode::NOT_FOUND);
        assert!(
            text.contains("<title>Not found · griot-registry</title>"),
            "{path}: {text}"
        );
        assert!(
            text.contains("<header class=\"site\">"),
            "{path}: the layout"
        );
    }
    let text = app.page("/ui/runs/run_nope").await.text;
    assert!(
        text.contains("Run &#39;run_nope&#39; not found")
            || text.contains("Run 'run_nope' not found"),
        "{text}"
    );
}

#[tokio::test]
async fn the_validations_list_filters_like_the_api() {
    let app = app_at_now().await;
    let run = seed_run(&app, "orders", "p", "completed", "2024-03-14T08:00:00Z").await;
    for (contract, status) in [
        ("orders", "passed"),
        ("orders", "failed"),
        ("billing", "warning"),
        ("orders", "skipped"),
    ] {
        let mut body = json!({"contract_id": contract, "status": status});
        if contract == "orders" {
            body["run_id"] = json!(run);
        }
        if status == "failed" {
            body["errors"] = json!([{"code": "dupes", "message": "12 duplicate ids"}]);
        }
        app.record_validation(body).await;
    }
    let validation_ids = |page: &str| -> Vec<String> {
        page.split("<code class=\"id\">")
            .skip(1)
            .map(|p| p.split('<').next().unwrap().to_owned())
            .collect()
    };
    for q in [
        "",
        "status=failed",
        "contract_id=billing",
        &format!("run_id={run}"),
        "limit=2&offset=1",
    ] {
        let api = app
            .get(&format!("/api/v1/validations?{q}"))
            .await
            .expect(StatusCode::OK);
        let page = app
            .page(&format!("/ui/validations?{q}"))
            .await
            .expect(StatusCode::OK);
        assert_eq!(validation_ids(&page), ids(&api), "query {q}");
    }
    let page = app
        .page("/ui/validations?status=failed")
        .await
        .expect(StatusCode::OK);
    assert!(page.contains("<title>Validations · griot-registry</title>"));
    assert!(page.contains("dupes"));
    assert!(page.contains("<label for=\"v-status\">Status</label>"));
}

#[tokio::test]
async fn a_contract_page_charts_its_pass_rate() {
    let app = app_at_now().await;
    let run = seed_run(&app, "orders", "nightly", "failed", "2024-03-13T08:00:00Z").await;
    for (day, status) in [
        ("2024-03-12", "passed"),
        ("2024-03-13", "passed"),
        ("2024-03-13", "failed"),
        ("2024-03-14", "passed"),
    ] {
        let mut body = json!({"contract_id": "orders", "status": status, "recorded_at": format!("{day}T10:00:00Z")});
        if status == "failed" {
            body["run_id"] = json!(run);
            body["errors"] = json!([{"code": "null_values", "message": "customer_id has nulls"}]);
        }
        app.record_validation(body).await;
    }
    let page = app
        .page("/ui/contracts/orders")
        .await
        .expect(StatusCode::OK);
    assert!(page.contains("<title>Contract orders · griot-registry</title>"));
    assert!(page.contains("<svg class=\"chart\""), "{page}");
    // One point per day with validations; 2024-03-13 passed half.
    assert_eq!(page.matches("<circle").count(), 3, "{page}");
    assert!(page.contains("2024-03-13: 50 % passed"), "{page}");
    assert!(page.contains("75 %"), "overall pass rate: {page}");
    // Counts per status, the most common error, the latest runs.
    assert!(page.contains("null_values"));
    assert!(page.contains("customer_id has nulls"));
    assert_eq!(run_links(&page), vec![run]);
    assert!(
        page.contains("href=\"/ui?contract_id=orders&amp;status=failed\""),
        "{page}"
    );
    // Every status has its count: the one failed run, none of the others.
    let tally = |status: &str| {
        let link = format!("href=\"/ui?contract_id=orders&amp;status={status}\"");
        let at = page
            .find(&link)
            .unwrap_or_else(|| panic!("{status}: {page}"));
        let rest = &page[at..];
        rest[..rest.find("</a>").unwrap()].to_owned()
    };
    assert!(
        tally("failed").contains("<strong>1</strong>"),
        "{}",
        tally("failed")
    );
    for status in ["pending", "running", "completed", "cancelled"] {
        assert!(
            tally(status).contains("<strong>0</strong>"),
            "{}",
            tally(status)
        );
    }

    for (g, points) in [("hour", 2), ("week", 1)] {
        let page = app
            .page(&format!("/ui/contracts/orders?granularity={g}"))
            .await
            .expect(StatusCode::OK);
        assert!(page.contains("<svg class=\"chart\""), "{g}");
        assert_eq!(page.matches("<circle").count(), points, "{g}: {page}");
    }
}

mod auth {
    use super::*;

    const HOST: &str = "registry.test";
    const ORIGIN: &str = "http://registry.test";

    async fn protected() -> TestApp {
        TestApp::with(Options {
            require_auth_for_reads: true,
            ..Options::default()
        })
        .await
    }

    async fn sign_in(app: &TestApp, key: &str, origin: Option<&str>) -> common::Html {
        let mut headers = vec![
            ("Host", HOST),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ];
        if let Some(o) = origin {
            headers.push(("Origin", o));
        }
        app.html(
            Method::POST,
            "/ui/sign-in",
            &headers,
            format!("api_key={key}&next=%2Fui%2Fvalidations"),
        )
        .await
    }

    fn cookie_of(resp: &common::Html) -> String {
        let set = resp.header("set-cookie").expect("a cookie is set");
        set.split(';').next().unwrap().to_owned()
    }

    #[tokio::test]
    async fn without_auth_for_reads_pages_are_open() {
        let app = TestApp::spawn().await;
        let page = app.page("/ui").await.expect(StatusCode::OK);
        assert!(!page.contains("Sign in"));
    }

    #[tokio::test]
    async fn pages_ask_for_a_key_and_a_signed_in_browser_sees_them() {
        let app = protected().await;
        let key = app.read_key.clone();
        for path in [
            "/ui",
            "/ui/validations",
            "/ui/runs/run_x",
            "/ui/contracts/c",
        ] {
            let page = app.page(path).await.expect(StatusCode::UNAUTHORIZED);
            assert!(
                page.contains("<title>Sign in · griot-registry</title>"),
                "{path}"
            );
            assert!(page.contains("type=\"password\""));
        }

        let resp = sign_in(&app, &key, Some(ORIGIN)).await;
        assert_eq!(resp.status, StatusCode::SEE_OTHER, "{}", resp.text);
        assert_eq!(resp.header("location"), Some("/ui/validations"));
        let set = resp.header("set-cookie").unwrap().to_owned();
        for attr in ["HttpOnly", "SameSite=Strict", "Path=/ui"] {
            assert!(set.contains(attr), "{attr} missing from {set}");
        }
        let cookie = cookie_of(&resp);

        let page = app
            .html(
                Method::GET,
                "/ui",
                &[("Cookie", &cookie)],
                poem::Body::empty(),
            )
            .await
            .expect(StatusCode::OK);
        assert!(
            page.contains("Signed in as <strong>dashboard</strong>"),
            "{page}"
        );
        assert!(!page.contains(&key), "the secret is never shown");

        // The API does not take the cookie: it reads only the header.
        let api = app
            .raw(
                Method::GET,
                "/api/v1/runs",
                &[("Cookie", &cookie)],
                poem::Body::empty(),
            )
            .await;
        assert_eq!(api.status, StatusCode::UNAUTHORIZED);

        // Signing out clears the cookie.
        let out = app
            .html(
                Method::POST,
                "/ui/sign-out",
                &[("Host", HOST), ("Origin", ORIGIN), ("Cookie", &cookie)],
                poem::Body::empty(),
            )
            .await;
        assert_eq!(out.status, StatusCode::SEE_OTHER);
        assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));
    }

    #[tokio::test]
    async fn a_wrong_key_is_refused_without_echoing_it() {
        let app = protected().await;
        let wrong = format!("grk_{}", "0".repeat(64));
        let resp = sign_in(&app, &wrong, Some(ORIGIN)).await;
        assert!(resp.header("set-cookie").is_none());
        let page = resp.expect(StatusCode::UNAUTHORIZED);
        assert!(
            page.contains("No API key with this secret exists."),
            "{page}"
        );
        assert!(!page.contains(&wrong));
        let page = sign_in(&app, "not-a-key", Some(ORIGIN))
            .await
            .expect(StatusCode::UNAUTHORIZED);
        assert!(page.contains("That is not an API key"));
        assert!(!page.contains("not-a-key"));
    }

    #[tokio::test]
    async fn sign_in_from_another_origin_is_refused() {
        let app = protected().await;
        let key = app.read_key.clone();
        for origin in [Some("http://evil.test"), Some("null"), None] {
            let resp = sign_in(&app, &key, origin).await;
            assert!(resp.header("set-cookie").is_none(), "{origin:?}");
            assert_eq!(resp.status, StatusCode::FORBIDDEN, "{origin:?}");
        }
        // A Referer from this host stands in for a missing Origin.
        let resp = app
            .html(
                Method::POST,
                "/ui/sign-in",
                &[
                    ("Host", HOST),
                    ("Referer", "http://registry.test/ui/sign-in"),
                    ("Content-Type", "application/x-www-form-urlencoded"),
                ],
                format!("api_key={key}"),
            )
            .await;
        assert_eq!(resp.status, StatusCode::SEE_OTHER);
        assert_eq!(resp.header("location"), Some("/ui"));
    }

    #[tokio::test]
    async fn a_revoked_key_in_the_cookie_is_asked_for_again() {
        let app = protected().await;
        let key = app.read_key.clone();
        let cookie = cookie_of(&sign_in(&app, &key, Some(ORIGIN)).await);
        griot_registry::app::keys::revoke(&app.store, "dashboard").unwrap();
        let resp = app
            .html(
                Method::GET,
                "/ui",
                &[("Cookie", &cookie)],
                poem::Body::empty(),
            )
            .await;
        assert!(resp.header("set-cookie").unwrap().contains("Max-Age=0"));
        let page = resp.expect(StatusCode::UNAUTHORIZED);
        assert!(page.contains("was revoked"), "{page}");
    }

    #[tokio::test]
    async fn a_link_from_another_site_reloads_to_carry_the_cookie() {
        let app = protected().await;
        let resp = app
            .html(
                Method::GET,
                "/ui/runs/run_x",
                &[("Sec-Fetch-Site", "cross-site")],
                poem::Body::empty(),
            )
            .await;
        let page = resp.expect(StatusCode::UNAUTHORIZED);
        assert!(page.contains("http-equiv=\"refresh\""), "{page}");
    }
}

#[tokio::test]
async fn a_validation_has_a_page_of_its_own() {
    let app = TestApp::spawn().await;
    let v = app
        .record_validation(json!({
            "contract_id": "orders", "status": "failed",
            "errors": [{"code": "dupes", "message": "12 duplicate ids", "row_count": 12}],
            "metrics": {"rows_validated": 500},
        }))
        .await;
    let id = v["id"].as_str().unwrap();
    let list = app.page("/ui/validations").await.expect(StatusCode::OK);
    assert!(
        list.contains(&format!("href=\"/ui/validations/{id}\"")),
        "{list}"
    );
    let page = app
        .page(&format!("/ui/validations/{id}"))
        .await
        .expect(StatusCode::OK);
    assert!(page.contains("<title>Validation of orders · griot-registry</title>"));
    for text in [
        "dupes",
        "12 duplicate ids",
        "rows_validated",
        "recorded without a run",
    ] {
        assert!(page.contains(text), "{text} missing: {page}");
    }
    let missing = app.page("/ui/validations/val_nope").await;
    let text = missing.expect(StatusCode::NOT_FOUND);
    assert!(
        text.contains("val_nope") && text.contains("not found"),
        "{text}"
    );
}

#[tokio::test]
async fn a_capped_count_stops_early_and_kept_totals_stay_exact() {
    use griot_registry::domain::run::RunFilter;
    let app = TestApp::spawn().await;
    for _ in 0..3 {
        app.create_run_for("c").await;
    }
    // A list that must count (a date range) stops at the cap.
    let since = griot_registry::domain::time::Timestamp::now().plus_seconds(-3600);
    let capped = RunFilter {
        start_date: Some(since),
        count_up_to: Some(2),
        ..RunFilter::default()
    };
    let page = griot_registry::app::runs::list(
        &app.state(),
        capped,
        false,
        (1, griot_registry::domain::Position::Offset(0)),
    )
    .await
    .unwrap();
    assert_eq!((page.total, page.items.len()), (2, 1));
    // One whose total is kept by the writes is exact whatever the cap.
    let kept = RunFilter {
        count_up_to: Some(2),
        ..RunFilter::default()
    };
    let page = griot_registry::app::runs::list(
        &app.state(),
        kept,
        false,
        (1, griot_registry::domain::Position::Offset(0)),
    )
    .await
    .unwrap();
    assert_eq!(page.total, 3);
    assert_eq!(app.list_runs("limit=1").await["total"], 3);
}
