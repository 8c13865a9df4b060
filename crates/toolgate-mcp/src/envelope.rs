//! A JSON-RPC message parsed once: its [`Kind`] (request, notification,
//! response or error, with its id and method) beside the parsed value. The
//! relay decides on the kind and forwards the value, re-serialized as a
//! [`Line`] ([`Outgoing`]), so no message is parsed twice and none is
//! forwarded as the bytes it arrived as.
//!
//! What is not one JSON-RPC message is [`Malformed`], and is never
//! forwarded: a batch, a value that is not an object, a `method` that is not
//! a string, an `id` that is neither a string nor a number, an answer with
//! both or neither of `result` and `error`, an object with neither a
//! `method` nor an `id`.

use crate::wire::Line;
use serde_json::{json, Map, Value as Json};
use thiserror::Error;

/// JSON-RPC: the text is not JSON.
pub const PARSE_ERROR: i64 = -32700;
/// JSON-RPC: not a message the proxy can relay.
pub const INVALID_REQUEST: i64 = -32600;

/// A JSON-RPC id: the compact JSON text of a string or a number (`null`
/// only on an error answering a message whose id could not be read).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Id(String);

impl Id {
    /// The id of an answer to a message whose id could not be read.
    pub fn null() -> Id {
        Id("null".into())
    }

    /// A string id.
    pub fn string(s: &str) -> Id {
        Id(Json::from(s).to_string())
    }

    /// The id as JSON.
    pub fn to_json(&self) -> Json {
        serde_json::from_str(&self.0).unwrap_or(Json::Null)
    }

    fn of(value: &Json) -> Option<Id> {
        matches!(value, Json::String(_) | Json::Number(_)).then(|| Id(value.to_string()))
    }
}

impl std::fmt::Display for Id {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a message is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A request: it expects an answer under its id.
    Request {
        /// Its id.
        id: Id,
        /// Its method.
        method: String,
    },
    /// A notification: no id, no answer.
    Notification {
        /// Its method.
        method: String,
    },
    /// A successful answer (`result`).
    Response {
        /// The id of the request it answers.
        id: Id,
    },
    /// An error answer (`error`).
    Error {
        /// The id of the request it answers (`null` when that could not be read).
        id: Id,
    },
}

impl Kind {
    /// The id of an answer (a response or an error).
    pub fn answers(&self) -> Option<&Id> {
        match self {
            Kind::Response { id } | Kind::Error { id } => Some(id),
            Kind::Request { .. } | Kind::Notification { .. } => None,
        }
    }

    /// The method of a request or a notification.
    pub fn method(&self) -> Option<&str> {
        match self {
            Kind::Request { method, .. } | Kind::Notification { method } => Some(method),
            Kind::Response { .. } | Kind::Error { .. } => None,
        }
    }
}

/// Why a text is not one JSON-RPC message the proxy relays.
#[derive(Debug, Error)]
pub enum Malformed {
    /// Not JSON at all.
    #[error("not JSON: {0}")]
    NotJson(#[from] serde_json::Error),
    /// A JSON array.
    #[error("the proxy relays single JSON-RPC messages, not batches")]
    Batch,
    /// A JSON value that is neither an object nor an array.
    #[error("a JSON-RPC message is a JSON object")]
    NotAnObject,
    /// `method` is there but is not a string.
    #[error("`method` must be a string")]
    Method,
    /// `id` is there but is neither a string nor a number.
    #[error("`id` must be a string or a number")]
    Id,
    /// Neither `method` nor `id`.
    #[error("a JSON-RPC message has a `method` or an `id`")]
    Neither,
    /// An answer with both or neither of `result` and `error`.
    #[error("an answer has exactly one of `result` and `error`")]
    Answer,
    /// A line longer than the proxy reads (its bytes were skipped).
    #[error("a message is at most {max} bytes: this one was not read")]
    TooLong {
        /// The cap, in bytes.
        max: usize,
    },
}

impl Malformed {
    /// The JSON-RPC error code the proxy answers it with.
    pub fn code(&self) -> i64 {
        match self {
            Malformed::NotJson(_) => PARSE_ERROR,
            _ => INVALID_REQUEST,
        }
    }
}

/// One JSON-RPC message, parsed.
#[derive(Clone, Debug, PartialEq)]
pub struct Envelope {
    kind: Kind,
    /// Always a JSON object.
    message: Json,
}

impl Envelope {
    /// Parses one message from `text` (the only parse of it).
    pub fn parse(text: &[u8]) -> Result<Envelope, Malformed> {
        Envelope::from_value(serde_json::from_slice(text)?)
    }

    /// Reads a parsed value as one message.
    pub fn from_value(message: Json) -> Result<Envelope, Malformed> {
        let object = match &message {
            Json::Object(object) => object,
            Json::Array(_) => return Err(Malformed::Batch),
            _ => return Err(Malformed::NotAnObject),
        };
        let kind = kind_of(object)?;
        Ok(Envelope { kind, message })
    }

    /// The proxy's own request.
    pub fn request(id: Id, method: &str, params: Json) -> Envelope {
        let message =
            json!({"jsonrpc": "2.0", "id": id.to_json(), "method": method, "params": params});
        let method = method.to_string();
        Envelope {
            kind: Kind::Request { id, method },
            message,
        }
    }

    /// The proxy's own successful answer.
    pub fn result(id: Id, result: Json) -> Envelope {
        let message = json!({"jsonrpc": "2.0", "id": id.to_json(), "result": result});
        Envelope {
            kind: Kind::Response { id },
            message,
        }
    }

