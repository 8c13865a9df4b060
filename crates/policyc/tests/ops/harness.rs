//! Starts the real `policyc serve` on an ephemeral loopback port with a
//! temporary data directory, makes keys with `policyc keys add`, posts
//! calls over HTTP, and runs the operator CLI against it.

use serde_json::Value;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_policyc");

pub fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

/// A fresh temporary directory.
pub fn temp_dir(name: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("tg-ops-{}-{name}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `policyc keys add NAME --role ROLE FLAGS... --data DATA`; returns the secret.
pub fn add_key(data: &Path, name: &str, role: &str, flags: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(["keys", "add", name, "--role", role])
        .args(flags)
        .arg("--data")
        .arg(data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    stdout.lines().last().unwrap().to_string()
}

/// A running server with a service, an approver (group `support-leads`) and an operator key.
pub struct Server {
    child: Child,
    pub url: String,
    pub service: String,
    pub approver: String,
    pub operator: String,
    agent: ureq::Agent,
}

impl Server {
    /// Starts `policyc serve` with the support-desk policy.
    pub fn start(name: &str) -> Server {
        let data = temp_dir(name);
        let service = add_key(&data, "svc", "service", &[]);
        let approver = add_key(&data, "kim", "approver", &["--groups", "support-leads"]);
        let operator = add_key(&data, "ops", "operator", &[]);
        let mut child = Command::new(BIN)
            .current_dir(repo(""))
            .args(["serve", "--policy", "policies/support-desk.policy"])
            .arg("--data")
            .arg(&data)
            .args(["--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let url = loop {
            let line = lines
                .next()
                .expect("serve exited before listening")
                .unwrap();
            if let Some(rest) = line.strip_prefix("toolgate: listening on ") {
                break rest.trim().to_string();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        Server {
            child,
            url,
            service,
            approver,
            operator,
            agent,
        }
    }

    /// `POST path` with the service key; the answer's status and JSON.
    pub fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let mut resp = self
            .agent
            .post(&format!("{}{path}", self.url))
            .header("authorization", &format!("Bearer {}", self.service))
            .header("content-type", "application/json")
            .send(body.to_string())
            .unwrap();
        let text = resp.body_mut().read_to_string().unwrap();
        (
            resp.status().as_u16(),
            serde_json::from_str(&text).unwrap_or(Value::Null),
        )
    }

    /// `GET path` with the service key.
    pub fn get(&self, path: &str) -> Value {
        let mut resp = self
            .agent
            .get(&format!("{}{path}", self.url))
            .header("authorization", &format!("Bearer {}", self.service))
            .call()
            .unwrap();
        serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap()
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

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
