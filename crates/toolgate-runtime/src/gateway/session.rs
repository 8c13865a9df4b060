//! Sessions at the gateway: a user turn ([`Gateway::user_turn`]), a tool's
//! output observed when its result is reported (`complete`, precise point
//! 5), each allowed call counted (precise point 4), and the session handed
//! to the engine as a [`SessionView`] over the store's keyed digests.
//!
//! Every key ([`toolgate_engine::provenance::Key`]: a normalised value) is
//! digested with the gateway's [`DigestKey`] before it reaches the store or
//! the journal; the engine's lookups are digested the same way. A change is
//! one store operation, then its record, under `commit` (the store's answer
//! decides what is journaled: a change that took the session over its cap
//! is journaled capped, without its digests).

use super::{Call, CompiledPolicy, DigestKey, Gateway, GatewayError};
use crate::record::{SessionCall, SessionEndorsed, SessionObserved, SessionTurn};
use crate::refusal::Refusal;
use crate::store::session::{source, MAX_SESSION_CHARS};
use crate::store::{SessionAnswers, SessionChange, SessionKey, SessionLookup, SessionQuery};
use crate::store::{SessionSummary, SessionWrite};
use serde_json::Value as Json;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use toolgate_check::ir;
use toolgate_engine::provenance::{self, Key, SessionError, SessionView, Sources};
use toolgate_engine::{Decision, Request};

/// The largest user turn recorded (bytes of its text).
pub const MAX_TURN_BYTES: usize = 64 * 1024;

/// The largest output observed (bytes of its JSON); a larger one taints the
/// session and takes it over its cap (fail closed: it cannot be indexed).
pub const MAX_OBSERVED_BYTES: u64 = 1024 * 1024;

/// The most digests one change may bring; more take the session over its cap.
pub const MAX_CHANGE_DIGESTS: usize = 50_000;

/// Why a session change was refused before anything was recorded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, miette::Diagnostic)]
pub enum SessionInputError {
    /// An empty session id.
    #[error("the session id is empty")]
    #[diagnostic(code(toolgate::gateway::session_id))]
    EmptyId,
    /// A session id over [`MAX_SESSION_CHARS`].
    #[error("the session id is {chars} characters, over the limit of {MAX_SESSION_CHARS}")]
    #[diagnostic(code(toolgate::gateway::session_id))]
    IdTooLong {
        /// Its length in characters.
        chars: usize,
    },
    /// A user turn over [`MAX_TURN_BYTES`].
    #[error("the turn is {bytes} bytes, over the limit of {MAX_TURN_BYTES} bytes")]
    #[diagnostic(code(toolgate::gateway::turn_too_long))]
    TurnTooLong {
        /// Its length in bytes.
        bytes: usize,
    },
}

/// Whether a session id is within the limits.
pub fn check_session_id(id: &str) -> Result<(), SessionInputError> {
    let chars = id.chars().count();
    if id.trim().is_empty() {
        return Err(SessionInputError::EmptyId);
    }
    if chars > MAX_SESSION_CHARS {
        return Err(SessionInputError::IdTooLong { chars });
    }
    Ok(())
}

impl DigestKey {
    /// The keyed digest a session indexes `key` under (128 bits, in hex).
    pub fn session_digest(&self, key: &Key) -> String {
        self.session_text_digest(key.as_str())
    }
}

/// A session as the engine reads it for one decision: the store's answers
/// to what the decision asks ([`Engine::session_asks`](toolgate_engine::Engine::session_asks)),
/// looked up by keyed digests. A store that could not answer, a tombstone,
/// a lookup that was not asked (it cannot happen: the asks are a superset):
/// an error (the condition fails closed).
#[derive(Debug)]
pub(super) struct SessionLens<'a> {
    read: Result<SessionLookup, SessionError>,
    key: &'a DigestKey,
}

impl SessionLens<'_> {
    fn live(&self) -> Result<&SessionAnswers, SessionError> {
        match &self.read {
            Ok(SessionLookup::Live(s)) => Ok(s),
            Ok(SessionLookup::Gone) => Err(SessionError::Gone),
            Err(e) => Err(e.clone()),
        }
    }
}

