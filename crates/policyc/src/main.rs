//! `policyc`: the Toolgate policy compiler's command line. This file only
//! parses arguments and dispatches; each command lives in its own module.

/// `println!` for every module below, in place of std's, which panics when
/// stdout is closed (`policyc audit tail | head -1`): see [`write_stdout`].
macro_rules! println {
    () => {
        $crate::write_stdout(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::write_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` for every module below; see [`println!`].
macro_rules! print {
    ($($arg:tt)*) => {
        $crate::write_stdout(format_args!($($arg)*))
    };
}

mod audit;
mod check;
mod cli;
mod client;
mod diag;
mod diff;
mod eval;
mod files;
mod fmt;
mod import;
mod lines;
mod mcp_import;
mod mcp_proxy;
mod ops;
mod replay;
mod serve;
mod session_file;
mod shadow;
mod show;
mod testing;

use clap::Parser as _;
use std::process::{ExitCode, Termination};

/// The process exit status, one meaning each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Exit {
    /// Nothing to report (warnings allowed unless `--deny-warnings`).
    Ok,
    /// Findings: errors in a policy, or files `fmt --check` would change.
    Findings,
    /// Bad usage or an I/O error: the tool could not do its job.
    Usage,
}

impl Termination for Exit {
    fn report(self) -> ExitCode {
        ExitCode::from(match self {
            Exit::Ok => 0,
            Exit::Findings => 1,
            Exit::Usage => 2,
        })
    }
}

/// Writes to stdout. A reader that closed it (`| head`) has read all it
/// wanted: the program ends quietly with status 0, as a pipeline expects;
/// any other write error ends it with status 2 and says so.
fn write_stdout(args: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let Err(e) = std::io::stdout().lock().write_fmt(args) else {
        return;
    };
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    eprintln!("error: cannot write the output: {e}");
    std::process::exit(2);
}

fn main() -> Exit {
    let cli = cli::Cli::parse();
    match cli.command {
        cli::Command::Check(args) => check::run(&args),
        cli::Command::Fmt(args) => fmt::run(&args),
        cli::Command::Eval(args) => eval::run(&args),
        cli::Command::Explain(args) => eval::explain(&args),
        cli::Command::Replay(args) => replay::run(&args),
        cli::Command::Audit(command) => audit::run(command),
        cli::Command::Serve(args) => serve::serve(*args),
        cli::Command::McpProxy(args) => mcp_proxy::run(*args),
        cli::Command::Keys(cmd) => serve::keys(cmd),
        cli::Command::Test(args) => testing::run(&args),
        cli::Command::Show(args) => show::run(&args),
        cli::Command::Diff(args) => diff::run(&args),
        cli::Command::Import(args) => import::run(&args),
        cli::Command::McpImport(args) => mcp_import::run(&args),
        cli::Command::Approvals(cmd) => ops::approvals(cmd),
        cli::Command::KillSwitch(cmd) => ops::kill_switch(cmd),
        cli::Command::Status(conn) => ops::status(&conn),
    }
}
