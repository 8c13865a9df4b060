//! `policyc replay`: a recorded trace through the full gateway, with a
//! simulated clock and simulated tool executions.

use crate::cli::ReplayArgs;
use crate::eval::load;
use crate::{lines, Exit};
use serde_json::{json, Map, Value as Json};
use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, Write as _};
use std::path::Path;
use std::sync::Arc;
use toolgate_engine::Context;
use toolgate_runtime::gateway::{
    Call, CallOutcome, CompiledPolicy, DigestKey, Executor, Gateway, GatewayError, Limits,
    ManualClock, Services, ToolError,
};
use toolgate_runtime::journal::{Fsync, Journal, JournalConfig};
use toolgate_runtime::refusal::Refusal;
use toolgate_runtime::store::{Approver, KillScope, MemoryStore, StoreState, TenantScope};

/// Tools are not called and credentials not loaded in a replay.
struct Simulated;

#[toolgate_runtime::gateway::async_trait]
impl Executor for Simulated {
    fn credentials(&self, _tool: &str, scope: &[(String, Json)]) -> Result<Json, ToolError> {
        Ok(json!({ "simulated": true, "scope": scope.len() }))
    }

    async fn execute(
        &self,
        _tool: &str,
        _args: &Json,
        _credentials: &Json,
    ) -> Result<Json, ToolError> {
        Ok(json!({ "simulated": true }))
    }
}

/// One call of the trace and what became of it.
pub(crate) struct Traced {
    /// Its position among the trace's calls (waiting calls are printed in this order).
    seq: u64,
    /// The call.
    pub call: Call,
    /// `executed`, `pending`, `denied`, `approved_executed`, `rejected`, `cancelled` or `expired`.
    pub outcome: &'static str,
    /// The granting (or denying) rule, `file:line:column` (`NAME (file:line:column)` with an `@id`).
    pub rule: Option<String>,
    /// Why, for humans.
    pub reason: String,
    /// When a pending call's approval expires (milliseconds since the epoch).
    pub expires_at: Option<u64>,
}

impl Traced {
    fn to_json(&self) -> Json {
        json!({
            "id": self.call.id, "agent": self.call.agent, "tool": self.call.tool,
            "tenant": self.call.context.tenant, "outcome": self.outcome, "rule": self.rule,
            "reason": self.reason,
        })
    }
}

/// The most distinct tool (or agent) names the summary counts one by one;
/// calls naming others are counted under `(others)`, so that the summary
/// stays bounded however many names a trace invents.
const MAX_NAMES: usize = 10_000;

