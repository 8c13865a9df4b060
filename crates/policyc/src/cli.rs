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
    /// Run `*.test.toml` files: cases, scenarios through the gateway, never-assertions
    /// (exit 0: all pass, 1: a test failed, 2: usage or a broken test file).
    Test(TestArgs),
    /// The permission matrix: what each agent may do with each tool, and by which rule.
    Show(ShowArgs),
    /// What a policy change grants, per agent and tool, with a witness request per escalation.
    Diff(DiffArgs),
    /// Convert the YAML safe-default configuration into a policy (printed on stdout).
    Import(ImportArgs),
    /// Declare an MCP server's tools in a new policy, from its live `tools/list` or a JSON file
    /// (exit 0: written, 1: the result does not check clean, 2: usage, I/O or the server failed).
    McpImport(McpImportArgs),
    /// Audit journal tools.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Run the gateway as an HTTP service (see docs/server.md).
    Serve(Box<ServeArgs>),
    /// Put an MCP server behind a policy: an MCP proxy with the gateway embedded (see docs/mcp.md).
    McpProxy(Box<crate::mcp_proxy::McpProxyArgs>),
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
    /// Approve the held call you reviewed: `--digest` is the digest `show`
    /// and `list` print (on a terminal, without it, the call is shown and you confirm).
    Approve {
        /// The approval (call) id.
        id: String,
        /// The digest `show` and `list` printed for the call you reviewed (or
        /// its first 12 hex digits or more): a call held as ID now with other
        /// arguments, or held again since, is refused.
        #[arg(long)]
        digest: Option<String>,
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
    /// Read these journals (one per replica) instead of a server, merged by time.
    #[arg(long = "journal", value_name = "FILE", conflicts_with_all = ["follow", "since"])]
    pub journals: Vec<PathBuf>,
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
    /// Requests handled at once; more wait (default 1024). Reads of a call's
    /// state have a budget of their own of this size, half of it for long polls.
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Seconds a connection has to send a request's headers, idle keep-alive
    /// connections too, before it is closed (default 10).
    #[arg(long)]
    pub header_timeout: Option<u64>,
    /// Connections open at once; more wait to be accepted (default 1024).
    #[arg(long)]
    pub max_connections: Option<usize>,
    /// When the journal syncs to disk: `writes` (default: every record before a
    /// state change or a write's execution; a read's records within 10 ms),
    /// `always` or `never`.
    #[arg(long)]
    pub fsync: Option<String>,
    /// Seconds a service has to report an allowed call's result before it is journaled as `result_missing` (default 300).
    #[arg(long)]
    pub result_timeout: Option<u64>,
    /// Where the gateway's state lives (`--store`, `--store-prefix`, `--redis-down`, `--replica-id`).
    #[command(flatten)]
    pub state: StoreArgs,
}

/// Where a gateway's state lives: shared by `serve` and `mcp-proxy`.
#[derive(Debug, Args)]
pub(crate) struct StoreArgs {
    /// Where the gateway's state lives: `memory` (default: this process,
    /// rebuilt from its journal) or `redis://[user:password@]host:port/db`
    /// (`rediss://` for TLS), shared by every replica on it.
    #[arg(long)]
    pub store: Option<String>,
    /// Prefix of every Redis key (default `toolgate`).
    #[arg(long)]
    pub store_prefix: Option<String>,
    /// While Redis does not answer: `deny-all` (default) or `reads-only`
    /// (reads that need no state keep their decisions).
    #[arg(long)]
    pub redis_down: Option<String>,
    /// This replica's id, written into every record (default: a random id kept in `DATA/replica.id`).
    #[arg(long)]
    pub replica_id: Option<String>,
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
    /// The policy file (or `--policy`).
    #[arg(required_unless_present = "policy_flag")]
    pub policy: Option<PathBuf>,
    /// The policy file.
    #[arg(long = "policy", conflicts_with = "policy")]
    pub policy_flag: Option<PathBuf>,
    /// The trace: JSON Lines of calls and events (approve, reject, kill_switch).
    #[arg(long, required_unless_present = "journal", conflicts_with = "journal")]
    pub trace: Option<PathBuf>,
    /// Shadow replay: re-decide every decision record of this audit journal with the policy
    /// and report the flips (exit 1 when a call would become more permissive).
    #[arg(long)]
    pub journal: Option<PathBuf>,
    /// With `--journal`: exit 0 even when calls would become more permissive.
    #[arg(long, requires = "journal")]
    pub allow_escalation: bool,
    /// With `--journal`: output format.
    #[arg(long, value_enum, default_value_t = ShadowFormat::Human)]
    pub format: ShadowFormat,
    /// Where to write the audit journal of the replay (default: a temporary file, removed after).
    /// An existing file is refused unless `--force`.
    #[arg(long)]
    pub audit: Option<PathBuf>,
    /// Replace the `--audit` file if it exists.
    #[arg(long, requires = "audit")]
    pub force: bool,
}

#[derive(Debug, Args)]
pub(crate) struct TestArgs {
    /// Test files or directories (searched recursively for `*.test.toml`).
    #[arg(default_value = ".")]
    pub paths: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = TestFormat::Human)]
    pub format: TestFormat,
}

/// How `test` prints its results.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum TestFormat {
    /// One line per test and a summary.
    Human,
    /// One JSON object.
    Json,
    /// JUnit XML.
    Junit,
}

