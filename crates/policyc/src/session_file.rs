//! A session written out (what the user said, the outputs the agent read,
//! endorsed values, allowed calls), loaded into the engine's in-memory
//! session: `policyc explain --session FILE` (JSON) and a `policyc test`
//! case's `session` (the same shape in TOML), so both can say which source
//! satisfied each provenance condition.
//!
//! ```json
//! { "turns": ["Send it to ann@corp.test"],
//!   "outputs": [{ "call": "c1", "tool": "contacts.find", "output": [{ "email": "ann@corp.test" }] }],
//!   "endorsed": [{ "call": "c2", "values": ["DE89370400440532013000"] }],
//!   "calls": { "mail.send": 2 } }
//! ```

use crate::Exit;
use serde::Deserialize;
use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::path::Path;
use toolgate_check::ir;
use toolgate_engine::provenance::{Key, MemorySession};

/// The most calls of one tool a written session may count.
const MAX_CALLS: u64 = 100_000;

/// A whole session, every part optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct SessionFile {
    turns: Vec<String>,
    outputs: Vec<Output>,
    endorsed: Vec<Endorsed>,
    calls: BTreeMap<String, u64>,
}

/// An output the agent read: the call (default `output N`, its place in
/// the list), a tool the policy declares (its labels apply), the value.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Output {
    call: Option<String>,
    tool: String,
    output: Json,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Endorsed {
    call: String,
    values: Vec<Json>,
}

/// Reads `path` into a session; the outputs' tools must be the policy's.
pub(crate) fn read(path: &Path, policy: &ir::Policy) -> Result<MemorySession, Exit> {
    let fail = |why: String| {
        eprintln!("error: invalid session in `{}`: {why}", path.display());
        Exit::Findings
    };
    let text = std::fs::read_to_string(path).map_err(|e| {
        eprintln!("error: cannot read `{}`: {e}", path.display());
        Exit::Usage
    })?;
    let file: SessionFile = serde_json::from_str(&text).map_err(|e| fail(e.to_string()))?;
    build(&file, policy).map_err(fail)
}

/// The session `file` describes; the outputs' tools must be the policy's.
pub(crate) fn build(file: &SessionFile, policy: &ir::Policy) -> Result<MemorySession, String> {
    let mut session = MemorySession::new();
    file.turns.iter().for_each(|t| session.user_turn(t));
    for (i, o) in file.outputs.iter().enumerate() {
        let Some(tool) = policy.tools.iter().find(|t| t.name == o.tool) else {
            return Err(format!("the policy declares no tool `{}`", o.tool));
        };
        let call = o
            .call
            .clone()
            .unwrap_or_else(|| format!("output {}", i + 1));
        session.observe(&call, tool, &o.output);
    }
    for e in &file.endorsed {
        let keys = e.values.iter().filter_map(|v| match v {
            Json::String(s) => Key::text(s),
            Json::Number(n) => n.as_f64().map(Key::number),
            _ => None,
        });
        session.endorse(&e.call, keys);
    }
    for (tool, n) in &file.calls {
        if *n > MAX_CALLS {
            return Err(format!(
                "`calls.{tool}` is {n}, over the limit of {MAX_CALLS}"
            ));
        }
        for _ in 0..*n {
            session.allowed_call(tool);
        }
    }
    Ok(session)
}