/// Calls per outcome, and per tool and per agent with their outcomes.
#[derive(Default)]
struct Summary(BTreeMap<&'static str, BTreeMap<String, u64>>);

impl Summary {
    fn count(&mut self, t: &Traced) {
        *self
            .0
            .entry("outcomes")
            .or_default()
            .entry(t.outcome.to_string())
            .or_default() += 1;
        for (group, name) in [("tools", &t.call.tool), ("agents", &t.call.agent)] {
            let counts = self.0.entry(group).or_default();
            let label = format!("{name}: {}", t.outcome);
            let names = counts.len();
            let label = if counts.contains_key(&label) || names < MAX_NAMES {
                label
            } else {
                format!("(others): {}", t.outcome)
            };
            *counts.entry(label).or_default() += 1;
        }
    }
}

/// The replay's output, streamed: a line is printed as soon as it is final,
/// and the only calls held (by the [`Session`]) are those still waiting for approval.
struct Output {
    out: std::io::BufWriter<std::io::StdoutLock<'static>>,
    summary: Summary,
    bad: usize,
}

/// The full gateway with a simulated clock, and the calls of a trace (or a
/// `policyc test` scenario) still waiting for approval: the one place where
/// steps are applied, for `replay` and for `test` alike.
pub(crate) struct Session {
    gateway: Gateway,
    clock: Arc<ManualClock>,
    pending: HashMap<String, Traced>,
    calls: u64,
    last_at: u64,
}

impl Session {
    /// A gateway for `loaded` over a new journal at `audit`.
    pub(crate) async fn open(loaded: &crate::eval::Loaded, audit: &Path) -> Result<Self, String> {
        let (gateway, clock) = open_gateway(loaded, audit).await?;
        Ok(Session {
            gateway,
            clock,
            pending: HashMap::new(),
            calls: 0,
            last_at: 0,
        })
    }

    /// Sets the clock to the step's time and applies it: the calls it made
    /// final, or the refusal of its event (`Err`: the journal failed).
    pub(crate) async fn step(&mut self, step: Step) -> Result<Stepped, String> {
        self.clock.set(step.at);
        self.last_at = self.last_at.max(step.at);
        apply(&self.gateway, &mut self.pending, &mut self.calls, step.kind).await
    }

    /// The call `id` if it is waiting for approval, as `expired` when the
    /// clock's latest time is past its expiry.
    pub(crate) fn waiting(&self, id: &str) -> Option<&'static str> {
        let t = self.pending.get(id)?;
        Some(if t.expires_at.is_some_and(|e| self.last_at >= e) {
            "expired"
        } else {
            "pending"
        })
    }

    /// The calls still waiting, in trace order (`expired` when the trace's
    /// last time is past their expiry).
    fn drain(&mut self) -> Vec<Traced> {
        let mut waiting: Vec<Traced> = std::mem::take(&mut self.pending).into_values().collect();
        waiting.sort_by_key(|t| t.seq);
        for t in &mut waiting {
            if t.expires_at.is_some_and(|e| self.last_at >= e) {
                t.outcome = "expired";
            }
        }
        waiting
    }
}

impl Output {
    fn error(&mut self, line: usize, error: String) -> std::io::Result<()> {
        self.bad += 1;
        writeln!(self.out, "{}", json!({ "line": line, "error": error }))
    }

    /// An approval or rejection the gateway refused: an outcome of that
    /// event, reported in place, not a malformed line.
    fn refused(&mut self, line: usize, r: &Refused) -> std::io::Result<()> {
        let shown = json!({ "line": line, "event": r.event, "call": r.call, "refused": r.why });
        writeln!(self.out, "{shown}")
    }

    fn finish(&mut self, t: &Traced) -> std::io::Result<()> {
        self.summary.count(t);
        writeln!(self.out, "{}", t.to_json())
    }

    /// Prints the calls still waiting, the summary, and says how the replay went.
    fn end(mut self, waiting: Vec<Traced>) -> std::io::Result<Exit> {
        for t in waiting {
            self.finish(&t)?;
        }
        writeln!(self.out, "{}", json!({ "summary": self.summary.0 }))?;
        self.out.flush()?;
        if self.bad > 0 {
            eprintln!("error: {} trace line(s) could not be replayed", self.bad);
            return Ok(Exit::Findings);
        }
        Ok(Exit::Ok)
    }
}

pub(crate) fn run(args: &ReplayArgs) -> Exit {
    let Some(policy) = args.policy.as_ref().or(args.policy_flag.as_ref()) else {
        return Exit::Usage;
    };
    if let Some(journal) = &args.journal {
        return crate::shadow::run(args, journal, policy);
    }
    let Some(trace_path) = &args.trace else {
        return Exit::Usage;
    };
    let loaded = match load(policy) {
        Ok(l) => l,
        Err(exit) => return exit,
    };
    let trace = match std::fs::File::open(trace_path) {
        Ok(file) => std::io::BufReader::new(file),
        Err(e) => {
            eprintln!("error: cannot read `{}`: {e}", trace_path.display());
            return Exit::Usage;
        }
    };
    let Ok(rt) = tokio::runtime::Builder::new_current_thread().build() else {
        return Exit::Usage;
    };
    // The default journal lives in a private temporary directory, removed on drop.
    let (_temp, audit) = match &args.audit {
        Some(path) => match claim_audit(path, args.force) {
            Ok(()) => (None, path.clone()),
            Err(e) => {
                eprintln!("error: {e}");
                return Exit::Usage;
            }
        },
        None => match tempfile::tempdir() {
            Ok(dir) => {
                let path = dir.path().join("audit.jsonl");
                (Some(dir), path)
            }
            Err(e) => {
                eprintln!("error: cannot create a temporary directory: {e}");
                return Exit::Usage;
            }
        },
    };
    rt.block_on(replay(&loaded, trace, trace_path, &audit))
}

