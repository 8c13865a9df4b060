//! The canonical printer behind `policyc fmt`.
//!
//! Layout: two-space indentation; one item per line; at most one blank line
//! kept where the source had any; consecutive tool declarations aligned in
//! columns; a rule on one line when it fits in [`WIDTH`] columns, otherwise its
//! first clause on the rule's line and every further clause on its own line,
//! indented two more; a `when` condition still too long is broken before each
//! `and`/`or` of its chain (four columns deeper than the rule). Comments are
//! kept: a comment on the line of an item stays there, any other comment is
//! printed on its own line before the next item (a comment written inside an
//! item moves to just before that item, except inside `context {}` and record
//! types, which are then printed one field per line with the comments in place).

use crate::ast::{self, Spanned};
use std::fmt::Write as _;

/// Lines longer than this are broken at clause boundaries, then at `and`/`or`.
pub const WIDTH: usize = 100;

/// Prints `file` canonically. `src` is the text it was parsed from (used to
/// find blank lines and trailing comments).
pub fn print(file: &ast::File, src: &str) -> String {
    let mut p = Printer {
        out: String::new(),
        src,
        comments: &file.comments,
        next: 0,
        last_end: None,
    };
    let groups = tool_groups(&file.items, src);
    for (i, item) in file.items.iter().enumerate() {
        let block = match &item.node {
            ast::Item::Agent(_) | ast::Item::Context(_) => Some(item.span.start),
            // Comments inside a record type stay there; others move before the item.
            ast::Item::Tool(t) => t
                .schema
                .as_ref()
                .filter(|s| p.has_comment_in(s.span))
                .map(|s| s.span.start),
            _ => None,
        };
        match block {
            Some(limit) => p.leading_to(limit, item.span.start, 0),
            None => p.leading(item.span, 0, false),
        }
        match &item.node {
            ast::Item::Agent(agent) => p.agent(agent, item.span),
            ast::Item::Context(fields) => p.context(fields, item.span),
            ast::Item::Tool(t) => match (&t.schema, block) {
                (Some(schema), Some(_)) => p.tool_record(t, groups[i], schema, item.span),
                _ => {
                    let text = tool_text(t, groups[i]);
                    p.line(0, &text, item.span);
                }
            },
            other => {
                let text = item_text(other);
                p.line(0, &text, item.span);
            }
        }
    }
    p.rest(usize::MAX, 0);
    p.out
}

struct Printer<'a> {
    out: String,
    src: &'a str,
    comments: &'a [ast::Comment],
    next: usize,
    /// End of the last thing printed (to find blank lines and trailing comments).
    last_end: Option<usize>,
}

