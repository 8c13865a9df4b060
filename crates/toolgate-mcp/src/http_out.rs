//! Streamable HTTP upstream (`--upstream-url`): each message the relay sends
//! is one POST (on a blocking thread, with ureq); the answer, JSON or an SSE
//! stream, goes back to the relay message by message. The session id and
//! protocol version the upstream gives at `initialize` are sent with every
//! later request. Notifications and answers are posted in order, each
//! before the next message; requests run side by side. Once a session
//! exists, a GET stream carries the upstream's
//! own requests and notifications (when it offers one). Headers from
//! `--credentials` are added to every request and never logged. A request
//! the upstream cannot be reached for is answered with a JSON-RPC error, so
//! the client never waits forever. A JSON answer body and each SSE event are
//! at most [`MAX_UPSTREAM_LINE`] bytes (a longer one is dropped and logged);
//! an SSE stream itself may run as long as the session.

use crate::envelope::{Envelope, Kind, Malformed, Outgoing};
use crate::relay::Relay;
use crate::wire::{self, MAX_UPSTREAM_LINE};
use serde_json::Value as Json;
use std::io::{BufReader, Read};
use std::sync::{Arc, Mutex};
use tokio::runtime::Handle;
use tokio::sync::mpsc::{Receiver, Sender};

/// An HTTP upstream.
pub struct HttpUpstream {
    url: String,
    headers: Vec<(String, String)>,
    agent: ureq::Agent,
    /// `Mcp-Session-Id` and `MCP-Protocol-Version`, once known.
    session: Mutex<(Option<String>, Option<String>)>,
}

impl HttpUpstream {
    /// An upstream at `url`, sending `headers` (credentials) with every request.
    pub fn new(url: &str, headers: Vec<(String, String)>) -> Arc<HttpUpstream> {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build();
        Arc::new(HttpUpstream {
            url: url.to_string(),
            headers,
            agent: config.into(),
            session: Mutex::new((None, None)),
        })
    }

