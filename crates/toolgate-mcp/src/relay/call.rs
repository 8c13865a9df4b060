//! One `tools/call`, decided in a task of its session: the gateway's
//! decision, a wait for an approval (`--wait-approval`), a question to the
//! client's user (elicitation), the approved call run with its token. The
//! task changes no state itself: it ends with a [`Done`] the session's loop
//! applies (forward the request, or answer it; remember or forget a held call).

use super::reply;
use super::session::Barrier;
use super::Options;
use crate::config::Trusted;
use crate::decider::{Decided, Decider, Held, Refused};
use crate::envelope::{Envelope, Id};
use serde_json::{json, Value as Json};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use toolgate_engine::Context;
use toolgate_runtime::gateway::{canonical, random_token, Call};
use toolgate_runtime::journal::sha256_hex;
use toolgate_runtime::store::CallKey;

/// How long the client's user has to answer an approval question.
const ASK_TIMEOUT: Duration = Duration::from_secs(300);

/// A held call's key in its session: its tool and the SHA-256 of its
/// arguments' canonical JSON.
pub(super) type HeldKey = (String, String);

/// What a call's task asks the loop to send the client's user.
#[derive(Debug)]
pub(super) struct Ask {
    /// The question's id: unguessable, so that an upstream cannot ask the
    /// client a question of its own under it and have the user's answer
    /// taken as an approval.
    pub id: Id,
    /// The `elicitation/create` request.
    pub question: Envelope,
    /// Where the client's answer goes.
    pub answer: oneshot::Sender<Envelope>,
}

/// How a call's end changes the session's held calls.
#[derive(Debug)]
pub(super) enum HeldUpdate {
    Unchanged,
    /// Held for approval: the same call made again runs once approved.
    Remember(HeldKey, Call),
    /// Ran, or finished without running: a new call next time.
    Forget(HeldKey),
}

/// A decided call.
#[derive(Debug)]
pub(super) struct Done {
    /// The client's request id.
    pub id: Id,
    /// The request, as parsed: what is forwarded when allowed.
    pub request: Envelope,
    /// Go ahead with this key, or the tool result the client gets instead.
    pub outcome: Result<CallKey, Json>,
    pub held: HeldUpdate,
}

/// A call's task that ended without a [`Done`]: the request it was deciding.
#[derive(Debug)]
pub(super) struct Lost {
    pub id: Id,
}

/// What a call's task works with.
pub(super) struct CallTask {
    pub decider: Arc<dyn Decider>,
    pub options: Options,
    /// The client declared the `elicitation` capability.
    pub elicits: bool,
    pub asks: mpsc::Sender<Ask>,
    /// The observations of outputs the client already has: decided after them.
    pub after: Barrier,
}

/// The gateway's call for a `tools/call`'s parameters; the id is new, the
/// context is the proxy's own.
pub(super) fn call_of(trusted: &Trusted, params: Option<&Json>) -> Result<Call, String> {
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
        session: trusted.session.clone(),
        id: format!("mcp-{}", id.get(..24).unwrap_or(&id)),
        agent: trusted.agent.clone(),
        tool: tool.to_string(),
        args,
        context: Context {
            tenant: trusted.tenant.clone(),
            env: trusted.env.clone(),
            fields: trusted.fields.clone(),
        },
    })
}

/// The key of a held call in its session.
pub(super) fn held_key(call: &Call) -> HeldKey {
    let args = sha256_hex(canonical(&call.args).as_bytes());
    (call.tool.clone(), args)
}

type Outcome = (Result<CallKey, Json>, HeldUpdate);

/// The next step of a decided call.
enum Step {
    Done(Outcome),
    Wait(reply::Pending, Duration),
}

impl CallTask {
    /// Decides `call` (made again after `before` was held in this session, if it was).
    pub(super) async fn run(
        mut self,
        id: Id,
        request: Envelope,
        call: Call,
        before: Option<Call>,
    ) -> Done {
        let observed = std::mem::take(&mut self.after).wait().await;
        let (outcome, held) = match before {
            // The agent read an output the gateway did not record: its
            // session cannot be judged, so nothing more is decided in it.
            _ if !observed => {
                let refused = Refused {
                    reason: "an earlier tool result of this session could not be recorded, \
                             so its session cannot be judged: no more calls in it"
                        .into(),
                    rule: None,
                    denial: false,
                };
                (
                    Err(reply::refused(&call.tool, &refused)),
                    HeldUpdate::Unchanged,
                )
            }
            Some(held) => self.again(&call, held).await,
            None => self.decide(&call).await,
        };
        Done {
            id,
            request,
            outcome,
            held,
        }
    }

