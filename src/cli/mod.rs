//! The `hookline` command line: argument definitions and the dispatch from
//! a parsed command to its implementation. Commands that change things go
//! through `hookline::ops`; output goes through [`output`].

mod admin;
mod apikey;
mod demo;
mod events;
pub mod exit;
pub mod logs;
mod output;
mod run;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use hookline::config::Config;
use hookline::model::DeliveryState;

/// hookline: webhook delivery with an operations console.
#[derive(Debug, Parser)]
#[command(name = "hookline", version, about, long_about = None, max_term_width = 100)]
pub struct Cli {
    /// Settings file (default: built-in defaults; also HOOKLINE_CONFIG).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Database URL: sqlite://PATH or postgres://… (overrides database.url and HOOKLINE_DATABASE_URL).
    #[arg(long, global = true, value_name = "URL")]
    pub db: Option<String>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// Show endpoints' secrets (signing secrets, URL passwords, sensitive
    /// header values) instead of masking them; recorded in the audit log.
    #[arg(long, global = true)]
    pub show_secret: bool,
    /// Log format on stderr (overrides log.format).
    #[arg(long, global = true, value_enum, value_name = "FORMAT")]
    pub log_format: Option<LogFormatArg>,
    #[command(subcommand)]
    pub command: Command,
}

/// `--log-format` values.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormatArg {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the database if needed and bring its schema up to date.
    Migrate,
    /// Run a dispatcher: deliver due deliveries until SIGINT/SIGTERM.
    Dispatch,
    /// Run the HTTP API and a dispatcher in one process (api.listen, default 127.0.0.1:8080).
    Serve,
    /// Open the operations console (a terminal UI) on the database.
    Console(ConsoleArgs),
    /// Run the whole system on this machine with demo tenants and receivers,
    /// and open the console on it.
    Demo(DemoArgs),
    /// Run a local webhook receiver that verifies signatures.
    Sink(SinkArgs),
    /// Manage tenants (the platform's customers).
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Manage endpoints (where a tenant's events are POSTed).
    #[command(subcommand)]
    Endpoint(EndpointCommand),
    /// Manage subscriptions (which topics an endpoint receives).
    #[command(subcommand)]
    Subscription(SubscriptionCommand),
    /// Publish an event for a tenant, or broadcast it to every tenant.
    Publish(PublishArgs),
    /// Erase events' payloads.
    #[command(subcommand)]
    Event(EventCommand),
    /// Inspect deliveries.
    #[command(subcommand)]
    Delivery(DeliveryCommand),
    /// Retry deliveries by id, or in bulk for an endpoint.
    Retry(RetryArgs),
    /// Show which dispatchers are alive.
    Dispatchers,
    /// Show the audit log of operator actions, newest first.
    Audit(AuditArgs),
    /// Remove what has outlived [retention] now, in one pass (dispatch and
    /// serve do it by themselves every retention.interval).
    Prune(PruneArgs),
    /// Manage the API keys the HTTP API accepts.
    #[command(subcommand)]
    Apikey(ApikeyCommand),
    /// Measure hookline on this machine (prints a table, or JSON with --json).
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Count what a pass would remove, and change nothing.
    #[arg(long, conflicts_with = "vacuum")]
    pub dry_run: bool,
    /// Then rewrite the database compactly. SQLite: VACUUM, which also turns
    /// on incremental vacuum for a file created without it; it needs free
    /// disk about the database's size and holds the writer throughout, so
    /// run it with hookline stopped. Postgres: VACUUM (ANALYZE) of
    /// hookline's tables.
    #[arg(long)]
    pub vacuum: bool,
}

