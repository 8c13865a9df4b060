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
    /// Audit journal tools.
    #[command(subcommand)]
    Audit(AuditCommand),
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

#[derive(Debug, Subcommand)]
pub(crate) enum AuditCommand {
    /// Check an audit journal's hash chain; report the first broken record (exit 1) or the head.
    Verify {
        /// The journal (JSON Lines).
        log: PathBuf,
    },
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
    #[arg(
        long,
        conflicts_with = "requests",
        required_unless_present = "requests"
    )]
    pub request: Option<PathBuf>,
    /// A JSON Lines file of requests (`-` for standard input); one explanation per line.
    #[arg(long)]
    pub requests: Option<PathBuf>,
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
