//! The message loop between one downstream client and one upstream server.
//!
//! Every message is parsed once, decided, and forwarded as the proxy's own
//! serialization of what it parsed ([`Line`]), never as the text it arrived
//! as (see [`crate::wire`] for why). Messages pass unchanged in meaning,
//! except: a `tools/list` answer (filtered by [`Visibility`]),
//! a `tools/call` request (decided by the gateway first: forwarded only
//! when allowed, answered by the proxy otherwise), any other `tools/`
//! method (refused: the tools path is the proxy's to decide), the client's `roots`
//! (not forwarded unless configured: they would widen the server's reach)
//! and messages the proxy cannot read (a client's are answered with a
//! JSON-RPC error, an upstream's are dropped and logged; neither is ever
//! forwarded: fail closed).

use crate::config::Trusted;
use crate::decider::{Decided, Decider, Held};
use crate::tools::{filter_list, Visibility};
use crate::wire::Line;
use serde_json::{json, Value as Json};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::oneshot;
use toolgate_engine::Context;
use toolgate_runtime::gateway::{canonical, random_token, Call};
use toolgate_runtime::journal::sha256_hex;
use toolgate_runtime::record::ToolNotice;
use toolgate_runtime::store::CallKey;

mod reply;
#[cfg(test)]
mod tests;

/// JSON-RPC: the text is not JSON.
const PARSE_ERROR: i64 = -32700;
/// JSON-RPC: not a request the proxy can relay.
const INVALID_REQUEST: i64 = -32600;
/// JSON-RPC: the parameters are malformed.
const INVALID_PARAMS: i64 = -32602;
/// JSON-RPC: no such method.
const METHOD_NOT_FOUND: i64 = -32601;

/// How the relay treats calls and roots.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Hold a call needing approval this long for its approval.
    pub wait_approval: Option<Duration>,
    /// Forward the client's `roots` upstream.
    pub forward_roots: bool,
    /// The client is an application its human user answers (stdio, or
    /// `--listen-elicitation`): `require approval from "user"` may be asked
    /// of it through elicitation. Otherwise (an HTTP client is the agent's
    /// own process by default) such a call stays held for the approvals API.
    pub ask_client_user: bool,
}

/// A client request whose answer the relay must see.
#[derive(Clone, Debug)]
enum Inflight {
    /// `tools/list`: filter the answer.
    List,
    /// An allowed `tools/call`: report its result to the gateway.
    Call(CallKey),
}

#[derive(Default)]
struct State {
    /// By the request id's JSON text.
    inflight: HashMap<String, Inflight>,
    /// Calls held for approval in this session, by tool and arguments (SHA-256 of their canonical JSON),
    /// so that the same call made again after its approval runs with its token.
    held: HashMap<(String, String), Call>,
    /// Notices already journaled.
    reported: HashSet<String>,
    /// The client declared the `elicitation` capability.
    elicits: bool,
    /// The proxy's own requests to the client (elicitations), by id, awaiting answers.
    asked: HashMap<String, oneshot::Sender<Json>>,
}

/// How long the client's user has to answer an approval question.
const ASK_TIMEOUT: Duration = Duration::from_secs(300);

/// One client session with one upstream.
pub struct Relay {
    decider: Arc<dyn Decider>,
    trusted: Trusted,
    visibility: Visibility,
    options: Options,
    to_upstream: UnboundedSender<Line>,
    to_client: UnboundedSender<Line>,
    state: Mutex<State>,
}

