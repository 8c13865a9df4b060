//! `policyc replay`: a recorded trace through the full gateway, with a
//! simulated clock and simulated tool executions.

use crate::cli::ReplayArgs;
use crate::eval::{engine, load};
use crate::Exit;
use serde_json::{json, Map, Value as Json};
use std::collections::BTreeMap;
use std::sync::Arc;
use toolgate_engine::Context;
use toolgate_runtime::gateway::{
    Approver, Call, CallOutcome, Clock, CredentialProvider, Gateway, GatewayError,
};
use toolgate_runtime::gateway::{ManualClock, ToolExecutor};
use toolgate_runtime::journal::{Fsync, Journal, JournalConfig, NoState};
use toolgate_runtime::store::MemoryStore;

/// Credentials are not loaded in a replay.
struct NoCredentials;

impl CredentialProvider for NoCredentials {
    fn load(&self, _tool: &str, scope: &[(String, Json)]) -> Result<Json, String> {
        Ok(json!({ "simulated": true, "scope": scope.len() }))
    }
}

/// Tools are not called in a replay.
struct Simulated;

impl ToolExecutor for Simulated {
    async fn execute(
        &self,
        _tool: &str,
        _args: &Json,
        _credentials: &Json,
    ) -> Result<Json, String> {
        Ok(json!({ "simulated": true }))
    }
}

/// One call of the trace and what became of it.
struct Traced {
    call: Call,
    outcome: &'static str,
    rule: Option<String>,
    reason: String,
    expires_at: Option<u64>,
}

pub(crate) fn run(args: &ReplayArgs) -> Exit {
    let loaded = match load(&args.policy) {
        Ok(l) => l,
        Err(exit) => return exit,
    };
    let Ok(text) = std::fs::read_to_string(&args.trace) else {
        eprintln!("error: cannot read `{}`", args.trace.display());
        return Exit::Usage;
    };
    let Ok(rt) = tokio::runtime::Builder::new_current_thread().build() else {
        return Exit::Usage;
    };
    let temp = std::env::temp_dir().join(format!("toolgate-replay-{}.jsonl", std::process::id()));
    let audit = args.audit.clone().unwrap_or_else(|| temp.clone());
    let _ = std::fs::remove_file(&audit);
    let exit = rt.block_on(replay(&loaded, &text, &audit));
    if args.audit.is_none() {
        let _ = std::fs::remove_file(&temp);
        let mut lock = temp.into_os_string();
        lock.push(".lock");
        let _ = std::fs::remove_file(lock);
    }
    exit
}

async fn replay(loaded: &crate::eval::Loaded, trace: &str, audit: &std::path::Path) -> Exit {
    let Ok(engine) = engine(loaded) else {
        return Exit::Usage;
    };
    let engine = Arc::new(engine);
    let config = JournalConfig {
        fsync: Fsync::Never,
        ..JournalConfig::default()
    };
    let (journal, _) = match Journal::open(audit, config, Box::new(NoState)) {
        Ok(j) => j,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Usage;
        }
    };
    let clock = Arc::new(ManualClock::default());
    let clock_dyn: Arc<dyn Clock> = clock.clone();
    let store = Arc::new(MemoryStore::default());
    let gateway = match Gateway::new(
        engine.clone(),
        &loaded.policy,
        &loaded.src,
        journal,
        store,
        clock_dyn,
        NoCredentials,
        Simulated,
    )
    .await
    {
        Ok(g) => g,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Usage;
        }
    };
    let mut calls: Vec<Traced> = Vec::new();
    let mut out: Vec<Json> = Vec::new();
    let mut bad = 0;
    let mut last_at = 0;
    for (i, line) in trace.lines().enumerate() {
        let step = match parse_line(line) {
            Ok(step) => step,
            Err(error) => {
                bad += 1;
                out.push(json!({ "line": i + 1, "error": error }));
                continue;
            }
        };
        clock.set(step.at);
        last_at = last_at.max(step.at);
        if let Err(error) = apply(&gateway, &mut calls, step.kind).await {
            bad += 1;
            out.push(json!({ "line": i + 1, "error": error }));
        }
    }
    let mut summary: BTreeMap<&str, BTreeMap<String, u64>> = BTreeMap::new();
    for t in &mut calls {
        if t.outcome == "pending" && t.expires_at.is_some_and(|e| last_at >= e) {
            t.outcome = "expired";
        }
        for (group, key) in [
            ("outcomes", t.outcome.to_string()),
            ("tools", t.call.tool.clone()),
            ("agents", t.call.agent.clone()),
        ] {
            let counts = summary.entry(group).or_default();
            let label = if group == "outcomes" {
                key
            } else {
                format!("{key}: {}", t.outcome)
            };
            *counts.entry(label).or_default() += 1;
        }
        out.push(json!({
            "id": t.call.id, "agent": t.call.agent, "tool": t.call.tool, "tenant": t.call.context.tenant,
            "outcome": t.outcome, "rule": t.rule, "reason": t.reason,
        }));
    }
    for line in &out {
        println!("{line}");
    }
    println!("{}", json!({ "summary": summary }));
    if bad > 0 {
        eprintln!("error: {bad} trace line(s) could not be replayed");
        return Exit::Findings;
    }
    Exit::Ok
}

