//! Running a test file's cases, scenarios and nevers.

use super::spec::{CallSpec, Case, CaseExpect, Scenario, StepSpec, TestFile};
use super::{never, Broken, TestResult};
use crate::eval::{self, Loaded};
use crate::replay::{self, Session, Step, StepKind};
use crate::{lines, session_file};
use serde_json::{json, Map, Value as Json};
use std::collections::HashMap;
use std::path::Path;
use toml::Spanned;
use toolgate_check::{ir, time};
use toolgate_engine::provenance::SessionView;
use toolgate_engine::{Decision, Engine, Request, Timestamp};
use toolgate_runtime::gateway::Call;
use toolgate_runtime::store::{Approver, TenantScope};

/// Runs every test of `file` (read from `path`).
pub(crate) fn file(path: &Path, file: &TestFile) -> Result<Vec<TestResult>, Broken> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let policy_path = dir.join(file.policy.get_ref());
    let loaded = eval::load(&policy_path).map_err(|_| {
        Broken::at(
            &file.policy,
            format!("the policy `{}` cannot be loaded", policy_path.display()),
        )
    })?;
    let engine = eval::engine(&loaded)
        .map_err(|_| Broken::at(&file.policy, "the policy cannot be compiled".to_string()))?;
    let defaults = file.defaults.context.clone().unwrap_or_default();
    let default_now = file.defaults.now.as_ref().map(now_of).transpose()?;
    let shown = path.display().to_string();
    let result = |kind, name: &str, failures| TestResult {
        file: shown.clone(),
        kind,
        name: name.to_string(),
        failures,
    };
    let mut out = Vec::new();
    for case in &file.cases {
        out.push(result(
            "case",
            &case.name,
            run_case(&loaded, &engine, case, (&defaults, default_now))?,
        ));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| Broken {
            message: format!("cannot start a runtime: {e}"),
            span: None,
        })?;
    for sc in &file.scenarios {
        let failures = rt.block_on(run_scenario(&loaded, sc, &defaults))?;
        out.push(result("scenario", &sc.name, failures));
    }
    let ctx = to_json(&defaults);
    for n in &file.nevers {
        out.push(result(
            "never",
            &n.name,
            never::check(&loaded, &engine, n, &ctx)?,
        ));
    }
    Ok(out)
}

/// A JSON value's object (empty for anything else).
fn object(v: Json) -> Map<String, Json> {
    match v {
        Json::Object(m) => m,
        _ => Map::new(),
    }
}

/// A TOML table as a JSON object.
fn to_json(t: &toml::Table) -> Map<String, Json> {
    match serde_json::to_value(t) {
        Ok(Json::Object(m)) => m,
        _ => Map::new(),
    }
}

/// `base` with every table of `over` laid over it, as JSON.
fn merged(base: &toml::Table, over: &[Option<&toml::Table>]) -> Map<String, Json> {
    let mut ctx = to_json(base);
    for t in over.iter().flatten() {
        ctx.extend(to_json(t));
    }
    ctx
}

/// A test's call, read as the HTTP API reads one (toolgate-api's
/// conversion, one set of limits): `call` holds `agent`, `tool`, `args`
/// (TOML) and whatever else the wire call has (`id`, `session`).
fn wire_call(mut call: Map<String, Json>, ctx: Map<String, Json>) -> Result<Call, String> {
    call.insert("context".into(), Json::Object(ctx));
    let id_required = call.contains_key("id");
    lines::call(call, id_required).map_err(|e| match e.field {
        Some(field) => format!("`{field}`: {}", e.message),
        None => e.message,
    })
}

/// A case's `now`: a string or TOML date-time, RFC 3339 with an offset.
fn now_of(v: &Spanned<toml::Value>) -> Result<Timestamp, Broken> {
    let text = match v.get_ref() {
        toml::Value::String(t) => t.clone(),
        toml::Value::Datetime(d) => d.to_string(),
        _ => String::new(),
    };
    time::parse_datetime(&text).ok_or_else(|| {
        let msg = format!(
            "`now` must be an RFC 3339 time with an offset such as 2026-11-22T10:00:00Z, not `{text}`"
        );
        Broken::at(v, msg)
    })
}

