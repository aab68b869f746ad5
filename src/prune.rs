//! Retention in the background: every `retention.interval`, whichever
//! process holds the pruner's lease runs one pass; the others find it taken
//! and wait for the next interval. `dispatch` and `serve` each start one.

use std::time::{Duration, Instant};

use thiserror::Error;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::RetentionConfig;
use crate::store::{PruneReport, Store, StoreError};

/// Why a pass by hand did not run.
#[derive(Debug, Error)]
pub enum PruneError {
    #[error(
        "another hookline process is pruning right now; its pass ends by itself (try again in a minute)"
    )]
    Busy,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The name a pruner's lease carries: host, process and start, so two
/// processes on one host never share it.
pub fn owner_id() -> String {
    format!(
        "{}:{}:{}",
        crate::dispatch::hostname(),
        std::process::id(),
        crate::model::now_millis()
    )
}

/// One pass by hand (`hookline prune`): counts with `dry_run`, else takes
/// the lease (refusing while another process prunes), prunes and gives
/// the lease back.
pub async fn prune_once(
    store: &Store,
    policy: &RetentionConfig,
    dry_run: bool,
) -> Result<PruneReport, PruneError> {
    let owner = owner_id();
    if dry_run {
        return Ok(store.prune(policy, &owner, true).await?);
    }
    if !store.take_pruner_lease(&owner).await? {
        return Err(PruneError::Busy);
    }
    let report = store.prune(policy, &owner, false).await;
    store.release_pruner_lease(&owner).await?;
    Ok(report?)
}

/// The background pruner of one process.
pub struct Pruner {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Pruner {
    /// Starts pruning `store` by `policy` every `policy.interval`.
    pub fn start(store: Store, policy: RetentionConfig) -> Pruner {
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run(store, policy, owner_id(), stopped));
        Pruner { stop, task }
    }

    /// Stops after the batch in progress and gives the lease back.
    pub async fn stop(self) {
        self.stop.send_replace(true);
        if let Err(err) = self.task.await {
            tracing::warn!(error = %err, "the pruner ended abnormally");
        }
    }
}

async fn run(
    store: Store,
    policy: RetentionConfig,
    owner: String,
    mut stopped: watch::Receiver<bool>,
) {
    // The first pass waits an interval too: a process starting is busy enough.
    loop {
        tokio::select! {
            _ = stopped.wait_for(|stop| *stop) => break,
            () = tokio::time::sleep(policy.interval) => {}
        }
        let pass = async {
            if !store.take_pruner_lease(&owner).await? {
                return Ok(None);
            }
            let started = Instant::now();
            store
                .prune(&policy, &owner, false)
                .await
                .map(|r| Some((r, started.elapsed())))
        };
        let outcome = tokio::select! {
            _ = stopped.wait_for(|stop| *stop) => break,
            outcome = pass => outcome,
        };
        log_pass(outcome);
    }
    if let Err(err) = store.release_pruner_lease(&owner).await {
        tracing::warn!(error = %err, "could not give the pruner's lease back; it expires by itself");
    }
}

fn log_pass(outcome: Result<Option<(PruneReport, Duration)>, StoreError>) {
    match outcome {
        Ok(Some((report, took))) => {
            crate::metrics::metrics().pruned(&report.rows(), took);
            if report.total() > 0 {
                tracing::info!(
                    took_ms = took.as_millis() as u64,
                    events = report.events,
                    deliveries = report.deliveries,
                    attempts = report.attempts,
                    held_ended_dead = report.held_ended_dead,
                    health_rows = report.health_rows,
                    dispatchers = report.dispatchers,
                    audit_rows = report.audit_rows,
                    idempotency_keys = report.idempotency_keys,
                    "retention pass"
                );
            }
        }
        Ok(None) => {}
        Err(err) => {
            tracing::warn!(error = %err, "retention pass failed; trying again next interval")
        }
    }
}
