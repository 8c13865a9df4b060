//! Conditions: name resolution, typing and lowering to `ir::Expr`.
//!
//! A condition is typed once per tool its rule names, against that tool's
//! schema; `has args.f` earlier in an `and` chain makes `args.f` (and paths
//! under it) count as present for the rest of the chain.

use super::dates;
use super::rules::path_text;
use super::Checker;
use crate::err::CheckError;
use crate::ir;
use crate::suggest;
use miette::LabeledSpan;
use toolgate_syntax::ast::{self, Span, Spanned};

/// What a condition is typed against.
pub(super) struct Scope {
    pub(super) tool: Option<ir::ToolId>,
    /// `args` paths guarded by `has` earlier in the current `and` chain.
    guards: Vec<Vec<String>>,
    /// The variables of the enclosing `all|any x in ...:` quantifiers,
    /// innermost last, with their element types.
    pub(super) vars: Vec<(String, Ty)>,
}

impl Scope {
    pub(super) fn new(tool: Option<ir::ToolId>) -> Self {
        Scope {
            tool,
            guards: Vec::new(),
            vars: Vec::new(),
        }
    }

    fn guarded(&self, path: &[String]) -> bool {
        self.guards.iter().any(|g| path.starts_with(g))
    }
}

/// The type of an operand as far as the checker knows.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Ty {
    Str,
    Int,
    Num,
    Bool,
    Date,
    Datetime,
    /// A length of time (`30d`, `args.end - args.start`).
    Duration,
    List(Box<Ty>),
    Record(Vec<ir::Field>),
    /// `{ a: T, .. }`: a record whose other fields are `any`.
    OpenRecord(Vec<ir::Field>),
    /// Not known until run time (a tool without a schema, a guarded path).
    Any,
    /// `T | null`: read as a `T` (a `null` is a missing value); only
    /// `== null` / `!= null` tell the two apart.
    Nullable(Box<Ty>),
    /// `"a" | "b"` or `1 | 2`: a `string` or an `int` whose values are known.
    OneOf(Vec<ir::Value>),
    /// The `null` literal.
    Null,
}

static STR: Ty = Ty::Str;
static INT: Ty = Ty::Int;

impl Ty {
    pub(super) fn of(t: &ir::Type) -> Ty {
        match t {
            ir::Type::String => Ty::Str,
            ir::Type::Int => Ty::Int,
            ir::Type::Number => Ty::Num,
            ir::Type::Bool => Ty::Bool,
            ir::Type::Date => Ty::Date,
            ir::Type::Datetime => Ty::Datetime,
            ir::Type::List(inner) => Ty::List(Box::new(Ty::of(inner))),
            ir::Type::Record(fields) => Ty::Record(fields.clone()),
            ir::Type::OpenRecord(fields) => Ty::OpenRecord(fields.clone()),
            ir::Type::Nullable(inner) => Ty::Nullable(Box::new(Ty::of(inner))),
            ir::Type::OneOf(values) => Ty::OneOf(values.clone()),
            ir::Type::Any => Ty::Any,
        }
    }

    pub(super) fn name(&self) -> String {
        match self {
            Ty::Str => "string".into(),
            Ty::Int => "int".into(),
            Ty::Num => "number".into(),
            Ty::Bool => "bool".into(),
            Ty::Date => "date".into(),
            Ty::Datetime => "datetime".into(),
            Ty::Duration => "duration".into(),
            Ty::List(inner) => format!("list<{}>", inner.name()),
            Ty::Record(_) | Ty::OpenRecord(_) => "record".into(),
            Ty::Any => "any".into(),
            Ty::Nullable(inner) => format!("{} | null", inner.name()),
            Ty::OneOf(values) => super::types::values_text(values),
            Ty::Null => "null".into(),
        }
    }

    /// The type without its `| null`.
    pub(super) fn without_null(&self) -> &Ty {
        match self {
            Ty::Nullable(inner) => inner,
            other => other,
        }
    }

    /// What operators see: `| null` dropped, an enum as its `string` or `int`.
    pub(super) fn base(&self) -> &Ty {
        match self.without_null() {
            Ty::OneOf(values) if matches!(values.first(), Some(ir::Value::Int(_))) => &INT,
            Ty::OneOf(_) => &STR,
            other => other,
        }
    }

    /// Whether values of the two types may be compared with `==`.
    fn compatible(&self, other: &Ty) -> bool {
        match (self.base(), other.base()) {
            (Ty::Any, _) | (_, Ty::Any) => true,
            (Ty::List(a), Ty::List(b)) => a.compatible(b),
            (Ty::Record(_) | Ty::OpenRecord(_), Ty::Record(_) | Ty::OpenRecord(_)) => true,
            (a, b) => a == b || (a.is_numeric() && b.is_numeric()),
        }
    }

    fn is(&self, want: &Ty) -> bool {
        let base = self.base();
        *base == Ty::Any || base == want
    }

