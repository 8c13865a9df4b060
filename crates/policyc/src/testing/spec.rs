//! The `*.test.toml` format, read with the `toml` crate; values that must be
//! pointed at in a diagnostic keep their byte spans (`toml::Spanned`).

use serde::Deserialize;
use toml::Spanned;

/// A whole test file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TestFile {
    /// The policy under test, relative to the test file.
    pub policy: Spanned<String>,
    #[serde(default)]
    pub defaults: Defaults,
    #[serde(default, rename = "case")]
    pub cases: Vec<Case>,
    #[serde(default, rename = "scenario")]
    pub scenarios: Vec<Scenario>,
    #[serde(default, rename = "never")]
    pub nevers: Vec<Never>,
}

/// `[defaults]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Defaults {
    pub context: Option<toml::Table>,
    /// The `now` of every case that gives none (RFC 3339 with an offset).
    pub now: Option<Spanned<toml::Value>>,
}

/// `[[case]]`: one stateless decision.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Case {
    pub name: String,
    pub context: Option<toml::Table>,
    /// The time the policy's `now` reads (RFC 3339 with an offset); without
    /// it and `[defaults] now`, `now` has no value (conditions reading it fail closed).
    pub now: Option<Spanned<toml::Value>>,
    pub request: Spanned<Request>,
    /// The session the request belongs to (what the user said, the outputs
    /// the agent read, ...); without it, provenance and session conditions
    /// fail closed.
    pub session: Option<Spanned<crate::session_file::SessionFile>>,
    pub expect: Spanned<CaseExpect>,
}

/// A request: agent, tool, arguments, and (optionally) context fields that
/// override the defaults.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Request {
    pub agent: String,
    pub tool: String,
    #[serde(default)]
    pub args: toml::Table,
    pub context: Option<toml::Table>,
}

/// What a case expects.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CaseExpect {
    pub decision: Spanned<String>,
    pub rule: Option<Spanned<String>>,
    pub approval: Option<ApprovalExpect>,
    pub budget: Option<Spanned<BudgetExpect>>,
}

/// The approval a case expects (only the keys given are compared).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ApprovalExpect {
    pub group: Option<String>,
    pub count: Option<u32>,
    /// A duration as the language writes it (`15m`), or `"none"`.
    pub expires: Option<String>,
}

/// The budget a case expects.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BudgetExpect {
    pub limit: u64,
    /// `minute`, `hour` or `day`.
    pub per: String,
}

/// `[[scenario]]`: steps through the full gateway with a simulated clock.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Scenario {
    pub name: String,
    pub context: Option<toml::Table>,
    pub steps: Vec<Spanned<StepSpec>>,
}

/// One step: exactly one of `call`, `turn`, `approve`, `reject`, `kill_switch`, `check`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StepSpec {
    /// An RFC 3339 time (a string or a TOML date-time).
    pub at: Spanned<toml::Value>,
    pub call: Option<CallSpec>,
    /// What the user said (with `session`, and `tenant` over the context's).
    pub turn: Option<String>,
    pub session: Option<String>,
    pub approve: Option<String>,
    pub reject: Option<String>,
    pub approver: Option<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    pub tenants: Option<Vec<String>>,
    pub kill_switch: Option<bool>,
    pub tenant: Option<String>,
    pub by: Option<String>,
    pub reason: Option<String>,
    pub check: Option<String>,
    pub expect: Option<Spanned<String>>,
}

/// A scenario's call.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CallSpec {
    pub id: String,
    pub agent: String,
    pub tool: String,
    #[serde(default)]
    pub args: toml::Table,
    pub context: Option<toml::Table>,
    /// The session it belongs to.
    pub session: Option<String>,
    /// What the simulated tool returns when the call runs (observed in its session).
    pub output: Option<toml::Value>,
}

/// `[[never]]`: a static guarantee over the compiled policy.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Never {
    pub name: String,
    pub agent: Spanned<String>,
    pub tools: Spanned<Tools>,
    pub decision: Spanned<String>,
}

/// `"*"`, one tool, or a list of tools.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum Tools {
    One(String),
    Many(Vec<String>),
}