impl Printer<'_> {
    /// Prints a blank line if the source had one between the last element and `start`.
    fn gap(&mut self, start: usize) {
        if let Some(end) = self.last_end {
            let between = self.src.get(end..start).unwrap_or("");
            if between.matches('\n').count() >= 2 {
                self.out.push('\n');
            }
        }
    }

    /// Prints the comments that come before an item (or, for non-blocks, inside it).
    fn leading(&mut self, span: ast::Span, indent: usize, block: bool) {
        let limit = if block { span.start } else { span.end };
        self.leading_to(limit, span.start, indent);
    }

    /// Prints the comments before `limit`, then a blank line if the source had
    /// one before `start`.
    fn leading_to(&mut self, limit: usize, start: usize, indent: usize) {
        self.rest(limit, indent);
        self.gap(start);
    }

    /// Whether a comment not printed yet starts inside `span`.
    fn has_comment_in(&self, span: ast::Span) -> bool {
        self.comments
            .get(self.next..)
            .unwrap_or(&[])
            .iter()
            .any(|c| c.span.start >= span.start && c.span.start < span.end)
    }

    /// Prints every pending comment that starts before `limit` on its own line.
    fn rest(&mut self, limit: usize, indent: usize) {
        while let Some(c) = self
            .comments
            .get(self.next)
            .filter(|c| c.span.start < limit)
        {
            self.gap(c.span.start);
            self.out.push_str(&" ".repeat(indent));
            self.out.push_str(&c.text);
            self.out.push('\n');
            self.last_end = Some(c.span.end);
            self.next += 1;
        }
    }

    /// Prints `text` (possibly several lines) and a trailing comment on its last line.
    fn line(&mut self, indent: usize, text: &str, span: ast::Span) {
        self.out.push_str(&" ".repeat(indent));
        self.out.push_str(text);
        self.last_end = Some(span.end);
        self.trailing(span.end);
        self.out.push('\n');
    }

    fn trailing(&mut self, end: usize) {
        if let Some(c) = self.comments.get(self.next) {
            // Only blanks between: not on the next line, not after another item.
            let same_line = self
                .src
                .get(end..c.span.start)
                .is_some_and(|s| s.trim().is_empty() && !s.contains('\n'));
            if c.span.start >= end && same_line {
                self.out.push(' ');
                self.out.push_str(&c.text);
                self.last_end = Some(c.span.end);
                self.next += 1;
            }
        }
    }

    fn agent(&mut self, agent: &ast::AgentBlock, span: ast::Span) {
        self.out.push_str(&format!("agent {} {{", agent.name.node));
        if agent.rules.is_empty()
            && self
                .comments
                .get(self.next)
                .is_none_or(|c| c.span.start >= span.end)
        {
            self.out.push_str("}\n");
            self.last_end = Some(span.end);
            return;
        }
        self.last_end = Some(agent.name.span.end + 1);
        self.trailing(agent.name.span.end);
        self.out.push('\n');
        for rule in &agent.rules {
            self.leading(rule.span, 2, false);
            let text = rule_text(&rule.node, 2);
            self.line(2, &text, rule.span);
        }
        self.rest(span.end, 2);
        self.out.push('}');
        self.last_end = Some(span.end);
        self.trailing(span.end);
        self.out.push('\n');
    }

    /// `context { ... }`, one field per line, comments kept where they were.
    fn context(&mut self, fields: &[ast::Field], span: ast::Span) {
        if fields.is_empty() && !self.has_comment_in(span) {
            self.line(0, "context {}", span);
            return;
        }
        self.out.push_str("context {");
        self.open_brace(span.start);
        self.fields(fields, 2, ";");
        self.rest(span.end, 2);
        self.out.push('}');
        self.last_end = Some(span.end);
        self.trailing(span.end);
        self.out.push('\n');
    }

    /// A tool whose record type holds comments: one field per line.
    fn tool_record(
        &mut self,
        t: &ast::ToolDecl,
        widths: Option<(usize, usize)>,
        schema: &Spanned<Vec<ast::Field>>,
        span: ast::Span,
    ) {
        // The head as `tool_text` aligns it, without the record.
        let empty = ast::ToolDecl {
            schema: Some(Spanned::new(Vec::new(), schema.span)),
            open: false,
            outputs: None,
            ..t.clone()
        };
        let text = tool_text(&empty, widths);
        let head = text.strip_suffix(" {};").unwrap_or(&text);
        self.out.push_str(head);
        self.out.push_str(" {");
        self.open_brace(schema.span.start);
        self.fields(&schema.node, 2, ",");
        if t.open {
            self.out.push_str("  ..\n");
        }
        self.rest(schema.span.end, 2);
        self.out.push('}');
        if let Some(outputs) = &t.outputs {
            self.out.push(' ');
            self.out.push_str(&outputs_text(&outputs.node));
        }
        self.out.push(';');
        self.last_end = Some(span.end);
        self.trailing(span.end);
        self.out.push('\n');
    }

    /// After a `{` printed at the end of a line: the comment on its source line.
    fn open_brace(&mut self, from: usize) {
        let brace = self
            .src
            .get(from..)
            .and_then(|s| s.find('{'))
            .map_or(from, |i| from + i + 1);
        self.last_end = Some(brace);
        self.trailing(brace);
        self.out.push('\n');
    }

    /// Fields one per line at `indent`, each followed by `sep`, with the
    /// comments between them kept in place.
    fn fields(&mut self, fields: &[ast::Field], indent: usize, sep: &str) {
        for f in fields {
            self.rest(f.name.span.start, indent);
            self.out.push_str(&" ".repeat(indent));
            match record_of(&f.ty.node).filter(|_| self.has_comment_in(f.ty.span)) {
                Some((open, inner, close, rest)) => {
                    let opt = if f.optional { "?" } else { "" };
                    let _ = write!(self.out, "{}{opt}: {open}", f.name.node);
                    self.open_brace(f.ty.span.start);
                    self.fields(inner, indent + 2, ",");
                    if rest {
                        let _ = writeln!(self.out, "{}..", " ".repeat(indent + 2));
                    }
                    self.rest(f.ty.span.end, indent + 2);
                    self.out.push_str(&" ".repeat(indent));
                    self.out.push_str(&close);
                    if f.redact {
                        self.out.push_str(" redact");
                    }
                }
                None => self.out.push_str(&field_text(f)),
            }
            self.out.push_str(sep);
            let end = self.field_end(f);
            self.last_end = Some(end);
            self.trailing(end);
            self.out.push('\n');
        }
    }

    /// Where a field's text ends in the source: after its type, its `redact`
    /// and the separator that follows on the same line.
    fn field_end(&self, f: &ast::Field) -> usize {
        let mut end = f.ty.span.end;
        let rest = |end: usize| self.src.get(end..).unwrap_or("");
        if f.redact {
            end += rest(end).find("redact").map_or(0, |i| i + "redact".len());
        }
        let blanks = rest(end).len() - rest(end).trim_start_matches([' ', '\t']).len();
        if rest(end + blanks).starts_with([',', ';']) {
            end += blanks + 1;
        }
        end
    }
}

