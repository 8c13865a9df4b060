//! Pass 2: rules. Tool lists are expanded, clauses checked, conditions typed
//! against each named tool's schema, and each rule lowered to an `ir::Rule`.

use super::expr::Scope;
use super::Checker;
use crate::err::CheckError;
use crate::ir;
use crate::suggest;
// FxHash: policy text comes from its operator, and hashing names is a measurable share of check time.
use rustc_hash::FxHashMap as HashMap;
use toolgate_syntax::ast::{self, Span, Spanned};

/// The clauses of one rule, each at most once.
#[derive(Default)]
struct Clauses<'a> {
    require: Option<&'a Spanned<ast::Clause>>,
    auto: Option<&'a Spanned<ast::Clause>>,
    scope: Option<&'a Spanned<ast::Clause>>,
    when: Option<&'a Spanned<ast::Expr>>,
    when_span: Option<Span>,
    reason: Option<&'a Spanned<String>>,
    endorse: Option<&'a Spanned<ast::Clause>>,
    /// The rule has an `@accepted_risk`: its `irreversible` warnings are silenced.
    accepted: bool,
}

fn kind_word(kind: ast::RuleKind) -> &'static str {
    match kind {
        ast::RuleKind::Allow => "allow",
        ast::RuleKind::Write => "write",
        ast::RuleKind::Deny => "deny",
        ast::RuleKind::Floor => "require ... on",
    }
}

fn class_word(class: ast::ToolClass) -> &'static str {
    match class {
        ast::ToolClass::Read => "read",
        ast::ToolClass::Write => "write",
    }
}

