//! The abstract syntax tree of a `.policy` file.
//!
//! Every node that a diagnostic may point at is a [`Spanned`] value. Equality
//! and hashing ignore spans, so two trees parsed from differently formatted
//! text compare equal (this is what the `fmt` round-trip property relies on).
//! The tree is concrete enough to print back: parentheses are kept, clause
//! order is kept, and comments live beside the items in [`File::comments`].

use std::hash::{Hash, Hasher};

/// A half-open byte range `start..end` into the source text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Span {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

impl Span {
    /// A span from `start` to `end`.
    pub fn new(start: usize, end: usize) -> Self {
        Span { start, end }
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.end.saturating_sub(self.start)
    }

    /// Whether the span covers no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span::new(self.start.min(other.start), self.end.max(other.end))
    }
}

impl From<Span> for miette::SourceSpan {
    fn from(span: Span) -> Self {
        miette::SourceSpan::new(span.start.into(), span.len())
    }
}

/// A node and where it was written. Equality and hashing ignore the span.
#[derive(Clone, Debug)]
pub struct Spanned<T> {
    /// The node.
    pub node: T,
    /// Where it was written.
    pub span: Span,
}

impl<T> Spanned<T> {
    /// Wraps `node` with `span`.
    pub fn new(node: T, span: Span) -> Self {
        Spanned { node, span }
    }

    /// Maps the node, keeping the span.
    pub fn map_node<U>(self, f: impl FnOnce(T) -> U) -> Spanned<U> {
        Spanned::new(f(self.node), self.span)
    }
}

impl<T: PartialEq> PartialEq for Spanned<T> {
    fn eq(&self, other: &Self) -> bool {
        self.node == other.node
    }
}

impl<T: Eq> Eq for Spanned<T> {}

impl<T: Hash> Hash for Spanned<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.node.hash(state);
    }
}

/// A name as written, with its span.
pub type Name = Spanned<String>;

/// A whole policy file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct File {
    /// Top-level items in source order.
    pub items: Vec<Spanned<Item>>,
    /// Every comment in source order (kept for the printer).
    pub comments: Vec<Comment>,
}

/// A `//` or `/* */` comment, text included.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Comment {
    /// The comment text including its delimiters.
    pub text: String,
    /// Where it was written.
    pub span: Span,
}

/// A top-level item.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Item {
    /// `policy NAME;`
    Policy(Name),
    /// `envs a, b, c;`
    Envs(Vec<Name>),
    /// `tenants a, b;`: the tenants conditions may name.
    Tenants(Vec<Name>),
    /// `groups a, b;`: the approver groups `from "..."` may name.
    Groups(Vec<Name>),
    /// `scope default tenant, env, ctx.f;`: the scope of every rule without its own.
    DefaultScope(Vec<Spanned<Path>>),
    /// `context { field: type; ... }`
    Context(Vec<Field>),
    /// `tool NAME read|write [irreversible] [{ schema }];`
    Tool(ToolDecl),
    /// `let NAME = literal;`
    Let(LetDecl),
    /// `writes enabled;` / `writes disabled;`
    Writes(Spanned<WritesMode>),
    /// `agent NAME { rules }`
    Agent(AgentBlock),
    /// A rule outside any agent block: it applies to every agent.
    Rule(Rule),
}

/// A tool declaration.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ToolDecl {
    /// Dotted tool name, e.g. `ticket.close`.
    pub name: Name,
    /// `read` or `write`.
    pub class: Spanned<ToolClass>,
    /// Whether `irreversible` was written.
    pub irreversible: bool,
    /// The argument schema, if one was declared.
    pub schema: Option<Spanned<Vec<Field>>>,
    /// Whether the schema ends with `..`: it allows arguments it does not name.
    pub open: bool,
    /// `trusted` / `untrusted`, if written: the label of the tool's output.
    pub trust: Option<Spanned<Trust>>,
    /// `output { PATH: LABEL, ... }`, if written: labels of output fields.
    pub outputs: Option<Spanned<Vec<OutputLabel>>>,
}

/// The label of a tool output or of a field of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Trust {
    /// `trusted`: its values count as `from trusted`.
    Trusted,
    /// `untrusted`: third-party text; it taints the session.
    Untrusted,
}

impl Trust {
    /// The label as written.
    pub fn as_str(self) -> &'static str {
        match self {
            Trust::Trusted => "trusted",
            Trust::Untrusted => "untrusted",
        }
    }
}

/// `PATH: trusted|untrusted` in an `output { }` block.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OutputLabel {
    /// The path into the output.
    pub path: Spanned<Vec<OutputSeg>>,
    /// Its label.
    pub trust: Spanned<Trust>,
}

/// One step of an output path (`a[].b` is `Field(a)`, `Each`, `Field(b)`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum OutputSeg {
    /// A field of an object.
    Field(String),
    /// `[]`: every element of a list.
    Each,
}

