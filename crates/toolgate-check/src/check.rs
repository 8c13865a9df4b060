//! The checker: declarations first, then rules, then whole-policy lints.
//! Every problem found is reported; the IR is returned only when none is an error.

mod dates;
mod defaults;
mod expr;
mod lints;
mod mistakes;
mod optional;
mod provenance;
mod risk;
mod rules;
#[cfg(test)]
mod tests;
mod types;
mod urls;

use crate::err::CheckError;
use crate::ir;
// FxHash: policy text comes from its operator, and hashing names is a measurable share of check time.
use rustc_hash::FxHashMap as HashMap;
use toolgate_syntax::ast::{self, Span, Spanned};
use toolgate_syntax::LineIndex;

/// The result of checking one file.
#[derive(Clone, Debug)]
pub struct Checked {
    /// The policy, present when there are no errors (warnings allowed).
    pub policy: Option<ir::Policy>,
    /// Every error and warning, in source order.
    pub diagnostics: Vec<CheckError>,
}

/// Checks a parsed file. `src` is the text it was parsed from.
pub fn check(file: &ast::File, src: &str) -> Checked {
    let mut cx = Checker::new(src);
    cx.declarations(file);
    cx.rules(file);
    cx.lints(file);
    let mut diagnostics = std::mem::take(&mut cx.diags);
    diagnostics.sort_by_key(first_offset);
    let has_error = diagnostics.iter().any(|d| !d.is_warning());
    let policy = (!has_error).then(|| cx.finish());
    Checked {
        policy,
        diagnostics,
    }
}

fn first_offset(d: &CheckError) -> usize {
    use miette::Diagnostic as _;
    d.labels()
        .and_then(|mut l| l.next())
        .map_or(0, |l| l.offset())
}

/// A declared constant.
struct Constant {
    value: Spanned<ast::Literal>,
    span: Span,
    used: bool,
}

pub(crate) struct Checker<'s> {
    src: &'s str,
    lines: LineIndex,
    diags: Vec<CheckError>,
    name: Option<String>,
    envs: Vec<ast::Name>,
    /// `tenants` (empty: not declared).
    tenants: Vec<ast::Name>,
    /// `groups` (empty: not declared).
    groups: Vec<ast::Name>,
    context: Vec<ir::Field>,
    context_spans: HashMap<String, Span>,
    tools: Vec<ir::Tool>,
    tool_index: HashMap<String, ir::ToolId>,
    agents: Vec<ir::Agent>,
    agent_index: HashMap<String, ir::AgentId>,
    constants: HashMap<String, Constant>,
    writes: Option<Spanned<ast::WritesMode>>,
    rules: Vec<ir::Rule>,
    /// `@id`s seen so far, with where.
    rule_ids: HashMap<String, Span>,
    /// Rules with a `when` clause that could not be lowered (an error was
    /// reported): not unconditional, though their IR has no condition.
    failed_conditions: Vec<ir::RuleId>,
    /// Where each rule's `@accepted_risk` reason is written.
    risk_spans: HashMap<ir::RuleId, Span>,
    /// `scope default ...;`: where it is written (pass 1) and, checked (pass 2), its scope.
    default_scope: Option<(Span, Vec<ir::ScopeItem>)>,
    /// `let` values and `in [...]` lists: trusted constants for `from trusted`.
    trusted_constants: Vec<ir::Value>,
}

impl<'s> Checker<'s> {
    fn new(src: &'s str) -> Self {
        Checker {
            src,
            lines: LineIndex::new(src),
            diags: Vec::new(),
            name: None,
            envs: Vec::new(),
            tenants: Vec::new(),
            groups: Vec::new(),
            context: Vec::new(),
            context_spans: HashMap::default(),
            tools: Vec::new(),
            tool_index: HashMap::default(),
            agents: Vec::new(),
            agent_index: HashMap::default(),
            constants: HashMap::default(),
            writes: None,
            rules: Vec::new(),
            rule_ids: HashMap::default(),
            failed_conditions: Vec::new(),
            risk_spans: HashMap::default(),
            default_scope: None,
            trusted_constants: Vec::new(),
        }
    }

