//! The checked intermediate representation: what a policy means.
//!
//! Unlike the AST, names are resolved to typed ids, tool patterns are expanded,
//! constants are inlined, defaults are filled in (approval, scope), and every
//! condition is well typed. Later stages (engine, runtime) read only this.

use toolgate_syntax::ast::Span;

/// Index of a tool in [`Policy::tools`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ToolId(pub u32);

/// Index of an agent in [`Policy::agents`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AgentId(pub u32);

/// Index of a rule in [`Policy::rules`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RuleId(pub u32);

/// A checked policy.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    /// The `policy NAME;` name, if given.
    pub name: Option<String>,
    /// Declared environments (empty: none declared, any env accepted).
    pub envs: Vec<String>,
    /// Declared request-context fields (besides `tenant` and `env`).
    pub context: Vec<Field>,
    /// Declared tools, indexed by [`ToolId`].
    pub tools: Vec<Tool>,
    /// Agents that have a block, indexed by [`AgentId`].
    pub agents: Vec<Agent>,
    /// The `writes` statement.
    pub writes: Writes,
    /// Every rule in source order, indexed by [`RuleId`].
    pub rules: Vec<Rule>,
    /// The values that count as trusted policy constants for `from trusted`:
    /// every `let` value and every list literal after `in` / `not in` (bounds
    /// of comparisons, reasons and names do not count).
    pub constants: Vec<Value>,
}

impl Policy {
    /// The tool with this name.
    pub fn tool_id(&self, name: &str) -> Option<ToolId> {
        self.tools
            .iter()
            .position(|t| t.name == name)
            .map(|i| ToolId(i as u32))
    }

    /// The agent with this name.
    pub fn agent_id(&self, name: &str) -> Option<AgentId> {
        self.agents
            .iter()
            .position(|a| a.name == name)
            .map(|i| AgentId(i as u32))
    }
}

/// A declared tool.
#[derive(Clone, Debug, PartialEq)]
pub struct Tool {
    /// Dotted name.
    pub name: String,
    /// Read or write.
    pub class: ToolClass,
    /// Declared `irreversible`.
    pub irreversible: bool,
    /// The argument schema; `None` accepts any arguments.
    pub schema: Option<Vec<Field>>,
    /// The schema ends with `..`: arguments it does not name are accepted.
    pub open: bool,
    /// The label of its output (`untrusted` unless written).
    pub trust: Trust,
    /// Labels of output fields, as written (each path once).
    pub outputs: Vec<OutputLabel>,
    /// Where it was declared.
    pub span: Span,
}

pub use toolgate_syntax::ast::{OutputSeg, ToolClass, Trust};

/// `PATH: trusted|untrusted` of a tool's `output { }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputLabel {
    /// The path into the output (`[]` is every element of a list).
    pub path: Vec<OutputSeg>,
    /// Its label.
    pub trust: Trust,
}

/// A field of a record type.
#[derive(Clone, Debug, PartialEq)]
pub struct Field {
    /// Name.
    pub name: String,
    /// May be absent.
    pub optional: bool,
    /// Type.
    pub ty: Type,
    /// Recorded as `[redacted]` in audit records.
    pub redact: bool,
}

/// A value type.
#[derive(Clone, Debug, PartialEq)]
pub enum Type {
    /// A string.
    String,
    /// A 64-bit signed integer: an integral JSON number (`4` or `4.0`).
    Int,
    /// Any JSON number (`98.7`, `4`), read as the nearest `f64`.
    Number,
    /// A boolean.
    Bool,
    /// `date`: an RFC 3339 full date (`2026-11-22`), a JSON string.
    Date,
    /// `datetime`: an RFC 3339 date-time with an offset, a JSON string.
    Datetime,
    /// A list whose elements all have this type.
    List(Box<Type>),
    /// A record with exactly these fields.
    Record(Vec<Field>),
    /// `{ a: T, .. }`: a record with these fields that allows others, of any type.
    OpenRecord(Vec<Field>),
    /// `T | null`: a `T` or JSON `null`.
    Nullable(Box<Type>),
    /// `"a" | "b"` or `1 | 2`: exactly one of these values (all strings or all integers).
    OneOf(Vec<Value>),
    /// `any`: any JSON value, `null` included.
    Any,
}

/// An agent (one per `agent NAME { }` block).
#[derive(Clone, Debug, PartialEq)]
pub struct Agent {
    /// Name.
    pub name: String,
    /// Where its block starts.
    pub span: Span,
}

