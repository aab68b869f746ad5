//! Long-running commands: `migrate`, `dispatch`, `serve`, `sink`, `console`, `bench`.

use anyhow::Context as _;
use hookline::config::Config;
use hookline::dispatch::Dispatcher;
use hookline::dispatch::guard::Guard;
use hookline::ops::OpsError;
use hookline::prune::Pruner;
use hookline::sign::Secret;
use hookline::sink::{self, SinkOptions};
use hookline::store::{OpenMode, Store, StoreOptions};
use serde_json::json;

use super::output::Output;
use super::{
    ApiBenchArgs, BenchMode, ConsoleArgs, ConsoleBenchArgs, PipelineArgs, SinkArgs, SoakBenchArgs,
};

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut terminate) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    tracing::info!("shutdown requested");
}

pub async fn migrate(config: &Config, out: &Output) -> anyhow::Result<()> {
    let store = Store::open_with(
        &config.database.url,
        OpenMode::Existing,
        StoreOptions::from_config(config),
    )
    .await;
    let store = match store {
        Ok(store) => {
            out.note(&format!("database at {} is up to date", store.location()));
            store
        }
        Err(_) => {
            let store = Store::open_with(
                &config.database.url,
                OpenMode::CreateAndMigrate,
                StoreOptions::from_config(config),
            )
            .await?;
            out.note(&format!("database at {} migrated", store.location()));
            store
        }
    };
    // A key set since the endpoints were written: seal what is still plain.
    let sealed = store.seal_plain_secrets().await?;
    if sealed > 0 {
        out.note(&format!(
            "encrypted the secrets of {sealed} endpoints with [secrets] key"
        ));
    }
    let version = store.schema_version().await?;
    if out.is_json() {
        out.result(
            json!({ "location": store.location(), "schema_version": version }),
            "",
        );
    }
    store.close().await;
    Ok(())
}

/// Runs a dispatcher until SIGINT/SIGTERM.
pub async fn dispatch(config: &Config) -> anyhow::Result<()> {
    let store = Store::open_with(
        &config.database.url,
        OpenMode::CreateAndMigrate,
        StoreOptions::from_config(config),
    )
    .await?;
    // A missing or wrong [secrets] key stops the process here, by name,
    // rather than failing every claim once it runs.
    store.check_secrets().await?;
    let dispatcher = Dispatcher::new(store.clone(), &config.dispatch, Guard::new(&config.network))?;
    let scraped = metrics_listener(config, &store).await?;
    let pruner = Pruner::start(store.clone(), config.retention.clone());
    let dispatched = dispatcher.run(shutdown_signal()).await;
    pruner.stop().await;
    if let Some(listener) = scraped {
        listener.stop().await;
    }
    store.close().await;
    dispatched?;
    Ok(())
}

/// `[metrics]`: counts per endpoint if asked, and serves `/metrics` on a
/// listener of its own if `listen` is set.
async fn metrics_listener(
    config: &Config,
    store: &Store,
) -> anyhow::Result<Option<hookline::api::metrics::MetricsListener>> {
    hookline::metrics::metrics().count_per_endpoint(config.metrics.per_endpoint);
    let Some(listen) = config.metrics.listen else {
        return Ok(None);
    };
    let gauges =
        hookline::api::metrics::DatabaseGauges::new(store.reads(), config.dispatch.alive_within());
    let listener = hookline::api::metrics::listen(listen, gauges)
        .await
        .context("metrics.listen")?;
    println!("metrics listening on {}", listener.url());
    Ok(Some(listener))
}

