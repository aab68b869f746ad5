//! `hookline tenant|endpoint|subscription …`: managing who receives what.

use hookline::api::views::{EndpointView, SubscriptionView, TenantView};
use hookline::config::Config;
use hookline::model::{
    Actor, BreakerMode, BreakerState, Endpoint, EndpointState, Source, Subscription, Tenant,
    now_millis,
};
use hookline::ops::{
    EndpointChanges, EndpointInput, Ops, from_now, local_time, local_time_short, parse_until,
};
use hookline::store::{Breaker, OpenMode, Store, StoreOptions};
use serde_json::json;

use super::output::{Cell, Output, Record};
use super::{EndpointCommand, SubscriptionCommand, TenantCommand};

/// Opens the configured database, which must already exist and be migrated.
pub async fn open_store(config: &Config) -> anyhow::Result<Store> {
    let options = StoreOptions::from_config(config);
    Ok(Store::open_with(&config.database.url, OpenMode::Existing, options).await?)
}

/// The actions, recorded as the OS user (and SSH client) running the CLI.
pub async fn ops(config: &Config) -> anyhow::Result<Ops> {
    let store = open_store(config).await?;
    Ok(Ops::new(
        store,
        config,
        Actor::from_environment(Source::Cli),
    ))
}

/// Prints a tenant: the API's shape with `--json`, `key: value` lines otherwise.
fn show_tenant(out: &Output, tenant: &Tenant) {
    if out.is_json() {
        out.json(&TenantView::from(tenant.clone()));
    } else {
        out.detail(&tenant_record(tenant));
    }
}

/// An endpoint in the API's shape, with its breaker: masked, or with
/// `--show-secret` in plain after an audited reveal.
async fn endpoint_view(
    ops: &Ops,
    out: &Output,
    endpoint: Endpoint,
) -> anyhow::Result<EndpointView> {
    let breaker = ops.breaker_of(&endpoint).await?;
    let view = if out.shows_secrets() {
        ops.audit_reveal(std::slice::from_ref(&endpoint)).await?;
        EndpointView::revealed(endpoint)
    } else {
        EndpointView::from(endpoint)
    };
    Ok(view.with_breaker(breaker))
}

/// Prints an endpoint: the API's shape with `--json`, `key: value` lines
/// (secrets as [`visible`] leaves them) otherwise.
async fn show_endpoint(ops: &Ops, out: &Output, endpoint: Endpoint) -> anyhow::Result<()> {
    if out.is_json() {
        out.json(&endpoint_view(ops, out, endpoint).await?);
    } else {
        out.detail(&endpoint_record(&visible_one(ops, out, endpoint).await?));
    }
    Ok(())
}

/// Prints a subscription: the API's shape with `--json`.
fn show_subscription(out: &Output, subscription: &Subscription) {
    if out.is_json() {
        out.json(&SubscriptionView::from(subscription.clone()));
    } else {
        out.detail(&subscription_record(subscription));
    }
}

fn tenant_record(tenant: &Tenant) -> Record {
    Record::new()
        .field("id", &tenant.id)
        .field("name", &tenant.name)
        .field("created_at", Cell::Time(tenant.created_at))
}

/// Endpoints as a command may print them: masked, or with `--show-secret`
/// in plain, with an audit row naming the operator and the endpoints.
async fn visible(
    ops: &Ops,
    out: &Output,
    endpoints: Vec<Endpoint>,
) -> anyhow::Result<Vec<Endpoint>> {
    if out.shows_secrets() {
        ops.audit_reveal(&endpoints).await?;
        Ok(endpoints)
    } else {
        Ok(endpoints.iter().map(Endpoint::masked).collect())
    }
}

/// One endpoint as [`visible`] shows it.
async fn visible_one(ops: &Ops, out: &Output, endpoint: Endpoint) -> anyhow::Result<Endpoint> {
    let mut shown = visible(ops, out, vec![endpoint]).await?;
    shown
        .pop()
        .ok_or_else(|| anyhow::anyhow!("no endpoint to show"))
}