#[derive(Debug, Args)]
pub(crate) struct ShowArgs {
    /// The policy file.
    pub policy: PathBuf,
    /// Only this agent.
    #[arg(long)]
    pub agent: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ShowFormat::Human)]
    pub format: ShowFormat,
}

/// How a shadow replay prints its report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum ShadowFormat {
    /// Counts and example call ids.
    Human,
    /// One JSON object.
    Json,
}

/// How `show` prints the matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum ShowFormat {
    /// One block per agent, one line per tool.
    Human,
    /// One JSON object.
    Json,
    /// A Markdown table (tools × agents), for a pull-request comment.
    Markdown,
}

#[derive(Debug, Args)]
pub(crate) struct DiffArgs {
    /// The policy before the change.
    pub old: PathBuf,
    /// The policy after it.
    pub new: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = DiffFormat::Human)]
    pub format: DiffFormat,
    /// Exit 1 when there is a change of this kind.
    #[arg(long, value_enum)]
    pub fail_on: Option<FailOn>,
    /// A JSON object: context fields the witness search starts from (e.g. `{"tenant":"acme"}`).
    #[arg(long)]
    pub context: Option<String>,
}

/// How `diff` prints the changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum DiffFormat {
    /// One paragraph per change and a summary.
    Human,
    /// One JSON object.
    Json,
    /// SARIF 2.1.0: escalations at the NEW policy's lines.
    Sarif,
}

/// Which changes fail `diff`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum FailOn {
    /// Any escalation (proven or not).
    Escalation,
}

#[derive(Debug, Args)]
pub(crate) struct ImportArgs {
    /// The YAML configuration.
    pub config: PathBuf,
    /// The agent the policy declares (the YAML format has none).
    #[arg(long, default_value = "assistant")]
    pub agent: String,
}

#[derive(Debug, Args)]
pub(crate) struct McpImportArgs {
    /// A `tools/list` result (`{"tools": [...]}`) or a list of tools, as JSON (`-`: stdin).
    #[arg(long, value_name = "TOOLS_JSON")]
    pub from: Option<PathBuf>,
    /// Write the policy to this file instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// The policy's name (default: the server's name, or the file's stem).
    #[arg(long)]
    pub name: Option<String>,
    /// The MCP server to start over stdio, and its arguments (after `--`).
    #[arg(last = true, value_name = "SERVER_COMMAND")]
    pub command: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum AuditCommand {
    /// Check an audit journal (every segment): its hash chain, and against signed checkpoints or a
    /// head kept elsewhere (exit 0: clean, 1: findings, 2: usage or I/O error).
    Verify(VerifyArgs),
    /// Create a signing key for checkpoints (mode 0600) and print its public key.
    Keygen {
        /// Where to write the key (never over an existing file); the public key goes to `KEY.pub`.
        #[arg(long, default_value = "audit.key")]
        out: PathBuf,
    },
    /// Remove a torn last record (a write cut off by a crash or a full disk), saving the bytes it
    /// cuts to a backup next to the journal; any other problem is reported and left alone.
    Repair {
        /// The journal (JSON Lines).
        log: PathBuf,
    },
    /// Print `SEQ:HASH` of a journal's last record (keep it elsewhere; pass it to `verify --head`).
    Head {
        /// The journal (JSON Lines).
        log: PathBuf,
    },
    /// Print a running server's journal records (an operator key in `TOOLGATE_KEY`).
    Tail(AuditTailArgs),
}

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// The journals (JSON Lines), one per replica; each is verified and reported on its own.
    #[arg(required = true, num_args = 1..)]
    pub logs: Vec<PathBuf>,
    /// The checkpoint file to check the journal against.
    #[arg(long, requires = "public_key")]
    pub checkpoints: Option<PathBuf>,
    /// The public key the checkpoints are signed with: 64 hex digits, or a file holding them.
    #[arg(long)]
    pub public_key: Option<String>,
    /// A head kept elsewhere, `SEQ:HASH` (from `policyc audit head`).
    #[arg(long)]
    pub head: Option<String>,
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
    /// The time a policy's `now` reads, RFC 3339 with an offset (default: the system clock).
    #[arg(long, value_name = "RFC3339")]
    pub now: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct ExplainArgs {
    /// The policy file.
    pub policy: PathBuf,
    /// A file holding one request as JSON.
    #[arg(
        long,
        conflicts_with = "requests",
        required_unless_present = "requests"
    )]
    pub request: Option<PathBuf>,
    /// A JSON Lines file of requests (`-` for standard input); one explanation per line.
    #[arg(long)]
    pub requests: Option<PathBuf>,
    /// The time a policy's `now` reads, RFC 3339 with an offset (default: the system clock).
    #[arg(long, value_name = "RFC3339")]
    pub now: Option<String>,
    /// A session as JSON (`turns`, `outputs`, `endorsed`, `calls`) the
    /// requests are made in (default: none, so provenance and session
    /// conditions cannot be evaluated).
    #[arg(long, value_name = "FILE")]
    pub session: Option<PathBuf>,
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
    /// The base of SARIF rules' `helpUri` (a code's page is `BASE#code`).
    #[arg(long, default_value = crate::diag::HELP_BASE)]
    pub help_base_uri: String,
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
    /// With `--check`: print a unified diff of each change instead of the file name.
    #[arg(long, requires = "check")]
    pub diff: bool,
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
    /// GitHub Actions workflow commands (`::error file=…`) on stdout.
    Github,
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
