//! Starts the real `policyc serve` on an ephemeral loopback port with a
//! temporary data directory, and talks HTTP to it.

use serde_json::{json, Value};
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
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
    toolgate_testkit::fresh_dir(
        std::env::temp_dir().join(format!("tg-serve-{}-{name}-{n}", std::process::id())),
    )
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

pub struct Server {
    pub child: Child,
    pub url: String,
    pub stdout: Vec<String>,
    agent: ureq::Agent,
}

impl Server {
    /// Starts `policyc serve --data DATA --listen 127.0.0.1:0 ARGS...`.
    pub fn start(data: &Path, args: &[&str]) -> Server {
        let mut child = Command::new(BIN)
            .arg("serve")
            .arg("--data")
            .arg(data)
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut stdout = Vec::new();
        let url = loop {
            let line = lines
                .next()
                .unwrap() // serve exited before listening
                .unwrap();
            stdout.push(line.clone());
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
            stdout,
            agent,
        }
    }

    /// Kills it with SIGKILL and waits.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// A request: `(status, content-type, body as JSON or as a string)`.
    pub fn req(&self, method: &str, path: &str, key: Option<&str>, body: Option<&Value>) -> Reply {
        let text = body.map(|b| b.to_string());
        self.raw(method, path, key, text.as_deref(), "application/json")
    }

    pub fn raw(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<&str>,
        ctype: &str,
    ) -> Reply {
        let url = format!("{}{path}", self.url);
        let auth = key.map(|k| format!("Bearer {k}"));
        let result = match (method, body) {
            ("GET", _) => {
                let mut r = self.agent.get(&url);
                if let Some(a) = &auth {
                    r = r.header("authorization", a);
                }
                r.call()
            }
            (_, body) => {
                let mut r = self.agent.post(&url).header("content-type", ctype);
                if let Some(a) = &auth {
                    r = r.header("authorization", a);
                }
                r.send(body.unwrap_or(""))
            }
        };
        let mut resp = result.unwrap();
        let status = resp.status().as_u16();
        let ctype = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let text = resp.body_mut().read_to_string().unwrap();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            ctype,
            text,
            json,
        }
    }

    pub fn get(&self, path: &str, key: &str) -> Reply {
        self.req("GET", path, Some(key), None)
    }

    pub fn post(&self, path: &str, key: &str, body: Value) -> Reply {
        self.req("POST", path, Some(key), Some(&body))
    }

    /// The journal records of `kind`.
    pub fn audit(&self, operator: &str, query: &str) -> Vec<Value> {
        let r = self.get(&format!("/v1/audit?{query}"), operator);
        assert_eq!(r.status, 200, "{}", r.text);
        assert!(r.ctype.starts_with("application/x-ndjson"));
        r.text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// A counter's value in /metrics.
    pub fn metric(&self, operator: &str, series: &str) -> Option<f64> {
        let r = self.get("/metrics", operator);
        assert_eq!(r.status, 200);
        r.text.lines().find_map(|l| {
            l.strip_prefix(series)
                .and_then(|v| v.strip_prefix(' '))
                .map(|v| v.parse().unwrap())
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub ctype: String,
    pub text: String,
    pub json: Value,
}

impl Reply {
    /// Asserts a problem+json with this status, code and (if given) field.
    pub fn problem(&self, status: u16, code: &str, field: Option<&str>) {
        assert_eq!(self.status, status, "{}", self.text);
        assert!(
            self.ctype.starts_with("application/problem+json"),
            "{}",
            self.ctype
        );
        assert_eq!(self.json["status"], status);
        assert_eq!(self.json["code"], code, "{}", self.text);
        if let Some(f) = field {
            assert_eq!(self.json["field"], f, "{}", self.text);
        }
    }
}

/// A `/v1/calls` body for the support-desk policy.
pub fn call(id: &str, agent: &str, tool: &str, args: Value, tenant: &str, env: &str) -> Value {
    json!({
        "id": id, "agent": agent, "tool": tool, "args": args,
        "context": {"tenant": tenant, "env": env, "account_id": "A1"}
    })
}

pub const POLICY: &str = "policies/support-desk.policy";
