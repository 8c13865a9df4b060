//! `policyc check`.

use crate::cli::{CheckArgs, Format};
use crate::diag::{self, FileReport};
use crate::{files, Exit};
use serde_json::json;

pub(crate) fn run(args: &CheckArgs) -> Exit {
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
    let mut reports: Vec<FileReport> = Vec::new();
    let mut io_errors = Vec::new();
    for path in &paths {
        match std::fs::read(path) {
            Ok(bytes) => reports.push(diag::analyze(path, &bytes)),
            Err(e) => io_errors.push((path.display().to_string(), e.to_string())),
        }
    }
    let errors: usize = reports.iter().map(FileReport::errors).sum();
    let warnings: usize = reports.iter().map(FileReport::warnings).sum();
    match args.format {
        Format::Human => {
            let files = reports.len();
            let mut out = String::new();
            for r in reports {
                r.render_human(args.color, &mut out);
            }
            for (path, e) in &io_errors {
                out.push_str(&format!("error: cannot read `{path}`: {e}\n"));
            }
            let s = |n: usize| if n == 1 { "" } else { "s" };
            out.push_str(&format!(
                "checked {files} file{}: {errors} error{}, {warnings} warning{}\n",
                s(files),
                s(errors),
                s(warnings)
            ));
            eprint!("{out}");
        }
        Format::Github => {
            print!("{}", diag::github_lines(&reports));
            for (path, e) in &io_errors {
                println!("::error file={path}::cannot read the file: {e}");
            }
        }
        Format::Json | Format::Sarif => {
            let doc = if args.format == Format::Json {
                let extra = io_errors
                    .iter()
                    .map(|(path, e)| {
                        json!({
                            "code": "toolgate::io", "severity": "error",
                            "message": format!("cannot read `{path}`: {e}"), "file": path,
                            "line": null, "column": null, "end_line": null, "end_column": null,
                            "help": null, "labels": [],
                        })
                    })
                    .collect();
                diag::json_document(&reports, extra)
            } else {
                diag::sarif_document(&reports, &args.help_base_uri)
            };
            println!("{doc}");
        }
    }
    if !io_errors.is_empty() {
        Exit::Usage
    } else if errors > 0 || (args.deny_warnings && warnings > 0) {
        Exit::Findings
    } else {
        Exit::Ok
    }
}
