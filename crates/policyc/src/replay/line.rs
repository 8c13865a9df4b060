//! A trace line (`docs/formats.md`, "Trace") -> a [`Step`]: a call (its
//! wire part read by toolgate-api's conversion, with `session` and the
//! simulated tool's `output`), a user turn, an approval or rejection, a kill
//! switch. Every error names the field it is about.

use super::{Step, StepKind};
use crate::lines::{self, LineError};
use serde::Deserialize;
use serde_json::{Map, Value as Json};
use toolgate_runtime::store::{Approver, TenantScope};

/// `{"event": "turn", ...}`: what the user said in a session.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TurnLine {
    tenant: String,
    session: String,
    text: String,
}

/// `{"event": "approve" | "reject", ...}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApproveLine {
    call: String,
    approver: String,
    #[serde(default)]
    groups: Vec<String>,
    /// The tenants the approver approves for (default: any).
    tenants: Option<Vec<String>>,
    #[serde(default)]
    reason: String,
}

/// `{"event": "kill_switch", ...}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KillLine {
    engaged: bool,
    by: String,
    reason: String,
    tenant: Option<String>,
}

/// One trace line (`fits`: no longer than [`lines::MAX_LINE`]) -> a step.
pub(super) fn step_of(fits: bool, line: &[u8]) -> Result<Step, LineError> {
    let mut obj = lines::object(fits, line)?;
    let at = match obj.remove("at") {
        Some(Json::String(at)) => parse_time(&at).map_err(|e| LineError::at("at", e))?,
        Some(_) => return Err(LineError::at("at", "`at` must be a string")),
        None => return Err(LineError::at("at", "missing field `at`")),
    };
    let event = match obj.remove("event") {
        None => None,
        Some(Json::String(e)) => Some(e),
        Some(_) => return Err(LineError::at("event", "`event` must be a string")),
    };
    let kind = match event.as_deref() {
        None => call(obj)?,
        Some("turn") => {
            let t: TurnLine = lines::typed(obj)?;
            StepKind::Turn {
                tenant: t.tenant,
                session: t.session,
                text: t.text,
            }
        }
        Some(e @ ("approve" | "reject")) => {
            let a: ApproveLine = lines::typed(obj)?;
            StepKind::Approve {
                call: a.call,
                approver: Approver {
                    name: a.approver,
                    groups: a.groups,
                    // A trace's approver approves for the tenants it lists, or any.
                    tenants: a.tenants.map_or(TenantScope::Any, TenantScope::Only),
                },
                reason: a.reason,
                reject: e == "reject",
            }
        }
        Some("kill_switch") => {
            let k: KillLine = lines::typed(obj)?;
            StepKind::KillSwitch {
                tenant: k.tenant,
                engaged: k.engaged,
                by: k.by,
                reason: k.reason,
            }
        }
        Some(other) => {
            let why = format!(
                "unknown event `{other}` (expected `turn`, `approve`, `reject` or `kill_switch`; a call has no `event`)"
            );
            return Err(LineError::at("event", why));
        }
    };
    Ok(Step { at, kind })
}

/// A call line: `output` (what the simulated tool returns) taken out, the
/// rest a wire call with a required `id`.
fn call(mut obj: Map<String, Json>) -> Result<StepKind, LineError> {
    let output = obj.remove("output");
    let call = lines::call(obj, true)?;
    Ok(StepKind::Call { call, output })
}

/// `YYYY-MM-DDTHH:MM:SS[.fff](Z|±HH:MM)` -> milliseconds since the epoch.
pub(crate) fn parse_time(s: &str) -> Result<u64, String> {
    let bad = || format!("`at` must be an RFC 3339 time such as 2026-11-21T10:00:00Z, not `{s}`");
    let num =
        |r: std::ops::Range<usize>| s.get(r).and_then(|t| t.parse::<i64>().ok()).ok_or_else(bad);
    if s.len() < 20
        || s.as_bytes()
            .get(10)
            .is_none_or(|c| *c != b'T' && *c != b't')
    {
        return Err(bad());
    }
    let (y, mo, d, h, mi, sec) = (
        num(0..4)?,
        num(5..7)?,
        num(8..10)?,
        num(11..13)?,
        num(14..16)?,
        num(17..19)?,
    );
    let mut rest = &s[19..];
    let mut millis = 0;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(frac.len());
        let ms = format!("{:0<3}", &frac[..digits.min(3)]);
        millis = ms.parse::<i64>().map_err(|_| bad())?;
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        o if o.len() == 6 && (o.starts_with('+') || o.starts_with('-')) => {
            let sign = if o.starts_with('-') { -1 } else { 1 };
            let part = |r: std::ops::Range<usize>| {
                o.get(r).and_then(|t| t.parse::<i64>().ok()).ok_or_else(bad)
            };
            let (oh, om) = (part(1..3)?, part(4..6)?);
            sign * (oh * 3600 + om * 60)
        }
        _ => return Err(bad()),
    };
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return Err(bad());
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let (yy, m) = if mo <= 2 {
        (y - 1, mo + 9)
    } else {
        (y, mo - 3)
    };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let doy = (153 * m + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset;
    u64::try_from(secs * 1000 + millis).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::{parse_time, step_of};
    use crate::replay::StepKind;

    #[test]
    fn rfc3339_times_parse_to_epoch_millis() {
        assert_eq!(parse_time("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_time("2026-11-21T10:00:00Z"), Ok(1_795_255_200_000));
        assert_eq!(
            parse_time("2026-11-21T11:00:00.5+01:00"),
            Ok(1_795_255_200_500)
        );
        assert!(parse_time("yesterday").is_err());
        assert!(parse_time("2026-13-01T00:00:00Z").is_err());
        assert!(
            parse_time("2026-11-21T10:00:00+0é00").is_err(),
            "a multi-byte offset is an error, not a panic"
        );
    }

    fn field(line: &str) -> Option<String> {
        step_of(true, line.as_bytes()).err().and_then(|e| e.field)
    }

    #[test]
    fn turn_and_call_lines_read_their_session_fields() {
        let turn = r#"{"event": "turn", "at": "2026-11-21T10:00:00Z", "tenant": "acme", "session": "s1", "text": "hi"}"#;
        assert!(matches!(
            step_of(true, turn.as_bytes()).map(|s| s.kind),
            Ok(StepKind::Turn { session, .. }) if session == "s1"
        ));
        let call = r#"{"at": "2026-11-21T10:00:00Z", "id": "c1", "agent": "a", "tool": "t", "context": {"tenant": "acme", "env": "prod"}, "session": "s1", "output": [1]}"#;
        assert!(matches!(
            step_of(true, call.as_bytes()).map(|s| s.kind),
            Ok(StepKind::Call { call, output: Some(_) }) if call.session.as_deref() == Some("s1")
        ));
        let no_tenant =
            r#"{"event": "turn", "at": "2026-11-21T10:00:00Z", "session": "s1", "text": "hi"}"#;
        assert_eq!(field(no_tenant).as_deref(), Some("tenant"));
        let bad_text = r#"{"event": "turn", "at": "2026-11-21T10:00:00Z", "tenant": "a", "session": "s1", "text": 5}"#;
        assert_eq!(field(bad_text).as_deref(), Some("text"));
        assert_eq!(
            field(r#"{"event": "tun", "at": "2026-11-21T10:00:00Z"}"#).as_deref(),
            Some("event")
        );
        assert_eq!(field(r#"{"at": "yesterday"}"#).as_deref(), Some("at"));
    }
}