fn run_case(
    loaded: &Loaded,
    engine: &Engine,
    case: &Case,
    (defaults, default_now): (&toml::Table, Option<Timestamp>),
) -> Result<Vec<String>, Broken> {
    let r = case.request.get_ref();
    let ctx = merged(defaults, &[case.context.as_ref(), r.context.as_ref()]);
    let wire = json!({ "agent": r.agent, "tool": r.tool, "args": to_json(&r.args) });
    let call = wire_call(object(wire), ctx)
        .map_err(|e| Broken::at(&case.request, format!("invalid request: {e}")))?;
    let now = case.now.as_ref().map(now_of).transpose()?.or(default_now);
    let session = match &case.session {
        Some(s) => Some(
            session_file::build(s.get_ref(), &loaded.policy)
                .map_err(|e| Broken::at(s, format!("invalid session: {e}")))?,
        ),
        None => None,
    };
    let req = Request {
        now,
        session: session.as_ref().map(|s| s as &dyn SessionView),
        ..call.as_request()
    };
    let decision = engine.decide(&req);
    compare(loaded, &decision, case.expect.get_ref())
}

/// What differs between a decision and a case's expectation.
fn compare(loaded: &Loaded, d: &Decision<'_>, want: &CaseExpect) -> Result<Vec<String>, Broken> {
    let mut failures = Vec::new();
    let decision = want.decision.get_ref().as_str();
    if !["allow", "deny", "approval_required"].contains(&decision) {
        let msg =
            format!("`decision` must be `allow`, `deny` or `approval_required`, not `{decision}`");
        return Err(Broken::at(&want.decision, msg));
    }
    if d.outcome().as_str() != decision {
        failures.push(format!(
            "expected `{decision}`, got `{}` ({})",
            d.outcome().as_str(),
            d.reason()
        ));
    }
    if let Some(rule) = &want.rule {
        let same = match rule_ref(rule) {
            RuleRef::Id(id)
                if !loaded
                    .policy
                    .rules
                    .iter()
                    .any(|r| r.name.as_deref() == Some(id)) =>
            {
                let msg = format!("`{id}` is not a rule reference: no rule has `@id(\"{id}\")`; name a rule by its `@id`, `file:line` or `line`");
                return Err(Broken::at(rule, msg));
            }
            RuleRef::Id(id) => d.rule().and_then(|r| r.name.as_deref()) == Some(id),
            RuleRef::At(file, line) => d.rule().is_some_and(|r| {
                r.line == line && file.is_none_or(|file| same_file(&r.file, file, &loaded.file))
            }),
        };
        if !same {
            let got = d.rule().map_or("no rule".to_string(), ToString::to_string);
            failures.push(format!("expected rule `{}`, got {got}", rule.get_ref()));
        }
    }
    if let Some(a) = &want.approval {
        failures.extend(approval_differs(d.approval(), a));
    }
    if let Some(b) = &want.budget {
        let secs = match b.get_ref().per.as_str() {
            "minute" => 60,
            "hour" => 3600,
            "day" => 86_400,
            other => {
                return Err(Broken::at(
                    b,
                    format!("`per` must be `minute`, `hour` or `day`, not `{other}`"),
                ))
            }
        };
        let got = d.budgeted().map(|g| (g.budget.limit, g.budget.window_secs));
        if got != Some((b.get_ref().limit, secs)) {
            let got = got.map_or("no budget".to_string(), |(l, w)| {
                format!("a budget of {l} per {w}s")
            });
            failures.push(format!(
                "expected a budget of {} per {}, got {got}",
                b.get_ref().limit,
                b.get_ref().per
            ));
        }
    }
    Ok(failures)
}

/// How a test names a rule.
enum RuleRef<'a> {
    /// `file:line` or `line`.
    At(Option<&'a str>, usize),
    /// A rule's `@id`.
    Id(&'a str),
}

/// A rule reference: `file:line`, `line`, or a rule's `@id`.
fn rule_ref(rule: &Spanned<String>) -> RuleRef<'_> {
    let text = rule.get_ref().as_str();
    if let Ok(line) = text.parse::<usize>() {
        return RuleRef::At(None, line);
    }
    match text.rsplit_once(':').map(|(f, l)| (f, l.parse::<usize>())) {
        Some((f, Ok(line))) => RuleRef::At(Some(f), line),
        _ => RuleRef::Id(text),
    }
}

