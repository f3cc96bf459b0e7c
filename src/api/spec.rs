//! The finishing pass over the spec poem-openapi derives: what its derive
//! cannot say, or says in a form client generators refuse. Everything here
//! is a rule over the derived document, so the spec stays generated from
//! the code; the one thing written out by hand is the links between
//! operations, which poem-openapi has no way to declare.

use serde_json::{Map, Value, json};

/// The spec as served and checked in.
pub fn finish(mut spec: Value) -> Value {
    let enums = enum_schema_names(&spec);
    optional_security_as_default(&mut spec);
    for operation in operations_mut(&mut spec) {
        hoist_parameter_examples(operation);
        canonical_header_names(operation);
        add_links(operation);
    }
    rewrite_enum_refs(&mut spec, &enums);
    drop_nulls_from_request_examples(&mut spec);
    describe_plain_responses(&mut spec);
    close_request_schemas(&mut spec);
    spec
}

/// The request bodies and the objects in them refuse unknown fields (serde's
/// `deny_unknown_fields`, so a typo is a 422 rather than silently ignored),
/// which poem-openapi does not state; the spec says so, or generators and
/// fuzzers take extra fields as valid. tests/openapi.rs checks that every
/// object a request body reaches is listed.
const CLOSED_SCHEMAS: &[&str] = &[
    "CreateRunRequest",
    "UpdateRunRequest",
    "CreateValidationRequest",
    "ValidationIssue",
    "ValidationWarning",
    "CreateWebhookRequest",
];

fn close_request_schemas(spec: &mut Value) {
    let Some(schemas) = spec
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    for name in CLOSED_SCHEMAS {
        if let Some(schema) = schemas.get_mut(*name).and_then(Value::as_object_mut) {
            schema.insert("additionalProperties".into(), Value::Bool(false));
        }
    }
}

/// Every operation of the document (each method of each path).
fn operations_mut(spec: &mut Value) -> impl Iterator<Item = &mut Value> {
    spec.get_mut("paths")
        .and_then(Value::as_object_mut)
        .into_iter()
        .flat_map(|paths| paths.values_mut())
        .filter_map(Value::as_object_mut)
        .flat_map(|ops| ops.values_mut())
}

fn operations(spec: &Value) -> impl Iterator<Item = &Value> {
    spec.get("paths")
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(|paths| paths.values())
        .filter_map(Value::as_object)
        .flat_map(|ops| ops.values())
}

/// The component schema a media type refers to, by name.
fn schema_name(media: &Value) -> Option<&str> {
    media
        .pointer("/schema/$ref")?
        .as_str()?
        .strip_prefix("#/components/schemas/")
}

/// A handler that returns `Json<T>` gets a response with an empty
/// description; Swagger UI then shows nothing beside the status. The
/// schema's own description says what it is.
fn describe_plain_responses(spec: &mut Value) {
    let schemas = spec
        .pointer("/components/schemas")
        .cloned()
        .unwrap_or_default();
    for response in operations_mut(spec)
        .filter_map(|op| op.get_mut("responses").and_then(Value::as_object_mut))
        .flat_map(|responses| responses.values_mut())
        .filter_map(Value::as_object_mut)
    {
        if response.get("description").and_then(Value::as_str) != Some("") {
            continue;
        }
        let description = response
            .get("content")
            .and_then(Value::as_object)
            .and_then(|content| content.values().next())
            .and_then(schema_name)
            .and_then(|name| schemas.get(name))
            .and_then(|schema| schema.get("description"))
            .cloned();
        if let Some(description) = description {
            response.insert("description".into(), description);
        }
    }
}

/// In a request, a null field means the same as an absent one, so the
/// examples Swagger UI sends as is leave them out.
fn drop_nulls_from_request_examples(spec: &mut Value) {
    let bodies: Vec<String> = operations(spec)
        .filter_map(|op| op.pointer("/requestBody/content"))
        .filter_map(Value::as_object)
        .flat_map(|content| content.values())
        .filter_map(schema_name)
        .map(str::to_owned)
        .collect();
    for name in bodies {
        if let Some(example) = spec
            .pointer_mut(&format!("/components/schemas/{name}/example"))
            .and_then(Value::as_object_mut)
        {
            example.retain(|_, v| !v.is_null());
        }
    }
}

