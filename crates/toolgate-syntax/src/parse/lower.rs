//! Lowering of pest pairs into the AST. The only code that sees `Pair`.
//!
//! The grammar guarantees the shape of every pair; where the code still has to
//! handle a shape it cannot get, it returns [`SyntaxError::Internal`] instead of
//! panicking, and the fuzz target fails on that error.

use super::{Rule, MAX_DEPTH};
use crate::ast::{self, Spanned};
use crate::err::SyntaxError;
use pest::iterators::{Pair, Pairs};

type Result<T> = std::result::Result<T, SyntaxError>;

/// Appends every comment under `pairs` (shifted by `offset`) to `out`.
pub(super) fn collect_comments(pairs: Pairs<'_, Rule>, offset: usize, out: &mut Vec<ast::Comment>) {
    for p in pairs.flatten().filter(|p| p.as_rule() == Rule::COMMENT) {
        let s = p.as_span();
        if out
            .last()
            .is_some_and(|c| c.span.start >= offset + s.start())
        {
            continue;
        }
        out.push(ast::Comment {
            text: p.as_str().trim_end().to_string(),
            span: ast::Span::new(offset + s.start(), offset + s.end()),
        });
    }
}

/// Lowers every item under the pairs of an `item_run` or `item_start` parse.
/// `comments` are the comments inside them (absolute spans): spans of nodes
/// are trimmed of trailing whitespace and comments, which pest includes when
/// an optional or repeated part at the end of a rule did not match.
pub(super) fn items(
    pairs: Pairs<'_, Rule>,
    offset: usize,
    src: &str,
    comments: &[ast::Comment],
) -> Vec<Result<Spanned<ast::Item>>> {
    let comment_at_end = comments
        .iter()
        .map(|c| (c.span.end, c.span.start))
        .collect();
    let mut lower = Lower {
        offset,
        depth: 0,
        src,
        comment_at_end,
    };
    pairs
        .flat_map(|p| p.into_inner())
        .filter(|p| !matches!(p.as_rule(), Rule::COMMENT | Rule::EOI))
        .map(|item| {
            lower.depth = 0;
            lower.item(item)
        })
        .collect()
}

fn internal(detail: &str, span: ast::Span) -> SyntaxError {
    SyntaxError::Internal {
        detail: detail.to_string(),
        span: span.into(),
    }
}

/// Whether a pair is punctuation or a comment: structure the AST does not keep.
fn is_noise(rule: Rule) -> bool {
    matches!(
        rule,
        Rule::COMMENT
            | Rule::semi
            | Rule::colon
            | Rule::eq
            | Rule::lbrace
            | Rule::rbrace
            | Rule::lparen
            | Rule::rparen
            | Rule::lbracket
            | Rule::rbracket
            | Rule::langle
            | Rule::rangle
            | Rule::pipe
    )
}

/// Whether a record type ends with `..`.
fn is_open(record: &Pair<'_, Rule>) -> bool {
    kids(record.clone()).any(|c| c.as_rule() == Rule::rest)
}

/// Whether a pair is one atom of a type (a union is a run of them).
fn is_type_atom(rule: Rule) -> bool {
    matches!(
        rule,
        Rule::type_name | Rule::list_type | Rule::record_type | Rule::string | Rule::int
    )
}

/// The meaningful children of a pair.
fn kids(p: Pair<'_, Rule>) -> impl Iterator<Item = Pair<'_, Rule>> {
    p.into_inner().filter(|c| !is_noise(c.as_rule()))
}

/// A rule's `@id` and `@accepted_risk`, if any, and its clauses after the head.
type RuleRest = (
    Option<Spanned<String>>,
    Option<Spanned<String>>,
    Vec<Spanned<ast::Clause>>,
);

struct Lower<'s> {
    offset: usize,
    depth: usize,
    /// The whole source text.
    src: &'s str,
    /// Comment start by comment end, for trimming spans.
    comment_at_end: std::collections::HashMap<usize, usize>,
}