/// The `writes` statement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Writes {
    /// `writes enabled;`: write rules may grant.
    Enabled,
    /// `writes disabled;`: write rules are inactive, on purpose.
    Disabled,
    /// No statement: write rules are inactive (the checker warns).
    Unstated,
}

/// A rule, with its tool patterns expanded.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    /// Its index.
    pub id: RuleId,
    /// Its `@id("...")`, unique in the policy: the name decisions, `explain`,
    /// replay output and audit records show beside `file:line:col`.
    pub name: Option<String>,
    /// `None` for a top-level rule, which applies to every agent.
    pub agent: Option<AgentId>,
    /// The tools it names, patterns expanded (for grants: only tools of the right class).
    pub tools: Vec<ToolId>,
    /// What it does.
    pub effect: Effect,
    /// `when`, if any.
    pub condition: Option<Expr>,
    /// `reason`, if any.
    pub reason: Option<String>,
    /// `@accepted_risk("...")`, if written: a reviewed risk the rule takes on
    /// purpose (it silences the rule's `irreversible` warnings; `explain` and
    /// the audit records of the calls it grants show it).
    pub accepted_risk: Option<String>,
    /// `endorse args.a, ...`: argument paths (after `args`) whose values count
    /// as trusted for the rest of the session once the approval is granted;
    /// a path through a list endorses every element. Only on grants that need
    /// a human approval.
    pub endorse: Vec<Vec<String>>,
    /// Its identity across unrelated edits: `@id(NAME)` for a rule with an id;
    /// otherwise the agent block it is in (`*` at top level) and
    /// `toolgate_syntax::rule_identity`. Budget windows are keyed by it.
    pub identity: String,
    /// Where it was written.
    pub span: Span,
    /// 1-based line of its first character.
    pub line: usize,
    /// 1-based column of its first character.
    pub column: usize,
}

/// What a rule does when it matches.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// Grants a read tool, with no approval and no budget (a plain `allow`).
    Allow {
        /// Credential scope.
        scope: Vec<ScopeItem>,
    },
    /// Grants with human approval or within a budget: every `write` rule
    /// (write tools), and an `allow` with `require` or `auto-approve` (read
    /// tools). Reads and writes share this effect so that one decision,
    /// budget and approval path serves both; the tool's class says which.
    Write {
        /// How the write is approved.
        approval: Approval,
        /// Credential scope.
        scope: Vec<ScopeItem>,
    },
    /// Denies; overrides every grant.
    Deny,
    /// An approval floor (`require ... on TOOLS`): whichever grant matched,
    /// the decision needs at least this human approval.
    Floor(HumanApproval),
}

impl Effect {
    /// Whether the rule grants (`allow` or `write`), as opposed to a deny or a floor.
    pub fn is_grant(&self) -> bool {
        matches!(self, Effect::Allow { .. } | Effect::Write { .. })
    }
}

/// How a grant is approved (a write, or a read with `require`/`auto-approve`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Approval {
    /// A human must approve (the default for `write`).
    Human(HumanApproval),
    /// Approved automatically within a budget.
    Auto(Budget),
}

/// Who must approve a call, how many of them, and for how long.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HumanApproval {
    /// The approvers' group, if named.
    pub group: Option<String>,
    /// How many distinct approvers.
    pub count: u32,
    /// How long an approval stays valid, in seconds.
    pub expires_secs: Option<u64>,
}

/// An auto-approval budget: at most `limit` calls per sliding `window_secs`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Budget {
    /// Calls per window.
    pub limit: u64,
    /// Window length in seconds.
    pub window_secs: u64,
    /// What the budget is counted per.
    pub key: BudgetKey,
}

/// What a budget is counted per (the rule is always part of the key).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BudgetKey {
    /// The default: agent, tool and tenant.
    AgentToolTenant,
    /// `per tenant`: tool and tenant, shared by all agents.
    ToolTenant,
    /// `per agent`: agent and tool, shared by all tenants.
    AgentTool,
}

/// One dimension of a credential scope. Never derived from arguments.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ScopeItem {
    /// The request context's tenant.
    Tenant,
    /// The request context's env.
    Env,
    /// A declared request-context field.
    Ctx(String),
}

/// The scope of a rule with no `scope` clause.
pub fn default_scope() -> Vec<ScopeItem> {
    vec![ScopeItem::Tenant, ScopeItem::Env]
}

