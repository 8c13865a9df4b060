//! Sessions as Store state: per `(tenant, session)`, the keyed digests of
//! what the user said, of the outputs the agent read (by label) and of the
//! values approvals endorsed, the calls allowed per tool, and `tainted`.
//! Digests only: the store never holds a turn's or an output's text.
//!
//! A session starts when first named; it is evicted after [`SessionLimits::ttl_ms`]
//! idle, and goes over its cap at more than [`SessionLimits::max_digests`]
//! digests (then it stops indexing and is tainted). Either leaves a tombstone
//! for one more TTL: a decision on it fails closed (`SessionRead::Gone`).
//! Every change is a session record applied by [`Session::apply`], live and
//! on replay alike.

use crate::record::{SessionCall, SessionEndorsed, SessionObserved, SessionTurn};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// A session: its tenant and the host's session id.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SessionKey {
    /// The tenant (from the trusted context).
    pub tenant: String,
    /// The session id (trusted context from the host, never model output).
    pub session: String,
}

impl SessionKey {
    /// A key.
    pub fn new(tenant: &str, session: &str) -> Self {
        SessionKey {
            tenant: tenant.to_string(),
            session: session.to_string(),
        }
    }

    /// The key as one string (a map slot; unambiguous whatever it holds).
    pub fn slot(&self) -> String {
        serde_json::json!([self.tenant, self.session]).to_string()
    }
}

/// The longest session id (characters), as the wire allows.
pub const MAX_SESSION_CHARS: usize = 200;

/// Idle sessions are evicted after this long (24 h).
pub const SESSION_TTL_MS: u64 = 24 * 60 * 60 * 1000;

/// A session holding more digests than this goes over its cap.
pub const SESSION_MAX_DIGESTS: usize = 200_000;

/// A session's TTL and cap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionLimits {
    /// Idle time after which a session is evicted (ms).
    pub ttl_ms: u64,
    /// Digests a session may hold.
    pub max_digests: usize,
}

impl Default for SessionLimits {
    fn default() -> Self {
        SessionLimits {
            ttl_ms: SESSION_TTL_MS,
            max_digests: SESSION_MAX_DIGESTS,
        }
    }
}

/// Where a digest occurs (bits of `toolgate_engine::provenance::Sources`).
pub mod source {
    /// A user turn.
    pub const USER: u8 = 1;
    /// A trusted output position.
    pub const TRUSTED_OUTPUT: u8 = 2;
    /// An untrusted output position.
    pub const UNTRUSTED_OUTPUT: u8 = 4;
    /// An endorsement.
    pub const ENDORSED: u8 = 8;
}

/// What a session knows of one digest.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Entry {
    /// [`source`] bits.
    pub(crate) s: u8,
    /// Indices into `Session::tools` of the tools whose outputs held it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) t: Vec<u32>,
}

/// One session's state (the Redis store rebuilds it from its hash).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub(crate) index: HashMap<String, Entry>,
    pub(crate) tools: Vec<String>,
    pub(crate) calls: HashMap<String, u64>,
    pub(crate) tainted: bool,
    pub(crate) turns: u64,
    pub(crate) observations: u64,
    pub(crate) endorsements: u64,
    pub(crate) last_seen: u64,
    /// Evicted or over its cap at this time: a tombstone.
    pub(crate) gone_at: Option<u64>,
}

/// What one decision asks a session: the keyed digests of the values its
/// `from` conditions read, the tools of its `from tool T` (asked about each
/// digest), the tools of its `session.calls(T)`, and `session.tainted`.
/// A store answers exactly these (Redis: one `HMGET`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionQuery {
    /// Keyed digests, each once.
    pub digests: Vec<String>,
    /// Tools asked about each digest (`from tool T`).
    pub tools: Vec<String>,
    /// Tools whose allowed calls are counted.
    pub calls: Vec<String>,
}

/// A session's answers to a [`SessionQuery`]; a digest or tool not asked
/// is not answered (the decision's lookup fails closed).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionAnswers {
    /// [`source`] bits of each digest asked (0: nowhere).
    pub sources: BTreeMap<String, u8>,
    /// The tools asked whose outputs held each digest asked.
    pub outputs: BTreeMap<String, Vec<String>>,
    /// The tools asked.
    pub tools: Vec<String>,
    /// Allowed calls of each tool asked.
    pub calls: BTreeMap<String, u64>,
    /// Whether untrusted content reached the agent.
    pub tainted: bool,
}