impl Checker<'_> {
    pub(super) fn rules(&mut self, file: &ast::File) {
        self.default_scope(file);
        for item in &file.items {
            match &item.node {
                ast::Item::Rule(rule) => self.rule(rule, item.span, None),
                ast::Item::Agent(block) => {
                    let agent = self.agent_index.get(&block.name.node).copied();
                    for rule in &block.rules {
                        self.rule(&rule.node, rule.span, agent);
                    }
                }
                _ => {}
            }
        }
    }

    fn rule(&mut self, rule: &ast::Rule, span: Span, agent: Option<ir::AgentId>) {
        let tools = self.expand_tools(rule);
        let mut clauses = self.clauses(rule);
        let id = ir::RuleId(self.rules.len() as u32);
        let accepted_risk = rule
            .accepted_risk
            .as_ref()
            .map(|r| self.accepted_risk(id, r));
        clauses.accepted = accepted_risk.is_some();
        let effect = self.effect(rule, &clauses, &tools);
        let condition = clauses.when.and_then(|w| self.condition(w, &tools));
        let needs_human = matches!(
            effect,
            ir::Effect::Write {
                approval: ir::Approval::Human(_),
                ..
            }
        );
        let endorse = clauses
            .endorse
            .map(|e| self.endorse(e, needs_human, &tools))
            .unwrap_or_default();
        let (line, column) = self.line_col(span.start);
        let id = ir::RuleId(self.rules.len() as u32);
        if clauses.when.is_some() && condition.is_none() {
            self.failed_conditions.push(id);
        }
        let name = rule.id.as_ref().and_then(|n| self.rule_name(n));
        let owner = agent
            .and_then(|a| self.agents.get(a.0 as usize))
            .map_or("*", |a| a.name.as_str());
        let identity = match &name {
            Some(name) => format!("@id({name})"),
            None => format!("{owner}: {}", toolgate_syntax::rule_identity(rule)),
        };
        self.rules.push(ir::Rule {
            id,
            name,
            identity,
            agent,
            tools,
            effect,
            condition,
            reason: clauses.reason.map(|r| r.node.clone()),
            accepted_risk,
            endorse,
            span,
            line,
            column,
        });
    }

    /// The rule's `@accepted_risk` reason, which must say something.
    fn accepted_risk(&mut self, id: ir::RuleId, risk: &Spanned<String>) -> String {
        if risk.node.trim().is_empty() {
            self.diags.push(CheckError::InvalidAcceptedRisk {
                span: risk.span.into(),
            });
        }
        self.risk_spans.insert(id, risk.span);
        risk.node.clone()
    }

    /// The rule's `@id`, checked to be well formed and unique in the policy.
    fn rule_name(&mut self, id: &Spanned<String>) -> Option<String> {
        let ok = (1..=64).contains(&id.node.len())
            && id
                .node
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'));
        if !ok {
            self.diags.push(CheckError::InvalidRuleId {
                id: id.node.clone(),
                span: id.span.into(),
            });
            return None;
        }
        if let Some(first) = self.rule_ids.get(&id.node) {
            self.diags.push(CheckError::Duplicate {
                what: "rule id",
                name: id.node.clone(),
                span: id.span.into(),
                first: (*first).into(),
            });
            return None;
        }
        self.rule_ids.insert(id.node.clone(), id.span);
        Some(id.node.clone())
    }

    /// Expands names and patterns to tool ids, reporting unknown names and
    /// grants of the wrong class. Grants expand patterns to tools of their class.
    fn expand_tools(&mut self, rule: &ast::Rule) -> Vec<ir::ToolId> {
        let kind = rule.kind.node;
        let want = match kind {
            ast::RuleKind::Allow => Some(ast::ToolClass::Read),
            ast::RuleKind::Write => Some(ast::ToolClass::Write),
            // A floor, like a deny, applies to reads and writes alike.
            ast::RuleKind::Deny | ast::RuleKind::Floor => None,
        };
        let mut out: Vec<ir::ToolId> = Vec::new();
        for name in &rule.tools {
            if name.node.contains('*') {
                self.expand_pattern(name, kind, want, &mut out);
                continue;
            }
            let Some(&id) = self.tool_index.get(&name.node) else {
                let switch = matches!(name.node.as_str(), "enabled" | "disabled")
                    && kind == ast::RuleKind::Write
                    && rule.tools.len() == 1;
                let help = if switch {
                    Some(format!(
                        "the policy-wide switch is `writes {};` (with an `s`)",
                        name.node
                    ))
                } else {
                    suggest::did_you_mean(&name.node, self.tool_index.keys())
                };
                self.diags.push(CheckError::UnknownTool {
                    name: name.node.clone(),
                    span: name.span.into(),
                    help: help.or_else(|| {
                        Some("declare it with `tool NAME read;` or `tool NAME write;`".into())
                    }),
                });
                continue;
            };
            let tool = &self.tools[id.0 as usize];
            if let Some(want) = want.filter(|w| *w != tool.class) {
                let right = if tool.class == ast::ToolClass::Write {
                    "write"
                } else {
                    "allow"
                };
                self.diags.push(CheckError::WrongGrantKeyword {
                    keyword: kind_word(kind),
                    class: class_word(tool.class),
                    tool: tool.name.clone(),
                    span: name.span.into(),
                    decl: tool.span.into(),
                    help: format!(
                        "use `{right} {}` to grant a {} tool (`{}` grants only {} tools)",
                        tool.name,
                        class_word(tool.class),
                        kind_word(kind),
                        class_word(want)
                    ),
                });
                continue;
            }
            if !out.contains(&id) {
                out.push(id);
            }
        }
        out
    }

    fn expand_pattern(
        &mut self,
        pattern: &ast::Name,
        kind: ast::RuleKind,
        want: Option<ast::ToolClass>,
        out: &mut Vec<ir::ToolId>,
    ) {
        if pattern.node == "*" && kind != ast::RuleKind::Floor {
            if let Some(class) = want {
                self.diags.push(CheckError::WildcardGrant {
                    keyword: kind_word(kind),
                    class: class_word(class),
                    span: pattern.span.into(),
                });
            }
        }
        let mut matched = 0;
        for (i, tool) in self.tools.iter().enumerate() {
            if glob_match(&pattern.node, &tool.name) && want.is_none_or(|w| w == tool.class) {
                matched += 1;
                let id = ir::ToolId(i as u32);
                if !out.contains(&id) {
                    out.push(id);
                }
            }
        }
        if matched == 0 {
            let (what, mut help) = match want {
                None => (
                    "declared tool",
                    "check the spelling; `*` matches any run of characters".to_string(),
                ),
                Some(ast::ToolClass::Read) => (
                    "read tool",
                    "`allow` grants read tools; use `write` to grant write tools".to_string(),
                ),
                Some(ast::ToolClass::Write) => (
                    "write tool",
                    "`write` grants write tools; use `allow` to grant read tools".to_string(),
                ),
            };
            // `crm*` for `crm.*`: a `*` inside a segment never crosses a dot.
            if let Some(stem) = pattern.node.strip_suffix('*').filter(|s| !s.ends_with('.')) {
                let dotted = format!("{stem}.*");
                if self.tools.iter().any(|t| glob_match(&dotted, &t.name)) {
                    help = format!(
                        "a `*` inside a segment does not cross dots: did you mean `{dotted}`?"
                    );
                }
            }
            self.diags.push(CheckError::EmptyPattern {
                pattern: pattern.node.clone(),
                what,
                span: pattern.span.into(),
                help,
            });
        }
    }

    /// Sorts clauses by kind, reporting duplicates, conflicts and misplaced ones.
    fn clauses<'a>(&mut self, rule: &'a ast::Rule) -> Clauses<'a> {
        let mut c = Clauses::default();
        let kind = rule.kind.node;
        for clause in &rule.clauses {
            let (word, slot_span) = match &clause.node {
                ast::Clause::Require(_) => ("require", c.require.map(|s| s.span)),
                ast::Clause::AutoApprove(_) => ("auto-approve", c.auto.map(|s| s.span)),
                ast::Clause::Scope(_) => ("scope", c.scope.map(|s| s.span)),
                ast::Clause::When(_) => ("when", c.when_span),
                ast::Clause::Reason(_) => ("reason", c.reason.map(|r| r.span)),
                ast::Clause::Endorse(_) => ("endorse", c.endorse.map(|e| e.span)),
            };
            if let Some(first) = slot_span {
                self.diags.push(CheckError::DuplicateClause {
                    clause: word,
                    span: clause.span.into(),
                    first: first.into(),
                });
                continue;
            }
            if !self.clause_allowed(word, kind, clause.span) {
                continue;
            }
            match &clause.node {
                ast::Clause::Require(_) => c.require = Some(clause),
                ast::Clause::AutoApprove(_) => c.auto = Some(clause),
                ast::Clause::Scope(_) => c.scope = Some(clause),
                ast::Clause::When(e) => {
                    c.when = Some(e);
                    c.when_span = Some(clause.span);
                }
                ast::Clause::Reason(r) => c.reason = Some(r),
                ast::Clause::Endorse(_) => c.endorse = Some(clause),
            }
        }
        if let (Some(req), Some(auto)) = (c.require, c.auto) {
            let (first, second) = if req.span.start < auto.span.start {
                (req, auto)
            } else {
                (auto, req)
            };
            self.diags.push(CheckError::ConflictingApproval {
                span: second.span.into(),
                first: first.span.into(),
            });
        }
        c
    }

    fn clause_allowed(&mut self, word: &'static str, kind: ast::RuleKind, span: Span) -> bool {
        let help = match (word, kind) {
            ("require" | "auto-approve", ast::RuleKind::Deny) => {
                "a deny is never approved; use a `write` rule with `require approval` instead"
            }
            ("scope", ast::RuleKind::Deny) => "a deny loads no credentials, so it has no scope",
            ("auto-approve", ast::RuleKind::Floor) => {
                "a floor only raises approvals; budgets belong on grants (`write`, or `allow` for reads)"
            }
            ("scope", ast::RuleKind::Floor) => {
                "a floor grants nothing, so it has no scope; the grant's scope applies"
            }
            ("endorse", ast::RuleKind::Deny | ast::RuleKind::Floor) => {
                "values are endorsed by the approval of a grant: put `endorse` on the `write` (or `allow ... require approval`) rule"
            }
            _ => return true,
        };
        self.diags.push(CheckError::ClauseNotAllowed {
            clause: word,
            kind: kind_word(kind),
            span: span.into(),
            help: help.to_string(),
        });
        false
    }

    fn effect(&mut self, rule: &ast::Rule, c: &Clauses<'_>, tools: &[ir::ToolId]) -> ir::Effect {
        let scope = match c.scope.map(|s| &s.node) {
            Some(ast::Clause::Scope(items)) => self.scope(items),
            _ => self.rule_default_scope(),
        };
        match rule.kind.node {
            ast::RuleKind::Deny => ir::Effect::Deny,
            ast::RuleKind::Floor => match c.require.map(|r| &r.node) {
                Some(ast::Clause::Require(r)) => ir::Effect::Floor(self.require(r)),
                // The parser puts the floor's `require` first; kept total.
                _ => ir::Effect::Floor(ir::HumanApproval {
                    group: None,
                    count: 1,
                    expires_secs: None,
                }),
            },
            // A read granted with a budget or an approval takes the same
            // effect as a write, so one engine and runtime path serves both.
            ast::RuleKind::Allow if c.auto.is_none() && c.require.is_none() => {
                ir::Effect::Allow { scope }
            }
            ast::RuleKind::Allow | ast::RuleKind::Write => ir::Effect::Write {
                approval: self.approval(c, tools),
                scope,
            },
        }
    }

    /// A grant's approval: its budget, its `require`, or (a `write` without
    /// either) one human approver from no particular group.
    fn approval(&mut self, c: &Clauses<'_>, tools: &[ir::ToolId]) -> ir::Approval {
        match (c.auto, c.require) {
            (Some(auto), _) => self.auto_approve(auto, tools, c.accepted),
            (
                None,
                Some(Spanned {
                    node: ast::Clause::Require(r),
                    ..
                }),
            ) => ir::Approval::Human(self.require(r)),
            _ => ir::Approval::Human(ir::HumanApproval {
                group: None,
                count: 1,
                expires_secs: None,
            }),
        }
    }

    fn require(&mut self, r: &ast::Require) -> ir::HumanApproval {
        let mut count = 1;
        if let Some(n) = &r.count {
            if n.node == 0 {
                self.zero(
                    "the number of approvals",
                    n.span,
                    "write `require approval` for one approver",
                );
            }
            count = u32::try_from(n.node).unwrap_or(u32::MAX).max(1);
        }
        let (mut group, mut expires_secs) = (None, None);
        let mut first: HashMap<&'static str, Span> = HashMap::default();
        for o in &r.options {
            let word = match o.node {
                ast::ApprovalOption::From(_) => "from",
                ast::ApprovalOption::Expires(_) => "expires",
            };
            if let Some(&f) = first.get(word) {
                self.diags.push(CheckError::DuplicateClause {
                    clause: word,
                    span: o.span.into(),
                    first: f.into(),
                });
                continue;
            }
            first.insert(word, o.span);
            match &o.node {
                ast::ApprovalOption::From(g) => {
                    if !self.groups.is_empty() && !self.groups.iter().any(|d| d.node == *g) {
                        self.diags.push(CheckError::UnknownGroup {
                            name: g.clone(),
                            span: o.span.into(),
                            help: super::expr::declared_help(g, &self.groups, "groups"),
                        });
                    }
                    group = Some(g.clone());
                }
                ast::ApprovalOption::Expires(d) => {
                    let secs = duration_secs(*d);
                    if secs == 0 {
                        self.zero(
                            "an approval's expiry",
                            o.span,
                            "write a positive duration such as `15m`",
                        );
                    }
                    expires_secs = Some(secs.max(1));
                }
            }
        }
        ir::HumanApproval {
            group,
            count,
            expires_secs,
        }
    }

    fn auto_approve(
        &mut self,
        clause: &Spanned<ast::Clause>,
        tools: &[ir::ToolId],
        accepted: bool,
    ) -> ir::Approval {
        for id in tools {
            let tool = &self.tools[id.0 as usize];
            if tool.irreversible && !accepted {
                self.diags.push(CheckError::IrreversibleAutoApprove {
                    tool: tool.name.clone(),
                    span: clause.span.into(),
                    decl: tool.span.into(),
                });
            }
        }
        let budget = match &clause.node {
            ast::Clause::AutoApprove(Some(b)) => b,
            _ => {
                self.diags.push(CheckError::AutoApproveWithoutLimit {
                    span: clause.span.into(),
                });
                // Never reached in a returned IR: the error above withholds it.
                return ir::Approval::Human(ir::HumanApproval {
                    group: None,
                    count: 1,
                    expires_secs: None,
                });
            }
        };
        if budget.limit.node == 0 {
            self.zero(
                "a budget's limit",
                budget.limit.span,
                "to forbid auto-approval, remove `auto-approve`",
            );
        }
        let window_secs = match budget.window {
            ast::Window::Minute => 60,
            ast::Window::Hour => 3600,
            ast::Window::Day => 86400,
        };
        let key = match budget.key {
            None => ir::BudgetKey::AgentToolTenant,
            Some(ast::BudgetKey::Tenant) => ir::BudgetKey::ToolTenant,
            Some(ast::BudgetKey::Agent) => ir::BudgetKey::AgentTool,
        };
        ir::Approval::Auto(ir::Budget {
            limit: budget.limit.node,
            window_secs,
            key,
        })
    }

    fn zero(&mut self, what: &'static str, span: Span, help: &'static str) {
        self.diags.push(CheckError::ZeroValue {
            what,
            span: span.into(),
            help,
        });
    }

    pub(super) fn scope(&mut self, items: &[Spanned<ast::Path>]) -> Vec<ir::ScopeItem> {
        let mut out = Vec::new();
        for item in items {
            let root = item.node.root.node.as_str();
            let text = path_text(&item.node);
            let scoped = match (root, item.node.fields.as_slice()) {
                ("tenant", []) => Some(ir::ScopeItem::Tenant),
                ("env", []) => Some(ir::ScopeItem::Env),
                ("ctx", [field]) => {
                    if self.context_spans.contains_key(&field.node) {
                        Some(ir::ScopeItem::Ctx(field.node.clone()))
                    } else {
                        self.unknown_context_field(field);
                        None
                    }
                }
                ("args", _) => {
                    self.diags.push(CheckError::ScopeFromArgs {
                        path: text,
                        span: item.span.into(),
                    });
                    None
                }
                _ => {
                    let help = suggest::did_you_mean(root, ["tenant", "env", "ctx"])
                        .filter(|_| root != "now")
                        .unwrap_or_else(|| {
                            let now = if root == "now" {
                                "`now` is the clock's time, not a credential scope; "
                            } else {
                                ""
                            };
                            format!("{now}a scope is `tenant`, `env` or a declared `ctx.` field")
                        });
                    self.diags.push(CheckError::UnknownScope {
                        path: text,
                        span: item.span.into(),
                        help,
                    });
                    None
                }
            };
            if let Some(s) = scoped.filter(|s| !out.contains(s)) {
                out.push(s);
            }
        }
        out
    }

    pub(super) fn unknown_context_field(&mut self, field: &ast::Name) {
        let help =
            suggest::did_you_mean(&field.node, self.context_spans.keys()).unwrap_or_else(|| {
                format!(
                    "declare it in the `context {{ }}` block, e.g. `{}: string;`",
                    field.node
                )
            });
        self.diags.push(CheckError::UnknownContextField {
            name: field.node.clone(),
            span: field.span.into(),
            help,
        });
    }

    /// Types the condition against each named tool's schema; the IR does not
    /// depend on the tool, so it is built once. Problems found for several
    /// tools at the same place are reported once.
    fn condition(&mut self, when: &Spanned<ast::Expr>, tools: &[ir::ToolId]) -> Option<ir::Expr> {
        let schemas: Vec<Option<ir::ToolId>> = if tools.is_empty() {
            vec![None]
        } else {
            tools.iter().map(|t| Some(*t)).collect()
        };
        let mut result = None;
        let before = self.diags.len();
        for tool in schemas {
            let mut scope = Scope::new(tool);
            let lowered = self.bool_expr(when, &mut scope);
            result = result.or(lowered);
        }
        dedupe_from(&mut self.diags, before);
        result
    }
}