/// Reserves `path` for a new journal: an existing file is refused unless
/// `force` (then removed); the file is created with `create_new`, so a file
/// that appears meanwhile is refused too, never appended to or replaced.
fn claim_audit(path: &std::path::Path, force: bool) -> Result<(), String> {
    let shown = path.display();
    if force {
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("cannot replace `{shown}`: {e}")),
        }
    }
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(format!(
            "`{shown}` already exists; replay writes a new audit journal and does not replace one (pass `--force` to replace it)"
        )),
        Err(e) => Err(format!("cannot create `{shown}`: {e}")),
    }
}

async fn replay(
    loaded: &crate::eval::Loaded,
    mut trace: impl BufRead,
    trace_path: &Path,
    audit: &Path,
) -> Exit {
    let mut session = match Session::open(loaded, audit).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Usage;
        }
    };
    match stream(&mut session, &mut trace, trace_path).await {
        Ok(exit) => exit,
        Err(e) => {
            eprintln!("error: {e}");
            Exit::Usage
        }
    }
}

/// The full gateway over a new journal at `audit`, with a simulated clock,
/// simulated tools and a random digest key.
async fn open_gateway(
    loaded: &crate::eval::Loaded,
    audit: &Path,
) -> Result<(Gateway, Arc<ManualClock>), String> {
    let config = JournalConfig {
        fsync: Fsync::Never,
        ..JournalConfig::default()
    };
    let (journal, _) =
        Journal::open(audit, config, Box::new(StoreState::default())).map_err(|e| e.to_string())?;
    let clock = Arc::new(ManualClock::default());
    let services = Services {
        journal,
        store: Arc::new(MemoryStore::default()),
        clock: clock.clone(),
        digest_key: DigestKey::random().map_err(|e| e.to_string())?,
        replica: None,
        limits: Limits::default(),
    };
    let policy = CompiledPolicy::new(&loaded.policy, &loaded.src, &loaded.file)
        .map_err(|e| e.to_string())?;
    let gateway = Gateway::open(policy, services)
        .await
        .map_err(|e| e.to_string())?;
    Ok((gateway, clock))
}

/// Replays the trace line by line, printing each outcome once it is final.
async fn stream(
    session: &mut Session,
    trace: &mut dyn BufRead,
    trace_path: &Path,
) -> Result<Exit, String> {
    let written = |e: std::io::Error| format!("cannot write the output: {e}");
    let mut output = Output {
        out: std::io::BufWriter::new(std::io::stdout().lock()),
        summary: Summary::default(),
        bad: 0,
    };
    let mut line = Vec::new();
    let mut n = 0;
    while let Some(fits) = lines::next(trace, &mut line)
        .map_err(|e| format!("cannot read `{}`: {e}", trace_path.display()))?
    {
        n += 1;
        let result = match step_of(fits, &line) {
            Ok(step) => session.step(step).await,
            Err(error) => Err(error),
        };
        match result {
            Ok(Ok(done)) => {
                for t in &done {
                    output.finish(t).map_err(written)?;
                }
            }
            Ok(Err(refused)) => output.refused(n, &refused).map_err(written)?,
            Err(error) => output.error(n, error).map_err(written)?,
        }
    }
    output.end(session.drain()).map_err(written)
}

/// One trace line (`fits`: no longer than [`lines::MAX_LINE`]) -> a step.
fn step_of(fits: bool, line: &[u8]) -> Result<Step, String> {
    if !fits {
        return Err(format!(
            "line is longer than 1 MiB ({} bytes); it was skipped",
            lines::MAX_LINE
        ));
    }
    let text = std::str::from_utf8(line)
        .map_err(|e| format!("line is not UTF-8 (byte {})", e.valid_up_to() + 1))?;
    parse_line(text.trim_end_matches('\r'))
}

