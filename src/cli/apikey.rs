//! `hookline apikey …`: the keys the HTTP API accepts. A key is printed once,
//! when created; only its hash is stored.

use hookline::api::{ApiKeyView, CreatedApiKey};
use hookline::config::Config;
use hookline::model::{ApiKey, now_millis};
use hookline::ops::parse_expires;
use serde_json::Value;

use super::ApikeyCommand;
use super::admin::ops;
use super::output::{Cell, Output, Record};

/// The key as listed; `expired` as of `now` (unix ms).
fn key_record(key: &ApiKey, now: i64) -> Record {
    Record::new()
        .field("id", &key.id)
        .field("name", &key.name)
        .field(
            "access",
            match &key.tenant_name {
                Some(tenant) => format!("tenant {tenant}"),
                None => "admin".to_string(),
            },
        )
        .field("tenant_id", key.tenant_id.as_ref())
        .field("prefix", format!("{}…", key.key_prefix))
        .field("created_at", Cell::Time(key.created_at))
        .field("expires_at", Cell::time(key.expires_at))
        .field("expired", Cell::Json(Value::Bool(key.is_expired(now))))
        .field("revoked_at", Cell::time(key.revoked_at))
}

pub async fn apikey(command: ApikeyCommand, config: &Config, out: &Output) -> anyhow::Result<()> {
    let ops = ops(config).await?;
    match command {
        ApikeyCommand::Create(args) => {
            let tenant = if args.admin { None } else { args.tenant };
            let expires_at = args
                .expires
                .as_deref()
                .map(|text| parse_expires("--expires", text))
                .transpose()?;
            let (key, secret) = ops
                .create_api_key(&args.name, tenant.as_deref(), expires_at)
                .await?;
            let now = now_millis();
            if out.is_json() {
                out.json(&CreatedApiKey {
                    record: ApiKeyView::new(key, now),
                    key: secret,
                });
            } else {
                out.detail(&key_record(&key, now).field("key", &secret));
                out.note("store the key now: it is shown this once and cannot be read back");
            }
        }
        ApikeyCommand::List { all } => {
            let keys = ops.reads().list_api_keys(all).await?;
            let now = now_millis();
            if out.is_json() {
                let views: Vec<ApiKeyView> = keys
                    .into_iter()
                    .map(|key| ApiKeyView::new(key, now))
                    .collect();
                out.json(&views);
                return Ok(());
            }
            let records: Vec<Record> = keys.iter().map(|key| key_record(key, now)).collect();
            out.table(
                &records,
                "no API keys yet: create one with `hookline apikey create --name N --admin`",
            );
        }
        ApikeyCommand::Revoke { key } => {
            let key = ops.revoke_api_key(&key).await?;
            if out.is_json() {
                out.json(&ApiKeyView::new(key, now_millis()));
                return Ok(());
            }
            out.line(format!(
                "revoked API key {} ({}); requests with it are refused from now on",
                key.name, key.id
            ));
        }
    }
    Ok(())
}