/// The HTTP API and a dispatcher in one process, until SIGINT/SIGTERM. The
/// dispatcher hears of new events at once (same process), without polling,
/// and takes what it has room for straight from the publishing transaction.
pub async fn serve(config: &Config) -> anyhow::Result<()> {
    let store = Store::open_with(
        &config.database.url,
        OpenMode::CreateAndMigrate,
        StoreOptions::from_config(config),
    )
    .await?;
    // A missing or wrong [secrets] key stops the process here, by name,
    // rather than failing every claim once it runs.
    store.check_secrets().await?;
    let dispatcher = Dispatcher::new(store.clone(), &config.dispatch, Guard::new(&config.network))?;
    let actor = hookline::model::Actor {
        name: "hookline-api".to_string(),
        client_addr: None,
        source: hookline::model::Source::Api,
    };
    let ops =
        hookline::ops::Ops::new(store.clone(), config, actor).handing_off_to(dispatcher.hand_off());
    let options = hookline::api::ApiOptions {
        listen: config.api.listen,
        open_health_metrics: config.api.open_health_metrics,
        alive_within: config.dispatch.alive_within(),
    };
    let api = hookline::api::start(ops, &options).await?;
    println!("API listening on {}", api.url());
    let scraped = metrics_listener(config, &store).await?;
    let pruner = Pruner::start(store.clone(), config.retention.clone());
    let (stop, stopping) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        stop.send_replace(true);
    });
    let mut dispatcher_stopping = stopping.clone();
    let dispatched = dispatcher
        .run(async move {
            let _ = dispatcher_stopping.wait_for(|stop| *stop).await;
        })
        .await;
    // The dispatcher only returns early on an error; stop the API either way.
    let served = api.stop().await;
    pruner.stop().await;
    if let Some(listener) = scraped {
        listener.stop().await;
    }
    store.close().await;
    dispatched?;
    served?;
    Ok(())
}

