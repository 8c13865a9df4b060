//! The operator CLI's HTTP client: one blocking `ureq` agent, the bearer key
//! from `TOOLGATE_KEY`, and server errors (RFC 9457 problems) turned into a
//! message and an exit status.

use crate::Exit;
use std::time::Duration;

/// Why a request to the server failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The server answered with an error status.
    Server {
        /// The HTTP status.
        status: u16,
        /// The message (problem title, detail and field).
        message: String,
    },
    /// No usable answer: connection, TLS or a body that is not what was expected.
    Transport(String),
    /// Bad usage found before asking the server.
    Usage(String),
    /// Refused before asking the server (a stale digest).
    Refused(String),
}

impl Failure {
    /// Prints the failure and picks the exit status: refused (1) for
    /// 401/403/404/409, usage (2) for bad requests, server errors and transport.
    pub(crate) fn report(&self) -> Exit {
        match self {
            Failure::Server { status, message } => {
                eprintln!("error: {message}");
                match status {
                    401 | 403 | 404 | 409 => Exit::Findings,
                    _ => Exit::Usage,
                }
            }
            Failure::Transport(message) | Failure::Usage(message) => {
                eprintln!("error: {message}");
                Exit::Usage
            }
            Failure::Refused(message) => {
                eprintln!("error: {message}");
                Exit::Findings
            }
        }
    }
}

/// A server and the key to talk to it with: the API's client, its errors
/// read as the CLI reports them.
pub(crate) struct Client(toolgate_api::client::Client);

impl From<toolgate_api::client::ClientError> for Failure {
    fn from(e: toolgate_api::client::ClientError) -> Failure {
        use toolgate_api::client::ClientError as E;
        match e {
            E::Server { status, message } => Failure::Server { status, message },
            E::Transport(m) => Failure::Transport(format!("{m} (set `--url` or `TOOLGATE_URL`)")),
        }
    }
}

impl Client {
    /// A client for `base` (no trailing slash needed) with an optional bearer key.
    pub(crate) fn new(base: &str, key: Option<String>) -> Client {
        Client(toolgate_api::client::Client::new(
            base,
            key,
            Duration::from_secs(90),
        ))
    }

    /// The API's client, for its typed requests.
    pub(crate) fn api(&self) -> &toolgate_api::client::Client {
        &self.0
    }

    /// A failure of a typed request, with the key hint of a 401 without a key.
    pub(crate) fn failed(&self, e: toolgate_api::client::ClientError) -> Failure {
        match Failure::from(e) {
            Failure::Server {
                status: 401,
                message,
            } if !self.0.has_key() => Failure::Server {
                status: 401,
                message: format!("{message} (set `TOOLGATE_KEY` to an operator or approver key)"),
            },
            other => other,
        }
    }
}

pub(crate) use toolgate_api::client::{encode, query};
