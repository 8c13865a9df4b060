//! `--gateway URL --key K`: decisions, approvals, kill switch and journal in
//! a shared `policyc serve` (docs/server.md's calls API), so many proxies
//! share one policy and one set of approvals. `POST /v1/calls` decides,
//! `POST /v1/calls/{id}/result` reports, `GET /v1/calls/{id}?wait=` follows a
//! held call, `POST /v1/calls/{id}/execute` runs an approved one. A server
//! that cannot be reached or refuses is a refusal: the call does not run.
//! The server has no endpoint for tool notices or refused MCP callers: those
//! go to stderr only; approvals are the server's approvers' (no elicitation).

use crate::config::RemoteGateway;
use crate::decider::{Decided, Decider, Fut, Held, Refused};
use serde_json::{json, Value as Json};
use std::time::{Duration, Instant};
use toolgate_runtime::gateway::Call;
use toolgate_runtime::record::ToolNotice;
use toolgate_runtime::store::CallKey;

/// The longest a single long poll asks the server to hold (its cap is 55 s).
const POLL: Duration = Duration::from_secs(25);

/// A shared `policyc serve`.
pub struct Remote {
    base: String,
    key: String,
    agent: ureq::Agent,
}

impl Remote {
    /// A client of the server at `gateway.url` with its service key.
    pub fn new(gateway: &RemoteGateway) -> Remote {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build();
        Remote {
            base: gateway.url.trim_end_matches('/').to_string(),
            key: gateway.key.clone(),
            agent: config.into(),
        }
    }

    /// One request (on a blocking thread): the status and the JSON answer.
    async fn send(
        &self,
        method: &'static str,
        path: String,
        body: Option<Json>,
    ) -> Result<(u16, Json), String> {
        let (agent, url, auth) = (
            self.agent.clone(),
            format!("{}{path}", self.base),
            format!("Bearer {}", self.key),
        );
        let sent = tokio::task::spawn_blocking(move || {
            let answer = match (method, body) {
                ("POST", Some(b)) => agent
                    .post(&url)
                    .header("authorization", &auth)
                    .send_json(&b),
                _ => agent.get(&url).header("authorization", &auth).call(),
            };
            let mut resp = answer.map_err(|e| format!("cannot reach the gateway: {e}"))?;
            let status = resp.status().as_u16();
            let text = resp
                .body_mut()
                .read_to_string()
                .map_err(|e| e.to_string())?;
            Ok::<_, String>((
                status,
                serde_json::from_str(&text).unwrap_or(Json::String(text)),
            ))
        });
        sent.await.map_err(|e| e.to_string())?
    }

    async fn decided(&self, path: String, body: Json) -> Decided {
        match self.send("POST", path, Some(body)).await {
            Ok((200, answer)) => from_answer(&answer),
            Ok((status, problem)) => refusal(format!(
                "the gateway answered {status}: {}",
                detail(&problem)
            )),
            Err(e) => refusal(e),
        }
    }
}

fn refusal(reason: String) -> Decided {
    Decided::Refused(Refused {
        reason,
        rule: None,
        denial: false,
    })
}

fn detail(problem: &Json) -> String {
    let title = problem["title"].as_str().unwrap_or("error");
    match problem["detail"].as_str() {
        Some(d) => format!("{title}: {d}"),
        None => title.to_string(),
    }
}

fn text(v: &Json, key: &str) -> Option<String> {
    v[key].as_str().map(String::from)
}

/// A `CallAnswer` as the relay's decision.
fn from_answer(a: &Json) -> Decided {
    match a["outcome"].as_str() {
        Some("allowed") => Decided::Allowed(CallKey::new(
            a["tenant"].as_str().unwrap_or_default(),
            a["call"].as_str().unwrap_or_default(),
        )),
        Some("pending") => Decided::Pending {
            id: text(&a["approval"], "id")
                .or_else(|| text(a, "call"))
                .unwrap_or_default(),
            rule: text(a, "rule"),
            args_digest: text(&a["approval"], "args_digest").unwrap_or_default(),
        },
        Some("denied") => Decided::Refused(Refused {
            reason: text(a, "reason").unwrap_or_else(|| "denied".into()),
            rule: text(a, "rule"),
            denial: true,
        }),
        _ => refusal(format!("the gateway's answer is not a decision: {a}")),
    }
}

fn context(call: &Call) -> Json {
    let mut c = call.context.fields.clone();
    c.insert("tenant".into(), json!(call.context.tenant));
    c.insert("env".into(), json!(call.context.env));
    Json::Object(c)
}

fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

impl Decider for Remote {
    fn authorize<'a>(&'a self, call: &'a Call) -> Fut<'a, Decided> {
        let body = json!({"id": call.id, "agent": call.agent, "tool": call.tool,
            "args": call.args, "context": context(call)});
        Box::pin(self.decided("/v1/calls".into(), body))
    }

    fn complete<'a>(&'a self, key: &'a CallKey, outcome: Result<(), String>) -> Fut<'a, ()> {
        let body = match outcome {
            Ok(()) => json!({"ok": true}),
            Err(e) => json!({"ok": false, "error": e}),
        };
        let path = format!(
            "/v1/calls/{}/result?tenant={}",
            encode(&key.id),
            encode(&key.tenant)
        );
        Box::pin(async move {
            match self.send("POST", path, Some(body)).await {
                Ok((200, _)) => {}
                Ok((status, p)) => eprintln!(
                    "toolgate: the gateway refused a result ({status}): {}",
                    detail(&p)
                ),
                Err(e) => eprintln!("toolgate: {e}"),
            }
        })
    }

    fn held<'a>(&'a self, key: &'a CallKey, wait: Option<Duration>) -> Fut<'a, Held> {
        Box::pin(async move {
            let deadline = Instant::now() + wait.unwrap_or_default();
            loop {
                let left = deadline.saturating_duration_since(Instant::now()).min(POLL);
                let path = format!(
                    "/v1/calls/{}?tenant={}&wait={}ms",
                    encode(&key.id),
                    encode(&key.tenant),
                    left.as_millis()
                );
                let state = match self.send("GET", path, None).await {
                    Ok((200, s)) => s,
                    Ok((404, _)) => return Held::Finished("unknown".into()),
                    Ok((status, p)) => {
                        return Held::Finished(format!("unknown ({status}: {})", detail(&p)))
                    }
                    Err(e) => return Held::Finished(format!("unknown ({e})")),
                };
                match (state["state"].as_str(), text(&state, "token")) {
                    (Some("approved"), Some(token)) => return Held::Approved(token),
                    (Some("pending"), _) if Instant::now() < deadline => continue,
                    (Some("pending"), _) => return Held::Pending,
                    (other, _) => return Held::Finished(other.unwrap_or("unknown").to_string()),
                }
            }
        })
    }

    fn execute<'a>(&'a self, call: &'a Call, token: &'a str) -> Fut<'a, Decided> {
        let path = format!("/v1/calls/{}/execute", encode(&call.id));
        let body = json!({"token": token, "args": call.args, "context": context(call)});
        Box::pin(self.decided(path, body))
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
