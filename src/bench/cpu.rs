//! CPU time spent by the processes doing a benchmark's work: this one, the
//! dispatcher processes it started, and the Postgres server on this host,
//! from `/proc`. CPU-seconds per 1,000 deliveries is the figure a sizing
//! table needs, whatever the host's speed.

use crate::metrics::cpu_of;

/// CPU seconds used so far, to subtract one reading from a later one.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct CpuReading {
    /// This process and the dispatcher processes it started.
    pub hookline: f64,
    /// The Postgres server of the database and its processes (backends,
    /// writers; with the exited backends it has reaped); `None` unless it
    /// runs on this host.
    pub postgres: Option<f64>,
}

impl CpuReading {
    /// Now, counting `children` (dispatcher processes) as hookline's, and
    /// the processes of the Postgres server `postgres` (its postmaster's pid).
    pub(crate) fn now(children: &[u32], postgres: Option<u32>) -> CpuReading {
        let own = cpu_of(std::process::id()).map_or(0.0, |(_, cpu)| cpu);
        let children: f64 = children
            .iter()
            .filter_map(|pid| cpu_of(*pid))
            .map(|(_, cpu)| cpu)
            .sum();
        CpuReading {
            hookline: own + children,
            postgres: postgres.and_then(server_seconds),
        }
    }

    /// CPU milliseconds per 1,000 deliveries between `self` and `later`.
    pub(crate) fn per_thousand(&self, later: &CpuReading, deliveries: u64) -> CpuPerThousand {
        let per = |seconds: f64| seconds * 1000.0 * 1000.0 / deliveries.max(1) as f64;
        CpuPerThousand {
            hookline_ms: per(later.hookline - self.hookline),
            postgres_ms: self
                .postgres
                .zip(later.postgres)
                .map(|(before, after)| per(after - before)),
        }
    }
}

/// CPU milliseconds spent per 1,000 deliveries.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct CpuPerThousand {
    pub hookline_ms: f64,
    /// `None` unless the database is a Postgres server on this host.
    pub postgres_ms: Option<f64>,
}

/// The Postgres server a backend of `backend` pid belongs to, if both run
/// on this host.
pub(crate) fn server_of(backend: Option<u32>) -> Option<u32> {
    let (name, _) = cpu_of(backend?)?;
    (name == "postgres").then(|| parent_of(backend?)).flatten()
}

/// CPU seconds of the server process `server` and its children, alive or reaped.
fn server_seconds(server: u32) -> Option<f64> {
    let (_, mut total) = cpu_of(server)?;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if parent_of(pid) == Some(server)
            && let Some((_, cpu)) = cpu_of(pid)
        {
            total += cpu;
        }
    }
    Some(total)
}

/// The parent process id of `pid` (field 4 of `/proc/PID/stat`).
fn parent_of(pid: u32) -> Option<u32> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    text[text.rfind(')')? + 1..]
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}
