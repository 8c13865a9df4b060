//! The operator CLI's harness: the server harness of `tests/serve` (the real
//! `policyc serve` on an ephemeral loopback port, keys from `policyc keys
//! add`, HTTP through one client) with the three keys the CLI tests use, and
//! a runner for `policyc` commands pointed at that server.

use crate::serve::harness as base;

pub use base::{add_key, repo, temp_dir, BIN};
use serde_json::Value;
use std::process::{Command, Output};

/// A running server with a service, an approver (group `support-leads`) and an operator key.
pub struct Server {
    base: base::Server,
    pub url: String,
    pub service: String,
    pub approver: String,
    pub operator: String,
}

impl Server {
    /// Starts `policyc serve` with the support-desk policy.
    pub fn start(name: &str) -> Server {
        let data = temp_dir(name);
        let service = add_key(&data, "svc", "service", &[]);
        let approver = add_key(&data, "kim", "approver", &["--groups", "support-leads"]);
        let operator = add_key(&data, "ops", "operator", &[]);
        let policy = repo("policies/support-desk.policy");
        let base = base::Server::start(&data, &["--policy", policy.to_str().unwrap()]);
        let url = base.url.clone();
        Server {
            base,
            url,
            service,
            approver,
            operator,
        }
    }

    /// `POST path` with the service key; the answer's status and JSON.
    pub fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.post_as(&self.service, path, body)
    }

    /// `POST path` with `key`; the answer's status and JSON.
    pub fn post_as(&self, key: &str, path: &str, body: &Value) -> (u16, Value) {
        let reply = self.base.post(path, key, body.clone());
        (reply.status, reply.json)
    }

    /// `GET path` with the service key.
    pub fn get(&self, path: &str) -> Value {
        self.base.get(path, &self.service).json
    }

    /// A `policyc` command against this server with `key` in `TOOLGATE_KEY`.
    pub fn cli(&self, key: Option<&str>) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.env("TOOLGATE_URL", &self.url);
        match key {
            Some(k) => cmd.env("TOOLGATE_KEY", k),
            None => cmd.env_remove("TOOLGATE_KEY"),
        };
        cmd
    }

    /// Runs `policyc ARGS` with `key`; returns (exit code, stdout, stderr).
    pub fn run(&self, key: Option<&str>, args: &[&str]) -> (i32, String, String) {
        let out: Output = self.cli(key).args(args).output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    }
}