impl SessionAnswers {
    /// A new (or forgotten) session's answers: nothing seen, nothing counted.
    pub fn empty(query: &SessionQuery) -> SessionAnswers {
        SessionAnswers {
            sources: query.digests.iter().map(|d| (d.clone(), 0)).collect(),
            outputs: query
                .digests
                .iter()
                .map(|d| (d.clone(), Vec::new()))
                .collect(),
            tools: query.tools.clone(),
            calls: query.calls.iter().map(|t| (t.clone(), 0)).collect(),
            tainted: false,
        }
    }

    /// Where `digest` occurs; `None` when it was not asked.
    pub fn sources(&self, digest: &str) -> Option<u8> {
        self.sources.get(digest).copied()
    }

    /// Whether `digest` occurs in an output of `tool`; `None` when either was not asked.
    pub fn in_output_of(&self, digest: &str, tool: &str) -> Option<bool> {
        let held = self.outputs.get(digest)?;
        self.tools
            .iter()
            .any(|t| t == tool)
            .then(|| held.iter().any(|t| t == tool))
    }

    /// Allowed calls of `tool`; `None` when it was not asked.
    pub fn calls(&self, tool: &str) -> Option<u64> {
        self.calls.get(tool).copied()
    }
}

/// A session as one decision reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionLookup {
    /// Held (an id never seen is an empty session): the answers.
    Live(SessionAnswers),
    /// Evicted or over its cap: conditions on it are evaluation errors.
    Gone,
}

/// What may be shown of a session (`GET /v1/sessions/{id}`): counts and the
/// taint flag, never a value, a digest or a length.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionSummary {
    /// Whether untrusted content reached the agent (a tombstone is tainted).
    pub tainted: bool,
    /// User turns recorded.
    pub turns: u64,
    /// Tool outputs observed.
    pub observations: u64,
    /// Approvals whose values were endorsed.
    pub endorsed: u64,
    /// Calls allowed to run in the session, by tool.
    pub calls: BTreeMap<String, u64>,
}

/// A session as a decision reads it.
#[derive(Clone, Debug)]
pub enum SessionRead {
    /// Held (an id never seen is an empty session).
    Live(Arc<Session>),
    /// Evicted or over its cap: conditions on it are evaluation errors.
    Gone,
}

/// Where a session stands at a time (every store ages sessions by this).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    /// Held (or never seen).
    Live,
    /// A tombstone: evicted or over its cap less than one TTL ago.
    Gone,
    /// A tombstone one TTL old: the id is a new, empty session.
    Forgotten,
}

impl Standing {
    /// Where a session last changed at `seen` (`None`: never changed, or a
    /// tombstone) and tombstoned at `gone_at` stands at `now`: idle for a
    /// TTL, it became a tombstone when it went idle.
    pub fn at(
        seen: Option<u64>,
        gone_at: Option<u64>,
        now: u64,
        limits: SessionLimits,
    ) -> Standing {
        let idle = seen
            .map(|s| s.saturating_add(limits.ttl_ms))
            .filter(|t| *t <= now);
        match gone_at.or(idle) {
            Some(g) if g.saturating_add(limits.ttl_ms) <= now => Standing::Forgotten,
            Some(_) => Standing::Gone,
            None => Standing::Live,
        }
    }
}

/// What became of a session change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionWrite {
    /// Recorded.
    Recorded,
    /// It took the session over its cap: tainted and tombstoned.
    Capped,
    /// The session is a tombstone: nothing was recorded.
    Gone,
}

/// A change to a session: a record of one of the session kinds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionChange {
    /// A user turn.
    Turn(SessionTurn),
    /// An observed output.
    Observed(SessionObserved),
    /// Endorsed values.
    Endorsed(SessionEndorsed),
    /// An allowed call.
    Call(SessionCall),
}

impl SessionChange {
    /// The session it changes.
    pub fn key(&self) -> &SessionKey {
        match self {
            SessionChange::Turn(r) => &r.key,
            SessionChange::Observed(r) => &r.key,
            SessionChange::Endorsed(r) => &r.key,
            SessionChange::Call(r) => &r.key,
        }
    }