/// The endpoint fields every listing shows; secrets as [`visible`] left them.
pub fn endpoint_record(endpoint: &Endpoint) -> Record {
    let headers: Vec<String> = endpoint
        .headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}"))
        .collect();
    Record::new()
        .field("id", &endpoint.id)
        .field("tenant", &endpoint.tenant_name)
        .field("name", &endpoint.name)
        .field("state", endpoint.state.as_str())
        .field("url", &endpoint.url)
        .field("secret", &endpoint.secret)
        .field("timeout_ms", endpoint.timeout_ms)
        .field("max_in_flight", endpoint.max_in_flight)
        .field("rate_limit", endpoint.rate_limit.map(|l| l.per_second))
        .field("rate_limit_burst", endpoint.rate_limit.map(|l| l.burst))
        .field("headers", Cell::Json(json!(headers)))
        .field("state_reason", endpoint.state_reason.as_ref())
        .field("paused_until", Cell::time(endpoint.paused_until))
        .field("created_at", Cell::Time(endpoint.created_at))
}

fn endpoint_detail(
    endpoint: &Endpoint,
    breaker: &Breaker,
    subscriptions: &[Subscription],
) -> Record {
    let patterns: Vec<&str> = subscriptions.iter().map(|s| s.pattern.as_str()).collect();
    endpoint_record(endpoint)
        .field("breaker", breaker.state.as_str())
        .field("breaker_mode", breaker.mode.as_str())
        .field("breaker_next_probe_at", Cell::time(breaker.next_probe_at))
        .field("breaker_window_attempts", breaker.window_attempts)
        .field("breaker_window_failures", breaker.window_failures)
        .field("breaker_consecutive_failures", breaker.consecutive_failures)
        .field("receiver_wait_until", Cell::time(breaker.wait_until))
        .field("tenant_id", &endpoint.tenant_id)
        .field("previous_secret", endpoint.previous_secret.as_ref())
        .field(
            "previous_secret_expires_at",
            Cell::time(endpoint.previous_secret_expires_at),
        )
        .field("state_changed_at", Cell::time(endpoint.state_changed_at))
        .field("description", endpoint.description.as_ref())
        .field("updated_at", Cell::Time(endpoint.updated_at))
        .field("subscriptions", Cell::Json(json!(patterns)))
}

/// The short endpoint table (fits 100 columns).
fn endpoint_row(endpoint: &Endpoint, breaker: BreakerState) -> Record {
    // A pause that ends by itself says when, where the state is read; an
    // active endpoint's work held by its breaker says so there too.
    let state = match (endpoint.paused_until, endpoint.state, breaker) {
        (Some(at), _, _) => format!("{} until {}", endpoint.state.as_str(), local_time_short(at)),
        (None, EndpointState::Active, BreakerState::Open | BreakerState::HalfOpen) => {
            format!("active, breaker {}", breaker.as_str().replace('_', "-"))
        }
        (None, _, _) => endpoint.state.as_str().to_string(),
    };
    Record::new()
        .field("id", &endpoint.id)
        .field("tenant", &endpoint.tenant_name)
        .field("name", &endpoint.name)
        .field("state", state)
        .field("url", &endpoint.url)
}

fn subscription_record(subscription: &Subscription) -> Record {
    Record::new()
        .field("id", &subscription.id)
        .field("endpoint", &subscription.endpoint_name)
        .field("endpoint_id", &subscription.endpoint_id)
        .field("topic", &subscription.pattern)
        .field("description", subscription.description.as_ref())
}

pub async fn tenant(command: TenantCommand, config: &Config, out: &Output) -> anyhow::Result<()> {
    let ops = ops(config).await?;
    match command {
        TenantCommand::Add { name } => {
            let tenant = ops.add_tenant(&name).await?;
            show_tenant(out, &tenant);
        }
        TenantCommand::List => {
            let tenants = ops.reads().list_tenants().await?;
            if out.is_json() {
                let views: Vec<TenantView> = tenants.into_iter().map(TenantView::from).collect();
                out.json(&views);
                return Ok(());
            }
            let records: Vec<Record> = tenants.iter().map(tenant_record).collect();
            out.table(
                &records,
                "no tenants yet: add one with `hookline tenant add NAME`",
            );
        }
        TenantCommand::Delete { tenant } => {
            let (tenant, cancelled) = ops.delete_tenant(&tenant).await?;
            out.result(
                json!({ "deleted": tenant.id, "cancelled_deliveries": cancelled }),
                &format!(
                    "deleted tenant {} ({}); {cancelled} unfinished deliveries cancelled",
                    tenant.name, tenant.id
                ),
            );
        }
        TenantCommand::Expunge { tenant, before } => {
            let (tenant, report) = ops.expunge_tenant(&tenant, &before).await?;
            let mut text = format!(
                "tenant {} ({}): {}",
                tenant.name,
                tenant.id,
                super::events::expunge_summary(&report)
            );
            if report.broadcasts_left > 0 {
                text.push_str(&format!(
                    "\n{} broadcast events delivered to it were left: they belong to no tenant \
                     (expunge them by id with `hookline event expunge`)",
                    report.broadcasts_left
                ));
            }
            out.result(serde_json::to_value(&report)?, &text);
        }
    }
    Ok(())
}

