//! `policyc mcp-proxy` end to end, with real peers nobody here wrote: the
//! MCP Python SDK as the client (crates/policyc/tests/mcp/*.py, run by the
//! test venv's python) and the MCP reference filesystem server (npm) as the
//! upstream, behind policies/mcp-filesystem.policy. Both are installed,
//! pinned, by scripts/setup-test-peers.sh; a missing prerequisite fails the
//! test saying what to install.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers fail loudly when a peer or the proxy misbehaves"
)]

#[path = "serve/harness.rs"]
#[allow(dead_code, reason = "shared with tests/serve.rs, which uses all of it")]
mod harness;

use harness::{add_key, repo, temp_dir, BIN};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The test peers: the venv's python and the npm packages' `.bin`.
struct Peers {
    python: PathBuf,
    bin: PathBuf,
}

fn peers() -> &'static Peers {
    static PEERS: OnceLock<Result<Peers, String>> = OnceLock::new();
    let made = PEERS.get_or_init(|| {
        let out = Command::new("bash")
            .arg(repo("scripts/setup-test-peers.sh"))
            .args(["python", "npm"])
            .output()
            .map_err(|e| format!("cannot run bash scripts/setup-test-peers.sh: {e}"))?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            return Err(format!(
                "scripts/setup-test-peers.sh failed:\n{stderr}{stdout}"
            ));
        }
        let line = |prefix: &str| {
            stdout
                .lines()
                .find_map(|l| l.strip_prefix(prefix))
                .map(PathBuf::from)
                .ok_or_else(|| {
                    format!("scripts/setup-test-peers.sh printed no `{prefix}` line:\n{stdout}")
                })
        };
        Ok(Peers {
            python: line("venv: ")?.join("bin/python"),
            bin: line("npm: ")?.join(".bin"),
        })
    });
    match made {
        Ok(p) => p,
        Err(message) => panic!("{message}"),
    }
}

/// A free loopback port (bound, then released for the proxy to take).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A scratch tree: `root/` (the directory the policy allows) with two
/// files, and `secret.txt` beside it, outside the root.
struct Tree {
    dir: PathBuf,
    root: String,
    data: PathBuf,
}

fn tree(name: &str) -> Tree {
    let dir = temp_dir(name);
    let dir = dir.canonicalize().unwrap();
    std::fs::create_dir_all(dir.join("root")).unwrap();
    std::fs::write(dir.join("root/a.txt"), "hello A\n").unwrap();
    std::fs::write(dir.join("root/b.txt"), "hello B\n").unwrap();
    std::fs::write(dir.join("secret.txt"), "the secret\n").unwrap();
    let root = format!("{}/", dir.join("root").display());
    Tree {
        data: dir.join("data"),
        dir,
        root,
    }
}