/// A checked condition or operand.
#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    /// What it is.
    pub kind: ExprKind,
    /// Where it was written.
    pub span: Span,
}

impl Expr {
    /// Calls `f` on this expression and on every expression inside it, outer first.
    pub fn visit<'a>(&'a self, f: &mut dyn FnMut(&'a Expr)) {
        use ExprKind as K;
        f(self);
        match &self.kind {
            K::Lit(_) | K::Path(_) | K::Elem | K::Has(_) | K::Now | K::Duration(_) => {}
            K::SessionTainted | K::SessionCalls(_) => {}
            K::Len(x)
            | K::Lower(x)
            | K::Text(_, x)
            | K::Url(_, x)
            | K::Not(x)
            | K::Glob(x, _)
            | K::Regex(x, _)
            | K::IsNull(x)
            | K::Time(_, x)
            | K::From(x, _)
            | K::Extract(_, x) => x.visit(f),
            K::Within(a, b) | K::Binary(_, a, b) | K::Quant(_, a, b) | K::Arith(_, a, b) => {
                a.visit(f);
                b.visit(f);
            }
            K::And(xs) | K::Or(xs) => xs.iter().for_each(|x| x.visit(f)),
        }
    }
}

/// The kinds of [`Expr`].
#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    /// A literal (constants are inlined to this).
    Lit(Value),
    /// A request value.
    Path(Path),
    /// The current element inside a quantifier.
    Elem,
    /// `len(x)`: characters of a string or elements of a list.
    Len(Box<Expr>),
    /// `lower(x)`.
    Lower(Box<Expr>),
    /// `trim(x)`, `compact(x)` or `email_domain(x)`: a string from a string.
    Text(TextFn, Box<Expr>),
    /// `within(path, root)`: the normalised absolute `path` lies under `root`
    /// by whole segments (`docs/semantics.md` says when it is an error).
    Within(Box<Expr>, Box<Expr>),
    /// `host(url)`, `port(url)`, `scheme(url)` or `path(url)`: one part of an
    /// absolute `http`/`https`/`ws`/`wss` URL as a WHATWG client reads it.
    Url(UrlPart, Box<Expr>),
    /// `not x`.
    Not(Box<Expr>),
    /// All hold.
    And(Vec<Expr>),
    /// Any holds.
    Or(Vec<Expr>),
    /// The path is present.
    Has(Path),
    /// A binary comparison.
    Binary(BinOp, Box<Expr>, Box<Expr>),
    /// `x matches "glob"` (`*` any run of characters, `?` one character).
    Glob(Box<Expr>, String),
    /// `x matches regex "re"` (the `regex` crate's syntax; checked to compile).
    Regex(Box<Expr>, String),
    /// `all`/`any` element of the list satisfies the predicate (which reads [`ExprKind::Elem`]).
    Quant(Quantifier, Box<Expr>, Box<Expr>),
    /// `x == null`: `x` has no value (absent, or JSON `null`); never an error
    /// for a missing value, an error only for a wrong type on the way.
    IsNull(Box<Expr>),
    /// `now`: the trusted clock's time, supplied with the request.
    Now,
    /// A duration literal, in seconds (`30d` = 2 592 000).
    Duration(i64),
    /// `date(x)` / `datetime(x)`, and every read of a value declared
    /// `date` or `datetime` (its JSON string is parsed where it is read).
    Time(TimeFn, Box<Expr>),
    /// `a + b`, `a - b` on dates, datetimes and durations.
    Arith(ArithOp, Box<Expr>, Box<Expr>),
    /// `x from SOURCE`: the value (a string or a number) occurs in that
    /// source of the call's session (`docs/semantics.md`, "Provenance").
    From(Box<Expr>, Source),
    /// `session.tainted`: untrusted output reached the agent in this session.
    SessionTainted,
    /// `session.calls(T)`: calls of `T` allowed earlier in this session.
    SessionCalls(ToolId),
    /// `urls(x)` / `emails(x)`: the identifier-shaped pieces of a text.
    Extract(ExtractFn, Box<Expr>),
}

/// Where a value must come from (`x from SOURCE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    /// `from user`: a user turn.
    User,
    /// `from ctx`: the call's trusted context (tenant, env, context fields).
    Ctx,
    /// `from trusted`: user, context, constants, trusted outputs, endorsements.
    Trusted,
    /// `from tool T`: any output of `T` in the session, whatever its labels.
    Tool(ToolId),
}

