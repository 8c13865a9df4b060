//! Toolgate's HTTP service (`policyc serve`): an adapter from HTTP to the
//! runtime's gateway. Every decision, budget charge, approval, kill-switch
//! check and journal record happens in the gateway; this crate turns
//! requests into its calls and its answers into JSON.
//!
//! - [`router`]: the axum router (other front doors can mount it);
//! - [`serve`]: `policyc serve` (config, listening, TLS, SIGHUP, background tasks);
//! - [`keys`]: API keys and roles; [`auth`]: who is calling and what they may do;
//! - [`data`]: the data directory, the only place that opens or reads the journal;
//! - [`store`]: `--store`: the embedded state or Redis, shared by replicas;
//! - [`index`]: a read-only view of the journal (held calls' arguments, recent outcomes);
//! - [`problem`]: RFC 9457 errors; [`openapi`]: the OpenAPI document.

#![deny(missing_docs)]

pub mod api;
pub mod auth;
pub mod data;
pub mod extract;
pub mod index;
pub mod keys;
pub mod metrics;
pub mod openapi;
pub mod policy;
pub mod problem;
pub mod serve;
pub mod store;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use toolgate_runtime::gateway::Gateway;

/// The gateway as the server runs it: it never runs tools itself (the
/// service runs allowed calls and reports their results).
pub type Gate = Gateway;

/// Everything a request handler may use.
pub struct App {
    /// The gateway core.
    pub gateway: Arc<Gate>,
    /// The API keys.
    pub keys: keys::Keyring,
    /// The journal's view for listing.
    pub index: Arc<index::Index>,
    /// The data directory.
    pub data: data::DataDir,
    /// The live policy's file (re-read on reload).
    pub policy_path: PathBuf,
    /// The live policy as `GET /v1/policy` shows it.
    pub summary: RwLock<policy::PolicySummary>,
    /// The shadow policy, if any.
    pub shadow: RwLock<Option<policy::PolicySummary>>,
    /// Counters and histograms of the HTTP layer.
    pub stats: metrics::Stats,
    /// When the server started (ms since the epoch).
    pub started_at: u64,
    /// The longest `?wait=` a long poll may ask for.
    pub max_wait: Duration,
    /// One reload at a time.
    pub reloading: tokio::sync::Mutex<()>,
}

impl App {
    /// The live policy's summary.
    pub fn summary(&self) -> policy::PolicySummary {
        self.summary
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Limits of the HTTP layer.
#[derive(Clone, Copy, Debug)]
pub struct HttpLimits {
    /// Largest request body (bytes).
    pub max_body: usize,
    /// Longest request.
    pub timeout: Duration,
    /// Requests handled at once (more wait); reads of a call's state have
    /// a budget of their own of this size, half of it for long polls.
    pub concurrency: usize,
    /// How long a connection has to send a request's headers, idle
    /// keep-alive connections too ([`serve::serve_http`]).
    pub header_timeout: Duration,
    /// Connections open at once ([`serve::serve_http`]; more wait to be accepted).
    pub max_connections: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_body: 1024 * 1024,
            timeout: Duration::from_secs(60),
            concurrency: 1024,
            header_timeout: Duration::from_secs(10),
            max_connections: 1024,
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
    use api::{admin, approvals, calls};
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

/// Milliseconds since the epoch.
pub fn now_ms() -> u64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    now.map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