impl SessionView for SessionLens<'_> {
    fn sources(&self, key: &Key) -> Result<Sources, SessionError> {
        let bits = self
            .live()?
            .sources(&self.key.session_digest(key))
            .ok_or(SessionError::Unavailable)?;
        let mut out = Sources::NONE;
        for (bit, s) in [
            (source::USER, Sources::USER),
            (source::TRUSTED_OUTPUT, Sources::TRUSTED_OUTPUT),
            (source::UNTRUSTED_OUTPUT, Sources::UNTRUSTED_OUTPUT),
            (source::ENDORSED, Sources::ENDORSED),
        ] {
            if bits & bit != 0 {
                out = out.with(s);
            }
        }
        Ok(out)
    }

    fn in_output_of(&self, key: &Key, tool: &str) -> Result<bool, SessionError> {
        self.live()?
            .in_output_of(&self.key.session_digest(key), tool)
            .ok_or(SessionError::Unavailable)
    }

    fn tainted(&self) -> Result<bool, SessionError> {
        Ok(self.live()?.tainted)
    }

    fn calls(&self, tool: &str) -> Result<u64, SessionError> {
        self.live()?.calls(tool).ok_or(SessionError::Unavailable)
    }
}

/// The session as the engine's walk over `from` operands sees it: only the
/// call counts already read (`session.calls(T)` used as a value), noting
/// any it lacks; every other lookup is an error (no operand makes one).
#[derive(Debug, Default)]
struct CountsProbe {
    known: std::collections::BTreeMap<String, u64>,
    missed: AtomicBool,
}

impl SessionView for CountsProbe {
    fn sources(&self, _: &Key) -> Result<Sources, SessionError> {
        Err(SessionError::Unavailable)
    }

    fn in_output_of(&self, _: &Key, _: &str) -> Result<bool, SessionError> {
        Err(SessionError::Unavailable)
    }

    fn tainted(&self) -> Result<bool, SessionError> {
        Err(SessionError::Unavailable)
    }

    fn calls(&self, tool: &str) -> Result<u64, SessionError> {
        let known = self.known.get(tool).copied();
        if known.is_none() {
            self.missed.store(true, Ordering::Relaxed);
        }
        known.ok_or(SessionError::Unavailable)
    }
}

impl Gateway {
    /// Records what the user said in `session` of `tenant` (keyed digests of
    /// its keys and its length; never the text). A session never seen
    /// starts here; a tombstoned one records nothing ([`SessionWrite::Gone`]).
    pub async fn user_turn(
        &self,
        tenant: &str,
        session: &str,
        text: &str,
    ) -> Result<SessionWrite, GatewayError> {
        check_session_id(session)?;
        if text.len() > MAX_TURN_BYTES {
            let bytes = text.len();
            return Err(SessionInputError::TurnTooLong { bytes }.into());
        }
        let mut digests = BTreeSet::new();
        provenance::text_keys(text, &mut |k| {
            digests.insert(self.digest.session_digest(k));
        });
        let capped = digests.len() > MAX_CHANGE_DIGESTS;
        let turn = SessionTurn {
            key: SessionKey::new(tenant, session),
            chars: text.chars().count() as u64,
            digests: if capped {
                Vec::new()
            } else {
                digests.into_iter().collect()
            },
            capped,
            at: self.clock.now_ms(),
        };
        self.session_change(SessionChange::Turn(turn)).await
    }

    /// What may be shown of `session` of `tenant` now: its counts and taint
    /// flag, never a value (`None`: a tombstone, evicted or over its cap).
    /// Reads only: a session never seen is empty and is not started.
    pub async fn session_summary(
        &self,
        tenant: &str,
        session: &str,
    ) -> Result<Option<SessionSummary>, GatewayError> {
        check_session_id(session)?;
        let key = SessionKey::new(tenant, session);
        let now = self.clock.now_ms();
        let read = self.store.session_summary(&key, now).await;
        Ok(read.map_err(Refusal::from)?)
    }

