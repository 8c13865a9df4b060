//! The relay between one downstream client and one upstream server: one
//! event loop per session (`relay/session.rs`) over a closed `enum Event`,
//! fed by the transports through a [`Relay`] handle.
//!
//! Every message is parsed once into an [`Envelope`] (by the transport's
//! reader, through this handle), decided on its kind, and forwarded as the
//! proxy's own serialization of what it parsed ([`Outgoing`]), never as the
//! text it arrived as (see [`crate::wire`] for why). Messages pass unchanged
//! in meaning, except: a `tools/list` answer (filtered by the policy's
//! visibility), a `tools/call` request (decided by the gateway first:
//! forwarded only when allowed, answered by the proxy otherwise), any other
//! `tools/` method (refused: the tools path is the proxy's to decide), the
//! client's `roots` (not forwarded unless configured: they would widen the
//! server's reach) and messages the proxy cannot read (a client's are
//! answered with a JSON-RPC error, an upstream's are dropped and logged;
//! neither is ever forwarded: fail closed).
//!
//! Bounds: every queue holds at most [`QUEUE`] messages, and a sender
//! waits when it is full (backpressure), nothing is dropped or queued
//! without bound: a transport's reader waits for the loop, the loop waits
//! for a writer, a writer for its peer. The session's state (calls in
//! flight, held calls, questions asked) is owned by its loop; per-call work
//! (deciding, waiting for an approval, asking the user) runs in a
//! `JoinSet` the session owns, so it ends when the session ends.

use crate::config::Trusted;
use crate::decider::Decider;
use crate::envelope::{Envelope, Malformed, Outgoing};
use crate::tools::Visibility;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

mod call;
mod reply;
mod session;
#[cfg(test)]
mod tests;

pub use session::{MAX_DECIDING, MAX_IN_FLIGHT};

/// How many messages each of a session's queues holds: the loop's inbox
/// (from the client and the upstream), the queue to the client and the one
/// to the upstream (and, over `--listen`, each response stream). When one
/// is full its sender waits (backpressure): a client that does not read
/// stalls its own session once its queues are full, and the stall reaches
/// the upstream's pipe, never the proxy's memory. 16 keeps pipelined
/// messages flowing (the loop does no I/O of its own) while bounding what a
/// session holds to a few dozen messages, each at most
/// [`crate::wire::MAX_UPSTREAM_LINE`] bytes.
pub const QUEUE: usize = 16;

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

/// What a session's loop acts on (the transports send the first three
/// through [`Relay`]; the loop makes the others itself: see `session::Session::next`).
#[derive(Debug)]
enum Event {
    /// A message from the client.
    FromClient(Envelope),
    /// A client message the proxy could not read: answered, never forwarded.
    Unreadable(Malformed),
    /// A message from the upstream.
    FromUpstream(Envelope),
    /// A per-call task asks the client's user a question.
    Ask(call::Ask),
    /// A per-call task ended.
    Decided(Result<Box<call::Done>, call::Lost>),
    /// A journal write (an `execution` record, a tool notice) ended.
    Recorded,
    /// The session ends.
    Stop,
}

/// A queue of outgoing messages, bounded at [`QUEUE`].
pub fn outbox() -> (mpsc::Sender<Outgoing>, mpsc::Receiver<Outgoing>) {
    mpsc::channel(QUEUE)
}

/// One session's relay: the handle the transports feed (cheap to clone).
/// The session ends on [`Relay::stop`], or when every handle is gone.
#[derive(Clone, Debug)]
pub struct Relay {
    events: mpsc::Sender<Event>,
    stop: Arc<watch::Sender<bool>>,
}

impl Relay {
    /// Starts a session over `decider`, writing to the upstream and the
    /// client through the queues (call it inside a tokio runtime).
    pub fn new(
        decider: Arc<dyn Decider>,
        trusted: Trusted,
        visibility: Visibility,
        options: Options,
        to_upstream: mpsc::Sender<Outgoing>,
        to_client: mpsc::Sender<Outgoing>,
    ) -> Relay {
        let (events, inbox) = mpsc::channel(QUEUE);
        let (stop, stopped) = watch::channel(false);
        let setup = session::Setup {
            decider,
            trusted,
            visibility,
            options,
        };
        let session = session::Session::new(setup, inbox, stopped, to_upstream, to_client);
        tokio::spawn(session.run());
        Relay {
            events,
            stop: Arc::new(stop),
        }
    }

    /// Hands an event to the loop, waiting while its inbox is full (a
    /// stopped session takes nothing: the event is dropped).
    async fn send(&self, event: Event) {
        let _ = self.events.send(event).await;
    }

    /// A message from the client, as received (one line of stdio, one HTTP body).
    pub async fn from_client_text(&self, text: &[u8]) {
        self.from_client_read(Envelope::parse(text)).await;
    }

    /// A message from the client, parsed (or why it could not be).
    pub async fn from_client_read(&self, read: Result<Envelope, Malformed>) {
        match read {
            Ok(envelope) => self.from_client(envelope).await,
            Err(why) => self.send(Event::Unreadable(why)).await,
        }
    }

    /// A message from the client.
    pub async fn from_client(&self, envelope: Envelope) {
        self.send(Event::FromClient(envelope)).await;
    }

    /// A client's line longer than the proxy reads: answered.
    pub async fn too_long(&self, max: usize) {
        self.send(Event::Unreadable(Malformed::TooLong { max }))
            .await;
    }

    /// A message from the upstream, as received (one line, one HTTP body or
    /// SSE event): relayed only when it is one JSON-RPC message.
    pub async fn from_upstream_text(&self, text: &[u8]) {
        self.from_upstream_read(Envelope::parse(text)).await;
    }

    /// A message from the upstream, parsed (or why it could not be: dropped and logged).
    pub async fn from_upstream_read(&self, read: Result<Envelope, Malformed>) {
        match read {
            Ok(envelope) => self.from_upstream(envelope).await,
            Err(why) => eprintln!("toolgate: dropped an upstream message: {why}"),
        }
    }

    /// A message from the upstream.
    pub async fn from_upstream(&self, envelope: Envelope) {
        self.send(Event::FromUpstream(envelope)).await;
    }

    /// Drops (and says so) an upstream message longer than the proxy reads.
    pub fn upstream_too_long(&self, max: usize) {
        eprintln!("toolgate: dropped an upstream message of more than {max} bytes");
    }

    /// Ends the session and waits until it has: its per-call tasks are
    /// dropped (a call waiting for an approval or an answer did not run and
    /// never will), the journal writes already started get a moment to
    /// finish, and the queues to the client and the upstream close.
    pub async fn stop(&self) {
        self.stop.send_replace(true);
        self.events.closed().await;
    }
}