/// A record type, possibly inside `list<...>`: its opening text, fields,
/// closing text and whether it is open (ends with `..`). A union is printed
/// inline (a comment inside one makes `fmt` refuse the file rather than lose it).
fn record_of(t: &ast::Type) -> Option<(String, &[ast::Field], String, bool)> {
    match t {
        ast::Type::Record(fields) => Some(("{".to_string(), fields, "}".to_string(), false)),
        ast::Type::OpenRecord(fields) => Some(("{".to_string(), fields, "}".to_string(), true)),
        ast::Type::List(inner) => record_of(&inner.node).map(|(open, fields, close, rest)| {
            (format!("list<{open}"), fields, format!("{close}>"), rest)
        }),
        ast::Type::Named(_) | ast::Type::Literal(_) | ast::Type::Union(_) => None,
    }
}

/// For each item, the column widths of its aligned tool group (or `None`).
fn tool_groups(items: &[Spanned<ast::Item>], src: &str) -> Vec<Option<(usize, usize)>> {
    let mut out = vec![None; items.len()];
    let mut i = 0;
    while i < items.len() {
        let mut j = i;
        while j + 1 < items.len() && adjacent_tools(&items[j], &items[j + 1], src) {
            j += 1;
        }
        if j > i {
            let tools = items[i..=j].iter().filter_map(|it| match &it.node {
                ast::Item::Tool(t) => Some(t),
                _ => None,
            });
            let (name, class) = tools.fold((0, 0), |(n, c), t| {
                (
                    n.max(t.name.node.len()),
                    c.max(class_word(t.class.node).len()),
                )
            });
            out[i..=j]
                .iter_mut()
                .for_each(|w| *w = Some((name + 2, class)));
        }
        i = j + 1;
    }
    out
}

fn adjacent_tools(a: &Spanned<ast::Item>, b: &Spanned<ast::Item>, src: &str) -> bool {
    let both = matches!((&a.node, &b.node), (ast::Item::Tool(_), ast::Item::Tool(_)));
    let gap = src.get(a.span.end..b.span.start).unwrap_or("x");
    // On one line or consecutive lines (no blank line): `fmt` prints them on
    // consecutive lines, so aligning only the latter would not be idempotent.
    both && gap.trim().is_empty() && gap.matches('\n').count() <= 1
}

fn class_word(class: ast::ToolClass) -> &'static str {
    match class {
        ast::ToolClass::Read => "read",
        ast::ToolClass::Write => "write",
    }
}

