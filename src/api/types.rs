//! Wire types that poem-openapi has no ready form for: timestamps in our one
//! fixed format (parsed leniently), identifiers with their rules in the
//! schema, free-form JSON objects, and enum query parameters with helpful
//! refusals.

use std::borrow::Cow;

use poem_openapi::{
    registry::{MetaSchema, MetaSchemaRef, Registry},
    types::{ParseError, ParseFromJSON, ParseFromParameter, ParseResult, ToJSON, Type},
};
use serde::Deserialize;
use serde_json::Value;

use crate::domain::{
    metadata::Metadata,
    text::{MAX_NAME_LEN, MIN_NAME_LEN},
    time::Timestamp,
};

/// Implements `Type` for a wire type that is its own raw value, from its
/// name and schema (and, optionally, what it registers).
macro_rules! self_valued_type {
    ($ty:ty, name = $name:expr, schema = $schema:expr $(, register = $register:expr)? $(,)?) => {
        impl poem_openapi::types::Type for $ty {
            const IS_REQUIRED: bool = true;
            type RawValueType = Self;
            type RawElementValueType = Self;

            fn name() -> std::borrow::Cow<'static, str> {
                $name
            }

            fn schema_ref() -> poem_openapi::registry::MetaSchemaRef {
                $schema
            }

            $(
                fn register(registry: &mut poem_openapi::registry::Registry) {
                    ($register)(registry)
                }
            )?

            fn as_raw_value(&self) -> Option<&Self> {
                Some(self)
            }

            fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a Self> + 'a> {
                Box::new(std::iter::once(self))
            }
        }
    };
}
pub(crate) use self_valued_type;

/// Declares the wire form of a domain string enum (see
/// `domain::enums::string_enum!`): a poem-openapi `Enum` with the given
/// `#[oai(...)]` and a doc comment per variant, read from JSON bodies with
/// [`deserialize_enum`], and `From` both ways. The variants are named like
/// the domain's; an exhaustive match each way makes a variant missing on
/// either side a compile error, and `tests::mirrors_carry_the_domain_strings`
/// checks that the wire strings are the domain's.
///
/// ```ignore
/// wire_enum! {
///     /// Where a run is in its life.
///     #[oai(rename = "RunStatus", rename_all = "lowercase")]
///     pub enum RunStatusBody mirrors RunStatus {
///         /// Scheduled but not started.
///         Pending,
///         // ...
///     }
/// }
/// ```
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $body:ident mirrors $domain:ident {
            $( $(#[$vmeta:meta])* $variant:ident ),+ $(,)?
        }
    ) => {
        #[derive(poem_openapi::Enum, Debug, Clone, Copy, PartialEq, Eq)]
        $(#[$meta])*
        $vis enum $body {
            $( $(#[$vmeta])* $variant ),+
        }

        impl<'de> serde::Deserialize<'de> for $body {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                $crate::api::types::deserialize_enum(d)
            }
        }

        impl From<$body> for $domain {
            fn from(value: $body) -> Self {
                match value {
                    $( $body::$variant => $domain::$variant ),+
                }
            }
        }

        impl From<$domain> for $body {
            fn from(value: $domain) -> Self {
                match value {
                    $( $domain::$variant => $body::$variant ),+
                }
            }
        }
    };
}
pub(crate) use wire_enum;

/// The characters a name may not hold, as a regex class body.
macro_rules! name_excluded {
    () => {
        r"\x00-\x1f\x7f-\x9f\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890-\u0891\u08e2\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb"
    };
}

/// What `domain::text::required_name` accepts: not blank, no control,
/// format or separator characters (the length is in minLength and
/// maxLength). Only those below U+10000 are listed: above it a pattern
/// needs the `u` flag, which JSON Schema does not promise; the server
/// refuses those too.
pub const NAME_PATTERN: &str = concat!(
    r"^[^",
    name_excluded!(),
    r"]*[^\s",
    name_excluded!(),
    r"][^",
    name_excluded!(),
    r"]*$"
);

/// What a message must hold: a character that is not whitespace, as
/// `domain::validation` requires. The `#[oai(validator(pattern))]` on
/// message fields repeats it, since an attribute takes only a literal;
/// tests/constraints.rs checks that the spec shows this one.
pub const NOT_BLANK_PATTERN: &str = r"\S";

/// An identifier a client sends (a contract id, a pipeline name, a run id,
/// an error code): 1 to 255 characters, not blank, no control or invisible
/// format characters.
/// The domain checks the same rules; the schema states them for clients.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct Name(pub String);

self_valued_type!(
    Name,
    name = "string_name".into(),
    schema = {
        let mut schema = MetaSchema::new("string");
        schema.min_length = Some(MIN_NAME_LEN);
        schema.max_length = Some(MAX_NAME_LEN);
        schema.pattern = Some(NAME_PATTERN.to_owned());
        MetaSchemaRef::Inline(Box::new(schema))
    },
);

impl ParseFromJSON for Name {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value.unwrap_or_default() {
            Value::String(s) => Ok(Name(s)),
            other => Err(ParseError::expected_type(other)),
        }
    }
}

impl ToJSON for Name {
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(self.0.clone()))
    }
}

