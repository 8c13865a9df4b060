//! Diagnostics of the check stage. Each variant has a stable code
//! (`toolgate::check::*`, listed in docs/diagnostics.md), a label on the exact
//! span, and a help line where there is something better to write.

use miette::{Diagnostic, LabeledSpan, SourceSpan};
use thiserror::Error;

/// An error or warning found by the checker.
#[derive(Clone, Debug, Error, Diagnostic, PartialEq, Eq)]
pub enum CheckError {
    /// A tool name that no `tool` declares.
    #[error("undeclared tool `{name}`")]
    #[diagnostic(code(toolgate::check::unknown_tool))]
    UnknownTool {
        /// The name as written.
        name: String,
        /// Where.
        #[label("not declared")]
        span: SourceSpan,
        /// Did you mean.
        #[help]
        help: Option<String>,
    },
    /// An agent name in a condition that no `agent` block declares.
    #[error("undeclared agent `{name}`")]
    #[diagnostic(code(toolgate::check::unknown_agent))]
    UnknownAgent {
        /// The name as written.
        name: String,
        /// Where.
        #[label("no `agent {name} {{ }}` block")]
        span: SourceSpan,
        /// Did you mean.
        #[help]
        help: Option<String>,
    },
    /// A name declared twice in the same place.
    #[error("duplicate {what} `{name}`")]
    #[diagnostic(
        code(toolgate::check::duplicate_declaration),
        help("remove one of them, or rename it")
    )]
    Duplicate {
        /// What kind of thing (tool, agent, constant, field, env, ...).
        what: &'static str,
        /// The name.
        name: String,
        /// The second declaration.
        #[label(primary, "declared again here")]
        span: SourceSpan,
        /// The first declaration.
        #[label("first declared here")]
        first: SourceSpan,
    },
    /// `allow` on a write tool or `write` on a read tool.
    #[error("`{keyword}` cannot grant {class} tool `{tool}`")]
    #[diagnostic(code(toolgate::check::wrong_grant_keyword))]
    WrongGrantKeyword {
        /// `allow` or `write`.
        keyword: &'static str,
        /// `read` or `write`.
        class: &'static str,
        /// The tool.
        tool: String,
        /// Where the tool is named.
        #[label(primary, "this is a {class} tool")]
        span: SourceSpan,
        /// Where the tool is declared.
        #[label("declared `{class}` here")]
        decl: SourceSpan,
        /// The keyword to use.
        #[help]
        help: String,
    },
    /// A string compared with `env` that `envs` does not declare.
    #[error("unknown env `{name}`")]
    #[diagnostic(code(toolgate::check::unknown_env))]
    UnknownEnv {
        /// The env as written.
        name: String,
        /// Where.
        #[label("not in `envs`")]
        span: SourceSpan,
        /// Did you mean / the declared envs.
        #[help]
        help: String,
    },
    /// A tenant name compared with `tenant` that `tenants` does not declare.
    #[error("unknown tenant `{name}`")]
    #[diagnostic(code(toolgate::check::unknown_tenant))]
    UnknownTenant {
        /// The tenant as written.
        name: String,
        /// Where.
        #[label("not in `tenants`")]
        span: SourceSpan,
        /// Did you mean / the declared tenants.
        #[help]
        help: String,
    },
    /// An approver group (`from "..."`) that `groups` does not declare.
    #[error("unknown approver group `{name}`")]
    #[diagnostic(code(toolgate::check::unknown_group))]
    UnknownGroup {
        /// The group as written.
        name: String,
        /// Where.
        #[label("not in `groups`")]
        span: SourceSpan,
        /// Did you mean / the declared groups.
        #[help]
        help: String,
    },
    /// `ctx.f` where the `context` block has no `f`.
    #[error("unknown context field `{name}`")]
    #[diagnostic(code(toolgate::check::unknown_context_field))]
    UnknownContextField {
        /// The field.
        name: String,
        /// Where.
        #[label("not declared in `context`")]
        span: SourceSpan,
        /// Did you mean / how to declare it.
        #[help]
        help: String,
    },
    /// `args.f` where the tool's schema has no `f`.
    #[error("unknown argument `{name}` for tool `{tool}`")]
    #[diagnostic(code(toolgate::check::unknown_argument))]
    UnknownArgument {
        /// The path as written.
        name: String,
        /// The tool whose schema lacks it.
        tool: String,
        /// Where.
        #[label("not in the schema of `{tool}`")]
        span: SourceSpan,
        /// Did you mean / `has` guard.
        #[help]
        help: String,
    },
    /// Operands of the wrong type.
    #[error("{message}")]
    #[diagnostic(code(toolgate::check::type_mismatch))]
    TypeMismatch {
        /// What does not fit.
        message: String,
        /// The operands and their types.
        #[label(collection)]
        labels: Vec<LabeledSpan>,
        /// What would fit.
        #[help]
        help: Option<String>,
    },
    /// A `scope` built from model output.
    #[error("credential scope cannot come from model output (`{path}`)")]
    #[diagnostic(
        code(toolgate::check::scope_from_args),
        help("scope credentials by `tenant`, `env` or a `ctx.` field, which come from the trusted request context")
    )]
    ScopeFromArgs {
        /// The path as written.
        path: String,
        /// Where.
        #[label("`args` is written by the model")]
        span: SourceSpan,
    },
    /// A `scope` item that is not `tenant`, `env` or `ctx.f`.
    #[error("unknown scope `{path}`")]
    #[diagnostic(code(toolgate::check::unknown_scope))]
    UnknownScope {
        /// The path as written.
        path: String,
        /// Where.
        #[label("not a scope")]
        span: SourceSpan,
        /// What is allowed.
        #[help]
        help: String,
    },
    /// `auto-approve` with no budget.
    #[error("`auto-approve` needs a limit")]
    #[diagnostic(
        code(toolgate::check::auto_approve_without_limit),
        help("write a budget such as `auto-approve limit 10 per hour`; unlimited auto-approval is not allowed")
    )]
    AutoApproveWithoutLimit {
        /// Where.
        #[label("no `limit N per minute|hour|day`")]
        span: SourceSpan,
    },
    /// A type name that does not exist.
    #[error("unknown type `{name}`")]
    #[diagnostic(code(toolgate::check::unknown_type))]
    UnknownType {
        /// The name.
        name: String,
        /// Where.
        #[label("not a type")]
        span: SourceSpan,
        /// Did you mean.
        #[help]
        help: String,
    },
    /// A union type the language cannot say: not `T | null`, nor literal
    /// values of one type (`"a" | "b"`, `1 | 2`), each optionally `| null`.
    #[error("{message}")]
    #[diagnostic(code(toolgate::check::invalid_union))]
    InvalidUnion {
        /// What is wrong with it.
        message: String,
        /// Where.
        #[label("{label}")]
        span: SourceSpan,
        /// The part that does not fit.
        label: String,
        /// What can be written instead.
        #[help]
        help: String,
    },
    /// A literal compared with a value whose declared type is an enum
    /// (`"economy" | "business"`) that is not one of its values.
    #[error("`{value}` is not a value of {of}")]
    #[diagnostic(code(toolgate::check::unknown_enum_value))]
    UnknownEnumValue {
        /// The literal as written.
        value: String,
        /// What it is compared with (`` `args.cabin` ``, "the list's elements").
        of: String,
        /// Where.
        #[label("not one of {values}")]
        span: SourceSpan,
        /// The declared values, `"a" | "b"`.
        values: String,
        /// Did you mean.
        #[help]
        help: String,
    },
    /// A name in a condition that is neither a request value nor a constant.
    #[error("unknown name `{name}`")]
    #[diagnostic(code(toolgate::check::unknown_name))]
    UnknownName {
        /// The name.
        name: String,
        /// Where.
        #[label("not a constant or request value")]
        span: SourceSpan,
        /// Did you mean.
        #[help]
        help: String,
    },
    /// `endorse` on a grant that no human approves (a plain `allow`, an
    /// `auto-approve` budget): there is no approval to endorse the values.
    #[error("`endorse` needs a human approval")]
    #[diagnostic(
        code(toolgate::check::endorse_without_approval),
        help("values are endorsed when an approver grants the call: add `require approval`, or remove `endorse`")
    )]
    EndorseWithoutApproval {
        /// The clause.
        #[label("nobody approves this rule's calls")]
        span: SourceSpan,
    },
    /// An `endorse` path that is not an argument holding strings or numbers.
    #[error("cannot endorse `{path}`")]
    #[diagnostic(code(toolgate::check::invalid_endorse_path))]
    InvalidEndorsePath {
        /// The path as written.
        path: String,
        /// Where.
        #[label("{why}")]
        span: SourceSpan,
        /// What is wrong with it.
        why: String,
        /// What to write instead.
        #[help]
        help: String,
    },
    /// A `date("...")` or `datetime("...")` literal that is not RFC 3339.
    #[error("invalid {kind} `{text}`")]
    #[diagnostic(code(toolgate::check::invalid_date))]
    InvalidDate {
        /// `date` or `datetime`.
        kind: &'static str,
        /// The text as written.
        text: String,
        /// Where.
        #[label("not an RFC 3339 {kind}")]
        span: SourceSpan,
        /// The expected form.
        #[help]
        help: String,
    },
    /// A function that does not exist.
    #[error("unknown function `{name}`")]
    #[diagnostic(code(toolgate::check::unknown_function))]
    UnknownFunction {
        /// The name.
        name: String,
        /// Where.
        #[label("not a function")]
        span: SourceSpan,
        /// Did you mean.
        #[help]
        help: String,
    },
    /// An `@id("...")` that is empty or has characters other than letters,
    /// digits, `-`, `_`, `.` and `:`.
    #[error("invalid rule id `{id}`")]
    #[diagnostic(
        code(toolgate::check::invalid_rule_id),
        help("a rule id is 1 to 64 ASCII letters, digits, `-`, `_`, `.` or `:`, e.g. `@id(\"close-dev-budget\")`")
    )]
    InvalidRuleId {
        /// The id as written.
        id: String,
        /// Where.
        #[label("not a rule id")]
        span: SourceSpan,
    },
    /// A `matches` pattern that is not a literal, does not compile, or is too large.
    #[error("invalid {kind} pattern: {reason}")]
    #[diagnostic(code(toolgate::check::invalid_pattern))]
    InvalidPattern {
        /// `regex` or `glob`.
        kind: &'static str,
        /// Why.
        reason: String,
        /// Where.
        #[label("this pattern")]
        span: SourceSpan,
        /// What to write instead.
        #[help]
        help: String,
    },
    /// A clause on a rule kind that has no use for it.
    #[error("`{clause}` is not allowed on `{kind}` rules")]
    #[diagnostic(code(toolgate::check::clause_not_allowed))]
    ClauseNotAllowed {
        /// The clause keyword.
        clause: &'static str,
        /// The rule keyword.
        kind: &'static str,
        /// Where.
        #[label("not allowed here")]
        span: SourceSpan,
        /// Why / what instead.
        #[help]
        help: String,
    },
    /// The same clause twice on one rule.
    #[error("duplicate `{clause}` clause")]
    #[diagnostic(
        code(toolgate::check::duplicate_clause),
        help("merge the two clauses into one")
    )]
    DuplicateClause {
        /// The clause keyword.
        clause: &'static str,
        /// The second one.
        #[label(primary, "written again here")]
        span: SourceSpan,
        /// The first one.
        #[label("first written here")]
        first: SourceSpan,
    },
    /// Both `require` and `auto-approve` on one rule.
    #[error("a rule cannot both `require` approval and `auto-approve`")]
    #[diagnostic(
        code(toolgate::check::conflicting_approval),
        help("write two rules: one with `auto-approve limit ...` and one with `require approval`; the budgeted one is used first")
    )]
    ConflictingApproval {
        /// The second of the two clauses.
        #[label(primary, "conflicts")]
        span: SourceSpan,
        /// The first.
        #[label("with this")]
        first: SourceSpan,
    },
    /// A count, limit or expiry of zero.
    #[error("{what} must be at least 1")]
    #[diagnostic(code(toolgate::check::zero_value))]
    ZeroValue {
        /// What was zero.
        what: &'static str,
        /// Where.
        #[label("zero")]
        span: SourceSpan,
        /// What instead.
        #[help]
        help: &'static str,
    },
    /// A grant that an unconditional deny always overrides.
    #[error("rule can never grant anything: every tool it names is denied unconditionally")]
    #[diagnostic(
        code(toolgate::check::unreachable_rule),
        severity(Warning),
        help("remove this rule, or add a `when` condition to the deny")
    )]
    UnreachableRule {
        /// The grant.
        #[label(primary, "never applies")]
        span: SourceSpan,
        /// A deny that overrides it.
        #[label("denied here")]
        deny: SourceSpan,
    },
    /// A deny that tests an argument's name (`has args.x`) on a tool without a
    /// schema: any other spelling of the name passes.
    #[error("deny tests argument `{name}` by name, but tool `{tool}` has no argument schema: a differently spelled name passes")]
    #[diagnostic(
        code(toolgate::check::name_denylist_without_schema),
        severity(Warning),
        help("declare `{tool}`'s arguments (`tool {tool} read {{ ... }}`): a call with an argument the schema does not list is then denied, however it is spelled")
    )]
    NameDenylistWithoutSchema {
        /// The argument's name.
        name: String,
        /// The tool without a schema.
        tool: String,
        /// The `has` test.
        #[label(primary, "only this spelling is denied")]
        span: SourceSpan,
    },
    /// Grants, but no agent block: a call from an agent without a block is
    /// always denied, so no grant can apply.
    #[error("the policy grants calls but declares no agent: every call is denied")]
    #[diagnostic(
        code(toolgate::check::no_agents),
        severity(Warning),
        help("declare each calling agent with a block: `agent NAME {{ ... }}`; an empty block `agent NAME {{}}` gives it the top-level rules")
    )]
    NoAgents {
        /// The first grant.
        #[label(primary, "applies to no agent")]
        span: SourceSpan,
    },
    /// A stricter approval that a weaker grant of the same tool wins over.
    #[error("this approval is never asked for when the weaker grant also matches: the most permissive grant wins")]
    #[diagnostic(
        code(toolgate::check::shadowed_approval),
        severity(Warning),
        help("to make this approval a minimum whichever grant matches, write it as an approval floor: `require N approvals from \"GROUP\" on TOOL when ...;`")
    )]
    ShadowedApproval {
        /// The stricter grant.
        #[label(primary, "stricter approval")]
        span: SourceSpan,
        /// The weaker grant that wins.
        #[label("weaker grant, chosen first")]
        weaker: SourceSpan,
    },
    /// The same rule written twice in the same block.
    #[error("duplicate rule")]
    #[diagnostic(
        code(toolgate::check::duplicate_rule),
        severity(Warning),
        help("remove one of the two copies")
    )]
    DuplicateRule {
        /// The second copy.
        #[label(primary, "same as an earlier rule")]
        span: SourceSpan,
        /// The first copy.
        #[label("first written here")]
        first: SourceSpan,
    },
    /// A write rule in a policy without a `writes` statement.
    #[error("write rule is inactive: the policy does not say `writes enabled;`")]
    #[diagnostic(
        code(toolgate::check::dead_write),
        severity(Warning),
        help("add `writes enabled;` to let write rules grant, or `writes disabled;` to keep them inactive on purpose")
    )]
    DeadWrite {
        /// The rule.
        #[label("never grants")]
        span: SourceSpan,
    },
    /// `auto-approve` on a tool declared `irreversible`.
    #[error("irreversible tool `{tool}` is auto-approved")]
    #[diagnostic(
        code(toolgate::check::irreversible_auto_approve),
        severity(Warning),
        help("irreversible writes should `require approval`; an auto-approved mistake cannot be undone (once reviewed, say why with `@accepted_risk(\"...\")` before the rule)")
    )]
    IrreversibleAutoApprove {
        /// The tool.
        tool: String,
        /// The clause.
        #[label(primary, "auto-approved")]
        span: SourceSpan,
        /// The tool's declaration.
        #[label("declared `irreversible` here")]
        decl: SourceSpan,
    },
    /// An `irreversible` write whose approval anyone may give and that never
    /// expires (no `from`, no `expires`, no floor that adds them).
    #[error(
        "irreversible tool `{tool}` can be approved by anyone, and the approval never expires"
    )]
    #[diagnostic(
        code(toolgate::check::irreversible_open_approval),
        severity(Warning),
        help("name the approvers and bound the approval, e.g. `require approval from \"GROUP\" expires 1h`; or, once reviewed, say why with `@accepted_risk(\"...\")`")
    )]
    IrreversibleOpenApproval {
        /// The tool.
        tool: String,
        /// The grant.
        #[label(primary, "approvable by anyone, with no expiry")]
        span: SourceSpan,
        /// The tool's declaration.
        #[label("declared `irreversible` here")]
        decl: SourceSpan,
    },
    /// `@accepted_risk("...")` on a rule that takes no risk the checker warns about.
    #[error("this rule takes no risk that needs accepting")]
    #[diagnostic(
        code(toolgate::check::unneeded_accepted_risk),
        severity(Warning),
        help("`@accepted_risk` acknowledges an auto-approved `irreversible` tool or one approvable by anyone with no expiry; remove it here, where it would hide a risk added later")
    )]
    UnneededAcceptedRisk {
        /// The annotation.
        #[label("nothing to accept")]
        span: SourceSpan,
    },
    /// `@accepted_risk("")`: an acknowledgement without a reason.
    #[error("an accepted risk needs a written reason")]
    #[diagnostic(
        code(toolgate::check::invalid_accepted_risk),
        help("say who reviewed what, e.g. `@accepted_risk(\"reviewed by sec: mail to colleagues only\")`")
    )]
    InvalidAcceptedRisk {
        /// The annotation's reason.
        #[label("empty reason")]
        span: SourceSpan,
    },
    /// `allow *` or `write *`.
    #[error("`{keyword} *` grants every {class} tool")]
    #[diagnostic(
        code(toolgate::check::wildcard_grant),
        severity(Warning),
        help(
            "list the tools this rule should grant; new tools would otherwise be granted silently"
        )
    )]
    WildcardGrant {
        /// `allow` or `write`.
        keyword: &'static str,
        /// `read` or `write`.
        class: &'static str,
        /// Where.
        #[label("every {class} tool")]
        span: SourceSpan,
    },
    /// A tool pattern that matches nothing.
    #[error("pattern `{pattern}` matches no {what}")]
    #[diagnostic(code(toolgate::check::empty_pattern), severity(Warning))]
    EmptyPattern {
        /// The pattern.
        pattern: String,
        /// "declared tool", "read tool" or "write tool".
        what: &'static str,
        /// Where.
        #[label("matches nothing")]
        span: SourceSpan,
        /// What instead.
        #[help]
        help: String,
    },
    /// A deny (or approval floor) reading an optional or nullable argument
    /// without `has`: it applies to every call that omits it.
    #[error("this {kind} reads `{arg}`, which calls may omit, without `has`")]
    #[diagnostic(code(toolgate::check::unguarded_optional), severity(Warning))]
    UnguardedOptional {
        /// `deny` or `approval floor`.
        kind: &'static str,
        /// The argument, e.g. `args.cc`.
        arg: String,
        /// The read.
        #[label("an error when the call omits it (or sends `null`)")]
        span: SourceSpan,
        /// The guard to write.
        #[help]
        help: String,
    },
    /// `starts_with` or `matches` on an argument that a rule reads as a URL.
    #[error("`{op}` on the raw URL `{arg}`")]
    #[diagnostic(code(toolgate::check::raw_url_match), severity(Warning))]
    RawUrlMatch {
        /// `starts_with`, `matches` or `matches regex`.
        op: &'static str,
        /// The argument, e.g. `args.url`.
        arg: String,
        /// The comparison.
        #[label(primary, "compares the text, not where it leads")]
        span: SourceSpan,
        /// A URL function reading the same argument.
        #[label("read as a URL here")]
        url: SourceSpan,
        /// The URL functions to use instead.
        #[help]
        help: String,
    },
    /// `host(...) ends_with "example.com"`: also matches `evil-example.com`.
    #[error("host suffix `{suffix}` does not start with `.`")]
    #[diagnostic(code(toolgate::check::host_suffix_without_dot), severity(Warning))]
    HostSuffixWithoutDot {
        /// The suffix.
        suffix: String,
        /// Where.
        #[label("also matches `evil-{suffix}`")]
        span: SourceSpan,
        /// What instead.
        #[help]
        help: String,
    },
    /// A declared context field that no rule reads or scopes by.
    #[error("context field `{name}` is never used")]
    #[diagnostic(
        code(toolgate::check::unused_context_field),
        severity(Warning),
        help("remove it, or read it in a condition (`ctx.{name}`) or a `scope`; callers must still send every declared field")
    )]
    UnusedContextField {
        /// The field.
        name: String,
        /// Where it is declared.
        #[label("declared here")]
        span: SourceSpan,
    },
    /// A `let` constant that no condition uses.
    #[error("constant `{name}` is never used")]
    #[diagnostic(
        code(toolgate::check::unused_constant),
        severity(Warning),
        help("remove it, or use it in a `when` condition")
    )]
    UnusedConstant {
        /// The name.
        name: String,
        /// Where.
        #[label("declared here")]
        span: SourceSpan,
    },
}

impl CheckError {
    /// Whether this is a warning (anything else is an error).
    pub fn is_warning(&self) -> bool {
        matches!(self.severity(), Some(miette::Severity::Warning))
    }
}
