//! Opening a Postgres database, for several dispatchers on several hosts.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use super::{Pools, Result, StoreError};

/// Connections per process; attempts are HTTP-bound, the database sees
/// batched claims and outcomes, so a few connections suffice.
const MAX_CONNECTIONS: u32 = 16;

/// Reader connections per process (the console's and the API's lists).
const READERS: u32 = 8;

/// Whether `url` names a Postgres database.
pub(super) fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// `url` with any password replaced, for messages and logs.
pub(super) fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_string();
    };
    match userinfo.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_string(),
    }
}

/// Opens the pools: writers plan each statement once, readers with the
/// values bound.
pub(super) async fn connect(url: &str) -> Result<Pools<sqlx::Postgres>> {
    let options = PgConnectOptions::from_str(url)
        .map_err(|_| StoreError::BadUrl(redacted(url)))?
        .application_name("hookline");
    let pool = |max_connections: u32, options: PgConnectOptions| {
        PgPoolOptions::new()
            .max_connections(max_connections)
            // No ping before every checkout (a round trip per transaction): a
            // broken connection fails its statement, and callers retry.
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
    };
    // Plan each write statement once per connection: with custom plans
    // Postgres re-planned the claim on every call (1.7 ms planning for 1 ms
    // of work); the write path's statements are index lookups by key whose
    // best plan does not depend on the values bound.
    let write = pool(
        MAX_CONNECTIONS,
        options
            .clone()
            .options([("plan_cache_mode", "force_generic_plan")]),
    )
    .await?;
    // Reads keep Postgres's default: the console's filtered lists depend on
    // the values (a generic plan guesses a topic matches a seventh of the
    // table and walks 55,000 rows to find 100 of a rare one: 20 ms, not 1).
    let read = pool(READERS, options).await?;
    Ok(Pools { write, read })
}