    /// The proxy's own error answer.
    pub fn error(id: Id, code: i64, text: &str) -> Envelope {
        let message = json!({"jsonrpc": "2.0", "id": id.to_json(),
            "error": {"code": code, "message": text}});
        Envelope {
            kind: Kind::Error { id },
            message,
        }
    }

    /// What it is.
    pub fn kind(&self) -> &Kind {
        &self.kind
    }

    /// The parsed message (a JSON object).
    pub fn value(&self) -> &Json {
        &self.message
    }

    /// A member of the message (`params`, `result`, `error`).
    pub fn get(&self, member: &str) -> Option<&Json> {
        self.message.get(member)
    }

    /// A member's value, to change in place. The members that make the
    /// kind (`method`, `id`, `result`, `error`) stay present whatever is done to it.
    pub(crate) fn get_mut(&mut self, member: &str) -> Option<&mut Json> {
        self.message.get_mut(member)
    }
}

/// The kind of a JSON-RPC object, or why it is none.
fn kind_of(object: &Map<String, Json>) -> Result<Kind, Malformed> {
    let id = object.get("id").map(|id| Id::of(id).ok_or(Malformed::Id));
    match (object.get("method"), id) {
        (Some(Json::String(method)), Some(id)) => Ok(Kind::Request {
            id: id?,
            method: method.clone(),
        }),
        (Some(Json::String(method)), None) => Ok(Kind::Notification {
            method: method.clone(),
        }),
        (Some(_), _) => Err(Malformed::Method),
        (None, None) => Err(Malformed::Neither),
        (None, Some(id)) => answer_kind(object, id),
    }
}

/// An answer's kind: a response or an error; an error may answer under `id: null`.
fn answer_kind(object: &Map<String, Json>, id: Result<Id, Malformed>) -> Result<Kind, Malformed> {
    let null_id = object.get("id") == Some(&Json::Null);
    match (object.contains_key("result"), object.contains_key("error")) {
        (true, false) => Ok(Kind::Response { id: id? }),
        (false, true) if null_id => Ok(Kind::Error { id: Id::null() }),
        (false, true) => Ok(Kind::Error { id: id? }),
        _ => Err(Malformed::Answer),
    }
}

/// A message on its way out: its kind (for routing, without parsing it
/// again) and its wire form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing {
    /// What it is.
    pub kind: Kind,
    /// What is written.
    pub line: Line,
}

impl From<Envelope> for Outgoing {
    fn from(envelope: Envelope) -> Outgoing {
        Outgoing {
            line: Line::of(&envelope.message),
            kind: envelope.kind,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Envelope, Id, Kind, Malformed};

    fn kind(text: &str) -> Result<Kind, String> {
        Envelope::parse(text.as_bytes())
            .map(|e| e.kind().clone())
            .map_err(|e| e.to_string())
    }

    fn request(id: &str, method: &str) -> Result<Kind, String> {
        let (id, method) = (Id(id.into()), method.into());
        Ok(Kind::Request { id, method })
    }

    #[test]
    fn each_message_has_one_kind() {
        assert_eq!(kind(r#"{"id":1,"method":"ping"}"#), request("1", "ping"));
        assert_eq!(kind(r#"{"id":"a","method":"x"}"#), request("\"a\"", "x"));
        let notification = Kind::Notification {
            method: "notifications/x".into(),
        };
        assert_eq!(kind(r#"{"method":"notifications/x"}"#), Ok(notification));
        let response = Kind::Response { id: Id("2".into()) };
        assert_eq!(kind(r#"{"id":2,"result":{}}"#), Ok(response));
        let error = Kind::Error { id: Id::null() };
        assert_eq!(kind(r#"{"id":null,"error":{"code":1}}"#), Ok(error));
    }

    #[test]
    fn what_is_not_one_message_is_malformed_and_says_why() {
        let cases = [
            ("not json", "not JSON"),
            (r#"[{"id":1,"method":"ping"}]"#, "not batches"),
            ("5", "a JSON object"),
            (r#"{"id":1,"method":5}"#, "`method` must be a string"),
            (
                r#"{"id":{},"method":"ping"}"#,
                "`id` must be a string or a number",
            ),
            (
                r#"{"id":null,"method":"ping"}"#,
                "`id` must be a string or a number",
            ),
            (
                r#"{"id":null,"result":{}}"#,
                "`id` must be a string or a number",
            ),
            (r#"{"jsonrpc":"2.0"}"#, "a `method` or an `id`"),
            (r#"{"id":1}"#, "exactly one of `result` and `error`"),
            (r#"{"id":1,"result":1,"error":{}}"#, "exactly one of"),
        ];
        for (text, why) in cases {
            let got = kind(text);
            assert!(
                got.as_ref().is_err_and(|e| e.contains(why)),
                "{text}: {got:?}"
            );
        }
        let not_json = Envelope::parse(b"{").map(|_| ());
        assert!(matches!(not_json, Err(Malformed::NotJson(_))));
        assert_eq!(Malformed::Batch.code(), -32600);
    }

    #[test]
    fn an_id_keeps_its_json() {
        for id in [
            serde_json::json!(7),
            serde_json::json!("x\u{2028}"),
            serde_json::json!(1.5),
        ] {
            let parsed = Id::of(&id).unwrap();
            assert_eq!(parsed.to_json(), id);
        }
        assert_eq!(Id::string("a").to_json(), serde_json::json!("a"));
    }
}
