//! A fake [`Decider`] for the relay's fast tests and its fuzz target (built
//! with `cfg(test)` or the `fake` feature, never in the proxy): it decides by
//! the tool's name (`allow…` allowed, `hold…` held for approval, anything
//! else refused) and records every call it was asked to decide and every
//! result it was told of, so a test can check that whatever the upstream
//! received was decided first.

use crate::decider::{Decided, Decider, Fut, Held, Refused};
use serde_json::Value as Json;
use std::collections::HashSet;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;
use toolgate_runtime::gateway::Call;
use toolgate_runtime::record::ToolNotice;
use toolgate_runtime::store::CallKey;

/// The token the fake gives for an approved call.
pub const TOKEN: &str = "fake-token";

/// What the fake has seen.
#[derive(Debug, Default)]
pub struct Seen {
    /// Every call decided: its tool, arguments and the decision.
    pub decided: Vec<(String, Json, Decided)>,
    /// Every reported result, by call id.
    pub completed: Vec<(String, Result<(), String>)>,
    /// Approvals given through the user (elicitation), by call id.
    pub user_approvals: Vec<String>,
    /// Refused callers.
    pub access_denied: Vec<String>,
    /// Tool notices.
    pub notices: Vec<ToolNotice>,
}

/// The fake gateway.
#[derive(Debug, Default)]
pub struct FakeDecider {
    seen: Mutex<Seen>,
    /// Held calls (by id) an approver approved.
    approved: Mutex<HashSet<String>>,
    /// Whether held calls wait for the client's user (`from "user"`).
    pub user_group: bool,
}

impl FakeDecider {
    /// What it has seen so far.
    pub fn seen(&self) -> MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An approver approves the held call `id`.
    pub fn approve(&self, id: &str) {
        let mut approved = self.approved.lock().unwrap_or_else(|p| p.into_inner());
        approved.insert(id.to_string());
    }

    fn is_approved(&self, id: &str) -> bool {
        let approved = self.approved.lock().unwrap_or_else(|p| p.into_inner());
        approved.contains(id)
    }

    fn decide(call: &Call) -> Decided {
        if call.tool.starts_with("allow") {
            Decided::Allowed(call.key())
        } else if call.tool.starts_with("hold") {
            Decided::Pending {
                id: call.id.clone(),
                rule: Some("fake.policy:1:1".into()),
                args_digest: "fake-digest".into(),
            }
        } else {
            Decided::Refused(Refused {
                reason: "the fake denies it".into(),
                rule: Some("fake.policy:2:1".into()),
                denial: true,
            })
        }
    }
}

impl Decider for FakeDecider {
    fn authorize<'a>(&'a self, call: &'a Call) -> Fut<'a, Decided> {
        let decided = Self::decide(call);
        let record = (call.tool.clone(), call.args.clone(), decided.clone());
        self.seen().decided.push(record);
        Box::pin(async move { decided })
    }

    fn complete<'a>(&'a self, key: &'a CallKey, outcome: Result<(), String>) -> Fut<'a, ()> {
        self.seen().completed.push((key.id.clone(), outcome));
        Box::pin(async {})
    }

    fn held<'a>(&'a self, key: &'a CallKey, _wait: Option<Duration>) -> Fut<'a, Held> {
        let held = match self.is_approved(&key.id) {
            true => Held::Approved(TOKEN.into()),
            false => Held::Pending,
        };
        Box::pin(async move { held })
    }

    fn execute<'a>(&'a self, call: &'a Call, token: &'a str) -> Fut<'a, Decided> {
        let decided = match token == TOKEN && self.is_approved(&call.id) {
            true => Decided::Allowed(call.key()),
            false => Decided::Refused(Refused {
                reason: "no such approval".into(),
                rule: None,
                denial: true,
            }),
        };
        let record = (call.tool.clone(), call.args.clone(), decided.clone());
        self.seen().decided.push(record);
        Box::pin(async move { decided })
    }

    fn notice(&self, notice: ToolNotice) -> Fut<'_, ()> {
        self.seen().notices.push(notice);
        Box::pin(async {})
    }

    fn access_denied<'a>(&'a self, caller: &'a str, _why: &'a str) -> Fut<'a, ()> {
        self.seen().access_denied.push(caller.to_string());
        Box::pin(async {})
    }

    fn user_approves<'a>(&'a self, _key: &'a CallKey) -> Fut<'a, bool> {
        let user = self.user_group;
        Box::pin(async move { user })
    }

    fn approve_as_user<'a>(
        &'a self,
        key: &'a CallKey,
        _args_digest: &'a str,
    ) -> Fut<'a, Option<String>> {
        self.seen().user_approvals.push(key.id.clone());
        self.approve(&key.id);
        Box::pin(async { Some(TOKEN.to_string()) })
    }
}