/// Removes diagnostics after `from` that repeat the code and place of an earlier one.
fn dedupe_from(diags: &mut Vec<CheckError>, from: usize) {
    use miette::Diagnostic as _;
    let mut seen = std::collections::HashSet::new();
    let mut i = from;
    while i < diags.len() {
        let d = &diags[i];
        let key = (
            d.code().map(|c| c.to_string()),
            d.labels()
                .and_then(|mut l| l.next())
                .map(|l| (l.offset(), l.len())),
        );
        if seen.insert(key) {
            i += 1;
        } else {
            diags.remove(i);
        }
    }
}

/// Whether `name` matches `pattern`: a `*` that is a whole dotted segment
/// matches any run of characters, dots included (`ticket.*`, `crm.*.get`); a
/// `*` inside a segment (`get_*`, `*_file`) any run within that segment.
/// Dynamic programming over the name: linear in pattern × name, whatever the stars.
pub(crate) fn glob_match(pattern: &str, name: &str) -> bool {
    /// One step of a pattern.
    #[derive(Clone, Copy)]
    enum Step {
        /// This byte.
        Byte(u8),
        /// A whole-segment `*`: any run of characters, dots included.
        AnyRun,
        /// A `*` inside a segment (`get_*`): any run without a dot.
        SegmentRun,
    }
    let mut steps = Vec::new();
    for (i, seg) in pattern.split('.').enumerate() {
        if i > 0 {
            steps.push(Step::Byte(b'.'));
        }
        if seg == "*" {
            steps.push(Step::AnyRun);
            continue;
        }
        steps.extend(seg.bytes().map(|b| match b {
            b'*' => Step::SegmentRun,
            b => Step::Byte(b),
        }));
    }
    // matched[j]: the steps so far match the first j bytes of the name.
    let name = name.as_bytes();
    let mut matched = vec![false; name.len() + 1];
    matched[0] = true;
    for step in steps {
        let mut next = vec![false; name.len() + 1];
        let mut reach = false;
        for j in 0..=name.len() {
            next[j] = match step {
                Step::Byte(b) => j > 0 && matched[j - 1] && name[j - 1] == b,
                Step::AnyRun => {
                    reach |= matched[j];
                    reach
                }
                Step::SegmentRun => {
                    reach = (reach && (j == 0 || name[j - 1] != b'.')) || matched[j];
                    reach
                }
            };
        }
        matched = next;
    }
    matched[name.len()]
}

