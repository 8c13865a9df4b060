//! Streamable HTTP downstream (`--listen`): MCP clients POST JSON-RPC to
//! `/mcp` with a service key (`Authorization: Bearer`, from keys.toml).
//! Each `initialize` opens a session (`Mcp-Session-Id`) with its own relay,
//! its own upstream child and its own Toolgate session (a new random id,
//! never the `Mcp-Session-Id`: that one addresses the MCP session, this one
//! is journaled and shown; sent back as `Toolgate-Session` on every
//! answer, so the host can record the user's turns); the session's trusted
//! context is the proxy's `--agent`/`--env` and the caller key's tenant
//! (its only tenant, or `--tenant` when the key allows it). A request is answered as an SSE
//! stream that carries the upstream's messages until its response; a GET
//! opens the session's stream for the upstream's own requests and
//! notifications; DELETE ends the session. Answers are `Cache-Control:
//! private, no-store` (a `tools/list` is per caller). A request whose `Host`
//! or `Origin` is not loopback is refused first (DNS rebinding, origin.rs).
//! A body is at most [`wire::MAX_CLIENT_LINE`] bytes (413 beyond), parsed
//! once into the [`Envelope`] the relay gets; what the relay sends back is
//! routed by its kind, from bounded queues ([`crate::relay::QUEUE`] messages
//! per stream: a stream its client does not read stalls its own session).

use crate::config::{new_session_id, Trusted, Upstream};
use crate::connect::{connect, Connection};
use crate::credentials::Credentials;
use crate::decider::Decider;
use crate::envelope::{Envelope, Id, Kind, Outgoing};
use crate::relay::{self, Options, Relay};
use crate::tools::Visibility;
use crate::wire;
use crate::McpError;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::json;
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::mpsc::{self, Receiver, Sender};
use toolgate_api::listen::{serve_http, HttpLimits};
use toolgate_runtime::host::keys::{Change, Key, Keyring, Role};

const SESSION: &str = "mcp-session-id";

/// The response header naming an MCP session's Toolgate session (the id
/// its user turns are posted to: `POST /v1/sessions/{id}/turns`), on every
/// answer to a request of that session.
pub const TOOLGATE_SESSION: &str = "toolgate-session";

/// Open sessions at most (each has its own upstream child or HTTP session).
pub const MAX_SESSIONS: usize = 64;

/// Open sessions at most per service key by default (`--max-sessions-per-key`),
/// so that one caller cannot take them all: past it, the key's least
/// recently used session that has no open stream is ended (clients seldom
/// send DELETE); when all are streaming, the new one is refused (429).
pub const MAX_SESSIONS_PER_KEY: usize = 16;

/// What every session is made from.
pub struct Listener {
    /// The gateway.
    pub decider: Arc<dyn Decider>,
    /// The proxy's own context (the tenant may come from the caller's key).
    pub trusted: Trusted,
    /// The agent's tools.
    pub visibility: Visibility,
    /// Relay options.
    pub options: Options,
    /// The upstream each session starts.
    pub upstream: Upstream,
    /// The callers' keys.
    pub keys: Keyring,
    /// Credentials for the upstream, by scope.
    pub secrets: Credentials,
    /// Open sessions at most per service key.
    pub max_sessions_per_key: usize,
}

/// One client session.
struct Session {
    relay: Relay,
    /// Its Toolgate session id (the `Toolgate-Session` header).
    toolgate_session: String,
    key: String,
    /// Responses awaited by open POSTs, by request id; other messages go to
    /// the GET stream, or the latest open POST stream.
    routes: Mutex<Routes>,
    connection: Mutex<Option<Connection>>,
    /// When a request last used it.
    used: Mutex<std::time::Instant>,
}

impl Session {
    /// Idle: no request for `IDLE`, no open POST and no open GET stream.
    fn idle(&self) -> bool {
        let routes = lock(&self.routes);
        let streaming = routes.stream.as_ref().is_some_and(|tx| !tx.is_closed());
        routes.waiting.is_empty() && !streaming && lock(&self.used).elapsed() >= IDLE
    }

    /// A client is reading one of its streams (a POST's answer or the GET stream).
    fn streaming(&self) -> bool {
        let routes = lock(&self.routes);
        let open = |tx: &Sender<Outgoing>| !tx.is_closed();
        routes.stream.as_ref().is_some_and(open) || routes.waiting.values().any(open)
    }

    /// Stops the upstream (its last messages still reach the session), then the session.
    async fn stop(&self) {
        let connection = lock(&self.connection).take();
        if let Some(connection) = connection {
            connection.stop().await;
        }
        self.relay.stop().await;
    }
}

