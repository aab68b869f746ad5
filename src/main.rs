//! The `hookline` binary: parse the command line, load the settings, run the
//! command, and turn any error into a message and an exit code.

mod cli;

use std::process::ExitCode;

use clap::Parser;
use hookline::config::{Config, LogFormat};
use hookline::ops::OpsError;

/// Exit code for input the command refused (bad flag values, bad settings).
const EXIT_INVALID: u8 = 2;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let mut config = match Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(EXIT_INVALID);
        }
    };
    if let Some(url) = &cli.db {
        config.database.url = url.clone();
    }
    if let Some(format) = cli.log_format {
        config.log.format = match format {
            cli::LogFormatArg::Text => LogFormat::Text,
            cli::LogFormatArg::Json => LogFormat::Json,
        };
    }
    init_logging(&config);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: could not start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(cli, config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            if matches!(
                err.downcast_ref::<OpsError>(),
                Some(OpsError::Invalid { .. })
            ) {
                ExitCode::from(EXIT_INVALID)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// Logs go to stderr; `HOOKLINE_LOG` (an env-filter directive) overrides `log.level`.
fn init_logging(config: &Config) {
    let directive =
        std::env::var(hookline::config::ENV_LOG).unwrap_or_else(|_| config.log.level.clone());
    let filter = tracing_subscriber::EnvFilter::try_new(&directive)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour only for a person at a terminal who has not asked for none.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    match config.log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}
