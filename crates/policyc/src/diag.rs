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

/// One error at `span` of a file that is not a policy (a test file), rendered
/// as miette renders a policy's diagnostics.
pub(crate) fn render_at(
    path: &str,
    src: &str,
    code: &str,
    message: &str,
    span: Option<std::ops::Range<usize>>,
    color: Color,
) -> String {
    let mut diag = miette::MietteDiagnostic::new(message.to_string()).with_code(code.to_string());
    if let Some(span) = span {
        diag = diag.with_label(miette::LabeledSpan::at(span, "here"));
    }
    let report = FileReport {
        path: path.to_string(),
        src: src.to_string(),
        diags: vec![Box::new(diag)],
        policy: None,
        lines: LineIndex::new(src),
    };
    let mut out = String::new();
    report.render_human(color, &mut out);
    out
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

/// The default base of SARIF rules' `helpUri`: the diagnostics reference.
pub(crate) const HELP_BASE: &str =
    "https://github.com/toolgate/toolgate/blob/main/docs/diagnostics.md";

/// The diagnostics reference, the single source of each code's description.
const REFERENCE: &str = include_str!("../../../docs/diagnostics.md");

/// A code's description from `docs/diagnostics.md`: the paragraph under its
/// heading, without the severity tag (`None` for a code not listed there).
pub(crate) fn description(code: &str) -> Option<String> {
    let heading = format!("### `{code}`");
    let after = REFERENCE.split_once(&heading)?.1;
    let para = after
        .trim_start()
        .split("\n\n")
        .next()?
        .trim()
        .trim_start_matches("*error.*")
        .trim_start_matches("*warning.*")
        .trim();
    Some(para.replace('\n', " "))
}

/// The first sentence of a description.
fn first_sentence(text: &str) -> String {
    match text.find(". ") {
        Some(i) => text[..=i].to_string(),
        None => text.to_string(),
    }
}

/// GitHub's anchor for a `### \`code\`` heading.
fn anchor(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_alphanumeric() || *c == '_' || *c == '-')
        .flat_map(char::to_lowercase)
        .collect()
}

/// `path` as a URI relative to the working directory (`/`-separated).
fn relative_uri(path: &str) -> String {
    let p = Path::new(path);
    let rel = std::env::current_dir()
        .ok()
        .and_then(|cwd| p.strip_prefix(cwd).ok().map(Path::to_path_buf))
        .unwrap_or_else(|| p.to_path_buf());
    let text = rel.display().to_string().replace('\\', "/");
    text.strip_prefix("./").unwrap_or(&text).to_string()
}

/// A SARIF reporting descriptor for `code`.
fn sarif_rule(code: &str, help_base: &str) -> Value {
    let full = description(code).unwrap_or_else(|| format!("`{code}`"));
    json!({
        "id": code,
        "name": code.rsplit("::").next().unwrap_or(code),
        "shortDescription": { "text": first_sentence(&full) },
        "fullDescription": { "text": full },
        "helpUri": format!("{help_base}#{}", anchor(code)),
    })
}

/// The `--format sarif` document (SARIF 2.1.0): results name files relative
/// to the `SRCROOT` base (the working directory).
pub(crate) fn sarif_document(reports: &[FileReport], help_base: &str) -> Value {
    let mut rules = std::collections::BTreeSet::new();
    let mut results = Vec::new();
    for r in reports {
        let uri = relative_uri(&r.path);
        for d in r.json() {
            let code = d["code"].as_str().unwrap_or("toolgate").to_string();
            rules.insert(code.clone());
            results.push(sarif_result(&d, &code, &uri));
        }
    }
    let rules: Vec<Value> = rules.iter().map(|id| sarif_rule(id, help_base)).collect();
    let root = std::env::current_dir()
        .ok()
        .map(|d| format!("file://{}/", d.display().to_string().trim_end_matches('/')));
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "policyc",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": help_base,
                "rules": rules,
            }},
            "originalUriBaseIds": { "SRCROOT": { "uri": root } },
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

fn sarif_result(d: &Value, code: &str, uri: &str) -> Value {
    let region = |v: &Value| {
        json!({
            "startLine": v["line"], "startColumn": v["column"],
            "endLine": v["end_line"], "endColumn": v["end_column"],
        })
    };
    let location = |v: &Value| {
        json!({ "physicalLocation": {
            "artifactLocation": { "uri": uri, "uriBaseId": "SRCROOT" },
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
        "locations": if d["line"].is_null() { json!([]) } else { json!([location(d)]) },
    });
    if !related.is_empty() {
        result["relatedLocations"] = json!(related);
    }
    result
}

/// Escapes a workflow command's message (GitHub: `%`, CR, LF).
fn gh_data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escapes a workflow command's property value (also `:` and `,`, so the
/// `::` in a code cannot end the properties early).
fn gh_property(text: &str) -> String {
    gh_data(text).replace(':', "%3A").replace(',', "%2C")
}

/// The `--format github` lines: one workflow command per diagnostic.
pub(crate) fn github_lines(reports: &[FileReport]) -> String {
    let mut out = String::new();
    for r in reports {
        for d in r.json() {
            let kind = if d["severity"] == "warning" {
                "warning"
            } else {
                "error"
            };
            let code = d["code"].as_str().unwrap_or("toolgate");
            let mut props = vec![format!("file={}", gh_property(&relative_uri(&r.path)))];
            for (key, field) in [
                ("line", "line"),
                ("col", "column"),
                ("endLine", "end_line"),
                ("endColumn", "end_column"),
            ] {
                if let Some(n) = d[field].as_u64() {
                    props.push(format!("{key}={n}"));
                }
            }
            props.push(format!("title={}", gh_property(code)));
            let mut text = d["message"].as_str().unwrap_or("").to_string();
            if let Some(help) = d["help"].as_str() {
                text = format!("{text}\nhelp: {help}");
            }
            out.push_str(&format!(
                "::{kind} {}::{}\n",
                props.join(","),
                gh_data(&text)
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{anchor, description, gh_data, gh_property};

    #[test]
    fn workflow_commands_are_escaped_as_github_requires() {
        assert_eq!(gh_data("50% a\r\nb"), "50%25 a%0D%0Ab");
        assert_eq!(
            gh_property("toolgate::check::x,y"),
            "toolgate%3A%3Acheck%3A%3Ax%2Cy"
        );
    }

    #[test]
    fn codes_have_descriptions_and_anchors_from_the_reference() {
        let d = description("toolgate::check::unknown_tool").unwrap_or_default();
        assert!(!d.is_empty() && !d.starts_with('*'), "{d}");
        assert_eq!(description("toolgate::nope"), None);
        assert_eq!(
            anchor("toolgate::check::unknown_tool"),
            "toolgatecheckunknown_tool"
        );
    }
}
