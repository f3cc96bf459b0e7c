//! Every constraint the spec states (minLength, maxLength, pattern,
//! minimum, maximum) stands for a rule of the domain. poem-openapi's
//! `#[oai(validator(...))]` attributes take only literals, so they repeat the
//! domain's constants; this test ties each constraint the served spec shows
//! to the constant it stands for, so that changing either side alone fails
//! here. A constraint the table below does not know fails too. Bounds and
//! values that only descriptions state are checked against the domain the
//! same way.

use std::collections::BTreeMap;

use griot_registry::{
    api::types::{NAME_PATTERN, NOT_BLANK_PATTERN},
    domain::{
        RUN_CURSOR_PATTERN, VALIDATION_CURSOR_PATTERN,
        event::EventType,
        idempotency::MAX_KEY_LEN,
        limits::PAGE_LIMIT,
        run::{MAX_HEARTBEAT_TIMEOUT_SECS, MIN_HEARTBEAT_TIMEOUT_SECS, WAIT_SECS},
        text::{MAX_NAME_LEN, MIN_NAME_LEN},
        validation::{MAX_MESSAGE_LEN, MIN_MESSAGE_LEN, STATS_DAYS},
        webhooks::MAX_URL_LEN,
    },
};
use serde_json::{Value, json};

const KEYWORDS: [&str; 5] = ["minLength", "maxLength", "pattern", "minimum", "maximum"];

fn spec() -> Value {
    serde_json::from_str(&griot_registry::openapi_json()).unwrap()
}

/// The constraints a schema states, keyed `<at>.<property>….<keyword>`.
fn collect(at: &str, schema: &Value, out: &mut BTreeMap<String, Value>) {
    for keyword in KEYWORDS {
        if let Some(value) = schema.get(keyword) {
            out.insert(format!("{at}.{keyword}"), value.clone());
        }
    }
    if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
        for (name, property) in properties {
            collect(&format!("{at}.{name}"), property, out);
        }
    }
    if let Some(items) = schema.get("items") {
        collect(&format!("{at}[]"), items, out);
    }
    for combinator in ["allOf", "anyOf", "oneOf"] {
        for part in schema
            .get(combinator)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            collect(at, part, out);
        }
    }
}

/// Every parameter of every operation, as (`operation_id(name)`, parameter).
fn parameters(spec: &Value) -> Vec<(String, &Value)> {
    let mut out = Vec::new();
    for ops in spec["paths"].as_object().unwrap().values() {
        for op in ops.as_object().unwrap().values() {
            for param in op["parameters"].as_array().into_iter().flatten() {
                let at = format!(
                    "{}({})",
                    op["operationId"].as_str().unwrap(),
                    param["name"].as_str().unwrap()
                );
                out.push((at, param));
            }
        }
    }
    out
}

/// What the spec states: on every component schema (request bodies and the
/// objects in them, and any response) and every parameter.
fn stated(spec: &Value) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for (name, schema) in spec["components"]["schemas"].as_object().unwrap() {
        collect(name, schema, &mut out);
    }
    for (at, param) in parameters(spec) {
        collect(&at, &param["schema"], &mut out);
    }
    out
}

/// What the domain says the spec should state, and where.
fn expected() -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    let mut set = |at: &str, keyword: &str, value: Value| {
        out.insert(format!("{at}.{keyword}"), value);
    };
    for at in [
        "CreateRunRequest.contract_id",
        "CreateWebhookRequest.contract_id",
        "CreateRunRequest.pipeline_name",
        "CreateRunRequest.pipeline_id",
        "UpdateRunRequest.pipeline_name",
        "UpdateRunRequest.pipeline_id",
        "CreateValidationRequest.contract_id",
        "CreateValidationRequest.run_id",
        "ValidationIssue.code",
        "ValidationWarning.code",
    ] {
        set(at, "minLength", json!(MIN_NAME_LEN));
        set(at, "maxLength", json!(MAX_NAME_LEN));
        set(at, "pattern", json!(NAME_PATTERN));
    }
    for at in ["ValidationIssue.message", "ValidationWarning.message"] {
        set(at, "minLength", json!(MIN_MESSAGE_LEN));
        set(at, "maxLength", json!(MAX_MESSAGE_LEN));
        set(at, "pattern", json!(NOT_BLANK_PATTERN));
    }
    set("ValidationIssue.path", "maxLength", json!(MAX_MESSAGE_LEN));
    let heartbeat = "CreateRunRequest.heartbeat_timeout_seconds";
    set(heartbeat, "minimum", json!(MIN_HEARTBEAT_TIMEOUT_SECS));
    set(heartbeat, "maximum", json!(MAX_HEARTBEAT_TIMEOUT_SECS));
    // An update may send 0, to remove the timeout.
    let heartbeat = "UpdateRunRequest.heartbeat_timeout_seconds";
    set(heartbeat, "maximum", json!(MAX_HEARTBEAT_TIMEOUT_SECS));
    set("CreateWebhookRequest.url", "minLength", json!(1));
    set("CreateWebhookRequest.url", "maxLength", json!(MAX_URL_LEN));
    for op in [
        "list_runs",
        "list_run_events",
        "list_validations",
        "list_webhook_deliveries",
    ] {
        set(
            &format!("{op}(limit)"),
            "minimum",
            json!(PAGE_LIMIT.start()),
        );
        set(&format!("{op}(limit)"), "maximum", json!(PAGE_LIMIT.end()));
        // The handlers read the offset as a u64.
        set(&format!("{op}(offset)"), "minimum", json!(u64::MIN));
    }
    set("list_runs(cursor)", "pattern", json!(RUN_CURSOR_PATTERN));
    set(
        "list_validations(cursor)",
        "pattern",
        json!(VALIDATION_CURSOR_PATTERN),
    );
    set("wait_for_run(timeout)", "minimum", json!(WAIT_SECS.start()));
    set("wait_for_run(timeout)", "maximum", json!(WAIT_SECS.end()));
    set(
        "get_validation_stats(days)",
        "minimum",
        json!(STATS_DAYS.start()),
    );
    set(
        "get_validation_stats(days)",
        "maximum",
        json!(STATS_DAYS.end()),
    );
    out
}

