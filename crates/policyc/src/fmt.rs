//! `policyc fmt`.

use crate::cli::FmtArgs;
use crate::diag;
use crate::{files, Exit};
use std::io::Write as _;
use std::path::Path;

/// What formatting one file came to.
enum Outcome {
    Unchanged,
    Changed(String),
    /// Not formattable: syntax errors (already rendered into the message).
    Broken(String),
}

pub(crate) fn run(args: &FmtArgs) -> Exit {
    let paths = match files::collect(&args.paths) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Usage;
        }
    };
    if paths.is_empty() {
        let named: Vec<String> = args
            .paths
            .iter()
            .map(|p| format!("`{}`", p.display()))
            .collect();
        eprintln!("error: no `.policy` files found in {}", named.join(", "));
        return Exit::Usage;
    }
    let mut exit = Exit::Ok;
    for path in &paths {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("error: cannot read `{}`: {e}", path.display());
                exit = Exit::Usage;
                continue;
            }
        };
        match format_one(path, &bytes, args) {
            Outcome::Unchanged => {}
            Outcome::Changed(text) if args.check => {
                if args.diff {
                    print!("{}", unified_diff(path, &bytes, &text));
                } else {
                    println!("{}", path.display());
                }
                exit = worse(exit, Exit::Findings);
            }
            Outcome::Changed(text) => {
                if let Err(e) = write_atomically(path, &text) {
                    eprintln!(
                        "error: cannot write `{}`: {e}; the file was left unchanged",
                        path.display()
                    );
                    exit = Exit::Usage;
                }
            }
            Outcome::Broken(msg) => {
                eprint!("{msg}");
                exit = worse(exit, Exit::Findings);
            }
        }
    }
    exit
}

/// Replaces `path`'s contents with `text` so that a failure at any point
/// (full disk, file-size limit, crash) leaves either the old or the new file,
/// never a truncated one: the text goes to a temporary file in the same
/// directory, is synced, takes the original's permissions and is renamed over
/// it; then the directory is synced. A symbolic link is followed, not replaced.
fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let target = std::fs::canonicalize(path)?;
    let dir = target.parent().unwrap_or(Path::new("."));
    let permissions = std::fs::metadata(&target)?.permissions();
    let mut temp = tempfile::Builder::new()
        .prefix(".policyc-fmt-")
        .suffix(".tmp")
        .tempfile_in(dir)?;
    temp.write_all(text.as_bytes())?;
    temp.as_file().set_permissions(permissions)?;
    temp.as_file().sync_all()?;
    temp.persist(&target).map_err(|e| e.error)?;
    sync_dir(dir)
}

/// Makes a rename in `dir` durable (on Unix; elsewhere a no-op).
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    std::fs::File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// The change `fmt` would make to `path`, as a unified diff (3 lines of context).
fn unified_diff(path: &Path, old: &[u8], new: &str) -> String {
    let old = String::from_utf8_lossy(old);
    let shown = path.display().to_string();
    similar::TextDiff::from_lines(old.as_ref(), new)
        .unified_diff()
        .context_radius(3)
        .header(&format!("a/{shown}"), &format!("b/{shown}"))
        .to_string()
}

fn worse(a: Exit, b: Exit) -> Exit {
    if a == Exit::Usage || b == Exit::Usage {
        Exit::Usage
    } else if a == Exit::Findings || b == Exit::Findings {
        Exit::Findings
    } else {
        Exit::Ok
    }
}

fn format_one(path: &Path, bytes: &[u8], args: &FmtArgs) -> Outcome {
    let broken = |report: diag::FileReport| {
        let mut out = format!(
            "error: cannot format `{}`: it has syntax errors\n",
            path.display()
        );
        report.render_human(args.color, &mut out);
        Outcome::Broken(out)
    };
    let Ok(src) = toolgate_syntax::decode(bytes) else {
        return broken(diag::analyze(path, bytes));
    };
    let parsed = toolgate_syntax::parse(src);
    if !parsed.errors.is_empty() {
        return broken(diag::analyze(path, bytes));
    }
    let text = toolgate_syntax::print(&parsed.file, src);
    // Never write a file whose meaning or comments the printer changed.
    let again = toolgate_syntax::parse(&text);
    let same = again.errors.is_empty()
        && again.file.items == parsed.file.items
        && again.file.comments.len() == parsed.file.comments.len();
    if !same {
        return Outcome::Broken(format!(
            "error: internal error: formatting `{}` would change its meaning; the file was left alone (please report this)\n",
            path.display()
        ));
    }
    if text == src {
        Outcome::Unchanged
    } else {
        Outcome::Changed(text)
    }
}
