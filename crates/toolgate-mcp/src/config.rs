//! What the proxy is given: the policy, the trusted context (from its own
//! flags, never from the model or the upstream), the upstream and the
//! operator's options.

use serde_json::{Map, Value as Json};
use std::path::PathBuf;
use std::time::Duration;

/// The trusted context every call through this proxy is decided with.
#[derive(Clone, Debug)]
pub struct Trusted {
    /// The agent (a policy `agent` block).
    pub agent: String,
    /// The tenant.
    pub tenant: String,
    /// The environment.
    pub env: String,
    /// The policy's declared `context` fields (`--ctx KEY=VALUE`).
    pub fields: Map<String, Json>,
    /// The Toolgate session of one downstream connection (provenance and
    /// session conditions read it; every `tools/call` result is observed in
    /// it): set by the transport for each connection ([`new_session_id`]:
    /// the stdio process, each `--listen` MCP session). `None` in the
    /// proxy's configuration, before any connection: a call without a
    /// session fails every provenance condition closed.
    pub session: Option<String>,
}

/// A new Toolgate session id: `s_` and 24 random hex digits (96 bits), so
/// that nobody can name another connection's session by guessing. It is not
/// a secret (it is journaled and printed): a user turn for it still needs a
/// service key of its tenant.
pub fn new_session_id() -> Result<String, toolgate_runtime::gateway::GatewayError> {
    let token = toolgate_runtime::gateway::random_token()?;
    Ok(format!("s_{}", token.get(..24).unwrap_or(&token)))
}

/// Where the upstream MCP server is.
#[derive(Clone, Debug)]
pub enum Upstream {
    /// A child process speaking MCP over stdio: the command and its arguments.
    Command(Vec<String>),
    /// A Streamable HTTP endpoint (`--upstream-url`).
    Url(String),
}

/// A shared `policyc serve` that decides instead of an embedded gateway.
#[derive(Clone, Debug)]
pub struct RemoteGateway {
    /// Its base URL.
    pub url: String,
    /// A service key for it.
    pub key: String,
}

/// Everything `policyc mcp-proxy` takes.
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    /// The policy file.
    pub policy: PathBuf,
    /// The trusted context.
    pub trusted: Trusted,
    /// The data directory (journal, digest key, signing key).
    pub data: PathBuf,
    /// The upstream server.
    pub upstream: Upstream,
    /// Serve Streamable HTTP on this address instead of stdio.
    pub listen: Option<String>,
    /// Mount the gateway service's approvals and kill-switch API here.
    pub admin_listen: Option<String>,
    /// The keys file of the admin API (default `DATA/keys.toml`).
    pub keys: Option<PathBuf>,
    /// Hold a call needing approval this long for its approval.
    pub wait_approval: Option<Duration>,
    /// Forward the client's `roots` capability and `roots/list` upstream.
    pub forward_roots: bool,
    /// The credentials file.
    pub credentials: Option<PathBuf>,
    /// Variables of the proxy's environment a stdio upstream also gets (`--pass-env`).
    pub pass_env: Vec<String>,
    /// With `--listen`: the HTTP client is an application its human user
    /// answers, so `require approval from "user"` may be asked of it by
    /// elicitation (`--listen-elicitation`; off by default: the HTTP
    /// client is the agent's process, whose answer is not a human's).
    pub listen_elicitation: bool,
    /// With `--listen`: open sessions at most per service key.
    pub max_sessions_per_key: usize,
    /// Decide with a shared `policyc serve` instead of an embedded gateway.
    pub gateway: Option<RemoteGateway>,
    /// When the embedded gateway's journal syncs to disk (`--fsync`; `policyc mcp-proxy`'s
    /// default is `Writes`: see `journal::Fsync`).
    pub fsync: toolgate_runtime::journal::Fsync,
    /// Where the embedded gateway's state lives (`--store`; default: in
    /// memory, rebuilt from the journal under `--data`).
    pub store: toolgate_runtime::host::store::StoreSettings,
}

/// Parses `KEY=VALUE` (`--ctx`); the value is JSON when it parses as JSON
/// (numbers, booleans), a string otherwise.
pub fn parse_ctx(item: &str) -> Result<(String, Json), String> {
    let (key, value) = item
        .split_once('=')
        .ok_or_else(|| format!("`--ctx {item}` is not `KEY=VALUE`"))?;
    if key.is_empty() {
        return Err(format!("`--ctx {item}` has no key"));
    }
    let value = match serde_json::from_str::<Json>(value) {
        Ok(v @ (Json::Number(_) | Json::Bool(_))) => v,
        _ => Json::String(value.to_string()),
    };
    Ok((key.to_string(), value))
}

#[cfg(test)]
mod tests {
    use super::parse_ctx;
    use serde_json::json;

    #[test]
    fn ctx_values_are_numbers_and_booleans_when_they_parse_as_such() {
        assert_eq!(parse_ctx("region=eu"), Ok(("region".into(), json!("eu"))));
        assert_eq!(parse_ctx("n=5"), Ok(("n".into(), json!(5))));
        assert_eq!(parse_ctx("b=true"), Ok(("b".into(), json!(true))));
        assert_eq!(parse_ctx("root=/a=b/"), Ok(("root".into(), json!("/a=b/"))));
        assert_eq!(parse_ctx("q=\"x\""), Ok(("q".into(), json!("\"x\""))));
        assert!(parse_ctx("novalue").is_err());
        assert!(parse_ctx("=x").is_err());
    }
}