/// A session nobody used for this long (and with no open stream) is ended.
pub const IDLE: Duration = Duration::from_secs(30 * 60);

#[derive(Default)]
struct Routes {
    waiting: HashMap<Id, Sender<Outgoing>>,
    stream: Option<Sender<Outgoing>>,
}

struct Shared {
    listener: Listener,
    sessions: Mutex<HashMap<String, Arc<Session>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Each change is one insert or remove: a poisoned lock holds whole maps.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The `/mcp` router.
pub fn router(listener: Listener) -> Router {
    let shared = Arc::new(Shared {
        listener,
        sessions: Mutex::new(HashMap::new()),
    });
    tokio::spawn(sweep(Arc::downgrade(&shared)));
    Router::new()
        .route("/mcp", post(on_post).get(on_get).delete(on_delete))
        .layer(DefaultBodyLimit::max(wire::MAX_CLIENT_LINE))
        .layer(axum::middleware::from_fn(crate::origin::local_only))
        .with_state(shared)
}

fn rpc_error(status: StatusCode, code: i64, message: &str) -> Response {
    let body = json!({"jsonrpc": "2.0", "id": null, "error": {"code": code, "message": message}});
    (status, axum::Json(body)).into_response()
}

/// The caller's service key, or the refusal (journaled as `access_denied`).
async fn caller(shared: &Shared, headers: &HeaderMap) -> Result<Key, Response> {
    keys_valid(shared).await?;
    let secret = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let Some(key) = secret.and_then(|s| shared.listener.keys.authenticate(s)) else {
        return Err(rpc_error(
            StatusCode::UNAUTHORIZED,
            -32001,
            "a service key is required (`Authorization: Bearer KEY`)",
        ));
    };
    let t = &shared.listener.trusted;
    let why = if key.role != Role::Service {
        Some(format!("the key `{}` is not a service key", key.name))
    } else if !key.allows_env(&t.env) || !key.allows_agent(&t.agent) {
        Some(format!(
            "the key `{}` may not act as agent `{}` in env `{}`",
            key.name, t.agent, t.env
        ))
    } else {
        None
    };
    if let Some(why) = why {
        shared.listener.decider.access_denied(&key.name, &why).await;
        return Err(rpc_error(StatusCode::FORBIDDEN, -32001, &why));
    }
    Ok(key)
}

/// A keys file that became invalid is logged and journaled once, and every
/// caller is refused (503) until it is fixed, as `policyc serve` does: a
/// hand edit never leaves the last good keys (a revoked one among them) working.
async fn keys_valid(shared: &Shared) -> Result<(), Response> {
    let keys = &shared.listener.keys;
    if let Change::Invalid(why) = keys.refresh() {
        eprintln!("toolgate: {why}; no key authenticates until it is fixed");
        let file = format!("keys file `{}`", keys.path().display());
        shared.listener.decider.access_denied(&file, &why).await;
    }
    match keys.keys() {
        Ok(_) => Ok(()),
        Err(why) => {
            let why = format!("{why}; no key authenticates until it is fixed");
            Err(rpc_error(StatusCode::SERVICE_UNAVAILABLE, -32001, &why))
        }
    }
}

/// The session's tenant: the key's only tenant, or the proxy's when the key allows it.
fn tenant_of(key: &Key, trusted: &Trusted) -> Option<String> {
    match key.tenants.as_slice() {
        [only] => Some(only.clone()),
        _ if key.allows_tenant(&trusted.tenant) => Some(trusted.tenant.clone()),
        _ => None,
    }
}

fn session_of(shared: &Shared, headers: &HeaderMap, key: &Key) -> Option<Arc<Session>> {
    let id = headers.get(SESSION)?.to_str().ok()?;
    let session = lock(&shared.sessions).get(id).cloned()?;
    *lock(&session.used) = std::time::Instant::now();
    (session.key == key.name).then_some(session)
}

async fn on_post(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let key = match caller(&shared, &headers).await {
        Ok(k) => k,
        Err(r) => return r,
    };
    // Parsed once: what the relay gets is this value, never the body; what
    // is not one JSON-RPC message is refused here and reaches nobody.
    let envelope = match Envelope::parse(&body) {
        Ok(e) => e,
        Err(e) => return rpc_error(StatusCode::BAD_REQUEST, e.code(), &e.to_string()),
    };
    let method = envelope.kind().method();
    let (session, new_id) = match (session_of(&shared, &headers, &key), method) {
        (Some(s), _) => (s, None),
        (None, Some("initialize")) => match open_session(&shared, &key).await {
            Ok((s, id)) => (s, Some(id)),
            Err(r) => return r,
        },
        (None, _) => {
            let why = "no session: send `initialize` first, then the `Mcp-Session-Id` it returns";
            return rpc_error(StatusCode::BAD_REQUEST, -32000, why);
        }
    };
    let response = match envelope.kind() {
        Kind::Request { id, .. } => stream_answer(&session, id.clone(), envelope).await,
        Kind::Notification { .. } | Kind::Response { .. } | Kind::Error { .. } => {
            session.relay.from_client(envelope).await;
            StatusCode::ACCEPTED.into_response()
        }
    };
    with_headers(response, &session, new_id)
}

/// An answer's headers: never cached, the session's Toolgate session, and
/// the new `Mcp-Session-Id` on the answer that opened it.
fn with_headers(mut response: Response, session: &Session, new: Option<String>) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    if let Ok(id) = HeaderValue::from_str(&session.toolgate_session) {
        h.insert(TOOLGATE_SESSION, id);
    }
    if let Some(id) = new.and_then(|s| HeaderValue::from_str(&s).ok()) {
        h.insert(SESSION, id);
    }
    response
}

