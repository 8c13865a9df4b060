//! One session's event loop: it owns the session's state (requests in
//! flight, held calls, questions asked of the user), takes one [`Event`] at
//! a time and acts on it with one `match`. It never awaits the gateway: a
//! `tools/call` is decided in a task of its `calls` set, a journal write (an
//! `execution` record with the observation of the output, a tool notice) in
//! a task of its `records` set (a later `tools/call` waits for the
//! observations of the outputs the client already has: [`Observing`]), so
//! the upstream's next messages (progress, notifications, other results)
//! are never stuck behind a decision or a journal write. Both sets are the
//! session's: when it ends, its calls are dropped and its records get
//! [`RECORD_GRACE`] to finish.

use super::call::{self, Ask, CallTask, Done, HeldUpdate, Lost};
use super::reply;
use super::{Event, Options};
use crate::config::Trusted;
use crate::decider::Decider;
use crate::envelope::{Envelope, Id, Kind, Malformed, Outgoing, INVALID_REQUEST};
use crate::tools::{filter_list, Visibility};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use toolgate_runtime::gateway::Call;
use toolgate_runtime::record::ToolNotice;
use toolgate_runtime::store::CallKey;

/// JSON-RPC: the parameters are malformed.
const INVALID_PARAMS: i64 = -32602;
/// JSON-RPC: no such method.
const METHOD_NOT_FOUND: i64 = -32601;
/// JSON-RPC (implementation-defined): the session is at one of its limits.
const BUSY: i64 = -32000;
/// JSON-RPC: the proxy failed (a call's task ended without an answer).
const INTERNAL_ERROR: i64 = -32603;

/// `tools/call`s a session decides at once (each a task, some waiting for
/// an approval); one more is answered `-32000`, not queued.
pub const MAX_DECIDING: usize = 64;

/// `tools/list` and allowed `tools/call` requests a session waits on the
/// upstream's answer for; one more is answered `-32000` until some are answered.
pub const MAX_IN_FLIGHT: usize = 1024;

/// Journal writes a session runs at once; past it, the loop waits for one
/// to end (a journal that slow slows its sessions, it does not queue without bound).
const MAX_RECORDS: usize = 64;

/// How long a stopping session waits for its journal writes.
const RECORD_GRACE: Duration = Duration::from_secs(2);

/// What every session is made from.
pub(super) struct Setup {
    pub decider: Arc<dyn Decider>,
    pub trusted: Trusted,
    pub visibility: Visibility,
    pub options: Options,
}

/// A client request whose answer the relay must see.
#[derive(Clone, Debug)]
enum Inflight {
    /// `tools/list`: filter the answer.
    List,
    /// An allowed `tools/call`: report its result to the gateway.
    Call(CallKey),
}

/// The session's state, owned by its loop.
#[derive(Default)]
struct State {
    /// Requests forwarded whose answers the relay must see.
    inflight: HashMap<Id, Inflight>,
    /// The `tools/call`s being decided, by their task.
    deciding: HashMap<tokio::task::Id, Id>,
    /// Calls held for approval in this session, by tool and arguments, so
    /// that the same call made again after its approval runs with its token.
    held: HashMap<call::HeldKey, Call>,
    /// Notices already journaled.
    reported: HashSet<String>,
    /// The client declared the `elicitation` capability.
    elicits: bool,
    /// The proxy's own questions to the client, by id, awaiting answers.
    asked: HashMap<Id, oneshot::Sender<Envelope>>,
    /// Results sent to the client whose outputs are still being observed.
    observing: Observing,
}

/// Results already sent to the client whose `complete` (the `execution`
/// record and the observation of what the agent read) is still being
/// written. A `tools/call` that comes after them is decided only once they
/// are written: the agent may have read those outputs, so the decision
/// must see them (a `session.tainted` guard must not race the write).
/// An observation that failed (the gateway did not record the result or
/// its output) is remembered for the rest of the session: no later call is
/// decided without it.
#[derive(Default)]
struct Observing {
    running: Vec<watch::Receiver<()>>,
    lost: Arc<AtomicBool>,
}

