//! The session as the engine sees it: [`SessionView`], a borrowed lookup the
//! runtime implements over its store, and [`MemorySession`], an in-memory one
//! for tests, `policyc explain --session` and the runtime's memory store.

use super::{text_keys, Key, PathStep};
use rustc_hash::FxHashMap as HashMap;
use serde_json::Value as Json;
use toolgate_check::ir;

/// Where a value occurs in a session, as a small set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Sources(u8);

impl Sources {
    /// Nowhere.
    pub const NONE: Sources = Sources(0);
    /// A user turn.
    pub const USER: Sources = Sources(1);
    /// A trusted position of an observed output.
    pub const TRUSTED_OUTPUT: Sources = Sources(2);
    /// An untrusted position of an observed output.
    pub const UNTRUSTED_OUTPUT: Sources = Sources(4);
    /// A value endorsed by a granted approval.
    pub const ENDORSED: Sources = Sources(8);
    /// What `from trusted` accepts from the session (context and constants
    /// are the engine's own).
    pub const TRUSTED: Sources = Sources(1 | 2 | 8);

    /// Both sets.
    pub fn with(self, other: Sources) -> Sources {
        Sources(self.0 | other.0)
    }

    /// Whether any of `other` is in this set.
    pub fn any_of(self, other: Sources) -> bool {
        self.0 & other.0 != 0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// Why a session cannot answer: the condition is an evaluation error (a
/// deny applies, a grant does not).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// The session was evicted or went over its cap (a tombstone remains).
    #[error("the session is no longer held")]
    Gone,
    /// The store could not be read.
    #[error("the session store cannot answer")]
    Unavailable,
}

/// Where a value was seen, for `explain` and the audit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Witness {
    /// The user's turn (1-based).
    UserTurn(usize),
    /// An observed output.
    Output {
        /// The call whose result it was.
        call: String,
        /// Its tool.
        tool: String,
        /// The field, as an output path (`[].email`; empty for the whole output).
        path: String,
        /// The position's label.
        trust: ir::Trust,
    },
    /// Endorsed by the approval of a call.
    Endorsed {
        /// The approved call.
        call: String,
    },
}

impl std::fmt::Display for Witness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Witness::UserTurn(n) => write!(f, "user turn {n}"),
            Witness::Output {
                call,
                tool,
                path,
                trust,
            } => {
                write!(f, "{} output of call {call} (`{tool}`)", trust.as_str())?;
                if !path.is_empty() {
                    write!(f, " field `{path}`")?;
                }
                Ok(())
            }
            Witness::Endorsed { call } => write!(f, "endorsed by the approval of call {call}"),
        }
    }
}

/// A session's answers, borrowed by a [`crate::Request`]. The runtime
/// implements it over its store; the engine passes it [`Key`]s (normalised
/// text, in memory for the call only), so a store may index keyed digests of
/// [`Key::as_str`] and never raw text.
pub trait SessionView: std::fmt::Debug + Sync {
    /// Where `key` occurs: user turns, trusted or untrusted output positions,
    /// endorsements.
    fn sources(&self, key: &Key) -> Result<Sources, SessionError>;
    /// Whether `key` occurs in any output of `tool`, whatever its labels.
    fn in_output_of(&self, key: &Key, tool: &str) -> Result<bool, SessionError>;
    /// Whether untrusted content reached the agent.
    fn tainted(&self) -> Result<bool, SessionError>;
    /// Calls of `tool` allowed earlier in the session.
    fn calls(&self, tool: &str) -> Result<u64, SessionError>;
    /// Where `key` was seen (for `explain`; a store of digests may say less).
    fn witnesses(&self, _key: &Key) -> Vec<Witness> {
        Vec::new()
    }
}

/// What a session knows of one key.
#[derive(Clone, Debug, Default)]
struct Entry {
    sources: Sources,
    tools: Vec<String>,
    /// The first few places it was seen.
    witnesses: Vec<Witness>,
}

/// At most this many witnesses are kept per key.
const WITNESSES: usize = 4;

/// An in-memory session: observes turns, outputs (with the tool's labels),
/// endorsements and allowed calls, and answers the lookups.
#[derive(Clone, Debug, Default)]
pub struct MemorySession {
    index: HashMap<Key, Entry>,
    turns: usize,
    tainted: bool,
    calls: HashMap<String, u64>,
}

impl MemorySession {
    /// An empty session: no turns, not tainted, no calls.
    pub fn new() -> Self {
        MemorySession::default()
    }

    /// Records a user turn.
    pub fn user_turn(&mut self, text: &str) {
        self.turns += 1;
        let witness = Witness::UserTurn(self.turns);
        text_keys(text, &mut |k| self.note(k, Sources::USER, None, &witness));
    }

