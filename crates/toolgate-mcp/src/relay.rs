//! The message loop between one downstream client and one upstream server.
//!
//! Messages are JSON-RPC texts. Every message is forwarded as the text it
//! arrived as, except: a `tools/list` answer (filtered by [`Visibility`]),
//! a `tools/call` request (decided by the gateway first: forwarded only
//! when allowed, answered by the proxy otherwise), the client's `roots`
//! (not forwarded unless configured: they would widen the server's reach)
//! and messages the proxy cannot read (answered with a JSON-RPC error,
//! never forwarded: fail closed).

use crate::config::Trusted;
use crate::tools::{filter_list, Visibility};
use serde_json::{json, Value as Json};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::mpsc::UnboundedSender;
use toolgate_engine::Context;
use toolgate_runtime::gateway::{random_token, Authorized, Call, GatewayError, Lease};
use toolgate_runtime::record::ToolNotice;
use toolgate_runtime::store::CallKey;
use toolgate_server::Gate;

mod reply;

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
    /// Calls held for approval in this session, by tool and argument digest,
    /// so that the same call made again after its approval runs with its token.
    held: HashMap<(String, String), Call>,
    /// Notices already journaled.
    reported: HashSet<String>,
}

/// One client session with one upstream.
pub struct Relay {
    gate: Arc<Gate>,
    trusted: Trusted,
    visibility: Visibility,
    options: Options,
    to_upstream: UnboundedSender<String>,
    to_client: UnboundedSender<String>,
    state: Mutex<State>,
}

impl Relay {
    /// A relay over `gate`, sending to the upstream and the client through the channels.
    pub fn new(
        gate: Arc<Gate>,
        trusted: Trusted,
        visibility: Visibility,
        options: Options,
        to_upstream: UnboundedSender<String>,
        to_client: UnboundedSender<String>,
    ) -> Arc<Relay> {
        Arc::new(Relay {
            gate,
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
        let _ = self.to_client.send(message.to_string());
    }

    fn to_upstream(&self, text: String) {
        let _ = self.to_upstream.send(text);
    }

    /// A message from the client.
    pub fn from_client(self: &Arc<Self>, text: String) {
        let message: Json = match serde_json::from_str(&text) {
            Ok(m) => m,
            Err(e) => {
                let why = format!("not JSON: {e}");
                return self.to_client(&reply::rpc_error(&Json::Null, PARSE_ERROR, &why));
            }
        };
        let Some(object) = message.as_object() else {
            let why = "the proxy relays single JSON-RPC messages, not batches";
            return self.to_client(&reply::rpc_error(&Json::Null, INVALID_REQUEST, why));
        };
        let method = object.get("method").and_then(Json::as_str);
        let id = object.get("id");
        match (method, id) {
            (Some("tools/list"), Some(id)) => {
                self.state().inflight.insert(id.to_string(), Inflight::List);
                self.to_upstream(text);
            }
            (Some("tools/call"), Some(id)) => {
                let relay = self.clone();
                let (id, params) = (id.clone(), object.get("params").cloned());
                tokio::spawn(async move { relay.call_tool(id, text, params).await });
            }
            (Some("tools/call"), None) => {}
            (Some("initialize"), Some(_)) if !self.options.forward_roots => {
                self.to_upstream(without_roots(message).to_string());
            }
            (Some("notifications/roots/list_changed"), None) if !self.options.forward_roots => {}
            (Some(_), _) => self.to_upstream(text),
            (None, Some(_)) => self.to_upstream(text),
            (None, None) => {
                let why = "a JSON-RPC message has a `method` or an `id`";
                self.to_client(&reply::rpc_error(&Json::Null, INVALID_REQUEST, why));
            }
        }
    }

    /// A message from the upstream.
    pub async fn from_upstream(self: &Arc<Self>, text: String) {
        let Ok(mut message) = serde_json::from_str::<Json>(&text) else {
            // Not the proxy's to judge: the client sees what the upstream sent.
            return self.to_client_text(text);
        };
        let method = message.get("method").and_then(Json::as_str);
        if method == Some("roots/list") && !self.options.forward_roots {
            let id = message.get("id").cloned().unwrap_or(Json::Null);
            let why = "the proxy does not forward the client's roots (`--forward-roots`)";
            self.to_upstream(reply::rpc_error(&id, METHOD_NOT_FOUND, why).to_string());
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
                let outcome = reply::call_outcome(&message);
                if let Err(e) = self.gate.complete(&key, outcome).await {
                    eprintln!("toolgate: cannot journal the result of `{}`: {e}", key.id);
                }
                self.to_client_text(text);
            }
            None => self.to_client_text(text),
        }
    }

    fn to_client_text(&self, text: String) {
        let _ = self.to_client.send(text);
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
            if let Err(e) = self.gate.tool_notice(notice).await {
                eprintln!("toolgate: cannot journal a tool notice: {e}");
            }
        }
    }