/// One observation in progress: [`Watch::done`] says how it ended.
struct Watch {
    _running: watch::Sender<()>,
    lost: Arc<AtomicBool>,
}

impl Watch {
    /// Ends the observation; one not recorded closes the session's decisions.
    fn done(self, recorded: bool) {
        if !recorded {
            self.lost.store(true, Ordering::SeqCst);
        }
    }
}

impl Observing {
    /// Starts an observation: in progress until its [`Watch`] is dropped.
    fn start(&mut self) -> Watch {
        self.running.retain(|rx| rx.has_changed().is_ok());
        let (tx, rx) = watch::channel(());
        self.running.push(rx);
        Watch {
            _running: tx,
            lost: self.lost.clone(),
        }
    }

    /// What a decision starting now waits for: the observations in progress.
    fn barrier(&mut self) -> Barrier {
        self.running.retain(|rx| rx.has_changed().is_ok());
        Barrier {
            running: self.running.clone(),
            lost: Some(self.lost.clone()),
        }
    }
}

/// Observations a call's decision waits for (see [`Observing`]).
#[derive(Debug, Default)]
pub(super) struct Barrier {
    running: Vec<watch::Receiver<()>>,
    lost: Option<Arc<AtomicBool>>,
}

impl Barrier {
    /// Waits until each has been written (or abandoned: its session
    /// stopped); whether every output of the session so far was recorded.
    pub(super) async fn wait(self) -> bool {
        for mut rx in self.running {
            // `()` is never sent: this ends when the sender is dropped.
            while rx.changed().await.is_ok() {}
        }
        !self.lost.is_some_and(|l| l.load(Ordering::SeqCst))
    }
}

/// The session was stopped while the loop waited.
struct Stopped;

/// One session's loop and everything it owns.
pub(super) struct Session {
    setup: Arc<Setup>,
    inbox: mpsc::Receiver<Event>,
    stopped: watch::Receiver<bool>,
    to_upstream: mpsc::Sender<Outgoing>,
    to_client: mpsc::Sender<Outgoing>,
    /// Per-call tasks' questions; the sender is cloned into each task.
    asks: (mpsc::Sender<Ask>, mpsc::Receiver<Ask>),
    calls: JoinSet<Done>,
    records: JoinSet<()>,
    state: State,
}

/// Which way a message goes.
#[derive(Clone, Copy)]
enum To {
    Client,
    Upstream,
}

impl Session {
    pub(super) fn new(
        setup: Setup,
        inbox: mpsc::Receiver<Event>,
        stopped: watch::Receiver<bool>,
        to_upstream: mpsc::Sender<Outgoing>,
        to_client: mpsc::Sender<Outgoing>,
    ) -> Session {
        Session {
            setup: Arc::new(setup),
            inbox,
            stopped,
            to_upstream,
            to_client,
            asks: mpsc::channel(super::QUEUE),
            calls: JoinSet::new(),
            records: JoinSet::new(),
            state: State::default(),
        }
    }

    /// Runs the loop until the session stops, then ends its tasks.
    pub(super) async fn run(mut self) {
        loop {
            let event = self.next().await;
            if self.handle(event).await.is_err() {
                break;
            }
        }
        self.calls.shutdown().await;
        let records = &mut self.records;
        let flushed = async { while records.join_next().await.is_some() {} };
        if tokio::time::timeout(RECORD_GRACE, flushed).await.is_err() {
            eprintln!("toolgate: a session ended before all its journal writes did");
        }
        self.records.shutdown().await;
    }

    /// The next event. Work already started (a decided call, a question, a
    /// finished journal write: at most a few dozen) comes before new input,
    /// so a busy client cannot starve it; a stop comes first.
    async fn next(&mut self) -> Event {
        let stopped = &mut self.stopped;
        tokio::select! {
            biased;
            _ = stopped.wait_for(|s| *s) => Event::Stop,
            Some(done) = self.calls.join_next_with_id() => Event::Decided(self.state.joined(done)),
            Some(ask) = self.asks.1.recv() => Event::Ask(ask),
            Some(_) = self.records.join_next() => Event::Recorded,
            event = self.inbox.recv() => event.unwrap_or(Event::Stop),
        }
    }

