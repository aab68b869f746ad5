//! Batches of rows as one multi-row `VALUES` list of bound parameters, for
//! the writes made once per delivery (its insert, its attempt, its outcome).
//!
//! Those statements used to read their rows out of one JSON parameter; on
//! SQLite, looking each field up in the JSON took a fifth of the writer
//! thread's time (BENCHMARKS.md, "Rows as bound parameters"). A batch is
//! padded with all-NULL rows to a power of two, so each statement has a
//! handful of spellings for the prepared-statement caches to keep; the
//! statements skip the padding (`column1 IS NOT NULL`, or a key that
//! matches nothing).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

/// Most rows one statement carries; a bigger batch takes several statements.
pub(crate) const MAX_ROWS: usize = 256;

/// Fewest rows a statement is padded to.
const MIN_ROWS: usize = 4;

/// Prepared statements each connection keeps. sqlx keeps 100; the row
/// statements' spellings (up to 7 each), the claim's (one per endpoint
/// count, up to 32) and the rest come near that, and evicting a 256-row
/// statement means preparing it again.
pub(crate) const STATEMENT_CACHE: usize = 400;

/// A write that takes a batch of rows: how its dialect passes them.
pub(crate) enum RowsStatement {
    /// As bound parameters, [`MAX_ROWS`] rows per statement (SQLite).
    Values(ValuesStatement),
    /// As one JSON array, parameter `$1`, the statement's own parameters
    /// after it (Postgres, where bound rows measured slower).
    Json(&'static str),
}

/// A statement whose rows arrive as `VALUES (?, …), (?, …)`. Every
/// parameter is an anonymous `?`, numbered by where it stands: sqlx looks a
/// named parameter's number up by its name, a scan of the statement's
/// parameter list, which made a batch of thousands of them quadratic.
pub(crate) struct ValuesStatement {
    /// Names the statement in the cache of its spellings (unique per dialect).
    pub name: &'static str,
    /// The text before the rows' list, ending in `VALUES `, with the
    /// statement's own parameters, if any (bound before the rows').
    pub head: &'static str,
    /// Columns of each row.
    pub columns: usize,
    /// The text after the list; no parameters.
    pub tail: &'static str,
}

/// The rows a statement for `n` rows carries: `n` and then padding.
pub(crate) fn padded_rows(n: usize) -> usize {
    n.clamp(MIN_ROWS, MAX_ROWS).next_power_of_two()
}

/// Every spelling built so far, by statement name and row count. At most
/// two dialects x a few statements x 7 sizes, so they are built once and
/// kept for the life of the process.
static SPELLINGS: Mutex<Option<HashMap<(&'static str, usize), &'static str>>> = Mutex::new(None);

impl ValuesStatement {
    /// The statement's text for `rows` rows (a [`padded_rows`] count).
    pub fn sql(&self, rows: usize) -> &'static str {
        let mut spellings = SPELLINGS.lock().unwrap_or_else(PoisonError::into_inner);
        let spellings = spellings.get_or_insert_with(HashMap::new);
        spellings
            .entry((self.name, rows))
            .or_insert_with(|| Box::leak(self.spell(rows).into_boxed_str()))
    }

    fn spell(&self, rows: usize) -> String {
        let mut text = String::with_capacity(self.head.len() + rows * self.columns * 6);
        text.push_str(self.head);
        for row in 0..rows {
            text.push_str(if row == 0 { "(" } else { ", (" });
            for column in 0..self.columns {
                if column > 0 {
                    text.push_str(", ");
                }
                text.push('?');
            }
            text.push(')');
        }
        text.push_str(self.tail);
        text
    }
}

/// Runs [`RowsStatement`] `$statement` over the slice `$rows` on `$conn`,
/// binding the statement's own parameters `$shared` and the rows: as JSON
/// (the rows serialised), or [`MAX_ROWS`] at a time as parameters, each
/// row, and each pad row as `None`, bound by the macro
/// `$bind!(query, Option<&row>)`. Evaluates to the rows affected in all.
/// A macro, not a function: like an `on_db!` body it is compiled once per sqlx database type.
macro_rules! execute_rows {
    ($conn:expr, $statement:expr, $rows:expr, [$($shared:expr),*], $bind:ident) => {{
        let mut affected: u64 = 0;
        match &$statement {
            $crate::store::values::RowsStatement::Json(sql) => {
                if !$rows.is_empty() {
                    affected = sqlx::query(*sql)
                        .bind($crate::store::to_json(&$rows))
                        $(.bind($shared))*
                        .execute(&mut *$conn)
                        .await?
                        .rows_affected();
                }
            }
            $crate::store::values::RowsStatement::Values(statement) => {
                for chunk in $rows.chunks($crate::store::values::MAX_ROWS) {
                    let size = $crate::store::values::padded_rows(chunk.len());
                    let mut query = sqlx::query(statement.sql(size))$(.bind($shared))*;
                    for index in 0..size {
                        query = $bind!(query, chunk.get(index));
                    }
                    affected += query.execute(&mut *$conn).await?.rows_affected();
                }
            }
        }
        affected
    }};
}
pub(crate) use execute_rows;

#[cfg(test)]
mod tests {
    use super::*;

    const STATEMENT: ValuesStatement = ValuesStatement {
        name: "test.rows",
        head: "WITH p (now) AS (VALUES (?)) INSERT INTO t (a, b, c) \
               SELECT column1, column2, p.now FROM p, (VALUES ",
        columns: 2,
        tail: ") AS v WHERE column1 IS NOT NULL",
    };

    #[test]
    fn rows_are_padded_to_a_few_sizes() {
        let sizes: Vec<usize> = [0, 1, 4, 5, 9, 100, 128, 129, 256, 1000]
            .into_iter()
            .map(padded_rows)
            .collect();
        assert_eq!(sizes, [4, 4, 4, 8, 16, 128, 128, 256, 256, 256]);
    }

    #[test]
    fn every_row_gets_its_anonymous_parameters() {
        assert_eq!(
            STATEMENT.sql(4),
            "WITH p (now) AS (VALUES (?)) INSERT INTO t (a, b, c) \
             SELECT column1, column2, p.now FROM p, (VALUES \
             (?, ?), (?, ?), (?, ?), (?, ?)) AS v WHERE column1 IS NOT NULL"
        );
        assert!(
            std::ptr::eq(STATEMENT.sql(4), STATEMENT.sql(4)),
            "built once"
        );
        assert_eq!(STATEMENT.sql(256).matches('?').count(), 1 + 2 * 256);
    }
}
