//! What the proxy answers in the upstream's place: tool results with
//! `isError: true` for calls the gateway did not let through, worded so that
//! the model can recover (the reason and the rule; for a held call, its id
//! and how a human approves it), and what an upstream's answer to a call
//! means for its `execution` record. (JSON-RPC errors for what the proxy
//! cannot read are [`crate::envelope::Envelope::error`]s.)

use crate::decider::Refused;
use crate::envelope::{Envelope, Kind};
use serde_json::{json, Value as Json};

/// A tool result with `isError: true` and one text.
fn tool_error(text: String) -> Json {
    json!({"content": [{"type": "text", "text": text}], "isError": true})
}

/// The outcome of an upstream's answer to a `tools/call`, as the gateway journals it.
pub(super) fn call_outcome(answer: &Envelope) -> Result<(), String> {
    if let Kind::Error { .. } = answer.kind() {
        let error = answer.get("error");
        let text = error.and_then(|e| e.get("message")).and_then(Json::as_str);
        return Err(format!("upstream error: {}", text.unwrap_or("")));
    }
    match answer.get("result").and_then(|r| r.get("isError")) {
        Some(Json::Bool(true)) => Err("the tool returned an error result".into()),
        _ => Ok(()),
    }
}

/// What the agent reads of an upstream's answer to a `tools/call`, as the
/// gateway observes it in the call's session:
/// - a result's `structuredContent`, when it has one (not `null`): the
///   tool's output labels (`output { PATH: ... }`) apply to its fields;
/// - otherwise its text: the `text` of every `text` item and of every
///   embedded text `resource`, joined by a line feed into one string (a
///   text output takes the tool's label; one string, as the HTTP door's
///   `output`, so the same text gives the same keys through either door);
///   a result with content that is not text (an image, audio, a blob, a
///   resource link) gives `None`: the agent read something the gateway
///   cannot index, which taints the session unless the tool's whole output
///   is labelled trusted (fail closed);
/// - an `isError` result likewise (the model reads its text too);
/// - a JSON-RPC error: its `message`, as text (the client shows it to the model);
/// - anything else (no `content` list, no error message): `None`.
pub(super) fn call_output(answer: &Envelope) -> Option<Json> {
    if let Kind::Error { .. } = answer.kind() {
        return answer.get("error")?.get("message").cloned();
    }
    let result = answer.get("result")?.as_object()?;
    match result.get("structuredContent") {
        None | Some(Json::Null) => {}
        Some(structured) => return Some(structured.clone()),
    }
    let content = result.get("content")?.as_array()?;
    let texts: Option<Vec<&str>> = content.iter().map(item_text).collect();
    Some(Json::String(texts?.join("\n")))
}

/// The text of one content item; `None` for content that is not text.
fn item_text(item: &Json) -> Option<&str> {
    match item.get("type").and_then(Json::as_str)? {
        "text" => item.get("text")?.as_str(),
        "resource" => item.get("resource")?.get("text")?.as_str(),
        _ => None,
    }
}

/// A call held for approval.
pub(super) struct Pending {
    pub id: String,
    pub tenant: String,
    pub tool: String,
    pub rule: Option<String>,
    /// Empty when not known here.
    pub args_digest: String,
}

fn approve_command(p: &Pending) -> String {
    format!(
        "policyc approvals show {id} --tenant {t}` and then `policyc approvals approve {id} --tenant {t} --digest <the hold digest shown> --reason \"...\"",
        id = p.id,
        t = p.tenant
    )
}

/// The result for a call now waiting for approval.
pub(super) fn pending(p: &Pending) -> Json {
    let rule = rule_text(p.rule.as_deref());
    let digest = match p.args_digest.as_str() {
        "" => String::new(),
        d => format!(" (arguments digest {d})"),
    };
    tool_error(format!(
        "toolgate: `{}` needs a human approval{rule}; it did not run. Pending call id: `{}`{digest}. \
         A human approves it with `{}`; then make the same call again, with the same arguments, \
         and it runs once.",
        p.tool,
        p.id,
        approve_command(p)
    ))
}

fn rule_text(rule: Option<&str>) -> String {
    rule.map(|r| format!(" (rule {r})")).unwrap_or_default()
}

/// The result for a call the client's user declined to approve.
pub(super) fn declined(tool: &str, id: &str) -> Json {
    tool_error(format!(
        "toolgate: the user did not approve `{tool}` (call `{id}`); it did not run."
    ))
}

/// The result for a held call whose wait ended without an approval.
pub(super) fn not_approved(p: &Pending, state: &str) -> Json {
    let rule = rule_text(p.rule.as_deref());
    tool_error(format!(
        "toolgate: `{}` needs a human approval{rule} and was not approved in time; it did not run \
         (call `{}` is {state}). A human approves it with `{}`; then make the same call again.",
        p.tool,
        p.id,
        approve_command(p)
    ))
}

/// The result for a call the gateway refused (a denial, a refused token, a
/// failure to decide: every failure to decide refuses).
pub(super) fn refused(tool: &str, r: &Refused) -> Json {
    let rule = rule_text(r.rule.as_deref());
    let reason = &r.reason;
    if r.denial {
        tool_error(format!(
            "toolgate: `{tool}` is denied{rule}: {reason}. The call did not run."
        ))
    } else {
        tool_error(format!(
            "toolgate: `{tool}` was refused: {reason}. The call did not run."
        ))
    }
}
