//! The optional LRU decision cache.
//!
//! Only the evaluation of a cell's conditions is cached (the checks before it
//! are cheaper than a cache lookup). The key is the (agent, tool) and exactly
//! the request values the cell's conditions read: each `args` path, each
//! `ctx` field, `tenant` and `env` where read. The value is which deny applied,
//! or which grants held: nothing that depends on budgets is cached, since the
//! engine never sees them; a cell that reads `now` keys on the request's time.

use crate::eval::{self, Cond};
use crate::request::Request;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

/// A request value a condition reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Read {
    Arg(Box<[String]>),
    Ctx(String),
    Tenant,
    Env,
    /// `now`: the request's time.
    Now,
    /// The session (a cell reading it is never cached).
    Session,
}

/// What a cell's conditions came to for one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum CellOutcome {
    /// This deny applied.
    Denied(u32),
    /// These grants held, most permissive first; these floors applied (source order).
    Granted(Vec<u32>, Vec<u32>),
}

type Key = (u32, u32, String);

/// A shared LRU map from keys to outcomes.
#[derive(Debug)]
pub(crate) struct Cache {
    map: Mutex<lru::LruCache<Key, Arc<CellOutcome>>>,
}

impl Cache {
    pub(crate) fn new(capacity: NonZeroUsize) -> Self {
        Cache {
            map: Mutex::new(lru::LruCache::new(capacity)),
        }
    }

    /// The key for a request: the values read, as JSON text, separated by NUL
    /// (JSON text never contains a raw NUL); an absent value is empty text.
    pub(crate) fn key(agent: u32, tool: u32, reads: &[Read], req: &Request<'_>) -> Key {
        let mut text = String::new();
        for r in reads {
            let value = match r {
                Read::Arg(path) => eval::arg(req.args, path),
                Read::Ctx(f) => req.context.fields.get(f),
                Read::Tenant | Read::Env | Read::Now | Read::Session => None,
            };
            match (r, value) {
                (Read::Tenant, _) => push_json(
                    &mut text,
                    &serde_json::Value::String(req.context.tenant.clone()),
                ),
                (Read::Env, _) => push_json(
                    &mut text,
                    &serde_json::Value::String(req.context.env.clone()),
                ),
                (Read::Now, _) => {
                    if let Some(now) = req.now {
                        text.push_str(&now.to_string());
                    }
                }
                (_, Some(v)) => push_json(&mut text, v),
                (_, None) => {}
            }
            text.push('\0');
        }
        (agent, tool, text)
    }

    pub(crate) fn get(&self, key: &Key) -> Option<Arc<CellOutcome>> {
        self.map.lock().ok()?.get(key).cloned()
    }

    pub(crate) fn put(&self, key: Key, outcome: Arc<CellOutcome>) {
        if let Ok(mut map) = self.map.lock() {
            map.put(key, outcome);
        }
    }
}

fn push_json(text: &mut String, v: &serde_json::Value) {
    text.push_str(&v.to_string());
}

/// Every request value `cond` reads, added to `out` once each.
pub(crate) fn reads(cond: &Cond, out: &mut Vec<Read>) {
    let read = match cond {
        Cond::Arg(p) | Cond::HasArg(p) => Some(Read::Arg(p.clone())),
        Cond::Ctx(f) | Cond::HasCtx(f) => Some(Read::Ctx(f.clone())),
        Cond::Tenant => Some(Read::Tenant),
        Cond::Env => Some(Read::Env),
        Cond::Now => Some(Read::Now),
        Cond::Tainted | Cond::Calls(_) | Cond::From(..) => Some(Read::Session),
        _ => None,
    };
    if let Some(r) = read.filter(|r| !out.contains(r)) {
        out.push(r);
    }
    cond.each_operand(&mut |x| reads(x, out));
}
