//! `policyc audit`: verify a journal against its checkpoints, create a
//! signing key, print a journal's head, repair a torn tail.

use crate::cli::{AuditCommand, VerifyArgs};
use crate::diag;
use crate::Exit;
use std::path::Path;
use toolgate_runtime::journal::{self, Ack, AuditOptions, AuditReport, PublicKey};

pub(crate) fn run(command: AuditCommand) -> Exit {
    match command {
        AuditCommand::Verify(args) => verify(&args),
        AuditCommand::Keygen { out } => keygen(&out),
        AuditCommand::Head { log } => head(&log),
        AuditCommand::Repair { log } => repair(&log),
        // The one audit command that talks to a running server.
        AuditCommand::Tail(args) => crate::ops::audit_tail(&args),
    }
}

/// `policyc audit repair LOG`.
fn repair(log: &Path) -> Exit {
    match journal::recover_torn_tail(log) {
        Ok(Some(r)) => {
            println!(
                "removed the torn record at line {} of `{}`: cut {} bytes (the file now ends at byte {}); saved them to `{}`",
                r.line,
                log.display(),
                r.cut,
                r.kept,
                r.backup.display()
            );
            Exit::Ok
        }
        Ok(None) => {
            println!("`{}` verifies: nothing to repair", log.display());
            Exit::Ok
        }
        Err(e @ journal::JournalError::Broken { .. }) => {
            diag::eprint(Box::new(e));
            Exit::Findings
        }
        Err(e) => io_error(e),
    }
}

fn usage(message: &str) -> Exit {
    eprintln!("error: {message}");
    Exit::Usage
}

fn io_error(e: journal::JournalError) -> Exit {
    diag::eprint(Box::new(e));
    Exit::Usage
}

/// The public key from hex or from a file holding it.
fn public_key(arg: &str) -> Result<PublicKey, String> {
    let text = if Path::new(arg).is_file() {
        std::fs::read_to_string(arg).map_err(|e| format!("cannot read `{arg}`: {e}"))?
    } else {
        arg.to_string()
    };
    journal::public_key_from_hex(text.trim()).map_err(|e| format!("`--public-key`: {e}"))
}

/// `SEQ:HASH`.
fn parse_head(arg: &str) -> Result<Ack, String> {
    let (seq, hash) = arg
        .split_once(':')
        .ok_or("`--head` is `SEQ:HASH` (see `policyc audit head`)")?;
    let seq = seq
        .parse()
        .map_err(|_| format!("`--head`: `{seq}` is not a record number"))?;
    let hash_ok = hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit());
    if !hash_ok {
        return Err("`--head`: the hash is 64 hex digits".into());
    }
    Ok(Ack {
        seq,
        hash: hash.to_ascii_lowercase(),
    })
}

fn options(args: &VerifyArgs) -> Result<AuditOptions, String> {
    Ok(AuditOptions {
        checkpoints: args.checkpoints.clone(),
        public_key: args.public_key.as_deref().map(public_key).transpose()?,
        head: args.head.as_deref().map(parse_head).transpose()?,
    })
}

/// `policyc audit verify LOG... [--checkpoints FILE --public-key KEY] [--head SEQ:HASH]`:
/// each journal (one per replica) verified and reported on its own; the
/// anchors (`--checkpoints`, `--head`) belong to one journal.
fn verify(args: &VerifyArgs) -> Exit {
    let options = match options(args) {
        Ok(o) => o,
        Err(e) => return usage(&e),
    };
    let anchored = options.checkpoints.is_some() || options.head.is_some();
    if anchored && args.logs.len() > 1 {
        return usage("`--checkpoints` and `--head` anchor one journal: verify journals with anchors one at a time");
    }
    let mut worst = Exit::Ok;
    for log in &args.logs {
        match verify_one(log, &options) {
            Exit::Ok => {}
            Exit::Findings if worst == Exit::Ok => worst = Exit::Findings,
            Exit::Findings => {}
            other => return other,
        }
    }
    worst
}

fn verify_one(log: &Path, options: &AuditOptions) -> Exit {
    // Without an anchor a missing journal is a usage error; with one, it is
    // a finding (everything the anchors cover was removed).
    if !log.exists() && options.checkpoints.is_none() && options.head.is_none() {
        return usage(&format!("cannot read `{}`: no such file", log.display()));
    }
    let report = match journal::audit(log, options) {
        Ok(r) => r,
        Err(e) => return io_error(e),
    };
    print_summary(log, &report, options);
    let findings = report.findings.len();
    for f in report.findings {
        diag::eprint(Box::new(f));
    }
    if findings == 0 {
        Exit::Ok
    } else {
        Exit::Findings
    }
}

fn print_summary(log: &Path, report: &AuditReport, options: &AuditOptions) {
    match &report.head {
        Some(h) => println!(
            "`{}`: chain valid up to record {} (sha256 {})",
            log.display(),
            report.valid_up_to,
            h.hash
        ),
        None => println!("`{}`: no valid record", log.display()),
    }
    match &report.last_matched {
        Some(c) => println!(
            "last checkpoint matched: record {} (time {} ms, key {})",
            c.seq, c.time, c.key_id
        ),
        None if options.checkpoints.is_some() => println!("no checkpoint matched"),
        None => {}
    }
    if options.checkpoints.is_none() && options.head.is_none() {
        println!("note: without `--checkpoints` or `--head` the chain shows order, not that nothing was cut or rewritten");
    }
}

/// `policyc audit keygen [--out KEY]`.
fn keygen(out: &Path) -> Exit {
    match journal::generate_key_file(out) {
        Ok((_, public)) => {
            let pub_path = out.with_extension(match out.extension() {
                Some(ext) => format!("{}.pub", ext.to_string_lossy()),
                None => "pub".into(),
            });
            if let Err(e) = std::fs::write(&pub_path, format!("{public}\n")) {
                return usage(&format!("cannot write `{}`: {e}", pub_path.display()));
            }
            eprintln!(
                "wrote the signing key to `{}` (mode 0600) and the public key to `{}`",
                out.display(),
                pub_path.display()
            );
            println!("{public}");
            Exit::Ok
        }
        Err(e) => io_error(e),
    }
}

/// `policyc audit head LOG`.
fn head(log: &Path) -> Exit {
    if !log.exists() {
        return usage(&format!("cannot read `{}`: no such file", log.display()));
    }
    let report = match journal::audit(log, &AuditOptions::default()) {
        Ok(r) => r,
        Err(e) => return io_error(e),
    };
    if !report.findings.is_empty() {
        for f in report.findings {
            diag::eprint(Box::new(f));
        }
        return Exit::Findings;
    }
    match report.head {
        Some(h) => println!("{}:{}", h.seq, h.hash),
        None => println!("0:{}", journal::GENESIS),
    }
    Exit::Ok
}