pub(crate) fn path_text(p: &ast::Path) -> String {
    std::iter::once(p.root.node.as_str())
        .chain(p.fields.iter().map(|f| f.node.as_str()))
        .collect::<Vec<_>>()
        .join(".")
}

fn duration_secs(d: ast::Duration) -> u64 {
    let unit = match d.unit {
        ast::DurationUnit::Seconds => 1,
        ast::DurationUnit::Minutes => 60,
        ast::DurationUnit::Hours => 3600,
        ast::DurationUnit::Days => 86400,
        ast::DurationUnit::Weeks => 604_800,
    };
    d.value.saturating_mul(unit)
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn a_star_inside_a_segment_stays_in_the_segment() {
        assert!(glob_match("get_*", "get_user"));
        assert!(glob_match("get_*", "get_"));
        assert!(!glob_match("get_*", "get_user.delete"));
        assert!(glob_match("*_file", "read_file"));
        assert!(!glob_match("*_file", "fs.read_file"));
        assert!(glob_match("fs.*_file", "fs.read_file"));
        assert!(glob_match("crm.*.get", "crm.contacts.get"));
        assert!(
            glob_match("crm.*.get", "crm.a.b.get"),
            "a whole-segment `*` crosses dots"
        );
        assert!(!glob_match("crm*", "crm.get"));
        assert!(glob_match("crm*", "crm_v2"));
        assert!(glob_match("a*b*c", "axxbyyc"));
        assert!(glob_match("**", "ab"));
    }

    #[test]
    fn tool_patterns_match_any_run_of_characters() {
        assert!(glob_match("*", "a.b"));
        assert!(glob_match("ticket.*", "ticket.close"));
        assert!(!glob_match("ticket.*", "tickets.close"));
        assert!(glob_match("*.read", "kb.read"));
        assert!(!glob_match("a*b*c", "axxbyy"));
        assert!(
            !glob_match("ab*ba", "aba"),
            "prefix and suffix may not overlap"
        );
    }
}