#[derive(Debug, Subcommand)]
pub enum EventCommand {
    /// Remove events' payloads now, with the response bodies of their
    /// attempts, and cancel their unfinished deliveries (erasure requests).
    /// Each event keeps its id, topic and size; audited.
    Expunge {
        /// Event ids (msg_…).
        #[arg(required = true)]
        ids: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Deliveries/s end to end against local sinks, versus the bare POST ceiling.
    Pipeline(PipelineArgs),
    /// Healthy endpoints' latency alone, then beside one that times out with a large backlog.
    Isolation(IsolationArgs),
    /// Publishing over HTTP to the API (serve in this process), delivered to local sinks.
    Api(ApiBenchArgs),
    /// A steady rate for minutes with a tiny retention: live size, rows pruned, latency.
    Soak(SoakBenchArgs),
    /// Refresh and frame times of every console screen on a seeded database.
    Console(ConsoleBenchArgs),
    /// A receiver down for minutes with and without the circuit breaker,
    /// and one rate limit fed by several dispatch processes.
    Protection(ProtectionBenchArgs),
}

#[derive(Debug, Args)]
pub struct ProtectionBenchArgs {
    /// Events a second, each to the nine healthy endpoints and the one that goes down.
    #[arg(long, default_value_t = 20.0)]
    pub rate: f64,
    /// How long the down endpoint's receiver refuses connections.
    #[arg(long, default_value = "2m", value_parser = parse_duration_arg)]
    pub down: std::time::Duration,
    /// How long the stream goes on after it comes back.
    #[arg(long, default_value = "30s", value_parser = parse_duration_arg)]
    pub after: std::time::Duration,
    /// The breaker's first cool-down (doubling on each re-open).
    #[arg(long, default_value = "5s", value_parser = parse_duration_arg)]
    pub cooldown: std::time::Duration,
    /// The longest cool-down.
    #[arg(long, default_value = "20s", value_parser = parse_duration_arg)]
    pub max_cooldown: std::time::Duration,
    /// The retry ladder, compressed to seconds.
    #[arg(long, default_value = "0s,1s,2s,4s,8s,16s")]
    pub retry_schedule: String,
    /// The rate limit (requests a second) of the endpoint fed by several dispatchers.
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    /// Events queued for it.
    #[arg(long, default_value_t = 3_000)]
    pub limit_events: usize,
    /// `hookline dispatch` processes feeding it.
    #[arg(long, default_value_t = 3)]
    pub dispatchers: usize,
    /// Only the breaker part, or only the rate limit part.
    #[arg(long, value_parser = ["breaker", "rate-limit"])]
    pub only: Option<String>,
}

#[derive(Debug, Args)]
pub struct IsolationArgs {
    /// Events in the steady stream to the nine healthy endpoints.
    #[arg(long, default_value_t = 3_000)]
    pub events: usize,
    /// Events a second in that stream.
    #[arg(long, default_value_t = 200.0)]
    pub rate: f64,
    /// Deliveries waiting for the bad endpoint before the stream starts.
    #[arg(long, default_value_t = 50_000)]
    pub backlog: usize,
    /// How long the bad endpoint's receiver takes to answer.
    #[arg(long, default_value = "10s", value_parser = parse_duration_arg)]
    pub bad_latency: std::time::Duration,
    /// The bad endpoint's attempt timeout.
    #[arg(long, default_value = "5s", value_parser = parse_duration_arg)]
    pub bad_timeout: std::time::Duration,
}

#[derive(Debug, Args)]
pub struct ApiBenchArgs {
    /// Concurrent publishers, each with one request in flight.
    #[arg(long, default_value_t = 32)]
    pub publishers: usize,
    /// Events to publish; each fans out to every endpoint.
    #[arg(long, default_value_t = 20_000)]
    pub events: usize,
    /// Sink endpoints, each its own local receiver.
    #[arg(long, default_value_t = 10)]
    pub endpoints: usize,
    /// Runs; the report gives each and their median.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Keep to this many events/s in all (default: as fast as the API answers).
    #[arg(long)]
    pub rate: Option<f64>,
}

#[derive(Debug, Args)]
pub struct SoakBenchArgs {
    /// How long each run publishes.
    #[arg(long, default_value = "10m", value_parser = parse_duration_arg)]
    pub duration: std::time::Duration,
    /// Events/s, each to every endpoint (about 80 % of the steady rate
    /// `bench api` keeps up with on the same database is the intended use).
    #[arg(long)]
    pub rate: f64,
    /// Sink endpoints, each its own local receiver.
    #[arg(long, default_value_t = 10)]
    pub endpoints: usize,
    /// How often a line of figures is taken.
    #[arg(long, default_value = "1m", value_parser = parse_duration_arg)]
    pub every: std::time::Duration,
    /// Run without and with pruning, interleaved, three pairs.
    #[arg(long)]
    pub compare: bool,
}

#[derive(Debug, Args)]
pub struct ConsoleBenchArgs {
    /// Deliveries to seed (over three days of realistic traffic).
    #[arg(long, default_value_t = 1_000_000)]
    pub deliveries: usize,
    /// Endpoints to seed, spread over up to eight tenants.
    #[arg(long, default_value_t = 1_000)]
    pub endpoints: usize,
    /// Timed samples per screen; the report gives their median and p95.
    #[arg(long, default_value_t = 20)]
    pub runs: usize,
}

#[derive(Debug, Args)]
pub struct PipelineArgs {
    /// Events to publish; each fans out to every endpoint.
    #[arg(long, default_value_t = 20_000)]
    pub events: usize,
    /// Sink endpoints, each its own local receiver.
    #[arg(long, default_value_t = 10)]
    pub endpoints: usize,
    /// Runs; the report gives each and their median.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// backlog: publish everything before the clock starts; concurrent: publish while delivering.
    #[arg(long, value_enum, default_value = "backlog")]
    pub mode: BenchMode,
    /// Dispatchers in this process sharing the database.
    #[arg(long, default_value_t = 1)]
    pub dispatchers: usize,
    /// Run this many `hookline dispatch` processes instead (each with
    /// dispatch.concurrency slots), as dispatchers on separate hosts would.
    #[arg(long, default_value_t = 0)]
    pub dispatcher_processes: usize,
    /// How long each sink takes to answer, e.g. 50ms.
    #[arg(long, default_value = "0s", value_parser = parse_duration_arg)]
    pub sink_latency: std::time::Duration,
}

/// `--mode` values.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum BenchMode {
    Backlog,
    Concurrent,
}

