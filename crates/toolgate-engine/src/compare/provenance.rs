//! Provenance in `policyc diff`: changes that move trust rather than rules.
//! Witness search decides without a session (where provenance conditions
//! cannot be evaluated), so these are classified from the policies' text and
//! labels: `from user|ctx|tool T` widened to `from trusted`, a dropped
//! `not session.tainted` guard, or an output labelled `trusted`, are
//! escalations; the reverse are restrictions.

use super::{Change, Kind, Side};
use toolgate_check::ir;

/// How a grant's condition moved in provenance alone, if that is all that changed.
pub(super) fn shift(old: &str, new: &str) -> Option<(Kind, &'static str)> {
    if widened(old, new) {
        return Some((Kind::Escalation, "condition widened to `from trusted`"));
    }
    if widened(new, old) {
        return Some((Kind::Restriction, "condition narrowed from `from trusted`"));
    }
    if without_guard(old).as_deref() == Some(new) {
        return Some((
            Kind::Escalation,
            "the `not session.tainted` guard was dropped",
        ));
    }
    if without_guard(new).as_deref() == Some(old) {
        return Some((Kind::Restriction, "a `not session.tainted` guard was added"));
    }
    None
}

/// Whether `new` is `narrow` with at least one `from user`, `from ctx` or
/// `from tool T` written `from trusted`, and nothing else changed.
fn widened(narrow: &str, new: &str) -> bool {
    let (a, b): (Vec<&str>, Vec<&str>) = (
        narrow.split_whitespace().collect(),
        new.split_whitespace().collect(),
    );
    let (mut i, mut j, mut any) = (0, 0, false);
    while i < a.len() && j < b.len() {
        let after_from = i > 0 && a[i - 1] == "from";
        let (core, close) = split_close(b[j]);
        if a[i] == b[j] {
            (i, j) = (i + 1, j + 1);
        } else if after_from
            && core == "trusted"
            && ["user", "ctx"].contains(&split_close(a[i]).0)
            && split_close(a[i]).1 == close
        {
            (i, j, any) = (i + 1, j + 1, true);
        } else if after_from
            && core == "trusted"
            && a[i] == "tool"
            && a.get(i + 1).is_some_and(|t| split_close(t).1 == close)
        {
            (i, j, any) = (i + 2, j + 1, true);
        } else {
            return false;
        }
    }
    any && i == a.len() && j == b.len()
}

/// A word and the closing parentheses after it.
fn split_close(word: &str) -> (&str, &str) {
    let core = word.trim_end_matches(')');
    (core, &word[core.len()..])
}

/// The condition without its `not session.tainted` guard, if it has one.
fn without_guard(text: &str) -> Option<String> {
    for guard in ["not session.tainted and ", " and not session.tainted"] {
        if let Some(at) = text.find(guard) {
            return Some(format!("{}{}", &text[..at], &text[at + guard.len()..]));
        }
    }
    None
}

/// Output labels that changed between the policies, one change per tool
/// and path (`""`: the tool's own label), for every agent.
pub(super) fn labels(old: &Side<'_>, new: &Side<'_>) -> Vec<Change> {
    let mut out = Vec::new();
    for t in &new.policy.tools {
        let Some(o) = old.policy.tools.iter().find(|o| o.name == t.name) else {
            continue;
        };
        let mut paths: Vec<&[ir::OutputSeg]> = vec![&[]];
        paths.extend(
            t.outputs
                .iter()
                .chain(&o.outputs)
                .map(|l| l.path.as_slice()),
        );
        paths.dedup();
        for path in paths {
            let (before, after) = (label(o, path), label(t, path));
            if before == after || out.iter().any(|c: &Change| c.what.contains(&shown(path))) {
                continue;
            }
            let kind = match after {
                ir::Trust::Trusted => Kind::Escalation,
                ir::Trust::Untrusted => Kind::Restriction,
            };
            out.push(Change {
                agent: "every agent".into(),
                tool: t.name.clone(),
                kind,
                what: format!(
                    "{} labelled `{}` (was `{}`)",
                    shown(path),
                    after.as_str(),
                    before.as_str()
                ),
                old_rule: None,
                new_rule: None,
                witness: None,
            });
        }
    }
    out
}

/// The label a tool gives `path` as written (the tool's own for an unnamed path).
fn label(tool: &ir::Tool, path: &[ir::OutputSeg]) -> ir::Trust {
    tool.outputs
        .iter()
        .find(|l| l.path == path)
        .map_or(tool.trust, |l| l.trust)
}

fn shown(path: &[ir::OutputSeg]) -> String {
    if path.is_empty() {
        "its output".into()
    } else {
        format!(
            "output field `{}`",
            toolgate_syntax::ast::output_path_text(path)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provenance_shifts_are_read_from_the_text() {
        let up = Some(Kind::Escalation);
        assert_eq!(
            shift("args.a from user", "args.a from trusted").map(|s| s.0),
            up
        );
        assert_eq!(
            shift("(x from tool t.find) and y", "(x from trusted) and y").map(|s| s.0),
            up
        );
        assert_eq!(
            shift("not session.tainted and x from user", "x from user").map(|s| s.0),
            up
        );
        assert_eq!(
            shift("args.a from trusted", "args.a from ctx").map(|s| s.0),
            Some(Kind::Restriction)
        );
        assert_eq!(shift("args.a from user", "args.b from trusted"), None);
        assert_eq!(shift("args.a == 1", "args.a == 2"), None);
    }
}