    /// A pure decision on `call` (`/v1/decide`) against its session as the
    /// store holds it now: `decide` gets the live policy and the engine's
    /// request. Nothing is journaled, no budget is charged, the session is
    /// not changed (the call is not counted). A session id past the limits
    /// is refused; a store that cannot answer makes every provenance and
    /// session condition fail closed, as for a call; a call without a
    /// session has none (they are evaluation errors).
    pub async fn evaluate<T>(
        &self,
        call: &Call,
        decide: impl FnOnce(&CompiledPolicy, &Request<'_>) -> T,
    ) -> Result<T, GatewayError> {
        if let Some(id) = call.session.as_deref() {
            check_session_id(id)?;
        }
        let now = self.clock.now_ms();
        let policy = self.policy();
        let lens = self.session_lens(call, &policy, now).await;
        let req = super::request(call, now, lens.as_ref().map(|l| l as &dyn SessionView));
        Ok(decide(&policy, &req))
    }

    /// Applies a change in the store, then journals it as the store took it.
    async fn session_change(&self, change: SessionChange) -> Result<SessionWrite, GatewayError> {
        let _commit = self.commit.lock().await;
        self.session_change_committing(change).await
    }

    /// [`Gateway::session_change`] for a caller holding `commit`.
    async fn session_change_committing(
        &self,
        change: SessionChange,
    ) -> Result<SessionWrite, GatewayError> {
        let written = self
            .store
            .session_change(&change)
            .await
            .map_err(Refusal::from)?;
        let change = match written {
            SessionWrite::Capped => change.capped(),
            SessionWrite::Recorded | SessionWrite::Gone => change,
        };
        self.record(&change.into_record()).await?;
        Ok(written)
    }

    /// The session a decision on `call` by `policy` (and by the shadow
    /// policy, which decides with the same view) reads, if the call has one:
    /// what their cells may ask, read in one store lookup (a `from` whose
    /// operand reads `session.calls(T)` needs the counts first: a second
    /// one). A store that cannot answer gives a view whose every lookup
    /// fails closed.
    pub(super) async fn session_lens(
        &self,
        call: &Call,
        policy: &CompiledPolicy,
        now: u64,
    ) -> Option<SessionLens<'_>> {
        let id = call.session.as_deref()?;
        let key = SessionKey::new(&call.context.tenant, id);
        let shadow = self.shadow();
        let mut probe = CountsProbe::default();
        let mut read = Ok(SessionLookup::Live(SessionAnswers::default()));
        for _ in 0..2 {
            let Some(query) = self.session_query(call, now, policy, shadow.as_deref(), &probe)
            else {
                break;
            };
            read = self
                .store
                .session_lookup(&key, &query, now)
                .await
                .map_err(|_| SessionError::Unavailable);
            match &read {
                Ok(SessionLookup::Live(answers)) if *probe.missed.get_mut() => {
                    probe = CountsProbe {
                        known: answers.calls.clone(),
                        missed: AtomicBool::new(false),
                    };
                }
                _ => break,
            }
        }
        Some(SessionLens {
            read,
            key: &self.digest,
        })
    }

    /// What deciding `call` by `policy` and `shadow` may ask its session, as
    /// a store query of keyed digests (`None`: nothing, the store is not read).
    fn session_query(
        &self,
        call: &Call,
        now: u64,
        policy: &CompiledPolicy,
        shadow: Option<&CompiledPolicy>,
        probe: &CountsProbe,
    ) -> Option<SessionQuery> {
        let req = super::request(call, now, Some(probe as &dyn SessionView));
        let mut asks = policy.engine.session_asks(&req);
        if let Some(shadow) = shadow {
            let theirs = shadow.engine.session_asks(&req);
            asks.keys.extend(theirs.keys);
            asks.tools.extend(theirs.tools);
            asks.calls.extend(theirs.calls);
            asks.tainted |= theirs.tainted;
        }
        let digests: BTreeSet<String> = asks
            .keys
            .iter()
            .map(|k| self.digest.session_digest(k))
            .collect();
        (!asks.is_empty()).then(|| SessionQuery {
            digests: digests.into_iter().collect(),
            tools: asks.tools.into_iter().collect(),
            calls: asks.calls.into_iter().collect(),
        })
    }

    /// Counts an allowed call of a session (precise point 4). A store that
    /// cannot count refuses the call: a count it missed could let a later
    /// `session.calls(T)` condition grant.
    pub(super) async fn count_call(&self, call: &Call, now: u64) -> Result<(), GatewayError> {
        let Some(id) = call.session.as_deref() else {
            return Ok(());
        };
        let counted = SessionCall {
            key: SessionKey::new(&call.context.tenant, id),
            call: call.id.clone(),
            tool: call.tool.clone(),
            at: now,
        };
        self.session_change(SessionChange::Call(counted)).await?;
        Ok(())
    }