fn proxy_args(t: &Tree, admin: &str, upstream: &[String]) -> Vec<String> {
    let mut args: Vec<String> = [
        "mcp-proxy",
        "--policy",
        &repo("policies/mcp-filesystem.policy").display().to_string(),
        "--agent",
        "fs-assistant",
        "--tenant",
        "local",
        "--env",
        "dev",
        "--ctx",
        &format!("root={}", t.root),
        "--data",
        &t.data.display().to_string(),
        "--admin-listen",
        admin,
        "--",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(upstream.iter().cloned());
    args
}

fn filesystem_server(t: &Tree) -> Vec<String> {
    let server = peers().bin.join("mcp-server-filesystem");
    vec![server.display().to_string(), t.dir.display().to_string()]
}

/// Runs a session script; returns what it printed on its last line.
fn run_script(script: &str, config: &Value) -> Value {
    let out = Command::new(&peers().python)
        .arg(repo(&format!("crates/policyc/tests/mcp/{script}")))
        .arg(config.to_string())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{script} failed:\n{stdout}\n{stderr}");
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{script}: {e}:\n{stdout}\n{stderr}"))
}

/// The journal's records.
fn journal(data: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(data.join("journal.jsonl")).unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn audit_verifies(data: &Path) {
    let out = Command::new(BIN)
        .args(["audit", "verify"])
        .arg(data.join("journal.jsonl"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "audit verify: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn text(seen: &Value) -> &str {
    seen["text"].as_str().unwrap_or_default()
}

fn assert_error(seen: &Value, needle: &str) {
    assert_eq!(seen["is_error"], json!(true), "{seen}");
    assert!(text(seen).contains(needle), "`{needle}` not in {seen}");
}

fn assert_ok(seen: &Value) {
    assert_eq!(seen["is_error"], json!(false), "{seen}");
}

fn count(records: &[Value], kind: &str, call: &str) -> usize {
    records
        .iter()
        .filter(|r| r["kind"] == kind && r["body"]["call"] == call)
        .count()
}

/// The keys of a session: an approver's and an operator's.
struct Keys {
    approver: String,
    operator: String,
}

fn keys(t: &Tree) -> Keys {
    std::fs::create_dir_all(&t.data).unwrap();
    Keys {
        approver: add_key(&t.data, "lee", "approver", &[]),
        operator: add_key(&t.data, "ops", "operator", &[]),
    }
}

fn session_config(t: &Tree, k: &Keys, admin: &str) -> Value {
    json!({
        "policyc": BIN,
        "root": t.root,
        "secret": t.dir.join("secret.txt"),
        "admin_url": format!("http://{admin}"),
        "approver": k.approver,
        "operator": k.operator,
        "tenant": "local",
    })
}

#[test]
fn the_filesystem_server_behind_the_policy_over_stdio() {
    let t = tree("fs-stdio");
    let k = keys(&t);
    let admin = format!("127.0.0.1:{}", free_port());
    let mut config = session_config(&t, &k, &admin);
    config["proxy_args"] = json!(proxy_args(&t, &admin, &filesystem_server(&t)));
    let out = run_script("fs_session.py", &config);
    assert_session(&t, &out);
}

/// The proxy listening for Streamable HTTP, stopped (SIGTERM) when dropped.
struct Listening {
    child: std::process::Child,
}

impl Drop for Listening {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
    }
}

/// Starts the proxy with `--listen`; returns it once its endpoint is up.
fn listen(args: Vec<String>) -> Listening {
    use std::io::BufRead as _;
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let up = lines
        .by_ref()
        .map_while(Result::ok)
        .any(|l| l.contains("MCP endpoint on"));
    // Keep draining stderr so the proxy never blocks on it.
    std::thread::spawn(move || lines.for_each(drop));
    let listening = Listening { child };
    assert!(up, "the proxy did not start listening");
    listening
}

#[test]
fn the_filesystem_server_behind_the_policy_over_streamable_http() {
    let t = tree("fs-http");
    let k = keys(&t);
    let service = add_key(&t.data, "agent-1", "service", &["--tenants", "local"]);
    // A key for other tenants; a key that is not a service key.
    let stranger = add_key(&t.data, "agent-2", "service", &["--tenants", "north,south"]);
    let admin = format!("127.0.0.1:{}", free_port());
    let endpoint = format!("127.0.0.1:{}", free_port());
    let mut args = proxy_args(&t, &admin, &filesystem_server(&t));
    args.splice(1..1, ["--listen".to_string(), endpoint.clone()]);
    let proxy = listen(args);
    let url = format!("http://{endpoint}/mcp");
    let mut config = session_config(&t, &k, &admin);
    config["url"] = json!(url);
    config["service"] = json!(service);
    let out = run_script("fs_session.py", &config);
    assert_session(&t, &out);
    // No key: 401; a key for other tenants, or not a service key: 403, journaled.
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}});
    let post = |key: Option<&str>| {
        let mut req = ureq::post(&url).header("accept", "application/json, text/event-stream");
        if let Some(key) = key {
            req = req.header("authorization", &format!("Bearer {key}"));
        }
        let config = req.config().http_status_as_error(false).build();
        config.send_json(&init).unwrap().status().as_u16()
    };
    assert_eq!(post(None), 401);
    assert_eq!(post(Some(&stranger)), 403);
    assert_eq!(post(Some(&k.approver)), 403);
    drop(proxy);
    let denied = journal(&t.data)
        .into_iter()
        .filter(|r| r["kind"] == "access_denied")
        .count();
    assert_eq!(denied, 2);
    audit_verifies(&t.data);
}

