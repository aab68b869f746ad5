//! The `hookline` binary: parse the command line, load the settings, run the
//! command, and turn any error into a message and an exit code.

mod cli;

use std::process::ExitCode;

use clap::Parser;
use hookline::config::{Config, LogFormat};
use hookline::ops::OpsError;
use hookline::text::escape_controls_keep_newlines;

use cli::exit::{Exit, exit_of};

// The dispatcher and the API allocate and free many short-lived buffers
// (payloads, headers, JSON rows) across threads; glibc's allocator spent
// ~15 % of a flat-out `bench api` in malloc and free. The crate's
// `override` feature hands C's malloc to mimalloc too: SQLite copies every
// bound text parameter, and its allocations were 11 % of the writer thread.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let mut config = match Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("error: {}", escape_controls_keep_newlines(&err.to_string()));
            return Exit::Refused.into();
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
    // Full-screen commands may send logs to a file: no colour codes in it.
    let full_screen = match &cli.command {
        cli::Command::Console(_) => true,
        cli::Command::Demo(args) => !args.headless,
        _ => false,
    };
    cli::logs::init(&config, !full_screen);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: could not start the async runtime: {err}");
            return Exit::Failed.into();
        }
    };
    match runtime.block_on(cli::run(cli, config)) {
        Ok(()) => Exit::Ok.into(),
        Err(err) => {
            // An error may quote what it refused or what a receiver said:
            // its controls are shown escaped, like every other output.
            let message = format!("{err:#}");
            let message = escape_controls_keep_newlines(&message);
            match err.downcast_ref::<OpsError>() {
                Some(OpsError::NotFound { kind, .. }) => {
                    eprintln!("error: {message} (see `hookline {kind} list`)")
                }
                _ => eprintln!("error: {message}"),
            }
            exit_of(&err).into()
        }
    }
}
