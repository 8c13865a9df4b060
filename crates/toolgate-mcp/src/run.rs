//! Starting the proxy: the policy (compiled for the gateway, checked IR for
//! the tool list), the embedded gateway under `--data` (journal, digest key,
//! state, through the gateway service's `open_state`), the admin API when
//! asked (`--admin-listen`: the gateway service's router over the same
//! gateway), the upstream, and the relay.

use crate::config::ProxyConfig;
use crate::connect::connect;
use crate::credentials::Credentials;
use crate::decider::{Decider, Local};
use crate::http_in::{self, Listener};
use crate::relay::{Options, Relay};
use crate::remote::Remote;
use crate::stdio;
use crate::tools::Visibility;
use crate::McpError;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use toolgate_runtime::gateway::Limits;
use toolgate_server::data::{open_state, DataDir};
use toolgate_server::index::Index;
use toolgate_server::keys::Keyring;
use toolgate_server::{policy, App, Gate, HttpLimits};

/// Runs the proxy until the client's input ends (stdio) or the upstream stops.
pub async fn run(config: ProxyConfig) -> Result<(), McpError> {
    let (visibility, loaded) = load_policy(&config)?;
    let data = DataDir(config.data.clone());
    let decider: Arc<dyn Decider> = match &config.gateway {
        Some(remote) => Arc::new(Remote::new(remote)),
        None => open_local(&config, &data, loaded).await?,
    };
    let options = Options {
        wait_approval: config.wait_approval,
        forward_roots: config.forward_roots,
        ask_client_user: config.listen.is_none() || config.listen_elicitation,
    };
    let secrets = match &config.credentials {
        Some(path) => Credentials::load(path)?,
        None => Credentials::default(),
    }
    .inherit(&config.pass_env);
    if let Some(listen) = &config.listen {
        let keys_path = config.keys.clone().unwrap_or_else(|| data.keys());
        let listener = Listener {
            decider,
            trusted: config.trusted.clone(),
            visibility,
            options,
            upstream: config.upstream.clone(),
            keys: Keyring::open(keys_path)
                .map_err(|e| McpError::Config(format!("the callers' keys: {e}")))?,
            secrets,
            max_sessions_per_key: config.max_sessions_per_key,
        };
        return http_in::serve(listen, listener).await;
    }
    let (to_client, client_inbox) = crate::relay::outbox();
    let scoped = secrets.for_scope(&config.trusted);
    let (relay, connection) = connect(&config.upstream, &scoped, |to_upstream| {
        let trusted = config.trusted.clone();
        Relay::new(
            decider,
            trusted,
            visibility,
            options,
            to_upstream,
            to_client,
        )
    })?;
    stdio::serve(relay, connection, client_inbox).await
}

/// The embedded gateway under `--data`, with the admin API when asked.
async fn open_local(
    config: &ProxyConfig,
    data: &DataDir,
    loaded: policy::Loaded,
) -> Result<Arc<dyn Decider>, McpError> {
    let index = Arc::new(Index::default());
    let limits = Limits::default();
    let shared = toolgate_server::store::open_store(&config.store, &data.0)
        .await
        .map_err(|e| McpError::Config(e.to_string()))?;
    let gate = open_state(data, loaded.compiled, config.fsync, limits, &index, shared)
        .await
        .map_err(|e| McpError::Gateway(e.to_string()))?;
    let gate = Arc::new(gate);
    if let Some(listen) = &config.admin_listen {
        let app = admin_app(config, gate.clone(), index, data.clone(), loaded.summary)?;
        serve_admin(listen, app).await?;
    }
    background(gate.clone());
    Ok(Arc::new(Local(gate)))
}

/// The policy, checked: the tool visibility of the agent and the gateway's form.
fn load_policy(config: &ProxyConfig) -> Result<(Visibility, policy::Loaded), McpError> {
    let path = &config.policy;
    let text = std::fs::read_to_string(path)
        .map_err(|e| McpError::Config(format!("cannot read `{}`: {e}", path.display())))?;
    let file = path.display().to_string();
    let refused = |why: String| McpError::Policy(format!("`{file}` does not check clean: {why}"));
    let loaded = policy::compile(&text, &file, toolgate_server::now_ms()).map_err(|r| {
        let first = r.diagnostics.iter().find(|d| d["severity"] == "error");
        refused(first.map_or_else(String::new, |d| d["message"].to_string()))
    })?;
    let parsed = toolgate_syntax::parse(&text);
    let checked = toolgate_check::check(&parsed.file, &text);
    let ir = checked
        .policy
        .ok_or_else(|| refused("it has errors".into()))?;
    let agent = &config.trusted.agent;
    let visibility = Visibility::of(&ir, agent).ok_or_else(|| {
        McpError::Policy(format!(
            "`{file}` has no `agent {agent} {{ }}` block: every call would be denied"
        ))
    })?;
    Ok((visibility, loaded))
}

fn admin_app(
    config: &ProxyConfig,
    gateway: Arc<Gate>,
    index: Arc<Index>,
    data: DataDir,
    summary: policy::PolicySummary,
) -> Result<Arc<App>, McpError> {
    let keys_path = config.keys.clone().unwrap_or_else(|| data.keys());
    let keys = Keyring::open(keys_path)
        .map_err(|e| McpError::Config(format!("the admin API's keys: {e}")))?;
    Ok(Arc::new(App {
        gateway,
        keys,
        index,
        data,
        policy_path: config.policy.clone(),
        summary: RwLock::new(summary),
        shadow: RwLock::new(None),
        stats: toolgate_server::metrics::Stats::default(),
        started_at: toolgate_server::now_ms(),
        max_wait: Duration::from_secs(55),
        reloading: tokio::sync::Mutex::new(()),
    }))
}

/// Serves the gateway service's router (approvals, kill switch, audit) on a loopback address.
async fn serve_admin(listen: &str, app: Arc<App>) -> Result<(), McpError> {
    let addr: SocketAddr = toolgate_server::serve::check_listen(listen, false, false)
        .map_err(|e| McpError::Config(format!("`--admin-listen`: {e}")))?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| McpError::Config(format!("cannot listen on `{addr}`: {e}")))?;
    let bound = listener
        .local_addr()
        .map_err(|e| McpError::Config(e.to_string()))?;
    eprintln!("toolgate: admin API on http://{bound}");
    let router = toolgate_server::router(app, HttpLimits::default());
    tokio::spawn(async move {
        toolgate_server::serve::serve_http(
            listener,
            router,
            HttpLimits::default(),
            std::future::pending(),
        )
        .await;
    });
    Ok(())
}

/// Journals `result_missing` for calls whose upstream never answered.
fn background(gate: Arc<Gate>) {
    let weak = Arc::downgrade(&gate);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let Some(gate) = weak.upgrade() else { return };
            if let Err(e) = gate.expire_leases().await {
                eprintln!("toolgate: cannot journal missing results: {e}");
            }
        }
    });
}
