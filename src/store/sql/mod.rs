//! SQL plumbing shared by every store operation: the statements that
//! differ between SQLite and Postgres, rows bound as parameters, and the
//! conversion of rows into model types.

pub(crate) mod conditions;
pub(crate) mod dialect;
pub(crate) mod rows;
pub(crate) mod values;

/// The text of a query plan: column `column` of each `EXPLAIN` row, one
/// line per row.
pub(crate) fn plan_text<R>(rows: &[R], column: &str) -> String
where
    R: sqlx::Row,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'c> &'c str: sqlx::ColumnIndex<R>,
{
    rows.iter()
        .filter_map(|row| row.try_get::<String, _>(column).ok())
        .collect::<Vec<_>>()
        .join("\n")
}
