//! A policy as the gateway uses it: the engine, the policy's hash and name,
//! and per tool whether it writes and which argument paths the journal must
//! redact. Built once (hot reload will swap one `Arc` of it).

use super::GatewayError;
use crate::journal::sha256_hex;
use serde_json::{json, Value as Json};
use std::collections::HashMap;
use std::sync::Arc;
use toolgate_check::ir;
use toolgate_engine::Engine;

/// One step of a path to a redacted value.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Step {
    /// A record field.
    Field(String),
    /// Every element of a list.
    Each,
}

/// What the gateway needs to know of one tool.
#[derive(Clone, Debug, Default)]
struct ToolFacts {
    write: bool,
    redact: Vec<Vec<Step>>,
}

/// The engine, the IR's facts and the policy text's hash: three views of one policy.
pub struct CompiledPolicy {
    pub(super) engine: Arc<Engine>,
    pub(super) hash: String,
    pub(super) name: Option<String>,
    tools: HashMap<String, ToolFacts>,
    /// The tools as declared (their output labels, for observations).
    declared: HashMap<String, ir::Tool>,
    /// What decision records need to say what each `from` condition found;
    /// `None` for a policy without one (nothing is computed per call).
    provenance: Option<Arc<Sources>>,
    /// Whether a rule reads `session.tainted`.
    reads_taint: bool,
    /// The tools whose `session.calls(T)` a rule reads.
    reads_calls: std::collections::HashSet<String>,
}

/// The checked policy and its text, kept for [`CompiledPolicy::provenance_notes`].
struct Sources {
    policy: ir::Policy,
    text: String,
    lines: toolgate_syntax::LineIndex,
    file: String,
    /// By tool name, the rules with a `from` condition that name it (so a
    /// decision's notes cost its cell's rules, not the policy's).
    by_tool: HashMap<String, Vec<ir::RuleId>>,
}

/// A decision record holds at most this many provenance notes (a quantifier
/// over a long list makes one per element).
pub const MAX_PROVENANCE_NOTES: usize = 32;

impl std::fmt::Debug for Sources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sources(..)")
    }
}

impl CompiledPolicy {
    /// Compiles a checked policy (`file` names it in rule locations).
    pub fn new(policy: &ir::Policy, text: &str, file: &str) -> Result<Self, GatewayError> {
        let engine = Engine::new(policy, file).map_err(|e| GatewayError::Policy {
            file: file.to_string(),
            source: Box::new(e),
        })?;
        let tools = policy
            .tools
            .iter()
            .map(|t| {
                let mut redact = Vec::new();
                redacted_paths(
                    t.schema.as_deref().unwrap_or(&[]),
                    &mut Vec::new(),
                    &mut redact,
                );
                let write = t.class == ir::ToolClass::Write;
                (t.name.clone(), ToolFacts { write, redact })
            })
            .collect();
        Ok(CompiledPolicy {
            engine: Arc::new(engine),
            hash: sha256_hex(text.as_bytes()),
            name: policy.name.clone(),
            tools,
            declared: policy
                .tools
                .iter()
                .map(|t| (t.name.clone(), t.clone()))
                .collect(),
            reads_taint: reads(policy, &mut |k| matches!(k, ir::ExprKind::SessionTainted)),
            reads_calls: policy
                .tools
                .iter()
                .enumerate()
                .filter(|(i, _)| {
                    reads(
                        policy,
                        &mut |k| matches!(k, ir::ExprKind::SessionCalls(t) if t.0 as usize == *i),
                    )
                })
                .map(|(_, t)| t.name.clone())
                .collect(),
            provenance: policy
                .rules
                .iter()
                .any(|r| r.condition.as_ref().is_some_and(toolgate_engine::has_from))
                .then(|| {
                    let mut by_tool: HashMap<String, Vec<ir::RuleId>> = HashMap::new();
                    for r in &policy.rules {
                        if r.condition.as_ref().is_some_and(toolgate_engine::has_from) {
                            for t in &r.tools {
                                if let Some(tool) = policy.tools.get(t.0 as usize) {
                                    by_tool.entry(tool.name.clone()).or_default().push(r.id);
                                }
                            }
                        }
                    }
                    Arc::new(Sources {
                        policy: policy.clone(),
                        text: text.to_string(),
                        lines: toolgate_syntax::LineIndex::new(text),
                        file: file.to_string(),
                        by_tool,
                    })
                }),
        })
    }

    /// Whether a rule reads `session.tainted` (a taint it never reads need
    /// not be sealed before the gateway acts: `Gateway::record`).
    pub fn reads_taint(&self) -> bool {
        self.reads_taint
    }

    /// Whether a rule reads `session.calls(tool)`.
    pub fn reads_calls(&self, tool: &str) -> bool {
        self.reads_calls.contains(tool)
    }

