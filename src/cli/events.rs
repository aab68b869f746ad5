//! `hookline publish|delivery|retry|dispatchers|audit`: events and what became of them.

use std::io::Read;

use anyhow::Context;
use hookline::api::views::{DeliveryDetailView, DeliveryView, EventDetailView};
use hookline::config::Config;
use hookline::held::{Hold, Stopped};
use hookline::model::{Delivery, IdKind};
use hookline::ops::{BulkRetry, EventInput, Ops, OpsError, parse_since};
use hookline::store::{Cursor, DeliveryDetail, DeliveryFilter, ExpungeReport};
use serde_json::json;

use super::admin::{open_store, ops};
use super::output::{Cell, Output, Record};
use super::{
    AuditArgs, DeliveryCommand, DeliveryListArgs, EventCommand, PruneArgs, PublishArgs, RetryArgs,
};

/// Deliveries an event's detail lists at most, as the API's event resource.
const EVENT_DELIVERIES: usize = 1_000;

/// The payload argument: JSON text, `@FILE`, or `-` for stdin, byte for byte.
fn read_payload(arg: &str) -> anyhow::Result<String> {
    let bytes = if arg == "-" {
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .context("payload: could not read stdin")?;
        bytes
    } else if let Some(path) = arg.strip_prefix('@') {
        std::fs::read(path).map_err(|e| OpsError::Invalid {
            field: "payload",
            reason: format!("could not read {path}: {e}"),
        })?
    } else {
        return Ok(arg.to_string());
    };
    String::from_utf8(bytes).map_err(|_| {
        OpsError::Invalid {
            field: "payload",
            reason: "not UTF-8 text, so not JSON".to_string(),
        }
        .into()
    })
}

pub async fn publish(args: PublishArgs, config: &Config, out: &Output) -> anyhow::Result<()> {
    let payload = read_payload(&args.payload)?;
    let ops = ops(config).await?;
    let input = EventInput {
        tenant: args.tenant,
        broadcast: args.broadcast,
        topic: args.topic,
        payload: payload.into(),
        idempotency_key: args.idempotency_key,
    };
    let published = ops.publish(input).await?;
    let text = if published.duplicate {
        format!(
            "duplicate of {} (idempotency key seen before): nothing new created; it has {} deliveries",
            published.event_id, published.deliveries
        )
    } else {
        format!(
            "published {} with {} deliveries",
            published.event_id, published.deliveries
        )
    };
    out.result(
        serde_json::to_value(hookline::api::PublishResponse::from(published))?,
        &text,
    );
    Ok(())
}

/// The state as a person reads it, with what holds due work:
/// `pending · held: endpoint paused`.
fn state_text(delivery: &Delivery, stopped: &Stopped) -> String {
    match Hold::of(delivery, stopped) {
        Some(hold) => format!(
            "{} · {}",
            delivery.state,
            hold.label(hookline::ops::local_time_short)
        ),
        None => delivery.state.to_string(),
    }
}

fn delivery_row(delivery: &Delivery, stopped: &Stopped) -> Record {
    let last = match (&delivery.last_error, delivery.last_status) {
        (Some(error), _) => error.clone(),
        (None, Some(status)) => status.to_string(),
        (None, None) => "-".to_string(),
    };
    Record::new()
        .field("id", &delivery.id)
        .field("created_at", Cell::Time(delivery.created_at))
        .field("topic", &delivery.topic)
        .field("tenant", &delivery.tenant_name)
        .field("endpoint", &delivery.endpoint_name)
        .field("state", state_text(delivery, stopped))
        .field("attempts", delivery.attempts)
        .field("last", last)
}

fn delivery_record(delivery: &Delivery, stopped: &Stopped) -> Record {
    Record::new()
        .field("id", &delivery.id)
        .field("event_id", &delivery.event_id)
        .field("topic", &delivery.topic)
        .field("tenant", &delivery.tenant_name)
        .field("tenant_id", &delivery.tenant_id)
        .field("endpoint", &delivery.endpoint_name)
        .field("endpoint_id", &delivery.endpoint_id)
        .field("state", delivery.state.as_str())
        .field("held", Hold::of(delivery, stopped).map(Hold::code))
        .field("attempts", delivery.attempts)
        .field("next_attempt_at", Cell::Time(delivery.next_attempt_at))
        .field("last_attempt_at", Cell::time(delivery.last_attempt_at))
        .field("last_status", delivery.last_status)
        .field("last_error", delivery.last_error.as_ref())
        .field("created_at", Cell::Time(delivery.created_at))
        .field("updated_at", Cell::Time(delivery.updated_at))
}