    fn finish(self) -> ir::Policy {
        let writes = match self.writes.map(|w| w.node) {
            Some(ast::WritesMode::Enabled) => ir::Writes::Enabled,
            Some(ast::WritesMode::Disabled) => ir::Writes::Disabled,
            None => ir::Writes::Unstated,
        };
        ir::Policy {
            name: self.name,
            envs: self.envs.into_iter().map(|e| e.node).collect(),
            context: self.context,
            tools: self.tools,
            agents: self.agents,
            writes,
            rules: self.rules,
            constants: self.trusted_constants,
        }
    }

    fn duplicate(&mut self, what: &'static str, name: &str, span: Span, first: Span) {
        self.diags.push(CheckError::Duplicate {
            what,
            name: name.to_string(),
            span: span.into(),
            first: first.into(),
        });
    }

    /// Pass 1: every declaration, so rules may refer to things declared after them.
    fn declarations(&mut self, file: &ast::File) {
        let mut seen_policy: Option<Span> = None;
        let mut seen_envs: Option<Span> = None;
        let mut seen_context: Option<Span> = None;
        for item in &file.items {
            match &item.node {
                ast::Item::Policy(name) => {
                    if let Some(first) = seen_policy {
                        self.duplicate("policy statement", &name.node, item.span, first);
                    } else {
                        seen_policy = Some(item.span);
                        self.name = Some(name.node.clone());
                    }
                }
                ast::Item::Envs(envs) => {
                    if let Some(first) = seen_envs {
                        self.duplicate("`envs` statement", "envs", item.span, first);
                        continue;
                    }
                    seen_envs = Some(item.span);
                    self.envs(envs);
                }
                ast::Item::Tenants(names) => {
                    if !self.tenants.is_empty() {
                        let first = self.tenants[0].span;
                        self.duplicate("`tenants` statement", "tenants", item.span, first);
                        continue;
                    }
                    self.tenants = names.clone();
                }
                ast::Item::Groups(names) => {
                    if !self.groups.is_empty() {
                        let first = self.groups[0].span;
                        self.duplicate("`groups` statement", "groups", item.span, first);
                        continue;
                    }
                    self.groups = names.clone();
                }
                ast::Item::Context(fields) => {
                    if let Some(first) = seen_context {
                        self.duplicate("`context` block", "context", item.span, first);
                        continue;
                    }
                    seen_context = Some(item.span);
                    self.context = self.fields(fields, "context field");
                    for f in fields {
                        self.context_spans
                            .entry(f.name.node.clone())
                            .or_insert(f.name.span);
                    }
                }
                ast::Item::Tool(t) => self.tool(t, item.span),
                ast::Item::Let(l) => self.constant(l),
                ast::Item::Writes(mode) => match &self.writes {
                    Some(first) => {
                        let first = first.span;
                        self.duplicate("`writes` statement", "writes", mode.span, first)
                    }
                    None => self.writes = Some(mode.clone()),
                },
                ast::Item::Agent(a) => self.agent(a),
                ast::Item::DefaultScope(_) => self.default_scope_decl(item.span),
                ast::Item::Rule(_) => {}
            }
        }
    }

    fn envs(&mut self, envs: &[ast::Name]) {
        for env in envs {
            match self.envs.iter().find(|e| e.node == env.node) {
                Some(first) => {
                    let first = first.span;
                    self.duplicate("env", &env.node, env.span, first);
                }
                None => self.envs.push(env.clone()),
            }
        }
    }

