//! The HTTP API that `hookline serve` runs next to the dispatcher: producers
//! publish events, integrators manage tenants, endpoints and subscriptions
//! and follow deliveries. JSON in and out, errors as RFC 9457 problems,
//! `Authorization: Bearer` API keys, every change through [`crate::ops`]
//! with the key's name as the actor. Routes and the OpenAPI document are
//! built from one source (the handlers' `#[utoipa::path]` annotations).

mod apikeys;
mod auth;
mod body;
mod contract;
mod deliveries;
mod endpoints;
mod events;
mod fields;
pub mod metrics;
mod openapi;
mod paging;
mod problem;
mod subscriptions;
mod tenants;
pub mod views;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, MatchedPath};
use axum::http::Uri;
use tokio::sync::watch;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::ops::{Committers, Ops, PublishStats, Publisher};
pub use apikeys::{ApiKeyView, CreatedApiKey};
pub use events::PublishResponse;
pub use problem::{FieldError, Problem};

/// Room for the request envelope around a payload of the maximum size; the
/// payload itself is checked against `limits.max_payload` exactly.
const ENVELOPE_ALLOWANCE: u64 = 64 * 1024;

/// How long shutdown waits for requests in progress.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// What every handler shares.
pub struct AppState {
    /// Actions as hookline itself; handlers act through the caller's [`auth::Caller`].
    ops: Ops,
    publisher: Publisher,
    open_health_metrics: bool,
    openapi_json: Bytes,
    /// The database's figures for `/metrics`.
    gauges: metrics::DatabaseGauges,
}

/// Why the API could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the API server failed: {0}")]
    Serve(#[source] std::io::Error),
}

/// How the API runs.
#[derive(Debug, Clone)]
pub struct ApiOptions {
    /// Address to listen on; port 0 picks a free one.
    pub listen: SocketAddr,
    /// `/healthz` and `/metrics` without a key.
    pub open_health_metrics: bool,
    /// Dispatchers whose heartbeat is younger count as alive in `/metrics`
    /// ([`crate::config::DispatchConfig::alive_within`]).
    pub alive_within: Duration,
}

/// What a request to a route that matched none is counted as: raw paths
/// would let any client add series.
const UNMATCHED_ROUTE: &str = "unmatched";

/// Counts each request in the process's metrics by route template (the
/// pattern that matched, such as `/v1/endpoints/{id}`), method and status.
async fn count_request(
    route: Option<MatchedPath>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let started = Instant::now();
    let method = request.method().clone();
    let response = next.run(request).await;
    let route = route.as_ref().map_or(UNMATCHED_ROUTE, MatchedPath::as_str);
    crate::metrics::metrics().api_request(
        route,
        &method,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

/// Every route, with its OpenAPI description.
fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(events::publish, events::list))
        .routes(routes!(events::get))
        .routes(routes!(events::expunge_payload))
        .routes(routes!(tenants::list, tenants::create))
        .routes(routes!(tenants::get, tenants::delete))
        .routes(routes!(apikeys::list, apikeys::create))
        .routes(routes!(apikeys::delete))
        .routes(routes!(endpoints::list, endpoints::create))
        .routes(routes!(
            endpoints::get,
            endpoints::update,
            endpoints::delete
        ))
        .routes(routes!(endpoints::breaker, endpoints::set_breaker))
        .routes(routes!(endpoints::pause))
        .routes(routes!(endpoints::resume))
        .routes(routes!(endpoints::rotate_secret))
        .routes(routes!(endpoints::secret))
        .routes(routes!(endpoints::recover))
        .routes(routes!(subscriptions::list, subscriptions::create))
        .routes(routes!(
            subscriptions::get,
            subscriptions::update,
            subscriptions::delete
        ))
        .routes(routes!(deliveries::list))
        .routes(routes!(deliveries::get))
        .routes(routes!(deliveries::retry))
        .routes(routes!(deliveries::attempts))
        .routes(routes!(endpoints::attempts))
        .routes(routes!(endpoints::stats))
        .routes(routes!(metrics::healthz))
        .routes(routes!(metrics::metrics_route))
        .routes(routes!(openapi::document))
}

/// The routes, and the OpenAPI document describing them exactly.
fn routes_and_document() -> (axum::Router<Arc<AppState>>, utoipa::openapi::OpenApi) {
    let (router, mut document) = routes().split_for_parts();
    openapi::complete(&mut document);
    (router, document)
}

/// The OpenAPI document, exactly as `GET /v1/openapi.json` serves it.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    routes_and_document().1
}

/// The API serving on a background task, until [`RunningApi::stop`].
pub struct RunningApi {
    /// The address bound (with the real port when 0 was asked for).
    pub addr: SocketAddr,
    /// Group commit counters.
    pub stats: Arc<PublishStats>,
    stop: watch::Sender<bool>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    committers: Committers,
}

impl RunningApi {
    /// `http://ADDR`, the base URL of the API.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, lets requests in progress finish (for up to
    /// `SHUTDOWN_GRACE`) and commits every publish already queued.
    pub async fn stop(self) -> Result<(), ApiError> {
        self.stop.send_replace(true);
        let mut server = self.server;
        let served = match tokio::time::timeout(SHUTDOWN_GRACE, &mut server).await {
            Ok(Ok(result)) => result.map_err(ApiError::Serve),
            Ok(Err(join)) => Err(ApiError::Serve(std::io::Error::other(join))),
            Err(_) => {
                server.abort();
                Ok(())
            }
        };
        self.committers.finish().await;
        served
    }
}

/// Binds and serves the API on a background task, publishing through `ops`
/// (which hands fresh deliveries to the dispatcher in this process, if it
/// was given one).
pub async fn start(ops: Ops, options: &ApiOptions) -> Result<RunningApi, ApiError> {
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .map_err(|source| ApiError::Bind {
            addr: options.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ApiError::Bind {
        addr: options.listen,
        source,
    })?;
    let (publisher, committers) = Publisher::start(ops.clone());
    let stats = publisher.stats();
    let body_limit =
        usize::try_from(ops.max_payload().saturating_add(ENVELOPE_ALLOWANCE)).unwrap_or(usize::MAX);
    let (router, document) = routes_and_document();
    let openapi_json = Bytes::from(document.to_json().unwrap_or_default());
    let state = Arc::new(AppState {
        gauges: metrics::DatabaseGauges::new(ops.reads().clone(), options.alive_within),
        ops,
        publisher,
        open_health_metrics: options.open_health_metrics,
        openapi_json,
    });
    let app = router
        .fallback(|uri: Uri| async move { Problem::no_route(uri.path()) })
        .method_not_allowed_fallback(|| async { Problem::method_not_allowed() })
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn(count_request))
        .with_state(state);
    let (stop, mut stopping) = watch::channel(false);
    let server = tokio::spawn(async move {
        let signal = async move {
            let _ = stopping.wait_for(|stop| *stop).await;
        };
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(signal)
        .await
    });
    tracing::info!(%addr, "API listening");
    Ok(RunningApi {
        addr,
        stats,
        stop,
        server,
        committers,
    })
}
