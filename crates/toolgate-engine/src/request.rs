//! Requests: who calls which tool with which arguments, in which trusted context.

use crate::provenance::SessionView;
use serde_json::{Map, Value as Json};
use thiserror::Error;
use toolgate_check::time::Timestamp;

/// The trusted request context. The caller builds it from its own
/// authenticated request (never from model output).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Context {
    /// The tenant the call is made for.
    pub tenant: String,
    /// The environment (`dev`, `prod`, ...).
    pub env: String,
    /// The policy's declared `context` fields.
    pub fields: Map<String, Json>,
}

/// A proposed tool call, borrowed.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    /// The calling agent.
    pub agent: &'a str,
    /// The tool it wants to call.
    pub tool: &'a str,
    /// The arguments as the model wrote them (untrusted).
    pub args: &'a Json,
    /// The trusted context.
    pub context: &'a Context,
    /// The time `now` reads: the caller's trusted clock (the runtime's
    /// `Clock`), never the request's own text. `None`: a condition reading
    /// `now` cannot be evaluated (a deny applies, a grant does not).
    pub now: Option<Timestamp>,
    /// The call's session, as the runtime's store sees it. `None`: every
    /// provenance and session condition (`from`, `session.*`) cannot be
    /// evaluated (a deny applies, a grant does not).
    pub session: Option<&'a dyn SessionView>,
}

impl<'a> Request<'a> {
    /// The same request decided at `now`.
    pub fn at(self, now: Timestamp) -> Self {
        Request {
            now: Some(now),
            ..self
        }
    }

    /// The same request in `session`.
    pub fn in_session(self, session: &'a dyn SessionView) -> Self {
        Request {
            session: Some(session),
            ..self
        }
    }
}

/// A request that owns its parts (as read from JSON).
#[derive(Clone, Debug, PartialEq)]
pub struct OwnedRequest {
    /// The calling agent.
    pub agent: String,
    /// The tool.
    pub tool: String,
    /// The arguments.
    pub args: Json,
    /// The trusted context.
    pub context: Context,
}

/// A request that could not be read.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum RequestError {
    /// Not JSON.
    #[error("invalid JSON: {0}")]
    Json(String),
    /// JSON of the wrong shape.
    #[error("{0}")]
    Shape(String),
}

impl OwnedRequest {
    /// Reads `{"agent", "tool", "args", "context": {"tenant", "env", ...}}`.
    /// `args` may be omitted (an empty object). serde_json limits nesting to 128 levels.
    pub fn from_json(text: &str) -> Result<Self, RequestError> {
        let v: Json = serde_json::from_str(text).map_err(|e| RequestError::Json(e.to_string()))?;
        let Json::Object(mut top) = v else {
            return Err(RequestError::Shape(
                "a request must be a JSON object".into(),
            ));
        };
        let agent = take_string(&mut top, "agent", "")?;
        let tool = take_string(&mut top, "tool", "")?;
        let args = top
            .remove("args")
            .unwrap_or_else(|| Json::Object(Map::new()));
        let Some(Json::Object(mut ctx)) = top.remove("context") else {
            return Err(RequestError::Shape(
                "`context` must be an object with `tenant` and `env`".into(),
            ));
        };
        let tenant = take_string(&mut ctx, "tenant", "context.")?;
        let env = take_string(&mut ctx, "env", "context.")?;
        if let Some(extra) = top.keys().next() {
            return Err(RequestError::Shape(format!("unknown field `{extra}`")));
        }
        Ok(OwnedRequest {
            agent,
            tool,
            args,
            context: Context {
                tenant,
                env,
                fields: ctx,
            },
        })
    }

    /// Borrows it as a [`Request`] without a time (see [`Request::at`]).
    pub fn as_request(&self) -> Request<'_> {
        Request {
            agent: &self.agent,
            tool: &self.tool,
            args: &self.args,
            context: &self.context,
            now: None,
            session: None,
        }
    }
}

fn take_string(
    map: &mut Map<String, Json>,
    key: &str,
    prefix: &str,
) -> Result<String, RequestError> {
    match map.remove(key) {
        Some(Json::String(s)) if !s.is_empty() => Ok(s),
        Some(Json::String(_)) => Err(RequestError::Shape(format!(
            "`{prefix}{key}` must not be empty"
        ))),
        Some(_) => Err(RequestError::Shape(format!(
            "`{prefix}{key}` must be a string"
        ))),
        None => Err(RequestError::Shape(format!("missing `{prefix}{key}`"))),
    }
}