/// Reads take a key or none (`security: [{ApiKeyAuth: []}, {}]`).
/// openapi-python-client types any operation with its own non-empty
/// `security` as needing an authenticated client, so reads move that
/// requirement to the document's default, which they inherit: Swagger UI
/// still sends the key on them once authorized, and generated clients take
/// a plain client for them. Writes keep their own, mandatory, requirement.
fn optional_security_as_default(spec: &mut Value) {
    let mut optional = None;
    for operation in operations_mut(spec).filter_map(Value::as_object_mut) {
        let anonymous_allowed = operation
            .get("security")
            .and_then(Value::as_array)
            .is_some_and(|s| s.iter().any(|r| r.as_object().is_some_and(Map::is_empty)));
        if anonymous_allowed {
            optional = operation.remove("security");
        } else if !operation.contains_key("security") {
            // Open to all (the health probes): say so, rather than inherit
            // the default.
            operation.insert("security".into(), Value::Array(vec![]));
        }
    }
    if let (Some(security), Some(doc)) = (optional, spec.as_object_mut()) {
        doc.insert("security".into(), security);
    }
}

/// Names of the component schemas that are not objects (our string enums).
fn enum_schema_names(spec: &Value) -> Vec<String> {
    spec.pointer("/components/schemas")
        .and_then(Value::as_object)
        .map(|schemas| {
            schemas
                .iter()
                .filter(|(_, s)| s.get("enum").is_some())
                .map(|(name, _)| format!("#/components/schemas/{name}"))
                .collect()
        })
        .unwrap_or_default()
}

/// poem-openapi puts a parameter's example inside its schema, which for an
/// enum turns a plain `$ref` into an `allOf`; Swagger UI and the generators
/// read it from the parameter itself just as well.
fn hoist_parameter_examples(operation: &mut Value) {
    let Some(params) = operation
        .get_mut("parameters")
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    for param in params.iter_mut().filter_map(Value::as_object_mut) {
        let Some(schema) = param.get_mut("schema").and_then(Value::as_object_mut) else {
            continue;
        };
        let mut example = schema.remove("example");
        if let Some(parts) = schema.get_mut("allOf").and_then(Value::as_array_mut) {
            for part in parts.iter_mut().filter_map(Value::as_object_mut) {
                example = part.remove("example").or(example);
            }
        }
        if let Some(example) = example {
            param.insert("example".into(), example);
        }
    }
}

/// A use of an enum with a description, default or `nullable` beside it
/// comes out of poem-openapi as `allOf: [{$ref}, {...}]`, which
/// openapi-python-client refuses ("Cannot take allOf a non-object"), losing
/// whole operations. A plain `$ref` says the same (the enum's schema
/// carries its description); a nullable one becomes `oneOf: [{$ref}]` with
/// `nullable`, which every generator we test reads as "the enum or null".
fn rewrite_enum_refs(value: &mut Value, enums: &[String]) {
    match value {
        Value::Object(map) => {
            if let Some(replacement) = enum_use(map, enums) {
                *map = replacement;
            }
            for child in map.values_mut() {
                rewrite_enum_refs(child, enums);
            }
        }
        Value::Array(items) => {
            for child in items {
                rewrite_enum_refs(child, enums);
            }
        }
        _ => {}
    }
}

fn enum_use(map: &Map<String, Value>, enums: &[String]) -> Option<Map<String, Value>> {
    let parts = map.get("allOf")?.as_array()?;
    let target = parts
        .iter()
        .find_map(|p| p.get("$ref").and_then(Value::as_str))?;
    if !enums.iter().any(|e| e == target) {
        return None;
    }
    let reference = json!({ "$ref": target });
    let nullable = map.get("nullable").and_then(Value::as_bool) == Some(true);
    if !nullable {
        return reference.as_object().cloned();
    }
    let mut out = Map::new();
    if let Some(description) = map.get("description") {
        out.insert("description".into(), description.clone());
    }
    out.insert("nullable".into(), Value::Bool(true));
    out.insert("oneOf".into(), json!([reference]));
    Some(out)
}

/// poem-openapi upper-cases response header names (`ETAG`); the spec shows
/// them as the server sends them.
fn canonical_header_names(operation: &mut Value) {
    let Some(responses) = operation
        .get_mut("responses")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    for response in responses.values_mut() {
        let Some(headers) = response.get_mut("headers").and_then(Value::as_object_mut) else {
            continue;
        };
        let renamed: Map<String, Value> = std::mem::take(headers)
            .into_iter()
            .map(|(name, header)| (header_case(&name), header))
            .collect();
        *headers = renamed;
    }
}