pub async fn endpoint(
    command: EndpointCommand,
    config: &Config,
    out: &Output,
) -> anyhow::Result<()> {
    let ops = ops(config).await?;
    match command {
        EndpointCommand::Add(args) => {
            let input = EndpointInput {
                tenant: args.tenant,
                name: args.name,
                url: args.url,
                secret: args.secret,
                timeout: args.timeout,
                max_in_flight: args.max_in_flight,
                headers: args.header,
                description: args.description,
                rate_limit: args.rate_limit,
                rate_limit_burst: args.burst,
            };
            let endpoint = ops.add_endpoint(&input).await?;
            let id = endpoint.id.clone();
            show_endpoint(&ops, out, endpoint).await?;
            out.note(&format!(
                "next: hookline subscription add --endpoint {id} --topic 'resident.*'"
            ));
        }
        EndpointCommand::List { tenant } => {
            let tenant_id = match tenant {
                Some(key) => Some(ops.tenant(&key).await?.id),
                None => None,
            };
            let endpoints = ops.reads().list_endpoints(tenant_id.as_deref()).await?;
            if out.is_json() {
                let mut views = Vec::with_capacity(endpoints.len());
                for endpoint in endpoints {
                    views.push(endpoint_view(&ops, out, endpoint).await?);
                }
                out.json(&views);
                return Ok(());
            }
            let endpoints = visible(&ops, out, endpoints).await?;
            let breakers = ops.breakers_by_endpoint().await?;
            let breaker_of = |e: &Endpoint| {
                breakers
                    .get(&e.id)
                    .map_or(BreakerState::Closed, |b| b.state)
            };
            let records: Vec<Record> = endpoints
                .iter()
                .map(|e| endpoint_row(e, breaker_of(e)))
                .collect();
            out.table(
                &records,
                "no endpoints yet: add one with `hookline endpoint add`",
            );
        }
        EndpointCommand::Show { endpoint } => {
            let endpoint = ops.endpoint(&endpoint).await?;
            if out.is_json() {
                out.json(&endpoint_view(&ops, out, endpoint).await?);
                return Ok(());
            }
            let subscriptions = ops
                .reads()
                .list_subscriptions(Some(&endpoint.id), None)
                .await?;
            let breaker = ops.breaker_of(&endpoint).await?;
            let endpoint = visible_one(&ops, out, endpoint).await?;
            out.detail(&endpoint_detail(&endpoint, &breaker, &subscriptions));
        }
        EndpointCommand::Update(args) => {
            let changes = EndpointChanges {
                name: args.name,
                url: args.url,
                timeout: if args.default_timeout {
                    Some(None)
                } else {
                    args.timeout.map(Some)
                },
                max_in_flight: if args.default_max_in_flight {
                    Some(None)
                } else {
                    args.max_in_flight.map(Some)
                },
                headers: if args.clear_headers {
                    Some(Vec::new())
                } else if args.header.is_empty() {
                    None
                } else {
                    Some(args.header)
                },
                description: args.description.map(Some),
                rate_limit: if args.no_rate_limit {
                    Some(None)
                } else {
                    args.rate_limit.map(Some)
                },
                rate_limit_burst: args.burst,
            };
            let endpoint = ops.update_endpoint(&args.endpoint, &changes).await?;
            show_endpoint(&ops, out, endpoint).await?;
        }
        EndpointCommand::Pause {
            endpoint,
            reason,
            until,
        } => {
            let until = until.as_deref().map(parse_until).transpose()?;
            let (endpoint, already) = ops
                .pause_endpoint(&endpoint, reason.as_deref(), until)
                .await?;
            if out.is_json() {
                out.json(&endpoint_view(&ops, out, endpoint).await?);
                return Ok(());
            }
            let text = match (already, endpoint.paused_until) {
                (true, Some(at)) => format!(
                    "endpoint {} was already paused; it is paused until {} ({}) (a --reason or --until given replaces the one it had)",
                    endpoint.name,
                    local_time(at),
                    from_now(at, now_millis())
                ),
                (true, None) => format!(
                    "endpoint {} was already paused; it is paused until resumed (a --reason or --until given replaces the one it had)",
                    endpoint.name
                ),
                (false, Some(at)) => format!(
                    "paused endpoint {} ({}) until {} ({}): its deliveries are held until a dispatcher resumes it then, or `hookline endpoint resume {}` sooner",
                    endpoint.name,
                    endpoint.id,
                    local_time(at),
                    from_now(at, now_millis()),
                    endpoint.id
                ),
                (false, None) => format!(
                    "paused endpoint {} ({}): its deliveries are held until `hookline endpoint resume {}`",
                    endpoint.name, endpoint.id, endpoint.id
                ),
            };
            out.line(text);
        }
        EndpointCommand::Resume { endpoint } => {
            let (endpoint, before) = ops.resume_endpoint(&endpoint).await?;
            let text = format!(
                "endpoint {} ({}) is active (was {before}); held deliveries flow oldest first",
                endpoint.name, endpoint.id
            );
            if out.is_json() {
                out.json(&endpoint_view(&ops, out, endpoint).await?);
            } else {
                out.line(text);
            }
        }
        EndpointCommand::Breaker {
            endpoint,
            mode,
            limit,
        } => {
            if let Some(mode) = mode {
                let mode = match mode.as_str() {
                    "open" => BreakerMode::Open,
                    "close" | "closed" => BreakerMode::Closed,
                    _ => BreakerMode::Auto,
                };
                let (endpoint, breaker) = ops.set_breaker(&endpoint, mode).await?;
                let text = match mode {
                    BreakerMode::Open => format!(
                        "breaker of endpoint {} ({}) forced open: its deliveries are held until `hookline endpoint breaker {} auto`",
                        endpoint.name, endpoint.id, endpoint.id
                    ),
                    BreakerMode::Closed => format!(
                        "breaker of endpoint {} ({}) forced closed: its deliveries flow whatever their outcomes until `hookline endpoint breaker {} auto`",
                        endpoint.name, endpoint.id, endpoint.id
                    ),
                    BreakerMode::Auto => format!(
                        "breaker of endpoint {} ({}) back to auto: {}",
                        endpoint.name,
                        endpoint.id,
                        if breaker.state == BreakerState::Open {
                            "one delivery goes as a probe now"
                        } else {
                            "closed, counting outcomes"
                        }
                    ),
                };
                out.result(
                    json!({ "endpoint_id": endpoint.id, "breaker": breaker }),
                    &text,
                );
                return Ok(());
            }
            let (endpoint, breaker, transitions) = ops.breaker(&endpoint, limit).await?;
            if out.is_json() {
                out.result(
                    json!({ "endpoint_id": endpoint.id, "breaker": breaker, "transitions": transitions }),
                    "",
                );
                return Ok(());
            }
            out.detail(&breaker_record(&endpoint, &breaker));
            out.note("");
            out.table(
                &transitions
                    .iter()
                    .map(|t| {
                        Record::new()
                            .field("at", Cell::time(Some(t.at)))
                            .field("from", t.from.as_str())
                            .field("to", t.to.as_str())
                            .field("reason", &t.reason)
                            .field("by", t.actor.clone().unwrap_or_else(|| "hookline".into()))
                    })
                    .collect::<Vec<_>>(),
                "no transitions yet",
            );
        }
        EndpointCommand::Delete { endpoint } => {
            let (endpoint, cancelled) = ops.delete_endpoint(&endpoint).await?;
            out.result(
                json!({ "deleted": endpoint.id, "cancelled_deliveries": cancelled }),
                &format!(
                    "deleted endpoint {} ({}); {cancelled} unfinished deliveries cancelled",
                    endpoint.name, endpoint.id
                ),
            );
        }
        EndpointCommand::Probe { endpoint } => {
            let (_, report) = ops.probe(&endpoint).await?;
            out.result(serde_json::to_value(&report)?, &probe_text(&report));
            if let Some(step) = report.steps.iter().find(|s| !s.ok) {
                let failed = format!("the probe failed at {}: {}", step.step, step.detail);
                return Err(super::exit::CheckFailed(failed).into());
            }
        }
        EndpointCommand::RetryNow { endpoint } => {
            let (endpoint, moved) = ops.retry_now(&endpoint).await?;
            out.result(
                serde_json::json!({ "endpoint_id": endpoint.id, "count": moved }),
                &format!(
                    "sent {moved} retrying deliveries of {} ({}) now, each keeping its attempt count",
                    endpoint.name, endpoint.id
                ),
            );
        }
        EndpointCommand::RotateSecret { endpoint, secret } => {
            let endpoint = ops.rotate_secret(&endpoint, secret.as_deref()).await?;
            if out.is_json() {
                out.json(&endpoint_view(&ops, out, endpoint).await?);
                return Ok(());
            }
            let endpoint = visible_one(&ops, out, endpoint).await?;
            out.detail(&endpoint_record(&endpoint).field(
                "previous_secret_expires_at",
                Cell::time(endpoint.previous_secret_expires_at),
            ));
            out.note("both secrets sign every attempt until the previous one expires");
        }
    }
    Ok(())
}