    fn session(&self) -> (Option<String>, Option<String>) {
        self.session
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The queue the relay writes to (bounded: [`crate::relay::outbox`]);
    /// give its receiver to [`HttpUpstream::run`].
    pub fn channel() -> (Sender<Outgoing>, Receiver<Outgoing>) {
        crate::relay::outbox()
    }

    /// Relays what arrives on `rx` to the upstream, each message on its own
    /// blocking thread (HTTP requests are independent); ends the upstream's
    /// session when the channel closes.
    pub async fn run(
        self: Arc<Self>,
        mut rx: Receiver<Outgoing>,
        relay: Relay,
        mut stop: tokio::sync::oneshot::Receiver<()>,
    ) {
        let handle = Handle::current();
        loop {
            let next = tokio::select! {
                next = rx.recv() => next,
                _ = &mut stop => None,
            };
            let Some(message) = next else { break };
            let request = matches!(message.kind, Kind::Request { .. });
            let (up, relay, handle) = (self.clone(), relay.clone(), handle.clone());
            let posted = tokio::task::spawn_blocking(move || up.post(&message, &relay, &handle));
            // Notifications and answers are posted in order (the upstream
            // answers them at once with 202): `notifications/initialized`
            // must arrive before the next request. Requests run side by side.
            if !request {
                let _ = posted.await;
            }
        }
        let up = self.clone();
        let _ = tokio::task::spawn_blocking(move || up.end_session()).await;
    }

    /// `req` with the session's headers and the credentials.
    fn headers<B>(&self, req: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        let (session, version) = self.session();
        let mut req = req.header("accept", "application/json, text/event-stream");
        if let Some(s) = session {
            req = req.header("mcp-session-id", &s);
        }
        if let Some(v) = version {
            req = req.header("mcp-protocol-version", &v);
        }
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        req
    }

    /// POSTs one message and hands every message of the answer to the relay;
    /// after `initialize`, opens the GET stream.
    fn post(self: &Arc<Self>, message: &Outgoing, relay: &Relay, handle: &Handle) {
        let (id, initialize) = match &message.kind {
            Kind::Request { id, method } => (Some(id), method == "initialize"),
            _ => (None, false),
        };
        let req = self.headers(self.agent.post(&self.url));
        let answer = req
            .header("content-type", "application/json")
            .send(message.line.as_str())
            .map_err(|e| format!("cannot reach the upstream: {e}"));
        let failed = match answer {
            Ok(resp) => self.read_answer(resp, initialize, relay, handle).err(),
            Err(e) => Some(e),
        };
        if let (Some(why), Some(id)) = (&failed, id) {
            let error = Envelope::error(id.clone(), -32603, why);
            handle.block_on(relay.from_upstream(error));
        }
        if initialize && failed.is_none() && self.session().0.is_some() {
            self.listen(relay.clone(), handle.clone());
        }
    }

    fn read_answer(
        &self,
        resp: ureq::http::Response<ureq::Body>,
        initialize: bool,
        relay: &Relay,
        handle: &Handle,
    ) -> Result<(), String> {
        let status = resp.status().as_u16();
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(String::from)
        };
        let kind = header("content-type").unwrap_or_default();
        if initialize {
            if let Some(s) = header("mcp-session-id") {
                self.session.lock().unwrap_or_else(|p| p.into_inner()).0 = Some(s);
            }
        }
        if status == 202 {
            return Ok(());
        }
        let deliver = |read: Result<Envelope, Malformed>| {
            if let (true, Ok(envelope)) = (initialize, &read) {
                self.note_version(envelope);
            }
            handle.block_on(relay.from_upstream_read(read));
        };
        if kind.starts_with("text/event-stream") {
            read_events(resp.into_body().into_reader(), deliver);
            return Ok(());
        }
        let limit = u64::try_from(MAX_UPSTREAM_LINE).unwrap_or(u64::MAX);
        let body = resp.into_body().into_with_config().limit(limit).reader();
        let mut text = Vec::new();
        BufReader::new(body)
            .read_to_end(&mut text)
            .map_err(|e| format!("the upstream's answer: {e}"))?;
        if !(200..300).contains(&status) || !kind.starts_with("application/json") {
            return Err(format!("the upstream answered HTTP {status}"));
        }
        // Parsed once; a JSON array holds several messages.
        match serde_json::from_slice::<Json>(&text) {
            Ok(Json::Array(items)) => items
                .into_iter()
                .for_each(|m| deliver(Envelope::from_value(m))),
            Ok(one) => deliver(Envelope::from_value(one)),
            Err(e) => deliver(Err(e.into())),
        }
        Ok(())
    }

    fn note_version(&self, answer: &Envelope) {
        if let Some(v) = answer
            .value()
            .pointer("/result/protocolVersion")
            .and_then(Json::as_str)
        {
            self.session.lock().unwrap_or_else(|p| p.into_inner()).1 = Some(v.to_string());
        }
    }

    /// Opens the GET stream of upstream-initiated messages, if the upstream offers one.
    fn listen(self: &Arc<Self>, relay: Relay, handle: Handle) {
        let up = self.clone();
        std::thread::spawn(move || {
            let Ok(resp) = up.headers(up.agent.get(&up.url)).call() else {
                return;
            };
            let kind = resp
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok());
            if resp.status().as_u16() != 200
                || !kind.is_some_and(|k| k.starts_with("text/event-stream"))
            {
                return;
            }
            read_events(resp.into_body().into_reader(), |read| {
                handle.block_on(relay.from_upstream_read(read))
            });
        });
    }

    fn end_session(&self) {
        if self.session().0.is_some() {
            let _ = self.headers(self.agent.delete(&self.url)).call();
        }
    }
}

