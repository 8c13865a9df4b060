//! Gateway state behind a trait: budget windows, pending approvals, issued
//! tokens, the kill switch. Every operation is atomic on its own, so a shared
//! store (one process's `MemoryStore` today; Redis later) can serve several
//! gateways. The journal records every change, so a `MemoryStore` is rebuilt
//! from it on restart (`Gateway::open`).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;

/// What an approval must be bound to: the exact request.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Binding {
    /// The agent.
    pub agent: String,
    /// The tool.
    pub tool: String,
    /// SHA-256 of the canonical JSON of the arguments.
    pub args_digest: String,
    /// The tenant.
    pub tenant: String,
    /// The env.
    pub env: String,
    /// SHA-256 of the canonical JSON of the context's other fields.
    pub context_digest: String,
}

impl Binding {
    /// The binding as a journal records it.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "agent": self.agent, "tool": self.tool, "args_digest": self.args_digest,
            "tenant": self.tenant, "env": self.env, "context_digest": self.context_digest,
        })
    }

    /// A binding from its journal form.
    pub fn from_json(v: &serde_json::Value) -> Option<Binding> {
        let s = |k: &str| v[k].as_str().map(String::from);
        Some(Binding {
            agent: s("agent")?,
            tool: s("tool")?,
            args_digest: s("args_digest")?,
            tenant: s("tenant")?,
            env: s("env")?,
            context_digest: s("context_digest")?,
        })
    }
}

/// A call waiting for approval.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    /// The approval id (the call id).
    pub id: String,
    /// What it approves.
    pub binding: Binding,
    /// The group approvers must belong to, if any.
    pub group: Option<String>,
    /// Distinct approvers needed.
    pub count: u32,
    /// When the request for approval expires (ms), if it does.
    pub expires_at: Option<u64>,
    /// Who approved so far (name, reason).
    pub approvals: Vec<(String, String)>,
    /// Rejected (by whom, why).
    pub rejected: Option<(String, String)>,
}

/// The gateway's state operations.
pub trait Store: Send + Sync {
    /// Takes one unit of the budget `key` if fewer than `limit` were taken in
    /// the `window_ms` before `now`; returns whether it did.
    fn consume(&self, key: &str, limit: u64, window_ms: u64, now: u64) -> bool;
    /// Records a pending approval; `false` (and no change) if one with this id exists.
    fn put_pending(&self, p: Pending) -> bool;
    /// Runs `f` on a pending approval atomically; `None` if there is none.
    fn with_pending(&self, id: &str, f: &mut dyn FnMut(&mut Pending)) -> Option<Pending>;
    /// Issues a single-use token, known by its SHA-256 (the token itself is never stored).
    fn issue_token(&self, digest: &str, binding: Binding, expires_at: u64);
    /// Uses a token (by digest) for `binding` at `now`: it must exist, match, be unused and unexpired.
    fn use_token(&self, digest: &str, binding: &Binding, now: u64) -> Result<(), &'static str>;
    /// Marks a token used, whatever it is bound to (rebuilding from the journal).
    fn spend_token(&self, digest: &str);
    /// Engages or releases the kill switch, globally (`None`) or for a tenant.
    fn set_kill_switch(&self, tenant: Option<&str>, engaged: bool);
    /// Whether writes are stopped for this tenant.
    fn killed(&self, tenant: &str) -> bool;
}

#[derive(Default)]
struct State {
    windows: HashMap<String, VecDeque<u64>>,
    pending: HashMap<String, Pending>,
    tokens: HashMap<String, (Binding, u64, bool)>,
    kill_all: bool,
    kill_tenants: HashSet<String>,
}

/// The state in this process's memory.
#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

impl MemoryStore {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave a half-made change
        // (every change below is a single insert or update), so recover it.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Store for MemoryStore {
    fn consume(&self, key: &str, limit: u64, window_ms: u64, now: u64) -> bool {
        let mut s = self.state();
        let window = s.windows.entry(key.to_string()).or_default();
        while window
            .front()
            .is_some_and(|t| t.saturating_add(window_ms) <= now)
        {
            window.pop_front();
        }
        if (window.len() as u64) < limit {
            window.push_back(now);
            true
        } else {
            false
        }
    }