    fn tool(&mut self, t: &ast::ToolDecl, span: Span) {
        if let Some(&id) = self.tool_index.get(&t.name.node) {
            let first = self.tools[id.0 as usize].span;
            self.duplicate("tool", &t.name.node, t.name.span, first);
            return;
        }
        let schema = t.schema.as_ref().map(|s| self.fields(&s.node, "argument"));
        let (trust, outputs) = self.tool_labels(t);
        let id = ir::ToolId(self.tools.len() as u32);
        self.tool_index.insert(t.name.node.clone(), id);
        self.tools.push(ir::Tool {
            name: t.name.node.clone(),
            class: t.class.node,
            irreversible: t.irreversible,
            schema,
            open: t.open,
            trust,
            outputs,
            span: Span::new(span.start, t.class.span.end),
        });
    }

    fn constant(&mut self, l: &ast::LetDecl) {
        if let Some(first) = self.constants.get(&l.name.node) {
            let first = first.span;
            self.duplicate("constant", &l.name.node, l.name.span, first);
            return;
        }
        // Type errors inside the literal (mixed lists) are reported once, here.
        self.literal_type(&l.value);
        if l.value.node == ast::Literal::Null {
            self.diags.push(CheckError::TypeMismatch {
                message: "a constant cannot be `null`".into(),
                labels: vec![miette::LabeledSpan::new_with_span(
                    Some("`null`".into()),
                    l.value.span,
                )],
                help: Some("compare with `null` directly: `args.x == null`".into()),
            });
        }
        if l.value.node != ast::Literal::Null {
            self.trusted_constants.push(expr::value(&l.value.node));
        }
        let constant = Constant {
            value: l.value.clone(),
            span: l.name.span,
            used: false,
        };
        self.constants.insert(l.name.node.clone(), constant);
    }

    fn agent(&mut self, a: &ast::AgentBlock) {
        if let Some(&id) = self.agent_index.get(&a.name.node) {
            let first = self.agents[id.0 as usize].span;
            self.duplicate("agent", &a.name.node, a.name.span, first);
            return;
        }
        let id = ir::AgentId(self.agents.len() as u32);
        self.agent_index.insert(a.name.node.clone(), id);
        self.agents.push(ir::Agent {
            name: a.name.node.clone(),
            span: a.name.span,
        });
    }

    /// Checks record fields: unique names, known types.
    fn fields(&mut self, fields: &[ast::Field], what: &'static str) -> Vec<ir::Field> {
        let mut seen: HashMap<&str, Span> = HashMap::default();
        let mut out = Vec::new();
        for f in fields {
            if let Some(&first) = seen.get(f.name.node.as_str()) {
                self.duplicate(what, &f.name.node, f.name.span, first);
                continue;
            }
            seen.insert(&f.name.node, f.name.span);
            if let Some(ty) = self.ty(&f.ty) {
                out.push(ir::Field {
                    name: f.name.node.clone(),
                    optional: f.optional,
                    ty,
                    redact: f.redact,
                });
            }
        }
        out
    }

    fn ty(&mut self, t: &Spanned<ast::Type>) -> Option<ir::Type> {
        match &t.node {
            ast::Type::Named(n) => match n.as_str() {
                "string" => Some(ir::Type::String),
                "int" => Some(ir::Type::Int),
                "number" => Some(ir::Type::Number),
                "bool" => Some(ir::Type::Bool),
                "any" => Some(ir::Type::Any),
                "date" => Some(ir::Type::Date),
                "datetime" => Some(ir::Type::Datetime),
                other => {
                    let help = types::unknown_type_help(other);
                    self.diags.push(CheckError::UnknownType {
                        name: other.to_string(),
                        span: t.span.into(),
                        help,
                    });
                    None
                }
            },
            ast::Type::List(inner) => Some(ir::Type::List(Box::new(self.ty(inner)?))),
            ast::Type::Record(fields) => Some(ir::Type::Record(self.fields(fields, "field"))),
            ast::Type::OpenRecord(fields) => {
                Some(ir::Type::OpenRecord(self.fields(fields, "field")))
            }
            ast::Type::Literal(l) => self.literal_only_type(l),
            ast::Type::Union(parts) => self.union_type(parts, t.span),
        }
    }

    fn line_col(&self, offset: usize) -> (usize, usize) {
        self.lines.line_col(self.src, offset)
    }
}