fn print_delivery_detail(detail: &DeliveryDetail, stopped: &Stopped, out: &Output) {
    if out.is_json() {
        out.json(&DeliveryDetailView::new(detail.clone(), stopped));
        return;
    }
    let mut record = delivery_record(&detail.delivery, stopped);
    if let Some(hold) = Hold::of(&detail.delivery, stopped) {
        record = record.field(
            "held",
            format!(
                "{}: nothing is sent until {}",
                hold.label(hookline::ops::local_time_short),
                hold.until()
            ),
        );
    }
    out.detail(&record);
    out.line("\npayload:");
    match payload_removed_note(&detail.event) {
        Some(note) => out.line(format!("  {note}")),
        None => {
            let pretty = hookline::model::reindent_json(&detail.event.payload);
            for line in pretty.lines() {
                out.line(format!("  {line}"));
            }
        }
    }
    out.line("\nattempts:");
    if detail.attempts.is_empty() {
        out.line("  none yet");
    }
    for attempt in &detail.attempts {
        let outcome = match (attempt.error_kind, attempt.status_code) {
            (None, Some(status)) => format!("ok {status}"),
            (Some(kind), Some(status)) => format!("{kind} {status}"),
            (Some(kind), None) => kind.to_string(),
            (None, None) => "ok".to_string(),
        };
        out.line(format!(
            "  #{} {} {:>6}ms  {}{}",
            attempt.attempt_number,
            hookline::model::format_rfc3339(attempt.started_at),
            attempt.duration_ms,
            outcome,
            attempt
                .error_message
                .as_deref()
                .filter(|_| attempt.error_kind != Some(hookline::model::ErrorKind::HttpStatus))
                .map(|m| format!(": {m}"))
                .unwrap_or_default()
        ));
        if let Some(body) = &attempt.response_body {
            let body: String = body.chars().take(200).collect();
            // A preview on one line: line breaks become spaces, any other
            // control is shown escaped by `line`.
            out.line(format!(
                "      response: {}",
                body.replace(['\n', '\r'], " ")
            ));
        }
    }
}

pub async fn delivery(
    command: DeliveryCommand,
    config: &Config,
    out: &Output,
) -> anyhow::Result<()> {
    let ops = ops(config).await?;
    let store = ops.reads();
    match command {
        DeliveryCommand::List(args) => list_deliveries(args, &ops, out).await,
        DeliveryCommand::Show { id } => match IdKind::of(&id) {
            Some(IdKind::Delivery) => {
                let detail = store.get_delivery(&id).await?;
                let stopped = store.held_endpoints().await?;
                print_delivery_detail(&detail, &stopped, out);
                Ok(())
            }
            Some(IdKind::Event) => {
                let event = store.get_event(&id).await?;
                let filter = DeliveryFilter {
                    event_id: Some(event.id.clone()),
                    ..DeliveryFilter::default()
                };
                let stopped = store.held_endpoints().await?;
                if out.is_json() {
                    let fanout = store.event_fanout(&id, EVENT_DELIVERIES).await?;
                    out.json(&EventDetailView::new(fanout, &stopped));
                } else {
                    let page = store
                        .list_deliveries(&filter, None, EVENT_DELIVERIES)
                        .await?;
                    let record = Record::new()
                        .field("id", &event.id)
                        .field(
                            "tenant_id",
                            event
                                .tenant_id
                                .clone()
                                .unwrap_or_else(|| "(broadcast)".into()),
                        )
                        .field("topic", &event.topic)
                        .field("created_at", Cell::Time(event.created_at))
                        .field(
                            "payload",
                            payload_removed_note(&event)
                                .unwrap_or_else(|| event.payload.trim_end().to_string()),
                        );
                    out.detail(&record);
                    out.line("");
                    let rows: Vec<Record> = page
                        .items
                        .iter()
                        .map(|d| delivery_row(d, &stopped))
                        .collect();
                    out.table(&rows, "no deliveries: no endpoint subscribed to this topic");
                }
                Ok(())
            }
            _ => Err(OpsError::Invalid {
                field: "id",
                reason: format!("{id:?} is neither a delivery id (dlv_…) nor an event id (msg_…)"),
            }
            .into()),
        },
    }
}

