//! The API's paged lists of tenants, endpoints, subscriptions, events and
//! attempts: keyset pages over `(time, id)`, one row more than asked for
//! so the last page says it is the last.

use sqlx::{FromRow, postgres::PgRow, sqlite::SqliteRow};

use super::sql::conditions::{Conditions, Direction, Param, bind_params};
use super::sql::rows::{
    AttemptRow, EndpointRow, EventRow, SubscriptionRow, TenantRow, convert_all, endpoint_columns,
    event_columns, subscription_columns,
};
use super::{Cursor, Page, Reads, Result, on_db};
use crate::model::{Attempt, Endpoint, Event, Subscription, Tenant};

/// Where a page starts and how long it is.
#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    /// The previous page's `next`; `None` for the first page.
    pub after: Option<Cursor>,
    pub limit: usize,
}

/// Which events the event list shows; empty fields do not filter.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// This tenant's events and the broadcasts (which reach every tenant).
    pub tenant_id: Option<String>,
    /// Exact topic.
    pub topic: Option<String>,
    /// Created at or after (unix ms).
    pub since: Option<i64>,
    /// Created before (unix ms).
    pub until: Option<i64>,
}

/// Which attempts the attempt lists show.
#[derive(Debug, Clone)]
pub struct AttemptFilter {
    pub of: AttemptsOf,
    /// `Some(true)`: only 2xx answers; `Some(false)`: only failures.
    pub succeeded: Option<bool>,
}

/// Whose attempts.
#[derive(Debug, Clone)]
pub enum AttemptsOf {
    Delivery(String),
    Endpoint(String),
}

/// One keyset page: `select` (ending in its `FROM … ` clause) with
/// `conditions`, ordered by `time` then `id` of alias `alias`.
struct KeysetQuery<'a> {
    select: String,
    conditions: Conditions,
    alias: &'a str,
    time: &'a str,
    direction: Direction,
}

impl KeysetQuery<'_> {
    /// The statement for `page`, its parameters appended to the conditions.
    fn statement(mut self, page: &PageRequest) -> (String, Vec<Param>) {
        let (alias, time) = (self.alias, self.time);
        if let Some(cursor) = &page.after {
            self.conditions
                .push_after(alias, time, cursor, self.direction);
        }
        let order = self.direction.order();
        let limit = self
            .conditions
            .push_limit(Page::<()>::fetch_limit(page.limit));
        let text = format!(
            "{} WHERE {} ORDER BY {alias}.{time} {order}, {alias}.id {order} LIMIT {limit}",
            self.select,
            self.conditions.sql()
        );
        (text, self.conditions.params)
    }
}