fn header_case(name: &str) -> String {
    if name.eq_ignore_ascii_case("etag") {
        return "ETag".into();
    }
    name.split('-')
        .map(|word| {
            let lower = word.to_ascii_lowercase();
            let mut chars = lower.chars();
            chars
                .next()
                .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// What a client can do next with what an operation returned, as OpenAPI
/// links: Swagger UI shows them, and stateful API testers (schemathesis)
/// follow them to reach the operations that need an id.
fn add_links(operation: &mut Value) {
    let Some(id) = operation.get("operationId").and_then(Value::as_str) else {
        return;
    };
    let links = match id {
        "create_run" => run_links(),
        "record_validation" => validation_links(),
        "create_webhook" => webhook_links(),
        "test_webhook" => delivery_links(),
        _ => return,
    };
    let Some(responses) = operation
        .get_mut("responses")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    for (status, response) in responses.iter_mut() {
        if status.starts_with('2')
            && let Some(response) = response.as_object_mut()
        {
            response.insert("links".into(), links.clone());
        }
    }
}

fn run_links() -> Value {
    let run_id = json!({ "run_id": "$response.body#/id" });
    let by_id = |operation: &str, description: &str| json!({ "operationId": operation, "parameters": run_id, "description": description });
    json!({
        "GetRun": by_id("get_run", "Read the run back, with its validations."),
        "UpdateRun": by_id("update_run", "Change the run's status or metadata."),
        "HeartbeatRun": by_id("heartbeat_run", "Tell the registry the run is alive."),
        "ListRunEvents": by_id("list_run_events", "The run's history."),
        "WaitForRun": by_id("wait_for_run", "Wait until the run is final."),
        "RecordValidation": {
            "operationId": "record_validation",
            "requestBody": {
                "contract_id": "$response.body#/contract_id",
                "run_id": "$response.body#/id",
                "status": "passed"
            },
            "description": "Record a validation during the run."
        }
    })
}

fn validation_links() -> Value {
    json!({
        "GetValidation": {
            "operationId": "get_validation",
            "parameters": { "validation_id": "$response.body#/id" },
            "description": "Read the validation back."
        },
        "GetValidationStats": {
            "operationId": "get_validation_stats",
            "parameters": { "contract_id": "$response.body#/contract_id" },
            "description": "The contract's validation trends."
        }
    })
}

fn webhook_links() -> Value {
    let webhook_id = json!({ "webhook_id": "$response.body#/id" });
    let by_id = |operation: &str, description: &str| json!({ "operationId": operation, "parameters": webhook_id, "description": description });
    json!({
        "GetWebhook": by_id("get_webhook", "Read the subscription back."),
        "TestWebhook": by_id("test_webhook", "Send a signed test message now."),
        "ListWebhookDeliveries": by_id("list_webhook_deliveries", "The subscription's delivery log."),
        "DeleteWebhook": by_id("delete_webhook", "Stop and delete the subscription.")
    })
}

fn delivery_links() -> Value {
    json!({
        "RedeliverWebhookMessage": {
            "operationId": "redeliver_webhook_message",
            "parameters": {
                "webhook_id": "$request.path.webhook_id",
                "delivery_id": "$response.body#/id"
            },
            "description": "Send the message again, with the same webhook-id."
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_as_sent() {
        assert_eq!(header_case("ETAG"), "ETag");
        assert_eq!(header_case("IDEMPOTENT-REPLAYED"), "Idempotent-Replayed");
        assert_eq!(header_case("retry-after"), "Retry-After");
    }

    #[test]
    fn nullable_enum_becomes_one_of() {
        let spec = json!({
            "components": {"schemas": {"S": {"type": "string", "enum": ["a"]}}},
            "x": {"description": "d", "nullable": true,
                  "allOf": [{"$ref": "#/components/schemas/S"}, {"nullable": true}]},
            "y": {"description": "d",
                  "allOf": [{"$ref": "#/components/schemas/S"}, {"description": "d"}]}
        });
        let out = finish(spec);
        assert_eq!(
            out["x"],
            json!({"description": "d", "nullable": true,
                   "oneOf": [{"$ref": "#/components/schemas/S"}]})
        );
        assert_eq!(out["y"], json!({"$ref": "#/components/schemas/S"}));
    }
}