/// An output path as written: `[].email`, `items[].from`, `iban`.
pub fn output_path_text(segs: &[OutputSeg]) -> String {
    let mut s = String::new();
    for seg in segs {
        match seg {
            OutputSeg::Field(f) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(f);
            }
            OutputSeg::Each => s.push_str("[]"),
        }
    }
    s
}

/// Whether a tool only reads or may change the world.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ToolClass {
    /// `read`
    Read,
    /// `write`
    Write,
}

/// `let NAME = literal;`
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LetDecl {
    /// The constant's name.
    pub name: Name,
    /// Its value.
    pub value: Spanned<Literal>,
}

/// The `writes` statement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WritesMode {
    /// `writes enabled;`
    Enabled,
    /// `writes disabled;`
    Disabled,
}

/// `agent NAME { rules }`
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AgentBlock {
    /// The agent's name.
    pub name: Name,
    /// Rules in source order.
    pub rules: Vec<Spanned<Rule>>,
}

/// A field of a record type (`name?: type`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Field {
    /// Field name.
    pub name: Name,
    /// Whether `?` was written.
    pub optional: bool,
    /// Field type.
    pub ty: Spanned<Type>,
    /// Whether `redact` was written: audit records show the value as `[redacted]`.
    pub redact: bool,
}

/// A type as written.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Type {
    /// A type name (`string`, `int`, `bool`, or an unknown name the checker reports).
    Named(String),
    /// `list<T>`
    List(Box<Spanned<Type>>),
    /// `{ a: T, b?: U }`
    Record(Vec<Field>),
    /// `{ a: T, .. }`: a record that also allows fields it does not name.
    OpenRecord(Vec<Field>),
    /// `"economy"` or `3` in a type: exactly that value (in a union, an enum).
    Literal(Literal),
    /// `A | B | ...`: a nullable type (`T | null`) or an enum (`"a" | "b"`).
    Union(Vec<Spanned<Type>>),
}

/// A rule: `[@id("name")] [@accepted_risk("why")] allow|write|deny TOOLS clauses...;`
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Rule {
    /// `@id("name")`: the rule's stable name, if written.
    pub id: Option<Spanned<String>>,
    /// `@accepted_risk("reason")`: a reviewed risk the rule takes on purpose.
    pub accepted_risk: Option<Spanned<String>>,
    /// `allow`, `write` or `deny`.
    pub kind: Spanned<RuleKind>,
    /// Tool names and patterns, in source order.
    pub tools: Vec<Name>,
    /// Clauses in source order.
    pub clauses: Vec<Spanned<Clause>>,
}

/// The keyword that starts a rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RuleKind {
    /// `allow`: grants read tools.
    Allow,
    /// `write`: grants write tools.
    Write,
    /// `deny`: overrides every grant.
    Deny,
    /// `require ... on TOOLS`: an approval floor. Its `require` clause is the
    /// first of the rule's clauses.
    Floor,
}

/// One clause of a rule.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Clause {
    /// `require approval ...` / `require N approvals ...`
    Require(Require),
    /// `auto-approve [limit N per WINDOW [per KEY]]`
    AutoApprove(Option<Budget>),
    /// `scope a, b`
    Scope(Vec<Spanned<Path>>),
    /// `when CONDITION`
    When(Spanned<Expr>),
    /// `reason "..."`
    Reason(Spanned<String>),
    /// `endorse args.a, args.b`: once the approval is granted, the approved
    /// values at these paths count as trusted for the rest of the session.
    Endorse(Vec<Spanned<Path>>),
}

/// `require [N] approval(s) [from "group"] [expires D]`
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Require {
    /// `None` for `require approval`, `Some(n)` for `require n approvals`.
    pub count: Option<Spanned<u64>>,
    /// Options in source order.
    pub options: Vec<Spanned<ApprovalOption>>,
}

/// An option of a `require` clause.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ApprovalOption {
    /// `from "group"`
    From(String),
    /// `expires 15m`
    Expires(Duration),
}

/// A duration literal such as `15m`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Duration {
    /// The number.
    pub value: u64,
    /// The unit.
    pub unit: DurationUnit,
}

/// The unit of a [`Duration`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DurationUnit {
    /// `s`
    Seconds,
    /// `m`
    Minutes,
    /// `h`
    Hours,
    /// `d`
    Days,
    /// `w`
    Weeks,
}

impl Duration {
    /// The duration in seconds (saturating).
    pub fn seconds(self) -> u64 {
        let unit: u64 = match self.unit {
            DurationUnit::Seconds => 1,
            DurationUnit::Minutes => 60,
            DurationUnit::Hours => 3_600,
            DurationUnit::Days => 86_400,
            DurationUnit::Weeks => 604_800,
        };
        self.value.saturating_mul(unit)
    }
}

/// `limit N per WINDOW [per KEY]`
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Budget {
    /// How many auto-approved calls per window.
    pub limit: Spanned<u64>,
    /// The window.
    pub window: Window,
    /// `per tenant` / `per agent`, if written.
    pub key: Option<BudgetKey>,
}