    /// Decides a `tools/call` and forwards it, or answers it.
    async fn call_tool(self: Arc<Self>, id: Json, text: String, params: Option<Json>) {
        let call = match self.call_of(params.as_ref()) {
            Ok(call) => call,
            Err(why) => return self.to_client(&reply::rpc_error(&id, INVALID_PARAMS, &why)),
        };
        let answer = match self.approved_before(&call).await {
            Some(answer) => answer,
            None => self.decide(&call).await,
        };
        match answer {
            Ok(lease) => {
                let key = lease.key;
                self.state()
                    .inflight
                    .insert(id.to_string(), Inflight::Call(key));
                self.to_upstream(text);
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

    /// Decides a new call: a lease, or the tool result the client gets instead.
    async fn decide(&self, call: &Call) -> Result<Lease, Json> {
        match self.gate.authorize(call).await {
            Ok(Authorized::Allowed(lease)) => Ok(lease),
            Ok(Authorized::Pending {
                id,
                rule,
                args_digest,
                ..
            }) => {
                let pending = reply::Pending {
                    id: &id,
                    tenant: &call.context.tenant,
                    tool: &call.tool,
                    rule: rule.as_deref(),
                    args_digest: &args_digest,
                };
                match self.options.wait_approval {
                    Some(wait) => self.wait(call, wait, &pending).await,
                    None => {
                        self.remember(call, &args_digest);
                        Err(reply::pending(&pending))
                    }
                }
            }
            Err(e) => Err(reply::refused(&call.tool, &e)),
        }
    }

    /// Holds a pending call until it is approved (then runs it), rejected
    /// or the wait is over.
    async fn wait(
        &self,
        call: &Call,
        wait: Duration,
        pending: &reply::Pending<'_>,
    ) -> Result<Lease, Json> {
        let key = call.key();
        match self.gate.wait_for_approval(&key, wait).await {
            Some(token) => self
                .gate
                .authorize_approved(call, &token)
                .await
                .map_err(|e| reply::refused(&call.tool, &e)),
            None => {
                let state = self.gate.call_state(&key);
                let state = state.map_or("unknown", |s| s.as_str());
                if state == "pending" {
                    self.remember(call, pending.args_digest);
                }
                Err(reply::not_approved(pending, state))
            }
        }
    }

    fn remember(&self, call: &Call, args_digest: &str) {
        let key = (call.tool.clone(), args_digest.to_string());
        self.state().held.insert(key, call.clone());
    }

    /// A call made again after it was held in this session: still pending,
    /// approved (runs once with its token) or finished (forgotten, decided anew).
    async fn approved_before(&self, call: &Call) -> Option<Result<Lease, Json>> {
        let digest = self.gate.binding(call).args_digest;
        let key = (call.tool.clone(), digest.clone());
        let held = self.state().held.get(&key).cloned()?;
        let state = self.gate.call_state(&held.key());
        use toolgate_runtime::gateway::CallState;
        match state {
            Some(CallState::Pending) => {
                let pending = reply::Pending {
                    id: &held.id,
                    tenant: &held.context.tenant,
                    tool: &held.tool,
                    rule: None,
                    args_digest: &digest,
                };
                Some(Err(reply::pending(&pending)))
            }
            Some(CallState::Approved { token: Some(token) }) => {
                self.state().held.remove(&key);
                let lease = self.gate.authorize_approved(&held, &token).await;
                Some(lease.map_err(|e: GatewayError| reply::refused(&call.tool, &e)))
            }
            _ => {
                self.state().held.remove(&key);
                None
            }
        }
    }
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