impl Reads {
    /// Runs a keyset query, returning its rows (one more than the page).
    async fn keyset_rows<R>(&self, query: KeysetQuery<'_>, page: &PageRequest) -> Result<Vec<R>>
    where
        R: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin,
    {
        let (text, params) = query.statement(page);
        Ok(on_db!(self, |pools, sql| {
            let query = sqlx::query_as(sqlx::AssertSqlSafe(text)).persistent(false);
            bind_params!(query, &params).fetch_all(&pools.read).await?
        }))
    }

    /// Live tenants, oldest first; `only` limits the list to one.
    pub async fn page_tenants(
        &self,
        only: Option<&str>,
        page: &PageRequest,
    ) -> Result<Page<Tenant>> {
        let mut conditions = Conditions::default();
        conditions.clauses.push("t.deleted_at IS NULL".to_string());
        if let Some(id) = only {
            conditions.push("t.id = ?", Param::Text(id.to_string()));
        }
        let query = KeysetQuery {
            select: "SELECT t.id, t.name, t.created_at FROM tenants t".to_string(),
            conditions,
            alias: "t",
            time: "created_at",
            direction: Direction::OldestFirst,
        };
        let rows: Vec<TenantRow> = self.keyset_rows(query, page).await?;
        let items = rows.into_iter().map(Tenant::from).collect();
        Ok(Page::from_rows(items, page.limit, |t: &Tenant| {
            Cursor::of(t.created_at, &t.id)
        }))
    }

    /// Live endpoints (of one tenant, or all), oldest first.
    pub async fn page_endpoints(
        &self,
        tenant_id: Option<&str>,
        page: &PageRequest,
    ) -> Result<Page<Endpoint>> {
        let mut conditions = Conditions::default();
        conditions.clauses.push("e.deleted_at IS NULL".to_string());
        if let Some(id) = tenant_id {
            conditions.push("e.tenant_id = ?", Param::Text(id.to_string()));
        }
        let query = KeysetQuery {
            select: format!(
                "SELECT {} FROM endpoints e JOIN tenants t ON t.id = e.tenant_id",
                endpoint_columns!()
            ),
            conditions,
            alias: "e",
            time: "created_at",
            direction: Direction::OldestFirst,
        };
        let rows: Vec<EndpointRow> = self.keyset_rows(query, page).await?;
        let items = self.endpoints_from(rows)?;
        Ok(Page::from_rows(items, page.limit, |e: &Endpoint| {
            Cursor::of(e.created_at, &e.id)
        }))
    }

    /// Subscriptions of live endpoints (of one endpoint, of one tenant's,
    /// or all), oldest first.
    pub async fn page_subscriptions(
        &self,
        endpoint_id: Option<&str>,
        tenant_id: Option<&str>,
        page: &PageRequest,
    ) -> Result<Page<Subscription>> {
        let mut conditions = Conditions::default();
        conditions.clauses.push("e.deleted_at IS NULL".to_string());
        if let Some(id) = endpoint_id {
            conditions.push("s.endpoint_id = ?", Param::Text(id.to_string()));
        }
        if let Some(id) = tenant_id {
            conditions.push("s.tenant_id = ?", Param::Text(id.to_string()));
        }
        let query = KeysetQuery {
            select: format!(
                "SELECT {} FROM subscriptions s JOIN endpoints e ON e.id = s.endpoint_id
                 JOIN tenants t ON t.id = s.tenant_id",
                subscription_columns!()
            ),
            conditions,
            alias: "s",
            time: "created_at",
            direction: Direction::OldestFirst,
        };
        let rows: Vec<SubscriptionRow> = self.keyset_rows(query, page).await?;
        let items = rows.into_iter().map(Subscription::from).collect();
        Ok(Page::from_rows(items, page.limit, |s: &Subscription| {
            Cursor::of(s.created_at, &s.id)
        }))
    }

    /// Events matching `filter`, newest first.
    pub async fn page_events(
        &self,
        filter: &EventFilter,
        page: &PageRequest,
    ) -> Result<Page<Event>> {
        let mut conditions = Conditions::default();
        if let Some(id) = &filter.tenant_id {
            conditions.push(
                "(ev.tenant_id = ? OR ev.tenant_id IS NULL)",
                Param::Text(id.clone()),
            );
        }
        if let Some(topic) = &filter.topic {
            conditions.push("ev.topic = ?", Param::Text(topic.clone()));
        }
        if let Some(since) = filter.since {
            conditions.push("ev.created_at >= ?", Param::Int(since));
        }
        if let Some(until) = filter.until {
            conditions.push("ev.created_at < ?", Param::Int(until));
        }
        let query = KeysetQuery {
            select: format!("SELECT {} FROM events ev", event_columns!()),
            conditions,
            alias: "ev",
            time: "created_at",
            direction: Direction::NewestFirst,
        };
        let rows: Vec<EventRow> = self.keyset_rows(query, page).await?;
        let items: Vec<Event> = convert_all(rows)?;
        Ok(Page::from_rows(items, page.limit, |e: &Event| {
            Cursor::of(e.created_at, &e.id)
        }))
    }

    /// Attempts of a delivery or an endpoint, newest first.
    pub async fn page_attempts(
        &self,
        filter: &AttemptFilter,
        page: &PageRequest,
    ) -> Result<Page<Attempt>> {
        let mut conditions = Conditions::default();
        match &filter.of {
            AttemptsOf::Delivery(id) => {
                conditions.push("a.delivery_id = ?", Param::Text(id.clone()));
            }
            AttemptsOf::Endpoint(id) => {
                conditions.push("a.endpoint_id = ?", Param::Text(id.clone()));
            }
        }
        match filter.succeeded {
            Some(true) => conditions.clauses.push("a.error_kind IS NULL".to_string()),
            Some(false) => conditions
                .clauses
                .push("a.error_kind IS NOT NULL".to_string()),
            None => {}
        }
        let query = KeysetQuery {
            select: "SELECT a.id, a.delivery_id, a.endpoint_id, a.attempt_number, a.started_at,
                     a.duration_ms, a.status_code, a.error_kind, a.error_message,
                     a.request_headers, a.response_body, a.dispatcher_id FROM attempts a"
                .to_string(),
            conditions,
            alias: "a",
            time: "started_at",
            direction: Direction::NewestFirst,
        };
        let rows: Vec<AttemptRow> = self.keyset_rows(query, page).await?;
        let items: Vec<Attempt> = convert_all(rows)?;
        Ok(Page::from_rows(items, page.limit, |a: &Attempt| {
            Cursor::of(a.started_at, &a.id)
        }))
    }
}
