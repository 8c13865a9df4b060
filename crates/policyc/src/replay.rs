//! `policyc replay`: a recorded trace through the full gateway, with a
//! simulated clock and simulated tool executions: a call that runs
//! "returns" its line's `output`, reported to the gateway with `complete` as
//! a real tool's result would be (observed in the call's session).

mod line;
mod witness;

pub(crate) use line::parse_time;

use crate::cli::ReplayArgs;
use crate::eval::load;
use crate::lines::{self, LineError};
use crate::Exit;
use serde_json::{json, Value as Json};
use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, Write as _};
use std::path::Path;
use std::sync::Arc;
use toolgate_engine::provenance::Key;
use toolgate_runtime::gateway::{
    Call, CompiledPolicy, DigestKey, Gateway, GatewayError, Limits, ManualClock, Services, Verdict,
};
use toolgate_runtime::journal::{Fsync, Journal, JournalConfig};
use toolgate_runtime::refusal::Refusal;
use toolgate_runtime::store::{
    Approver, CallKey, KillScope, MemoryStore, SessionKey, SessionRead, Store, StoreState,
};
use witness::Witnesses;

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
    /// What the simulated tool returns when the call runs (kept while it waits).
    output: Option<Json>,
    /// What a pending call's approval endorses in its session, once granted.
    endorse: Vec<Key>,
    /// For a call of a session: whether the session was tainted when the
    /// call was decided (`None`: the store no longer holds it), and each
    /// provenance condition of the rules considered with what it found.
    why: Option<SessionWhy>,
}

/// The session-relevant part of a call's reason.
struct SessionWhy {
    tainted: Option<bool>,
    provenance: Vec<String>,
}

impl Traced {
    fn to_json(&self) -> Json {
        let mut shown = json!({
            "id": self.call.id, "agent": self.call.agent, "tool": self.call.tool,
            "tenant": self.call.context.tenant, "outcome": self.outcome, "rule": self.rule,
            "reason": self.reason,
        });
        if let (Some(session), Some(why)) = (&self.call.session, &self.why) {
            shown["session"] = json!(session);
            shown["tainted"] = json!(why.tainted);
            shown["provenance"] = json!(why.provenance);
        }
        shown
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
    store: Arc<MemoryStore>,
    witnesses: Witnesses,
    pending: HashMap<String, Traced>,
    calls: u64,
    last_at: u64,
}

impl Session {
    /// A gateway for `loaded` over a new journal at `audit`.
    pub(crate) async fn open(loaded: &crate::eval::Loaded, audit: &Path) -> Result<Self, String> {
        let (gateway, clock, store) = open_gateway(loaded, audit).await?;
        Ok(Session {
            gateway,
            clock,
            store,
            witnesses: Witnesses::new(loaded)?,
            pending: HashMap::new(),
            calls: 0,
            last_at: 0,
        })
    }

