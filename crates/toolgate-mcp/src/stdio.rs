//! The stdio transports: the client on the proxy's stdin and stdout, the
//! upstream a child process on its own (newline-delimited JSON-RPC, as MCP's
//! stdio transport). Lines are read with a length cap ([`wire::read_line`])
//! and written as [`Line`]s only. On the client's end of input the proxy stops its
//! upstream (a child's stdin is closed, it gets a moment to exit, and is
//! killed otherwise) and returns.

use crate::connect::Connection;
use crate::relay::Relay;
use crate::wire::{self, Line, Read};
use crate::McpError;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncWrite, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

/// How long the child has to exit after its stdin closes.
const CHILD_GRACE: Duration = Duration::from_secs(2);

/// A started upstream child.
pub struct ChildUpstream {
    child: Child,
    /// What the relay sends to the upstream.
    pub sender: UnboundedSender<Line>,
    inbox: UnboundedReceiver<Line>,
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
        let (sender, inbox) = unbounded_channel();
        Ok(ChildUpstream {
            child,
            sender,
            inbox,
        })
    }
}

/// Writes each message as one line (a [`Line`] holds no line break).
async fn write_lines<W: AsyncWrite + Unpin>(mut out: W, mut inbox: UnboundedReceiver<Line>) {
    while let Some(line) = inbox.recv().await {
        let mut bytes = line.into_string().into_bytes();
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
    pub fn pump(mut self, relay: Arc<Relay>) -> Result<Running, McpError> {
        let child_in = self.child.stdin.take();
        let child_out = self.child.stdout.take();
        let (Some(child_in), Some(child_out)) = (child_in, child_out) else {
            return Err(McpError::Upstream(
                "the child has no stdin or stdout".into(),
            ));
        };
        let to_child = tokio::spawn(write_lines(child_in, self.inbox));
        let from_child = tokio::spawn(async move {
            let mut input = BufReader::new(child_out);
            loop {
                match wire::read_line(&mut input, wire::MAX_UPSTREAM_LINE).await {
                    Read::Line(line) if blank(&line) => {}
                    Read::Line(line) => relay.from_upstream_text(&line).await,
                    Read::TooLong => relay.upstream_too_long(wire::MAX_UPSTREAM_LINE),
                    Read::End => return,
                }
            }
        });
        Ok(Running {
            child: self.child,
            to_child,
            from_child,
        })
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
/// client's input ends or the upstream goes away; then stops the upstream.
pub async fn serve(
    relay: Arc<Relay>,
    mut connection: Connection,
    client_inbox: UnboundedReceiver<Line>,
) -> Result<(), McpError> {
    let to_client = tokio::spawn(write_lines(tokio::io::stdout(), client_inbox));
    let mut stdin = BufReader::new(tokio::io::stdin());
    tokio::select! {
        () = async {
            loop {
                match wire::read_line(&mut stdin, wire::MAX_CLIENT_LINE).await {
                    Read::Line(line) if blank(&line) => {}
                    Read::Line(line) => relay.from_client_text(&line),
                    Read::TooLong => relay.too_long(wire::MAX_CLIENT_LINE),
                    Read::End => return,
                }
            }
        } => {}
        () = connection.closed() => eprintln!("toolgate: the upstream closed its output"),
    }
    drop(relay);
    connection.stop().await;
    to_client.abort();
    Ok(())
}

/// A line of JSON whitespace only (between messages: not a message).
fn blank(line: &[u8]) -> bool {
    line.iter().all(|b| matches!(b, b' ' | b'\t' | b'\r'))
}
