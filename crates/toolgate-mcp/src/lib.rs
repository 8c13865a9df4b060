//! Toolgate's MCP front door (`policyc mcp-proxy`): Model Context Protocol
//! messages in, the same messages out, with `tools/list` filtered by the
//! policy and every `tools/call` decided by the runtime's [`Gateway`]
//! (`authorize` → upstream → `complete`) before it reaches the upstream.
//!
//! It is a JSON-RPC relay, not a typed MCP server: every message other than
//! a `tools/list` answer and a `tools/call` request passes through byte for
//! byte as JSON (resources, prompts, notifications, cancellation, progress,
//! pings, unknown methods, server→client requests, protocol negotiation), so
//! a protocol version newer than this crate (a client's `server/discover`)
//! reaches the upstream, which answers or refuses it as it would directly.
//!
//! - [`config`]: what the proxy is given (trusted context, upstream, limits);
//! - [`tools`]: which tools the agent may see, and what an upstream's
//!   annotations say against the policy;
//! - [`relay`]: the message loop between the downstream client and the upstream;
//! - [`stdio`]: the stdio transports (the client on stdin/stdout, the upstream a child);
//! - [`http_in`]: Streamable HTTP downstream (`--listen`), sessions keyed by service keys;
//! - [`run`]: opens the gateway, the admin API and the transports.
//!
//! [`Gateway`]: toolgate_runtime::gateway::Gateway

#![deny(missing_docs)]

pub mod config;
mod err;
pub mod http_in;
pub mod relay;
mod run;
pub mod stdio;
pub mod tools;

pub use err::McpError;
pub use run::run;
