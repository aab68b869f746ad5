//! Paging shared by every list the API answers: `limit` and `cursor` in,
//! `data` and `next_cursor` out.

use serde::Serialize;
use utoipa::ToSchema;

use super::problem::Problem;
use crate::ops::{OpsError, parse_since};
use crate::store::{Cursor, Page, PageRequest};

/// Rows per page unless `limit` says otherwise.
pub const DEFAULT_LIMIT: usize = 50;
/// Most rows per page.
pub const MAX_LIMIT: usize = 1000;

/// A page of a list: its records and where the next page starts.
#[derive(Debug, Serialize, ToSchema)]
pub struct List<T: ToSchema> {
    pub data: Vec<T>,
    /// Pass as `cursor` for the next page; `null` on the last page (a
    /// page is never empty unless the whole list is).
    pub next_cursor: Option<String>,
}

impl<T: ToSchema> List<T> {
    /// The API's page of a store page, each row shown with `view`.
    pub fn of<U>(page: Page<U>, view: impl FnMut(U) -> T) -> List<T> {
        List {
            data: page.items.into_iter().map(view).collect(),
            next_cursor: page.next.map(|cursor| cursor.encode()),
        }
    }
}

/// A list's time bound `field` (`since`, `until`): an RFC 3339 time or
/// a duration back from now (`2h`), as unix ms.
pub fn query_time(field: &'static str, text: Option<&str>) -> Result<Option<i64>, Problem> {
    text.map(|t| parse_since(field, t))
        .transpose()
        .map_err(|e| match e {
            OpsError::Invalid { field, reason } => Problem::invalid_query(field, reason),
            other => other.into(),
        })
}

/// The page a list's `limit` and `cursor` parameters ask for.
pub fn page_request(limit: Option<&str>, cursor: Option<&str>) -> Result<PageRequest, Problem> {
    let limit = match limit {
        None => DEFAULT_LIMIT,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                Problem::invalid_query("limit", format!("must be 1 to {MAX_LIMIT}, got {text:?}"))
            })?,
    };
    let after = match cursor {
        None => None,
        Some(text) => Some(Cursor::decode(text).ok_or_else(|| {
            Problem::invalid_query("cursor", "not a cursor this API handed out (next_cursor)")
        })?),
    };
    Ok(PageRequest { after, limit })
}
