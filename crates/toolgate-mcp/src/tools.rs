//! Which upstream tools an agent sees, asked of the checked policy: a tool
//! is listed when the policy declares it and the agent's cell has a grant
//! that is not unconditionally denied (`matrix::Cell::always_denied`).
//! Undeclared upstream tools are hidden. An upstream's annotations are
//! untrusted: they never grant anything, and one that contradicts the
//! policy's class (`readOnlyHint: false` or `destructiveHint: true` on a
//! policy `read` tool) is reported.

use serde_json::Value as Json;
use std::collections::{HashMap, HashSet};
use toolgate_check::ir;
use toolgate_engine::matrix;

/// What the policy says of one declared tool, for this agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Facts {
    read: bool,
    callable: bool,
}

/// The tools of one agent.
#[derive(Clone, Debug, Default)]
pub struct Visibility {
    tools: HashMap<String, Facts>,
}

/// What to say about an upstream tool in a `tools/list` answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Listed.
    Listed,
    /// Declared, but never callable by this agent: not listed.
    Withheld,
    /// Not declared by the policy: not listed, journaled once.
    Undeclared,
}

impl Visibility {
    /// The visibility of `agent`'s tools; `None` when the policy has no such agent.
    pub fn of(policy: &ir::Policy, agent: &str) -> Option<Visibility> {
        let index = policy.agents.iter().position(|a| a.name == agent)?;
        let agent_id = ir::AgentId(u32::try_from(index).ok()?);
        let mut tools = HashMap::new();
        for (i, tool) in policy.tools.iter().enumerate() {
            let tool_id = ir::ToolId(u32::try_from(i).ok()?);
            let cell = matrix::cell(policy, agent_id, tool_id);
            let facts = Facts {
                read: tool.class == ir::ToolClass::Read,
                callable: !cell.always_denied(),
            };
            tools.insert(tool.name.clone(), facts);
        }
        Some(Visibility { tools })
    }

    /// Whether and why `name` is listed.
    pub fn verdict(&self, name: &str) -> Verdict {
        match self.tools.get(name) {
            Some(f) if f.callable => Verdict::Listed,
            Some(_) => Verdict::Withheld,
            None => Verdict::Undeclared,
        }
    }

    /// Why an upstream tool's annotations contradict the policy, if they do.
    pub fn annotation_conflict(&self, tool: &Json) -> Option<String> {
        let name = tool.get("name")?.as_str()?;
        let facts = self.tools.get(name)?;
        let hints = tool.get("annotations")?;
        if !facts.read {
            return None;
        }
        let mut why = Vec::new();
        if hints.get("readOnlyHint") == Some(&Json::Bool(false)) {
            why.push("`readOnlyHint: false`");
        }
        if hints.get("destructiveHint") == Some(&Json::Bool(true)) {
            why.push("`destructiveHint: true`");
        }
        (!why.is_empty()).then(|| {
            format!(
                "the policy declares `{name}` a `read` tool but the upstream annotates it {}",
                why.join(" and ")
            )
        })
    }
}

/// Filters a `tools/list` result in place: keeps the listed tools, and
/// returns the names hidden as undeclared and the annotation conflicts of
/// the tools it keeps, for the caller to report once.
pub fn filter_list(
    visibility: &Visibility,
    result: &mut Json,
    reported: &mut HashSet<String>,
) -> Vec<(String, &'static str, String)> {
    let mut notes = Vec::new();
    let Some(tools) = result.get_mut("tools").and_then(Json::as_array_mut) else {
        return notes;
    };
    tools.retain(|tool| {
        let name = tool.get("name").and_then(Json::as_str).unwrap_or("");
        let verdict = visibility.verdict(name);
        if verdict == Verdict::Undeclared && reported.insert(format!("hidden:{name}")) {
            let detail = "the policy does not declare it: hidden from the client".to_string();
            notes.push((name.to_string(), "hidden", detail));
        }
        if verdict == Verdict::Listed {
            if let Some(why) = visibility.annotation_conflict(tool) {
                if reported.insert(format!("annotation:{name}")) {
                    notes.push((name.to_string(), "annotation", why));
                }
            }
        }
        verdict == Verdict::Listed
    });
    notes
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn visibility(src: &str, agent: &str) -> Visibility {
        let parsed = toolgate_syntax::parse(src);
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        let checked = toolgate_check::check(&parsed.file, src);
        let policy = checked
            .policy
            .unwrap_or_else(|| panic!("{:?}", checked.diagnostics));
        Visibility::of(&policy, agent).unwrap_or_else(|| panic!("no agent `{agent}`"))
    }

    const POLICY: &str = r#"
tool read_file read { path: string };
tool write_file write { path: string, content: string };
tool move_file write { source: string, destination: string };
tool stat read { path: string };
writes enabled;
agent a {
  allow read_file when args.path starts_with "/srv/";
  write write_file require approval;
  write move_file require approval;
  deny move_file reason "no";
}
"#;

    #[test]
    fn a_tool_is_listed_when_some_grant_can_let_it_through() {
        let v = visibility(POLICY, "a");
        // A conditional grant still lists the tool: some call may pass.
        assert_eq!(v.verdict("read_file"), Verdict::Listed);
        assert_eq!(v.verdict("write_file"), Verdict::Listed);
        // An unconditional deny, or no grant at all, withholds it.
        assert_eq!(v.verdict("move_file"), Verdict::Withheld);
        assert_eq!(v.verdict("stat"), Verdict::Withheld);
        assert_eq!(v.verdict("rm_rf"), Verdict::Undeclared);
    }

    #[test]
    fn an_unknown_agent_has_no_visibility() {
        let parsed = toolgate_syntax::parse(POLICY);
        let policy = toolgate_check::check(&parsed.file, POLICY).policy;
        assert!(Visibility::of(&policy.unwrap_or_else(|| panic!()), "b").is_none());
    }

    #[test]
    fn filtering_keeps_listed_tools_and_reports_each_hidden_one_once() {
        let v = visibility(POLICY, "a");
        let mut result = json!({"tools": [
            {"name": "read_file", "annotations": {"readOnlyHint": false}},
            {"name": "write_file", "annotations": {"destructiveHint": true}},
            {"name": "move_file"},
            {"name": "rm_rf"},
        ], "nextCursor": "c"});
        let mut reported = HashSet::new();
        let notes = filter_list(&v, &mut result, &mut reported);
        let names: Vec<&str> = result["tools"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t["name"].as_str())
            .collect();
        assert_eq!(names, ["read_file", "write_file"]);
        assert_eq!(result["nextCursor"], "c", "the rest of the result is kept");
        let what: Vec<(&str, &str)> = notes.iter().map(|(t, w, _)| (t.as_str(), *w)).collect();
        // A write tool marked destructive is no conflict; a read tool marked not read-only is.
        assert_eq!(what, [("read_file", "annotation"), ("rm_rf", "hidden")]);
        assert!(
            notes[0].2.contains("`readOnlyHint: false`"),
            "{}",
            notes[0].2
        );
        let mut again = json!({"tools": [{"name": "rm_rf"}, {"name": "read_file", "annotations": {"readOnlyHint": false}}]});
        assert!(filter_list(&v, &mut again, &mut reported).is_empty());
    }

    #[test]
    fn a_result_without_tools_is_left_alone() {
        let v = visibility(POLICY, "a");
        let mut result = json!({"other": 1});
        assert!(filter_list(&v, &mut result, &mut HashSet::new()).is_empty());
        assert_eq!(result, json!({"other": 1}));
    }
}
