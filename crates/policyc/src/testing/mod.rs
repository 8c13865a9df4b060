//! `policyc test`: runs `*.test.toml` files (format: `docs/testing.md`).
//!
//! `[[case]]` decides one request with the engine, statelessly; `[[scenario]]`
//! runs steps through the full gateway with a simulated clock, through the
//! same [`crate::replay::Session`] as `policyc replay`; `[[never]]` is a
//! static check over the compiled policy (`never.rs`).

mod never;
mod report;
mod run;
mod spec;

use crate::cli::{Color, TestArgs};
use crate::{files, Exit};
use std::ops::Range;
use std::path::Path;

/// A test file that cannot be run: a message, and where in the TOML.
pub(crate) struct Broken {
    message: String,
    span: Option<Range<usize>>,
}

impl Broken {
    /// An error pointing at a spanned value.
    fn at<T>(value: &toml::Spanned<T>, message: String) -> Broken {
        Broken {
            message,
            span: Some(value.span()),
        }
    }
}

/// One test's result.
pub(crate) struct TestResult {
    /// The test file.
    pub file: String,
    /// `case`, `scenario` or `never`.
    pub kind: &'static str,
    /// Its `name`.
    pub name: String,
    /// Why it failed (empty: it passed).
    pub failures: Vec<String>,
}

pub(crate) fn run(args: &TestArgs) -> Exit {
    let paths = match files::collect_suffix(&args.paths, ".test.toml") {
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
        eprintln!(
            "error: no `*.test.toml` files found in {}",
            named.join(", ")
        );
        return Exit::Usage;
    }
    let mut results = Vec::new();
    let mut broken = 0usize;
    for path in &paths {
        match run_file(path) {
            Ok(mut r) => results.append(&mut r),
            Err(rendered) => {
                broken += 1;
                eprint!("{rendered}");
            }
        }
    }
    print!(
        "{}",
        report::render(args.format, &results, paths.len(), broken)
    );
    if broken > 0 {
        Exit::Usage
    } else if results.iter().any(|r| !r.failures.is_empty()) {
        Exit::Findings
    } else {
        Exit::Ok
    }
}

/// Runs one file; `Err` holds its rendered diagnostic when it is broken.
fn run_file(path: &Path) -> Result<Vec<TestResult>, String> {
    let shown = path.display().to_string();
    let src = std::fs::read_to_string(path)
        .map_err(|e| format!("error: cannot read `{shown}`: {e}\n"))?;
    let render = |b: Broken| {
        crate::diag::render_at(
            &shown,
            &src,
            "policyc::test::invalid",
            &b.message,
            b.span,
            Color::Auto,
        )
    };
    let file: spec::TestFile = toml::from_str(&src).map_err(|e| {
        render(Broken {
            message: e.message().trim().to_string(),
            span: e.span(),
        })
    })?;
    run::file(path, &file).map_err(render)
}
