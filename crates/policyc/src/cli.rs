//! Command-line arguments.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Toolgate policy compiler: check and format `.policy` files.
#[derive(Debug, Parser)]
#[command(name = "policyc", version, about)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Check policy files for errors and warnings (exit 0: clean, 1: errors, 2: usage or I/O error).
    Check(CheckArgs),
    /// Rewrite policy files in the canonical layout.
    Fmt(FmtArgs),
    /// Decide requests against a policy and print each decision as one JSON line.
    Eval(EvalArgs),
    /// Show, for one request, every rule considered and why it matched or not.
    Explain(ExplainArgs),
    /// Run a recorded trace through the full gateway with a simulated clock.
    Replay(ReplayArgs),
    /// Audit journal tools.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Run the gateway as an HTTP service (see docs/server.md).
    Serve(Box<ServeArgs>),
    /// Manage the API keys of `policyc serve`.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Review, approve or reject held calls on a running server (an approver key in `TOOLGATE_KEY`).
    #[command(subcommand)]
    Approvals(ApprovalsCommand),
    /// Stop or resume tool calls on a running server (an operator key in `TOOLGATE_KEY`).
    #[command(subcommand)]
    KillSwitch(KillSwitchCommand),
    /// A running server at a glance: policy, uptime, pending approvals, kill switch, journal head.
    Status(Conn),
}

