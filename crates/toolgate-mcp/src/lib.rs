//! Toolgate's MCP front door (`policyc mcp-proxy`): Model Context Protocol
//! messages in, the same messages out, with `tools/list` filtered by the
//! policy and every `tools/call` decided by the runtime's [`Gateway`]
//! (`authorize` → upstream → `complete`) before it reaches the upstream.
//!
//! It is a JSON-RPC relay, not a typed MCP server (so not built on `rmcp`'s
//! typed handlers, which would drop what their types do not know): every
//! message is parsed once and forwarded as the proxy's own serialization of
//! that parse ([`wire::Line`]: compact JSON in printable ASCII), never as the
//! bytes received. Messages other than a `tools/list` answer, a `tools/…`
//! request and the client's roots keep their meaning (resources, prompts,
//! notifications, cancellation, progress, pings, unknown methods,
//! server→client requests, protocol negotiation), so a protocol version
//! newer than this crate (a client's `server/discover`) reaches the
//! upstream, which answers or refuses it as it would directly.
//!
//! - [`config`]: what the proxy is given (trusted context, upstream, limits);
//! - [`tools`]: which tools the agent may see, and what an upstream's
//!   annotations say against the policy;
//! - [`decider`]: the gateway behind one small trait, in process ([`decider::Local`]) or a
//!   shared `policyc serve` ([`remote::Remote`], `--gateway URL`);
//! - [`envelope`]: a JSON-RPC message parsed once (kind, id, method, value);
//! - [`relay`]: one event loop per session between the downstream client and
//!   the upstream, over bounded queues;
//! - [`wire`]: the one way a message leaves the proxy ([`wire::Line`]) and capped line reads;
//! - [`stdio`]: the stdio transports (the client on stdin/stdout, the upstream a child);
//! - [`http_in`]: Streamable HTTP downstream (`--listen`), sessions keyed by service keys,
//!   behind `origin.rs` (a non-loopback `Host` or `Origin` is refused: DNS rebinding);
//! - [`http_out`]: Streamable HTTP upstream (`--upstream-url`); [`connect`]: either upstream;
//! - [`credentials`]: `--credentials`, secrets for the upstream by trusted scope;
//! - [`run`]: opens the gateway, the admin API and the transports.
//!
//! [`Gateway`]: toolgate_runtime::gateway::Gateway

#![deny(missing_docs)]

pub mod config;
pub mod connect;
pub mod credentials;
pub mod decider;
pub mod envelope;
mod err;
#[cfg(any(test, feature = "fake"))]
pub mod fake;
pub mod http_in;
pub mod http_out;
mod origin;
pub mod relay;
pub mod remote;
mod run;
pub mod stdio;
pub mod tools;
pub mod wire;

pub use err::McpError;
pub use run::{open_host, run};
