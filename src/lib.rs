//! hookline: a webhook delivery platform.
//!
//! Producers publish events for a tenant (or broadcast to all); hookline fans
//! each event out to the subscribed endpoints of that tenant, POSTs it signed
//! per the Standard Webhooks spec, retries on a schedule and parks what never
//! succeeds as dead. Layers point one way: CLI/console/API -> `ops` -> `store`;
//! `dispatch` -> `store`. `model` and `topic` are plain data and pure functions.

/// The HTTP API that `hookline serve` runs: producers publish, integrators manage.
pub mod api;
/// API key material: generation and the hash that is stored.
pub mod api_key;
/// `hookline bench`: the benchmark harness behind every speed claim. Not
/// part of the library's API (the `bench` feature, on by default, builds it
/// for the binary).
#[cfg(feature = "bench")]
#[doc(hidden)]
pub mod bench;
/// A failed attempt's cause, normalised: what an endpoint's failures are grouped by.
pub mod cause;
/// Settings from TOML and `HOOKLINE_*` environment overrides, validated once.
pub mod config;
/// `hookline console`: the operations TUI for the person on call.
pub mod console;
/// `hookline demo`: the whole system on one machine, with a checked summary.
pub mod demo;
/// The delivery engine: claim due deliveries, attempt them, record outcomes.
pub mod dispatch;
/// Per-endpoint health: outcome classes, latency buckets, percentiles.
pub mod health;
/// Why due work waits (a paused or disabled endpoint), in the words screens show.
pub mod held;
/// The process's Prometheus counters and histograms, and their exposition.
pub mod metrics;
/// Tenants, endpoints, subscriptions, events, deliveries, attempts: plain data.
pub mod model;
/// Operator and producer actions, validated, audited; every interface calls these.
pub mod ops;
/// Endpoint protection's rules (the circuit breaker); its state is in the store.
pub mod protect;
/// Retention in the background: one pruner at a time across every process.
pub mod prune;
/// Which values are secrets (URL passwords, sensitive headers) and how they are masked.
pub mod redact;
/// Encryption at rest of endpoint secrets with `[secrets] key`.
pub mod seal;
/// Standard Webhooks signatures and the `whsec_…` secrets behind them.
pub mod sign;
/// `hookline sink`: a local webhook receiver that verifies signatures.
pub mod sink;
/// The delivery database, SQLite or Postgres: the only code that speaks SQL.
pub mod store;
/// Untrusted text made safe for a terminal: visible escapes and display widths.
pub mod text;
/// Topic names and subscription patterns, and the matching between them.
pub mod topic;
