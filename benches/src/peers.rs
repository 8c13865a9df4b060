//! The peer engines, driven the way a service would drive them: the policy
//! loaded once, each request built once, and only the decision timed.

use std::str::FromStr as _;
use toolgate_engine::OwnedRequest;

/// cedar-policy with a policy set and no entities (scopes use `==` on ids).
pub struct Cedar {
    policies: cedar_policy::PolicySet,
    authorizer: cedar_policy::Authorizer,
    entities: cedar_policy::Entities,
}

/// A request as Cedar takes it.
pub struct CedarRequest(cedar_policy::Request);

#[expect(
    clippy::panic,
    reason = "a broken benchmark input must stop the benchmark"
)]
impl Cedar {
    /// Parses the policy set.
    pub fn new(src: &str) -> Cedar {
        let policies =
            cedar_policy::PolicySet::from_str(src).unwrap_or_else(|e| panic!("cedar policy: {e}"));
        Cedar {
            policies,
            authorizer: cedar_policy::Authorizer::new(),
            entities: cedar_policy::Entities::empty(),
        }
    }

    /// Builds Cedar's request: principal `Agent::"<agent>"`, action `Action::"call"`,
    /// resource `Tool::"<tool>"`, context `{ args, ctx, tenant, env }`.
    pub fn request(owned: &OwnedRequest) -> CedarRequest {
        let uid = |s: String| {
            cedar_policy::EntityUid::from_str(&s).unwrap_or_else(|e| panic!("cedar uid: {e}"))
        };
        let context = serde_json::json!({
            "args": owned.args,
            "ctx": owned.context.fields,
            "tenant": owned.context.tenant,
            "env": owned.context.env,
        });
        let context = cedar_policy::Context::from_json_value(context, None)
            .unwrap_or_else(|e| panic!("cedar context: {e}"));
        let request = cedar_policy::Request::new(
            uid(format!("Agent::{:?}", owned.agent)),
            uid("Action::\"call\"".to_string()),
            uid(format!("Tool::{:?}", owned.tool)),
            context,
            None,
        )
        .unwrap_or_else(|e| panic!("cedar request: {e}"));
        CedarRequest(request)
    }

    /// Whether Cedar allows the request.
    pub fn permits(&self, request: &CedarRequest) -> bool {
        let response = self
            .authorizer
            .is_authorized(&request.0, &self.policies, &self.entities);
        response.decision() == cedar_policy::Decision::Allow
    }
}

/// regorus with one module; the query is `data.toolgate.decision`.
pub struct Rego {
    engine: regorus::Engine,
}

/// A request as regorus takes it (the `input` document).
pub struct RegoRequest(regorus::Value);

#[expect(
    clippy::panic,
    reason = "a broken benchmark input must stop the benchmark"
)]
impl Rego {
    /// Loads the module.
    pub fn new(src: &str) -> Rego {
        let mut engine = regorus::Engine::new();
        engine
            .add_policy("toolgate.rego".into(), src.into())
            .unwrap_or_else(|e| panic!("rego policy: {e}"));
        Rego { engine }
    }

    /// Builds the input document `{ agent, tool, args, context }`.
    pub fn request(owned: &OwnedRequest) -> RegoRequest {
        let input = serde_json::json!({
            "agent": owned.agent,
            "tool": owned.tool,
            "args": owned.args,
            "context": owned.context.fields,
        });
        RegoRequest(
            regorus::Value::from_json_str(&input.to_string())
                .unwrap_or_else(|e| panic!("rego input: {e}")),
        )
    }

    /// Whether the policy's `decision` is `"allow"`.
    pub fn permits(&mut self, request: &RegoRequest) -> bool {
        self.engine.set_input(request.0.clone());
        match self.engine.eval_rule("data.toolgate.decision".into()) {
            Ok(v) => v == regorus::Value::from("allow"),
            Err(e) => panic!("rego evaluation: {e}"),
        }
    }
}