impl Relay {
    /// A relay over `decider`, sending to the upstream and the client through the channels.
    pub fn new(
        decider: Arc<dyn Decider>,
        trusted: Trusted,
        visibility: Visibility,
        options: Options,
        to_upstream: UnboundedSender<Line>,
        to_client: UnboundedSender<Line>,
    ) -> Arc<Relay> {
        Arc::new(Relay {
            decider,
            trusted,
            visibility,
            options,
            to_upstream,
            to_client,
            state: Mutex::new(State::default()),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Each change is one insert or remove: a poisoned lock holds whole maps.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn to_client(&self, message: &Json) {
        let _ = self.to_client.send(Line::of(message));
    }

    fn to_upstream(&self, message: &Json) {
        let _ = self.to_upstream.send(Line::of(message));
    }

    /// A message from the client, as received (one line of stdio, one HTTP body).
    pub fn from_client_text(self: &Arc<Self>, text: &[u8]) {
        match serde_json::from_slice::<Json>(text) {
            Ok(message) => self.from_client(message),
            Err(e) => self.not_json(&e),
        }
    }

    /// Answers a client's message that is not JSON.
    pub fn not_json(&self, e: &dyn std::fmt::Display) {
        let why = format!("not JSON: {e}");
        self.to_client(&reply::rpc_error(&Json::Null, PARSE_ERROR, &why));
    }

    /// Answers a client's line that is longer than the proxy reads.
    pub fn too_long(&self, max: usize) {
        let why = format!("a message is at most {max} bytes: this one was not read");
        self.to_client(&reply::rpc_error(&Json::Null, INVALID_REQUEST, &why));
    }

    /// A message from the client, parsed.
    pub fn from_client(self: &Arc<Self>, message: Json) {
        let Some(object) = message.as_object() else {
            let why = "the proxy relays single JSON-RPC messages, not batches";
            return self.to_client(&reply::rpc_error(&Json::Null, INVALID_REQUEST, why));
        };
        let method = object.get("method").and_then(Json::as_str);
        let id = object.get("id");
        if self.answers_the_proxy(&message, method, id) {
            return;
        }
        match (method, id) {
            (Some("tools/list"), Some(id)) => {
                self.state().inflight.insert(id.to_string(), Inflight::List);
                self.to_upstream(&message);
            }
            (Some("tools/call"), Some(id)) => {
                let relay = self.clone();
                let (id, params) = (id.clone(), object.get("params").cloned());
                // The upstream gets the message as parsed, not the text: it
                // runs exactly what was decided, whatever its JSON parser
                // would make of duplicate keys or odd escapes.
                tokio::spawn(async move { relay.call_tool(id, message, params).await });
            }
            (Some("tools/call"), None) => {}
            // The tools path is the proxy's to decide: what it does not know
            // there (a newer method that could run a tool) is refused, not forwarded.
            (Some(m), id) if m.starts_with("tools/") => {
                if let Some(id) = id {
                    let why = format!("`{m}` is not relayed: the proxy decides `tools/list` and `tools/call` only");
                    self.to_client(&reply::rpc_error(id, METHOD_NOT_FOUND, &why));
                }
            }
            (Some("initialize"), Some(_)) if !self.options.forward_roots => {
                self.to_upstream(&without_roots(message));
            }
            (Some("notifications/roots/list_changed"), None) if !self.options.forward_roots => {}
            (Some(_), _) | (None, Some(_)) => self.to_upstream(&message),
            (None, None) => {
                let why = "a JSON-RPC message has a `method` or an `id`";
                self.to_client(&reply::rpc_error(&Json::Null, INVALID_REQUEST, why));
            }
        }
    }

    /// Notes the client's capabilities from its `initialize`; takes the
    /// client's answers to the proxy's own questions (true: not to forward).
    fn answers_the_proxy(&self, message: &Json, method: Option<&str>, id: Option<&Json>) -> bool {
        if method == Some("initialize") {
            let caps = message.pointer("/params/capabilities/elicitation");
            self.state().elicits = caps.is_some_and(Json::is_object);
        }
        let Some(id) = id.filter(|_| method.is_none()) else {
            return false;
        };
        let waiter = self.state().asked.remove(&id.to_string());
        match waiter {
            Some(waiter) => {
                let _ = waiter.send(message.clone());
                true
            }
            None => false,
        }
    }

    /// A message from the upstream, as received (one line, one HTTP body or
    /// SSE event): forwarded only when it parses as a JSON-RPC message.
    pub async fn from_upstream_text(self: &Arc<Self>, text: &[u8]) {
        match serde_json::from_slice::<Json>(text) {
            Ok(message @ Json::Object(_)) => self.from_upstream(message).await,
            Ok(_) => {
                eprintln!("toolgate: dropped an upstream message that is not one JSON-RPC object")
            }
            Err(e) => eprintln!("toolgate: dropped an upstream message that is not JSON: {e}"),
        }
    }

    /// Drops (and says so) an upstream line longer than the proxy reads.
    pub fn upstream_too_long(&self, max: usize) {
        eprintln!("toolgate: dropped an upstream message of more than {max} bytes");
    }

    /// A message from the upstream, parsed.
    pub async fn from_upstream(self: &Arc<Self>, mut message: Json) {
        let method = message.get("method").and_then(Json::as_str);
        if method == Some("roots/list") && !self.options.forward_roots {
            let id = message.get("id").cloned().unwrap_or(Json::Null);
            let why = "the proxy does not forward the client's roots (`--forward-roots`)";
            self.to_upstream(&reply::rpc_error(&id, METHOD_NOT_FOUND, why));
            return;
        }
        let inflight = match (method, message.get("id")) {
            (None, Some(id)) => self.state().inflight.remove(&id.to_string()),
            _ => None,
        };
        match inflight {
            Some(Inflight::List) => {
                self.filter_tools(&mut message).await;
                self.to_client(&message);
            }
            Some(Inflight::Call(key)) => {
                // The result goes to the client first and its `execution`
                // record is written beside it, off this reader: the upstream's
                // next messages (progress, notifications, other results) are
                // never stuck behind a journal write.
                let outcome = reply::call_outcome(&message);
                self.to_client(&message);
                let decider = self.decider.clone();
                tokio::spawn(async move { decider.complete(&key, outcome).await });
            }
            None => self.to_client(&message),
        }
    }

    async fn filter_tools(&self, message: &mut Json) {
        let Some(result) = message.get_mut("result") else {
            return;
        };
        let notes = {
            let mut state = self.state();
            filter_list(&self.visibility, result, &mut state.reported)
        };
        for (tool, what, detail) in notes {
            if what == "annotation" {
                eprintln!("toolgate: warning: {detail}");
            }
            let notice = ToolNotice {
                door: "mcp-proxy".into(),
                tool,
                what: what.into(),
                detail,
            };
            self.decider.notice(notice).await;
        }
    }

    /// Decides a `tools/call` and forwards it (`message`, as parsed), or answers it.
    async fn call_tool(self: Arc<Self>, id: Json, message: Json, params: Option<Json>) {
        let call = match self.call_of(params.as_ref()) {
            Ok(call) => call,
            Err(why) => return self.to_client(&reply::rpc_error(&id, INVALID_PARAMS, &why)),
        };
        let answer = match self.approved_before(&call).await {
            Some(answer) => answer,
            None => self.decide(&call).await,
        };
        match answer {
            Ok(key) => {
                self.state()
                    .inflight
                    .insert(id.to_string(), Inflight::Call(key));
                self.to_upstream(&message);
            }
            Err(result) => self.to_client(&reply::result(&id, result)),
        }
    }

    /// The gateway's call for a `tools/call`'s parameters; the id is new, the
    /// context is the proxy's own.
    fn call_of(&self, params: Option<&Json>) -> Result<Call, String> {
        let params = params.ok_or("`tools/call` needs `params`")?;
        let tool = params
            .get("name")
            .and_then(Json::as_str)
            .ok_or("`tools/call` needs `params.name`, a string")?;
        let args = match params.get("arguments") {
            None | Some(Json::Null) => json!({}),
            Some(a @ Json::Object(_)) => a.clone(),
            Some(_) => return Err("`params.arguments` must be an object".into()),
        };
        let id = random_token().map_err(|e| e.to_string())?;
        Ok(Call {
            id: format!("mcp-{}", id.get(..24).unwrap_or(&id)),
            agent: self.trusted.agent.clone(),
            tool: tool.to_string(),
            args,
            context: Context {
                tenant: self.trusted.tenant.clone(),
                env: self.trusted.env.clone(),
                fields: self.trusted.fields.clone(),
            },
        })
    }

    /// What a decision means for the call: go ahead with this key, or the
    /// tool result the client gets instead.
    fn outcome(&self, call: &Call, decided: Decided, wait: Option<Duration>) -> Step {
        match decided {
            Decided::Allowed(key) => Step::Done(Ok(key)),
            Decided::Refused(r) => Step::Done(Err(reply::refused(&call.tool, &r))),
            Decided::Pending {
                id,
                rule,
                args_digest,
            } => {
                let pending = reply::Pending {
                    id,
                    tenant: call.context.tenant.clone(),
                    tool: call.tool.clone(),
                    rule,
                    args_digest,
                };
                match wait {
                    Some(wait) => Step::Wait(pending, wait),
                    None => {
                        self.remember(call);
                        Step::Done(Err(reply::pending(&pending)))
                    }
                }
            }
        }
    }

    /// Decides a new call: its key to go ahead with, or the tool result the client gets instead.
    async fn decide(&self, call: &Call) -> Result<CallKey, Json> {
        let decided = self.decider.authorize(call).await;
        if let Decided::Pending { args_digest, .. } = &decided {
            if let Some(answer) = self.ask_user(call, args_digest).await {
                return answer;
            }
        }
        match self.outcome(call, decided, self.options.wait_approval) {
            Step::Done(done) => done,
            Step::Wait(pending, wait) => self.wait(call, wait, &pending).await,
        }
    }

    /// Holds a pending call until it is approved (then runs it), rejected
    /// or the wait is over.
    async fn wait(
        &self,
        call: &Call,
        wait: Duration,
        pending: &reply::Pending,
    ) -> Result<CallKey, Json> {
        match self.decider.held(&call.key(), Some(wait)).await {
            Held::Approved(token) => self.execute(call, &token).await,
            Held::Pending => {
                self.remember(call);
                Err(reply::not_approved(pending, "pending"))
            }
            Held::Finished(state) => Err(reply::not_approved(pending, &state)),
        }
    }

    async fn execute(&self, call: &Call, token: &str) -> Result<CallKey, Json> {
        match self.decider.execute(call, token).await {
            Decided::Allowed(key) => Ok(key),
            Decided::Refused(r) => Err(reply::refused(&call.tool, &r)),
            Decided::Pending { .. } => Err(reply::refused(
                &call.tool,
                &crate::decider::Refused {
                    reason: "the approved call was held again".into(),
                    rule: None,
                    denial: false,
                },
            )),
        }
    }

    /// When the held call's approvers are the client's own user and the
    /// client supports elicitation: asks the user, bound to the arguments'
    /// digest. `None` when the question cannot be asked or answered (the
    /// call stays held as any other).
    async fn ask_user(&self, call: &Call, args_digest: &str) -> Option<Result<CallKey, Json>> {
        let key = call.key();
        if !self.options.ask_client_user
            || !self.state().elicits
            || !self.decider.user_approves(&key).await
        {
            return None;
        }
        let args = serde_json::to_string_pretty(&call.args).unwrap_or_default();
        let message = format!(
            "The assistant wants to run `{}` with these arguments:\n{args}\n\
             (call `{}`, arguments digest {args_digest}). Approve this exact call?",
            call.tool, call.id
        );
        let answer = self.elicit(message).await?;
        let result = answer.get("result")?;
        let approved = result["action"] == "accept" && result["content"]["approve"] == true;
        if !approved {
            return Some(Err(reply::declined(&call.tool, &call.id)));
        }
        let token = self.decider.approve_as_user(&key, args_digest).await?;
        Some(self.execute(call, &token).await)
    }

    /// Sends an `elicitation/create` to the client and waits for its answer.
    async fn elicit(&self, message: String) -> Option<Json> {
        let (tx, rx) = oneshot::channel();
        // Unguessable, so that an upstream cannot send the client a question
        // of its own under this id and have the user's answer taken as an approval.
        let id = json!(format!("toolgate-ask-{}", random_token().ok()?));
        self.state().asked.insert(id.to_string(), tx);
        let schema = json!({"type": "object", "required": ["approve"], "properties": {
            "approve": {"type": "boolean", "title": "Approve", "description": "Run this exact call once"}}});
        let params = json!({"message": message, "requestedSchema": schema});
        self.to_client(
            &json!({"jsonrpc": "2.0", "id": id, "method": "elicitation/create", "params": params}),
        );
        let answer = tokio::time::timeout(ASK_TIMEOUT, rx).await;
        self.state().asked.remove(&id.to_string());
        answer.ok()?.ok()
    }

    fn held_key(call: &Call) -> (String, String) {
        let args = sha256_hex(canonical(&call.args).as_bytes());
        (call.tool.clone(), args)
    }

    fn remember(&self, call: &Call) {
        self.state().held.insert(Self::held_key(call), call.clone());
    }

    /// A call made again after it was held in this session: still pending,
    /// approved (runs once with its token) or finished (forgotten, decided anew).
    async fn approved_before(&self, call: &Call) -> Option<Result<CallKey, Json>> {
        let key = Self::held_key(call);
        let held = self.state().held.get(&key).cloned()?;
        match self.decider.held(&held.key(), None).await {
            Held::Pending => {
                let pending = reply::Pending {
                    id: held.id.clone(),
                    tenant: held.context.tenant.clone(),
                    tool: held.tool.clone(),
                    rule: None,
                    args_digest: String::new(),
                };
                Some(Err(reply::pending(&pending)))
            }
            Held::Approved(token) => {
                self.state().held.remove(&key);
                Some(self.execute(&held, &token).await)
            }
            Held::Finished(_) => {
                self.state().held.remove(&key);
                None
            }
        }
    }
}

/// The next step of a decided call.
enum Step {
    Done(Result<CallKey, Json>),
    Wait(reply::Pending, Duration),
}

/// An `initialize` request without the client's `roots` capability, so the
/// upstream never asks for them.
fn without_roots(mut message: Json) -> Json {
    if let Some(caps) = message
        .get_mut("params")
        .and_then(|p| p.get_mut("capabilities"))
        .and_then(Json::as_object_mut)
    {
        caps.remove("roots");
    }
    message
}
