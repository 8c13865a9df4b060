//! Reading JSON Lines input (`eval --requests`, `replay --trace`) one line
//! at a time, with a cap on the length of a line; and the part of a line
//! that is a wire call, read as toolgate-api's `CallRequest` and converted
//! by its one conversion (one set of limits for HTTP, `eval` and `replay`).

use serde::de::DeserializeOwned;
use serde_json::{Map, Value as Json};
use std::io::BufRead;
use toolgate_api::{CallRequest, WireError};
use toolgate_runtime::gateway::Call;

/// The longest input line read (1 MiB, not counting the newline); a longer
/// line is an error for that line and is skipped without being held.
pub(crate) const MAX_LINE: usize = 1 << 20;

/// Reads the next line of `input`, without its `\n`, into `buf`, with
/// [`MAX_LINE`] as the cap (see [`next_capped`]).
pub(crate) fn next(input: &mut dyn BufRead, buf: &mut Vec<u8>) -> std::io::Result<Option<bool>> {
    next_capped(input, MAX_LINE, buf)
}

/// Reads the next line of `input`, without its `\n`, into `buf`: `None` at
/// the end of input, `Some(true)` when it held at most `cap` bytes,
/// `Some(false)` when it was longer (then `buf` is empty: the rest of the
/// line is read and dropped piece by piece, never held whole).
pub(crate) fn next_capped(
    input: &mut dyn BufRead,
    cap: usize,
    buf: &mut Vec<u8>,
) -> std::io::Result<Option<bool>> {
    buf.clear();
    let (mut any, mut fits) = (false, true);
    loop {
        let chunk = match input.fill_buf() {
            Ok(chunk) => chunk,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            return Ok(any.then_some(fits));
        }
        any = true;
        let end = chunk.iter().position(|&b| b == b'\n');
        let part = &chunk[..end.unwrap_or(chunk.len())];
        if fits && buf.len() + part.len() <= cap {
            buf.extend_from_slice(part);
        } else {
            fits = false;
            buf.clear();
        }
        let used = end.map_or(chunk.len(), |i| i + 1);
        input.consume(used);
        if end.is_some() {
            return Ok(Some(fits));
        }
    }
}

/// Why a line is not what it should be: the field (a JSON path such as
/// `context.tenant`, when one is to blame) and the message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct LineError {
    pub field: Option<String>,
    pub message: String,
}

impl LineError {
    /// An error about the whole line.
    pub(crate) fn line(message: impl Into<String>) -> LineError {
        LineError {
            field: None,
            message: message.into(),
        }
    }

    /// An error about `field`.
    pub(crate) fn at(field: &str, message: impl Into<String>) -> LineError {
        LineError {
            field: Some(field.to_string()),
            message: message.into(),
        }
    }

    /// `{"line": N, "field"?: ..., "error": ...}`, as `eval` and `replay` print it.
    pub(crate) fn to_json(&self, line: usize) -> Json {
        let mut shown = serde_json::json!({ "line": line, "error": self.message });
        if let Some(field) = &self.field {
            shown["field"] = Json::String(field.clone());
        }
        shown
    }
}

impl From<WireError> for LineError {
    fn from(e: WireError) -> LineError {
        LineError {
            field: e.field().map(String::from),
            message: e.to_string(),
        }
    }
}

/// A line's bytes (`fits`: no longer than [`MAX_LINE`]) as a JSON object.
pub(crate) fn object(fits: bool, line: &[u8]) -> Result<Map<String, Json>, LineError> {
    if !fits {
        return Err(LineError::line(format!(
            "line is longer than 1 MiB ({MAX_LINE} bytes); it was skipped"
        )));
    }
    let text = std::str::from_utf8(line).map_err(|e| {
        LineError::line(format!("line is not UTF-8 (byte {})", e.valid_up_to() + 1))
    })?;
    match serde_json::from_str(text.trim_end_matches('\r')) {
        Ok(Json::Object(obj)) => Ok(obj),
        Ok(_) => Err(LineError::line("a line must be a JSON object")),
        Err(e) => Err(LineError::line(format!("invalid JSON: {e}"))),
    }
}

