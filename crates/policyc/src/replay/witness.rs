//! The replay's sessions as the engine's [`MemorySession`]s, fed with the
//! same turns, observed outputs, endorsements and allowed calls as the
//! gateway's store: the store keeps keyed digests only, so this is where a
//! replay learns *where* a value was seen ("user turn 1", "untrusted output
//! of call c1 (`inbox.read`) field `[].body`") to say why a call of a
//! session was decided as it was. It explains; the gateway decides.

use crate::eval::Loaded;
use serde_json::Value as Json;
use std::collections::HashMap;
use toolgate_check::ir;
use toolgate_engine::provenance::{self, Key, MemorySession, SessionView};
use toolgate_engine::{Engine, Request, Timestamp};
use toolgate_runtime::gateway::Call;

/// Every session of a replay, by (tenant, session id).
pub(crate) struct Witnesses {
    policy: ir::Policy,
    src: String,
    engine: Engine,
    sessions: HashMap<(String, String), MemorySession>,
}

impl Witnesses {
    pub(crate) fn new(loaded: &Loaded) -> Result<Self, String> {
        let engine = Engine::new(&loaded.policy, &loaded.file).map_err(|e| e.to_string())?;
        Ok(Witnesses {
            policy: loaded.policy.clone(),
            src: loaded.src.clone(),
            engine,
            sessions: HashMap::new(),
        })
    }

    fn session(&mut self, call: &Call) -> Option<&mut MemorySession> {
        let id = call.session.clone()?;
        let key = (call.context.tenant.clone(), id);
        Some(self.sessions.entry(key).or_default())
    }

    /// A user turn the gateway recorded.
    pub(crate) fn turn(&mut self, tenant: &str, session: &str, text: &str) {
        let key = (tenant.to_string(), session.to_string());
        self.sessions.entry(key).or_default().user_turn(text);
    }

    /// A call of a session allowed to run (`session.calls`).
    pub(crate) fn allowed(&mut self, call: &Call) {
        if let Some(s) = self.session(call) {
            s.allowed_call(&call.tool);
        }
    }

    /// The output of a call that ran, as the gateway observed it (none: it
    /// taints unless every position of the tool's output is trusted).
    pub(crate) fn observed(&mut self, call: &Call, output: Option<&Json>) {
        let tool = self
            .policy
            .tools
            .iter()
            .find(|t| t.name == call.tool)
            .cloned();
        let Some(s) = self.session(call) else { return };
        match (tool, output) {
            (Some(tool), Some(output)) => s.observe(&call.id, &tool, output),
            (Some(tool), None) if provenance::all_trusted(&tool) => {}
            _ => s.taint(),
        }
    }

    /// The values a held call's approval endorses (its rule's `endorse`
    /// paths), to pass to [`Witnesses::endorse`] once it is granted.
    pub(crate) fn endorsable(&self, call: &Call, now: u64) -> Vec<Key> {
        let Some(session) = self.view(call) else {
            return Vec::new();
        };
        let req = request(call, now, Some(session));
        match self.engine.decide(&req).rule() {
            Some(rule) => provenance::endorsed_keys(&call.args, &rule.endorse),
            None => Vec::new(),
        }
    }

    /// Values endorsed by the granted approval of `call`.
    pub(crate) fn endorse(&mut self, call: &Call, keys: Vec<Key>) {
        if let Some(s) = self.session(call).filter(|_| !keys.is_empty()) {
            s.endorse(&call.id, keys);
        }
    }

    fn view(&self, call: &Call) -> Option<&MemorySession> {
        let id = call.session.as_ref()?;
        self.sessions
            .get(&(call.context.tenant.clone(), id.clone()))
    }

    /// For a call of a session: each `x from SOURCE` of the rules considered
    /// for it, with the source that satisfied it or where the value was
    /// seen instead (`NAME (line:column): ...`, `line:column: ...` for a
    /// rule without an `@id`), as the session stood when it
    /// was decided.
    pub(crate) fn explain(&self, call: &Call, now: u64) -> Vec<String> {
        let empty = MemorySession::new();
        let session: &dyn SessionView = self.view(call).unwrap_or(&empty);
        let req = request(call, now, Some(session));
        let mut out = Vec::new();
        for t in toolgate_engine::explain(&self.policy, &req) {
            let Some(rule) = self.policy.rules.get(t.rule.0 as usize) else {
                continue;
            };
            let at = match &rule.name {
                Some(name) => format!("{name} ({}:{})", rule.line, rule.column),
                None => format!("{}:{}", rule.line, rule.column),
            };
            let found = crate::eval::provenance_findings(&self.policy, &self.src, &req, &[t.rule]);
            out.extend(found.into_iter().map(|f| format!("{at}: {f}")));
        }
        out
    }
}

fn request<'a>(call: &'a Call, now: u64, session: Option<&'a dyn SessionView>) -> Request<'a> {
    let now = i64::try_from(now)
        .ok()
        .and_then(|ms| Timestamp::from_millisecond(ms).ok());
    Request {
        now,
        session,
        ..call.as_request()
    }
}