/// An approval or rejection the gateway refused (or of no waiting call).
pub(crate) struct Refused {
    /// `approve` or `reject`.
    pub event: &'static str,
    /// The call's id.
    pub call: String,
    /// Why it was refused.
    pub why: String,
}

/// What a step did: the calls it made final, or the refusal of its event.
pub(crate) type Stepped = Result<Vec<Traced>, Refused>;

/// One step of a trace or scenario, at a time (milliseconds since the epoch).
pub(crate) struct Step {
    pub at: u64,
    pub kind: StepKind,
}

/// A call, an approval or rejection, or a kill switch.
pub(crate) enum StepKind {
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
    /// Only moves the clock (a `policyc test` scenario's `check` step).
    Check,
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
                session: None,
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
                groups: strings(&v["groups"]),
                // A trace's approver approves for the tenants it lists, or any.
                tenants: match v.get("tenants") {
                    Some(t) => TenantScope::Only(strings(t)),
                    None => TenantScope::Any,
                },
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

/// Applies one step; returns the calls it made final (a call that waits for
/// approval is kept in `output.pending` instead).
async fn apply(
    gateway: &Gateway,
    pending: &mut HashMap<String, Traced>,
    calls: &mut u64,
    kind: StepKind,
) -> Result<Stepped, String> {
    match kind {
        StepKind::Call(call) => {
            *calls += 1;
            let t = call_once(gateway, call, *calls).await;
            if t.outcome == "pending" && !pending.contains_key(&t.call.id) {
                pending.insert(t.call.id.clone(), t);
                return Ok(Ok(Vec::new()));
            }
            Ok(Ok(vec![t]))
        }
        StepKind::Approve {
            call,
            approver,
            reason,
            reject: true,
        } => {
            let key = match waiting(pending, &call, "reject") {
                Ok(t) => t.call.key(),
                Err(refused) => return Ok(Err(refused)),
            };
            if let Err(e) = gateway.reject(&key, &approver, &reason).await {
                return refusal_or_error(e, "reject", &call);
            }
            let done = pending.remove(&call).into_iter().map(|mut t| {
                t.outcome = "rejected";
                t.reason = format!("rejected by {}: {reason}", approver.name);
                t
            });
            Ok(Ok(done.collect()))
        }
        StepKind::Approve {
            call,
            approver,
            reason,
            reject: false,
        } => approve(gateway, pending, &call, &approver, &reason).await,
        StepKind::Check => Ok(Ok(Vec::new())),
        StepKind::KillSwitch {
            tenant,
            engaged,
            by,
            reason,
        } => {
            let scope = KillScope {
                tenant,
                agent: None,
                all_tools: false,
            };
            gateway
                .kill_switch(scope, engaged, &by, &reason)
                .await
                .map_err(|e| e.to_string())?;
            Ok(Ok(cancelled(gateway, pending).await))
        }
    }
}

/// The trace's call `id` waiting for approval.
fn waiting<'t>(
    pending: &'t HashMap<String, Traced>,
    id: &str,
    event: &'static str,
) -> Result<&'t Traced, Refused> {
    pending.get(id).ok_or_else(|| Refused {
        event,
        call: id.to_string(),
        why: format!(
            "no call `{id}` is waiting for approval in the trace (it never was, or it is final)"
        ),
    })
}

/// A gateway refusal is the event's outcome; any other failure (the journal) is an error.
fn refusal_or_error(e: GatewayError, event: &'static str, call: &str) -> Result<Stepped, String> {
    match e {
        GatewayError::Refused(r) => Ok(Err(Refused {
            event,
            call: call.to_string(),
            why: r.to_string(),
        })),
        other => Err(other.to_string()),
    }
}

