//! Filtered, paged SELECTs: the WHERE clause built from optional filters,
//! always with bound parameters, and the count that goes with a page.

use r2d2_sqlite::rusqlite::{Connection, Row, params_from_iter, types::Value};

use super::StoreError;

/// The conditions of a list query and the values bound to them.
#[derive(Default)]
pub struct Filters {
    clauses: Vec<String>,
    args: Vec<Value>,
}

impl Filters {
    /// Adds `condition ?N`, binding `value`: `bind("contract_id =", id)`.
    pub fn bind(&mut self, condition: &str, value: impl Into<String>) {
        self.args.push(Value::Text(value.into()));
        self.clauses
            .push(format!("{condition} ?{}", self.args.len()));
    }

    /// Adds `condition ?N` when `value` is given.
    pub fn bind_some<V: ToString>(&mut self, condition: &str, value: Option<V>) {
        if let Some(v) = value {
            self.bind(condition, v.to_string());
        }
    }

    /// Adds a condition that binds nothing (a constant of our own).
    pub fn constant(&mut self, condition: &'static str) {
        self.clauses.push(condition.to_owned());
    }

    fn where_sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", self.clauses.join(" AND "))
        }
    }
}

/// One page of `table` rows matching `filters` in `order`, read by `map`,
/// and how many rows match in all.
pub fn page<T>(
    conn: &Connection,
    table: &str,
    columns: &str,
    filters: &Filters,
    order: &str,
    (limit, offset): (u32, u64),
    map: impl Fn(&Row<'_>) -> Result<T, StoreError>,
) -> Result<(Vec<T>, u64), StoreError> {
    let where_sql = filters.where_sql();
    let total: i64 = conn
        .prepare_cached(&format!("SELECT count(*) FROM {table} {where_sql}"))?
        .query_row(params_from_iter(filters.args.iter()), |r| r.get(0))?;

    let n = filters.args.len();
    let mut args = filters.args.clone();
    args.push(Value::Integer(i64::from(limit)));
    args.push(Value::Integer(i64::try_from(offset).unwrap_or(i64::MAX)));
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {columns} FROM {table} {where_sql} ORDER BY {order} LIMIT ?{} OFFSET ?{}",
        n + 1,
        n + 2
    ))?;
    let mut rows = stmt.query(params_from_iter(args.iter()))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(map(row)?);
    }
    Ok((out, u64::try_from(total).unwrap_or(0)))
}