    /// An `int`, a `number`, or not known: what `<`, `<=`, `>` and `>=` take.
    fn is_numeric(&self) -> bool {
        matches!(self.base(), Ty::Int | Ty::Num | Ty::Any)
    }
}

pub(super) type Typed = (ir::Expr, Ty);

const FUNCTIONS: [&str; 14] = [
    "len",
    "lower",
    "trim",
    "compact",
    "email_domain",
    "within",
    "host",
    "port",
    "scheme",
    "path",
    "date",
    "datetime",
    "urls",
    "emails",
];
const ROOTS: [&str; 8] = [
    "args", "ctx", "tenant", "env", "agent", "tool", "now", "session",
];

pub(super) fn node(kind: ir::ExprKind, span: Span) -> ir::Expr {
    ir::Expr { kind, span }
}

pub(super) fn label(span: Span, text: impl Into<String>) -> LabeledSpan {
    LabeledSpan::new_with_span(Some(text.into()), span)
}

impl Checker<'_> {
    /// A condition that must be a `bool`.
    pub(super) fn bool_expr(
        &mut self,
        e: &Spanned<ast::Expr>,
        scope: &mut Scope,
    ) -> Option<ir::Expr> {
        let (ir, ty) = self.expr(e, scope)?;
        if !ty.is(&Ty::Bool) {
            self.mismatch(
                format!("a condition must be a `bool`, but this is `{}`", ty.name()),
                vec![label(e.span, format!("this is `{}`", ty.name()))],
                Some(
                    "compare it with something, e.g. `args.flag == true` or `len(args.list) > 0`"
                        .into(),
                ),
            );
            return None;
        }
        Some(ir)
    }

    pub(super) fn mismatch(
        &mut self,
        message: String,
        labels: Vec<LabeledSpan>,
        help: Option<String>,
    ) {
        self.diags.push(CheckError::TypeMismatch {
            message,
            labels,
            help,
        });
    }

    pub(super) fn expr(&mut self, e: &Spanned<ast::Expr>, scope: &mut Scope) -> Option<Typed> {
        let span = e.span;
        match &e.node {
            ast::Expr::Or(parts) => {
                let parts: Vec<_> = parts.iter().map(|p| self.bool_expr(p, scope)).collect();
                let parts = parts.into_iter().collect::<Option<Vec<_>>>()?;
                Some((node(ir::ExprKind::Or(parts), span), Ty::Bool))
            }
            ast::Expr::And(parts) => self.and(parts, span, scope),
            ast::Expr::Not(inner) => {
                let inner = self.bool_expr(inner, scope)?;
                Some((node(ir::ExprKind::Not(Box::new(inner)), span), Ty::Bool))
            }
            ast::Expr::Has(path) => {
                let p = self.has_path(path, scope)?;
                Some((node(ir::ExprKind::Has(p), span), Ty::Bool))
            }
            ast::Expr::Compare(lhs, op, rhs) => {
                self.note_in_list(op.node, rhs);
                let lhs_typed = self.expr(lhs, scope);
                self.compare(lhs, lhs_typed, op, rhs, span, scope)
            }
            ast::Expr::Quantified(q, list, op, rhs) => {
                self.note_in_list(op.node, rhs);
                self.quantified(q.node, list, op, rhs, span, scope)
            }
            ast::Expr::ForEach {
                quantifier,
                var,
                list,
                body,
            } => self.for_each(quantifier.node, var, list, body, span, scope),
            ast::Expr::Call(f, args) => self.call(f, args, span, scope),
            ast::Expr::From(value, source) => self.provenance_of(value, source, span, scope),
            ast::Expr::SessionCalls(tool) => self.session_calls(tool, span),
            ast::Expr::Paren(inner) => self.expr(inner, scope),
            ast::Expr::Arith(l, op, r) => self.arith(l, op, r, span, scope),
            ast::Expr::Duration(d) => Some(self.duration(*d, span)),
            ast::Expr::Path(p) => self.path(p, span, scope),
            // `null` is only ever compared (`compare` lowers it to `IsNull`):
            // every other use is a type error, so its placeholder IR is never kept.
            ast::Expr::Literal(ast::Literal::Null) => Some((
                node(ir::ExprKind::Lit(ir::Value::Bool(false)), span),
                Ty::Null,
            )),
            ast::Expr::Literal(l) => {
                let ty = self.literal_type(&Spanned::new(l.clone(), span))?;
                Some((node(ir::ExprKind::Lit(value(l)), span), ty))
            }
        }
    }

    fn and(
        &mut self,
        parts: &[Spanned<ast::Expr>],
        span: Span,
        scope: &mut Scope,
    ) -> Option<Typed> {
        let guards_before = scope.guards.len();
        let mut out = Vec::new();
        for p in parts {
            out.push(self.bool_expr(p, scope));
            if let ast::Expr::Has(path) = &p.node {
                if path.node.root.node == "args" {
                    scope
                        .guards
                        .push(path.node.fields.iter().map(|f| f.node.clone()).collect());
                }
            }
        }
        scope.guards.truncate(guards_before);
        let out = out.into_iter().collect::<Option<Vec<_>>>()?;
        Some((node(ir::ExprKind::And(out), span), Ty::Bool))
    }

    /// `has PATH`: any `args` path is allowed; `ctx` fields must be declared;
    /// a field of the innermost quantifier's element.
    fn has_path(&mut self, path: &Spanned<ast::Path>, scope: &Scope) -> Option<ir::Path> {
        let p = &path.node;
        let innermost = scope.vars.last().is_some_and(|(v, _)| *v == p.root.node);
        if innermost && !p.fields.is_empty() {
            return Some(ir::Path::Elem(
                p.fields.iter().map(|f| f.node.clone()).collect(),
            ));
        }
        match (p.root.node.as_str(), p.fields.as_slice()) {
            ("args", fields) if !fields.is_empty() => Some(ir::Path::Args(
                fields.iter().map(|f| f.node.clone()).collect(),
            )),
            ("ctx", [field]) => {
                if !self.context_spans.contains_key(&field.node) {
                    self.unknown_context_field(field);
                    return None;
                }
                Some(ir::Path::Ctx(field.node.clone()))
            }
            _ => {
                self.mismatch(
                    format!(
                        "`has` applies to `args.` and `ctx.` fields, not `{}`",
                        path_text(p)
                    ),
                    vec![label(path.span, "not an argument or context field")],
                    Some("write `has args.<field>` or `has ctx.<field>`".into()),
                );
                None
            }
        }
    }

    fn path(&mut self, p: &ast::Path, span: Span, scope: &mut Scope) -> Option<Typed> {
        let root = p.root.node.as_str();
        if let Some(depth) = scope.vars.iter().rposition(|(v, _)| v == root) {
            return self.elem_path(p, depth, span, scope);
        }
        let fields: Vec<String> = p.fields.iter().map(|f| f.node.clone()).collect();
        let (path, ty) = match root {
            "args" if !fields.is_empty() => {
                let ty = self.args_type(&p.fields, scope)?;
                (ir::Path::Args(fields), ty)
            }
            "ctx" if fields.len() == 1 => {
                let field = &p.fields[0];
                let Some(f) = self.context.iter().find(|f| f.name == field.node) else {
                    if !self.context_spans.contains_key(&field.node) {
                        self.unknown_context_field(field);
                    }
                    return None;
                };
                (ir::Path::Ctx(field.node.clone()), Ty::of(&f.ty))
            }
            "now" if fields.is_empty() => return Some(self.now(span)),
            "session" => return self.session_path(p, span),
            "tenant" | "env" | "agent" | "tool" if fields.is_empty() => {
                let path = match root {
                    "tenant" => ir::Path::Tenant,
                    "env" => ir::Path::Env,
                    "agent" => ir::Path::Agent,
                    _ => ir::Path::Tool,
                };
                (path, Ty::Str)
            }
            _ => return self.constant_ref(p, span),
        };
        Some((dates::wrap(node(ir::ExprKind::Path(path), span), &ty), ty))
    }

    fn constant_ref(&mut self, p: &ast::Path, span: Span) -> Option<Typed> {
        let root = p.root.node.as_str();
        if p.fields.is_empty() {
            if let Some(c) = self.constants.get_mut(root) {
                c.used = true;
                let lit = c.value.clone();
                let ty = self.literal_type_quiet(&lit.node);
                return Some((node(ir::ExprKind::Lit(value(&lit.node)), span), ty));
            }
        }
        let help = if ROOTS.contains(&root) {
            match root {
                "args" => "write `args.<field>`".to_string(),
                "ctx" => "write `ctx.<field>` with one declared context field".to_string(),
                _ => format!("`{root}` has no fields"),
            }
        } else {
            let names = ROOTS
                .iter()
                .map(|s| s.to_string())
                .chain(self.constants.keys().cloned());
            suggest::did_you_mean(root, names).unwrap_or_else(|| {
                "use `args.`, `ctx.`, `tenant`, `env`, `agent`, `tool`, or a constant declared with `let`".into()
            })
        };
        self.diags.push(CheckError::UnknownName {
            name: path_text(p),
            span: span.into(),
            help,
        });
        None
    }

    /// The type of `args.<fields>` for the tool being checked.
    fn args_type(&mut self, fields: &[ast::Name], scope: &Scope) -> Option<Ty> {
        let Some(tool_id) = scope.tool else {
            return Some(Ty::Any);
        };
        let tool = &self.tools[tool_id.0 as usize];
        let Some(schema) = tool.schema.clone() else {
            return Some(Ty::Any);
        };
        let tool_name = tool.name.clone();
        let mut open = tool.open;
        let mut level = schema;
        let mut walked: Vec<String> = Vec::new();
        let mut ty = Ty::Any;
        for (i, seg) in fields.iter().enumerate() {
            walked.push(seg.node.clone());
            let Some(f) = level.iter().find(|f| f.name == seg.node) else {
                if scope.guarded(&walked) {
                    return Some(Ty::Any);
                }
                let shown = format!("args.{}", walked.join("."));
                let help = suggest::did_you_mean(&seg.node, level.iter().map(|f| f.name.clone()))
                    .unwrap_or_else(|| match open {
                        true => format!("the record allows fields it does not name (`..`); read one behind `has`: `has {shown} and ...`"),
                        false => format!("if calls may omit it, guard it: `has {shown} and ...`"),
                    });
                self.diags.push(CheckError::UnknownArgument {
                    name: shown,
                    tool: tool_name,
                    span: Span::new(fields[0].span.start.saturating_sub(5), seg.span.end).into(),
                    help,
                });
                return None;
            };
            ty = Ty::of(&f.ty);
            if i + 1 < fields.len() {
                (level, open) = match ty.without_null() {
                    // Below an `any`: known at run time only.
                    Ty::Any => return Some(Ty::Any),
                    Ty::Record(inner) => (inner.clone(), false),
                    Ty::OpenRecord(inner) => (inner.clone(), true),
                    _ => (Vec::new(), false),
                };
                let (Ty::Record(_) | Ty::OpenRecord(_)) = ty.without_null() else {
                    let shown = format!("args.{}", walked.join("."));
                    self.mismatch(
                        format!(
                            "`{shown}` is `{}` and has no field `{}`",
                            ty.name(),
                            fields[i + 1].node
                        ),
                        vec![label(fields[i + 1].span, "no such field")],
                        None,
                    );
                    return None;
                };
            }
        }
        Some(ty)
    }

    fn call(
        &mut self,
        f: &ast::Name,
        args: &[Spanned<ast::Expr>],
        span: Span,
        scope: &mut Scope,
    ) -> Option<Typed> {
        match f.node.as_str() {
            "date" => return self.time_call(ir::TimeFn::Date, args, span, scope),
            "datetime" => return self.time_call(ir::TimeFn::Datetime, args, span, scope),
            "urls" => return self.extract_call(f, ir::ExtractFn::Urls, args, span, scope),
            "emails" => return self.extract_call(f, ir::ExtractFn::Emails, args, span, scope),
            _ => {}
        }
        let typed: Vec<Option<Typed>> = args.iter().map(|a| self.expr(a, scope)).collect();
        let url = ir::UrlPart::from_name(&f.node);
        let text = ir::TextFn::from_name(&f.node);
        let (want, result): (&[Ty], Ty) = match (f.node.as_str(), url, text) {
            ("len", _, _) => (&[Ty::Str, Ty::List(Box::new(Ty::Any))], Ty::Int),
            ("lower", _, _) | (_, _, Some(_)) => (&[Ty::Str], Ty::Str),
            ("within", _, _) => (&[Ty::Str], Ty::Bool),
            (_, Some(ir::UrlPart::Port), _) => (&[Ty::Str], Ty::Int),
            (_, Some(_), _) => (&[Ty::Str], Ty::Str),
            (other, None, None) => {
                let help = suggest::did_you_mean(other, FUNCTIONS).unwrap_or_else(|| {
                    format!(
                        "the functions are {}",
                        FUNCTIONS.map(|f| format!("`{f}`")).join(", ")
                    )
                });
                self.diags.push(CheckError::UnknownFunction {
                    name: other.into(),
                    span: f.span.into(),
                    help,
                });
                return None;
            }
        };
        let arity = if f.node == "within" { 2 } else { 1 };
        if args.len() != arity {
            let wanted = if arity == 2 {
                "two arguments"
            } else {
                "one argument"
            };
            self.mismatch(
                format!(
                    "`{}` takes {wanted}, but this call has {}",
                    f.node,
                    args.len()
                ),
                vec![label(span, "this call")],
                (f.node == "within").then(|| "write `within(args.path, \"/srv/work\")`".into()),
            );
            return None;
        }
        let mut irs = Vec::new();
        for (arg, t) in args.iter().zip(typed) {
            let (arg_ir, arg_ty) = t?;
            self.argument_fits(f, want, arg, &arg_ty)?;
            irs.push(arg_ir);
        }
        let mut irs = irs.into_iter().map(Box::new);
        let first = irs.next()?;
        let kind = match (f.node.as_str(), url, text) {
            (_, Some(part), _) => ir::ExprKind::Url(part, first),
            (_, _, Some(t)) => ir::ExprKind::Text(t, first),
            ("len", _, _) => ir::ExprKind::Len(first),
            ("within", _, _) => ir::ExprKind::Within(first, irs.next()?),
            _ => ir::ExprKind::Lower(first),
        };
        Some((node(kind, span), result))
    }

    /// Whether one argument has a type the function takes (reported if not).
    fn argument_fits(
        &mut self,
        f: &ast::Name,
        want: &[Ty],
        arg: &Spanned<ast::Expr>,
        arg_ty: &Ty,
    ) -> Option<()> {
        let fits = want
            .iter()
            .any(|w| arg_ty.is(w) || matches!((w, arg_ty), (Ty::List(_), Ty::List(_))));
        if fits {
            return Some(());
        }
        let wanted = if want.len() == 2 {
            "a `string` or a list"
        } else {
            "a `string`"
        };
        self.mismatch(
            format!(
                "`{}` takes {wanted}, but this is `{}`",
                f.node,
                arg_ty.name()
            ),
            vec![label(arg.span, format!("this is `{}`", arg_ty.name()))],
            None,
        );
        None
    }

    /// `all|any VAR in LIST: BODY`: lowered to `Quant` with a body reading the element.
    fn for_each(
        &mut self,
        q: ast::Quantifier,
        var: &ast::Name,
        list: &Spanned<ast::Expr>,
        body: &Spanned<ast::Expr>,
        span: Span,
        scope: &mut Scope,
    ) -> Option<Typed> {
        let (list_ir, list_ty) = self.expr(list, scope)?;
        let elem = self.element_type(list, &list_ty, "a quantifier", None)?;
        if ROOTS.contains(&var.node.as_str()) {
            self.mismatch(
                format!("`{}` cannot name a quantifier's element", var.node),
                vec![label(var.span, "a request value's name")],
                Some("choose another name, e.g. `x`".into()),
            );
            return None;
        }
        scope.vars.push((var.node.clone(), elem));
        let pred = self.bool_expr(body, scope);
        scope.vars.pop();
        let kind = ir::ExprKind::Quant(q, Box::new(list_ir), Box::new(pred?));
        Some((node(kind, span), Ty::Bool))
    }

    /// The element type of a quantifier's list (`any` when not known until
    /// run time); anything but a list is reported as `what` needing one.
    fn element_type(
        &mut self,
        list: &Spanned<ast::Expr>,
        list_ty: &Ty,
        what: &str,
        help: Option<String>,
    ) -> Option<Ty> {
        match list_ty.base() {
            Ty::List(inner) => Some((**inner).clone()),
            Ty::Any => Some(Ty::Any),
            other => {
                self.mismatch(
                    format!("{what} needs a list, but this is `{}`", other.name()),
                    vec![label(list.span, format!("this is `{}`", other.name()))],
                    help,
                );
                None
            }
        }
    }

    /// `x` or `x.a.b` for the element of an enclosing quantifier: only the
    /// innermost one's (its list was read in the outer scope).
    fn elem_path(
        &mut self,
        p: &ast::Path,
        depth: usize,
        span: Span,
        scope: &Scope,
    ) -> Option<Typed> {
        if depth + 1 != scope.vars.len() {
            self.mismatch(
                format!(
                    "`{}` is an outer quantifier's element; only the innermost one's can be read",
                    p.root.node
                ),
                vec![label(span, "outer element")],
                Some("compare it in the outer quantifier's body, outside the inner one".into()),
            );
            return None;
        }
        let mut ty = scope.vars.get(depth).map_or(Ty::Any, |(_, t)| t.clone());
        for (i, f) in p.fields.iter().enumerate() {
            ty = match ty.without_null() {
                Ty::Any => Ty::Any,
                Ty::Record(fields) | Ty::OpenRecord(fields)
                    if fields.iter().any(|x| x.name == f.node) =>
                {
                    fields
                        .iter()
                        .find(|x| x.name == f.node)
                        .map_or(Ty::Any, |x| Ty::of(&x.ty))
                }
                // A field an open record does not name: present or not at run time.
                Ty::OpenRecord(_) => Ty::Any,
                other => {
                    let at = std::iter::once(p.root.node.as_str())
                        .chain(p.fields[..i].iter().map(|x| x.node.as_str()))
                        .collect::<Vec<_>>()
                        .join(".");
                    let help = match other {
                        Ty::Record(fields) => {
                            suggest::did_you_mean(&f.node, fields.iter().map(|x| x.name.clone()))
                        }
                        _ => None,
                    };
                    self.mismatch(
                        format!("`{at}` is `{}` and has no field `{}`", other.name(), f.node),
                        vec![label(f.span, "no such field")],
                        help,
                    );
                    return None;
                }
            };
        }
        let kind = if p.fields.is_empty() {
            ir::ExprKind::Elem
        } else {
            ir::ExprKind::Path(ir::Path::Elem(
                p.fields.iter().map(|f| f.node.clone()).collect(),
            ))
        };
        Some((dates::wrap(node(kind, span), &ty), ty))
    }

    fn quantified(
        &mut self,
        q: ast::Quantifier,
        list: &Spanned<ast::Expr>,
        op: &Spanned<ast::CmpOp>,
        rhs: &Spanned<ast::Expr>,
        span: Span,
        scope: &mut Scope,
    ) -> Option<Typed> {
        let (list_ir, list_ty) = self.expr(list, scope)?;
        let word = if q == ast::Quantifier::All {
            "all"
        } else {
            "any"
        };
        let help = format!("to compare the value itself, drop `{word}`");
        let elem = self.element_type(list, &list_ty, &format!("`{word}`"), Some(help))?;
        let elem_ir = dates::wrap(node(ir::ExprKind::Elem, list.span), &elem);
        let elem_typed = Some((elem_ir, elem));
        // The right side is evaluated per element of this list: an enclosing
        // `x in ...:` element is out of reach there (a layer no name matches).
        scope.vars.push((String::new(), Ty::Any));
        let pred = self.compare(list, elem_typed, op, rhs, span, scope);
        scope.vars.pop();
        let (pred, _) = pred?;
        Some((
            node(
                ir::ExprKind::Quant(q, Box::new(list_ir), Box::new(pred)),
                span,
            ),
            Ty::Bool,
        ))
    }

    /// `lhs OP rhs`, with `lhs` already typed (it is the element inside a quantifier).
    fn compare(
        &mut self,
        lhs: &Spanned<ast::Expr>,
        lhs_typed: Option<Typed>,
        op: &Spanned<ast::CmpOp>,
        rhs: &Spanned<ast::Expr>,
        span: Span,
        scope: &mut Scope,
    ) -> Option<Typed> {
        if matches!(op.node, ast::CmpOp::Matches | ast::CmpOp::MatchesRegex) {
            let pattern = self.pattern(op.node, rhs);
            let (l, lty) = lhs_typed?;
            self.want(&lty, &Ty::Str, lhs.span, op)?;
            let pattern = pattern?;
            let kind = if op.node == ast::CmpOp::Matches {
                ir::ExprKind::Glob(Box::new(l), pattern)
            } else {
                ir::ExprKind::Regex(Box::new(l), pattern)
            };
            return Some((node(kind, span), Ty::Bool));
        }
        let rhs_typed = self.expr(rhs, scope);
        let ((l, lty), (r, rty)) = (lhs_typed?, rhs_typed?);
        if lty == Ty::Null || rty == Ty::Null {
            let (l, r) = ((l, lty, lhs.span), (r, rty, rhs.span));
            return self.null_compare(op, l, r, span, scope);
        }
        let bin = self.binary_types(op, (lhs.span, &lty), (rhs.span, &rty))?;
        self.known_names(&l, op.node, rhs);
        self.enum_literals(&l, &lty, op.node, rhs);
        if matches!(op.node, ast::CmpOp::Eq | ast::CmpOp::Ne) {
            self.known_names(&r, op.node, lhs);
            self.enum_literals(&r, &rty, op.node, lhs);
        }
        Some((
            node(ir::ExprKind::Binary(bin, Box::new(l), Box::new(r)), span),
            Ty::Bool,
        ))
    }

    fn want(&mut self, got: &Ty, want: &Ty, span: Span, op: &Spanned<ast::CmpOp>) -> Option<()> {
        if got.is(want) {
            return Some(());
        }
        self.mismatch(
            format!(
                "`{}` needs a `{}`, but this is `{}`",
                op.node.as_str(),
                want.name(),
                got.name()
            ),
            vec![
                label(span, format!("this is `{}`", got.name())),
                label(op.span, "operator"),
            ],
            None,
        );
        None
    }

    fn binary_types(
        &mut self,
        op: &Spanned<ast::CmpOp>,
        l: (Span, &Ty),
        r: (Span, &Ty),
    ) -> Option<ir::BinOp> {
        use ast::CmpOp as C;
        if let Some(help) = dates::unsupported(op.node, l.1, r.1) {
            self.cannot_compare(op, l, r, help);
            return None;
        }
        let ok = match op.node {
            C::Eq | C::Ne => l.1.compatible(r.1),
            C::Lt | C::Le | C::Gt | C::Ge => {
                (l.1.is_numeric() && r.1.is_numeric()) || dates::ordered(l.1, r.1)
            }
            C::In | C::NotIn => match r.1.base() {
                Ty::List(elem) => l.1.compatible(elem),
                Ty::Any => true,
                _ => false,
            },
            C::StartsWith | C::EndsWith => l.1.is(&Ty::Str) && r.1.is(&Ty::Str),
            C::Contains => match l.1.base() {
                Ty::List(elem) => elem.compatible(r.1),
                Ty::Any => true,
                Ty::Str => r.1.is(&Ty::Str),
                _ => false,
            },
            C::Matches | C::MatchesRegex => true,
        };
        if !ok {
            let help = match op.node {
                C::Lt | C::Le | C::Gt | C::Ge if l.1.is_time() || r.1.is_time() => "`<`, `<=`, `>` and `>=` compare numbers, two dates, two datetimes or two durations",
                C::Lt | C::Le | C::Gt | C::Ge => "`<`, `<=`, `>` and `>=` compare numbers (`int` or `number`)",
                C::In | C::NotIn => "the right side of `in` is a list of values of the left side's type",
                C::StartsWith | C::EndsWith => "both sides must be `string`s",
                C::Contains => "`contains` tests a substring of a `string` or an element of a list",
                _ => "both sides must have the same type; string literals are quoted, numbers are not",
            };
            self.cannot_compare(op, l, r, help);
            return None;
        }
        Some(match op.node {
            C::Eq => ir::BinOp::Eq,
            C::Ne => ir::BinOp::Ne,
            C::Lt => ir::BinOp::Lt,
            C::Le => ir::BinOp::Le,
            C::Gt => ir::BinOp::Gt,
            C::Ge => ir::BinOp::Ge,
            C::In => ir::BinOp::In,
            C::NotIn => ir::BinOp::NotIn,
            C::StartsWith => ir::BinOp::StartsWith,
            C::EndsWith => ir::BinOp::EndsWith,
            C::Contains | C::Matches | C::MatchesRegex => ir::BinOp::Contains,
        })
    }

    /// The literal pattern of `matches` / `matches regex`, checked to compile.
    fn cannot_compare(
        &mut self,
        op: &Spanned<ast::CmpOp>,
        l: (Span, &Ty),
        r: (Span, &Ty),
        help: &str,
    ) {
        self.mismatch(
            format!(
                "type mismatch: `{}` cannot compare `{}` with `{}`",
                op.node.as_str(),
                l.1.name(),
                r.1.name()
            ),
            vec![
                label(l.0, format!("this is `{}`", l.1.name())),
                label(r.0, format!("this is `{}`", r.1.name())),
            ],
            Some(help.into()),
        );
    }

    fn pattern(&mut self, op: ast::CmpOp, rhs: &Spanned<ast::Expr>) -> Option<String> {
        let kind = if op == ast::CmpOp::Matches {
            "glob"
        } else {
            "regex"
        };
        let text = match &rhs.node {
            ast::Expr::Literal(ast::Literal::Str(s)) => Some(s.clone()),
            ast::Expr::Path(p) if p.fields.is_empty() => {
                let c = self.constants.get_mut(&p.root.node);
                c.and_then(|c| {
                    c.used = true;
                    match &c.value.node {
                        ast::Literal::Str(s) => Some(s.clone()),
                        _ => None,
                    }
                })
            }
            _ => None,
        };
        let Some(text) = text else {
            self.diags.push(CheckError::InvalidPattern {
                kind,
                reason: "the pattern must be a string literal or a string constant".into(),
                span: rhs.span.into(),
                help: "patterns are checked when the policy is compiled, so they cannot come from the request".into(),
            });
            return None;
        };
        let problem = if kind == "regex" {
            regex_problem(&text)
        } else {
            glob_problem(&text)
        };
        if let Some(reason) = problem {
            let help = if kind == "regex" {
                "the `regex` crate's syntax: linear time, no look-around or back-references, at most 1 MiB compiled"
            } else {
                "in a glob, `*` matches any run of characters, `?` one character, and `\\` escapes the next one"
            };
            self.diags.push(CheckError::InvalidPattern {
                kind,
                reason,
                span: rhs.span.into(),
                help: help.into(),
            });
            return None;
        }
        Some(text)
    }

    /// Checks string literals compared with `env`, `agent` or `tool` against declarations.
    fn known_names(&mut self, lhs: &ir::Expr, op: ast::CmpOp, rhs: &Spanned<ast::Expr>) {
        use ast::CmpOp as C;
        let ir::ExprKind::Path(path) = &lhs.kind else {
            return;
        };
        if !matches!(op, C::Eq | C::Ne | C::In | C::NotIn) {
            return;
        }
        let literals: Vec<(String, Span)> = match &rhs.node {
            ast::Expr::Literal(ast::Literal::Str(s)) => vec![(s.clone(), rhs.span)],
            ast::Expr::Literal(ast::Literal::List(items)) => items
                .iter()
                .filter_map(|i| match &i.node {
                    ast::Literal::Str(s) => Some((s.clone(), i.span)),
                    _ => None,
                })
                .collect(),
            _ => return,
        };
        for (name, span) in literals {
            self.known_name(path, name, span);
        }
    }

    fn known_name(&mut self, path: &ir::Path, name: String, span: Span) {
        match path {
            ir::Path::Env if !self.envs.is_empty() && !self.envs.iter().any(|e| e.node == name) => {
                let declared: Vec<String> = self.envs.iter().map(|e| e.node.clone()).collect();
                let help = suggest::did_you_mean(&name, declared.iter()).unwrap_or_else(|| {
                    format!(
                        "the declared envs are {}",
                        declared
                            .iter()
                            .map(|e| format!("`{e}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                });
                self.diags.push(CheckError::UnknownEnv {
                    name,
                    span: span.into(),
                    help,
                });
            }
            ir::Path::Tenant
                if !self.tenants.is_empty() && !self.tenants.iter().any(|t| t.node == name) =>
            {
                let help = declared_help(&name, &self.tenants, "tenants");
                self.diags.push(CheckError::UnknownTenant {
                    name,
                    span: span.into(),
                    help,
                });
            }
            ir::Path::Agent if !self.agent_index.contains_key(&name) => {
                let help = suggest::did_you_mean(&name, self.agent_index.keys()).or_else(|| {
                    let mut names: Vec<&String> = self.agent_index.keys().collect();
                    names.sort();
                    let names: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
                    Some(format!("the agents with a block are {}", names.join(", ")))
                        .filter(|_| !names.is_empty())
                });
                self.diags.push(CheckError::UnknownAgent {
                    name,
                    span: span.into(),
                    help,
                });
            }
            ir::Path::Tool if !self.tool_index.contains_key(&name) => {
                let help = suggest::did_you_mean(&name, self.tool_index.keys());
                self.diags.push(CheckError::UnknownTool {
                    name,
                    span: span.into(),
                    help,
                });
            }
            _ => {}
        }
    }

    /// The type of a literal, reporting lists that mix types.
    pub(super) fn literal_type(&mut self, l: &Spanned<ast::Literal>) -> Option<Ty> {
        let ast::Literal::List(items) = &l.node else {
            return Some(self.literal_type_quiet(&l.node));
        };
        let mut elem: Option<(Ty, Span)> = None;
        for item in items {
            let ty = self.literal_type(item)?;
            if ty == Ty::Null {
                self.mismatch(
                    "a list cannot hold `null`".into(),
                    vec![label(item.span, "`null`")],
                    Some("test for `null` with `== null` or `!= null`".into()),
                );
                return None;
            }
            match &elem {
                Some((first, first_span)) if !first.compatible(&ty) => {
                    let first_span = *first_span;
                    let first_name = first.name();
                    self.mismatch(
                        format!("a list mixes `{first_name}` and `{}`", ty.name()),
                        vec![
                            label(first_span, format!("this is `{first_name}`")),
                            label(item.span, format!("this is `{}`", ty.name())),
                        ],
                        Some("every element of a list must have the same type".into()),
                    );
                    return None;
                }
                Some(_) => {}
                None => elem = Some((ty, item.span)),
            }
        }
        Some(Ty::List(Box::new(elem.map_or(Ty::Any, |(t, _)| t))))
    }

    /// The type of a literal already checked (constants are checked where declared).
    fn literal_type_quiet(&self, l: &ast::Literal) -> Ty {
        match l {
            ast::Literal::Str(_) => Ty::Str,
            ast::Literal::Int(_) => Ty::Int,
            ast::Literal::Num(_) => Ty::Num,
            ast::Literal::Bool(_) => Ty::Bool,
            ast::Literal::Null => Ty::Null,
            ast::Literal::List(items) => Ty::List(Box::new(
                items
                    .first()
                    .map_or(Ty::Any, |i| self.literal_type_quiet(&i.node)),
            )),
        }
    }
}

/// Did you mean one of `declared`, or the list of them.
pub(super) fn declared_help(name: &str, declared: &[ast::Name], what: &str) -> String {
    let names: Vec<String> = declared.iter().map(|d| d.node.clone()).collect();
    suggest::did_you_mean(name, names.iter()).unwrap_or_else(|| {
        let listed: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
        format!("the declared {what} are {}", listed.join(", "))
    })
}

/// A literal's value.
pub(super) fn value(l: &ast::Literal) -> ir::Value {
    match l {
        ast::Literal::Str(s) => ir::Value::Str(s.clone()),
        ast::Literal::Int(i) => ir::Value::Int(*i),
        // The parser accepts only finite decimals; `0.0` keeps this total.
        ast::Literal::Num(text) => ir::Value::Num(
            text.parse::<f64>()
                .ok()
                .and_then(ir::Number::new)
                .unwrap_or(ir::Number::ZERO),
        ),
        ast::Literal::Bool(b) => ir::Value::Bool(*b),
        // Never kept: `null` is lowered to `IsNull` or rejected (see `expr`).
        ast::Literal::Null => ir::Value::Bool(false),
        ast::Literal::List(items) => {
            ir::Value::List(items.iter().map(|i| value(&i.node)).collect())
        }
    }
}

/// Why a regex would be refused, if it would.
fn regex_problem(pattern: &str) -> Option<String> {
    let built = regex::RegexBuilder::new(pattern)
        .size_limit(1 << 20)
        .dfa_size_limit(1 << 20)
        .build();
    built.err().map(|e| match e {
        regex::Error::CompiledTooBig(limit) => format!("it compiles to more than {limit} bytes"),
        other => {
            let text = other.to_string();
            let last = text.lines().last().unwrap_or("does not compile").trim();
            last.strip_prefix("error: ").unwrap_or(last).to_string()
        }
    })
}

/// Why a glob would be refused, if it would.
fn glob_problem(pattern: &str) -> Option<String> {
    let trailing = pattern.chars().rev().take_while(|c| *c == '\\').count();
    (trailing % 2 == 1).then(|| "it ends with a lone `\\`".to_string())
}
