//! WHERE clauses assembled from optional filters, with their values kept
//! as bind parameters.

use crate::store::Cursor;

/// A bind parameter of a query assembled from optional filters.
pub(crate) enum Param {
    Text(String),
    Int(i64),
}

/// A WHERE clause assembled from fixed fragments; values only ever travel
/// as bind parameters, never inside the SQL text. Delivery states are the
/// exception: they are the enum's own spellings (never text from outside),
/// written as literals so the planner can match the partial indexes they
/// select.
#[derive(Default)]
pub(crate) struct Conditions {
    pub clauses: Vec<String>,
    pub params: Vec<Param>,
}

/// Which way a keyset page walks its `(created_at, id)` order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    OldestFirst,
    NewestFirst,
}

impl Direction {
    /// `ASC` or `DESC`.
    pub fn order(self) -> &'static str {
        match self {
            Direction::OldestFirst => "ASC",
            Direction::NewestFirst => "DESC",
        }
    }

    fn past(self) -> &'static str {
        match self {
            Direction::OldestFirst => ">",
            Direction::NewestFirst => "<",
        }
    }
}

impl Conditions {
    /// Adds `fragment`, its one `?` standing for `param`.
    pub fn push(&mut self, fragment: &str, param: Param) {
        self.params.push(param);
        let placeholder = format!("${}", self.params.len());
        self.clauses.push(fragment.replace('?', &placeholder));
    }

    /// Only rows past `cursor` in `direction`, by `(time, id)` of table
    /// alias `alias` (`time` is the column the cursor's time is from).
    pub fn push_after(&mut self, alias: &str, time: &str, cursor: &Cursor, direction: Direction) {
        self.params.push(Param::Int(cursor.created_at));
        self.params.push(Param::Text(cursor.id.clone()));
        let n = self.params.len();
        self.clauses.push(format!(
            "({alias}.{time}, {alias}.id) {} (${}, ${n})",
            direction.past(),
            n - 1
        ));
    }

    /// Adds the `LIMIT` value as the last parameter and returns its placeholder.
    pub fn push_limit(&mut self, limit: i64) -> String {
        self.params.push(Param::Int(limit));
        format!("${}", self.params.len())
    }

    /// The clauses joined with `AND` (`TRUE` without any).
    pub fn sql(&self) -> String {
        if self.clauses.is_empty() {
            "TRUE".to_string()
        } else {
            self.clauses.join(" AND ")
        }
    }
}

/// Binds [`Param`]s in order onto a sqlx query inside `on_db!`. A macro: it
/// binds onto `query`, `query_as` and `query_scalar` builders alike, which
/// share no trait.
macro_rules! bind_params {
    ($query:expr, $params:expr) => {{
        let mut query = $query;
        for param in $params {
            query = match param {
                $crate::store::sql::conditions::Param::Text(text) => query.bind(text.clone()),
                $crate::store::sql::conditions::Param::Int(value) => query.bind(*value),
            };
        }
        query
    }};
}
pub(crate) use bind_params;