/// Sends a request into the relay and streams what comes back until its response.
async fn stream_answer(session: &Arc<Session>, id: Id, request: Envelope) -> Response {
    let (tx, rx) = mpsc::channel(relay::QUEUE);
    lock(&session.routes).waiting.insert(id, tx);
    session.relay.from_client(request).await;
    let stream = futures_util::stream::unfold((rx, false), |(mut rx, done)| async move {
        if done {
            return None;
        }
        let message: Outgoing = rx.recv().await?;
        let last = message.kind.answers().is_some();
        let event = Event::default().data(message.line.into_string());
        Some((Ok::<_, Infallible>(event), (rx, last)))
    });
    Sse::new(stream).into_response()
}

async fn open_session(shared: &Arc<Shared>, key: &Key) -> Result<(Arc<Session>, String), Response> {
    let l = &shared.listener;
    let Some(tenant) = tenant_of(key, &l.trusted) else {
        let why = format!(
            "the key `{}` may not act for tenant `{}`",
            key.name, l.trusted.tenant
        );
        l.decider.access_denied(&key.name, &why).await;
        return Err(rpc_error(StatusCode::FORBIDDEN, -32001, &why));
    };
    make_room_for(shared, key).await?;
    if lock(&shared.sessions).len() >= MAX_SESSIONS {
        let why = format!("the proxy has {MAX_SESSIONS} open sessions: end one (DELETE) first");
        return Err(rpc_error(StatusCode::SERVICE_UNAVAILABLE, -32000, &why));
    }
    let internal = |e: toolgate_runtime::gateway::GatewayError| {
        rpc_error(StatusCode::INTERNAL_SERVER_ERROR, -32603, &e.to_string())
    };
    let id = toolgate_runtime::gateway::random_token().map_err(internal)?;
    // Its own id, not the `Mcp-Session-Id`: that one addresses the MCP
    // session (with the key), this one is journaled and shown to operators.
    let toolgate_session = new_session_id().map_err(internal)?;
    eprintln!(
        "toolgate: session {toolgate_session} of tenant `{tenant}` for key `{}`",
        key.name
    );
    let trusted = Trusted {
        tenant,
        session: Some(toolgate_session.clone()),
        ..l.trusted.clone()
    };
    let fail = |e: McpError| rpc_error(StatusCode::BAD_GATEWAY, -32603, &e.to_string());
    let (to_client, inbox) = relay::outbox();
    let secrets = l.secrets.for_scope(&trusted);
    let (relay, connection) = connect(&l.upstream, &secrets, |to_upstream| {
        let (decider, visibility) = (l.decider.clone(), l.visibility.clone());
        Relay::new(
            decider,
            trusted,
            visibility,
            l.options,
            to_upstream,
            to_client,
        )
    })
    .map_err(fail)?;
    let session = Arc::new(Session {
        relay,
        toolgate_session,
        key: key.name.clone(),
        routes: Mutex::new(Routes::default()),
        connection: Mutex::new(Some(connection)),
        used: Mutex::new(std::time::Instant::now()),
    });
    tokio::spawn(dispatch(session.clone(), inbox));
    lock(&shared.sessions).insert(id.clone(), session.clone());
    Ok((session, id))
}