    async fn handle(&mut self, event: Event) -> Result<(), Stopped> {
        match event {
            Event::FromClient(envelope) => self.client_message(envelope).await,
            Event::Unreadable(why) => self.unreadable(&why).await,
            Event::FromUpstream(envelope) => self.upstream_message(envelope).await,
            Event::Ask(ask) => self.ask(ask).await,
            Event::Decided(Ok(done)) => self.decided(*done).await,
            Event::Decided(Err(lost)) => self.lost(lost).await,
            Event::Recorded => Ok(()),
            Event::Stop => Err(Stopped),
        }
    }

    /// Queues a message, waiting while the queue is full; a queue whose
    /// reader is gone takes nothing (its transport ended).
    async fn send(&mut self, to: To, envelope: Envelope) -> Result<(), Stopped> {
        let queue = match to {
            To::Client => &self.to_client,
            To::Upstream => &self.to_upstream,
        };
        tokio::select! {
            _ = queue.send(Outgoing::from(envelope)) => Ok(()),
            _ = self.stopped.wait_for(|s| *s) => Err(Stopped),
        }
    }

    async fn reply_error(&mut self, id: Id, code: i64, why: &str) -> Result<(), Stopped> {
        self.send(To::Client, Envelope::error(id, code, why)).await
    }

    /// Starts a journal write off the loop, waiting first while [`MAX_RECORDS`] run.
    async fn record(
        &mut self,
        write: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), Stopped> {
        while self.records.len() >= MAX_RECORDS {
            tokio::select! {
                _ = self.records.join_next() => {}
                _ = self.stopped.wait_for(|s| *s) => return Err(Stopped),
            }
        }
        self.records.spawn(write);
        Ok(())
    }

    async fn unreadable(&mut self, why: &Malformed) -> Result<(), Stopped> {
        self.reply_error(Id::null(), why.code(), &why.to_string())
            .await
    }

    async fn client_message(&mut self, envelope: Envelope) -> Result<(), Stopped> {
        match envelope.kind().clone() {
            Kind::Request { id, method } => self.client_request(id, &method, envelope).await,
            Kind::Notification { method } => match Method::of(&method) {
                Method::OtherTools | Method::ToolsList | Method::ToolsCall => Ok(()),
                Method::RootsChanged if !self.setup.options.forward_roots => Ok(()),
                _ => self.send(To::Upstream, envelope).await,
            },
            Kind::Response { id } | Kind::Error { id } => {
                match self.state.asked.remove(&id) {
                    // The user's answer to the proxy's own question: never forwarded.
                    Some(waiter) => {
                        let _ = waiter.send(envelope);
                        Ok(())
                    }
                    None => self.send(To::Upstream, envelope).await,
                }
            }
        }
    }

    async fn client_request(
        &mut self,
        id: Id,
        method: &str,
        mut envelope: Envelope,
    ) -> Result<(), Stopped> {
        match Method::of(method) {
            Method::ToolsList => {
                if let Some((code, why)) = self.state.refuse(&id) {
                    return self.reply_error(id, code, &why).await;
                }
                self.state.inflight.insert(id, Inflight::List);
                self.send(To::Upstream, envelope).await
            }
            Method::ToolsCall => self.tools_call(id, envelope).await,
            // The tools path is the proxy's to decide: what it does not know
            // there (a newer method that could run a tool) is refused, not forwarded.
            Method::OtherTools => {
                let why = format!("`{method}` is not relayed: the proxy decides `tools/list` and `tools/call` only");
                self.reply_error(id, METHOD_NOT_FOUND, &why).await
            }
            Method::Initialize => {
                self.state.elicits = declares_elicitation(&envelope);
                if !self.setup.options.forward_roots {
                    without_roots(&mut envelope);
                }
                self.send(To::Upstream, envelope).await
            }
            Method::RootsChanged | Method::RootsList | Method::Other => {
                self.send(To::Upstream, envelope).await
            }
        }
    }