    fn put_pending(&self, p: Pending) -> bool {
        let mut s = self.state();
        if s.pending.contains_key(&p.id) {
            return false;
        }
        s.pending.insert(p.id.clone(), p);
        true
    }

    fn with_pending(&self, id: &str, f: &mut dyn FnMut(&mut Pending)) -> Option<Pending> {
        let mut s = self.state();
        let p = s.pending.get_mut(id)?;
        f(p);
        Some(p.clone())
    }

    fn issue_token(&self, token: &str, binding: Binding, expires_at: u64) {
        self.state()
            .tokens
            .insert(token.to_string(), (binding, expires_at, false));
    }

    fn use_token(&self, token: &str, binding: &Binding, now: u64) -> Result<(), &'static str> {
        let mut s = self.state();
        let Some((bound, expires_at, used)) = s.tokens.get_mut(token) else {
            return Err("unknown token");
        };
        if *used {
            return Err("token already used");
        }
        if now >= *expires_at {
            return Err("token expired");
        }
        if bound != binding {
            return Err("token is bound to another request");
        }
        *used = true;
        Ok(())
    }

    fn spend_token(&self, digest: &str) {
        if let Some(t) = self.state().tokens.get_mut(digest) {
            t.2 = true;
        }
    }

    fn set_kill_switch(&self, tenant: Option<&str>, engaged: bool) {
        let mut s = self.state();
        match (tenant, engaged) {
            (None, e) => s.kill_all = e,
            (Some(t), true) => {
                s.kill_tenants.insert(t.to_string());
            }
            (Some(t), false) => {
                s.kill_tenants.remove(t);
            }
        }
    }

    fn killed(&self, tenant: &str) -> bool {
        let s = self.state();
        s.kill_all || s.kill_tenants.contains(tenant)
    }
}

/// Rebuilds a store from a journal's records (as `Journal::open` returns
/// them), so that a restarted gateway has the same budget windows, pending
/// approvals, tokens and kill switch as before: the journal is the only store
/// of record. Bindings come from the approval and token records themselves;
/// records this function does not know are skipped.
pub fn rebuild(store: &dyn Store, lines: &[String]) {
    for line in lines {
        let Ok(r) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let b = &r["body"];
        let text = |k: &str| b[k].as_str().unwrap_or_default().to_string();
        let call = text("call");
        match r["kind"].as_str().unwrap_or_default() {
            "decision" => {
                if let (Some(key), Some(at)) = (b["budget_key"].as_str(), b["at"].as_u64()) {
                    // Re-enter the unit into its window; the window is pruned on the next use.
                    store.consume(key, u64::MAX, u64::MAX / 2, at);
                }
            }
            "approval_requested" => {
                if let Some(binding) = Binding::from_json(&b["binding"]) {
                    store.put_pending(Pending {
                        id: call,
                        binding,
                        group: b["group"].as_str().map(String::from),
                        count: b["count"]
                            .as_u64()
                            .and_then(|c| u32::try_from(c).ok())
                            .unwrap_or(1),
                        expires_at: b["expires_at"].as_u64(),
                        approvals: Vec::new(),
                        rejected: None,
                    });
                }
            }
            "approval_granted" => {
                store.with_pending(&call, &mut |p| {
                    p.approvals.push((text("approver"), text("reason")))
                });
            }
            "approval_rejected" => {
                store.with_pending(&call, &mut |p| {
                    p.rejected = Some((text("approver"), text("reason")))
                });
            }
            "token_issued" => {
                if let (Some(binding), Some(exp)) =
                    (Binding::from_json(&b["binding"]), b["expires_at"].as_u64())
                {
                    store.issue_token(&text("token_digest"), binding, exp);
                }
            }
            "token_used" => store.spend_token(&text("token_digest")),
            "kill_switch" => {
                store.set_kill_switch(b["tenant"].as_str(), b["engaged"].as_bool().unwrap_or(true));
            }
            _ => {}
        }
    }
}