impl Lower<'_> {
    fn span(&self, p: &Pair<'_, Rule>) -> ast::Span {
        let s = p.as_span();
        let start = self.offset + s.start();
        let mut end = self.offset + s.end();
        loop {
            let text = self.src.get(start..end).unwrap_or("");
            end = start + text.trim_end().len();
            match self.comment_at_end.get(&end) {
                Some(&c) if c > start => end = c,
                _ => break,
            }
        }
        ast::Span::new(start, end)
    }

    fn name(&self, p: &Pair<'_, Rule>) -> ast::Name {
        Spanned::new(p.as_str().to_string(), self.span(p))
    }

    /// The first child with rule `rule`, or an internal error.
    fn child<'i>(&self, p: &Pair<'i, Rule>, rule: Rule) -> Result<Pair<'i, Rule>> {
        kids(p.clone())
            .find(|c| c.as_rule() == rule)
            .ok_or_else(|| internal(&format!("missing {rule:?}"), self.span(p)))
    }

    /// Enters one level of nesting; fails past [`MAX_DEPTH`].
    fn enter(&mut self, span: ast::Span) -> Result<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(SyntaxError::TooDeep {
                limit: MAX_DEPTH,
                span: span.into(),
            });
        }
        Ok(())
    }

    fn item(&mut self, p: Pair<'_, Rule>) -> Result<Spanned<ast::Item>> {
        let span = self.span(&p);
        let item = match p.as_rule() {
            Rule::policy_decl => ast::Item::Policy(self.name(&self.child(&p, Rule::name)?)),
            Rule::envs_decl => ast::Item::Envs(self.names(p)),
            Rule::tenants_decl => ast::Item::Tenants(self.names(p)),
            Rule::groups_decl => ast::Item::Groups(self.names(p)),
            Rule::default_scope_decl => ast::Item::DefaultScope(
                kids(p)
                    .filter(|c| c.as_rule() == Rule::path)
                    .map(|c| Ok(Spanned::new(self.path(c.clone())?, self.span(&c))))
                    .collect::<Result<_>>()?,
            ),
            Rule::context_decl => ast::Item::Context(self.fields(p)?),
            Rule::tool_decl => ast::Item::Tool(self.tool_decl(p)?),
            Rule::let_decl => ast::Item::Let(ast::LetDecl {
                name: self.name(&self.child(&p, Rule::ident)?),
                value: self.literal(self.last(&p)?)?,
            }),
            Rule::writes_decl => {
                let mode = self.child(&p, Rule::writes_mode)?;
                let node = if mode.as_str() == "enabled" {
                    ast::WritesMode::Enabled
                } else {
                    ast::WritesMode::Disabled
                };
                ast::Item::Writes(Spanned::new(node, self.span(&mode)))
            }
            Rule::agent_block => ast::Item::Agent(self.agent(p)?),
            Rule::policy_rule => ast::Item::Rule(self.rule(p)?),
            other => return Err(internal(&format!("unexpected item {other:?}"), span)),
        };
        Ok(Spanned::new(item, span))
    }

    fn last<'i>(&self, p: &Pair<'i, Rule>) -> Result<Pair<'i, Rule>> {
        kids(p.clone())
            .last()
            .ok_or_else(|| internal("empty pair", self.span(p)))
    }

    fn tool_decl(&mut self, p: Pair<'_, Rule>) -> Result<ast::ToolDecl> {
        let class = self.child(&p, Rule::tool_class)?;
        let class_node = if class.as_str() == "read" {
            ast::ToolClass::Read
        } else {
            ast::ToolClass::Write
        };
        let record = kids(p.clone()).find(|c| c.as_rule() == Rule::record_type);
        let open = record.clone().is_some_and(|r| is_open(&r));
        let schema = match record {
            Some(r) => Some(Spanned::new(self.fields(r.clone())?, self.span(&r))),
            None => None,
        };
        let trust = kids(p.clone())
            .find(|c| c.as_rule() == Rule::trust)
            .map(|t| Spanned::new(trust_of(&t), self.span(&t)));
        let outputs = match kids(p.clone()).find(|c| c.as_rule() == Rule::output_labels) {
            Some(o) => Some(Spanned::new(self.output_labels(o.clone())?, self.span(&o))),
            None => None,
        };
        Ok(ast::ToolDecl {
            name: self.name(&self.child(&p, Rule::tool_name)?),
            class: Spanned::new(class_node, self.span(&class)),
            irreversible: kids(p).any(|c| c.as_rule() == Rule::irreversible),
            schema,
            open,
            trust,
            outputs,
        })
    }

    /// The entries of `output { PATH: LABEL, ... }`.
    fn output_labels(&self, p: Pair<'_, Rule>) -> Result<Vec<ast::OutputLabel>> {
        kids(p)
            .filter(|c| c.as_rule() == Rule::output_label)
            .map(|c| {
                let path = self.child(&c, Rule::output_path)?;
                let trust = self.child(&c, Rule::trust)?;
                Ok(ast::OutputLabel {
                    path: Spanned::new(output_path(path.as_str()), self.span(&path)),
                    trust: Spanned::new(trust_of(&trust), self.span(&trust)),
                })
            })
            .collect()
    }

    fn agent(&mut self, p: Pair<'_, Rule>) -> Result<ast::AgentBlock> {
        let name = self.name(&self.child(&p, Rule::name)?);
        let mut rules = Vec::new();
        for r in kids(p).filter(|c| c.as_rule() == Rule::policy_rule) {
            let span = self.span(&r);
            rules.push(Spanned::new(self.rule(r)?, span));
        }
        Ok(ast::AgentBlock { name, rules })
    }

    /// The fields of a `context` block or a record type.
    fn fields(&mut self, p: Pair<'_, Rule>) -> Result<Vec<ast::Field>> {
        kids(p)
            .filter(|c| c.as_rule() == Rule::field)
            .map(|f| self.field(f))
            .collect()
    }

    fn field(&mut self, p: Pair<'_, Rule>) -> Result<ast::Field> {
        let name = self.name(&self.child(&p, Rule::field_name)?);
        let optional = kids(p.clone()).any(|c| c.as_rule() == Rule::optional);
        let redact = kids(p.clone()).any(|c| c.as_rule() == Rule::redact);
        let ty = self.type_of(&p)?;
        Ok(ast::Field {
            name,
            optional,
            ty,
            redact,
        })
    }

    /// The type among `p`'s children: one atom, or a union of atoms
    /// (`T | null`, `"a" | "b"`), which counts one level of nesting.
    fn type_of(&mut self, p: &Pair<'_, Rule>) -> Result<Spanned<ast::Type>> {
        let atoms: Vec<Pair<'_, Rule>> = kids(p.clone())
            .filter(|c| is_type_atom(c.as_rule()))
            .collect();
        let Some(first) = atoms.first() else {
            return Err(internal("missing type", self.span(p)));
        };
        if atoms.len() == 1 {
            return self.ty(first.clone());
        }
        let mut span = self.span(first);
        self.enter(span)?;
        let mut parts = Vec::with_capacity(atoms.len());
        for a in atoms {
            let part = self.ty(a)?;
            span = span.to(part.span);
            parts.push(part);
        }
        self.depth -= 1;
        Ok(Spanned::new(ast::Type::Union(parts), span))
    }

    fn ty(&mut self, p: Pair<'_, Rule>) -> Result<Spanned<ast::Type>> {
        let span = self.span(&p);
        self.enter(span)?;
        let node = match p.as_rule() {
            Rule::type_name => ast::Type::Named(p.as_str().to_string()),
            Rule::list_type => ast::Type::List(Box::new(self.type_of(&p)?)),
            Rule::record_type if is_open(&p) => ast::Type::OpenRecord(self.fields(p)?),
            Rule::record_type => ast::Type::Record(self.fields(p)?),
            Rule::string | Rule::int => ast::Type::Literal(self.literal(p)?.node),
            other => return Err(internal(&format!("unexpected type {other:?}"), span)),
        };
        self.depth -= 1;
        Ok(Spanned::new(node, span))
    }

    /// The names of an `envs`, `tenants` or `groups` statement.
    fn names(&self, p: Pair<'_, Rule>) -> Vec<ast::Name> {
        kids(p)
            .filter(|c| c.as_rule() == Rule::name)
            .map(|c| self.name(&c))
            .collect()
    }

    fn rule(&mut self, p: Pair<'_, Rule>) -> Result<ast::Rule> {
        if let Some(head) = kids(p.clone()).find(|c| c.as_rule() == Rule::floor_head) {
            return self.floor(p, head);
        }
        let kind = self.child(&p, Rule::rule_kind)?;
        let kind_node = match kind.as_str() {
            "allow" => ast::RuleKind::Allow,
            "write" => ast::RuleKind::Write,
            _ => ast::RuleKind::Deny,
        };
        let tools = kids(self.child(&p, Rule::tool_list)?)
            .map(|t| self.name(&t))
            .collect::<Vec<_>>();
        let (id, accepted_risk, clauses) = self.rule_rest(p)?;
        Ok(ast::Rule {
            id,
            accepted_risk,
            kind: Spanned::new(kind_node, self.span(&kind)),
            tools,
            clauses,
        })
    }

    /// `require ... on TOOLS clauses;`: the `require` clause becomes the first clause.
    fn floor(&mut self, p: Pair<'_, Rule>, head: Pair<'_, Rule>) -> Result<ast::Rule> {
        let require = self.child(&head, Rule::require_clause)?;
        let require_span = self.span(&require);
        let kind_span = self.span(&self.child(&require, Rule::kw_require)?);
        let tools = kids(self.child(&head, Rule::tool_list)?)
            .map(|t| self.name(&t))
            .collect::<Vec<_>>();
        let endorse = endorse_in_require(&require);
        let mut clauses = vec![Spanned::new(self.clause(require)?, require_span)];
        for e in endorse {
            let span = self.span(&e);
            clauses.push(Spanned::new(self.clause(e)?, span));
        }
        let (id, accepted_risk, rest) = self.rule_rest(p)?;
        clauses.extend(rest);
        Ok(ast::Rule {
            id,
            accepted_risk,
            kind: Spanned::new(ast::RuleKind::Floor, kind_span),
            tools,
            clauses,
        })
    }

    /// A rule's `@id`, its `@accepted_risk` and its clauses after the head.
    fn rule_rest(&mut self, p: Pair<'_, Rule>) -> Result<RuleRest> {
        let mut clauses = Vec::new();
        let (mut id, mut risk) = (None, None);
        for c in kids(p) {
            match c.as_rule() {
                Rule::rule_kind | Rule::tool_list | Rule::floor_head => {}
                Rule::rule_id => id = Some(self.string(self.child(&c, Rule::string)?)?),
                Rule::accepted_risk => risk = Some(self.string(self.child(&c, Rule::string)?)?),
                _ => {
                    let span = self.span(&c);
                    let endorse = endorse_in_require(&c);
                    clauses.push(Spanned::new(self.clause(c)?, span));
                    for e in endorse {
                        let span = self.span(&e);
                        clauses.push(Spanned::new(self.clause(e)?, span));
                    }
                }
            }
        }
        Ok((id, risk, clauses))
    }

    fn clause(&mut self, p: Pair<'_, Rule>) -> Result<ast::Clause> {
        let span = self.span(&p);
        Ok(match p.as_rule() {
            Rule::require_clause => ast::Clause::Require(self.require(p)?),
            Rule::auto_clause => ast::Clause::AutoApprove(match kids(p).nth(1) {
                Some(b) => Some(self.budget(b)?),
                None => None,
            }),
            Rule::scope_clause => ast::Clause::Scope(self.paths(p)?),
            Rule::when_clause => ast::Clause::When(self.expr(self.last(&p)?)?),
            Rule::reason_clause => ast::Clause::Reason(self.string(self.last(&p)?)?),
            Rule::endorse_clause => ast::Clause::Endorse(self.paths(p)?),
            other => return Err(internal(&format!("unexpected clause {other:?}"), span)),
        })
    }

    /// The paths of a `scope` or `endorse` clause.
    fn paths(&self, p: Pair<'_, Rule>) -> Result<Vec<Spanned<ast::Path>>> {
        kids(p)
            .filter(|c| c.as_rule() == Rule::path)
            .map(|c| Ok(Spanned::new(self.path(c.clone())?, self.span(&c))))
            .collect()
    }

    fn require(&mut self, p: Pair<'_, Rule>) -> Result<ast::Require> {
        let mut count = None;
        let mut options = Vec::new();
        for c in kids(p) {
            let span = self.span(&c);
            match c.as_rule() {
                Rule::int => count = Some(self.count(&c)?),
                Rule::from_opt => {
                    let group = self.string(self.last(&c)?)?.node;
                    options.push(Spanned::new(ast::ApprovalOption::From(group), span));
                }
                Rule::expires_opt => {
                    let d = self.duration(&self.last(&c)?)?;
                    options.push(Spanned::new(ast::ApprovalOption::Expires(d), span));
                }
                _ => {}
            }
        }
        Ok(ast::Require { count, options })
    }

    fn budget(&mut self, p: Pair<'_, Rule>) -> Result<ast::Budget> {
        let limit = self.count(&self.child(&p, Rule::int)?)?;
        let window = match self.child(&p, Rule::window)?.as_str() {
            "minute" => ast::Window::Minute,
            "hour" => ast::Window::Hour,
            _ => ast::Window::Day,
        };
        let key = match kids(p).find(|c| c.as_rule() == Rule::budget_key) {
            Some(k) if k.as_str().ends_with("tenant") => Some(ast::BudgetKey::Tenant),
            Some(_) => Some(ast::BudgetKey::Agent),
            None => None,
        };
        Ok(ast::Budget { limit, window, key })
    }

    /// A non-negative count (approvals, budget limit).
    fn count(&self, p: &Pair<'_, Rule>) -> Result<Spanned<u64>> {
        let span = self.span(p);
        let n = p
            .as_str()
            .parse::<u64>()
            .map_err(|_| SyntaxError::NumberOutOfRange {
                text: p.as_str().to_string(),
                span: span.into(),
            })?;
        Ok(Spanned::new(n, span))
    }

    fn duration(&self, p: &Pair<'_, Rule>) -> Result<ast::Duration> {
        let text = p.as_str();
        let digits = text.trim_end_matches(|c: char| !c.is_ascii_digit());
        let unit = match &text[digits.len()..] {
            "s" => ast::DurationUnit::Seconds,
            "m" => ast::DurationUnit::Minutes,
            "h" => ast::DurationUnit::Hours,
            "d" => ast::DurationUnit::Days,
            "w" => ast::DurationUnit::Weeks,
            other => {
                return Err(SyntaxError::UnknownDurationUnit {
                    text: text.to_string(),
                    unit: other.to_string(),
                    span: self.span(p).into(),
                })
            }
        };
        let value = digits
            .parse::<u64>()
            .map_err(|_| SyntaxError::NumberOutOfRange {
                text: text.to_string(),
                span: self.span(p).into(),
            })?;
        Ok(ast::Duration { value, unit })
    }

    /// `all|any VAR in LIST: BODY`; counts towards [`MAX_DEPTH`].
    fn for_each(&mut self, p: Pair<'_, Rule>, span: ast::Span) -> Result<Spanned<ast::Expr>> {
        let mut it = kids(p).filter(|c| !matches!(c.as_rule(), Rule::kw_in | Rule::colon));
        let (q, var, list, body) = (it.next(), it.next(), it.next(), it.next());
        let (Some(q), Some(var), Some(list), Some(body)) = (q, var, list, body) else {
            return Err(internal("malformed quantifier", span));
        };
        let quant = if q.as_str() == "all" {
            ast::Quantifier::All
        } else {
            ast::Quantifier::Any
        };
        self.enter(span)?;
        let list = self.expr(list);
        let body = self.expr(body);
        self.depth -= 1;
        let node = ast::Expr::ForEach {
            quantifier: Spanned::new(quant, self.span(&q)),
            var: self.name(&var),
            list: Box::new(list?),
            body: Box::new(body?),
        };
        Ok(Spanned::new(node, span))
    }

    /// Parentheses and calls count towards [`MAX_DEPTH`] (as do `not`s, lists
    /// and types); the grammar's own layers in between do not.
    fn expr(&mut self, p: Pair<'_, Rule>) -> Result<Spanned<ast::Expr>> {
        let p = skip_layers(p);
        let span = self.span(&p);
        let nests = matches!(p.as_rule(), Rule::paren | Rule::call);
        if nests {
            self.enter(span)?;
        }
        let result = self.expr_inner(p, span);
        if nests {
            self.depth -= 1;
        }
        result
    }

    fn expr_inner(&mut self, p: Pair<'_, Rule>, span: ast::Span) -> Result<Spanned<ast::Expr>> {
        let node = match p.as_rule() {
            Rule::expr | Rule::and_expr => {
                let or = p.as_rule() == Rule::expr;
                let mut parts = Vec::new();
                for c in kids(p) {
                    if !matches!(c.as_rule(), Rule::kw_or | Rule::kw_and) {
                        parts.push(self.expr(c)?);
                    }
                }
                if parts.len() == 1 {
                    return parts.pop().ok_or_else(|| internal("empty chain", span));
                }
                if or {
                    ast::Expr::Or(parts)
                } else {
                    ast::Expr::And(parts)
                }
            }
            Rule::not_expr => return self.not_expr(p, span),
            Rule::quantified => {
                let mut it = kids(p);
                let (q, list, op) = (it.next(), it.next(), it.next());
                let (Some(q), Some(list), Some(op)) = (q, list, op) else {
                    return Err(internal("malformed quantifier", span));
                };
                let quant = if q.as_str() == "all" {
                    ast::Quantifier::All
                } else {
                    ast::Quantifier::Any
                };
                ast::Expr::Quantified(
                    Spanned::new(quant, self.span(&q)),
                    Box::new(self.expr(list)?),
                    self.cmp_op(&op)?,
                    Box::new(self.sum(it.collect(), span)?),
                )
            }
            Rule::for_each => return self.for_each(p, span),
            Rule::has_expr => {
                let path = self.child(&p, Rule::path)?;
                ast::Expr::Has(Spanned::new(self.path(path.clone())?, self.span(&path)))
            }
            Rule::comparison => {
                let mut lhs: Vec<_> = kids(p).collect();
                if lhs.last().is_some_and(|c| c.as_rule() == Rule::from_source) {
                    let source = lhs.pop().ok_or_else(|| internal("missing source", span))?;
                    let value = self.sum(lhs, span)?;
                    let source = Spanned::new(self.source(&source)?, self.span(&source));
                    return Ok(Spanned::new(ast::Expr::From(Box::new(value), source), span));
                }
                let Some(at) = lhs.iter().position(|c| c.as_rule() == Rule::cmp_op) else {
                    return self.sum(lhs, span);
                };
                let mut rhs = lhs.split_off(at);
                let op = rhs.remove(0);
                ast::Expr::Compare(
                    Box::new(self.sum(lhs, span)?),
                    self.cmp_op(&op)?,
                    Box::new(self.sum(rhs, span)?),
                )
            }
            Rule::span_lit => ast::Expr::Duration(self.duration(&p)?),
            Rule::paren => ast::Expr::Paren(Box::new(self.expr(self.child(&p, Rule::expr)?)?)),
            Rule::call => {
                let name = self.name(&self.child(&p, Rule::func_name)?);
                let args = kids(p)
                    .filter(|c| c.as_rule() != Rule::func_name)
                    .map(|c| self.expr(c))
                    .collect::<Result<Vec<_>>>()?;
                ast::Expr::Call(name, args)
            }
            Rule::session_calls => {
                ast::Expr::SessionCalls(self.name(&self.child(&p, Rule::tool_name)?))
            }
            Rule::path => ast::Expr::Path(self.path(p)?),
            Rule::string | Rule::number | Rule::int | Rule::bool | Rule::null_lit | Rule::list => {
                return Ok(self.literal(p)?.map_node(ast::Expr::Literal))
            }
            other => return Err(internal(&format!("unexpected expression {other:?}"), span)),
        };
        Ok(Spanned::new(node, span))
    }

    /// `a + b - c`: operands and `arith_op`s, folded to the left.
    fn sum(&mut self, parts: Vec<Pair<'_, Rule>>, span: ast::Span) -> Result<Spanned<ast::Expr>> {
        let mut it = parts.into_iter();
        let first = it.next().ok_or_else(|| internal("empty operand", span))?;
        let mut acc = self.expr(first)?;
        while let (Some(op), Some(rhs)) = (it.next(), it.next()) {
            let op = Spanned::new(
                match op.as_str() {
                    "+" => ast::ArithOp::Add,
                    _ => ast::ArithOp::Sub,
                },
                self.span(&op),
            );
            let rhs = self.expr(rhs)?;
            let s = acc.span.to(rhs.span);
            acc = Spanned::new(ast::Expr::Arith(Box::new(acc), op, Box::new(rhs)), s);
        }
        Ok(acc)
    }

    fn not_expr(&mut self, p: Pair<'_, Rule>, span: ast::Span) -> Result<Spanned<ast::Expr>> {
        let mut nots = Vec::new();
        let mut inner = None;
        for c in kids(p) {
            if c.as_rule() == Rule::not_prefix {
                self.enter(span)?;
                nots.push(self.span(&c).start);
            } else {
                inner = Some(self.expr(c)?);
            }
        }
        self.depth -= nots.len();
        let mut e = inner.ok_or_else(|| internal("`not` without operand", span))?;
        for start in nots.into_iter().rev() {
            let s = ast::Span::new(start, e.span.end);
            e = Spanned::new(ast::Expr::Not(Box::new(e)), s);
        }
        Ok(e)
    }

    /// The source after `from`.
    fn source(&self, p: &Pair<'_, Rule>) -> Result<ast::Source> {
        let mut it = kids(p.clone()).skip(1);
        let word = it
            .next()
            .ok_or_else(|| internal("empty source", self.span(p)))?;
        Ok(match word.as_rule() {
            Rule::kw_user => ast::Source::User,
            Rule::kw_ctx => ast::Source::Ctx,
            Rule::kw_trusted => ast::Source::Trusted,
            _ => {
                let name = it
                    .next()
                    .ok_or_else(|| internal("missing tool name", self.span(p)))?;
                ast::Source::Tool(self.name(&name))
            }
        })
    }

    fn cmp_op(&self, p: &Pair<'_, Rule>) -> Result<Spanned<ast::CmpOp>> {
        let inner = kids(p.clone())
            .next()
            .ok_or_else(|| internal("empty operator", self.span(p)))?;
        let op = match inner.as_rule() {
            Rule::op_eq => ast::CmpOp::Eq,
            Rule::op_ne => ast::CmpOp::Ne,
            Rule::op_lt => ast::CmpOp::Lt,
            Rule::op_le => ast::CmpOp::Le,
            Rule::op_gt => ast::CmpOp::Gt,
            Rule::op_ge => ast::CmpOp::Ge,
            Rule::op_in => ast::CmpOp::In,
            Rule::op_not_in => ast::CmpOp::NotIn,
            Rule::kw_starts_with => ast::CmpOp::StartsWith,
            Rule::kw_ends_with => ast::CmpOp::EndsWith,
            Rule::kw_contains => ast::CmpOp::Contains,
            Rule::kw_matches => ast::CmpOp::Matches,
            Rule::op_matches_regex => ast::CmpOp::MatchesRegex,
            other => {
                return Err(internal(
                    &format!("unexpected operator {other:?}"),
                    self.span(p),
                ))
            }
        };
        Ok(Spanned::new(op, self.span(p)))
    }

    fn path(&self, p: Pair<'_, Rule>) -> Result<ast::Path> {
        let mut segs = kids(p.clone()).map(|s| self.name(&s));
        let root = segs
            .next()
            .ok_or_else(|| internal("empty path", self.span(&p)))?;
        Ok(ast::Path {
            root,
            fields: segs.collect(),
        })
    }

    fn literal(&mut self, p: Pair<'_, Rule>) -> Result<Spanned<ast::Literal>> {
        let span = self.span(&p);
        let node = match p.as_rule() {
            Rule::string => ast::Literal::Str(self.string(p)?.node),
            Rule::int => ast::Literal::Int(p.as_str().parse::<i64>().map_err(|_| {
                SyntaxError::NumberOutOfRange {
                    text: p.as_str().to_string(),
                    span: span.into(),
                }
            })?),
            Rule::number => {
                let text = p.as_str();
                if !text.parse::<f64>().is_ok_and(f64::is_finite) {
                    return Err(SyntaxError::NumberOutOfRange {
                        text: text.to_string(),
                        span: span.into(),
                    });
                }
                ast::Literal::Num(text.to_string())
            }
            Rule::bool => ast::Literal::Bool(p.as_str() == "true"),
            Rule::null_lit => ast::Literal::Null,
            Rule::list => {
                self.enter(span)?;
                let items = kids(p)
                    .map(|c| self.literal(c))
                    .collect::<Result<Vec<_>>>()?;
                self.depth -= 1;
                ast::Literal::List(items)
            }
            other => return Err(internal(&format!("unexpected literal {other:?}"), span)),
        };
        Ok(Spanned::new(node, span))
    }

    /// Decodes a string literal's escapes.
    fn string(&self, p: Pair<'_, Rule>) -> Result<Spanned<String>> {
        let span = self.span(&p);
        let body = p
            .as_str()
            .strip_prefix('"')
            .and_then(|s| s.strip_suffix('"'))
            .unwrap_or("");
        let body_start = span.start + 1;
        let mut out = String::with_capacity(body.len());
        let mut chars = body.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            let bad = |len: usize| SyntaxError::InvalidEscape {
                escape: body[i..(i + len).min(body.len())].to_string(),
                span: ast::Span::new(body_start + i, body_start + (i + len).min(body.len())).into(),
            };
            match chars.next() {
                Some((_, '"')) => out.push('"'),
                Some((_, '\\')) => out.push('\\'),
                Some((_, 'n')) => out.push('\n'),
                Some((_, 'r')) => out.push('\r'),
                Some((_, 't')) => out.push('\t'),
                Some((_, 'u')) => {
                    let rest = &body[i + 2..];
                    let close = rest.find('}').filter(|_| rest.starts_with('{'));
                    let hex = |end: usize| {
                        let digits = &rest[1..end];
                        let valid =
                            !digits.is_empty() && digits.chars().all(|c| c.is_ascii_hexdigit());
                        valid
                            .then(|| u32::from_str_radix(digits, 16).ok())
                            .flatten()
                    };
                    let decoded = close.and_then(hex).and_then(char::from_u32);
                    match (close, decoded) {
                        (Some(end), Some(ch)) => {
                            out.push(ch);
                            for _ in 0..=end {
                                chars.next();
                            }
                        }
                        _ => return Err(bad(2 + close.map_or(0, |e| e + 1))),
                    }
                }
                Some((_, other)) => return Err(bad(1 + other.len_utf8())),
                None => return Err(bad(1)),
            }
        }
        Ok(Spanned::new(out, span))
    }
}