pub async fn subscription(
    command: SubscriptionCommand,
    config: &Config,
    out: &Output,
) -> anyhow::Result<()> {
    let ops = ops(config).await?;
    match command {
        SubscriptionCommand::Add {
            endpoint,
            topic,
            description,
        } => {
            let subscription = ops
                .add_subscription(&endpoint, &topic, description.as_deref())
                .await?;
            show_subscription(out, &subscription);
        }
        SubscriptionCommand::List { endpoint, tenant } => {
            let endpoint_id = match endpoint {
                Some(key) => Some(ops.endpoint(&key).await?.id),
                None => None,
            };
            let tenant_id = match tenant {
                Some(key) => Some(ops.tenant(&key).await?.id),
                None => None,
            };
            let subscriptions = ops
                .reads()
                .list_subscriptions(endpoint_id.as_deref(), tenant_id.as_deref())
                .await?;
            if out.is_json() {
                let views: Vec<SubscriptionView> = subscriptions
                    .into_iter()
                    .map(SubscriptionView::from)
                    .collect();
                out.json(&views);
                return Ok(());
            }
            let records: Vec<Record> = subscriptions.iter().map(subscription_record).collect();
            out.table(&records, "no subscriptions");
        }
        SubscriptionCommand::Update {
            id,
            topic,
            description,
        } => {
            let subscription = ops
                .update_subscription(&id, topic.as_deref(), description.as_deref().map(Some))
                .await?;
            show_subscription(out, &subscription);
        }
        SubscriptionCommand::Delete { id } => {
            let subscription = ops.delete_subscription(&id).await?;
            out.result(
                json!({ "deleted": subscription.id }),
                &format!(
                    "deleted subscription {} ({} on {})",
                    subscription.id, subscription.pattern, subscription.endpoint_name
                ),
            );
        }
    }
    Ok(())
}

