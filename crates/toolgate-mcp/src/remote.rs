//! `--gateway URL --key K`: decisions, approvals, kill switch and journal in
//! a shared `policyc serve` (docs/server.md's calls API), so many proxies
//! share one policy and one set of approvals. `POST /v1/calls` decides (in
//! the connection's session), `POST /v1/calls/{id}/result` reports (with
//! the output, observed in that session), `GET /v1/calls/{id}?wait=` follows a
//! held call, `POST /v1/calls/{id}/execute` runs an approved one. A server
//! that cannot be reached or refuses is a refusal: the call does not run.
//! The server has no endpoint for tool notices or refused MCP callers: those
//! go to stderr only; approvals are the server's approvers' (no elicitation).

use crate::config::RemoteGateway;
use crate::decider::{Decided, Decider, Fut, Held, Refused};
use serde_json::Value as Json;
use std::time::{Duration, Instant};
use toolgate_api::client::{Client, ClientError};
use toolgate_api::{
    CallAnswer, CallRequest, CallState, ContextIn, ExecuteBody, Outcome, ResultBody,
};
use toolgate_runtime::gateway::Call;
use toolgate_runtime::record::ToolNotice;
use toolgate_runtime::store::CallKey;

/// The longest single long poll of a held call.
const POLL: Duration = Duration::from_secs(25);

/// The shared gateway, through the API's client.
pub struct Remote {
    client: Client,
}

impl Remote {
    /// A decider asking the server at `gateway.url` with `gateway.key`.
    pub fn new(gateway: &RemoteGateway) -> Remote {
        Remote {
            client: Client::new(
                &gateway.url,
                Some(gateway.key.clone()),
                Duration::from_secs(60),
            ),
        }
    }

    /// Runs one blocking request off the async threads.
    async fn ask<T: Send + 'static>(
        &self,
        request: impl FnOnce(&Client) -> Result<T, ClientError> + Send + 'static,
    ) -> Result<T, ClientError> {
        let client = self.client.clone();
        tokio::task::spawn_blocking(move || request(&client))
            .await
            .map_err(|e| ClientError::Transport(e.to_string()))?
    }
}

fn refusal(reason: String) -> Decided {
    Decided::Refused(Refused {
        reason,
        rule: None,
        denial: false,
    })
}

fn decided(answer: Result<CallAnswer, ClientError>) -> Decided {
    match answer {
        Ok(a) => match a.outcome {
            Outcome::Allowed => Decided::Allowed(CallKey::new(&a.tenant, &a.call)),
            Outcome::Pending => {
                let (id, args_digest) = match a.approval {
                    Some(p) => (p.id, p.args_digest),
                    None => (a.call, String::new()),
                };
                Decided::Pending {
                    id,
                    rule: a.rule,
                    args_digest,
                }
            }
            Outcome::Denied => Decided::Refused(Refused {
                reason: a.reason.unwrap_or_else(|| "denied".into()),
                rule: a.rule,
                denial: true,
            }),
        },
        Err(ClientError::Server { message, .. }) => {
            refusal(format!("the gateway answered {message}"))
        }
        Err(e) => refusal(format!("cannot reach the gateway: {e}")),
    }
}

impl Decider for Remote {
    fn authorize<'a>(&'a self, call: &'a Call) -> Fut<'a, Decided> {
        let body = CallRequest::from(call);
        Box::pin(async move { decided(self.ask(move |c| c.call(&body)).await) })
    }

    fn complete<'a>(
        &'a self,
        key: &'a CallKey,
        outcome: Result<(), String>,
        output: Option<&'a Json>,
    ) -> Fut<'a, bool> {
        let body = ResultBody {
            ok: outcome.is_ok(),
            error: outcome.err(),
            output: output.cloned(),
        };
        Box::pin(async move {
            let report = |body: ResultBody| {
                let key = key.clone();
                self.ask(move |c| c.result(&key.id, &key.tenant, &body))
            };
            let answer = match report(body.clone()).await {
                // An output larger than the server takes: the result without
                // it (the session is tainted, unless the tool is trusted).
                Err(ClientError::Server { status: 413, .. }) if body.output.is_some() => {
                    report(ResultBody {
                        output: None,
                        ..body
                    })
                    .await
                }
                answer => answer,
            };
            match answer {
                Ok(_) => true,
                Err(ClientError::Server { message, .. }) => {
                    eprintln!("toolgate: the gateway refused a result: {message}");
                    false
                }
                Err(e) => {
                    eprintln!("toolgate: {e}");
                    false
                }
            }
        })
    }

    fn held<'a>(&'a self, key: &'a CallKey, wait: Option<Duration>) -> Fut<'a, Held> {
        Box::pin(async move {
            let deadline = Instant::now() + wait.unwrap_or_default();
            loop {
                let left = deadline.saturating_duration_since(Instant::now()).min(POLL);
                let (id, tenant) = (key.id.clone(), key.tenant.clone());
                let wait = format!("{}ms", left.as_millis());
                let state = match self.ask(move |c| c.status(&id, &tenant, Some(&wait))).await {
                    Ok(s) => s,
                    Err(ClientError::Server { status: 404, .. }) => {
                        return Held::Finished("unknown".into())
                    }
                    Err(e) => return Held::Finished(format!("unknown ({e})")),
                };
                match (state.state, state.token) {
                    (CallState::Approved, Some(token)) => return Held::Approved(token),
                    (CallState::Pending, _) if Instant::now() < deadline => continue,
                    (CallState::Pending, _) => return Held::Pending,
                    (other, _) => return Held::Finished(other.as_str().to_string()),
                }
            }
        })
    }

    fn execute<'a>(&'a self, call: &'a Call, token: &'a str) -> Fut<'a, Decided> {
        let (id, tenant) = (call.id.clone(), call.context.tenant.clone());
        let body = ExecuteBody {
            token: token.to_string(),
            args: call.args.clone(),
            context: Some(ContextIn::from(&call.context)),
        };
        Box::pin(async move { decided(self.ask(move |c| c.execute(&id, &tenant, &body)).await) })
    }

    fn notice(&self, notice: ToolNotice) -> Fut<'_, ()> {
        Box::pin(async move {
            eprintln!(
                "toolgate: {} `{}`: {}",
                notice.what, notice.tool, notice.detail
            );
        })
    }

    fn access_denied<'a>(&'a self, caller: &'a str, why: &'a str) -> Fut<'a, ()> {
        Box::pin(async move { eprintln!("toolgate: refused `{caller}`: {why}") })
    }

    /// Approvals go through the shared server's approvers, never elicitation.
    fn user_approves<'a>(&'a self, _: &'a CallKey) -> Fut<'a, bool> {
        Box::pin(async { false })
    }

    fn approve_as_user<'a>(&'a self, _: &'a CallKey, _: &'a str) -> Fut<'a, Option<String>> {
        Box::pin(async { None })
    }
}