/// Reads SSE events (`data:` lines up to a blank line) and hands each
/// event's data on, parsed; an event of more than [`MAX_UPSTREAM_LINE`]
/// bytes is skipped (never buffered whole) and said so.
fn read_events(body: impl Read, mut deliver: impl FnMut(Result<Envelope, Malformed>)) {
    let mut body = BufReader::new(body);
    let mut event = Event::default();
    // A line may hold a whole event's data, after its `data:`.
    let max = MAX_UPSTREAM_LINE + 8;
    loop {
        let line = match wire::read_line_blocking(&mut body, max) {
            wire::Read::Line(line) => line,
            wire::Read::TooLong => {
                event.too_long = true;
                continue;
            }
            wire::Read::End => break,
        };
        let line = line.strip_suffix(b"\r").unwrap_or(&line);
        if line.is_empty() {
            event.end(&mut deliver);
        } else if let Some(rest) = line.strip_prefix(b"data:") {
            event.add(rest.strip_prefix(b" ").unwrap_or(rest));
        }
    }
    event.end(&mut deliver);
}

/// The data of the SSE event being read.
#[derive(Default)]
struct Event {
    data: Vec<u8>,
    lines: usize,
    too_long: bool,
}

impl Event {
    fn add(&mut self, data: &[u8]) {
        if self.lines > 0 {
            self.data.push(b'\n');
        }
        self.lines += 1;
        self.data.extend_from_slice(data);
        if self.data.len() > MAX_UPSTREAM_LINE {
            self.too_long = true;
            self.data = Vec::new();
        }
    }

    /// Hands the event on (one without data is none: a comment, a keep-alive) and starts the next.
    fn end(&mut self, deliver: &mut impl FnMut(Result<Envelope, Malformed>)) {
        let event = std::mem::take(self);
        if event.too_long {
            deliver(Err(Malformed::TooLong {
                max: MAX_UPSTREAM_LINE,
            }));
        } else if !event.data.is_empty() {
            deliver(Envelope::parse(&event.data));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{read_events, Event};
    use crate::envelope::Malformed;
    use crate::wire::MAX_UPSTREAM_LINE;

    fn events(stream: &[u8]) -> Vec<Result<serde_json::Value, String>> {
        let mut seen = Vec::new();
        read_events(stream, |m| {
            seen.push(m.map(|e| e.value().clone()).map_err(|e| e.to_string()))
        });
        seen
    }

    #[test]
    fn sse_events_are_their_data_lines_joined_and_parsed_once() {
        let stream = "event: message\nid: 1\ndata: {\"id\":1,\"result\":{}}\r\n\r\n: comment\n\ndata:{\"method\":\ndata: \"x\"}\n\ndata: last";
        let seen = events(stream.as_bytes());
        assert_eq!(seen.len(), 3, "{seen:?}");
        assert_eq!(seen[0], Ok(serde_json::json!({"id": 1, "result": {}})));
        assert_eq!(seen[1], Ok(serde_json::json!({"method": "x"})));
        assert!(
            seen[2].as_ref().is_err_and(|e| e.contains("not JSON")),
            "{seen:?}"
        );
    }

    #[test]
    fn an_sse_event_over_the_cap_is_dropped_not_buffered() {
        let mut event = Event::default();
        let half = vec![b'x'; MAX_UPSTREAM_LINE / 2 + 1];
        event.add(&half);
        event.add(&half);
        assert!(event.data.is_empty(), "its data was let go");
        let mut seen = Vec::new();
        event.end(&mut |m| seen.push(m));
        assert!(
            matches!(seen[..], [Err(Malformed::TooLong { .. })]),
            "{seen:?}"
        );
        let stream = [
            b"data: ".as_slice(),
            &vec![b'x'; MAX_UPSTREAM_LINE + 9],
            b"\n\ndata: {\"method\":\"m\"}\n\n",
        ]
        .concat();
        let seen = events(&stream);
        assert_eq!(seen.len(), 2, "the next event is read");
        assert!(seen[0].as_ref().is_err_and(|e| e.contains("at most")));
        assert_eq!(seen[1], Ok(serde_json::json!({"method": "m"})));
    }
}