    /// What each `x from SOURCE` condition of the request's cell found, for
    /// its decision record (`record::Decision::provenance`); empty for a
    /// policy or a cell without one.
    pub fn provenance_notes(
        &self,
        req: &toolgate_engine::Request<'_>,
    ) -> Vec<crate::record::ProvenanceNote> {
        let Some(p) = &self.provenance else {
            return Vec::new();
        };
        let Some(rules) = p.by_tool.get(req.tool) else {
            return Vec::new();
        };
        let agent = p.policy.agent_id(req.agent);
        let cell: Vec<ir::RuleId> = rules
            .iter()
            .copied()
            .filter(|id| {
                p.policy
                    .rules
                    .get(id.0 as usize)
                    .is_some_and(|r| agent.is_some() && r.agent.is_none_or(|a| Some(a) == agent))
            })
            .collect();
        toolgate_engine::explain_provenance(&p.policy, req, &cell)
            .into_iter()
            .take(MAX_PROVENANCE_NOTES)
            .map(|t| {
                let rule = p.policy.rules.get(t.rule.0 as usize);
                let (line, column) = p.lines.line_col(&p.text, t.at.start);
                let (holds, found) = match t.finding {
                    toolgate_engine::Finding::Holds(by) => (Some(true), by),
                    toolgate_engine::Finding::Fails(seen) => (Some(false), seen),
                    toolgate_engine::Finding::Error(why) => (None, vec![why]),
                };
                crate::record::ProvenanceNote {
                    rule: match rule {
                        Some(r) => {
                            let place = format!("{}:{}:{}", p.file, r.line, r.column);
                            match &r.name {
                                Some(name) => format!("{name} ({place})"),
                                None => place,
                            }
                        }
                        None => p.file.clone(),
                    },
                    at: format!("{line}:{column}"),
                    holds,
                    found,
                }
            })
            .collect()
    }

    /// Parses, checks and compiles policy text; an error names the first problem.
    pub fn compile(text: &str, file: &str) -> Result<Self, GatewayError> {
        let parsed = toolgate_syntax::parse(text);
        let refused = |source: super::ToolError| GatewayError::Policy {
            file: file.to_string(),
            source,
        };
        if let Some(e) = parsed.errors.into_iter().next() {
            return Err(refused(Box::new(e)));
        }
        let checked = toolgate_check::check(&parsed.file, text);
        let Some(policy) = checked.policy else {
            let first = checked.diagnostics.into_iter().next();
            return Err(refused(match first {
                Some(e) => Box::new(e),
                None => "it does not check clean".into(),
            }));
        };
        Self::new(&policy, text, file)
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// SHA-256 of the policy text.
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// The tool as the policy declares it (its output labels), if it does.
    pub fn tool(&self, name: &str) -> Option<&ir::Tool> {
        self.declared.get(name)
    }

    /// Whether `tool` is a declared write tool (an undeclared tool counts as a write: fail closed).
    pub fn is_write(&self, tool: &str) -> bool {
        self.tools.get(tool).is_none_or(|t| t.write)
    }

    /// The arguments as the journal records them: fields marked `redact`
    /// replaced, inside records and lists alike.
    pub fn journal_args(&self, tool: &str, args: &Json) -> Json {
        let mut out = args.clone();
        for path in self
            .tools
            .get(tool)
            .map(|t| t.redact.as_slice())
            .unwrap_or(&[])
        {
            redact(&mut out, path);
        }
        out
    }
}

fn redact(at: &mut Json, path: &[Step]) {
    let Some((first, rest)) = path.split_first() else {
        *at = json!("[redacted]");
        return;
    };
    match (first, at) {
        (Step::Field(key), Json::Object(map)) => {
            if let Some(next) = map.get_mut(key) {
                redact(next, rest);
            }
        }
        (Step::Each, Json::Array(items)) => {
            for item in items {
                redact(item, rest);
            }
        }
        _ => {}
    }
}

/// Collects the paths of fields marked `redact`, through records, lists and
/// lists of records; a marked field is redacted whole, whatever its type.
fn redacted_paths(fields: &[ir::Field], prefix: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    for f in fields {
        prefix.push(Step::Field(f.name.clone()));
        if f.redact {
            out.push(prefix.clone());
        } else {
            type_paths(&f.ty, prefix, out);
        }
        prefix.pop();
    }
}

fn type_paths(ty: &ir::Type, prefix: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    match ty {
        ir::Type::Record(inner) | ir::Type::OpenRecord(inner) => redacted_paths(inner, prefix, out),
        ir::Type::Nullable(inner) => type_paths(inner, prefix, out),
        ir::Type::List(elem) => {
            prefix.push(Step::Each);
            type_paths(elem, prefix, out);
            prefix.pop();
        }
        _ => {}
    }
}

/// Whether any rule's condition holds an expression of the kind `is`.
fn reads(policy: &ir::Policy, is: &mut dyn FnMut(&ir::ExprKind) -> bool) -> bool {
    let mut found = false;
    for cond in policy.rules.iter().filter_map(|r| r.condition.as_ref()) {
        cond.visit(&mut |e| found |= is(&e.kind));
    }
    found
}