/// What every session must have seen, through either transport.
fn assert_session(t: &Tree, out: &Value) {
    // The client fell back from `server/discover` to the upstream's version.
    assert_eq!(out["protocol"], "2025-11-25");
    // Declared and grantable only: move_file (always denied) and the
    // undeclared tools (edit_file, search_files, ...) are hidden.
    let listed = json!([
        "list_allowed_directories",
        "list_directory",
        "read_multiple_files",
        "read_text_file",
        "write_file"
    ]);
    assert_eq!(out["tools"], listed);
    // An allowed read passes through unchanged, structuredContent included.
    assert_ok(&out["read"]);
    assert_eq!(text(&out["read"]), "hello A\n");
    assert_eq!(out["read"]["structured"], json!({"content": "hello A\n"}));
    assert_ok(&out["many"]);
    // Every element of a multi-path call is decided.
    assert_error(&out["many_escape"], "denied");
    assert!(!text(&out["many_escape"]).contains("the secret"));
    assert_error(&out["climb"], "denied");
    // A denial names its rule; the upstream never saw it.
    assert_error(&out["move"], "mcp-filesystem.policy:31");
    assert!(Path::new(&format!("{}a.txt", t.root)).exists());
    assert!(!Path::new(&format!("{}moved.txt", t.root)).exists());
    // A held write names its id and the approval command, and does not run.
    assert_error(&out["write_pending"], "policyc approvals approve mcp-");
    assert_error(&out["write_again_before_approval"], "Pending call id");
    assert_eq!(out["written_before_approval"], json!(false));
    assert_eq!(out["approve"]["code"], json!(0), "{}", out["approve"]);
    // After the approval the same call runs, once.
    assert_ok(&out["write_approved"]);
    let written = std::fs::read_to_string(format!("{}new.txt", t.root)).unwrap();
    assert_eq!(written, "approved text");
    assert_error(&out["write_after_run"], "Pending call id");
    // The kill switch stops writes mid-session; reads go on.
    assert_eq!(out["kill"]["code"], json!(0), "{}", out["kill"]);
    assert_error(&out["write_killed"], "kill switch");
    assert_eq!(out["late_written"], json!(false));
    assert_ok(&out["read_killed"]);

    let records = journal(&t.data);
    let decisions: Vec<&Value> = records.iter().filter(|r| r["kind"] == "decision").collect();
    let tools: Vec<&str> = decisions
        .iter()
        .map(|r| r["body"]["tool"].as_str().unwrap())
        .collect();
    assert_eq!(
        tools,
        [
            "read_text_file",
            "read_multiple_files",
            "read_multiple_files",
            "read_text_file",
            "move_file",
            "write_file",
            "write_file",
            "write_file",
            "read_text_file"
        ]
    );
    let held = decisions[5]["body"]["call"].as_str().unwrap();
    assert_eq!(count(&records, "token_used", held), 1);
    assert_eq!(count(&records, "execution", held), 1);
    let hidden = records
        .iter()
        .filter(|r| r["kind"] == "tool_notice" && r["body"]["what"] == "hidden")
        .count();
    assert!(
        hidden >= 5,
        "undeclared upstream tools are journaled once each"
    );
    audit_verifies(&t.data);
}

#[test]
fn stdin_eof_stops_the_upstream_and_exits_promptly() {
    let t = tree("fs-eof");
    let mut args = proxy_args(&t, "127.0.0.1:0", &filesystem_server(&t));
    // No admin API in this one.
    let at = args.iter().position(|a| a == "--admin-listen").unwrap();
    args.drain(at..at + 2);
    let mut proxy = Command::new(BIN)
        .args(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    drop(proxy.stdin.take());
    let start = Instant::now();
    let status = loop {
        if let Some(status) = proxy.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(10) {
            let _ = proxy.kill();
            panic!("the proxy did not exit within 10 s of its stdin closing");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    let records = journal(&t.data);
    assert_eq!(records[0]["kind"], "policy_load");
    audit_verifies(&t.data);
}