    /// Starts deciding a `tools/call` in a task of the session (or answers it at once).
    async fn tools_call(&mut self, id: Id, request: Envelope) -> Result<(), Stopped> {
        if let Some((code, why)) = self.state.refuse(&id) {
            return self.reply_error(id, code, &why).await;
        }
        let call = match call::call_of(&self.setup.trusted, request.get("params")) {
            Ok(call) => call,
            Err(why) => return self.reply_error(id, INVALID_PARAMS, &why).await,
        };
        let before = self.state.held.get(&call::held_key(&call)).cloned();
        let task = CallTask {
            decider: self.setup.decider.clone(),
            options: self.setup.options,
            elicits: self.state.elicits,
            asks: self.asks.0.clone(),
            after: self.state.observing.barrier(),
        };
        let handle = self
            .calls
            .spawn(task.run(id.clone(), request, call, before));
        self.state.deciding.insert(handle.id(), id);
        Ok(())
    }

    /// Sends a per-call task's question to the client and keeps its waiter.
    async fn ask(&mut self, ask: Ask) -> Result<(), Stopped> {
        // Questions whose task gave up waiting are forgotten as new ones come.
        self.state.asked.retain(|_, waiter| !waiter.is_closed());
        self.state.asked.insert(ask.id, ask.answer);
        self.send(To::Client, ask.question).await
    }

    /// A decided call: forwarded as parsed (the upstream runs exactly what
    /// was decided), or answered in the upstream's place.
    async fn decided(&mut self, done: Done) -> Result<(), Stopped> {
        match done.held {
            HeldUpdate::Unchanged => {}
            HeldUpdate::Remember(key, call) => {
                self.state.held.insert(key, call);
            }
            HeldUpdate::Forget(key) => {
                self.state.held.remove(&key);
            }
        }
        match done.outcome {
            Ok(key) => {
                self.state.inflight.insert(done.id, Inflight::Call(key));
                self.send(To::Upstream, done.request).await
            }
            Err(result) => {
                self.send(To::Client, Envelope::result(done.id, result))
                    .await
            }
        }
    }

    /// A call's task ended without an answer (it cannot, short of a bug): not forwarded.
    async fn lost(&mut self, lost: Lost) -> Result<(), Stopped> {
        let why = "the proxy could not decide this call; it did not run";
        self.reply_error(lost.id, INTERNAL_ERROR, why).await
    }

    async fn upstream_message(&mut self, mut envelope: Envelope) -> Result<(), Stopped> {
        let inflight = match envelope.kind() {
            Kind::Request { id, method } if matches!(Method::of(method), Method::RootsList) => {
                if !self.setup.options.forward_roots {
                    let why = "the proxy does not forward the client's roots (`--forward-roots`)";
                    let refusal = Envelope::error(id.clone(), METHOD_NOT_FOUND, why);
                    return self.send(To::Upstream, refusal).await;
                }
                None
            }
            Kind::Request { .. } | Kind::Notification { .. } => None,
            Kind::Response { id } | Kind::Error { id } => self.state.inflight.remove(id),
        };
        match inflight {
            Some(Inflight::List) => {
                let notes = self.filter_tools(&mut envelope);
                self.send(To::Client, envelope).await?;
                self.notices(notes).await
            }
            Some(Inflight::Call(key)) => {
                // The result goes to the client first; its `execution` record
                // and the observation of its output are written beside it,
                // off this loop (the session's next decisions wait for them).
                let outcome = reply::call_outcome(&envelope);
                let output = reply::call_output(&envelope);
                let observing = self.state.observing.start();
                self.send(To::Client, envelope).await?;
                let decider = self.setup.decider.clone();
                self.record(async move {
                    let recorded = decider.complete(&key, outcome, output.as_ref()).await;
                    observing.done(recorded);
                })
                .await
            }
            None => self.send(To::Client, envelope).await,
        }
    }

