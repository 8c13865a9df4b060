//! `policyc`: the Toolgate policy compiler's command line. This file only
//! parses arguments and dispatches; each command lives in its own module.

mod check;
mod cli;
mod client;
mod diag;
mod eval;
mod files;
mod fmt;
mod ops;
mod replay;
mod serve;

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

/// `policyc audit verify LOG`.
fn audit_verify(log: &std::path::Path) -> Exit {
    match toolgate_runtime::journal::verify_file(log) {
        Err(e) => {
            eprintln!("error: {e}");
            Exit::Usage
        }
        Ok(Err(problem)) => {
            eprintln!("error: `{}`: {problem}", log.display());
            Exit::Findings
        }
        Ok(Ok(v)) => {
            match v.head {
                Some(h) => println!(
                    "ok: {} records, head seq {} sha256 {}",
                    v.lines.len(),
                    h.seq,
                    h.hash
                ),
                None => println!("ok: empty journal"),
            }
            Exit::Ok
        }
    }
}

fn main() -> Exit {
    let cli = cli::Cli::parse();
    match cli.command {
        cli::Command::Check(args) => check::run(&args),
        cli::Command::Fmt(args) => fmt::run(&args),
        cli::Command::Eval(args) => eval::run(&args),
        cli::Command::Explain(args) => eval::explain(&args),
        cli::Command::Replay(args) => replay::run(&args),
        cli::Command::Audit(cli::AuditCommand::Verify { log }) => audit_verify(&log),
        cli::Command::Serve(args) => serve::serve(*args),
        cli::Command::Keys(cmd) => serve::keys(cmd),
        cli::Command::Audit(cli::AuditCommand::Tail(args)) => ops::audit_tail(&args),
        cli::Command::Approvals(cmd) => ops::approvals(cmd),
        cli::Command::KillSwitch(cmd) => ops::kill_switch(cmd),
        cli::Command::Status(conn) => ops::status(&conn),
    }
}
