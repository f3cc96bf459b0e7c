//! Filtered, paged SELECTs: the WHERE clause built from optional filters,
//! always with bound parameters, and the count that goes with a page.

use r2d2_sqlite::rusqlite::{Connection, OptionalExtension, Row, params_from_iter, types::Value};

use super::StoreError;
pub use crate::domain::Page;
use crate::domain::Position;

/// The conditions of a list query and the values bound to them.
#[derive(Default)]
pub struct Filters {
    clauses: Vec<String>,
    args: Vec<Value>,
    /// Count matching rows only up to this many.
    count_cap: Option<u64>,
    /// Where a keyset page starts: a condition on the order's columns and
    /// its values, applied to the page and not to the count.
    after: Option<(String, [Value; 2])>,
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

    /// Adds `column IN (?N, ...)`, binding each of `values`.
    pub fn bind_any<'a>(&mut self, column: &str, values: impl IntoIterator<Item = &'a str>) {
        let mut marks = Vec::new();
        for v in values {
            self.args.push(Value::Text(v.to_owned()));
            marks.push(format!("?{}", self.args.len()));
        }
        self.clauses
            .push(format!("{column} IN ({})", marks.join(", ")));
    }

    /// Counts matching rows only up to `cap`: the total is then
    /// `min(matches, cap)`, and a count over a million rows stops early.
    pub fn cap_count(&mut self, cap: Option<u64>) {
        self.count_cap = cap;
    }

    /// Starts the page after the row whose `sort` and `id` columns (the
    /// list's order, both descending) hold `values`:
    /// `after("started_at", "id", [time, id])`.
    pub fn after(&mut self, sort: &str, id: &str, values: [String; 2]) {
        let [a, b] = values;
        self.after = Some((
            format!("({sort}, {id}) <"),
            [Value::Text(a), Value::Text(b)],
        ));
    }

    /// Where a page of a list ordered by `sort` then `id` (both
    /// descending) starts: a cursor becomes a condition on those columns;
    /// returns the offset still to skip.
    pub fn start_at(&mut self, position: &Position, sort: &str) -> u64 {
        match position {
            Position::Offset(n) => *n,
            Position::After(c, skip) => {
                self.after(sort, "id", [c.at.to_string(), c.id.clone()]);
                *skip
            }
        }
    }

    fn where_sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", self.clauses.join(" AND "))
        }
    }
}

/// How much of a page's byte budget a row takes: the length of its large
/// text columns plus a fixed allowance for the rest. It counts the text as
/// stored, which is close to what the row costs in memory and in the answer.
#[derive(Debug, Clone, Copy)]
pub struct Weight {
    /// Indexes, in the selected columns, of the JSON text columns.
    pub text_columns: &'static [usize],
    /// Bytes allowed for the other fields of one item.
    pub overhead: usize,
}

impl Weight {
    fn of(&self, row: &Row<'_>) -> usize {
        self.text_columns
            .iter()
            .map(|&i| {
                row.get_ref(i)
                    .ok()
                    .and_then(|v| v.as_bytes_or_null().ok().flatten())
                    .map_or(0, <[u8]>::len)
            })
            .sum::<usize>()
            + self.overhead
    }
}

/// The SELECT of one page, and its parameters. It asks for one row more
/// than `limit`, to tell whether more follow.
fn page_sql(
    table: &str,
    columns: &str,
    filters: &Filters,
    order: &str,
    (limit, offset): (u32, u64),
) -> (String, Vec<Value>) {
    let mut args = filters.args.clone();
    let mut where_sql = filters.where_sql();
    if let Some((condition, values)) = &filters.after {
        args.push(values[0].clone());
        args.push(values[1].clone());
        let clause = format!("{condition} (?{}, ?{})", args.len() - 1, args.len());
        where_sql = if where_sql.is_empty() {
            format!("WHERE {clause}")
        } else {
            format!("{where_sql} AND {clause}")
        };
    }
    let n = args.len();
    args.push(Value::Integer(i64::from(limit) + 1));
    args.push(Value::Integer(i64::try_from(offset).unwrap_or(i64::MAX)));
    let sql = format!(
        "SELECT {columns} FROM {table} {where_sql} ORDER BY {order} LIMIT ?{} OFFSET ?{}",
        n + 1,
        n + 2
    );
    (sql, args)
}

/// SQLite's plan for a page (and, when `counted`, for its count), one line
/// per step: for the tests that check every list shape uses an index.
#[cfg(test)]
pub(super) fn plans(
    conn: &Connection,
    table: &str,
    filters: &Filters,
    order: &str,
) -> Result<Vec<String>, StoreError> {
    let (page, args) = page_sql(table, "*", filters, order, (50, 0));
    let count = format!("SELECT count(*) FROM {table} {}", filters.where_sql());
    let mut out = Vec::new();
    for (sql, args) in [(page, &args[..]), (count, &filters.args[..])] {
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
        let mut rows = stmt.query(params_from_iter(args.iter()))?;
        let mut steps = Vec::new();
        while let Some(row) = rows.next()? {
            steps.push(row.get::<_, String>(3)?);
        }
        out.push(steps.join("; "));
    }
    Ok(out)
}