    /// Filters a `tools/list` answer; the notices to journal.
    fn filter_tools(&mut self, envelope: &mut Envelope) -> Vec<ToolNotice> {
        let Some(result) = envelope.get_mut("result") else {
            return Vec::new();
        };
        let notes = filter_list(&self.setup.visibility, result, &mut self.state.reported);
        let notice = |(tool, what, detail): (String, &str, String)| {
            if what == "annotation" {
                eprintln!("toolgate: warning: {detail}");
            }
            let (door, what) = ("mcp-proxy".into(), what.into());
            ToolNotice {
                door,
                tool,
                what,
                detail,
            }
        };
        notes.into_iter().map(notice).collect()
    }

    async fn notices(&mut self, notes: Vec<ToolNotice>) -> Result<(), Stopped> {
        if notes.is_empty() {
            return Ok(());
        }
        let decider = self.setup.decider.clone();
        self.record(async move {
            for notice in notes {
                decider.notice(notice).await;
            }
        })
        .await
    }
}

impl State {
    /// Why a new `tools/` request is not taken: its id is in use, or the session is at a limit.
    fn refuse(&self, id: &Id) -> Option<(i64, String)> {
        if self.inflight.contains_key(id) || self.deciding.values().any(|d| d == id) {
            let why = format!("request id {id} is already in use by a `tools/` request in flight");
            return Some((INVALID_REQUEST, why));
        }
        if self.deciding.len() >= MAX_DECIDING {
            let why = format!("{MAX_DECIDING} calls are being decided in this session: retry once some are answered");
            return Some((BUSY, why));
        }
        if self.inflight.len() >= MAX_IN_FLIGHT {
            let why = format!("{MAX_IN_FLIGHT} tool requests await the upstream's answer in this session: retry once some are answered");
            return Some((BUSY, why));
        }
        None
    }

    /// What a call's task ended with: its [`Done`], or the request it leaves unanswered.
    fn joined(
        &mut self,
        joined: Result<(tokio::task::Id, Done), tokio::task::JoinError>,
    ) -> Result<Box<Done>, Lost> {
        let task = match &joined {
            Ok((task, _)) => *task,
            Err(e) => e.id(),
        };
        let id = self.deciding.remove(&task).unwrap_or_else(Id::null);
        joined
            .map(|(_, done)| Box::new(done))
            .map_err(|_| Lost { id })
    }
}

/// What a method means to the relay.
enum Method {
    ToolsList,
    ToolsCall,
    /// Any other method on the tools path.
    OtherTools,
    Initialize,
    /// `notifications/roots/list_changed`.
    RootsChanged,
    /// `roots/list`.
    RootsList,
    Other,
}

impl Method {
    fn of(method: &str) -> Method {
        match method {
            "tools/list" => Method::ToolsList,
            "tools/call" => Method::ToolsCall,
            m if m.starts_with("tools/") => Method::OtherTools,
            "initialize" => Method::Initialize,
            "notifications/roots/list_changed" => Method::RootsChanged,
            "roots/list" => Method::RootsList,
            _ => Method::Other,
        }
    }
}

/// Whether an `initialize` declares the client's `elicitation` capability.
fn declares_elicitation(initialize: &Envelope) -> bool {
    let caps = initialize
        .value()
        .pointer("/params/capabilities/elicitation");
    caps.is_some_and(serde_json::Value::is_object)
}

/// Removes the client's `roots` capability from its `initialize`, so the
/// upstream never asks for them.
fn without_roots(initialize: &mut Envelope) {
    let caps = initialize
        .get_mut("params")
        .and_then(|p| p.get_mut("capabilities"))
        .and_then(serde_json::Value::as_object_mut);
    if let Some(caps) = caps {
        caps.remove("roots");
    }
}