async fn list_deliveries(args: DeliveryListArgs, ops: &Ops, out: &Output) -> anyhow::Result<()> {
    let tenant_id = match &args.tenant {
        Some(key) => Some(ops.tenant(key).await?.id),
        None => None,
    };
    let endpoint_id = match &args.endpoint {
        Some(key) => Some(ops.endpoint(key).await?.id),
        None => None,
    };
    let cursor = match &args.cursor {
        Some(text) => Some(Cursor::decode(text).ok_or_else(|| OpsError::Invalid {
            field: "cursor",
            reason: format!("{text:?} is not a cursor printed by a previous page"),
        })?),
        None => None,
    };
    let filter = DeliveryFilter {
        states: args.state,
        tenant_id,
        endpoint_id,
        topic: args.topic,
        event_id: args.event,
        since: args
            .since
            .as_deref()
            .map(|s| parse_since("since", s))
            .transpose()?,
        until: None,
    };
    let page = ops
        .reads()
        .list_deliveries(&filter, cursor.as_ref(), args.limit as usize)
        .await?;
    let stopped = ops.reads().held_endpoints().await?;
    if out.is_json() {
        let views: Vec<DeliveryView> = page
            .items
            .iter()
            .map(|d| DeliveryView::new(d.clone(), &stopped))
            .collect();
        out.json(&views);
    } else {
        let rows: Vec<Record> = page
            .items
            .iter()
            .map(|d| delivery_row(d, &stopped))
            .collect();
        out.table(&rows, "no deliveries match");
    }
    if let Some(next) = page.next {
        if out.is_json() {
            eprintln!("next page: --cursor {}", next.encode());
        } else {
            out.line(format!("next page: --cursor {}", next.encode()));
        }
    }
    Ok(())
}

pub async fn retry(args: RetryArgs, config: &Config, out: &Output) -> anyhow::Result<()> {
    let ops = ops(config).await?;
    let Some(endpoint) = args.endpoint else {
        let report = ops.retry(&args.ids).await?;
        let mut text = format!("retried {} deliveries", report.retried.len());
        for (id, reason) in &report.skipped {
            text.push_str(&format!("\nskipped {id}: {reason}"));
        }
        out.result(json!(report), &text);
        if report.retried.is_empty() {
            return Err(super::exit::Refused("nothing was retried".to_string()).into());
        }
        return Ok(());
    };
    let request = BulkRetry {
        endpoint,
        states: args.state,
        since: args
            .since
            .as_deref()
            .map(|s| parse_since("since", s))
            .transpose()?,
        until: args
            .until
            .as_deref()
            .map(|s| parse_since("until", s))
            .transpose()?,
        dry_run: args.dry_run,
    };
    if request.dry_run {
        let (endpoint, preview) = ops.preview_bulk(&request).await?;
        out.result(
            preview_json(&endpoint.id, &preview),
            &preview_text(&preview),
        );
        return Ok(());
    }
    let (endpoint, count) = ops.retry_bulk(&request).await?;
    let text = format!(
        "retried {count} deliveries to {} ({})",
        endpoint.name, endpoint.id
    );
    out.result(
        json!({ "endpoint_id": endpoint.id, "count": count, "dry_run": false }),
        &text,
    );
    Ok(())
}

/// A bulk retry's preview as `--json` gives it: the count, the oldest and
/// newest (RFC 3339), and how many wait behind a hold, and why.
fn preview_json(endpoint_id: &str, preview: &hookline::ops::PreviewEndpoint) -> serde_json::Value {
    let time = |ms: i64| (preview.count > 0).then(|| hookline::model::format_rfc3339(ms));
    json!({
        "endpoint_id": endpoint_id,
        "count": preview.count,
        "dry_run": true,
        "oldest": time(preview.oldest),
        "newest": time(preview.newest),
        "held": if preview.held.is_some() { preview.count } else { 0 },
        "held_reason": preview.held.map(|hold| hold.code()),
    })
}

/// "would retry 3 deliveries to acme/prod (ep_…), created … to …; all 3
/// are held: endpoint paused (they wait until it is resumed)".
fn preview_text(preview: &hookline::ops::PreviewEndpoint) -> String {
    let mut text = format!(
        "would retry {} deliveries to {}/{} ({})",
        preview.count, preview.tenant, preview.name, preview.endpoint_id
    );
    if preview.count > 0 {
        text.push_str(&format!(
            ", created {} to {}",
            hookline::model::format_rfc3339(preview.oldest),
            hookline::model::format_rfc3339(preview.newest)
        ));
    }
    if let Some(hold) = preview.held.filter(|_| preview.count > 0) {
        text.push_str(&format!(
            "; all {} are held: {} (they wait until {})",
            preview.count,
            hold.label(hookline::ops::local_time_short),
            hold.until()
        ));
    }
    text
}

/// `hookline prune`: one retention pass now, table by table.
/// `hookline event …`.
pub async fn event(command: EventCommand, config: &Config, out: &Output) -> anyhow::Result<()> {
    let ops = ops(config).await?;
    match command {
        EventCommand::Expunge { ids } => {
            let report = ops.expunge_events(&ids).await?;
            out.result(serde_json::to_value(&report)?, &expunge_summary(&report));
        }
    }
    Ok(())
}