pub async fn sink(args: SinkArgs) -> anyhow::Result<()> {
    let secrets = args
        .secret
        .iter()
        .map(|s| {
            Secret::parse(s).map_err(|e| OpsError::Invalid {
                field: "secret",
                reason: e.to_string(),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let options = SinkOptions {
        listen: args.listen,
        secrets,
        fail_rate: args.fail_rate,
        status: args.status,
        latency: args.latency,
        record: args.record,
        keep: false,
        retry_after: args.retry_after,
    };
    sink::run(options, shutdown_signal()).await?;
    Ok(())
}

/// `bench pipeline`: a fresh SQLite file per run unless `--db` names a database.
pub async fn bench_pipeline(
    args: PipelineArgs,
    db: Option<String>,
    config: &Config,
    out: &Output,
) -> anyhow::Result<()> {
    let options = hookline::bench::PipelineOptions {
        events: args.events,
        endpoints: args.endpoints,
        db,
        runs: args.runs,
        mode: match args.mode {
            BenchMode::Backlog => hookline::bench::PublishMode::Backlog,
            BenchMode::Concurrent => hookline::bench::PublishMode::Concurrent,
        },
        dispatchers: args.dispatchers,
        dispatcher_processes: args.dispatcher_processes,
        sink_latency: args.sink_latency,
        dispatch: config.dispatch.clone(),
    };
    let report = hookline::bench::pipeline(&options).await?;
    out.result(
        serde_json::to_value(&report)?,
        hookline::bench::render_pipeline(&report).trim_end(),
    );
    Ok(())
}

/// `bench isolation`: fresh SQLite files unless `--db` names a database.
pub async fn bench_isolation(
    args: super::IsolationArgs,
    db: Option<String>,
    config: &Config,
    out: &Output,
) -> anyhow::Result<()> {
    let options = hookline::bench::IsolationOptions {
        events: args.events,
        rate: args.rate,
        backlog: args.backlog,
        bad_latency: args.bad_latency,
        bad_timeout: args.bad_timeout,
        db,
        dispatch: config.dispatch.clone(),
    };
    let report = hookline::bench::isolation(&options).await?;
    out.result(
        serde_json::to_value(&report)?,
        hookline::bench::render_isolation(&report).trim_end(),
    );
    Ok(())
}

/// `bench protection`: fresh SQLite files unless `--db` names a database.
pub async fn bench_protection(
    args: super::ProtectionBenchArgs,
    db: Option<String>,
    config: &Config,
    out: &Output,
) -> anyhow::Result<()> {
    let mut dispatch = config.dispatch.clone();
    dispatch.retry_schedule = args
        .retry_schedule
        .split(',')
        .map(|step| hookline::config::parse_duration(step.trim()))
        .collect::<Result<_, _>>()
        .map_err(|reason| super::exit::Refused(format!("--retry-schedule: {reason}")))?;
    let protection = hookline::config::ProtectionConfig {
        cooldown: args.cooldown,
        max_cooldown: args.max_cooldown,
        ..config.protection.clone()
    };
    let options = hookline::bench::ProtectionOptions {
        rate: args.rate,
        down: args.down,
        after: args.after,
        protection,
        limit: args.limit,
        limit_events: args.limit_events,
        dispatchers: args.dispatchers,
        breaker: args.only.as_deref() != Some("rate-limit"),
        rate_limit: args.only.as_deref() != Some("breaker"),
        db,
        dispatch,
    };
    let report = hookline::bench::protection(&options).await?;
    out.result(
        serde_json::to_value(&report)?,
        hookline::bench::render_protection(&report).trim_end(),
    );
    Ok(())
}

/// `bench api`: a fresh SQLite file per run unless `--db` names a database.
pub async fn bench_api(
    args: ApiBenchArgs,
    db: Option<String>,
    config: &Config,
    out: &Output,
) -> anyhow::Result<()> {
    let options = hookline::bench::api::ApiBenchOptions {
        publishers: args.publishers,
        events: args.events,
        endpoints: args.endpoints,
        runs: args.runs,
        db,
        rate: args.rate,
        dispatch: config.dispatch.clone(),
    };
    let report = hookline::bench::api::run(&options).await?;
    out.result(
        serde_json::to_value(&report)?,
        hookline::bench::api::render(&report).trim_end(),
    );
    Ok(())
}

/// `bench soak`: a fresh SQLite file per run unless `--db` names a database.
pub async fn bench_soak(
    args: SoakBenchArgs,
    db: Option<String>,
    config: &Config,
    out: &Output,
) -> anyhow::Result<()> {
    let options = hookline::bench::soak::SoakOptions {
        duration: args.duration,
        rate: args.rate,
        endpoints: args.endpoints,
        every: args.every,
        compare: args.compare,
        db,
        dispatch: config.dispatch.clone(),
    };
    let report = hookline::bench::soak::run(&options).await?;
    out.result(
        serde_json::to_value(&report)?,
        hookline::bench::soak::render(&report).trim_end(),
    );
    Ok(())
}

/// `bench console`: a fresh SQLite file unless `--db` names an empty database.
pub async fn bench_console(
    args: ConsoleBenchArgs,
    db: Option<String>,
    out: &Output,
) -> anyhow::Result<()> {
    let options = hookline::bench::ConsoleBenchOptions {
        deliveries: args.deliveries,
        endpoints: args.endpoints,
        db,
        runs: args.runs,
    };
    let report = hookline::bench::console(&options).await?;
    out.result(
        serde_json::to_value(&report)?,
        hookline::bench::render_console(&report).trim_end(),
    );
    Ok(())
}

/// Opens the console on an existing database (it never creates one).
pub async fn console(args: ConsoleArgs, config: &Config) -> anyhow::Result<()> {
    let store = Store::open_with(
        &config.database.url,
        OpenMode::Existing,
        StoreOptions::from_config(config),
    )
    .await?;
    run_console(store, config, console_options(&args, config)).await
}

/// The console's options from its flags and the settings.
pub fn console_options(args: &ConsoleArgs, config: &Config) -> hookline::console::ConsoleOptions {
    hookline::console::ConsoleOptions {
        read_only: args.read_only,
        refresh: args.refresh.max(std::time::Duration::from_millis(100)),
        color: std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        alive_within: config.dispatch.alive_within(),
        notice: None,
    }
}

/// Runs the console on `store` as the operator at this terminal. Logs are
/// held back while it owns the screen, so no line lands in the middle of it.
pub async fn run_console(
    store: Store,
    config: &Config,
    options: hookline::console::ConsoleOptions,
) -> anyhow::Result<()> {
    let ops = hookline::ops::Ops::new(
        store,
        config,
        hookline::model::Actor::from_environment(hookline::model::Source::Console),
    );
    let _quiet = super::logs::Redirect::discard();
    hookline::console::run(ops, options).await?;
    Ok(())
}
