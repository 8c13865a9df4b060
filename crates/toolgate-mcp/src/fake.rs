//! A fake [`Decider`] for the relay's fast tests and its fuzz target (built
//! with `cfg(test)` or the `fake` feature, never in the proxy): it decides by
//! the tool's name (`allow…` allowed, `hold…` held for approval, anything
//! else refused) and records every call it was asked to decide and every
//! result it was told of, so a test can check that whatever the upstream
//! received was decided first. A wait for an approval waits (until
//! [`FakeDecider::approve`] or the wait's end) and is counted while it does
//! ([`FakeDecider::waiting`]); the journal can be stalled
//! ([`FakeDecider::stall_journal`]) to show what does not wait for it.

use crate::decider::{Decided, Decider, Fut, Held, Refused};
use crate::envelope::{Envelope, Outgoing};
use crate::relay::{Options, Relay};
use serde_json::Value as Json;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::mpsc::Receiver;
use tokio::sync::Notify;
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
    /// The session of every call decided (`authorize` and `execute`), in order.
    pub sessions: Vec<Option<String>>,
    /// Every reported result, by call id.
    pub completed: Vec<(String, Result<(), String>)>,
    /// The output reported with every result (what the gateway observes), by call id.
    pub outputs: Vec<(String, Option<Json>)>,
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
    /// Wakes the waits for an approval.
    approvals: Notify,
    /// Waits for an approval in progress.
    waiting: AtomicUsize,
    /// Results are not journaled until the journal is released.
    journal_stalled: AtomicBool,
    journal_released: Notify,
    /// Results are refused (the gateway could not record them).
    results_refused: AtomicBool,
}