#[derive(Debug, Args)]
pub struct ConsoleArgs {
    /// Hide and refuse every key that changes something.
    #[arg(long)]
    pub read_only: bool,
    /// How often the screen's data is re-read when nothing signals a change.
    #[arg(long, default_value = "1s", value_parser = parse_duration_arg)]
    pub refresh: std::time::Duration,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Events the demo producer publishes per second.
    #[arg(long, default_value_t = 5.0)]
    pub rate: f64,
    /// Run without the console and print a summary at the end.
    #[arg(long)]
    pub headless: bool,
    /// With --headless: stop after this long (e.g. 30s); default: at Ctrl-C.
    #[arg(long, value_parser = parse_duration_arg, requires = "headless")]
    pub duration: Option<std::time::Duration>,
    /// Keep the temporary database when the demo ends (it is removed otherwise).
    #[arg(long)]
    pub keep: bool,
}

#[derive(Debug, Args)]
pub struct SinkArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9000")]
    pub listen: std::net::SocketAddr,
    /// Verify signatures with this secret (repeatable); a bad one gets 401.
    #[arg(long, value_name = "whsec_…")]
    pub secret: Vec<String>,
    /// Fraction of requests answered with --status (0 to 1).
    #[arg(long, default_value_t = 0.0)]
    pub fail_rate: f64,
    /// Status of deliberate failures.
    #[arg(long, default_value_t = 500)]
    pub status: u16,
    /// Delay before answering, e.g. 50ms.
    #[arg(long, default_value = "0s", value_parser = parse_duration_arg)]
    pub latency: std::time::Duration,
    /// Retry-After seconds sent with deliberate failures.
    #[arg(long)]
    pub retry_after: Option<u64>,
    /// Append one JSON line per request to FILE.
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Add a tenant.
    Add {
        /// Unique name, e.g. acme.
        name: String,
    },
    /// List tenants.
    List,
    /// Delete a tenant with its endpoints and subscriptions (unfinished deliveries are cancelled).
    Delete {
        /// Tenant id or name.
        tenant: String,
    },
    /// Remove the payloads of a tenant's events created before a time, as
    /// `hookline event expunge` does (broadcast events are left and counted).
    Expunge {
        /// Tenant id or name.
        tenant: String,
        /// An RFC 3339 time, a date (2026-01-31: its start in UTC), or an age (30d).
        #[arg(long)]
        before: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum EndpointCommand {
    /// Register an endpoint for a tenant.
    Add(EndpointAddArgs),
    /// List endpoints.
    List {
        /// Only this tenant's (id or name).
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Show one endpoint with its subscriptions.
    Show {
        /// Endpoint id, TENANT/NAME or unique name.
        endpoint: String,
    },
    /// Change an endpoint's settings.
    Update(EndpointUpdateArgs),
    /// Hold an endpoint's deliveries (nothing is attempted or discarded) until resumed.
    Pause {
        endpoint: String,
        /// Why, for the audit log and the console.
        #[arg(long)]
        reason: Option<String>,
        /// End the pause by itself: after a duration (30m, 2h), at the next
        /// local HH:MM (04:00, in this machine's time zone), or at an RFC 3339
        /// time (2026-12-07T04:00:00+01:00). A dispatcher resumes it then.
        /// Pausing a paused endpoint replaces the reason and end given.
        #[arg(long)]
        until: Option<String>,
    },
    /// Make a paused or disabled endpoint active again; held deliveries flow oldest first.
    Resume { endpoint: String },
    /// Show an endpoint's circuit breaker and its latest transitions, or
    /// force it: `open` holds its deliveries, `close` lets them flow
    /// whatever the outcomes, `auto` hands it back to its outcomes (a
    /// breaker left open then probes at once). Forced states hold until
    /// set back to `auto`.
    Breaker {
        endpoint: String,
        #[arg(value_parser = ["open", "close", "closed", "auto"])]
        mode: Option<String>,
        /// Transitions shown, newest first.
        #[arg(long, default_value_t = 10)]
        limit: i64,
    },
    /// Check the endpoint from this host, step by step with timings: DNS
    /// (and what the outbound guard says of each address), connect, TLS
    /// (certificate subject, issuer, expiry) and the answer to a signed
    /// POST of a `hookline.ping` test event. Audited; not a delivery. Exits
    /// 1 when a step fails.
    Probe { endpoint: String },
    /// Send the endpoint's retrying deliveries now instead of on their
    /// schedule, each keeping its attempt count.
    RetryNow { endpoint: String },
    /// Delete an endpoint and its subscriptions; unfinished deliveries are cancelled.
    Delete { endpoint: String },
    /// Replace the signing secret; the old one keeps signing for dispatch.secret_rotation_grace.
    RotateSecret {
        endpoint: String,
        /// The new secret (default: generated).
        #[arg(long, value_name = "whsec_…")]
        secret: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct EndpointAddArgs {
    /// Tenant id or name.
    #[arg(long)]
    pub tenant: String,
    /// Name, unique within the tenant.
    #[arg(long)]
    pub name: String,
    /// http(s) URL that receives the POSTs.
    #[arg(long)]
    pub url: String,
    /// Signing secret (default: 32 random bytes).
    #[arg(long, value_name = "whsec_…")]
    pub secret: Option<String>,
    /// Attempt timeout (default: dispatch.timeout).
    #[arg(long, value_parser = parse_duration_arg)]
    pub timeout: Option<std::time::Duration>,
    /// Concurrent attempts (default: dispatch.max_in_flight_per_endpoint).
    #[arg(long)]
    pub max_in_flight: Option<u32>,
    /// Extra header sent with every attempt (repeatable).
    #[arg(long, value_name = "NAME:VALUE")]
    pub header: Vec<String>,
    /// Free text.
    #[arg(long)]
    pub description: Option<String>,
    /// Requests a second across every dispatcher (default: unlimited).
    #[arg(long, value_name = "PER_SECOND")]
    pub rate_limit: Option<u32>,
    /// Requests at once after a quiet spell (default: a tenth of the rate).
    #[arg(long, requires = "rate_limit")]
    pub burst: Option<u32>,
}

#[derive(Debug, Args)]
pub struct EndpointUpdateArgs {
    /// Endpoint id, TENANT/NAME or unique name.
    pub endpoint: String,
    #[arg(long)]
    pub name: Option<String>,
    #[arg(long)]
    pub url: Option<String>,
    #[arg(long, value_parser = parse_duration_arg, conflicts_with = "default_timeout")]
    pub timeout: Option<std::time::Duration>,
    /// Go back to dispatch.timeout.
    #[arg(long)]
    pub default_timeout: bool,
    #[arg(long, conflicts_with = "default_max_in_flight")]
    pub max_in_flight: Option<u32>,
    /// Go back to dispatch.max_in_flight_per_endpoint.
    #[arg(long)]
    pub default_max_in_flight: bool,
    /// Replace the custom headers with these (repeatable).
    #[arg(long, value_name = "NAME:VALUE", conflicts_with = "clear_headers")]
    pub header: Vec<String>,
    /// Remove every custom header.
    #[arg(long)]
    pub clear_headers: bool,
    #[arg(long)]
    pub description: Option<String>,
    /// Requests a second across every dispatcher.
    #[arg(long, value_name = "PER_SECOND", conflicts_with = "no_rate_limit")]
    pub rate_limit: Option<u32>,
    /// Remove the rate limit.
    #[arg(long)]
    pub no_rate_limit: bool,
    /// Requests at once after a quiet spell (alone: keeps the rate).
    #[arg(long, conflicts_with = "no_rate_limit")]
    pub burst: Option<u32>,
}

#[derive(Debug, Subcommand)]
pub enum SubscriptionCommand {
    /// Subscribe an endpoint to a topic pattern (resident.update, resident.*, resident.**, *).
    Add {
        /// Endpoint id, TENANT/NAME or unique name.
        #[arg(long)]
        endpoint: String,
        /// Topic pattern.
        #[arg(long)]
        topic: String,
        #[arg(long)]
        description: Option<String>,
    },
    /// List subscriptions.
    List {
        #[arg(long)]
        endpoint: Option<String>,
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Change a subscription's pattern or description.
    Update {
        /// Subscription id (sub_…).
        id: String,
        #[arg(long)]
        topic: Option<String>,
        #[arg(long)]
        description: Option<String>,
    },
    /// Remove a subscription.
    Delete {
        /// Subscription id (sub_…).
        id: String,
    },
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("audience").args(["tenant", "broadcast"]).required(true)))]
pub struct PublishArgs {
    /// The tenant the event is for (id or name).
    #[arg(long)]
    pub tenant: Option<String>,
    /// Send to every tenant's subscribed endpoints.
    #[arg(long)]
    pub broadcast: bool,
    /// Topic, e.g. resident.update.
    #[arg(long)]
    pub topic: String,
    /// JSON text, @FILE, or - for stdin; delivered byte for byte.
    #[arg(long)]
    pub payload: String,
    /// A repeated key (per tenant) returns the original event and creates nothing.
    #[arg(long)]
    pub idempotency_key: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum DeliveryCommand {
    /// List deliveries, newest first.
    List(DeliveryListArgs),
    /// Show a delivery (dlv_…) with its payload and attempts, or an event (msg_…) and its deliveries.
    Show { id: String },
}

#[derive(Debug, Args)]
pub struct DeliveryListArgs {
    /// Only these states (repeatable): pending, in_flight, retrying, delivered,
    /// dead, cancelled; scheduled and succeeded are aliases of retrying and delivered.
    #[arg(long, value_parser = parse_state_arg)]
    pub state: Vec<DeliveryState>,
    #[arg(long)]
    pub tenant: Option<String>,
    #[arg(long)]
    pub endpoint: Option<String>,
    /// Exact topic.
    #[arg(long)]
    pub topic: Option<String>,
    /// Only this event's deliveries (msg_…).
    #[arg(long)]
    pub event: Option<String>,
    /// Created within this long (2h) or since an RFC 3339 time.
    #[arg(long)]
    pub since: Option<String>,
    /// Rows per page (1 to 10000).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub limit: u64,
    /// Continue after this cursor (printed with the previous page).
    #[arg(long)]
    pub cursor: Option<String>,
}

#[derive(Debug, Args)]
pub struct RetryArgs {
    /// Delivery ids (dlv_…).
    #[arg(conflicts_with = "endpoint")]
    pub ids: Vec<String>,
    /// Bulk: this endpoint's deliveries.
    #[arg(long, required_unless_present = "ids")]
    pub endpoint: Option<String>,
    /// Bulk: states to revive: dead, retrying, delivered (repeatable; default dead).
    #[arg(long, value_parser = parse_state_arg, requires = "endpoint")]
    pub state: Vec<DeliveryState>,
    /// Bulk: created within this long (2h) or since an RFC 3339 time.
    #[arg(long, requires = "endpoint")]
    pub since: Option<String>,
    /// Bulk: created before this RFC 3339 time (or this long ago).
    #[arg(long, requires = "endpoint")]
    pub until: Option<String>,
    /// Bulk: only count what would be retried.
    #[arg(long, requires = "endpoint")]
    pub dry_run: bool,
}

#[derive(Debug, Subcommand)]
pub enum ApikeyCommand {
    /// Create a key (admin, or limited to one tenant) and print it once.
    Create(ApikeyCreateArgs),
    /// List keys (never the keys themselves: only a prefix of each).
    List {
        /// Include revoked keys.
        #[arg(long)]
        all: bool,
    },
    /// Revoke a key: requests with it are refused from then on.
    Revoke {
        /// Key id (key_…) or name.
        key: String,
    },
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("access").required(true).args(["admin", "tenant"])))]
pub struct ApikeyCreateArgs {
    /// Unique name; recorded as the actor of every change made with the key.
    #[arg(long)]
    pub name: String,
    /// The key may do everything, for every tenant.
    #[arg(long)]
    pub admin: bool,
    /// The key sees and manages only this tenant (id or name).
    #[arg(long)]
    pub tenant: Option<String>,
    /// Refuse the key from then on: an RFC 3339 time, or a duration from
    /// now such as 90d or 12h (default: never).
    #[arg(long, value_name = "WHEN")]
    pub expires: Option<String>,
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Rows to show (1 to 10000).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub limit: u64,
}

fn parse_duration_arg(text: &str) -> Result<std::time::Duration, String> {
    hookline::config::parse_duration(text)
}

fn parse_state_arg(text: &str) -> Result<DeliveryState, String> {
    text.parse()
        .map_err(|e: hookline::model::UnknownVariant| e.to_string())
}

/// Runs the parsed command with the loaded settings.
pub async fn run(cli: Cli, config: Config) -> anyhow::Result<()> {
    let out = output::Output::new(cli.json, cli.show_secret);
    match cli.command {
        Command::Migrate => run::migrate(&config, &out).await,
        Command::Dispatch => run::dispatch(&config).await,
        Command::Serve => run::serve(&config).await,
        Command::Console(args) => run::console(args, &config).await,
        Command::Demo(args) => demo::demo(args, cli.db, &config, &out).await,
        Command::Sink(args) => run::sink(args).await,
        Command::Tenant(command) => admin::tenant(command, &config, &out).await,
        Command::Endpoint(command) => admin::endpoint(command, &config, &out).await,
        Command::Subscription(command) => admin::subscription(command, &config, &out).await,
        Command::Publish(args) => events::publish(args, &config, &out).await,
        Command::Event(command) => events::event(command, &config, &out).await,
        Command::Delivery(command) => events::delivery(command, &config, &out).await,
        Command::Retry(args) => events::retry(args, &config, &out).await,
        Command::Dispatchers => events::dispatchers(&config, &out).await,
        Command::Audit(args) => events::audit(args, &config, &out).await,
        Command::Prune(args) => events::prune(args, &config, &out).await,
        Command::Apikey(command) => apikey::apikey(command, &config, &out).await,
        Command::Bench(BenchCommand::Pipeline(args)) => {
            run::bench_pipeline(args, cli.db, &config, &out).await
        }
        Command::Bench(BenchCommand::Isolation(args)) => {
            run::bench_isolation(args, cli.db, &config, &out).await
        }
        Command::Bench(BenchCommand::Api(args)) => {
            run::bench_api(args, cli.db, &config, &out).await
        }
        Command::Bench(BenchCommand::Soak(args)) => {
            run::bench_soak(args, cli.db, &config, &out).await
        }
        Command::Bench(BenchCommand::Console(args)) => run::bench_console(args, cli.db, &out).await,
        Command::Bench(BenchCommand::Protection(args)) => {
            run::bench_protection(args, cli.db, &config, &out).await
        }
    }
}