    /// Sets the clock to the step's time and applies it: the calls it made
    /// final, or the refusal of its event (`Err`: a user turn past the
    /// limits, or the journal failed).
    pub(crate) async fn step(&mut self, step: Step) -> Result<Stepped, LineError> {
        self.clock.set(step.at);
        self.last_at = self.last_at.max(step.at);
        self.apply(step).await
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
    fn error(&mut self, line: usize, error: &LineError) -> std::io::Result<()> {
        self.bad += 1;
        writeln!(self.out, "{}", error.to_json(line))
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
) -> Result<(Gateway, Arc<ManualClock>, Arc<MemoryStore>), String> {
    let config = JournalConfig {
        fsync: Fsync::Never,
        ..JournalConfig::default()
    };
    let (journal, _) =
        Journal::open(audit, config, Box::new(StoreState::default())).map_err(|e| e.to_string())?;
    let clock = Arc::new(ManualClock::default());
    let store = Arc::new(MemoryStore::default());
    let services = Services {
        journal,
        store: store.clone(),
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
    Ok((gateway, clock, store))
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
        let result = match line::step_of(fits, &line) {
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
            Err(error) => output.error(n, &error).map_err(written)?,
        }
    }
    output.end(session.drain()).map_err(written)
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

/// A call, a user turn, an approval or rejection, or a kill switch.
pub(crate) enum StepKind {
    /// A call, and what the simulated tool returns if it runs.
    Call { call: Call, output: Option<Json> },
    /// What the user said in a session.
    Turn {
        tenant: String,
        session: String,
        text: String,
    },
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

impl Session {
    /// Applies one step; returns the calls it made final (a call that waits
    /// for approval is kept in `pending` instead).
    async fn apply(&mut self, step: Step) -> Result<Stepped, LineError> {
        match step.kind {
            StepKind::Call { call, output } => {
                self.calls += 1;
                let t = self.call_once(call, output, step.at).await;
                if t.outcome == "pending" && !self.pending.contains_key(&t.call.id) {
                    self.pending.insert(t.call.id.clone(), t);
                    return Ok(Ok(Vec::new()));
                }
                Ok(Ok(vec![t]))
            }
            StepKind::Turn {
                tenant,
                session,
                text,
            } => {
                self.gateway
                    .user_turn(&tenant, &session, &text)
                    .await
                    .map_err(turn_error)?;
                self.witnesses.turn(&tenant, &session, &text);
                Ok(Ok(Vec::new()))
            }
            StepKind::Approve {
                call,
                approver,
                reason,
                reject: true,
            } => self
                .reject(&call, &approver, &reason)
                .await
                .map_err(journal),
            StepKind::Approve {
                call,
                approver,
                reason,
                reject: false,
            } => self
                .approve(&call, &approver, &reason)
                .await
                .map_err(journal),
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
                self.gateway
                    .kill_switch(scope, engaged, &by, &reason)
                    .await
                    .map_err(|e| LineError::line(e.to_string()))?;
                Ok(Ok(cancelled(&self.gateway, &mut self.pending).await))
            }
        }
    }

    /// A call through the gateway: decided, and if allowed, run (its
    /// `output` reported with `complete`, observed in its session).
    async fn call_once(&mut self, call: Call, output: Option<Json>, now: u64) -> Traced {
        let why = self.why(&call, now).await;
        let mut t = Traced {
            seq: self.calls,
            call,
            outcome: "error",
            rule: None,
            reason: String::new(),
            expires_at: None,
            output: None,
            endorse: Vec::new(),
            why,
        };
        match self.gateway.authorize(&t.call).await {
            Ok(Verdict::Allowed(lease)) => {
                t.rule = lease.rule.clone();
                t.outcome = self.run(&t.call, &lease.key, output.as_ref()).await;
                if t.outcome == "error" {
                    t.reason = "the result could not be recorded".into();
                }
            }
            Ok(Verdict::Pending(hold)) => {
                t.outcome = "pending";
                t.rule = hold.rule;
                t.reason = "waiting for approval".into();
                t.expires_at = hold.expires_at;
                t.endorse = self.witnesses.endorsable(&t.call, now);
                t.output = output;
            }
            Ok(Verdict::Denied(denial)) => {
                t.outcome = "denied";
                t.rule = denial.rule;
                t.reason = denial.reason;
            }
            // Not a decision: the gateway could not decide or record (a journal failure).
            Err(e) => t.reason = e.to_string(),
        }
        t
    }

    /// The session-relevant part of the reason of `call`, decided at `now`.
    async fn why(&self, call: &Call, now: u64) -> Option<SessionWhy> {
        let id = call.session.as_deref()?;
        let key = SessionKey::new(&call.context.tenant, id);
        let tainted = match self.store.session(&key, now).await {
            Ok(SessionRead::Live(s)) => Some(s.tainted()),
            _ => None,
        };
        let provenance = self.witnesses.explain(call, now);
        Some(SessionWhy {
            tainted,
            provenance,
        })
    }

    /// Runs an allowed call (the simulated tool returns `output`) and reports
    /// its result: `executed`, or `error` when it could not be recorded.
    async fn run(&mut self, call: &Call, key: &CallKey, output: Option<&Json>) -> &'static str {
        match self.gateway.complete(key, Ok(()), output).await {
            Ok(()) => {
                self.witnesses.allowed(call);
                self.witnesses.observed(call, output);
                "executed"
            }
            Err(_) => "error",
        }
    }

    async fn reject(
        &mut self,
        call: &str,
        approver: &Approver,
        reason: &str,
    ) -> Result<Stepped, String> {
        let key = match waiting(&self.pending, call, "reject") {
            Ok(t) => t.call.key(),
            Err(refused) => return Ok(Err(refused)),
        };
        if let Err(e) = self.gateway.reject(&key, approver, reason).await {
            return refusal_or_error(e, "reject", call);
        }
        let done = self.pending.remove(call).into_iter().map(|mut t| {
            t.outcome = "rejected";
            t.reason = format!("rejected by {}: {reason}", approver.name);
            t
        });
        Ok(Ok(done.collect()))
    }

    /// An approval (of the arguments as the call is pending: the trace's
    /// approver reviewed them); once the call has all it needs, its values
    /// are endorsed and it runs with its token.
    async fn approve(
        &mut self,
        call: &str,
        approver: &Approver,
        reason: &str,
    ) -> Result<Stepped, String> {
        let t = match waiting(&self.pending, call, "approve") {
            Ok(t) => t,
            Err(refused) => return Ok(Err(refused)),
        };
        let key = t.call.key();
        let digest = self.gateway.binding(&t.call).args_digest;
        let token = match self.gateway.approve(&key, approver, &digest, reason).await {
            Ok(token) => token,
            // Approving a call a kill switch cancelled: too late, the call's outcome.
            Err(GatewayError::Refused(Refusal::Cancelled { by })) => {
                let mut t = self.pending.remove(call).into_iter().collect::<Vec<_>>();
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
        let mut t = self.pending.remove(call).ok_or(format!(
            "no call `{call}` waiting for approval in the trace"
        ))?;
        self.witnesses
            .endorse(&t.call, std::mem::take(&mut t.endorse));
        let output = t.output.take();
        match self.gateway.authorize_approved(&t.call, &token).await {
            Ok(Verdict::Allowed(lease)) => {
                t.outcome = match self.run(&t.call, &lease.key, output.as_ref()).await {
                    "executed" => "approved_executed",
                    other => other,
                };
                t.reason = format!("approved by {}: {reason}", approver.name);
            }
            Ok(Verdict::Denied(denial)) => {
                t.outcome = "denied";
                t.reason = denial.reason;
            }
            Ok(Verdict::Pending(_)) => {
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
}

/// A user turn the gateway did not record: past a limit (naming the
/// field), or the journal failed.
fn turn_error(e: GatewayError) -> LineError {
    use toolgate_runtime::gateway::SessionInputError as E;
    match e {
        GatewayError::Session(e @ (E::EmptyId | E::IdTooLong { .. })) => {
            LineError::at("session", e.to_string())
        }
        GatewayError::Session(e @ E::TurnTooLong { .. }) => LineError::at("text", e.to_string()),
        other => LineError::line(other.to_string()),
    }
}

/// A failure to record (the journal): an error of the step's line.
fn journal(e: String) -> LineError {
    LineError::line(e)
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