/// A date-time on the wire. Sent as RFC 3339 UTC with six fractional digits
/// (`2024-01-15T10:00:00.000000Z`); accepted in any of the forms
/// `Timestamp::parse_lenient` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateTime(pub Timestamp);

self_valued_type!(
    DateTime,
    name = "string_date-time".into(),
    schema = MetaSchemaRef::Inline(Box::new(MetaSchema::new_with_format("string", "date-time"))),
);

impl ParseFromJSON for DateTime {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value.unwrap_or_default() {
            Value::String(s) => Self::parse_from_parameter(&s),
            other => Err(ParseError::expected_type(other)),
        }
    }
}

impl ParseFromParameter for DateTime {
    fn parse_from_parameter(value: &str) -> ParseResult<Self> {
        Timestamp::parse_lenient(value)
            .map(DateTime)
            .map_err(|e| ParseError::custom(e.to_string()))
    }
}

impl ToJSON for DateTime {
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(self.0.to_string()))
    }
}

impl From<Timestamp> for DateTime {
    fn from(t: Timestamp) -> Self {
        DateTime(t)
    }
}

/// A date filter in a query string: a date (`2024-01-15`, midnight UTC) or
/// any date-time form [`DateTime`] accepts. Published as "a date or a
/// date-time", since `format: date-time` alone would tell generated clients
/// that a date is not allowed, and a bare string that anything is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateFilter(pub Timestamp);

impl DateFilter {
    pub fn parse(value: &str) -> Option<Self> {
        Timestamp::parse_lenient(value).ok().map(DateFilter)
    }
}

self_valued_type!(
    DateFilter,
    name = "string_date_filter".into(),
    schema = {
        let mut schema = MetaSchema::ANY;
        schema.any_of = vec![
            MetaSchemaRef::Inline(Box::new(MetaSchema::new_with_format("string", "date"))),
            MetaSchemaRef::Inline(Box::new(MetaSchema::new_with_format("string", "date-time"))),
        ];
        MetaSchemaRef::Inline(Box::new(schema))
    },
);

impl ParseFromParameter for DateFilter {
    fn parse_from_parameter(value: &str) -> ParseResult<Self> {
        Timestamp::parse_lenient(value)
            .map(DateFilter)
            .map_err(|e| ParseError::custom(e.to_string()))
    }
}

/// For the example the spec shows: the date alone when it is midnight.
impl ToJSON for DateFilter {
    fn to_json(&self) -> Option<Value> {
        let text = self.0.to_string();
        Some(Value::String(
            text.strip_suffix("T00:00:00.000000Z")
                .map(str::to_owned)
                .unwrap_or(text),
        ))
    }
}

