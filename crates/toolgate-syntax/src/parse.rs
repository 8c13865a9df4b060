//! Parsing: source text -> [`ast::File`] plus every syntax error found.
//!
//! The pest grammar reads one top-level item at a time. When an item fails,
//! the error is recorded and reading resumes at the next line that starts, in
//! column 0, with a top-level keyword, so one run reports the syntax errors of
//! every item rather than only the first.

mod expected;
mod lower;

use crate::ast;
use crate::err::SyntaxError;
use pest::Parser as _;

#[derive(pest_derive::Parser)]
#[grammar = "../../grammar/toolgate.pest"]
pub(crate) struct PolicyParser;

/// How many syntax errors one file may report before reading stops.
const MAX_ERRORS: usize = 50;

/// How deeply conditions, lists and types may nest.
pub const MAX_DEPTH: usize = 64;

/// The result of parsing: the items that could be read and the errors.
#[derive(Clone, Debug, Default)]
pub struct Parsed {
    /// Every item that parsed, in source order.
    pub file: ast::File,
    /// Every syntax error, in source order.
    pub errors: Vec<SyntaxError>,
}

/// Decodes a file's bytes as UTF-8, pointing at the first invalid byte.
pub fn decode(bytes: &[u8]) -> Result<&str, SyntaxError> {
    std::str::from_utf8(bytes).map_err(|e| {
        let at = e.valid_up_to();
        let len = e.error_len().unwrap_or(bytes.len() - at).max(1);
        SyntaxError::InvalidUtf8 {
            span: ast::Span::new(at, at + len).into(),
        }
    })
}

/// Parses a whole policy file. Never panics; never stops at the first error.
///
/// Each round parses as many items as it can in one pest call (pest indexes
/// the input it is given, so one call per item would be quadratic), then
/// either reaches the end of the file or reports the item that failed and
/// resumes after it.
pub fn parse(src: &str) -> Parsed {
    let mut out = Parsed::default();
    let mut pos = 0;
    loop {
        match PolicyParser::parse(Rule::item_run, &src[pos..]) {
            Ok(pairs) => pos = lower_run(pairs, pos, src, &mut out),
            Err(e) => {
                let at = ast::Span::new(pos, pos).into();
                out.errors.push(SyntaxError::Internal {
                    detail: format!("item run failed: {e}"),
                    span: at,
                });
                break;
            }
        }
        let rest = &src[pos..];
        if let Ok(pairs) = PolicyParser::parse(Rule::file_end, rest) {
            lower::collect_comments(pairs, pos, &mut out.file.comments);
            break;
        }
        match PolicyParser::parse(Rule::item_start, rest) {
            Ok(pairs) => pos = lower_run(pairs, pos, src, &mut out).max(pos + 1),
            Err(e) => {
                let at = pos + error_offset(&e);
                let err = expected::describe(&e, src, at);
                if out.errors.last() != Some(&err) {
                    out.errors.push(err);
                }
                let item = pos + (rest.len() - rest.trim_start().len());
                match resync(src, item, at) {
                    Some(next) => pos = next,
                    None => break,
                }
            }
        }
        if out.errors.len() >= MAX_ERRORS {
            let at = pos.min(src.len());
            out.errors.push(SyntaxError::TooManyErrors {
                span: ast::Span::new(at, at).into(),
            });
            break;
        }
    }
    out
}

/// Lowers the items of one successful parse at `pos`; returns where it ended.
fn lower_run(
    pairs: pest::iterators::Pairs<'_, Rule>,
    pos: usize,
    src: &str,
    out: &mut Parsed,
) -> usize {
    let end = pos + pairs.clone().map(|p| p.as_span().end()).max().unwrap_or(0);
    let first_comment = out.file.comments.len();
    // Walking every pair for comments costs more than looking for a `/`.
    if src.get(pos..end).is_none_or(|run| run.contains('/')) {
        lower::collect_comments(pairs.clone(), pos, &mut out.file.comments);
    }
    let comments = &out.file.comments[first_comment..];
    for item in lower::items(pairs, pos, src, comments) {
        match item {
            Ok(item) => out.file.items.push(item),
            Err(e) => out.errors.push(e),
        }
    }
    end
}

fn error_offset(e: &pest::error::Error<Rule>) -> usize {
    match e.location {
        pest::error::InputLocation::Pos(p) => p,
        pest::error::InputLocation::Span((s, _)) => s,
    }
}

/// Words that start a top-level item; recovery resumes at a line starting with one.
const ITEM_KEYWORDS: &[&str] = &[
    "policy",
    "envs",
    "tenants",
    "groups",
    "context",
    "tool",
    "let",
    "writes",
    "agent",
    "allow",
    "write",
    "deny",
    "@id",
    "@accepted_risk",
    "scope",
    "require",
];

/// The first line start after `item` (where the failed item began), not before
/// the line of the error at `error`, whose line begins with an item keyword.
fn resync(src: &str, item: usize, error: usize) -> Option<usize> {
    let error_line = src.get(..error)?.rfind('\n').map_or(0, |nl| nl + 1);
    let mut at = error_line;
    loop {
        if at <= item {
            at += src.get(at..)?.find('\n')? + 1;
            continue;
        }
        let line = &src[at..];
        let starts_item = ITEM_KEYWORDS.iter().any(|kw| {
            line.starts_with(kw)
                && !line[kw.len()..]
                    .starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        });
        if starts_item {
            return Some(at);
        }
        at += line.find('\n')? + 1;
    }
}

#[cfg(test)]
mod tests;
