//! Connecting a relay to its upstream, whichever transport it speaks.

use crate::config::Upstream;
use crate::envelope::Outgoing;
use crate::http_out::HttpUpstream;
use crate::relay::Relay;
use crate::stdio::{ChildUpstream, Running};
use crate::McpError;
use std::time::Duration;
use tokio::sync::mpsc::Sender;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A relay's live upstream.
pub enum Connection {
    /// A child on stdio.
    Child(Running),
    /// An HTTP endpoint: the relaying task and its stop signal.
    Http(JoinHandle<()>, oneshot::Sender<()>),
}

/// What an upstream needs besides its address: credentials.
#[derive(Clone, Debug, Default)]
pub struct Secrets {
    /// A child's whole environment (it inherits nothing else).
    pub env: Vec<(String, String)>,
    /// Headers for an HTTP upstream.
    pub headers: Vec<(String, String)>,
}

/// Starts `upstream` and a relay over it (`relay` builds the relay from the
/// queue that reaches the upstream).
pub fn connect(
    upstream: &Upstream,
    secrets: &Secrets,
    relay: impl FnOnce(Sender<Outgoing>) -> Relay,
) -> Result<(Relay, Connection), McpError> {
    match upstream {
        Upstream::Command(command) => {
            let child = ChildUpstream::spawn(command, &secrets.env)?;
            let relay = relay(child.sender.clone());
            let running = child.pump(relay.clone())?;
            Ok((relay, Connection::Child(running)))
        }
        Upstream::Url(url) => {
            let up = HttpUpstream::new(url, secrets.headers.clone());
            let (tx, rx) = HttpUpstream::channel();
            let relay = relay(tx);
            let (stop, stopped) = oneshot::channel();
            let task = tokio::spawn(up.run(rx, relay.clone(), stopped));
            Ok((relay, Connection::Http(task, stop)))
        }
    }
}

impl Connection {
    /// Resolves when the upstream went away (a child closed its output; an
    /// HTTP upstream is never known to be gone).
    pub async fn closed(&mut self) {
        match self {
            Connection::Child(running) => {
                let _ = (&mut running.from_child).await;
            }
            Connection::Http(..) => std::future::pending().await,
        }
    }

    /// Stops the upstream: a child is asked to exit (then killed); an HTTP
    /// session is ended with DELETE.
    pub async fn stop(self) {
        match self {
            Connection::Child(running) => running.stop().await,
            Connection::Http(mut task, stop) => {
                let _ = stop.send(());
                if tokio::time::timeout(Duration::from_secs(2), &mut task)
                    .await
                    .is_err()
                {
                    task.abort();
                }
            }
        }
    }
}