/// One page of `table` rows matching `filters` in `order`, read by `map`,
/// and how many rows match in all: `known_total` when the caller read it
/// from a counter, else counted here. The page stops before the row that would
/// take it past `max_bytes` as `weight` counts it, so no list answer holds
/// unbounded data. The first row is always kept, however large, so a client
/// walking the list with `offset` always moves on.
#[allow(clippy::too_many_arguments)]
pub fn page_within<T>(
    conn: &Connection,
    table: &str,
    columns: &str,
    filters: &Filters,
    known_total: Option<u64>,
    order: &str,
    (limit, offset): (u32, u64),
    (max_bytes, weight): (usize, Weight),
    map: impl Fn(&Row<'_>) -> Result<T, StoreError>,
) -> Result<Page<T>, StoreError> {
    let where_sql = filters.where_sql();
    // A count kept by the writes is exact and free; otherwise count, up to
    // the cap when the caller only needs to know "more than".
    let count = |sql: String, args: &[Value]| -> Result<u64, StoreError> {
        let n: i64 = conn
            .prepare_cached(&sql)?
            .query_row(params_from_iter(args.iter()), |r| r.get(0))?;
        Ok(u64::try_from(n).unwrap_or(0))
    };
    let total = match (known_total, filters.count_cap) {
        (Some(n), _) => n,
        (None, None) => count(
            format!("SELECT count(*) FROM {table} {where_sql}"),
            &filters.args,
        )?,
        (None, Some(cap)) => {
            let mut args = filters.args.clone();
            args.push(Value::Integer(i64::try_from(cap).unwrap_or(i64::MAX)));
            count(
                format!(
                    "SELECT count(*) FROM (SELECT 1 FROM {table} {where_sql} LIMIT ?{})",
                    args.len()
                ),
                &args,
            )?
        }
    };

    let (sql, args) = page_sql(table, columns, filters, order, (limit, offset));
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(params_from_iter(args.iter()))?;
    let mut out = Vec::new();
    let mut used = 0usize;
    let mut truncated = false;
    let mut more = false;
    while let Some(row) = rows.next()? {
        if out.len() == limit as usize {
            more = true;
            break;
        }
        // Weighed before it is parsed, so a row that does not fit costs
        // nothing.
        let w = weight.of(row);
        if !out.is_empty() && used.saturating_add(w) > max_bytes {
            truncated = true;
            more = true;
            break;
        }
        used = used.saturating_add(w);
        out.push(map(row)?);
    }
    Ok(Page {
        items: out,
        total,
        truncated,
        more,
    })
}

/// The one row `sql` selects for `id` (its `?1`), read by `map`.
pub fn by_id<T>(
    conn: &Connection,
    sql: &str,
    id: &str,
    map: fn(&Row<'_>) -> Result<T, StoreError>,
) -> Result<Option<T>, StoreError> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query([id])?;
    rows.next()?.map(map).transpose()
}

/// The bit of a counter key's `dims` for each equality filter (see
/// `run_counts` in schema.sql).
pub const DIM_CONTRACT: i64 = 1;
pub const DIM_PIPELINE: i64 = 2;
pub const DIM_STATUS: i64 = 4;

/// The one list of the keys that have a counter: the rows of `count_dims`
/// (schema.sql, migrations 5 and 8), which the triggers of both counter
/// tables read. A contract with a status is left to an index count: such a
/// key matches few rows, and its counters would be spread over many pages
/// that every write dirties. A test checks this list against the schema.
pub const COUNTED_DIMS: [i64; 6] = [
    0,
    DIM_CONTRACT,
    DIM_PIPELINE,
    DIM_STATUS,
    DIM_CONTRACT | DIM_PIPELINE,
    DIM_PIPELINE | DIM_STATUS,
];

/// Reads `n` of the counter `table` for the key whose columns are `key`
/// (name and value, `None` when the filter is absent); `None` when that
/// combination of filters has no counter (see `COUNTED_DIMS`) and the rows
/// must be counted. A key never seen counts zero.
pub fn counter(
    conn: &Connection,
    table: &str,
    key: &[(&str, i64, Option<&str>)],
) -> Result<Option<u64>, StoreError> {
    let dims: i64 = key
        .iter()
        .filter(|(_, _, v)| v.is_some())
        .map(|(_, bit, _)| bit)
        .sum();
    if !COUNTED_DIMS.contains(&dims) {
        return Ok(None);
    }
    let mut args = vec![Value::Integer(dims)];
    let mut clauses = vec!["dims = ?1".to_owned()];
    for (column, _, value) in key {
        args.push(Value::Text(value.unwrap_or_default().to_owned()));
        clauses.push(format!("{column} = ?{}", args.len()));
    }
    let n: Option<i64> = conn
        .prepare_cached(&format!(
            "SELECT n FROM {table} WHERE {}",
            clauses.join(" AND ")
        ))?
        .query_row(params_from_iter(args.iter()), |r| r.get(0))
        .optional()?;
    Ok(Some(n.map_or(0, |n| u64::try_from(n).unwrap_or(0))))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The code asks a counter exactly for the keys the triggers keep.
    #[test]
    fn counted_dims_match_the_schema() {
        let conn = super::super::test_connection();
        let mut stmt = conn
            .prepare("SELECT dims FROM count_dims ORDER BY dims")
            .unwrap();
        let in_schema: Vec<i64> = stmt
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let mut in_code = COUNTED_DIMS.to_vec();
        in_code.sort_unstable();
        assert_eq!(in_schema, in_code);
    }
}
