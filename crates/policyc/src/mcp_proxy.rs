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
        store: toolgate_server::store::StoreSettings {
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
    let result = rt.block_on(toolgate_mcp::run(config));
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