    /// When it happened (ms).
    pub fn at(&self) -> u64 {
        match self {
            SessionChange::Turn(r) => r.at,
            SessionChange::Observed(r) => r.at,
            SessionChange::Endorsed(r) => r.at,
            SessionChange::Call(r) => r.at,
        }
    }

    /// The same change marked over the cap, its digests dropped (what is
    /// journaled when it took the session over: applying it tombstones).
    pub fn capped(self) -> SessionChange {
        match self {
            SessionChange::Turn(r) => SessionChange::Turn(SessionTurn {
                digests: Vec::new(),
                capped: true,
                ..r
            }),
            SessionChange::Observed(r) => SessionChange::Observed(SessionObserved {
                trusted: Vec::new(),
                untrusted: Vec::new(),
                capped: true,
                ..r
            }),
            SessionChange::Endorsed(r) => SessionChange::Endorsed(SessionEndorsed {
                digests: Vec::new(),
                capped: true,
                ..r
            }),
            call @ SessionChange::Call(_) => call,
        }
    }

    /// Its journal record.
    pub fn into_record(self) -> crate::record::Record {
        use crate::record::Record;
        match self {
            SessionChange::Turn(r) => Record::SessionTurn(r),
            SessionChange::Observed(r) => Record::SessionObserved(r),
            SessionChange::Endorsed(r) => Record::SessionEndorsed(r),
            SessionChange::Call(r) => Record::SessionCall(r),
        }
    }

    /// The change a session record makes, if it is one.
    pub fn from_record(record: &crate::record::Record) -> Option<SessionChange> {
        use crate::record::Record;
        Some(match record {
            Record::SessionTurn(r) => SessionChange::Turn(r.clone()),
            Record::SessionObserved(r) => SessionChange::Observed(r.clone()),
            Record::SessionEndorsed(r) => SessionChange::Endorsed(r.clone()),
            Record::SessionCall(r) => SessionChange::Call(r.clone()),
            _ => return None,
        })
    }
}

impl Session {
    /// Where `digest` occurs ([`source`] bits; 0 nowhere).
    pub fn sources(&self, digest: &str) -> u8 {
        self.index.get(digest).map_or(0, |e| e.s)
    }

    /// Whether `digest` occurs in an output of `tool`.
    pub fn in_output_of(&self, digest: &str, tool: &str) -> bool {
        let Some(entry) = self.index.get(digest) else {
            return false;
        };
        entry.t.iter().any(|i| {
            self.tools
                .get(*i as usize)
                .is_some_and(|t| t.as_str() == tool)
        })
    }

    /// Whether untrusted content reached the agent.
    pub fn tainted(&self) -> bool {
        self.tainted
    }

    /// Calls of `tool` allowed in this session.
    pub fn calls(&self, tool: &str) -> u64 {
        self.calls.get(tool).copied().unwrap_or(0)
    }

    /// Digests held.
    pub fn digests(&self) -> usize {
        self.index.len()
    }

    /// User turns, observed outputs and endorsements recorded.
    pub fn counts(&self) -> (u64, u64, u64) {
        (self.turns, self.observations, self.endorsements)
    }

    /// Its counts and taint flag.
    pub fn summary(&self) -> SessionSummary {
        SessionSummary {
            tainted: self.tainted,
            turns: self.turns,
            observations: self.observations,
            endorsed: self.endorsements,
            calls: self.calls.iter().map(|(t, n)| (t.clone(), *n)).collect(),
        }
    }

    /// Its answers to `query`.
    pub fn answer(&self, query: &SessionQuery) -> SessionAnswers {
        let mut out = SessionAnswers::empty(query);
        for d in &query.digests {
            out.sources.insert(d.clone(), self.sources(d));
            let held: Vec<String> = query
                .tools
                .iter()
                .filter(|t| self.in_output_of(d, t))
                .cloned()
                .collect();
            out.outputs.insert(d.clone(), held);
        }
        for t in &query.calls {
            out.calls.insert(t.clone(), self.calls(t));
        }
        out.tainted = self.tainted;
        out
    }