/// The waiting calls a kill switch just cancelled, made final.
async fn cancelled(gateway: &Gateway, pending: &mut HashMap<String, Traced>) -> Vec<Traced> {
    let mut by_id: Vec<(String, (String, String))> = Vec::new();
    for (id, t) in pending.iter() {
        // A replay's store is in memory: it always answers.
        if let Ok(Some(p)) = gateway.pending(&t.call.key()).await {
            if let Some(c) = p.cancelled {
                by_id.push((id.clone(), c));
            }
        }
    }
    let mut done: Vec<Traced> = Vec::new();
    for (id, (by, why)) in by_id {
        if let Some(mut t) = pending.remove(&id) {
            t.outcome = "cancelled";
            t.reason = format!("cancelled by the kill switch (engaged by {by}: {why})");
            done.push(t);
        }
    }
    done.sort_by_key(|t| t.seq);
    done
}

/// A call through the gateway.
async fn call_once(gateway: &Gateway, call: Call, seq: u64) -> Traced {
    let (outcome, rule, reason, expires_at) = match gateway.call(&call, &Simulated).await {
        Ok(CallOutcome::Executed { rule, .. }) => ("executed", rule, String::new(), None),
        Ok(CallOutcome::Pending(hold)) => (
            "pending",
            hold.rule,
            "waiting for approval".into(),
            hold.expires_at,
        ),
        Ok(CallOutcome::Denied(denial)) => ("denied", denial.rule, denial.reason, None),
        // Not a decision: the gateway could not decide or record (a journal failure).
        Err(e) => ("error", None, e.to_string(), None),
    };
    Traced {
        seq,
        call,
        outcome,
        rule,
        reason,
        expires_at,
    }
}

/// An approval (of the arguments as the call is pending: the trace's
/// approver reviewed them); once the call has all it needs, it runs with its token.
async fn approve(
    gateway: &Gateway,
    pending: &mut HashMap<String, Traced>,
    call: &str,
    approver: &Approver,
    reason: &str,
) -> Result<Stepped, String> {
    let t = match waiting(pending, call, "approve") {
        Ok(t) => t,
        Err(refused) => return Ok(Err(refused)),
    };
    let key = t.call.key();
    let digest = gateway.binding(&t.call).args_digest;
    let token = match gateway.approve(&key, approver, &digest, reason).await {
        Ok(token) => token,
        // Approving a call a kill switch cancelled: too late, the call's outcome.
        Err(GatewayError::Refused(Refusal::Cancelled { by })) => {
            let mut t = pending.remove(call).into_iter().collect::<Vec<_>>();
            for t in &mut t {
                t.outcome = "cancelled";
                t.reason = format!(
                    "cancelled by the kill switch (engaged by {by}); approved too late by {}",
                    approver.name
                );
            }
            return Ok(Ok(t));
        }
        Err(e) => return refusal_or_error(e, "approve", call),
    };
    let Some(token) = token else {
        return Ok(Ok(Vec::new()));
    };
    let mut t = pending.remove(call).ok_or(format!(
        "no call `{call}` waiting for approval in the trace"
    ))?;
    match gateway.execute_approved(&t.call, &token, &Simulated).await {
        Ok(CallOutcome::Executed { .. }) => {
            t.outcome = "approved_executed";
            t.reason = format!("approved by {}: {reason}", approver.name);
        }
        Ok(CallOutcome::Denied(denial)) => {
            t.outcome = "denied";
            t.reason = denial.reason;
        }
        Ok(CallOutcome::Pending(_)) => {
            t.outcome = "error";
            t.reason = "the approved call was held again".into();
        }
        // A token refused (spent, revoked, expired): not run.
        Err(GatewayError::Refused(r)) => {
            t.outcome = "denied";
            t.reason = r.to_string();
        }
        Err(e) => {
            t.outcome = "error";
            t.reason = e.to_string();
        }
    }
    Ok(Ok(vec![t]))
}

fn strings(v: &Json) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|g| g.as_str().map(String::from))
        .collect()
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