fn tool_text(t: &ast::ToolDecl, widths: Option<(usize, usize)>) -> String {
    let (name_w, class_w) = widths.unwrap_or((t.name.node.len() + 1, 0));
    let mut s = format!("tool {:<name_w$}", t.name.node);
    let class = class_word(t.class.node);
    let more = t.irreversible || t.schema.is_some() || t.trust.is_some() || t.outputs.is_some();
    if more {
        let _ = write!(s, "{class:<class_w$}");
    } else {
        s.push_str(class);
    }
    if t.irreversible {
        s.push_str(" irreversible");
    }
    if let Some(trust) = &t.trust {
        s.push(' ');
        s.push_str(trust.node.as_str());
    }
    if let Some(schema) = &t.schema {
        s.push(' ');
        s.push_str(&record_text(&schema.node, t.open));
    }
    if let Some(outputs) = &t.outputs {
        s.push(' ');
        s.push_str(&outputs_text(&outputs.node));
    }
    s.push(';');
    s
}

/// `output { [].email: trusted, body: untrusted }`.
fn outputs_text(labels: &[ast::OutputLabel]) -> String {
    let body = join(labels.iter().map(|l| {
        format!(
            "{}: {}",
            ast::output_path_text(&l.path.node),
            l.trust.node.as_str()
        )
    }));
    if body.is_empty() {
        return "output {}".to_string();
    }
    format!("output {{ {body} }}")
}

fn item_text(item: &ast::Item) -> String {
    match item {
        ast::Item::Policy(name) => format!("policy {};", name.node),
        ast::Item::Envs(envs) => format!("envs {};", join(envs.iter().map(|e| e.node.clone()))),
        ast::Item::Tenants(t) => format!("tenants {};", join(t.iter().map(|e| e.node.clone()))),
        ast::Item::Groups(g) => format!("groups {};", join(g.iter().map(|e| e.node.clone()))),
        ast::Item::DefaultScope(paths) => {
            format!(
                "scope default {};",
                join(paths.iter().map(|p| path_text(&p.node)))
            )
        }
        ast::Item::Context(fields) if fields.is_empty() => "context {}".to_string(),
        ast::Item::Context(fields) => {
            let body: String = fields
                .iter()
                .map(|f| format!("  {};\n", field_text(f)))
                .collect();
            format!("context {{\n{body}}}")
        }
        ast::Item::Let(l) => format!("let {} = {};", l.name.node, literal_text(&l.value.node)),
        ast::Item::Writes(mode) => match mode.node {
            ast::WritesMode::Enabled => "writes enabled;".to_string(),
            ast::WritesMode::Disabled => "writes disabled;".to_string(),
        },
        ast::Item::Rule(rule) => rule_text(rule, 0),
        // Printed by their own paths; kept total so the printer never panics.
        ast::Item::Tool(t) => tool_text(t, None),
        ast::Item::Agent(a) => format!("agent {} {{}}", a.name.node),
    }
}

fn join(parts: impl Iterator<Item = String>) -> String {
    parts.collect::<Vec<_>>().join(", ")
}

fn field_text(f: &ast::Field) -> String {
    let opt = if f.optional { "?" } else { "" };
    let redact = if f.redact { " redact" } else { "" };
    format!("{}{opt}: {}{redact}", f.name.node, type_text(&f.ty.node))
}

/// `{ a: T, b?: U }`; an open record ends with `..` (`{ .. }` alone).
fn record_text(fields: &[ast::Field], open: bool) -> String {
    let parts = fields
        .iter()
        .map(field_text)
        .chain(open.then(|| "..".to_string()));
    let body = join(parts);
    if body.is_empty() {
        return "{}".to_string();
    }
    format!("{{ {body} }}")
}

fn type_text(t: &ast::Type) -> String {
    match t {
        ast::Type::Named(n) => n.clone(),
        ast::Type::List(inner) => format!("list<{}>", type_text(&inner.node)),
        ast::Type::Record(fields) => record_text(fields, false),
        ast::Type::OpenRecord(fields) => record_text(fields, true),
        ast::Type::Literal(l) => literal_text(l),
        ast::Type::Union(parts) => parts
            .iter()
            .map(|p| type_text(&p.node))
            .collect::<Vec<_>>()
            .join(" | "),
    }
}

