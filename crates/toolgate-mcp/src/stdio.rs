//! The stdio transports: the client on the proxy's stdin and stdout, the
//! upstream a child process on its own (newline-delimited JSON-RPC, as MCP's
//! stdio transport). Lines are read with a length cap ([`wire::read_line`]:
//! [`wire::MAX_CLIENT_LINE`] from the client, [`wire::MAX_UPSTREAM_LINE`]
//! from the child) and written as [`crate::wire::Line`]s only, from bounded
//! queues ([`crate::relay::QUEUE`]). On the client's end of input the proxy
//! stops its upstream (a child's stdin is closed, it gets a moment to exit,
//! and is killed otherwise), then the session, and returns.

use crate::connect::Connection;
use crate::envelope::Outgoing;
use crate::relay::{self, Relay};
use crate::wire::{self, Read};
use crate::McpError;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc::{Receiver, Sender};

/// How long the child has to exit after its stdin closes.
const CHILD_GRACE: Duration = Duration::from_secs(2);

/// How long the client's stdout has, once the session ended, to take what is left for it.
const FLUSH_GRACE: Duration = Duration::from_secs(2);

/// A started upstream child.
pub struct ChildUpstream {
    child: Child,
    /// What the relay sends to the upstream.
    pub sender: Sender<Outgoing>,
    inbox: Receiver<Outgoing>,
}

impl ChildUpstream {
    /// Starts `command` (its first element the program) with `env` as its
    /// whole environment: the proxy's own (keys, tokens) is not inherited.
    pub fn spawn(command: &[String], env: &[(String, String)]) -> Result<ChildUpstream, McpError> {
        let (program, args) = command
            .split_first()
            .ok_or_else(|| McpError::Config("give the upstream command after `--`".into()))?;
        let mut cmd = Command::new(program);
        cmd.args(args)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let child = cmd
            .spawn()
            .map_err(|e| McpError::Upstream(format!("cannot start `{program}`: {e}")))?;
        let (sender, inbox) = relay::outbox();
        Ok(ChildUpstream {
            child,
            sender,
            inbox,
        })
    }
}

/// Writes each message as one line (a [`crate::wire::Line`] holds no line break).
async fn write_lines<W: AsyncWrite + Unpin>(mut out: W, mut inbox: Receiver<Outgoing>) {
    while let Some(message) = inbox.recv().await {
        let mut bytes = message.line.into_string().into_bytes();
        bytes.push(b'\n');
        if out.write_all(&bytes).await.is_err() || out.flush().await.is_err() {
            return;
        }
    }
}

/// A running upstream child: its writer and reader tasks.
pub struct Running {
    child: Child,
    to_child: tokio::task::JoinHandle<()>,
    /// Ends when the child closes its output.
    pub from_child: tokio::task::JoinHandle<()>,
}

impl ChildUpstream {
    /// Connects the child's stdin and stdout to `relay`.
    pub fn pump(mut self, relay: Relay) -> Result<Running, McpError> {
        let child_in = self.child.stdin.take();
        let child_out = self.child.stdout.take();
        let (Some(child_in), Some(child_out)) = (child_in, child_out) else {
            return Err(McpError::Upstream(
                "the child has no stdin or stdout".into(),
            ));
        };
        let to_child = tokio::spawn(write_lines(child_in, self.inbox));
        let from_child = tokio::spawn(read_upstream(BufReader::new(child_out), relay));
        Ok(Running {
            child: self.child,
            to_child,
            from_child,
        })
    }
}

/// Hands the upstream's lines to `relay` until its output ends.
pub async fn read_upstream<R: AsyncBufRead + Unpin>(mut input: R, relay: Relay) {
    loop {
        match wire::read_line(&mut input, wire::MAX_UPSTREAM_LINE).await {
            Read::Line(line) if blank(&line) => {}
            Read::Line(line) => relay.from_upstream_text(&line).await,
            Read::TooLong => relay.upstream_too_long(wire::MAX_UPSTREAM_LINE),
            Read::End => return,
        }
    }
}

/// Hands the client's lines to `relay` until its input ends.
pub async fn read_client<R: AsyncBufRead + Unpin>(mut input: R, relay: &Relay) {
    loop {
        match wire::read_line(&mut input, wire::MAX_CLIENT_LINE).await {
            Read::Line(line) if blank(&line) => {}
            Read::Line(line) => relay.from_client_text(&line).await,
            Read::TooLong => relay.too_long(wire::MAX_CLIENT_LINE).await,
            Read::End => return,
        }
    }
}

impl Running {
    /// Closes the child's stdin (MCP stdio shutdown), gives it a moment to
    /// exit, and kills it otherwise.
    pub async fn stop(mut self) {
        self.to_child.abort();
        let _ = (&mut self.to_child).await;
        drop(self.child.stdin.take());
        if tokio::time::timeout(CHILD_GRACE, self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
        self.from_child.abort();
    }
}

/// Relays between the proxy's stdin/stdout and the upstream until the
/// client's input ends or the upstream goes away; then stops the upstream
/// (whose last messages still reach the client), then the session.
pub async fn serve(
    relay: Relay,
    mut connection: Connection,
    client_inbox: Receiver<Outgoing>,
) -> Result<(), McpError> {
    let mut to_client = tokio::spawn(write_lines(tokio::io::stdout(), client_inbox));
    tokio::select! {
        () = read_client(BufReader::new(tokio::io::stdin()), &relay) => {}
        () = connection.closed() => eprintln!("toolgate: the upstream closed its output"),
    }
    connection.stop().await;
    relay.stop().await;
    // The session's end closed the client's queue: the writer ends once it
    // wrote what is left, unless the client stopped reading.
    if tokio::time::timeout(FLUSH_GRACE, &mut to_client)
        .await
        .is_err()
    {
        to_client.abort();
    }
    Ok(())
}

/// A line of JSON whitespace only (between messages: not a message).
fn blank(line: &[u8]) -> bool {
    line.iter().all(|b| matches!(b, b' ' | b'\t' | b'\r'))
}