/// `trusted` or `untrusted`.
fn trust_of(p: &Pair<'_, Rule>) -> ast::Trust {
    if p.as_str() == "trusted" {
        ast::Trust::Trusted
    } else {
        ast::Trust::Untrusted
    }
}

/// `a[].b` as segments.
fn output_path(text: &str) -> Vec<ast::OutputSeg> {
    let mut segs = Vec::new();
    for part in text.split('.') {
        let (name, each) = match part.strip_suffix("[]") {
            Some(name) => (name, true),
            None => (part, false),
        };
        if !name.is_empty() {
            segs.push(ast::OutputSeg::Field(name.to_string()));
        }
        if each {
            segs.push(ast::OutputSeg::Each);
        }
    }
    segs
}

/// The `endorse` clauses written among a `require` clause's options: they
/// become clauses of their own, right after it.
fn endorse_in_require<'i>(p: &Pair<'i, Rule>) -> Vec<Pair<'i, Rule>> {
    if p.as_rule() != Rule::require_clause {
        return Vec::new();
    }
    kids(p.clone())
        .filter(|c| c.as_rule() == Rule::endorse_clause)
        .collect()
}

/// Steps down through grammar layers that add nothing: an `or` chain of one,
/// an `and` chain of one, a `not_expr` without `not`, a comparison without an
/// operator. A loop, so that each parenthesis costs a few stack frames only.
fn skip_layers(mut p: Pair<'_, Rule>) -> Pair<'_, Rule> {
    while matches!(
        p.as_rule(),
        Rule::expr | Rule::and_expr | Rule::not_expr | Rule::comparison
    ) {
        let mut it = kids(p.clone());
        match (it.next(), it.next()) {
            (Some(only), None) if only.as_rule() != Rule::not_prefix => p = only,
            _ => break,
        }
    }
    p
}