/// Keeps the key within its most sessions: ends its least recently
/// used session without an open stream, or refuses (429) when there is none.
async fn make_room_for(shared: &Shared, key: &Key) -> Result<(), Response> {
    let evicted = {
        let mut sessions = lock(&shared.sessions);
        let mine: Vec<(&String, &Arc<Session>)> =
            sessions.iter().filter(|(_, s)| s.key == key.name).collect();
        let most = shared.listener.max_sessions_per_key;
        if mine.len() < most {
            return Ok(());
        }
        let oldest = mine
            .into_iter()
            .filter(|(_, s)| !s.streaming())
            .min_by_key(|(_, s)| *lock(&s.used))
            .map(|(id, _)| id.clone());
        oldest.and_then(|id| sessions.remove(&id))
    };
    match evicted {
        Some(session) => {
            session.stop().await;
            Ok(())
        }
        None => {
            let why = format!(
                "the key `{}` has {} sessions with open streams: end one (DELETE) first",
                key.name, shared.listener.max_sessions_per_key
            );
            Err(rpc_error(StatusCode::TOO_MANY_REQUESTS, -32000, &why))
        }
    }
}

/// Routes the relay's messages for the client: a response to its POST, anything else to the
/// session's GET stream, or the latest open POST stream. A stream that is
/// full is waited for (its client reads it, or closes it).
async fn dispatch(session: Arc<Session>, mut inbox: Receiver<Outgoing>) {
    while let Some(message) = inbox.recv().await {
        let target = {
            let mut routes = lock(&session.routes);
            let answered = message
                .kind
                .answers()
                .and_then(|id| routes.waiting.remove(id));
            answered.or_else(|| {
                routes
                    .stream
                    .clone()
                    .or_else(|| routes.waiting.values().next().cloned())
            })
        };
        if let Some(tx) = target {
            let _ = tx.send(message).await;
        }
    }
}

/// Ends idle sessions (stops their upstreams) every minute.
async fn sweep(shared: std::sync::Weak<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tick.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let idle: Vec<Arc<Session>> = {
            let mut sessions = lock(&shared.sessions);
            let ids: Vec<String> = sessions
                .iter()
                .filter(|(_, s)| s.idle())
                .map(|(id, _)| id.clone())
                .collect();
            ids.iter().filter_map(|id| sessions.remove(id)).collect()
        };
        for session in idle {
            session.stop().await;
        }
    }
}

async fn on_get(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let key = match caller(&shared, &headers).await {
        Ok(k) => k,
        Err(r) => return r,
    };
    let Some(session) = session_of(&shared, &headers, &key) else {
        return rpc_error(StatusCode::NOT_FOUND, -32000, "no such session");
    };
    let (tx, rx) = mpsc::channel::<Outgoing>(relay::QUEUE);
    lock(&session.routes).stream = Some(tx);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        let message = rx.recv().await?;
        let event = Event::default().data(message.line.into_string());
        Some((Ok::<_, Infallible>(event), rx))
    });
    with_headers(Sse::new(stream).into_response(), &session, None)
}

async fn on_delete(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let key = match caller(&shared, &headers).await {
        Ok(k) => k,
        Err(r) => return r,
    };
    let Some(session) = session_of(&shared, &headers, &key) else {
        return rpc_error(StatusCode::NOT_FOUND, -32000, "no such session");
    };
    if let Some(id) = headers.get(SESSION).and_then(|v| v.to_str().ok()) {
        lock(&shared.sessions).remove(id);
    }
    session.stop().await;
    StatusCode::NO_CONTENT.into_response()
}

/// Serves `/mcp` on `listen` until interrupted; stops every session's upstream then.
pub async fn serve(listen: &str, listener: Listener) -> Result<(), McpError> {
    let addr = toolgate_api::listen::check_listen(listen, false, false)
        .map_err(|e| McpError::Config(format!("`--listen`: {e}")))?;
    let tcp = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| McpError::Config(format!("cannot listen on `{addr}`: {e}")))?;
    let bound = tcp
        .local_addr()
        .map_err(|e| McpError::Config(e.to_string()))?;
    eprintln!("toolgate: MCP endpoint on http://{bound}/mcp");
    // Not a graceful shutdown: open GET streams never end. Dropping the
    // sessions kills their children (`kill_on_drop`).
    tokio::select! {
        () = serve_http(tcp, router(listener), HttpLimits::default(), std::future::pending()) => Ok(()),
        () = toolgate_runtime::host::shutdown_signal() => Ok(()),
    }
}
