//! Why the proxy could not start or stopped.

use thiserror::Error;

/// Why the proxy could not start or stopped.
#[derive(Debug, Error, miette::Diagnostic)]
pub enum McpError {
    /// A flag or file is wrong.
    #[error("{0}")]
    #[diagnostic(code(toolgate::mcp::config))]
    Config(String),
    /// The policy does not check clean or does not fit the proxy.
    #[error("{0}")]
    #[diagnostic(code(toolgate::mcp::policy), help("run `policyc check` on the policy"))]
    Policy(String),
    /// The upstream server could not be started or reached.
    #[error("upstream: {0}")]
    #[diagnostic(code(toolgate::mcp::upstream))]
    Upstream(String),
    /// The gateway, its journal or the admin API failed.
    #[error("{0}")]
    #[diagnostic(code(toolgate::mcp::gateway))]
    Gateway(String),
}