    /// The keyed digests of the values a held call's approval endorses
    /// (the rule's `endorse` paths in its arguments), for a call of a session.
    pub(super) fn endorsed_digests(&self, call: &Call, d: &Decision<'_>) -> Vec<String> {
        let Some(rule) = d
            .rule()
            .filter(|r| call.session.is_some() && !r.endorse.is_empty())
        else {
            return Vec::new();
        };
        let keys = provenance::endorsed_keys(&call.args, &rule.endorse);
        let digests: BTreeSet<String> =
            keys.iter().map(|k| self.digest.session_digest(k)).collect();
        digests.into_iter().collect()
    }

    /// Endorses, in its session, the values of the call `key` whose approval
    /// was just granted (precise point 11; the caller holds `commit`). A
    /// store that cannot is reported and leaves them unendorsed (that only
    /// restricts).
    pub(super) async fn endorse(&self, key: &crate::store::CallKey, now: u64) {
        let held = match self.store.pending(key).await {
            Ok(Some(p)) => p,
            Ok(None) => return,
            Err(e) => {
                eprintln!("toolgate: cannot endorse the values of `{}`: {e}", key.id);
                return;
            }
        };
        let Some(session) = held.session.filter(|_| !held.endorse.is_empty()) else {
            return;
        };
        let endorsed = SessionEndorsed {
            key: SessionKey::new(&key.tenant, &session),
            call: key.id.clone(),
            digests: held.endorse,
            capped: false,
            at: now,
        };
        let changed = self.session_change_committing(SessionChange::Endorsed(endorsed));
        if let Err(e) = changed.await {
            eprintln!("toolgate: cannot endorse the values of `{}`: {e}", key.id);
        }
    }

    /// Observes the output of call `call` of `tool` in `session` (precise
    /// points 5 and 6): each leaf's keys under the label the policy gives
    /// its position (a tool the policy no longer declares: untrusted). No
    /// output (the caller did not report it) taints unless every position
    /// of the tool's output is labelled trusted; an output too large to
    /// index takes the session over its cap.
    pub(super) async fn observe(
        &self,
        key: SessionKey,
        call: &str,
        tool: &str,
        output: Option<&Json>,
    ) -> Result<SessionWrite, GatewayError> {
        let policy = self.policy();
        let declared = policy.tool(tool);
        let bytes = output.map_or(0, super::digest::json_len);
        let mut observed = SessionObserved {
            key,
            call: call.to_string(),
            tool: tool.to_string(),
            bytes,
            trusted: Vec::new(),
            untrusted: Vec::new(),
            taints: true,
            capped: false,
            at: self.clock.now_ms(),
        };
        match output {
            None => observed.taints = !declared.is_some_and(provenance::all_trusted),
            Some(_) if bytes > MAX_OBSERVED_BYTES => observed.capped = true,
            Some(output) => {
                let digests = Digests::of(&self.digest, declared, output);
                if digests.trusted.len() + digests.untrusted.len() > MAX_CHANGE_DIGESTS {
                    observed.capped = true;
                } else {
                    observed.trusted = digests.trusted.into_iter().collect();
                    observed.untrusted = digests.untrusted.into_iter().collect();
                    observed.taints = digests.taints;
                }
            }
        }
        self.session_change(SessionChange::Observed(observed)).await
    }
}

/// An output's keyed digests by label, and whether it taints.
#[derive(Default)]
struct Digests {
    trusted: BTreeSet<String>,
    untrusted: BTreeSet<String>,
    taints: bool,
}

impl Digests {
    fn of(key: &DigestKey, tool: Option<&ir::Tool>, output: &Json) -> Digests {
        let mut out = Digests::default();
        let mut path = Vec::new();
        provenance::walk(output, &mut path, &mut |path, leaf| {
            let trust = tool.map_or(ir::Trust::Untrusted, |t| provenance::label_at(t, path));
            let untrusted = trust == ir::Trust::Untrusted;
            out.taints |= untrusted && provenance::has_value(leaf);
            let set = if untrusted {
                &mut out.untrusted
            } else {
                &mut out.trusted
            };
            provenance::leaf_keys(leaf, &mut |k| {
                set.insert(key.session_digest(k));
            });
        });
        out
    }
}