/// A rule, laid out at `indent` (the indentation itself is not included);
/// its `@id(...)` and `@accepted_risk(...)`, if any, each on a line of its
/// own before it, in that order.
pub(crate) fn rule_text(rule: &ast::Rule, indent: usize) -> String {
    let mut out = String::new();
    let annotations = [("@id", &rule.id), ("@accepted_risk", &rule.accepted_risk)];
    for (word, value) in annotations {
        if let Some(v) = value {
            let _ = write!(
                out,
                "{word}({})\n{}",
                string_text(&v.node),
                " ".repeat(indent)
            );
        }
    }
    out.push_str(&rule_body(rule, indent));
    out
}

fn rule_body(rule: &ast::Rule, indent: usize) -> String {
    let (head, nodes) = rule_head(rule);
    let clauses: Vec<String> = nodes.iter().map(|c| clause_text(&c.node)).collect();
    let one_line = std::iter::once(head.clone())
        .chain(clauses.iter().cloned())
        .collect::<Vec<_>>();
    let one_line = format!("{};", one_line.join(" "));
    if clauses.is_empty() || indent + one_line.len() <= WIDTH {
        return one_line;
    }
    let pad = " ".repeat(indent + 2);
    let last = clauses.len() - 1;
    let mut s = head.clone();
    for (i, (node, text)) in nodes.iter().zip(&clauses).enumerate() {
        // The first clause stays on the rule's line (as before when one fits).
        let col = if i == 0 {
            s.push(' ');
            indent + head.len() + 1
        } else {
            let _ = write!(s, "\n{pad}");
            indent + 2
        };
        let semi = usize::from(i == last);
        match &node.node {
            ast::Clause::When(e) if col + text.len() + semi > WIDTH => {
                s.push_str("when ");
                s.push_str(&wrap(&e.node, col + 5, indent + WRAP_INDENT, semi));
            }
            _ => s.push_str(text),
        }
    }
    s.push(';');
    s
}

/// How much deeper than its rule a wrapped condition's continuation lines go.
const WRAP_INDENT: usize = 4;

/// A condition starting at column `col`, broken before each `and`/`or` of a
/// chain that does not fit in [`WIDTH`] (`extra` columns follow it on its
/// last line), continuation lines indented to `indent`; nested chains (a
/// parenthesised one, an `and` inside an `or`) break the same way, two deeper.
fn wrap(e: &ast::Expr, col: usize, indent: usize, extra: usize) -> String {
    let flat = expr_text(e);
    if col + flat.len() + extra <= WIDTH {
        return flat;
    }
    let (parts, word, min) = match e {
        ast::Expr::Or(parts) => (parts, "or", 1),
        ast::Expr::And(parts) => (parts, "and", 2),
        ast::Expr::Paren(inner) => {
            return format!("({})", wrap(&inner.node, col + 1, indent, extra + 1));
        }
        _ => return flat,
    };
    let last = parts.len().saturating_sub(1);
    let mut s = String::new();
    for (i, p) in parts.iter().enumerate() {
        let col = if i == 0 {
            col
        } else {
            let _ = write!(s, "\n{}{word} ", " ".repeat(indent));
            indent + word.len() + 1
        };
        let extra = if i == last { extra } else { 0 };
        // The same parentheses as `chain` adds.
        if (i < last && ends_open(&p.node)) || level(&p.node) < min {
            let _ = write!(s, "({})", wrap(&p.node, col + 1, indent + 2, extra + 1));
        } else {
            s.push_str(&wrap(&p.node, col, indent + 2, extra));
        }
    }
    s
}

