//! policyc's integration tests, one binary (`cargo test -p policyc --test
//! it`; one module: `-- serve::`), a module per command or concern, each
//! running the real `policyc` binary. Their inputs and golden files stay
//! beside this directory (`tests/ui`, `tests/diff`, `tests/mcp`, ...).

mod support;

mod agentdojo;
mod ci;
mod cli;
mod dates;
mod diff;
mod docs;
mod import;
mod mcp_conformance;
mod mcp_import;
mod mcp_proxy;
mod openapi_typescript;
mod ops;
mod python_client;
mod replay;
mod replicas;
mod serve;
mod shadow;
mod show;
mod test_cmd;
mod ui;