/// Counts a wait for an approval while it lasts (however it ends: dropped too).
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(count: &'a AtomicUsize) -> Waiting<'a> {
        count.fetch_add(1, Ordering::SeqCst);
        Waiting(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl FakeDecider {
    /// What it has seen so far.
    pub fn seen(&self) -> MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An approver approves the held call `id` (a wait for it ends).
    pub fn approve(&self, id: &str) {
        let mut approved = self.approved.lock().unwrap_or_else(|p| p.into_inner());
        approved.insert(id.to_string());
        self.approvals.notify_waiters();
    }

    /// How many waits for an approval are in progress.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    /// Results reported from now on are journaled only once [`FakeDecider::release_journal`] is called.
    pub fn stall_journal(&self) {
        self.journal_stalled.store(true, Ordering::SeqCst);
    }

    /// Refuses every result from now on (a gateway that cannot record them).
    pub fn refuse_results(&self) {
        self.results_refused.store(true, Ordering::SeqCst);
    }

    /// Journals the results waiting for a stalled journal.
    pub fn release_journal(&self) {
        self.journal_stalled.store(false, Ordering::SeqCst);
        self.journal_released.notify_waiters();
    }

    /// Waits until `id` is approved.
    async fn approved(&self, id: &str) {
        loop {
            let approved = self.approvals.notified();
            if self.is_approved(id) {
                return;
            }
            approved.await;
        }
    }

    /// Waits while the journal is stalled.
    async fn journal_open(&self) {
        loop {
            let released = self.journal_released.notified();
            if !self.journal_stalled.load(Ordering::SeqCst) {
                return;
            }
            released.await;
        }
    }

    fn is_approved(&self, id: &str) -> bool {
        let approved = self.approved.lock().unwrap_or_else(|p| p.into_inner());
        approved.contains(id)
    }

    /// Records a call decided.
    fn saw(&self, call: &Call, decided: &Decided) {
        let mut seen = self.seen();
        let record = (call.tool.clone(), call.args.clone(), decided.clone());
        seen.decided.push(record);
        seen.sessions.push(call.session.clone());
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
        self.saw(call, &decided);
        Box::pin(async move { decided })
    }

    fn complete<'a>(
        &'a self,
        key: &'a CallKey,
        outcome: Result<(), String>,
        output: Option<&'a Json>,
    ) -> Fut<'a, bool> {
        Box::pin(async move {
            self.journal_open().await;
            let mut seen = self.seen();
            seen.completed.push((key.id.clone(), outcome));
            seen.outputs.push((key.id.clone(), output.cloned()));
            !self.results_refused.load(Ordering::SeqCst)
        })
    }

    fn held<'a>(&'a self, key: &'a CallKey, wait: Option<Duration>) -> Fut<'a, Held> {
        Box::pin(async move {
            if let Some(wait) = wait {
                let _waiting = Waiting::new(&self.waiting);
                let _ = tokio::time::timeout(wait, self.approved(&key.id)).await;
            }
            match self.is_approved(&key.id) {
                true => Held::Approved(TOKEN.into()),
                false => Held::Pending,
            }
        })
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
        self.saw(call, &decided);
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

/// A relay over a [`FakeDecider`], with the two queues it writes to.
pub struct Session {
    /// The relay.
    pub relay: Relay,
    /// Its gateway.
    pub fake: Arc<FakeDecider>,
    /// What reaches the upstream.
    pub upstream: Receiver<Outgoing>,
    /// What reaches the client.
    pub client: Receiver<Outgoing>,
}

/// The Toolgate session of the relays [`session`] starts.
pub const SESSION: &str = "s_fake";

/// A relay for agent `a`, tenant `t`, env `dev`, session [`SESSION`], over
/// a fake gateway (call it inside a tokio runtime). `user_group`: held
/// calls wait for the user.
pub fn session(options: Options, user_group: bool) -> Session {
    let fake = FakeDecider {
        user_group,
        ..FakeDecider::default()
    };
    let visibility = crate::tools::Visibility::default();
    session_over(options, Arc::new(fake), visibility, SESSION)
}

/// A relay over `fake` in Toolgate session `session_id`, with the agent's
/// tools as `visibility` says.
pub fn session_over(
    options: Options,
    fake: Arc<FakeDecider>,
    visibility: crate::tools::Visibility,
    session_id: &str,
) -> Session {
    let trusted = crate::config::Trusted {
        agent: "a".into(),
        tenant: "t".into(),
        env: "dev".into(),
        fields: serde_json::Map::new(),
        session: Some(session_id.to_string()),
    };
    let (to_upstream, upstream) = crate::relay::outbox();
    let (to_client, client) = crate::relay::outbox();
    let relay = Relay::new(
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

/// Lets every task run until all wait (on input, a timer or each other):
/// under a paused clock, a sleep ends only once nothing else can run.
pub async fn settle() {
    tokio::time::sleep(Duration::from_millis(1)).await;
}

/// Everything a queue gives until it closes.
async fn collect(mut queue: Receiver<Outgoing>) -> Vec<Outgoing> {
    let mut out = Vec::new();
    while let Some(message) = queue.recv().await {
        out.push(message);
    }
    out
}

/// The relay's framing guarantee, checked on arbitrary input: `input` is
/// split on `\n` into messages, each going to the relay from the client
/// (first byte even) or from the upstream (odd), the rest its bytes. Every
/// line written either way must be one JSON object in printable ASCII whose
/// kind is the one it is routed by, and every `tools/call` that reached the
/// upstream must have been decided `Allowed` by the gateway with the same
/// tool and arguments (at most once per decision). The error says what broke.
pub fn check_framing(input: &[u8]) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let Session {
            relay,
            fake,
            upstream,
            client,
        } = session(Options::default(), false);
        let (up, down) = (
            tokio::spawn(collect(upstream)),
            tokio::spawn(collect(client)),
        );
        for piece in input.split(|b| *b == b'\n') {
            match piece.split_first() {
                Some((selector, rest)) if selector % 2 == 0 => relay.from_client_text(rest).await,
                Some((_, rest)) => relay.from_upstream_text(rest).await,
                None => {}
            }
        }
        // Every call decided and answered, then the session ends: its queues close.
        settle().await;
        relay.stop().await;
        let up = up.await.map_err(|e| e.to_string())?;
        let down = down.await.map_err(|e| e.to_string())?;
        for message in up.iter().chain(&down) {
            one_message(message)?;
        }
        let allowed = fake
            .seen()
            .decided
            .iter()
            .filter(|(_, _, d)| matches!(d, Decided::Allowed(_)))
            .map(|(tool, args, _)| (tool.clone(), args.clone()))
            .collect();
        every_call_decided(&up, allowed)
    })
}

/// Whether every `tools/call` in `up` matches one allowed decision.
fn every_call_decided(up: &[Outgoing], mut allowed: Vec<(String, Json)>) -> Result<(), String> {
    for message in up {
        if message.kind.method() != Some("tools/call") {
            continue;
        }
        let sent = one_message(message)?;
        let params = sent.get("params").cloned().unwrap_or(Json::Null);
        let tool = params.get("name").and_then(Json::as_str).unwrap_or("");
        let args = match params.get("arguments") {
            None | Some(Json::Null) => serde_json::json!({}),
            Some(a) => a.clone(),
        };
        match allowed.iter().position(|(t, a)| t == tool && *a == args) {
            Some(at) => drop(allowed.swap_remove(at)),
            None => {
                return Err(format!(
                    "an undecided `tools/call` reached the upstream: {}",
                    message.line.as_str()
                ))
            }
        }
    }
    Ok(())
}

/// The one JSON object a line holds (of the kind it is routed by), or why it is not one.
fn one_message(message: &Outgoing) -> Result<Json, String> {
    let text = message.line.as_str();
    if !text.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(format!("a line is not printable ASCII: {text:?}"));
    }
    let parsed = Envelope::parse(text.as_bytes());
    match parsed {
        Ok(e) if *e.kind() == message.kind => Ok(e.value().clone()),
        Ok(e) => Err(format!(
            "a line is a {:?}, routed as a {:?}: {text}",
            e.kind(),
            message.kind
        )),
        Err(e) => Err(format!("a line is not one message ({e}): {text}")),
    }
}
