//! The exit codes every command shares (docs/cli.md lists them), and
//! which one an error ends a command with.

use std::process::ExitCode;

use hookline::ops::OpsError;
use hookline::store::StoreError;

/// What a command's exit status says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: it did what was asked.
    Ok = 0,
    /// 1: hookline or what it needs failed (database unreachable or not
    /// migrated, network, disk); the same command may work later.
    Failed = 1,
    /// 2: the command refused its input: a bad flag or setting, an id or
    /// name that matches nothing, a name taken, an action not allowed in
    /// the current state. Nothing was changed; repeating it unchanged
    /// cannot help.
    Refused = 2,
    /// 3: the command ran and what it checked is not well: a probe step
    /// failed.
    CheckFailed = 3,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(exit as u8)
    }
}

/// A command's own refusal of its input (a flag's value), not one from
/// [`OpsError`]: exits [`Exit::Refused`].
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// What a check found wrong: exits [`Exit::CheckFailed`].
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CheckFailed(pub String);

/// The exit status for `err`, by the first error in its chain that says.
pub fn exit_of(err: &anyhow::Error) -> Exit {
    for cause in err.chain() {
        if let Some(ops) = cause.downcast_ref::<OpsError>() {
            if ops.is_refusal() {
                return Exit::Refused;
            }
            if let OpsError::Store(store) = ops {
                return exit_of_store(store);
            }
        }
        if let Some(store) = cause.downcast_ref::<StoreError>() {
            return exit_of_store(store);
        }
        if cause.is::<Refused>() || cause.is::<hookline::config::ConfigError>() {
            return Exit::Refused;
        }
        if cause.is::<CheckFailed>() {
            return Exit::CheckFailed;
        }
    }
    Exit::Failed
}

/// Unknown and removed ids and conflicts are refusals; the rest failures.
fn exit_of_store(err: &StoreError) -> Exit {
    match err {
        StoreError::NotFound { .. } | StoreError::Gone { .. } | StoreError::Conflict(_) => {
            Exit::Refused
        }
        _ => Exit::Failed,
    }
}