/// An endpoint's breaker as `key: value` lines.
fn breaker_record(endpoint: &Endpoint, breaker: &Breaker) -> Record {
    let mode = match breaker.mode {
        BreakerMode::Auto => "auto (its outcomes decide)".to_string(),
        forced => format!("forced {forced} until set back to auto"),
    };
    Record::new()
        .field("endpoint", format!("{} ({})", endpoint.name, endpoint.id))
        .field("state", breaker.state.as_str())
        .field("mode", mode)
        .field("opened_at", Cell::time(breaker.opened_at))
        .field("next_probe_at", Cell::time(breaker.next_probe_at))
        .field(
            "window",
            format!(
                "{} of {} attempts failed",
                breaker.window_failures, breaker.window_attempts
            ),
        )
        .field("failures_in_a_row", breaker.consecutive_failures)
        .field("last_answered_at", Cell::time(breaker.last_answered_at))
        .field("wait_until", Cell::time(breaker.wait_until))
}

/// A probe as lines: where from, then each step with its time and findings.
fn probe_text(report: &hookline::ops::ProbeReport) -> String {
    let mut lines = vec![format!("probe of {} from {}", report.url, report.from_host)];
    for step in &report.steps {
        let mark = if step.ok { "✓" } else { "✗" };
        let ms = step.ms.map(|ms| format!(" {ms} ms")).unwrap_or_default();
        lines.push(format!("{mark} {:<8}{ms:>8}  {}", step.step, step.detail));
        for line in &step.lines {
            lines.push(format!("  {:>16}  {line}", ""));
        }
    }
    lines.join("\n")
}