/// A relay over a [`FakeDecider`], with the two channels it writes to.
pub struct Session {
    /// The relay.
    pub relay: std::sync::Arc<crate::relay::Relay>,
    /// Its gateway.
    pub fake: std::sync::Arc<FakeDecider>,
    /// What reaches the upstream.
    pub upstream: tokio::sync::mpsc::UnboundedReceiver<crate::wire::Line>,
    /// What reaches the client.
    pub client: tokio::sync::mpsc::UnboundedReceiver<crate::wire::Line>,
}

/// A relay for agent `a`, tenant `t`, env `dev` over a fake gateway (call
/// it inside a tokio runtime). `user_group`: held calls wait for the user.
pub fn session(options: crate::relay::Options, user_group: bool) -> Session {
    let fake = std::sync::Arc::new(FakeDecider {
        user_group,
        ..FakeDecider::default()
    });
    let trusted = crate::config::Trusted {
        agent: "a".into(),
        tenant: "t".into(),
        env: "dev".into(),
        fields: serde_json::Map::new(),
    };
    let (to_upstream, upstream) = tokio::sync::mpsc::unbounded_channel();
    let (to_client, client) = tokio::sync::mpsc::unbounded_channel();
    let visibility = crate::tools::Visibility::default();
    let relay = crate::relay::Relay::new(
        fake.clone(),
        trusted,
        visibility,
        options,
        to_upstream,
        to_client,
    );
    Session {
        relay,
        fake,
        upstream,
        client,
    }
}

/// The relay's framing guarantee, checked on arbitrary input: `input` is
/// split on `\n` into messages, each going to the relay from the client
/// (first byte even) or from the upstream (odd), the rest its bytes. Every
/// line written either way must be one JSON object in printable ASCII, and
/// every `tools/call` that reached the upstream must have been decided
/// `Allowed` by the gateway with the same tool and arguments (at most once
/// per decision). The error says what broke.
pub fn check_framing(input: &[u8]) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let Session {
            relay,
            fake,
            mut upstream,
            mut client,
        } = session(crate::relay::Options::default(), false);
        for piece in input.split(|b| *b == b'\n') {
            match piece.split_first() {
                Some((selector, rest)) if selector % 2 == 0 => relay.from_client_text(rest),
                Some((_, rest)) => relay.from_upstream_text(rest).await,
                None => {}
            }
        }
        // The channels close once the relay and every task holding it are done.
        drop(relay);
        let (mut up, mut down) = (Vec::new(), Vec::new());
        while let Some(line) = upstream.recv().await {
            up.push(line);
        }
        while let Some(line) = client.recv().await {
            down.push(line);
        }
        let mut allowed: Vec<(String, Json)> = fake
            .seen()
            .decided
            .iter()
            .filter(|(_, _, d)| matches!(d, Decided::Allowed(_)))
            .map(|(tool, args, _)| (tool.clone(), args.clone()))
            .collect();
        for line in up.iter().chain(&down) {
            one_message(line)?;
        }
        for line in &up {
            let message = one_message(line)?;
            if message.get("method").and_then(Json::as_str) != Some("tools/call") {
                continue;
            }
            let params = message.get("params").cloned().unwrap_or(Json::Null);
            let tool = params.get("name").and_then(Json::as_str).unwrap_or("");
            let args = match params.get("arguments") {
                None | Some(Json::Null) => serde_json::json!({}),
                Some(a) => a.clone(),
            };
            let at = allowed.iter().position(|(t, a)| t == tool && *a == args);
            match at {
                Some(at) => drop(allowed.swap_remove(at)),
                None => {
                    return Err(format!(
                        "an undecided `tools/call` reached the upstream: {}",
                        line.as_str()
                    ))
                }
            }
        }
        Ok(())
    })
}

/// The one JSON object a line holds, or why it is not one.
fn one_message(line: &crate::wire::Line) -> Result<Json, String> {
    let text = line.as_str();
    if !text.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(format!("a line is not printable ASCII: {text:?}"));
    }
    match serde_json::from_str::<Json>(text) {
        Ok(m @ Json::Object(_)) => Ok(m),
        Ok(_) => Err(format!("a line is not a JSON object: {text}")),
        Err(e) => Err(format!("a line does not parse ({e}): {text}")),
    }
}