/// A free-form JSON object. Anything that is not an object (an array, a
/// string, null where a value is required) is refused with a message.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct JsonObject(pub Metadata);

self_valued_type!(
    JsonObject,
    name = "object".into(),
    schema = {
        let mut schema = MetaSchema::new("object");
        schema.additional_properties =
            Some(Box::new(MetaSchemaRef::Inline(Box::new(MetaSchema::ANY))));
        MetaSchemaRef::Inline(Box::new(schema))
    },
);

impl ParseFromJSON for JsonObject {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value {
            Some(Value::Object(map)) => Ok(JsonObject(map)),
            Some(other) => Err(ParseError::custom(format!(
                "expected a JSON object, got {}",
                json_kind(&other)
            ))),
            None => Err(ParseError::expected_input()),
        }
    }
}

impl ToJSON for JsonObject {
    fn to_json(&self) -> Option<Value> {
        Some(Value::Object(self.0.clone()))
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl<'de> serde::Deserialize<'de> for DateTime {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Timestamp::parse_lenient(&s)
            .map(DateTime)
            .map_err(serde::de::Error::custom)
    }
}

impl<'de> serde::Deserialize<'de> for JsonObject {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::Object(map) => Ok(JsonObject(map)),
            other => Err(serde::de::Error::custom(format!(
                "expected a JSON object, got {}",
                json_kind(&other)
            ))),
        }
    }
}

/// A query parameter holding one value of the enum `T`. It publishes `T`'s
/// schema unchanged; its refusal lists the allowed values, where
/// poem-openapi's own says only "Expect a valid enumeration value".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OneOf<T>(pub T);

impl<T: Type> Type for OneOf<T> {
    const IS_REQUIRED: bool = T::IS_REQUIRED;
    type RawValueType = T::RawValueType;
    type RawElementValueType = T::RawElementValueType;

    fn name() -> Cow<'static, str> {
        T::name()
    }

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        self.0.as_raw_value()
    }

    fn raw_element_iter<'a>(
        &'a self,
    ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        self.0.raw_element_iter()
    }
}

impl<T: Type + ParseFromParameter> ParseFromParameter for OneOf<T> {
    fn parse_from_parameter(value: &str) -> ParseResult<Self> {
        T::parse_from_parameter(value).map(OneOf).map_err(|_| {
            ParseError::custom(format!("'{value}' is not one of {}", allowed_values::<T>()))
        })
    }
}

/// For the default value the spec shows.
impl<T: ToJSON> ToJSON for OneOf<T> {
    fn to_json(&self) -> Option<Value> {
        self.0.to_json()
    }
}

/// Reads one of our wire enums from a JSON body. Derived serde would call a
/// wrong JSON type (`"status": 1`) a syntax error, which reads as "not valid
/// JSON"; this says what was expected, and words an unknown value like the
/// query parameters do.
pub fn deserialize_enum<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Type + ParseFromParameter,
{
    use serde::de::Error;
    let value = String::deserialize(d)?;
    OneOf::<T>::parse_from_parameter(&value)
        .map(|v| v.0)
        .map_err(|e| D::Error::custom(e.into_message()))
}

/// The values an enum type's schema lists, for error messages.
pub(crate) fn allowed_values<T: Type>() -> String {
    let mut registry = Registry::new();
    T::register(&mut registry);
    registry
        .schemas
        .get(T::name().as_ref())
        .map(|schema| {
            schema
                .enum_items
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_name_pattern_lists_every_refused_range_below_u10000() {
        for &(lo, hi) in crate::domain::text::INVISIBLE {
            if hi > 0xffff {
                continue;
            }
            let range = if lo == hi {
                format!("\\u{lo:04x}")
            } else {
                format!("\\u{lo:04x}-\\u{hi:04x}")
            };
            assert!(
                NAME_PATTERN.contains(&range),
                "{range} missing from {NAME_PATTERN}"
            );
        }
    }
}