/// What is said instead of a removed payload: when, why, and that its
/// deliveries cannot be sent again.
fn payload_removed_note(event: &hookline::model::Event) -> Option<String> {
    let removal = event.payload_removed?;
    Some(format!(
        "({} bytes, {} at {}; its deliveries cannot be retried)",
        event.payload_size,
        removal.by.describe(),
        hookline::ops::local_time(removal.at)
    ))
}

/// `12.3 MiB`.
fn mebibytes(bytes: f64) -> String {
    format!("{:.1} MiB", bytes / (1024.0 * 1024.0))
}

/// What an expunge removed, in a sentence (two when the SQLite log could
/// not be emptied yet).
pub fn expunge_summary(report: &ExpungeReport) -> String {
    let mut text = format!(
        "expunged {} event payloads and {} response bodies; {} unfinished deliveries cancelled",
        report.events, report.response_bodies_removed, report.deliveries_cancelled
    );
    if !report.log_truncated {
        text.push_str(
            "\na reader kept the database's write-ahead log busy: earlier copies of the removed \
             pages stay in it until its next checkpoint",
        );
    }
    text
}

pub async fn prune(args: PruneArgs, config: &Config, out: &Output) -> anyhow::Result<()> {
    let store = open_store(config).await?;
    let report = hookline::prune::prune_once(&store, &config.retention, args.dry_run).await;
    let vacuumed = match (&report, args.vacuum) {
        (Ok(_), true) => Some(store.vacuum().await),
        _ => None,
    };
    store.close().await;
    let report = report?;
    let vacuumed = vacuumed.transpose().context("vacuum")?;
    if out.is_json() {
        let mut json = serde_json::to_value(&report)?;
        json["total"] = serde_json::Value::from(report.total());
        if let Some(vacuumed) = vacuumed {
            json["vacuum"] = serde_json::to_value(vacuumed)?;
        }
        out.result(json, "");
        return Ok(());
    }
    let records: Vec<Record> = report
        .rows()
        .iter()
        .map(|&(table, rows)| {
            Record::new()
                .field("table", table)
                .field("rows", i64::try_from(rows).unwrap_or(i64::MAX))
        })
        .collect();
    out.table(&records, "");
    let verb = if report.dry_run {
        "would remove"
    } else {
        "removed"
    };
    out.note(&format!("{verb} {} rows in all", report.total()));
    if report.space_released_bytes > 0 {
        out.note(&format!(
            "handed {} of free pages back to the file system",
            mebibytes(report.space_released_bytes as f64)
        ));
    }
    if let Some(vacuumed) = vacuumed {
        out.note(&format!(
            "vacuumed: {} before, {} after",
            mebibytes(vacuumed.before_bytes as f64),
            mebibytes(vacuumed.after_bytes as f64)
        ));
    }
    Ok(())
}

pub async fn dispatchers(config: &Config, out: &Output) -> anyhow::Result<()> {
    let store = open_store(config).await?;
    let (dispatchers, now) = store.list_dispatchers(24 * 3_600_000).await?;
    let alive_within = config.dispatch.alive_within();
    let records: Vec<Record> = dispatchers
        .iter()
        .map(|d| {
            let alive = d.stopped_at.is_none()
                && now - d.last_seen_at
                    <= i64::try_from(alive_within.as_millis()).unwrap_or(i64::MAX);
            let state = match (alive, d.stopped_at) {
                (true, _) => "alive",
                (false, Some(_)) => "stopped",
                (false, None) => "silent",
            };
            Record::new()
                .field("id", &d.id)
                .field("state", state)
                .field("host", &d.host)
                .field("pid", d.pid)
                .field("started_at", Cell::Time(d.started_at))
                .field("last_seen_at", Cell::Time(d.last_seen_at))
                .field("deliveries_per_sec", Cell::Float(d.deliveries_per_sec))
        })
        .collect();
    out.table(&records, "no dispatcher has run in the last 24 hours");
    Ok(())
}

pub async fn audit(args: AuditArgs, config: &Config, out: &Output) -> anyhow::Result<()> {
    let store = open_store(config).await?;
    let page = store.list_audit(None, args.limit as usize).await?;
    let records: Vec<Record> = page
        .items
        .iter()
        .map(|entry| {
            Record::new()
                .field("at", Cell::Time(entry.at))
                .field("actor", &entry.actor)
                .field("from", entry.client_addr.as_ref())
                .field("source", entry.source.as_str())
                .field("action", entry.action.as_str())
                .field("targets", entry.target_ids.join(","))
                .field(
                    "detail",
                    Cell::Json(serde_json::from_str(&entry.detail).unwrap_or(json!(entry.detail))),
                )
        })
        .collect();
    out.table(&records, "no operator actions recorded yet");
    Ok(())
}