/// Whether the engine's rule file `got` is the file the test names.
fn same_file(got: &str, named: &str, policy: &str) -> bool {
    let name = |p: &str| Path::new(p).file_name().map(|n| n.to_os_string());
    got == named
        || got.ends_with(&format!("/{named}"))
        || (got == policy && name(got) == name(named))
}

fn approval_differs(
    got: Option<&ir::HumanApproval>,
    want: &super::spec::ApprovalExpect,
) -> Vec<String> {
    let Some(ir::HumanApproval {
        group,
        count,
        expires_secs,
    }) = got
    else {
        return vec!["expected an approval, the decision requires none".to_string()];
    };
    let mut out = Vec::new();
    if want.group.is_some() && want.group != *group {
        out.push(format!(
            "expected approval from group {:?}, got {:?}",
            want.group, group
        ));
    }
    if want.count.is_some_and(|c| c != *count) {
        out.push(format!("expected {:?} approvals, got {count}", want.count));
    }
    if let Some(e) = &want.expires {
        let want_secs = duration(e);
        if want_secs != *expires_secs {
            out.push(format!(
                "expected expiry `{e}`, got {expires_secs:?} seconds"
            ));
        }
    }
    out
}

/// `15m` -> 900 seconds; `none` (or anything unreadable) -> no expiry.
fn duration(text: &str) -> Option<u64> {
    let (num, unit) = text.split_at(text.len().saturating_sub(1));
    let n: u64 = num.parse().ok()?;
    let per = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    n.checked_mul(per)
}

