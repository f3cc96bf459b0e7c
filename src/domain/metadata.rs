//! Free-form metadata objects and their JSON merge patch (RFC 7396).

use serde_json::{Map, Value};

pub type Metadata = Map<String, Value>;

/// JSON text as it was stored, passed on without being parsed: what reads
/// answer with, so a page of runs parses no metadata. The tables' CHECKs
/// keep it valid JSON, and it was written from a [`Metadata`], so it is
/// compact and keeps the order its keys were given in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonText(pub String);

impl JsonText {
    /// `metadata` written as the store writes it: compact, keys in order.
    pub fn of(metadata: &Metadata) -> Self {
        // A map with string keys always serialises; "{}" is never reached.
        JsonText(serde_json::to_string(metadata).unwrap_or_else(|_| "{}".to_owned()))
    }
}

/// Applies `patch` to `target` as RFC 7396 describes: keys in the patch are
/// set, a key whose patch value is null is removed, nested objects merge
/// recursively, and keys the patch does not name are left alone.
pub fn merge_patch(target: &mut Metadata, patch: &Metadata) {
    for (key, value) in patch {
        match value {
            Value::Null => {
                target.remove(key);
            }
            Value::Object(inner_patch) => {
                let entry = target
                    .entry(key.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                if !entry.is_object() {
                    *entry = Value::Object(Map::new());
                }
                if let Value::Object(inner_target) = entry {
                    merge_patch(inner_target, inner_patch);
                }
            }
            other => {
                target.insert(key.clone(), other.clone());
            }
        }
    }
}

/// Nulls inside a newly created object mean nothing to remove; RFC 7396
/// applied to an empty target drops them, and so do we.
pub fn strip_nulls(metadata: &Metadata) -> Metadata {
    let mut out = Map::new();
    merge_patch(&mut out, metadata);
    out
}

/// The JSON text of `value` with every object's keys sorted, so equal
/// values give equal text whatever order their keys came in.
pub fn canonical_json(value: &Value) -> String {
    fn sorted(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                Value::Object(
                    keys.into_iter()
                        .map(|k| (k.clone(), sorted(&m[k])))
                        .collect(),
                )
            }
            Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    sorted(value).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Metadata {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn sets_removes_and_keeps() {
        let mut target = obj(json!({"dag_id": "d", "a": 1, "b": 2}));
        merge_patch(&mut target, &obj(json!({"a": 10, "b": null, "c": 3})));
        assert_eq!(
            Value::Object(target),
            json!({"dag_id": "d", "a": 10, "c": 3})
        );
    }

    #[test]
    fn nested_objects_merge_recursively() {
        let mut target = obj(json!({"x": {"keep": 1, "drop": 2}, "y": 5}));
        merge_patch(
            &mut target,
            &obj(json!({"x": {"drop": null, "new": 3}, "y": {"z": 1}})),
        );
        assert_eq!(
            Value::Object(target),
            json!({"x": {"keep": 1, "new": 3}, "y": {"z": 1}})
        );
    }

    #[test]
    fn arrays_are_replaced_whole() {
        let mut target = obj(json!({"tags": [1, 2, 3]}));
        merge_patch(&mut target, &obj(json!({"tags": [4]})));
        assert_eq!(Value::Object(target), json!({"tags": [4]}));
    }

    #[test]
    fn strip_nulls_drops_null_leaves() {
        let m = strip_nulls(&obj(json!({"a": null, "b": {"c": null, "d": 1}})));
        assert_eq!(Value::Object(m), json!({"b": {"d": 1}}));
    }
}