    /// Whether it is a tombstone.
    pub fn is_gone(&self) -> bool {
        self.gone_at.is_some()
    }

    /// Brings the session to `now`: an idle live session becomes a
    /// tombstone (from the moment it went idle, so that when the store
    /// notices does not matter); a tombstone one TTL old is forgotten (a
    /// fresh session).
    pub fn age(&mut self, now: u64, limits: SessionLimits) {
        if let Some(idle) = self.idle_since(limits).filter(|t| *t <= now) {
            self.tombstone(idle);
        }
        if self
            .gone_at
            .is_some_and(|g| g.saturating_add(limits.ttl_ms) <= now)
        {
            *self = Session::default();
        }
    }

    /// When a live session that saw something is evicted if nothing else comes.
    fn idle_since(&self, limits: SessionLimits) -> Option<u64> {
        let seen = self.last_seen > 0 || self.turns + self.observations + self.endorsements > 0;
        let live_and_seen = self.gone_at.is_none() && (seen || !self.calls.is_empty());
        live_and_seen.then(|| self.last_seen.saturating_add(limits.ttl_ms))
    }

    /// The session as a decision at `now` reads it (what [`Session::age`]
    /// would make of it, without changing it).
    pub fn read_at(this: &Arc<Session>, now: u64, limits: SessionLimits) -> SessionRead {
        let seen = this.idle_since(limits).map(|_| this.last_seen);
        match Standing::at(seen, this.gone_at, now, limits) {
            Standing::Forgotten => SessionRead::Live(Arc::new(Session::default())),
            Standing::Gone => SessionRead::Gone,
            Standing::Live => SessionRead::Live(Arc::clone(this)),
        }
    }

    /// Whether it can be dropped from the store at `now`: its tombstone (or
    /// the one it would become) is one TTL old.
    pub fn expired(&self, now: u64, limits: SessionLimits) -> bool {
        let gone = self.gone_at.or_else(|| self.idle_since(limits));
        gone.is_some_and(|g| g.saturating_add(limits.ttl_ms) <= now)
    }

    fn tombstone(&mut self, at: u64) {
        *self = Session {
            tainted: true,
            gone_at: Some(at),
            ..Session::default()
        };
    }

    /// Applies a change at its time (after [`Session::age`]).
    pub fn apply(&mut self, change: &SessionChange, limits: SessionLimits) -> SessionWrite {
        let now = change.at();
        self.age(now, limits);
        if self.is_gone() {
            return SessionWrite::Gone;
        }
        self.last_seen = self.last_seen.max(now);
        let capped = match change {
            SessionChange::Turn(t) => {
                self.turns += 1;
                self.add(&t.digests, source::USER, None);
                t.capped
            }
            SessionChange::Observed(o) => {
                self.observations += 1;
                self.tainted |= o.taints;
                let tool = Some(o.tool.as_str());
                self.add(&o.trusted, source::TRUSTED_OUTPUT, tool);
                self.add(&o.untrusted, source::UNTRUSTED_OUTPUT, tool);
                o.capped
            }
            SessionChange::Endorsed(e) => {
                self.endorsements += 1;
                self.add(&e.digests, source::ENDORSED, None);
                e.capped
            }
            SessionChange::Call(c) => {
                *self.calls.entry(c.tool.clone()).or_default() += 1;
                false
            }
        };
        if capped || self.index.len() > limits.max_digests {
            self.tombstone(now);
            return SessionWrite::Capped;
        }
        SessionWrite::Recorded
    }

    fn add(&mut self, digests: &[String], s: u8, tool: Option<&str>) {
        let tool = tool.map(|t| self.tool_index(t));
        for d in digests {
            let entry = self.index.entry(d.clone()).or_default();
            entry.s |= s;
            if let Some(t) = tool.filter(|t| !entry.t.contains(t)) {
                entry.t.push(t);
            }
        }
    }

    fn tool_index(&mut self, tool: &str) -> u32 {
        if let Some(i) = self.tools.iter().position(|t| t == tool) {
            return u32::try_from(i).unwrap_or(u32::MAX);
        }
        self.tools.push(tool.to_string());
        u32::try_from(self.tools.len() - 1).unwrap_or(u32::MAX)
    }
}