async fn run_scenario(
    loaded: &Loaded,
    sc: &Scenario,
    defaults: &toml::Table,
) -> Result<Vec<String>, Broken> {
    let temp = tempfile::tempdir().map_err(|e| Broken {
        message: format!("cannot create a temporary directory: {e}"),
        span: None,
    })?;
    let mut session = Session::open(loaded, &temp.path().join("audit.jsonl"))
        .await
        .map_err(|e| Broken {
            message: e,
            span: None,
        })?;
    let base = merged(defaults, &[sc.context.as_ref()]);
    let mut finals: HashMap<String, (&'static str, String)> = HashMap::new();
    let mut failures = Vec::new();
    for (i, spanned) in sc.steps.iter().enumerate() {
        let s = spanned.get_ref();
        let (step, subject) = step_of(spanned, &base)?;
        let stepped = session.step(step).await.map_err(|e| Broken {
            message: format!("step {}: {}", i + 1, e.message),
            span: Some(spanned.span()),
        })?;
        let refused = match stepped {
            Ok(done) => {
                for t in done {
                    finals.insert(t.call.id.clone(), (t.outcome, t.reason));
                }
                None
            }
            Err(r) => Some(r.why),
        };
        let Some(want) = &s.expect else { continue };
        let Some(id) = subject else {
            let kind = if s.turn.is_some() {
                "turn"
            } else {
                "kill switch"
            };
            return Err(Broken::at(
                want,
                format!("a {kind} step has no outcome to expect"),
            ));
        };
        let (got, why) = match (&refused, finals.get(&id), session.waiting(&id)) {
            (Some(why), _, _) => ("refused", why.clone()),
            (None, Some((o, why)), _) => (*o, why.clone()),
            (None, None, Some(w)) => (w, "waiting for approval".to_string()),
            (None, None, None) => ("unknown", format!("no call `{id}` was made")),
        };
        if got != want.get_ref() {
            failures.push(format!(
                "step {} (`{id}`): expected `{}`, got `{got}` ({why})",
                i + 1,
                want.get_ref()
            ));
        }
    }
    Ok(failures)
}

/// A scenario step as a replay step, and the call id its `expect` is about.
fn step_of(
    spanned: &Spanned<StepSpec>,
    base: &Map<String, Json>,
) -> Result<(Step, Option<String>), Broken> {
    let s = spanned.get_ref();
    let at_text = match s.at.get_ref() {
        toml::Value::String(t) => t.clone(),
        toml::Value::Datetime(d) => d.to_string(),
        _ => String::new(),
    };
    let at = replay::parse_time(&at_text).map_err(|e| Broken::at(&s.at, e))?;
    let given = [
        s.call.is_some(),
        s.turn.is_some(),
        s.approve.is_some(),
        s.reject.is_some(),
        s.kill_switch.is_some(),
        s.check.is_some(),
    ];
    if given.iter().filter(|g| **g).count() != 1 {
        return Err(Broken::at(
            spanned,
            "a step has exactly one of `call`, `turn`, `approve`, `reject`, `kill_switch`, `check`"
                .into(),
        ));
    }
    if s.session.is_some() && s.turn.is_none() {
        return Err(Broken::at(
            spanned,
            "`session` belongs to a `turn` step (a call's session is written in the call: `call = { ..., session = \"s1\" }`)".into(),
        ));
    }
    let approver = || {
        Ok(Approver {
            name: s.approver.clone().ok_or_else(|| {
                Broken::at(spanned, "an approve or reject step needs `approver`".into())
            })?,
            groups: s.groups.clone(),
            tenants: s
                .tenants
                .clone()
                .map_or(TenantScope::Any, TenantScope::Only),
        })
    };
    let reason = s.reason.clone().unwrap_or_default();
    let (kind, subject) = if let Some(c) = &s.call {
        let (call, output) = scenario_call(spanned, c, base)?;
        (StepKind::Call { call, output }, Some(c.id.clone()))
    } else if let Some(text) = &s.turn {
        turn_step(spanned, text, base)?
    } else if let Some(id) = s.approve.as_ref().or(s.reject.as_ref()) {
        let kind = StepKind::Approve {
            call: id.clone(),
            approver: approver()?,
            reason,
            reject: s.reject.is_some(),
        };
        (kind, Some(id.clone()))
    } else if let Some(engaged) = s.kill_switch {
        let by = s.by.clone().unwrap_or_else(|| "policyc test".into());
        (
            StepKind::KillSwitch {
                tenant: s.tenant.clone(),
                engaged,
                by,
                reason,
            },
            None,
        )
    } else {
        let id = s.check.clone().unwrap_or_default();
        if s.expect.is_none() {
            return Err(Broken::at(spanned, "a check step needs `expect`".into()));
        }
        // A check only moves the clock: a kill switch release that changes nothing.
        (StepKind::Check, Some(id))
    };
    Ok((Step { at, kind }, subject))
}

/// A scenario's call (laid over the scenario's context) and what its tool
/// returns; an `output` needs a `session` to be observed in.
fn scenario_call(
    spanned: &Spanned<StepSpec>,
    c: &CallSpec,
    base: &Map<String, Json>,
) -> Result<(Call, Option<Json>), Broken> {
    if c.output.is_some() && c.session.is_none() {
        return Err(Broken::at(
            spanned,
            "a call's `output` is observed in its session: give the call a `session`".into(),
        ));
    }
    let mut ctx = base.clone();
    ctx.extend(c.context.as_ref().map(to_json).unwrap_or_default());
    let wire = json!({
        "id": c.id, "agent": c.agent, "tool": c.tool, "args": to_json(&c.args), "session": c.session,
    });
    let mut wire = object(wire);
    if c.session.is_none() {
        wire.remove("session");
    }
    let call =
        wire_call(wire, ctx).map_err(|e| Broken::at(spanned, format!("invalid call: {e}")))?;
    let output = c
        .output
        .as_ref()
        .map(serde_json::to_value)
        .transpose()
        .map_err(|e| Broken::at(spanned, format!("invalid `output`: {e}")))?;
    Ok((call, output))
}

/// A user turn in `session`, for `tenant` (default: the context's); it has
/// no outcome to expect.
fn turn_step(
    spanned: &Spanned<StepSpec>,
    text: &str,
    base: &Map<String, Json>,
) -> Result<(StepKind, Option<String>), Broken> {
    let s = spanned.get_ref();
    let Some(session) = s.session.clone() else {
        return Err(Broken::at(spanned, "a turn step needs `session`".into()));
    };
    let tenant = s
        .tenant
        .clone()
        .or_else(|| base.get("tenant").and_then(Json::as_str).map(String::from));
    let Some(tenant) = tenant else {
        return Err(Broken::at(
            spanned,
            "a turn step needs `tenant` (or one in the context)".into(),
        ));
    };
    let kind = StepKind::Turn {
        tenant,
        session,
        text: text.to_string(),
    };
    Ok((kind, None))
}