    /// A call made again after it was held in this session: still pending,
    /// approved (runs once with its token) or finished (forgotten, decided anew).
    async fn again(&self, call: &Call, held: Call) -> Outcome {
        let key = held_key(&held);
        match self.decider.held(&held.key(), None).await {
            Held::Pending => {
                let pending = pending_of(&held, None, String::new());
                (Err(reply::pending(&pending)), HeldUpdate::Unchanged)
            }
            Held::Approved(token) => (self.execute(&held, &token).await, HeldUpdate::Forget(key)),
            Held::Finished(_) => match self.decide(call).await {
                (outcome, HeldUpdate::Unchanged) => (outcome, HeldUpdate::Forget(key)),
                decided => decided,
            },
        }
    }

    /// Decides a new call.
    async fn decide(&self, call: &Call) -> Outcome {
        let decided = self.decider.authorize(call).await;
        if let Decided::Pending { args_digest, .. } = &decided {
            if let Some(answer) = self.ask_user(call, args_digest).await {
                return (answer, HeldUpdate::Unchanged);
            }
        }
        match self.step(call, decided) {
            Step::Done(done) => done,
            Step::Wait(pending, wait) => self.wait(call, wait, &pending).await,
        }
    }

    /// What a decision means for the call.
    fn step(&self, call: &Call, decided: Decided) -> Step {
        let (id, rule, args_digest) = match decided {
            Decided::Allowed(key) => return Step::Done((Ok(key), HeldUpdate::Unchanged)),
            Decided::Refused(r) => {
                let refused = reply::refused(&call.tool, &r);
                return Step::Done((Err(refused), HeldUpdate::Unchanged));
            }
            Decided::Pending {
                id,
                rule,
                args_digest,
            } => (id, rule, args_digest),
        };
        let pending = pending_of(call, rule, args_digest);
        let pending = reply::Pending { id, ..pending };
        match self.options.wait_approval {
            Some(wait) => Step::Wait(pending, wait),
            None => Step::Done((Err(reply::pending(&pending)), remember(call))),
        }
    }

    /// Holds a pending call until it is approved (then runs it), rejected
    /// or the wait is over.
    async fn wait(&self, call: &Call, wait: Duration, pending: &reply::Pending) -> Outcome {
        match self.decider.held(&call.key(), Some(wait)).await {
            Held::Approved(token) => (self.execute(call, &token).await, HeldUpdate::Unchanged),
            Held::Pending => (Err(reply::not_approved(pending, "pending")), remember(call)),
            Held::Finished(state) => {
                let answer = reply::not_approved(pending, &state);
                (Err(answer), HeldUpdate::Unchanged)
            }
        }
    }

    async fn execute(&self, call: &Call, token: &str) -> Result<CallKey, Json> {
        match self.decider.execute(call, token).await {
            Decided::Allowed(key) => Ok(key),
            Decided::Refused(r) => Err(reply::refused(&call.tool, &r)),
            Decided::Pending { .. } => Err(reply::refused(
                &call.tool,
                &Refused {
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
        if !self.options.ask_client_user || !self.elicits || !self.decider.user_approves(&key).await
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

    /// Has the loop send an `elicitation/create` to the client; waits for its answer.
    async fn elicit(&self, message: String) -> Option<Envelope> {
        let (answer, answered) = oneshot::channel();
        let id = Id::string(&format!("toolgate-ask-{}", random_token().ok()?));
        let schema = json!({"type": "object", "required": ["approve"], "properties": {
            "approve": {"type": "boolean", "title": "Approve", "description": "Run this exact call once"}}});
        let params = json!({"message": message, "requestedSchema": schema});
        let question = Envelope::request(id.clone(), "elicitation/create", params);
        let ask = Ask {
            id,
            question,
            answer,
        };
        self.asks.send(ask).await.ok()?;
        tokio::time::timeout(ASK_TIMEOUT, answered).await.ok()?.ok()
    }
}

/// Remember `call` as held in this session.
fn remember(call: &Call) -> HeldUpdate {
    HeldUpdate::Remember(held_key(call), call.clone())
}

/// The answer's words for a held call.
fn pending_of(call: &Call, rule: Option<String>, args_digest: String) -> reply::Pending {
    reply::Pending {
        id: call.id.clone(),
        tenant: call.context.tenant.clone(),
        tool: call.tool.clone(),
        rule,
        args_digest,
    }
}