    /// Records the output of call `call` of `tool`, each position labelled by
    /// the tool's output labels (the most specific path wins; a position no
    /// label covers takes the tool's label). An untrusted position with a
    /// value (a string with a non-space character, a number, a boolean)
    /// taints the session.
    pub fn observe(&mut self, call: &str, tool: &ir::Tool, output: &Json) {
        let mut path = Vec::new();
        super::walk(output, &mut path, &mut |path, leaf| {
            let trust = label_at(tool, path);
            self.tainted |= trust == ir::Trust::Untrusted && has_value(leaf);
            if !matches!(leaf, Json::String(_) | Json::Number(_)) {
                return;
            }
            let sources = match trust {
                ir::Trust::Trusted => Sources::TRUSTED_OUTPUT,
                ir::Trust::Untrusted => Sources::UNTRUSTED_OUTPUT,
            };
            let witness = Witness::Output {
                call: call.to_string(),
                tool: tool.name.clone(),
                path: path_text(path),
                trust,
            };
            leaf_keys(leaf, &mut |key| {
                self.note(key, sources, Some(&tool.name), &witness)
            });
        });
    }

    /// Records endorsed values (see [`super::endorsed_keys`]) of approved call `call`.
    pub fn endorse(&mut self, call: &str, keys: impl IntoIterator<Item = Key>) {
        let witness = Witness::Endorsed {
            call: call.to_string(),
        };
        for key in keys {
            self.note(&key, Sources::ENDORSED, None, &witness);
        }
    }

    /// Counts a call of `tool` that was allowed to run.
    pub fn allowed_call(&mut self, tool: &str) {
        *self.calls.entry(tool.to_string()).or_default() += 1;
    }

    /// Taints the session (e.g. over its cap).
    pub fn taint(&mut self) {
        self.tainted = true;
    }

    fn note(&mut self, key: &Key, sources: Sources, tool: Option<&str>, witness: &Witness) {
        if !self.index.contains_key(key) {
            self.index.insert(key.clone(), Entry::default());
        }
        let Some(entry) = self.index.get_mut(key) else {
            return;
        };
        entry.sources = entry.sources.with(sources);
        if let Some(t) = tool.filter(|t| !entry.tools.iter().any(|x| x == t)) {
            entry.tools.push(t.to_string());
        }
        if entry.witnesses.len() < WITNESSES && !entry.witnesses.contains(witness) {
            entry.witnesses.push(witness.clone());
        }
    }
}

impl SessionView for MemorySession {
    fn sources(&self, key: &Key) -> Result<Sources, SessionError> {
        Ok(self.index.get(key).map_or(Sources::NONE, |e| e.sources))
    }

    fn in_output_of(&self, key: &Key, tool: &str) -> Result<bool, SessionError> {
        Ok(self
            .index
            .get(key)
            .is_some_and(|e| e.tools.iter().any(|t| t == tool)))
    }

    fn tainted(&self) -> Result<bool, SessionError> {
        Ok(self.tainted)
    }

    fn calls(&self, tool: &str) -> Result<u64, SessionError> {
        Ok(self.calls.get(tool).copied().unwrap_or(0))
    }

    fn witnesses(&self, key: &Key) -> Vec<Witness> {
        self.index
            .get(key)
            .map(|e| e.witnesses.clone())
            .unwrap_or_default()
    }
}

/// The keys of one JSON leaf: a string's ([`text_keys`]), a number's value.
pub fn leaf_keys(leaf: &Json, f: &mut dyn FnMut(&Key)) {
    match leaf {
        Json::String(s) => text_keys(s, f),
        Json::Number(n) => {
            if let Some(v) = n.as_f64().filter(|v| v.is_finite()) {
                f(&Key::number(v));
            }
        }
        _ => {}
    }
}

/// A leaf that carries content: a string with a non-space character, a
/// number, a boolean (at an untrusted position, it taints: precise point 6).
pub fn has_value(leaf: &Json) -> bool {
    match leaf {
        Json::String(s) => !s.trim().is_empty(),
        Json::Number(_) | Json::Bool(_) => true,
        _ => false,
    }
}

/// Whether every position of a tool's output is labelled trusted (then an
/// output reported without its value does not taint).
pub fn all_trusted(tool: &ir::Tool) -> bool {
    tool.trust == ir::Trust::Trusted && tool.outputs.iter().all(|l| l.trust == ir::Trust::Trusted)
}

/// The label of the output position `path`: the longest output label whose
/// path is a prefix of it, else the tool's label.
pub fn label_at(tool: &ir::Tool, path: &[PathStep<'_>]) -> ir::Trust {
    tool.outputs
        .iter()
        .filter(|l| covers(&l.path, path))
        .max_by_key(|l| l.path.len())
        .map_or(tool.trust, |l| l.trust)
}

fn covers(label: &[ir::OutputSeg], path: &[PathStep<'_>]) -> bool {
    label.len() <= path.len()
        && label.iter().zip(path).all(|(l, p)| match (l, p) {
            (ir::OutputSeg::Field(f), PathStep::Field(g)) => f == g,
            (ir::OutputSeg::Each, PathStep::Each) => true,
            _ => false,
        })
}

/// A position as an output path: `[].email`, `messages[].body`.
fn path_text(path: &[PathStep<'_>]) -> String {
    let segs: Vec<ir::OutputSeg> = path
        .iter()
        .map(|p| match p {
            PathStep::Field(f) => ir::OutputSeg::Field((*f).to_string()),
            PathStep::Each => ir::OutputSeg::Each,
        })
        .collect();
    toolgate_syntax::ast::output_path_text(&segs)
}