/// The window of a budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Window {
    /// `per minute`
    Minute,
    /// `per hour`
    Hour,
    /// `per day`
    Day,
}

/// What a budget is counted per, when not the default (agent, tool, tenant).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BudgetKey {
    /// `per tenant`: shared by all agents of a tenant.
    Tenant,
    /// `per agent`: shared by all tenants of an agent.
    Agent,
}

/// A dotted path: `args.a.b`, `ctx.f`, `tenant`, or a constant's name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Path {
    /// The first segment.
    pub root: Name,
    /// The segments after the first.
    pub fields: Vec<Name>,
}

/// A condition or operand.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Expr {
    /// `a or b or c`
    Or(Vec<Spanned<Expr>>),
    /// `a and b and c`
    And(Vec<Spanned<Expr>>),
    /// `not a`
    Not(Box<Spanned<Expr>>),
    /// `has PATH`
    Has(Spanned<Path>),
    /// `lhs OP rhs`
    Compare(Box<Spanned<Expr>>, Spanned<CmpOp>, Box<Spanned<Expr>>),
    /// `all|any LIST OP rhs`: the operator applies to each element of `LIST`.
    Quantified(
        Spanned<Quantifier>,
        Box<Spanned<Expr>>,
        Spanned<CmpOp>,
        Box<Spanned<Expr>>,
    ),
    /// `all|any VAR in LIST: BODY`: `BODY` (which reads `VAR` and paths under
    /// it) holds for every / some element of `LIST`.
    ForEach {
        /// `all` or `any`.
        quantifier: Spanned<Quantifier>,
        /// The element's name.
        var: Name,
        /// The list.
        list: Box<Spanned<Expr>>,
        /// The condition on each element.
        body: Box<Spanned<Expr>>,
    },
    /// `f(arg, ...)`: at least one argument.
    Call(Name, Vec<Spanned<Expr>>),
    /// `VALUE from SOURCE`: where the value came from in the session.
    From(Box<Spanned<Expr>>, Spanned<Source>),
    /// `session.calls(TOOL)`: earlier allowed calls of a tool in the session.
    SessionCalls(Name),
    /// `( expr )`
    Paren(Box<Spanned<Expr>>),
    /// `lhs + rhs`, `lhs - rhs`: date, datetime and duration arithmetic.
    Arith(Box<Spanned<Expr>>, Spanned<ArithOp>, Box<Spanned<Expr>>),
    /// A duration in a condition: `30d`, `12h`.
    Duration(Duration),
    /// A path or a constant's name.
    Path(Path),
    /// A literal.
    Literal(Literal),
}

/// The source after `from`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    /// `from user`: a user turn of the session.
    User,
    /// `from ctx`: the call's trusted context (tenant, env, context fields).
    Ctx,
    /// `from trusted`: user, context, constants, trusted outputs, endorsements.
    Trusted,
    /// `from tool NAME`: any output of that tool in the session.
    Tool(Name),
}

impl Source {
    /// The source as written after `from`.
    pub fn text(&self) -> String {
        match self {
            Source::User => "user".to_string(),
            Source::Ctx => "ctx".to_string(),
            Source::Trusted => "trusted".to_string(),
            Source::Tool(name) => format!("tool {}", name.node),
        }
    }
}

/// A comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CmpOp {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `in`
    In,
    /// `not in`
    NotIn,
    /// `starts_with`
    StartsWith,
    /// `ends_with`
    EndsWith,
    /// `contains`
    Contains,
    /// `matches` (glob)
    Matches,
    /// `matches regex`
    MatchesRegex,
}

impl CmpOp {
    /// The operator as written in a policy.
    pub fn as_str(self) -> &'static str {
        match self {
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
            CmpOp::In => "in",
            CmpOp::NotIn => "not in",
            CmpOp::StartsWith => "starts_with",
            CmpOp::EndsWith => "ends_with",
            CmpOp::Contains => "contains",
            CmpOp::Matches => "matches",
            CmpOp::MatchesRegex => "matches regex",
        }
    }
}

/// `+` or `-` in a condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ArithOp {
    /// `+`
    Add,
    /// `-`
    Sub,
}

impl ArithOp {
    /// The operator as written.
    pub fn as_str(self) -> &'static str {
        match self {
            ArithOp::Add => "+",
            ArithOp::Sub => "-",
        }
    }
}

/// `all` or `any`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Quantifier {
    /// Every element satisfies the comparison (true for an empty list).
    All,
    /// Some element satisfies the comparison (false for an empty list).
    Any,
}

/// A literal value.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Literal {
    /// `"text"`
    Str(String),
    /// `42`, `-1`
    Int(i64),
    /// `100.00`, `-0.5`: a decimal number, kept as written (its value is
    /// finite; the checker reads it as the nearest `f64`).
    Num(String),
    /// `true` / `false`
    Bool(bool),
    /// `[a, b, c]`
    List(Vec<Spanned<Literal>>),
    /// `null`: no value (the checker allows it only beside `==` / `!=`).
    Null,
}
