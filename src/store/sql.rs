//! How domain values are stored: SQLite conversions for timestamps and the
//! string enums, JSON columns, and the column lists that row mapping reads
//! by name.

use r2d2_sqlite::rusqlite::{
    Row,
    types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef},
};

use super::StoreError;
use crate::domain::{
    event::EventType,
    keys::KeyScope,
    metadata::{JsonText, Metadata},
    run::RunStatus,
    time::{TimeText, Timestamp},
    validation::ValidationStatus,
    webhooks::{DeliveryState, EventType as WebhookEvent, WebhookFormat},
};

/// Declares a table's selected columns once: `COLUMNS`, the list the
/// queries select, and `Col`, the position of each in it, so row mapping
/// reads `row.get(Col::status.at())` and cannot drift from the list.
macro_rules! columns {
    ($first:ident $(= $first_sql:literal)? $(, $rest:ident $(= $rest_sql:literal)?)* $(,)?) => {
        /// The columns every query of this table selects, in `Col`'s order.
        const COLUMNS: &str = concat!(
            $crate::store::sql::column_sql!($first $(= $first_sql)?)
            $(, ", ", $crate::store::sql::column_sql!($rest $(= $rest_sql)?))*
        );

        /// A column of `COLUMNS`, named as in the table.
        #[allow(non_camel_case_types, dead_code)]
        #[derive(Clone, Copy)]
        enum Col {
            $first,
            $($rest,)*
        }

        impl Col {
            /// The column's position in `COLUMNS`.
            const fn at(self) -> usize {
                self as usize
            }
        }
    };
}

/// A column's SQL name: the identifier, or the text given after `=` for a
/// name Rust cannot spell (`type`).
macro_rules! column_sql {
    ($name:ident) => {
        stringify!($name)
    };
    ($name:ident = $sql:literal) => {
        $sql
    };
}
pub(crate) use column_sql;
pub(crate) use columns;

/// Timestamps are stored in their one canonical text form, which sorts in
/// time order.
impl ToSql for Timestamp {
    fn to_sql(&self) -> r2d2_sqlite::rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.to_string()))
    }
}

impl FromSql for Timestamp {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let text = value.as_str()?;
        Timestamp::parse_stored(text)
            .ok_or_else(|| FromSqlError::Other(format!("'{text}' is not a timestamp").into()))
    }
}

/// Stored text passed on as is: what reads answer with (see
/// `domain::run::RunRecord`).
impl FromSql for TimeText {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        value.as_str().map(|t| TimeText(t.to_owned()))
    }
}

impl FromSql for JsonText {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        value.as_str().map(|t| JsonText(t.to_owned()))
    }
}

/// The string enums are stored as their wire names.
macro_rules! text_enum {
    ($($ty:ty),+) => {$(
        impl ToSql for $ty {
            fn to_sql(&self) -> r2d2_sqlite::rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.as_str()))
            }
        }

        impl FromSql for $ty {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                let text = value.as_str()?;
                <$ty>::parse(text).ok_or_else(|| {
                    FromSqlError::Other(
                        format!("'{text}' is not a {}", stringify!($ty)).into(),
                    )
                })
            }
        }
    )+};
}

text_enum!(
    RunStatus,
    ValidationStatus,
    EventType,
    KeyScope,
    WebhookEvent,
    WebhookFormat,
    DeliveryState
);

/// Reads a JSON object column (metadata, metrics, changes).
pub fn object(row: &Row<'_>, at: usize) -> Result<Metadata, StoreError> {
    parse_json(row, at)
}

/// Reads any JSON column.
pub fn json(row: &Row<'_>, at: usize) -> Result<serde_json::Value, StoreError> {
    parse_json(row, at)
}

fn parse_json<T: serde::de::DeserializeOwned>(row: &Row<'_>, at: usize) -> Result<T, StoreError> {
    let corrupt = |what: String| {
        let column = row.as_ref().column_name(at).unwrap_or("?");
        StoreError::Corrupt(format!("{column} {what}"))
    };
    let text = row
        .get_ref(at)?
        .as_str()
        .map_err(|e| corrupt(format!("is not text: {e}")))?;
    serde_json::from_str(text).map_err(|e| corrupt(format!("is not the JSON expected: {e}")))
}

/// JSON text for a column.
pub fn json_text(value: &impl serde::Serialize) -> Result<String, StoreError> {
    serde_json::to_string(value)
        .map_err(|e| StoreError::Corrupt(format!("a value could not be encoded as JSON: {e}")))
}