/// Numbers compare by value: the spec writes `1.0` where a constant is `1`.
fn same(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

#[test]
fn every_constraint_in_the_spec_is_the_domain_constant_it_stands_for() {
    let stated = stated(&spec());
    let expected = expected();
    let mut wrong = Vec::new();
    for (at, want) in &expected {
        match stated.get(at) {
            None => wrong.push(format!(
                "{at}: missing from the spec, the domain says {want}"
            )),
            Some(got) if !same(got, want) => {
                wrong.push(format!("{at}: the spec says {got}, the domain {want}"));
            }
            Some(_) => {}
        }
    }
    for (at, got) in &stated {
        if !expected.contains_key(at) {
            wrong.push(format!(
                "{at}: the spec says {got}; add the domain constant it stands for to this test"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Parameter descriptions spell their bounds out ("Page size: 1 to 1000."),
/// and a default lies within them.
#[test]
fn bounded_parameters_describe_their_bounds_and_default_within_them() {
    let spec = spec();
    let mut checked = 0;
    for (at, param) in parameters(&spec) {
        let schema = &param["schema"];
        let (Some(min), Some(max)) = (schema["minimum"].as_f64(), schema["maximum"].as_f64())
        else {
            continue;
        };
        let description = param["description"].as_str().unwrap_or_default();
        let bounds = format!("{min} to {max}");
        assert!(
            description.contains(&bounds),
            "{at}: '{description}' should say {bounds}"
        );
        if let Some(default) = schema["default"].as_f64() {
            assert!(
                (min..=max).contains(&default),
                "{at}: default {default} outside {bounds}"
            );
        }
        checked += 1;
    }
    // limit on four lists, the wait's timeout, the stats' days.
    assert_eq!(checked, 6);
}

/// Bounds the schema cannot state, or states only in part, are spelled out
/// in the descriptions.
#[test]
fn descriptions_spell_out_the_domain_bounds() {
    let spec = spec();
    let schemas = &spec["components"]["schemas"];
    let described = |schema: &str, property: &str| {
        schemas[schema]["properties"][property]["description"]
            .as_str()
            .unwrap_or_default()
            .replace('\n', " ")
    };
    let create = described("CreateRunRequest", "heartbeat_timeout_seconds");
    let range = format!("{MIN_HEARTBEAT_TIMEOUT_SECS} to {MAX_HEARTBEAT_TIMEOUT_SECS}");
    assert!(create.contains(&range), "{create}");
    let update = described("UpdateRunRequest", "heartbeat_timeout_seconds");
    let up_to = format!("up to {MAX_HEARTBEAT_TIMEOUT_SECS}");
    assert!(update.contains(&up_to), "{update}");

    let (_, key) = parameters(&spec)
        .into_iter()
        .find(|(at, _)| at == "create_run(Idempotency-Key)")
        .unwrap();
    let key = key["description"].as_str().unwrap().replace('\n', " ");
    assert!(
        key.contains(&format!("1 to {MAX_KEY_LEN} printable ASCII")),
        "{key}"
    );
}

/// An event's `type` is a plain string on the wire; its description lists
/// the values, which are the domain's.
#[test]
fn the_event_type_description_lists_every_event_type() {
    let spec = spec();
    let described = spec["components"]["schemas"]["RunEvent"]["properties"]["type"]["description"]
        .as_str()
        .unwrap()
        .to_owned();
    let listed = described.matches('`').count() / 2;
    assert_eq!(listed, EventType::ALL.len(), "{described}");
    for event_type in EventType::ALL {
        assert!(
            described.contains(&format!("`{event_type}`")),
            "{described} lacks {event_type}"
        );
    }
}
