//! One file's diagnostics, and their three renderings: human (miette), JSON, SARIF.

use crate::cli::Color;
use miette::{Diagnostic, GraphicalReportHandler, GraphicalTheme, NamedSource, Severity};
use serde_json::{json, Value};
use std::io::IsTerminal as _;
use std::path::Path;
use toolgate_syntax::LineIndex;

/// A diagnostic from any stage.
pub(crate) type Diag = Box<dyn Diagnostic + Send + Sync + 'static>;

/// A file's text and everything found in it.
pub(crate) struct FileReport {
    pub path: String,
    pub src: String,
    pub diags: Vec<Diag>,
    /// The checked policy, when it has no errors.
    pub policy: Option<toolgate_check::ir::Policy>,
    lines: LineIndex,
}

/// Whether a diagnostic counts as a warning.
pub(crate) fn is_warning(d: &Diag) -> bool {
    matches!(d.severity(), Some(Severity::Warning | Severity::Advice))
}

/// Parses and checks one file's bytes. Syntax errors stop a file before the
/// checker runs, so that a half-read file does not produce follow-on errors.
pub(crate) fn analyze(path: &Path, bytes: &[u8]) -> FileReport {
    let mut policy = None;
    let mut diags: Vec<Diag> = Vec::new();
    let src = match toolgate_syntax::decode(bytes) {
        Ok(src) => {
            let parsed = toolgate_syntax::parse(src);
            if parsed.errors.is_empty() {
                let checked = toolgate_check::check(&parsed.file, src);
                diags.extend(checked.diagnostics.into_iter().map(|d| Box::new(d) as Diag));
                policy = checked.policy;
            } else {
                diags.extend(parsed.errors.into_iter().map(|d| Box::new(d) as Diag));
            }
            src.to_string()
        }
        Err(e) => {
            diags.push(Box::new(e));
            String::from_utf8_lossy(bytes).into_owned()
        }
    };
    let lines = LineIndex::new(&src);
    FileReport {
        path: path.display().to_string(),
        src,
        diags,
        policy,
        lines,
    }
}

impl FileReport {
    pub(crate) fn errors(&self) -> usize {
        self.diags.iter().filter(|d| !is_warning(d)).count()
    }

    pub(crate) fn warnings(&self) -> usize {
        self.diags.iter().filter(|d| is_warning(d)).count()
    }

    fn pos(&self, offset: usize) -> (usize, usize) {
        self.lines.line_col(&self.src, offset)
    }

    /// Every diagnostic as miette renders it, at a fixed width.
    pub(crate) fn render_human(self, color: Color, out: &mut String) {
        let colored = match color {
            Color::Always => true,
            Color::Never => false,
            Color::Auto => {
                std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
            }
        };
        let theme = if colored {
            GraphicalTheme::unicode()
        } else {
            GraphicalTheme::unicode_nocolor()
        };
        let handler = GraphicalReportHandler::new_themed(theme)
            .with_width(100)
            .with_links(false);
        for d in self.diags {
            let report = miette::Report::new_boxed(d)
                .with_source_code(NamedSource::new(&self.path, self.src.clone()));
            if handler.render_report(out, report.as_ref()).is_err() {
                out.push_str(&format!("{}: {report}\n", self.path));
            }
            out.push('\n');
        }
    }

    /// Every diagnostic as a JSON object (lines and columns 1-based, ends exclusive).
    pub(crate) fn json(&self) -> Vec<Value> {
        self.diags.iter().map(|d| self.json_one(d)).collect()
    }

    fn json_one(&self, d: &Diag) -> Value {
        let any_primary = d.labels().into_iter().flatten().any(|l| l.primary());
        let labels: Vec<Value> = d
            .labels()
            .into_iter()
            .flatten()
            .enumerate()
            .map(|(i, l)| {
                let (line, column) = self.pos(l.offset());
                let (end_line, end_column) = self.pos(l.offset() + l.len());
                json!({
                    "message": l.label(), "primary": l.primary() || (!any_primary && i == 0),
                    "line": line, "column": column, "end_line": end_line, "end_column": end_column,
                })
            })
            .collect();
        let primary = labels
            .iter()
            .find(|l| l["primary"] == true)
            .or(labels.first());
        let at = |k: &str| primary.map_or(Value::Null, |l| l[k].clone());
        json!({
            "code": d.code().map(|c| c.to_string()),
            "severity": if is_warning(d) { "warning" } else { "error" },
            "message": d.to_string(),
            "file": self.path,
            "line": at("line"), "column": at("column"),
            "end_line": at("end_line"), "end_column": at("end_column"),
            "help": d.help().map(|h| h.to_string()),
            "labels": labels,
        })
    }
}

/// The `--format json` document.
pub(crate) fn json_document(reports: &[FileReport], extra: Vec<Value>) -> Value {
    let mut diagnostics: Vec<Value> = reports.iter().flat_map(|r| r.json()).collect();
    let io_errors = extra.len();
    diagnostics.extend(extra);
    json!({
        "files": reports.len(),
        "errors": reports.iter().map(|r| r.errors()).sum::<usize>() + io_errors,
        "warnings": reports.iter().map(|r| r.warnings()).sum::<usize>(),
        "diagnostics": diagnostics,
    })
}

/// The `--format sarif` document (SARIF 2.1.0).
pub(crate) fn sarif_document(reports: &[FileReport]) -> Value {
    let mut rules = std::collections::BTreeSet::new();
    let mut results = Vec::new();
    for r in reports {
        for d in r.json() {
            let code = d["code"].as_str().unwrap_or("toolgate").to_string();
            rules.insert(code.clone());
            let region = |v: &Value| {
                json!({
                    "startLine": v["line"], "startColumn": v["column"],
                    "endLine": v["end_line"], "endColumn": v["end_column"],
                })
            };
            let location = |v: &Value| {
                json!({ "physicalLocation": {
                    "artifactLocation": { "uri": r.path.replace('\\', "/") },
                    "region": region(v),
                }})
            };
            let mut text = d["message"].as_str().unwrap_or("").to_string();
            if let Some(help) = d["help"].as_str() {
                text = format!("{text}\nhelp: {help}");
            }
            let related: Vec<Value> = d["labels"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|l| l["primary"] != true)
                .enumerate()
                .map(|(i, l)| {
                    let mut loc = location(l);
                    loc["id"] = json!(i);
                    loc["message"] = json!({ "text": l["message"].as_str().unwrap_or("") });
                    loc
                })
                .collect();
            let mut result = json!({
                "ruleId": code,
                "level": d["severity"],
                "message": { "text": text },
                "locations": if d["line"].is_null() { json!([]) } else { json!([location(&d)]) },
            });
            if !related.is_empty() {
                result["relatedLocations"] = json!(related);
            }
            results.push(result);
        }
    }
    let rules: Vec<Value> = rules
        .into_iter()
        .map(|id| json!({ "id": id, "helpUri": "docs/diagnostics.md" }))
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "policyc",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules,
            }},
            "columnKind": "unicodeCodePoints",
            "results": results,
        }],
    })
}

/// Renders one diagnostic that has no source file (journal and audit
/// findings) to stderr with miette, like every other diagnostic.
pub(crate) fn eprint(d: Diag) {
    let colored = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let theme = if colored {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    let handler = GraphicalReportHandler::new_themed(theme)
        .with_width(100)
        .with_links(false);
    let mut out = String::new();
    let report = miette::Report::new_boxed(d);
    if handler.render_report(&mut out, report.as_ref()).is_err() {
        out = format!("error: {report}\n");
    }
    eprintln!("{out}");
}