/// `obj` read as a `T`; an error names the JSON path of the wrong field
/// (`context.tenant`), or the field missing or unknown.
pub(crate) fn typed<T: DeserializeOwned>(obj: Map<String, Json>) -> Result<T, LineError> {
    serde_path_to_error::deserialize(Json::Object(obj)).map_err(|e| {
        let path = e.path().to_string();
        let message = e.inner().to_string();
        // The path of a missing field is its parent's (an unknown field's is its own).
        let named = message
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split('`').next());
        let field = match (path.as_str(), named) {
            ("." | "", None) => None,
            ("." | "", Some(name)) => Some(name.to_string()),
            (path, Some(name)) => Some(format!("{path}.{name}")),
            (path, None) => Some(path.to_string()),
        };
        LineError { field, message }
    })
}

/// The wire call in `obj` (what is left of a line once its own fields are
/// taken out), read as a [`CallRequest`] and checked by its conversion
/// ([`CallRequest::into_decided`]: the limits of `POST /v1/calls` and
/// `/v1/decide`; an absent id stays empty, unless `id_required`).
pub(crate) fn call(obj: Map<String, Json>, id_required: bool) -> Result<Call, LineError> {
    if id_required && !obj.contains_key("id") {
        return Err(LineError::at("id", "missing field `id`"));
    }
    let wire: CallRequest = typed(obj)?;
    Ok(wire.into_decided()?)
}

#[cfg(test)]
mod tests {
    use super::{call, next_capped, LineError};
    use serde_json::json;

    fn call_of(v: serde_json::Value) -> Result<String, LineError> {
        let serde_json::Value::Object(obj) = v else {
            return Err(LineError::line("not an object"));
        };
        call(obj, true).map(|c| c.id)
    }

    #[test]
    fn a_call_line_error_names_its_field() {
        let ctx = json!({"tenant": "t", "env": "e"});
        let field = |v| call_of(v).err().and_then(|e| e.field);
        assert_eq!(
            call_of(json!({"id": "c1", "agent": "a", "tool": "t", "context": ctx})),
            Ok("c1".to_string())
        );
        assert_eq!(
            field(json!({"agent": "a", "tool": "t", "context": ctx})).as_deref(),
            Some("id")
        );
        assert_eq!(
            field(json!({"id": "c", "tool": "t", "context": ctx})).as_deref(),
            Some("agent")
        );
        assert_eq!(
            field(json!({"id": "c", "agent": "a", "tool": "t", "context": {"env": "e"}}))
                .as_deref(),
            Some("context.tenant")
        );
        assert_eq!(
            field(json!({"id": "c", "agent": "a", "tool": 3, "context": ctx})).as_deref(),
            Some("tool")
        );
        assert_eq!(
            field(json!({"id": "c", "agent": "a", "tool": "t", "context": ctx, "bogus": 1}))
                .as_deref(),
            Some("bogus")
        );
        assert_eq!(
            field(json!({"id": "x".repeat(257), "agent": "a", "tool": "t", "context": ctx}))
                .as_deref(),
            Some("id")
        );
    }

    /// Every line of `text` read with a tiny buffer and `cap`: `Some(line)` or `None` if too long.
    fn lines(text: &str, cap: usize) -> Vec<Option<String>> {
        let mut input = std::io::BufReader::with_capacity(3, text.as_bytes());
        let mut buf = Vec::new();
        let mut out = Vec::new();
        while let Ok(Some(fits)) = next_capped(&mut input, cap, &mut buf) {
            out.push(fits.then(|| String::from_utf8_lossy(&buf).into_owned()));
        }
        out
    }

    #[test]
    fn lines_longer_than_the_cap_are_reported_and_skipped() {
        let some = |s: &str| Some(s.to_string());
        assert_eq!(lines("", 4), []);
        assert_eq!(lines("\n", 4), [some("")]);
        assert_eq!(lines("abcd\nabcde\nx", 4), [some("abcd"), None, some("x")]);
        assert_eq!(lines("abcdefghij\nab\n", 4), [None, some("ab")]);
        assert_eq!(lines("ab\nabcdefghij", 4), [some("ab"), None]);
    }
}