struct Step {
    at: u64,
    kind: StepKind,
}

enum StepKind {
    Call(Call),
    Approve {
        call: String,
        approver: Approver,
        reason: String,
        reject: bool,
    },
    KillSwitch {
        tenant: Option<String>,
        engaged: bool,
        by: String,
        reason: String,
    },
}

fn parse_line(line: &str) -> Result<Step, String> {
    let v: Json = serde_json::from_str(line).map_err(|e| format!("invalid JSON: {e}"))?;
    let text = |k: &str| {
        v[k].as_str()
            .map(String::from)
            .ok_or_else(|| format!("missing string `{k}`"))
    };
    let at = parse_time(&text("at")?)?;
    let kind = match v.get("event").and_then(Json::as_str) {
        None => {
            let ctx = v["context"].as_object().ok_or("missing object `context`")?;
            let mut fields: Map<String, Json> = ctx.clone();
            let tenant = fields
                .remove("tenant")
                .and_then(|t| t.as_str().map(String::from))
                .ok_or("missing `context.tenant`")?;
            let env = fields
                .remove("env")
                .and_then(|t| t.as_str().map(String::from))
                .ok_or("missing `context.env`")?;
            StepKind::Call(Call {
                id: text("id")?,
                agent: text("agent")?,
                tool: text("tool")?,
                args: v.get("args").cloned().unwrap_or_else(|| json!({})),
                context: Context {
                    tenant,
                    env,
                    fields,
                },
            })
        }
        Some(e @ ("approve" | "reject")) => StepKind::Approve {
            call: text("call")?,
            approver: Approver {
                name: text("approver")?,
                groups: v["groups"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|g| g.as_str().map(String::from))
                    .collect(),
            },
            reason: v["reason"].as_str().unwrap_or("").to_string(),
            reject: e == "reject",
        },
        Some("kill_switch") => StepKind::KillSwitch {
            tenant: v["tenant"].as_str().map(String::from),
            engaged: v["engaged"].as_bool().ok_or("missing boolean `engaged`")?,
            by: text("by")?,
            reason: text("reason")?,
        },
        Some(other) => return Err(format!("unknown event `{other}`")),
    };
    Ok(Step { at, kind })
}

async fn apply<C: CredentialProvider, X: ToolExecutor>(
    gateway: &Gateway<C, X>,
    calls: &mut Vec<Traced>,
    kind: StepKind,
) -> Result<(), String> {
    match kind {
        StepKind::Call(call) => {
            let (outcome, rule, reason, expires_at) = match gateway.call(&call).await {
                Ok(CallOutcome::Executed { rule, .. }) => ("executed", rule, String::new(), None),
                Ok(CallOutcome::Pending {
                    rule, expires_at, ..
                }) => ("pending", rule, "waiting for approval".into(), expires_at),
                Err(GatewayError::Denied { reason, rule }) => ("denied", rule, reason, None),
                Err(e) => ("denied", None, e.to_string(), None),
            };
            calls.push(Traced {
                call,
                outcome,
                rule,
                reason,
                expires_at,
            });
            Ok(())
        }
        StepKind::Approve {
            call,
            approver,
            reason,
            reject,
        } => {
            let t = calls
                .iter_mut()
                .find(|t| t.call.id == call)
                .ok_or(format!("no call `{call}` in the trace"))?;
            if reject {
                gateway
                    .reject(&call, &approver, &reason)
                    .await
                    .map_err(|e| e.to_string())?;
                t.outcome = "rejected";
                t.reason = format!("rejected by {}: {reason}", approver.name);
                return Ok(());
            }
            match gateway.approve(&call, &approver, &reason).await {
                Ok(None) => Ok(()),
                Ok(Some(token)) => {
                    match gateway.execute_approved(&t.call, &token).await {
                        Ok(_) => {
                            t.outcome = "approved_executed";
                            t.reason = format!("approved by {}: {reason}", approver.name);
                        }
                        Err(e) => {
                            t.outcome = "denied";
                            t.reason = e.to_string();
                        }
                    }
                    Ok(())
                }
                Err(e) => Err(format!(
                    "approval of `{call}` by `{}` refused: {e}",
                    approver.name
                )),
            }
        }
        StepKind::KillSwitch {
            tenant,
            engaged,
            by,
            reason,
        } => gateway
            .kill_switch(tenant.as_deref(), engaged, &by, &reason)
            .await
            .map_err(|e| e.to_string()),
    }
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
    use super::parse_time;

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
}