/// A rule's head (`write a, b`; `require 2 approvals on a, b` for a floor)
/// and the clauses after it.
fn rule_head(rule: &ast::Rule) -> (String, &[Spanned<ast::Clause>]) {
    let tools = join(rule.tools.iter().map(|t| t.node.clone()));
    let (kind, rest) = match (rule.kind.node, rule.clauses.split_first()) {
        (ast::RuleKind::Floor, Some((first, rest))) => {
            return (format!("{} on {tools}", clause_text(&first.node)), rest);
        }
        (ast::RuleKind::Allow, _) => ("allow", &rule.clauses[..]),
        (ast::RuleKind::Write, _) => ("write", &rule.clauses[..]),
        (ast::RuleKind::Deny, _) => ("deny", &rule.clauses[..]),
        // A floor always has its `require` clause; kept total.
        (ast::RuleKind::Floor, None) => ("require approval on", &rule.clauses[..]),
    };
    (format!("{kind} {tools}"), rest)
}

/// A rule's identity across edits that leave it alone (budget windows are
/// keyed by it): its canonical one-line text without its `reason` and without
/// its budget's numbers, clauses sorted. Layout, comments, the reason, the
/// budget's limit and window, and the rule's position do not change it; its
/// kind, tools, condition, approval and scope do.
pub fn rule_identity(rule: &ast::Rule) -> String {
    let mut parts: Vec<String> = rule
        .clauses
        .iter()
        .filter_map(|c| match &c.node {
            ast::Clause::Reason(_) => None,
            ast::Clause::AutoApprove(Some(b)) => Some(match b.key {
                None => "auto-approve limit".to_string(),
                Some(ast::BudgetKey::Tenant) => "auto-approve limit per tenant".to_string(),
                Some(ast::BudgetKey::Agent) => "auto-approve limit per agent".to_string(),
            }),
            other => Some(clause_text(other)),
        })
        .collect();
    parts.sort_unstable();
    let (mut text, _) = rule_head(rule);
    for part in parts {
        text.push(' ');
        text.push_str(&part);
    }
    text
}

fn clause_text(c: &ast::Clause) -> String {
    match c {
        ast::Clause::Require(r) => {
            let mut s = match &r.count {
                None => "require approval".to_string(),
                Some(n) if n.node == 1 => "require 1 approval".to_string(),
                Some(n) => format!("require {} approvals", n.node),
            };
            for o in &r.options {
                match &o.node {
                    ast::ApprovalOption::From(g) => {
                        let _ = write!(s, " from {}", string_text(g));
                    }
                    ast::ApprovalOption::Expires(d) => {
                        let _ = write!(s, " expires {}", duration_text(*d));
                    }
                }
            }
            s
        }
        ast::Clause::AutoApprove(None) => "auto-approve".to_string(),
        ast::Clause::AutoApprove(Some(b)) => {
            let window = match b.window {
                ast::Window::Minute => "minute",
                ast::Window::Hour => "hour",
                ast::Window::Day => "day",
            };
            let key = match b.key {
                None => "",
                Some(ast::BudgetKey::Tenant) => " per tenant",
                Some(ast::BudgetKey::Agent) => " per agent",
            };
            format!("auto-approve limit {} per {window}{key}", b.limit.node)
        }
        ast::Clause::Scope(paths) => {
            format!("scope {}", join(paths.iter().map(|p| path_text(&p.node))))
        }
        ast::Clause::When(e) => format!("when {}", expr_text(&e.node)),
        ast::Clause::Reason(r) => format!("reason {}", string_text(&r.node)),
        ast::Clause::Endorse(paths) => {
            format!("endorse {}", join(paths.iter().map(|p| path_text(&p.node))))
        }
    }
}

fn duration_text(d: ast::Duration) -> String {
    let unit = match d.unit {
        ast::DurationUnit::Seconds => "s",
        ast::DurationUnit::Minutes => "m",
        ast::DurationUnit::Hours => "h",
        ast::DurationUnit::Days => "d",
        ast::DurationUnit::Weeks => "w",
    };
    format!("{}{unit}", d.value)
}

fn path_text(p: &ast::Path) -> String {
    let mut s = p.root.node.clone();
    for f in &p.fields {
        s.push('.');
        s.push_str(&f.node);
    }
    s
}

/// Binding strength, loosest first; used to add parentheses a tree needs.
fn level(e: &ast::Expr) -> u8 {
    match e {
        ast::Expr::Or(_) => 0,
        ast::Expr::And(_) => 1,
        ast::Expr::Not(_) => 2,
        ast::Expr::Has(_)
        | ast::Expr::Compare(..)
        | ast::Expr::Quantified(..)
        | ast::Expr::From(..)
        | ast::Expr::ForEach { .. } => 3,
        ast::Expr::Arith(..) => 4,
        _ => 5,
    }
}

