//! Toolgate's HTTP service (`policyc serve`): an adapter from HTTP to the
//! runtime's gateway. Every decision, budget charge, approval, kill-switch
//! check and journal record happens in the gateway; this crate turns
//! requests into its calls and its answers into JSON.
//!
//! - [`router`]: the axum router (other front doors can mount it);
//! - [`serve`]: `policyc serve` (config, listening, TLS, SIGHUP, background tasks);
//! - [`auth`]: who is calling and what they may do (keys: the runtime's `host::keys`);
//! - [`problem`]: RFC 9457 errors; [`openapi`]: the OpenAPI document.

#![deny(missing_docs)]

pub mod api;
pub mod auth;
pub mod extract;
pub mod metrics;
pub mod openapi;
pub mod problem;
pub mod serve;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use std::sync::Arc;
use std::time::Duration;
pub use toolgate_api::listen::HttpLimits;
use toolgate_runtime::host::keys::Keyring;
use toolgate_runtime::host::Host;

/// Everything a request handler may use.
pub struct App {
    /// The gateway and what it was opened with (data, journal view, policy).
    pub host: Arc<Host>,
    /// The API keys.
    pub keys: Keyring,
    /// Counters and histograms of the HTTP layer.
    pub stats: metrics::Stats,
    /// The longest `?wait=` a long poll may ask for.
    pub max_wait: Duration,
}

impl App {
    /// The app of a door over `host`, with the keys at `keys` and HTTP `limits`.
    pub fn new(host: Arc<Host>, keys: Keyring, limits: HttpLimits) -> App {
        App {
            host,
            keys,
            stats: metrics::Stats::default(),
            // A long poll answers before the request timeout cuts it.
            max_wait: Duration::from_secs(55)
                .min(limits.timeout.saturating_sub(Duration::from_secs(1))),
        }
    }
}

/// How many long polls (`GET /v1/calls/{id}?wait=`) may wait at once; one
/// over it answers at once with the call's state.
#[derive(Clone)]
pub struct LongPolls(pub Arc<tokio::sync::Semaphore>);

/// The API's router over `app`. Reads of a call's state (long polls among
/// them) have their own concurrency budget, so that waiting polls never hold
/// up calls; at most half of it waits at once.
pub fn router(app: Arc<App>, limits: HttpLimits) -> Router {
    use api::{admin, approvals, calls, sessions};
    let waiting = LongPolls(Arc::new(tokio::sync::Semaphore::new(
        (limits.concurrency / 2).max(1),
    )));
    let polls = Router::new()
        .route("/v1/calls/{id}", get(calls::state))
        .layer(axum::Extension(waiting))
        .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
            limits.concurrency,
        ));
    let v1 = Router::new()
        .route("/v1/decide", post(calls::decide))
        .route("/v1/calls", post(calls::create))
        .route("/v1/calls/{id}/result", post(calls::result))
        .route("/v1/calls/{id}/execute", post(calls::execute))
        .route("/v1/sessions/{session}", get(sessions::summary))
        .route("/v1/sessions/{session}/turns", post(sessions::turn))
        .route("/v1/approvals", get(approvals::list))
        .route("/v1/approvals/{id}", get(approvals::show))
        .route("/v1/approvals/{id}/approve", post(approvals::approve))
        .route("/v1/approvals/{id}/reject", post(approvals::reject))
        .route(
            "/v1/kill-switch",
            get(admin::kill_status).post(admin::kill_switch),
        )
        .route("/v1/audit", get(admin::audit))
        .route("/v1/audit/head", get(admin::audit_head))
        .route("/v1/policy", get(admin::policy))
        .route("/v1/policy/reload", post(admin::reload))
        .route("/v1/keys", get(admin::keys))
        .route("/v1/status", get(admin::status))
        .route("/v1/openapi.json", get(openapi::serve))
        .route("/metrics", get(admin::metrics))
        .route("/healthz", get(admin::healthz))
        .route("/readyz", get(admin::readyz))
        .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
            limits.concurrency,
        ))
        .merge(polls);
    v1.layer(axum::middleware::from_fn_with_state(
        app.clone(),
        metrics::time_request,
    ))
    .layer(DefaultBodyLimit::max(limits.max_body))
    .layer(tower_http::limit::RequestBodyLimitLayer::new(
        limits.max_body,
    ))
    .layer(tower_http::timeout::TimeoutLayer::with_status_code(
        axum::http::StatusCode::REQUEST_TIMEOUT,
        limits.timeout,
    ))
    .layer(axum::middleware::map_response(problem::ensure_problem))
    .with_state(app)
}