/// Which server to talk to; the bearer key comes from `TOOLGATE_KEY` (never a flag,
/// so it stays out of the process list). Exit 0: done, 1: refused, 2: usage or connection.
#[derive(Debug, Args)]
pub(crate) struct Conn {
    /// The server's base URL.
    #[arg(long, env = "TOOLGATE_URL", default_value = "http://127.0.0.1:8181")]
    pub url: String,
    /// Print JSON (for scripts) instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ApprovalsCommand {
    /// List the calls waiting for approval.
    List {
        /// Only this tenant.
        #[arg(long)]
        tenant: Option<String>,
        /// Only this agent.
        #[arg(long)]
        agent: Option<String>,
        /// Only this tool.
        #[arg(long)]
        tool: Option<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Show one held call: arguments as journaled, digest, rule, reason, approvals so far.
    Show {
        /// The approval (call) id.
        id: String,
        /// Its tenant (needed when calls of several tenants share the id).
        #[arg(long)]
        tenant: Option<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Approve a held call: the arguments digest approved is the one `show` prints.
    Approve {
        /// The approval (call) id.
        id: String,
        /// Why (journaled).
        #[arg(long)]
        reason: String,
        /// Its tenant.
        #[arg(long)]
        tenant: Option<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Reject a held call.
    Reject {
        /// The approval (call) id.
        id: String,
        /// Why (journaled).
        #[arg(long)]
        reason: String,
        /// Its tenant.
        #[arg(long)]
        tenant: Option<String>,
        #[command(flatten)]
        conn: Conn,
    },
}

/// The scope of a kill switch.
#[derive(Debug, Args)]
pub(crate) struct KillArgs {
    /// Only this tenant (default: every tenant).
    #[arg(long)]
    pub tenant: Option<String>,
    /// Only this agent (default: every agent).
    #[arg(long)]
    pub agent: Option<String>,
    /// Stop reads too, not only writes.
    #[arg(long)]
    pub all_tools: bool,
    /// Why (journaled).
    #[arg(long)]
    pub reason: String,
    #[command(flatten)]
    pub conn: Conn,
}

#[derive(Debug, Subcommand)]
pub(crate) enum KillSwitchCommand {
    /// Stop tool calls in a scope (writes, or everything with `--all-tools`).
    Engage(KillArgs),
    /// Resume tool calls in a scope (the same scope as engaged).
    Release(KillArgs),
    /// List the engaged kill switches.
    Status(Conn),
}

#[derive(Debug, Args)]
pub(crate) struct AuditTailArgs {
    /// From this long ago (`30m`, `2h`) or this time (ms since the epoch).
    #[arg(long)]
    pub since: Option<String>,
    /// Only this record kind (`decision`, `approval_granted`, `kill_switch`, ...).
    #[arg(long)]
    pub kind: Option<String>,
    /// Only this call id.
    #[arg(long)]
    pub call: Option<String>,
    /// Only this tenant.
    #[arg(long)]
    pub tenant: Option<String>,
    /// Print only the last N matching records first (0: all).
    #[arg(short = 'n', long, default_value_t = 20)]
    pub lines: usize,
    /// Keep printing new records as they are journaled (until interrupted).
    #[arg(long)]
    pub follow: bool,
    #[command(flatten)]
    pub conn: Conn,
}

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// The policy file.
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// The data directory: journal, digest key and keys (default `./toolgate-data`).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Where to listen (default `127.0.0.1:8181`; port 0 picks a free port).
    #[arg(long)]
    pub listen: Option<String>,
    /// A config file (TOML) with the same settings; flags win.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The keys file (default `DATA/keys.toml`).
    #[arg(long)]
    pub keys: Option<PathBuf>,
    /// A shadow policy: decided beside the live one; differences are journaled and counted.
    #[arg(long)]
    pub shadow_policy: Option<PathBuf>,
    /// TLS certificate chain (PEM).
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Allow a non-loopback `--listen` without TLS (a proxy in front terminates it).
    #[arg(long)]
    pub insecure_listen: bool,
    /// Largest request body in bytes (default 1048576).
    #[arg(long)]
    pub max_body: Option<usize>,
    /// Request timeout in seconds (default 60).
    #[arg(long)]
    pub timeout: Option<u64>,
    /// Requests handled at once; more wait (default 1024).
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// When the journal syncs to disk: `always` (default) or `never`.
    #[arg(long)]
    pub fsync: Option<String>,
    /// Seconds a service has to report an allowed call's result before it is journaled as `result_missing` (default 300).
    #[arg(long)]
    pub result_timeout: Option<u64>,
}

/// Where the keys file is.
#[derive(Debug, Args)]
pub(crate) struct KeysFile {
    /// The data directory whose `keys.toml` to use (default `./toolgate-data`).
    #[arg(long, conflicts_with = "keys")]
    pub data: Option<PathBuf>,
    /// The keys file.
    #[arg(long)]
    pub keys: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum KeysCommand {
    /// Create a key; its secret is printed once, alone on the last line of standard output.
    Add {
        /// Its name (an approver's identity).
        name: String,
        /// `service`, `approver` or `operator`.
        #[arg(long)]
        role: String,
        /// Tenants it may act for (comma-separated; default: all).
        #[arg(long, value_delimiter = ',')]
        tenants: Vec<String>,
        /// Envs it may act in (default: all).
        #[arg(long, value_delimiter = ',')]
        envs: Vec<String>,
        /// Agents it may speak for (service keys; default: all).
        #[arg(long, value_delimiter = ',')]
        agents: Vec<String>,
        /// The approver's groups.
        #[arg(long, value_delimiter = ',')]
        groups: Vec<String>,
        #[command(flatten)]
        file: KeysFile,
    },
    /// List the keys (names, roles, scopes; never secrets).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        file: KeysFile,
    },
    /// Remove a key; the server stops accepting it at once.
    Revoke {
        /// Its name.
        name: String,
        #[command(flatten)]
        file: KeysFile,
    },
}

#[derive(Debug, Args)]
pub(crate) struct ReplayArgs {
    /// The policy file.
    pub policy: PathBuf,
    /// The trace: JSON Lines of calls and events (approve, reject, kill_switch).
    #[arg(long)]
    pub trace: PathBuf,
    /// Where to write the audit journal of the replay (default: a temporary file, removed after).
    #[arg(long)]
    pub audit: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum AuditCommand {
    /// Check an audit journal's hash chain; report the first broken record (exit 1) or the head.
    Verify {
        /// The journal (JSON Lines).
        log: PathBuf,
    },
    /// Print a running server's journal records (an operator key in `TOOLGATE_KEY`).
    Tail(AuditTailArgs),
}

#[derive(Debug, Args)]
pub(crate) struct EvalArgs {
    /// The policy file.
    pub policy: PathBuf,
    /// A file holding one request as JSON.
    #[arg(
        long,
        conflicts_with = "requests",
        required_unless_present = "requests"
    )]
    pub request: Option<PathBuf>,
    /// A JSON Lines file of requests (`-` for standard input); one decision line per input line.
    #[arg(long)]
    pub requests: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct ExplainArgs {
    /// The policy file.
    pub policy: PathBuf,
    /// A file holding one request as JSON.
    #[arg(long)]
    pub request: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    /// Files or directories (searched recursively for `*.policy`).
    #[arg(default_value = ".")]
    pub paths: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// Treat warnings as errors (exit 1 when there are any).
    #[arg(long)]
    pub deny_warnings: bool,
    /// Colour in human output.
    #[arg(long, value_enum, default_value_t = Color::Auto)]
    pub color: Color,
}

#[derive(Debug, Args)]
pub(crate) struct FmtArgs {
    /// Files or directories (searched recursively for `*.policy`).
    #[arg(default_value = ".")]
    pub paths: Vec<PathBuf>,
    /// Change nothing; list the files that would change and exit 1 if any would.
    #[arg(long)]
    pub check: bool,
    /// Colour in error output.
    #[arg(long, value_enum, default_value_t = Color::Auto)]
    pub color: Color,
}

/// How `check` prints its findings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// miette's graphical report on stderr.
    Human,
    /// One JSON object on stdout.
    Json,
    /// SARIF 2.1.0 on stdout.
    Sarif,
}

/// Whether to colour human output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Color {
    /// When stderr is a terminal and `NO_COLOR` is unset.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}