/// The functions that pick identifier-shaped pieces out of a text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExtractFn {
    /// `urls(x)`: pieces that are `http(s)://...`, `www....` or `host.tld/...`.
    Urls,
    /// `emails(x)`: pieces shaped `local@domain.tld`.
    Emails,
}

pub use toolgate_syntax::ast::ArithOp;

/// The conversions to `date` and `datetime`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TimeFn {
    /// `date(x)`: a `YYYY-MM-DD` string, or a datetime's UTC calendar date.
    Date,
    /// `datetime(x)`: an RFC 3339 date-time string with an offset.
    Datetime,
}

pub use toolgate_syntax::ast::Quantifier;

/// A string function of one string.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TextFn {
    /// `trim(x)`: leading and trailing whitespace removed.
    Trim,
    /// `compact(x)`: every whitespace character removed.
    Compact,
    /// `email_domain(x)`: the lower-cased domain of an e-mail address; an
    /// error when `x` is not one.
    EmailDomain,
}

impl TextFn {
    /// The function called `name`, if there is one.
    pub fn from_name(name: &str) -> Option<TextFn> {
        match name {
            "trim" => Some(TextFn::Trim),
            "compact" => Some(TextFn::Compact),
            "email_domain" => Some(TextFn::EmailDomain),
            _ => None,
        }
    }
}

/// The part of a URL a URL function returns (`docs/semantics.md` says which
/// URLs they accept).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UrlPart {
    /// `host(url)`: the host a client connects to (`string`).
    Host,
    /// `port(url)`: the explicit port, or the scheme's default (`int`).
    Port,
    /// `scheme(url)`: `http`, `https`, `ws` or `wss` (`string`).
    Scheme,
    /// `path(url)`: the normalised path, percent-encoding kept (`string`).
    Path,
}

impl UrlPart {
    /// Every URL function.
    pub const ALL: [UrlPart; 4] = [UrlPart::Host, UrlPart::Port, UrlPart::Scheme, UrlPart::Path];

    /// The function's name in the language.
    pub fn name(self) -> &'static str {
        match self {
            UrlPart::Host => "host",
            UrlPart::Port => "port",
            UrlPart::Scheme => "scheme",
            UrlPart::Path => "path",
        }
    }

    /// The URL function called `name`, if there is one.
    pub fn from_name(name: &str) -> Option<UrlPart> {
        UrlPart::ALL.into_iter().find(|p| p.name() == name)
    }
}

/// Binary operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinOp {
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
    /// `in` a list
    In,
    /// `not in` a list
    NotIn,
    /// string prefix
    StartsWith,
    /// string suffix
    EndsWith,
    /// substring, or list membership
    Contains,
}

/// A value read from the request.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Path {
    /// `args.a.b`: model output, untrusted.
    Args(Vec<String>),
    /// `ctx.f`: trusted request context.
    Ctx(String),
    /// The trusted tenant.
    Tenant,
    /// The trusted env.
    Env,
    /// The calling agent's name.
    Agent,
    /// The called tool's name.
    Tool,
    /// `x.a.b` inside `all|any x in LIST: ...`: a field of the current element
    /// (at least one field; the element itself is [`ExprKind::Elem`]).
    Elem(Vec<String>),
}

/// A literal value.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Value {
    /// A string.
    Str(String),
    /// An integer.
    Int(i64),
    /// A decimal number.
    Num(Number),
    /// A boolean.
    Bool(bool),
    /// A list.
    List(Vec<Value>),
}

/// A finite `f64`, the value of a decimal literal. Equality and hashing are by
/// value (`-0.0 == 0.0`), so it may key maps; ordering against integers is exact
/// (see `docs/semantics.md`, "Numbers").
#[derive(Clone, Copy, Debug)]
pub struct Number(f64);

impl Number {
    /// Zero.
    pub const ZERO: Number = Number(0.0);

    /// The number, if `value` is finite.
    pub fn new(value: f64) -> Option<Number> {
        value.is_finite().then_some(Number(value))
    }

    /// Its value.
    pub fn get(self) -> f64 {
        self.0
    }
}

impl PartialEq for Number {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl Eq for Number {}

impl std::hash::Hash for Number {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // `+ 0.0` turns `-0.0` into `0.0`, which compare equal.
        (self.0 + 0.0).to_bits().hash(state);
    }
}
