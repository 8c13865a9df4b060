//! `policyc mcp-proxy`: a thin wrapper over toolgate-mcp.

use crate::Exit;
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;
use toolgate_mcp::config::{parse_ctx, ProxyConfig, RemoteGateway, Trusted, Upstream};
use toolgate_runtime::journal::Fsync;

/// `policyc mcp-proxy`'s flags.
#[derive(Debug, Args)]
pub(crate) struct McpProxyArgs {
    /// The policy file.
    #[arg(long)]
    pub policy: PathBuf,
    /// The agent every call is made as (a policy `agent` block).
    #[arg(long)]
    pub agent: String,
    /// The tenant every call is made for.
    #[arg(long)]
    pub tenant: String,
    /// The environment.
    #[arg(long)]
    pub env: String,
    /// A declared context field, `KEY=VALUE` (repeatable).
    #[arg(long = "ctx", value_parser = parse_ctx)]
    pub ctx: Vec<(String, serde_json::Value)>,
    /// The data directory: journal, digest key, signing key (default `./toolgate-data`).
    #[arg(long, default_value = "./toolgate-data")]
    pub data: PathBuf,
    /// Serve Streamable HTTP at `http://ADDR/mcp` instead of stdio (loopback; callers bring a service key).
    #[arg(long)]
    pub listen: Option<String>,
    /// Serve the approvals and kill-switch API (the `policyc serve` router) on this loopback address.
    #[arg(long)]
    pub admin_listen: Option<String>,
    /// The keys file of the admin API and of `--listen`'s callers (default `DATA/keys.toml`).
    #[arg(long)]
    pub keys: Option<PathBuf>,
    /// Hold a call needing approval until it is approved, rejected or this long passes (`30s`, `5m`).
    #[arg(long, value_parser = parse_duration)]
    pub wait_approval: Option<Duration>,
    /// The upstream's credentials by trusted scope (env vars for a command, headers for a URL; docs/mcp.md).
    #[arg(long)]
    pub credentials: Option<PathBuf>,
    /// A variable of this process's environment the upstream command also gets (repeatable; it
    /// gets only PATH, HOME, LANG, LC_ALL, LC_CTYPE, TZ, TMPDIR and `--credentials` otherwise).
    #[arg(long = "pass-env", value_name = "NAME")]
    pub pass_env: Vec<String>,
    /// With `--listen`: `require approval from "user"` may be answered by the HTTP client through
    /// elicitation (only when that client is an app a human answers; by default such calls stay
    /// held for the approvals API).
    #[arg(long, requires = "listen")]
    pub listen_elicitation: bool,
    /// With `--listen`: open sessions at most per service key (past it, the key's least recently
    /// used session without an open stream is ended; with all streaming, a new one is refused).
    #[arg(long, default_value_t = toolgate_mcp::http_in::MAX_SESSIONS_PER_KEY as u64, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub max_sessions_per_key: u64,
    /// A Streamable HTTP upstream instead of a command.
    #[arg(long, conflicts_with = "upstream")]
    pub upstream_url: Option<String>,
    /// Decide with a shared `policyc serve` at this URL instead of an embedded gateway.
    #[arg(long, requires = "key", conflicts_with = "admin_listen")]
    pub gateway: Option<String>,
    /// The service key for `--gateway` (or `TOOLGATE_KEY`).
    #[arg(long, env = "TOOLGATE_KEY", hide_env_values = true)]
    pub key: Option<String>,
    /// When the journal syncs to disk: `writes` (default: every record before a
    /// state change or a write's execution; a read's records within 10 ms),
    /// `always` or `never`.
    #[arg(long, default_value = "writes", value_parser = ["always", "writes", "never"])]
    pub fsync: String,
    /// Forward the client's roots to the upstream (off: they would widen its reach).
    #[arg(long)]
    pub forward_roots: bool,
    /// Where the embedded gateway's state lives (`--store redis://...` shares it with other proxies and `policyc serve` replicas).
    #[command(flatten)]
    pub state: crate::cli::StoreArgs,
    /// The upstream MCP server's command and arguments (stdio).
    #[arg(last = true, required_unless_present = "upstream_url")]
    pub upstream: Vec<String>,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let (digits, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a duration like `30s` or `5m`"))?;
    let secs = match unit {
        "ms" => return Ok(Duration::from_millis(n)),
        "" | "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        _ => return Err(format!("`{text}` is not a duration like `30s` or `5m`")),
    };
    Ok(Duration::from_secs(secs))
}

/// `policyc mcp-proxy`.
pub(crate) fn run(args: McpProxyArgs) -> Exit {
    let config = ProxyConfig {
        policy: args.policy,
        trusted: Trusted {
            agent: args.agent,
            tenant: args.tenant,
            env: args.env,
            fields: args.ctx.into_iter().collect(),
            // One per downstream connection, made by the transport.
            session: None,
        },
        data: args.data,
        upstream: match args.upstream_url {
            Some(url) => Upstream::Url(url),
            None => Upstream::Command(args.upstream),
        },
        credentials: args.credentials,
        pass_env: args.pass_env,
        listen_elicitation: args.listen_elicitation,
        max_sessions_per_key: usize::try_from(args.max_sessions_per_key).unwrap_or(1),
        // clap accepts only the three names.
        fsync: Fsync::from_name(&args.fsync).unwrap_or(Fsync::Always),
        gateway: args.gateway.map(|url| RemoteGateway {
            url,
            key: args.key.unwrap_or_default(),
        }),
        listen: args.listen,
        admin_listen: args.admin_listen,
        keys: args.keys,
        wait_approval: args.wait_approval,
        forward_roots: args.forward_roots,
        store: toolgate_runtime::host::store::StoreSettings {
            url: args.state.store,
            prefix: args.state.store_prefix,
            down: args.state.redis_down,
            replica: args.state.replica_id,
        },
    };
    let Ok(rt) = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    else {
        eprintln!("error: cannot start the async runtime");
        return Exit::Usage;
    };
    let result = rt.block_on(start(config));
    // A blocked read of stdin must not hold the exit; dropping the tasks
    // closes the journal (its writer thread flushes and joins).
    rt.shutdown_timeout(Duration::from_millis(200));
    match result {
        Ok(()) => Exit::Ok,
        Err(e) => {
            eprintln!("error: {e}");
            Exit::Usage
        }
    }
}

/// The embedded gateway (unless `--gateway`), the admin API over it when
/// asked (the HTTP door's router, composed here: the MCP door does not
/// depend on the HTTP door), then the proxy.
async fn start(config: ProxyConfig) -> Result<(), String> {
    let host = match &config.gateway {
        Some(_) => None,
        None => Some(
            toolgate_mcp::open_host(&config)
                .await
                .map_err(|e| e.to_string())?,
        ),
    };
    if let (Some(host), Some(listen)) = (&host, &config.admin_listen) {
        let keys = config
            .keys
            .clone()
            .unwrap_or_else(|| config.data.join("keys.toml"));
        serve_admin(listen, host.clone(), &keys).await?;
    }
    toolgate_mcp::run(config, host)
        .await
        .map_err(|e| e.to_string())
}

/// Serves the gateway service's router (approvals, kill switch, audit) over
/// the proxy's host on a loopback address.
async fn serve_admin(
    listen: &str,
    host: std::sync::Arc<toolgate_runtime::host::Host>,
    keys: &std::path::Path,
) -> Result<(), String> {
    use toolgate_api::listen::{check_listen, serve_http, HttpLimits};
    let addr = check_listen(listen, false, false).map_err(|e| format!("`--admin-listen`: {e}"))?;
    let keys = toolgate_runtime::host::keys::Keyring::open(keys.to_path_buf())
        .map_err(|e| format!("the admin API's keys: {e}"))?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on `{addr}`: {e}"))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    eprintln!("toolgate: admin API on http://{bound}");
    let limits = HttpLimits::default();
    let app = std::sync::Arc::new(toolgate_server::App::new(host, keys, limits));
    let router = toolgate_server::router(app, limits);
    tokio::spawn(serve_http(listener, router, limits, std::future::pending()));
    Ok(())
}
