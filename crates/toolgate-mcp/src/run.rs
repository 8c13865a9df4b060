//! Starting the proxy: the policy (checked IR for the tool list), the
//! embedded gateway under `--data` ([`open_host`]: the runtime's `Host`,
//! which every door opens the same way), the upstream, and the relay. The
//! admin API (`--admin-listen`) is the HTTP door's router over the same host,
//! composed by `policyc`: this crate does not depend on the HTTP door.

use crate::config::{new_session_id, ProxyConfig, Trusted};
use crate::connect::connect;
use crate::credentials::Credentials;
use crate::decider::{Decider, Local};
use crate::http_in::{self, Listener};
use crate::relay::{Options, Relay};
use crate::remote::Remote;
use crate::stdio;
use crate::tools::Visibility;
use crate::McpError;
use std::sync::Arc;
use toolgate_runtime::gateway::Limits;
use toolgate_runtime::host::keys::Keyring;
use toolgate_runtime::host::{Host, HostConfig};

/// Runs the proxy until the client's input ends (stdio) or the upstream
/// stops. `host` is the embedded gateway ([`open_host`]); `None` with
/// `--gateway`, where a shared `policyc serve` decides.
pub async fn run(config: ProxyConfig, host: Option<Arc<Host>>) -> Result<(), McpError> {
    let visibility = visibility(&config)?;
    let decider: Arc<dyn Decider> = match (&config.gateway, host) {
        (Some(remote), _) => Arc::new(Remote::new(remote)),
        (None, Some(host)) => Arc::new(Local(host.gateway.clone())),
        (None, None) => {
            return Err(McpError::Config(
                "no gateway: give `--gateway URL` or open the embedded one".into(),
            ))
        }
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
        let keys_path = config
            .keys
            .clone()
            .unwrap_or_else(|| config.data.join("keys.toml"));
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
    let session = new_session_id().map_err(|e| McpError::Gateway(e.to_string()))?;
    eprintln!(
        "toolgate: session {session} of tenant `{}` ({})",
        config.trusted.tenant,
        turns_hint(&config, &session)
    );
    let (relay, connection) = connect(&config.upstream, &scoped, |to_upstream| {
        let trusted = Trusted {
            session: Some(session),
            ..config.trusted.clone()
        };
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

/// Where the user's turns of `session` are recorded, for the line the
/// proxy prints at start.
fn turns_hint(config: &ProxyConfig, session: &str) -> String {
    let route = format!("POST /v1/sessions/{session}/turns");
    match (&config.gateway, &config.admin_listen) {
        (Some(remote), _) => format!("user turns: {route} on {}", remote.url),
        (None, Some(_)) => format!("user turns: {route} on --admin-listen"),
        (None, None) => "no user turns without --admin-listen".into(),
    }
}

/// The embedded gateway under `--data`, with its background tasks (leases
/// whose upstream never answered journaled `result_missing`). The policy is
/// checked for the proxy first (it must check clean and have a block for
/// the proxy's agent), so a policy that cannot serve stops the proxy here.
pub async fn open_host(config: &ProxyConfig) -> Result<Arc<Host>, McpError> {
    visibility(config)?;
    let host = Host::open(HostConfig {
        data: config.data.clone(),
        policy: config.policy.clone(),
        shadow_policy: None,
        fsync: config.fsync,
        limits: Limits::default(),
        store: config.store.clone(),
    })
    .await
    .map_err(|e| match e {
        toolgate_runtime::host::HostError::Policy { .. } => McpError::Policy(e.to_string()),
        toolgate_runtime::host::HostError::Store(_) => McpError::Config(e.to_string()),
        toolgate_runtime::host::HostError::Data(_) => McpError::Gateway(e.to_string()),
    })?;
    let host = Arc::new(host);
    // No SIGHUP reload: the tool list (`Visibility`) is computed once at start.
    host.spawn_sweeps();
    Ok(host)
}

/// The policy, checked: the tool visibility of the proxy's agent.
fn visibility(config: &ProxyConfig) -> Result<Visibility, McpError> {
    let path = &config.policy;
    let text = std::fs::read_to_string(path)
        .map_err(|e| McpError::Config(format!("cannot read `{}`: {e}", path.display())))?;
    let file = path.display().to_string();
    let refused = |why: String| McpError::Policy(format!("`{file}` does not check clean: {why}"));
    let now = toolgate_runtime::host::now_ms();
    if let Err(r) = toolgate_runtime::host::policy::compile(&text, &file, now) {
        let first = r.diagnostics.iter().find(|d| d["severity"] == "error");
        return Err(refused(
            first.map_or_else(String::new, |d| d["message"].to_string()),
        ));
    }
    let parsed = toolgate_syntax::parse(&text);
    let checked = toolgate_check::check(&parsed.file, &text);
    let ir = checked
        .policy
        .ok_or_else(|| refused("it has errors".into()))?;
    let agent = &config.trusted.agent;
    Visibility::of(&ir, agent).ok_or_else(|| {
        McpError::Policy(format!(
            "`{file}` has no `agent {agent} {{ }}` block: every call would be denied"
        ))
    })
}
