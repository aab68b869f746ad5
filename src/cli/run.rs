//! Long-running commands: `migrate`, `dispatch`, `serve`, `sink`, `console`, `bench`.

use hookline::config::Config;
use hookline::dispatch::Dispatcher;
use hookline::dispatch::sign::Secret;
use hookline::ops::OpsError;
use hookline::sink::{self, SinkOptions};
use hookline::store::{OpenMode, Store};
use serde_json::json;

use super::output::Output;
use super::{BenchMode, ConsoleArgs, ConsoleBenchArgs, PipelineArgs, SinkArgs};

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
    let store = Store::open(&config.database.url, OpenMode::Existing).await;
    let store = match store {
        Ok(store) => {
            out.note(&format!("database at {} is up to date", store.location()));
            store
        }
        Err(_) => {
            let store = Store::open(&config.database.url, OpenMode::CreateAndMigrate).await?;
            out.note(&format!("database at {} migrated", store.location()));
            store
        }
    };
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
    let store = Store::open(&config.database.url, OpenMode::CreateAndMigrate).await?;
    let dispatcher = Dispatcher::new(store.clone(), &config.dispatch)?;
    dispatcher.run(shutdown_signal()).await?;
    store.close().await;
    Ok(())
}

/// The dispatcher and the API in one process (the API arrives with its issue).
pub async fn serve(config: &Config) -> anyhow::Result<()> {
    dispatch(config).await
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
        dispatch: config.dispatch.clone(),
    };
    let report = hookline::bench::pipeline(&options).await?;
    out.result(
        serde_json::to_value(&report)?,
        hookline::bench::render_pipeline(&report).trim_end(),
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
    let store = Store::open(&config.database.url, OpenMode::Existing).await?;
    let ops = hookline::ops::Ops::new(
        store,
        config,
        hookline::model::Actor::from_environment(hookline::model::Source::Console),
    );
    let options = hookline::console::ConsoleOptions {
        read_only: args.read_only,
        refresh: args.refresh.max(std::time::Duration::from_millis(100)),
        color: std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        alive_within: (config.dispatch.heartbeat_interval * 3)
            .max(std::time::Duration::from_secs(5)),
    };
    hookline::console::run(ops, options).await?;
    Ok(())
}
