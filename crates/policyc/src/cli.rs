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
}

#[derive(Debug, Args)]
pub(crate) struct ReplayArgs {
    /// The policy file.
    pub policy: PathBuf,
    /// The trace: JSON Lines of calls and events (approve, reject, kill_switch).
    #[arg(long)]
    pub trace: PathBuf,
    /// Where to write the audit journal of the replay (default: a temporary file, removed after).
    /// An existing file is refused unless `--force`.
    #[arg(long)]
    pub audit: Option<PathBuf>,
    /// Replace the `--audit` file if it exists.
    #[arg(long, requires = "audit")]
    pub force: bool,
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
}

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// The journal (JSON Lines).
    pub log: PathBuf,
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
