//! What a decision may ask its session, found before deciding: a store
//! across the network (Redis) answers exactly these in one round trip
//! instead of loading the session. The walk visits every condition of the
//! request's cell, both sides of every `and`/`or` and every element of
//! every quantifier, and evaluates each `from` operand as the decision
//! would: a superset of the lookups any evaluation order makes. Operands do
//! not read the session, except `session.calls(T)` used as a value, which is
//! read through the request's [`SessionView`](crate::provenance::SessionView)
//! (a caller that cannot answer it yet learns so and walks again).

use super::Table;
use crate::eval::{Cond, FromSource, Scope};
use crate::provenance::decide::value_key;
use crate::provenance::Key;
use crate::request::Request;
use std::collections::BTreeSet;

/// What a decision on a request may ask of its session.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionAsks {
    /// Values whose sources may be looked up (`from user`, `from trusted`,
    /// `from tool T`).
    pub keys: BTreeSet<Key>,
    /// Tools named by `from tool T` (asked about each key).
    pub tools: BTreeSet<String>,
    /// Tools whose `session.calls(T)` may be read.
    pub calls: BTreeSet<String>,
    /// Whether `session.tainted` may be read.
    pub tainted: bool,
}

impl SessionAsks {
    /// Whether the decision asks its session nothing.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.calls.is_empty() && !self.tainted
    }
}

impl Table {
    /// What deciding `req` may ask its session (nothing for an unknown agent or tool).
    pub(crate) fn session_asks(&self, req: &Request<'_>) -> SessionAsks {
        let mut asks = SessionAsks::default();
        let (Some(&agent), Some(&tool)) = (self.agents.get(req.agent), self.tools.get(req.tool))
        else {
            return asks;
        };
        let cell = &self.cells[self.cell_of(agent, tool)];
        if !cell.session {
            return asks;
        }
        let scope = Scope { req, elem: None };
        for r in cell.denies.iter().chain(cell.grants.iter()) {
            if let Some(c) = &self.rules[*r as usize].cond {
                c.session_asks(&scope, &mut asks);
            }
        }
        asks
    }
}

impl Cond {
    fn session_asks<'a>(&'a self, env: &Scope<'a>, asks: &mut SessionAsks) {
        match self {
            Cond::From(x, source) => {
                x.session_asks(env, asks);
                match source {
                    FromSource::Ctx => return,
                    FromSource::Tool(t) => drop(asks.tools.insert(t.clone())),
                    FromSource::User | FromSource::Trusted(_) => {}
                }
                if let Ok(Some(key)) = x.value(env).and_then(|v| value_key(&v)) {
                    asks.keys.insert(key);
                }
            }
            Cond::Tainted => asks.tainted = true,
            Cond::Calls(t) => drop(asks.calls.insert(t.clone())),
            Cond::Quant(_, list, pred) => {
                list.session_asks(env, asks);
                let Ok(items) = list.value(env).and_then(|l| l.elements()) else {
                    return;
                };
                for item in items.into_iter().flatten() {
                    let inner = Scope {
                        req: env.req,
                        elem: Some(item),
                    };
                    pred.session_asks(&inner, asks);
                }
            }
            other => other.each_operand(&mut |x| x.session_asks(env, asks)),
        }
    }
}
