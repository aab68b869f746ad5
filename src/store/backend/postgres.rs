//! Opening a Postgres database, for several dispatchers on several hosts.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::config::redact_url;
use crate::store::{Pools, Result, StoreError};

/// Connections per process unless configured: attempts are HTTP-bound and
/// the database sees batched claims and outcomes, so a few are busy even
/// flat out (see docs/operations.md for the measurements).
const MAX_CONNECTIONS: u32 = 16;

/// Whether `url` names a Postgres database.
pub(crate) fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// Opens the pool of at most `max_connections` (default
/// [`MAX_CONNECTIONS`]); on Postgres readers and writers share it.
pub(crate) async fn connect(
    url: &str,
    max_connections: Option<u32>,
) -> Result<Pools<sqlx::Postgres>> {
    let options = PgConnectOptions::from_str(url)
        .map_err(|_| StoreError::BadUrl(redact_url(url)))?
        .application_name("hookline")
        // Plan each statement once per connection: with custom plans Postgres
        // re-planned the claim on every call (1.7 ms planning for 1 ms of
        // work). hookline's statements are index lookups by key whose best
        // plan does not depend on the values bound.
        .options([("plan_cache_mode", "force_generic_plan")])
        .statement_cache_capacity(crate::store::sql::values::STATEMENT_CACHE);
    let pool = PgPoolOptions::new()
        .max_connections(max_connections.unwrap_or(MAX_CONNECTIONS).max(1))
        // No ping before every checkout (a round trip per transaction): a
        // broken connection fails its statement, and callers retry.
        .test_before_acquire(false)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await?;
    Ok(Pools {
        write: pool.clone(),
        read: pool,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            redact_url("postgres://u:secret@db:5432/h"),
            "postgres://u:***@db:5432/h"
        );
        assert_eq!(redact_url("postgres://u@db/h"), "postgres://u@db/h");
        // What Store::location shows for a password given as a parameter.
        assert_eq!(
            redact_url("postgres://u@h/db?password=secret"),
            "postgres://u@h/db?password=***"
        );
    }

    #[tokio::test]
    async fn a_url_that_does_not_parse_is_refused_without_its_password() {
        let url = "postgres://u:secret@h:notaport/db?password=secret";
        let err = match connect(url, None).await {
            Ok(_) => panic!("{url} connected"),
            Err(err) => err.to_string(),
        };
        assert!(!err.contains("secret"), "{err}");
    }
}