/// Whether `e`'s text ends in a quantifier body, which would swallow
/// whatever follows it in a chain (so such a part is parenthesised unless last).
fn ends_open(e: &ast::Expr) -> bool {
    match e {
        ast::Expr::ForEach { .. } => true,
        ast::Expr::Not(inner) => ends_open(&inner.node),
        _ => false,
    }
}

/// The parts of an `and`/`or` chain joined by `word`.
fn chain(parts: &[Spanned<ast::Expr>], min: u8, word: &str) -> String {
    let last = parts.len().saturating_sub(1);
    parts
        .iter()
        .enumerate()
        .map(|(i, p)| match i < last && ends_open(&p.node) {
            true => format!("({})", expr_text(&p.node)),
            false => wrapped(&p.node, min),
        })
        .collect::<Vec<_>>()
        .join(word)
}

fn wrapped(e: &ast::Expr, min: u8) -> String {
    if level(e) < min {
        format!("({})", expr_text(e))
    } else {
        expr_text(e)
    }
}

/// A condition as text, with the parentheses it was written with (and any
/// that a hand-built tree needs to parse back the same).
pub fn expr_text(e: &ast::Expr) -> String {
    match e {
        ast::Expr::Or(parts) => chain(parts, 1, " or "),
        ast::Expr::And(parts) => chain(parts, 2, " and "),
        ast::Expr::Not(inner) => format!("not {}", wrapped(&inner.node, 2)),
        ast::Expr::Has(p) => format!("has {}", path_text(&p.node)),
        ast::Expr::Compare(l, op, r) => {
            format!(
                "{} {} {}",
                wrapped(&l.node, 4),
                op.node.as_str(),
                wrapped(&r.node, 4)
            )
        }
        ast::Expr::Quantified(q, l, op, r) => {
            let q = match q.node {
                ast::Quantifier::All => "all",
                ast::Quantifier::Any => "any",
            };
            format!(
                "{q} {} {} {}",
                wrapped(&l.node, 5),
                op.node.as_str(),
                wrapped(&r.node, 4)
            )
        }
        ast::Expr::ForEach {
            quantifier,
            var,
            list,
            body,
        } => {
            let q = match quantifier.node {
                ast::Quantifier::All => "all",
                ast::Quantifier::Any => "any",
            };
            let list = wrapped(&list.node, 5);
            format!("{q} {} in {list}: {}", var.node, expr_text(&body.node))
        }
        ast::Expr::Call(f, args) => {
            let args: Vec<String> = args.iter().map(|a| wrapped(&a.node, 5)).collect();
            format!("{}({})", f.node, args.join(", "))
        }
        ast::Expr::From(value, source) => {
            format!("{} from {}", wrapped(&value.node, 4), source.node.text())
        }
        ast::Expr::SessionCalls(tool) => format!("session.calls({})", tool.node),
        ast::Expr::Paren(inner) => format!("({})", expr_text(&inner.node)),
        ast::Expr::Arith(l, op, r) => format!(
            "{} {} {}",
            wrapped(&l.node, 4),
            op.node.as_str(),
            wrapped(&r.node, 5)
        ),
        ast::Expr::Duration(d) => duration_text(*d),
        ast::Expr::Path(p) => path_text(p),
        ast::Expr::Literal(l) => literal_text(l),
    }
}

/// A literal as it would be written.
pub fn literal_text(l: &ast::Literal) -> String {
    match l {
        ast::Literal::Str(s) => string_text(s),
        ast::Literal::Int(i) => i.to_string(),
        ast::Literal::Num(text) => text.clone(),
        ast::Literal::Bool(b) => b.to_string(),
        ast::Literal::Null => "null".to_string(),
        ast::Literal::List(items) => {
            format!("[{}]", join(items.iter().map(|i| literal_text(&i.node))))
        }
    }
}

/// A string literal with the escapes the grammar reads back.
pub fn string_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
