//! Where claimed deliveries go: endpoint rows as a claim reads them, and
//! a cache of them that saves a cycle the read while an endpoint is
//! unchanged.

use std::collections::HashMap;
use std::sync::Mutex;

use super::EndpointTarget;
use crate::seal::SecretsKey;
use crate::store::Result;
use crate::store::sealing::Sealer;
use crate::store::sql::rows::parse_json;

/// An endpoint's row as a claim reads it, before it becomes an [`EndpointTarget`].
#[derive(Clone, sqlx::FromRow)]
pub(crate) struct TargetRow {
    id: String,
    url: String,
    secret: String,
    previous_secret: Option<String>,
    previous_secret_expires_at: Option<i64>,
    timeout_ms: Option<i64>,
    headers: String,
}

impl TargetRow {
    /// The endpoint's id.
    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    /// How long an attempt may take: the endpoint's timeout or the default.
    pub(crate) fn timeout_ms(&self, default_timeout_ms: i64) -> i64 {
        self.timeout_ms.unwrap_or(default_timeout_ms)
    }

    /// The target as of `now` (its signing secrets depend on the time), its
    /// sealed values opened with `key`: one that cannot be opened fails the
    /// read, so nothing unopened is ever sent.
    pub(crate) fn into_target(
        self,
        now: i64,
        default_timeout_ms: i64,
        key: Option<&SecretsKey>,
    ) -> Result<EndpointTarget> {
        let sealer = Sealer::new(key, &self.id);
        let mut secrets = vec![sealer.open_secret(&self.secret)?];
        if let (Some(previous), Some(expires)) =
            (self.previous_secret, self.previous_secret_expires_at)
            && expires > now
        {
            // The previous secret signs too while its grace lasts.
            secrets.push(sealer.open_secret(&previous)?);
        }
        let headers = parse_json("endpoints", "headers", &self.headers)?;
        Ok(EndpointTarget {
            headers: sealer.open_headers(headers)?,
            timeout_ms: self.timeout_ms.unwrap_or(default_timeout_ms),
            secrets,
            url: sealer.open_url(&self.url)?,
            id: self.id,
        })
    }
}

/// Most endpoints the cache keeps; past that it starts over, so its memory
/// stays bounded however many endpoints a platform has.
const CACHED_ENDPOINTS: usize = 10_000;

/// Endpoint rows by id with the row version they were read at (Postgres's
/// `xmin`, which every update of the row changes). A claim that locked an
/// endpoint knows its current version, and reads the row again only when
/// the version moved.
#[derive(Default)]
pub(crate) struct TargetCache {
    rows: Mutex<HashMap<String, (String, TargetRow)>>,
}

impl TargetCache {
    /// The cached rows of `ids` whose version is still the one in
    /// `versions`, and the ids that must be read again.
    pub fn split<'a>(
        &self,
        ids: &[&'a str],
        versions: &HashMap<String, String>,
    ) -> (Vec<TargetRow>, Vec<&'a str>) {
        let Ok(rows) = self.rows.lock() else {
            return (Vec::new(), ids.to_vec());
        };
        let mut cached = Vec::new();
        let mut stale = Vec::new();
        for &id in ids {
            match (rows.get(id), versions.get(id)) {
                (Some((kept, row)), Some(current)) if kept == current => cached.push(row.clone()),
                _ => stale.push(id),
            }
        }
        (cached, stale)
    }

    /// Keeps `row`, read at `version`.
    pub fn keep(&self, row: &TargetRow, version: &str) {
        let Ok(mut rows) = self.rows.lock() else {
            return;
        };
        if rows.len() >= CACHED_ENDPOINTS && !rows.contains_key(&row.id) {
            rows.clear();
        }
        rows.insert(row.id.clone(), (version.to_string(), row.clone()));
    }
}
