//! `hookline demo`: starts the demo system and opens the console on it, or
//! runs it headless for a while and prints the summary.

use std::time::Duration;

use hookline::config::Config;
use hookline::demo::{self, DemoError, DemoOptions};

use super::logs::Redirect;
use super::output::Output;
use super::run::{console_options, run_console, shutdown_signal};
use super::{ConsoleArgs, DemoArgs};

pub async fn demo(
    args: DemoArgs,
    db: Option<String>,
    config: &Config,
    out: &Output,
) -> anyhow::Result<()> {
    let options = DemoOptions {
        db,
        rate: args.rate,
        keep: args.keep,
        config: config.clone(),
    };
    demo::validate(&options)?;
    // Refused before anything starts: the console could not open later.
    if !args.headless && !hookline::console::has_terminal() {
        anyhow::bail!(
            "the demo opens the console, which needs a terminal, and standard output is not one; \
             without a terminal run: hookline demo --headless --duration 30s"
        );
    }
    let running = demo::start(&options).await.map_err(|err| match err {
        // Refused input keeps its type, so the exit code says "invalid input".
        DemoError::Ops(err) => anyhow::Error::from(err),
        err => anyhow::Error::from(err),
    })?;
    // With the console up, logs go to a file beside the demo's database
    // (or nowhere, with --db) until the summary is printed.
    let log_redirect = match (args.headless, running.log_path()) {
        (true, _) => None,
        (false, Some(path)) => Some(Redirect::to_file(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)?,
        )),
        (false, None) => Some(Redirect::discard()),
    };
    let shown = if args.headless {
        out.note(&format!(
            "{} (database {}; stop with Ctrl-C)",
            running.notice().replace("; q quits", ""),
            running.store().location()
        ));
        match args.duration {
            Some(duration) => {
                tokio::select! {
                    () = tokio::time::sleep(duration) => {}
                    () = shutdown_signal() => {}
                }
            }
            None => shutdown_signal().await,
        }
        Ok(())
    } else {
        let console = ConsoleArgs {
            read_only: false,
            refresh: Duration::from_secs(1),
        };
        let mut options = console_options(&console, running.config());
        options.notice = Some(running.notice());
        let store = running.store().clone();
        // SIGTERM (or a SIGINT sent from elsewhere) ends the demo like `q` does.
        tokio::select! {
            result = run_console(store, running.config(), options) => result,
            () = shutdown_signal() => Ok(()),
        }
    };
    // The demo's parts stop and its files go even when the console failed.
    let stopped = running.stop().await;
    drop(log_redirect);
    if let (Err(_), Err(stop)) = (&shown, &stopped) {
        tracing::warn!(error = %stop, "could not stop the demo cleanly");
    }
    shown?;
    let summary = stopped?;
    out.result(serde_json::to_value(&summary)?, summary.render().trim_end());
    if !summary.disagreements.is_empty() {
        anyhow::bail!(
            "the demo's counts disagree: {}",
            summary.disagreements.join("; ")
        );
    }
    Ok(())
}
