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

use crate::serve::harness;

mod sessions;

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
    let policy = repo("policies/mcp-filesystem.policy");
    proxy_args_with(&policy, t, admin, upstream)
}

/// `mcp-proxy` for agent `fs-assistant` (tenant `local`, env `dev`, `--ctx
/// root=` the tree's root) under `policy`, with its admin API on `admin`.
fn proxy_args_with(policy: &Path, t: &Tree, admin: &str, upstream: &[String]) -> Vec<String> {
    let mut args: Vec<String> = [
        "mcp-proxy",
        "--policy",
        &policy.display().to_string(),
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
    assert_notices(&t.data);
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
    assert_notices(&t.data);
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
    // DNS rebinding: a page whose name was rebound to 127.0.0.1 sends its own
    // Host and Origin; refused (403) even with a valid key, before any session.
    let rebound = |name: &str, value: &str| {
        let req = ureq::post(&url)
            .header("accept", "application/json, text/event-stream")
            .header("authorization", &format!("Bearer {service}"))
            .header(name, value);
        let config = req.config().http_status_as_error(false).build();
        config.send_json(&init).unwrap().status().as_u16()
    };
    assert_eq!(rebound("origin", "http://evil.example.com"), 403);
    assert_eq!(rebound("host", "evil.example.com"), 403);
    assert_eq!(rebound("origin", &format!("http://{endpoint}")), 200);
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
    assert_error(&out["move"], "no-move");
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
    assert_one_session(&records, decisions[0]["body"]["call"].as_str().unwrap());
    audit_verifies(&t.data);
}

/// The client's connection is one Toolgate session: every call counted and
/// every output observed is in it; the first call's output was observed
/// (with its content: the file's text) before the next call was decided.
fn assert_one_session(records: &[Value], first: &str) {
    let sessions: std::collections::BTreeSet<&str> = records
        .iter()
        .filter(|r| r["kind"] == "session_call" || r["kind"] == "session_observed")
        .map(|r| r["body"]["session"].as_str().unwrap())
        .collect();
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    assert!(sessions.iter().all(|s| s.starts_with("s_")), "{sessions:?}");
    let observed = records
        .iter()
        .find(|r| r["kind"] == "session_observed" && r["body"]["call"] == first)
        .unwrap_or_else(|| panic!("the output of `{first}` was not observed"));
    assert!(
        observed["body"]["bytes"].as_u64().unwrap() > 0,
        "{observed}"
    );
}

/// The embedded gateway journals the upstream tools it hides, once each.
fn assert_notices(data: &Path) {
    let records = journal(data);
    let hidden: Vec<&Value> = records
        .iter()
        .filter(|r| r["kind"] == "tool_notice" && r["body"]["what"] == "hidden")
        .map(|r| &r["body"]["tool"])
        .collect();
    assert!(hidden.len() >= 5, "{hidden:?}");
    assert!(hidden.contains(&&json!("edit_file")), "{hidden:?}");
    let unique: std::collections::HashSet<String> = hidden.iter().map(|v| v.to_string()).collect();
    assert_eq!(unique.len(), hidden.len(), "once each");
}

#[test]
fn many_proxies_can_share_one_policyc_serve() {
    let t = tree("fs-remote");
    let k = keys(&t);
    let service = add_key(&t.data, "proxy-1", "service", &["--tenants", "local"]);
    let policy = repo("policies/mcp-filesystem.policy").display().to_string();
    let server = harness::Server::start(&t.data, &["--policy", &policy]);
    let admin = server.url.trim_start_matches("http://").to_string();
    let mut args = proxy_args(&t, &admin, &filesystem_server(&t));
    // Decisions, approvals, kill switch and journal are the server's.
    let at = args.iter().position(|a| a == "--admin-listen").unwrap();
    args.splice(
        at..at + 2,
        [
            "--gateway".to_string(),
            server.url.clone(),
            "--key".to_string(),
            service,
        ],
    );
    let at = args.iter().position(|a| a == "--data").unwrap();
    args.drain(at..at + 2);
    let mut config = session_config(&t, &k, &admin);
    config["proxy_args"] = json!(args);
    let out = run_script("fs_session.py", &config);
    assert_session(&t, &out);
    server.kill();
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

/// A free port's `host:port`, and a child that was started listening on it (killed when dropped).
struct Upstream {
    child: std::process::Child,
    port: u16,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The reference "everything" server in Streamable HTTP mode on a free port, once it accepts connections.
fn everything_over_http() -> Upstream {
    let port = free_port();
    let child = Command::new(peers().bin.join("mcp-server-everything"))
        .arg("streamableHttp")
        .env("PORT", port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let upstream = Upstream { child, port };
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "server-everything did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    upstream
}

fn everything_args(data: &Path, extra: &[&str]) -> Vec<String> {
    let policy = repo("crates/policyc/tests/mcp/everything.policy");
    let mut args: Vec<String> = ["mcp-proxy", "--policy", &policy.display().to_string()]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for a in [
        "--agent", "tester", "--tenant", "t1", "--env", "dev", "--data",
    ] {
        args.push(a.to_string());
    }
    args.push(data.display().to_string());
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// What every session with the everything server must have seen.
fn assert_everything(out: &Value, data: &Path) {
    assert_eq!(out["protocol"], "2025-11-25");
    let listed = json!([
        "echo",
        "get-env",
        "get-structured-content",
        "get-sum",
        "simulate-research-query",
        "toggle-subscriber-updates"
    ]);
    assert_eq!(out["tools"], listed);
    assert_ok(&out["echo"]);
    assert_eq!(text(&out["echo"]), "Echo: hi");
    assert_ok(&out["sum"]);
    // structuredContent passes unchanged (the SDK validates it against the outputSchema).
    assert_ok(&out["structured"]);
    assert!(
        out["structured"]["structured"]["temperature"].is_number(),
        "{}",
        out["structured"]
    );
    assert_error(&out["toggle"], "everything.policy:19");
    assert_error(&out["hidden"], "undeclared tool");
    // Resources and prompts pass through.
    assert!(out["resources"].as_u64().unwrap() > 0, "{out}");
    assert!(
        out["prompts"]
            .as_array()
            .unwrap()
            .contains(&json!("simple-prompt")),
        "{out}"
    );
    let records = journal(data);
    let conflict = records.iter().any(|r| {
        r["kind"] == "tool_notice"
            && r["body"]["what"] == "annotation"
            && r["body"]["tool"] == "simulate-research-query"
    });
    assert!(conflict, "the readOnlyHint conflict is journaled");
    // A write the client's user approves: asked through elicitation, with
    // the arguments' digest, journaled as that user's approval, run once.
    assert_ok(&out["user_approved"]);
    let asked = out["asked"][0].as_str().unwrap_or_default();
    assert!(
        asked.contains("toggle-subscriber-updates") && asked.contains("arguments digest"),
        "{asked}"
    );
    let granted: Vec<&Value> = records
        .iter()
        .filter(|r| r["kind"] == "approval_granted")
        .collect();
    assert_eq!(granted.len(), 1, "{granted:?}");
    assert_eq!(granted[0]["body"]["approver"], "mcp-user@t1");
    let call = granted[0]["body"]["call"].as_str().unwrap();
    assert_eq!(count(&records, "token_used", call), 1);
    audit_verifies(data);
}

#[test]
fn the_everything_server_over_streamable_http_upstream() {
    let dir = temp_dir("everything-http");
    let data = dir.join("data");
    let upstream = everything_over_http();
    let url = format!("http://127.0.0.1:{}/mcp", upstream.port);
    let config = json!({
        "policyc": BIN,
        "proxy_args": everything_args(&data, &["--upstream-url", &url]),
    });
    let out = run_script("everything_session.py", &config);
    assert_everything(&out, &data);
}

#[test]
fn credentials_reach_the_upstream_child_and_never_the_journal() {
    let dir = temp_dir("everything-creds");
    let data = dir.join("data");
    let creds = dir.join("creds.toml");
    let secret = "s3cret-for-t1-only";
    std::fs::write(
        &creds,
        format!("[[credential]]\ntenant = \"t1\"\nvars = {{ TG_TEST_TOKEN = \"{secret}\" }}\n\n[[credential]]\ntenant = \"t2\"\nvars = {{ TG_OTHER_TOKEN = \"not-for-t1\" }}\n"),
    )
    .unwrap();
    let server = peers()
        .bin
        .join("mcp-server-everything")
        .display()
        .to_string();
    let creds_arg = creds.display().to_string();
    let config = json!({
        "policyc": BIN,
        "env": true,
        "proxy_args": everything_args(&data, &["--credentials", &creds_arg, "--", &server, "stdio"]),
    });
    let out = run_script("everything_session.py", &config);
    assert_everything(&out, &data);
    // The policy lets this test's agent read the child's environment: the
    // tenant's credential is there, another tenant's is not.
    assert_ok(&out["env"]);
    assert!(text(&out["env"]).contains(secret), "{}", out["env"]);
    assert!(!text(&out["env"]).contains("not-for-t1"));
    let journal_text = std::fs::read_to_string(data.join("journal.jsonl")).unwrap();
    assert!(!journal_text.contains(secret));
}

/// The proxy on stdio, driven line by line (for what no SDK would send).
struct Raw {
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    lines: std::sync::mpsc::Receiver<Value>,
}

impl Raw {
    fn start(args: &[String]) -> Raw {
        use std::io::BufRead as _;
        let mut child = Command::new(BIN)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                let _ = tx.send(serde_json::from_str(&line).unwrap_or(json!({"unparsed": line})));
            }
        });
        let stdin = child.stdin.take();
        let mut raw = Raw {
            child,
            stdin,
            lines,
        };
        let init = json!({"jsonrpc": "2.0", "id": "init", "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "clientInfo": {"name": "raw", "version": "1"},
            "capabilities": {"roots": {"listChanged": true}}}});
        raw.send_text(&init.to_string());
        raw.answer(&json!("init"));
        raw.send_text(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
        raw
    }

    fn send_text(&mut self, text: &str) {
        use std::io::Write as _;
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{text}").unwrap();
        stdin.flush().unwrap();
    }

    /// The next message answering `id` (others are skipped).
    fn answer(&self, id: &Value) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let message = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no answer to {id}"));
            if &message["id"] == id && message.get("method").is_none() {
                return message;
            }
        }
    }

    /// Every message that arrives within `wait`.
    fn drain(&self, wait: Duration) -> Vec<Value> {
        let deadline = Instant::now() + wait;
        let mut seen = Vec::new();
        while let Ok(m) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            seen.push(m);
        }
        seen
    }

    fn call(&mut self, id: u64, tool: &str, args: Value) -> Value {
        let call = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": args}});
        self.send_text(&call.to_string());
        self.answer(&json!(id))
    }

    /// Closes stdin and waits for the proxy to exit.
    fn finish(mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

#[test]
fn what_the_proxy_cannot_decide_fails_closed() {
    let t = tree("fs-raw");
    let mut args = proxy_args(&t, "127.0.0.1:0", &filesystem_server(&t));
    let at = args.iter().position(|a| a == "--admin-listen").unwrap();
    args.drain(at..at + 2);
    let mut raw = Raw::start(&args);
    raw.send_text("this is not json");
    assert_eq!(raw.answer(&Value::Null)["error"]["code"], -32700);
    raw.send_text(
        r#"[{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"move_file"}}]"#,
    );
    assert_eq!(raw.answer(&Value::Null)["error"]["code"], -32600);
    raw.send_text(r#"{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"arguments":{}}}"#);
    assert_eq!(raw.answer(&json!(8))["error"]["code"], -32602);
    raw.send_text(r#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"read_text_file","arguments":"x"}}"#);
    assert_eq!(raw.answer(&json!(9))["error"]["code"], -32602);
    // An unknown method on the tools path is refused, not forwarded.
    raw.send_text(
        r#"{"jsonrpc":"2.0","id":13,"method":"tools/execute","params":{"name":"move_file"}}"#,
    );
    let refused = raw.answer(&json!(13));
    assert_eq!(refused["error"]["code"], -32601);
    assert!(refused.to_string().contains("not relayed"), "{refused}");
    // Arguments over the gateway's limit are denied (and journaled without them).
    let big = "x".repeat(70 * 1024);
    let answer = raw.call(
        10,
        "read_text_file",
        json!({"path": format!("{}{big}", t.root)}),
    );
    assert_eq!(answer["result"]["isError"], true, "{answer}");
    assert!(answer["result"]["content"][0]["text"]
        .as_str()
        .unwrap()
        .contains("over the limit"));
    // Arguments that do not fit the tool's schema are denied.
    let answer = raw.call(11, "read_text_file", json!({"path": 5}));
    assert_eq!(answer["result"]["isError"], true, "{answer}");
    // Duplicate keys: the upstream runs what was decided (the last `path`, as parsed).
    let dup = format!(
        r#"{{"jsonrpc":"2.0","id":12,"method":"tools/call","params":{{"name":"read_text_file","arguments":{{"path":"{}","path":"{}a.txt"}}}}}}"#,
        t.dir.join("secret.txt").display(),
        t.root
    );
    raw.send_text(&dup);
    let answer = raw.answer(&json!(12));
    assert_eq!(
        answer["result"]["content"][0]["text"], "hello A\n",
        "{answer}"
    );
    raw.finish();
    let records = journal(&t.data);
    let decided = records.iter().filter(|r| r["kind"] == "decision").count();
    assert_eq!(
        decided, 3,
        "the malformed messages never reached the gateway"
    );
    audit_verifies(&t.data);
}

#[test]
fn wait_approval_holds_the_call_until_a_human_approves_it() {
    let t = tree("fs-wait");
    let k = keys(&t);
    let admin = format!("127.0.0.1:{}", free_port());
    let mut args = proxy_args(&t, &admin, &filesystem_server(&t));
    args.splice(1..1, ["--wait-approval".to_string(), "30s".to_string()]);
    let mut raw = Raw::start(&args);
    let path = format!("{}held.txt", t.root);
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": "write_file", "arguments": {"path": path, "content": "waited"}}});
    raw.send_text(&call.to_string());
    // Find the held call on the admin API and approve it while the call waits.
    let url = format!("http://{admin}");
    let policyc = |key: &str, args: &[&str]| {
        let out = Command::new(BIN)
            .args(args)
            .env("TOOLGATE_KEY", key)
            .env("TOOLGATE_URL", &url)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let held = || {
        let start = Instant::now();
        loop {
            let listed: Value =
                serde_json::from_str(&policyc(&k.approver, &["approvals", "list", "--json"]))
                    .unwrap();
            let id = listed["approvals"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|p| p["state"] == "pending")
                .map(|p| {
                    (
                        p["id"].as_str().unwrap().to_string(),
                        p["hold_digest"].as_str().unwrap().to_string(),
                    )
                });
            if let Some(held) = id {
                return held;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "no call was held: {listed}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let (id, digest) = held();
    assert!(!Path::new(&path).exists());
    policyc(
        &k.approver,
        &[
            "approvals",
            "approve",
            &id,
            "--digest",
            &digest,
            "--tenant",
            "local",
            "--reason",
            "ok",
        ],
    );
    let answer = raw.answer(&json!(1));
    assert_eq!(answer["result"]["isError"], Value::Null, "{answer}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "waited");
    // A rejection ends the wait at once.
    let other = format!("{}rejected.txt", t.root);
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
        "name": "write_file", "arguments": {"path": other, "content": "no"}}});
    raw.send_text(&call.to_string());
    let (id, _) = held();
    let start = Instant::now();
    policyc(
        &k.approver,
        &[
            "approvals",
            "reject",
            &id,
            "--tenant",
            "local",
            "--reason",
            "no",
        ],
    );
    let answer = raw.answer(&json!(2));
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(answer["result"]["isError"], true, "{answer}");
    assert!(answer.to_string().contains("rejected"), "{answer}");
    assert!(!Path::new(&other).exists());
    raw.finish();
    audit_verifies(&t.data);
}

#[test]
fn the_clients_roots_reach_the_upstream_only_when_configured() {
    let t = tree("fs-roots");
    let mut args = proxy_args(&t, "127.0.0.1:0", &filesystem_server(&t));
    let at = args.iter().position(|a| a == "--admin-listen").unwrap();
    args.drain(at..at + 2);
    let asks = |args: &[String]| {
        let raw = Raw::start(args);
        // The filesystem server asks a client that declares roots for them at once.
        let seen = raw.drain(Duration::from_secs(3));
        raw.finish();
        seen.iter().any(|m| m["method"] == "roots/list")
    };
    assert!(!asks(&args), "roots are withheld by default");
    args.insert(1, "--forward-roots".into());
    assert!(
        asks(&args),
        "with --forward-roots the upstream asks the client"
    );
}

/// Security review 2026-12, C1 over stdio: a bare `\r` is JSON whitespace,
/// so one line from the client is one notification to the proxy; an
/// upstream on the MCP Python SDK reads with universal newlines, where the
/// same bytes were three lines, the middle one a `tools/call` of a denied
/// tool. Failed before the fix (the proxy forwarded the text as received:
/// `wipe` ran, unjournaled); the proxy now writes its own serialization.
#[test]
fn a_bare_cr_inside_a_message_never_splits_it_for_the_upstream() {
    let dir = temp_dir("smuggle-cr").canonicalize().unwrap();
    let marker = dir.join("WIPED");
    let args = py_upstream_args("py_upstream.policy", &dir.join("data"), &marker);
    let mut raw = Raw::start(&args);
    let direct = raw.call(2, "wipe", json!({"target": "direct"}));
    assert_eq!(direct["result"]["isError"], true, "{direct}");
    let inner = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": {"name": "wipe", "arguments": {"target": "smuggled"}}});
    raw.send_text(&format!(
        "{{\"jsonrpc\":\"2.0\",\"method\":\"notifications/x\",\"params\":{{\"a\":\r{inner}\r}}}}"
    ));
    // A round trip after it: the upstream has read the smuggling line by then.
    let looked = raw.call(4, "lookup", json!({"q": "x"}));
    assert_eq!(looked["result"]["isError"], false, "{looked}");
    let late = raw.drain(Duration::from_millis(500));
    assert!(late.iter().all(|m| m["id"] != 3), "{late:?}");
    raw.finish();
    assert!(
        !marker.exists(),
        "the smuggled call ran: {}",
        std::fs::read_to_string(&marker).unwrap_or_default()
    );
    let journal_text = std::fs::read_to_string(dir.join("data/journal.jsonl")).unwrap();
    assert!(journal_text.contains("direct"));
    assert!(!journal_text.contains("smuggled"));
}

/// One POST to a `--listen` proxy: status, session id, body (an SSE stream is read to its end).
fn post_mcp(
    url: &str,
    key: &str,
    session: Option<&str>,
    body: &str,
) -> (u16, Option<String>, String) {
    let resp = post_mcp_response(url, key, session, body);
    let status = resp.status().as_u16();
    let session = resp
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let text = resp.into_body().read_to_string().unwrap_or_default();
    (status, session, text)
}

/// One POST to a `--listen` proxy in MCP session `session` (`None`: none yet), as `key`.
fn post_mcp_response(
    url: &str,
    key: &str,
    session: Option<&str>,
    body: &str,
) -> ureq::http::Response<ureq::Body> {
    let mut req = ureq::post(url)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("authorization", &format!("Bearer {key}"));
    if let Some(s) = session {
        req = req.header("mcp-session-id", s);
    }
    let config = req
        .config()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(20)))
        .build();
    config.send(body).unwrap()
}

/// Security review 2026-12, C1 through `--listen`: one POST body the proxy
/// reads as a notification held, between JSON tokens, raw line feeds and
/// three whole `tools/call`s (a denied move, an unapproved write, a read
/// outside the root). Failed before the fix: the body went to the stdio
/// upstream as received, so all three ran, unjournaled.
#[test]
fn raw_line_feeds_in_a_posted_message_never_reach_the_upstream_as_calls() {
    let t = tree("smuggle-http");
    std::fs::create_dir_all(&t.data).unwrap();
    let service = add_key(&t.data, "agent-1", "service", &["--tenants", "local"]);
    let endpoint = format!("127.0.0.1:{}", free_port());
    let mut args = proxy_args(&t, "127.0.0.1:0", &filesystem_server(&t));
    let at = args.iter().position(|a| a == "--admin-listen").unwrap();
    args.drain(at..at + 2);
    args.splice(1..1, ["--listen".to_string(), endpoint.clone()]);
    let proxy = listen(args);
    let url = format!("http://{endpoint}/mcp");
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let (status, session, _) = post_mcp(&url, &service, None, &init.to_string());
    assert_eq!(status, 200);
    let session = session.unwrap();
    let initialized = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
    post_mcp(&url, &service, Some(&session), initialized);
    let a = format!("{}a.txt", t.root);
    let calls = [
        (
            "move_file",
            json!({"source": a, "destination": format!("{}moved.txt", t.root)}),
        ),
        (
            "write_file",
            json!({"path": format!("{}pwned.txt", t.root), "content": "x"}),
        ),
        ("read_text_file", json!({"path": t.dir.join("secret.txt")})),
    ];
    let inner: Vec<String> = calls
        .iter()
        .enumerate()
        .map(|(i, (tool, args))| {
            json!({"jsonrpc": "2.0", "id": 77 + i, "method": "tools/call",
                "params": {"name": tool, "arguments": args}})
            .to_string()
        })
        .collect();
    let body = format!(
        "{{\"jsonrpc\":\"2.0\",\"method\":\"notifications/x\",\"params\":{{\"a\":\n{}\n,\"b\":\n{}\n,\"c\":\n{}\n}}}}",
        inner[0], inner[1], inner[2]
    );
    let (status, _, _) = post_mcp(&url, &service, Some(&session), &body);
    assert_eq!(status, 202);
    // A round trip after it: the upstream has read every line before by then.
    let ping = r#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#;
    let (status, _, answer) = post_mcp(&url, &service, Some(&session), ping);
    assert_eq!(status, 200, "{answer}");
    assert!(!answer.contains("the secret"), "{answer}");
    std::thread::sleep(Duration::from_millis(500));
    drop(proxy);
    assert!(t.dir.join("root/a.txt").exists(), "the denied move ran");
    assert!(
        !t.dir.join("root/moved.txt").exists(),
        "the denied move ran"
    );
    assert!(
        !t.dir.join("root/pwned.txt").exists(),
        "the unapproved write ran"
    );
    let journal_text = std::fs::read_to_string(t.data.join("journal.jsonl")).unwrap();
    assert!(!journal_text.contains("moved.txt"));
    assert!(!journal_text.contains("pwned.txt"));
    audit_verifies(&t.data);
}

/// `mcp-proxy` for agent `assistant` (tenant `t`, env `dev`) under a
/// policy of tests/mcp/, in front of `upstream`.
fn assistant_args(policy: &str, data: &Path, upstream: &[String]) -> Vec<String> {
    let policy = repo(&format!("crates/policyc/tests/mcp/{policy}"));
    let mut args: Vec<String> = ["mcp-proxy", "--policy", &policy.display().to_string()]
        .into_iter()
        .chain(["--agent", "assistant", "--tenant", "t", "--env", "dev"])
        .chain(["--data", &data.display().to_string(), "--"])
        .map(String::from)
        .collect();
    args.extend_from_slice(upstream);
    args
}

/// The same in front of tests/mcp/py_upstream.py, which leaves `marker` when `wipe` runs.
fn py_upstream_args(policy: &str, data: &Path, marker: &Path) -> Vec<String> {
    let script = repo("crates/policyc/tests/mcp/py_upstream.py");
    let upstream = [peers().python.as_path(), &script, marker].map(|p| p.display().to_string());
    assistant_args(policy, data, &upstream)
}

/// A `--listen` proxy in front of tests/mcp/py_upstream.py.
struct PyListen {
    proxy: Listening,
    /// A scratch directory: `WIPED` appears there when `wipe` runs.
    dir: PathBuf,
    /// The proxy's `--data` (under `dir`).
    data: PathBuf,
    /// A service key for tenant `t`.
    service: String,
    /// The MCP endpoint.
    url: String,
}

/// Starts a [`PyListen`] under the policy `policy` of tests/mcp/.
fn py_listen(name: &str, policy: &str) -> PyListen {
    let dir = temp_dir(name).canonicalize().unwrap();
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let service = add_key(&data, "agent-service", "service", &["--tenants", "t"]);
    let endpoint = format!("127.0.0.1:{}", free_port());
    let mut args = py_upstream_args(policy, &data, &dir.join("WIPED"));
    args.splice(1..1, ["--listen".to_string(), endpoint.clone()]);
    PyListen {
        proxy: listen(args),
        url: format!("http://{endpoint}/mcp"),
        dir,
        data,
        service,
    }
}

/// Security review 2026-12, M7: over `--listen` the HTTP client is the
/// agent's own process; asked to approve its own call "as the user", its
/// answer would be the agent approving itself. Failed before the fix (the
/// POST stream carried `elicitation/create`); now the call stays held for
/// the approvals API unless `--listen-elicitation` says the client is the user's.
#[test]
fn over_listen_the_agent_is_never_asked_to_approve_as_the_user() {
    let PyListen {
        proxy,
        dir,
        data,
        service,
        url,
    } = py_listen("listen-user", "py_upstream_user.policy");
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {"elicitation": {}},
        "clientInfo": {"name": "agent", "version": "1"}}});
    let (status, session, _) = post_mcp(&url, &service, None, &init.to_string());
    assert_eq!(status, 200);
    let session = session.unwrap();
    post_mcp(
        &url,
        &service,
        Some(&session),
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
    );
    let wipe = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "wipe", "arguments": {"target": "prod-db"}}});
    let (status, _, answer) = post_mcp(&url, &service, Some(&session), &wipe.to_string());
    assert_eq!(status, 200);
    assert!(!answer.contains("elicitation/create"), "{answer}");
    assert!(answer.contains("needs a human approval"), "{answer}");
    drop(proxy);
    assert!(!dir.join("WIPED").exists());
    let records = journal(&data);
    assert!(
        records.iter().all(|r| r["kind"] != "approval"),
        "{records:?}"
    );
}

/// Security review 2026-12, M6: the upstream child gets a cleared
/// environment, plus `--pass-env` names and matching credentials. Failed
/// before the fix (it inherited everything, `TOOLGATE_KEY` included).
#[test]
fn the_upstream_child_gets_only_the_environment_it_is_given() {
    let dir = temp_dir("child-env").canonicalize().unwrap();
    let seen = dir.join("env.txt");
    let creds = dir.join("creds.toml");
    std::fs::write(
        &creds,
        "[[credential]]\nvars = { GIVEN_CREDENTIAL = \"c-1\" }\n",
    )
    .unwrap();
    let policy = repo("crates/policyc/tests/mcp/py_upstream.policy");
    let script = format!(
        "env > '{}.tmp' && mv '{0}.tmp' '{0}' && exec cat >/dev/null",
        seen.display()
    );
    let mut proxy = Command::new(BIN)
        .args(["mcp-proxy", "--policy"])
        .arg(&policy)
        .args([
            "--agent",
            "assistant",
            "--tenant",
            "t",
            "--env",
            "dev",
            "--data",
        ])
        .arg(dir.join("data"))
        .arg("--credentials")
        .arg(&creds)
        .args(["--pass-env", "PASSED_ON", "--", "sh", "-c", &script])
        .env("TOOLGATE_KEY", "tg-secret-key")
        .env("UNNAMED_SECRET", "s-1")
        .env("PASSED_ON", "p-1")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !seen.exists() && Instant::now() < deadline && proxy.try_wait().unwrap().is_none() {
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(proxy.stdin.take());
    let _ = proxy.wait();
    let env = std::fs::read_to_string(&seen).unwrap_or_default();
    assert!(env.contains("PASSED_ON=p-1"), "{env}");
    assert!(env.contains("GIVEN_CREDENTIAL=c-1"), "{env}");
    assert!(env.lines().any(|l| l.starts_with("PATH=")), "{env}");
    assert!(!env.contains("tg-secret-key"), "{env}");
    assert!(!env.contains("UNNAMED_SECRET"), "{env}");
}

/// Security review 2026-12, L1: one service key can hold at most 16 of the
/// proxy's 64 sessions; past that its least recently used session without
/// an open stream is ended, or, all streaming, the new one is refused.
/// Failed before the fix (the seventeenth opened beside the others).
#[test]
fn one_key_cannot_hold_every_listen_session() {
    let dir = temp_dir("listen-per-key").canonicalize().unwrap();
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let greedy = add_key(&data, "greedy", "service", &["--tenants", "t"]);
    let other = add_key(&data, "other", "service", &["--tenants", "t"]);
    let endpoint = format!("127.0.0.1:{}", free_port());
    let mut args = assistant_args("py_upstream.policy", &data, &["cat".to_string()]);
    args.splice(1..1, ["--listen".to_string(), endpoint.clone()]);
    let proxy = listen(args);
    let url = format!("http://{endpoint}/mcp");
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}).to_string();
    // With `cat` as the upstream an answer's stream never ends: each
    // session keeps an open stream while its response is held here.
    let open = |key: &str| {
        let req = ureq::post(&url)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .header("authorization", &format!("Bearer {key}"));
        let config = req.config().http_status_as_error(false).build();
        config.send(&init).unwrap()
    };
    let streams: Vec<_> = (0..16).map(|_| open(&greedy)).collect();
    assert!(streams.iter().all(|r| r.status() == 200));
    assert_eq!(open(&greedy).status(), 429);
    assert_eq!(open(&other).status(), 200);
    // Streams closed, the key's oldest session makes room for a new one.
    drop(streams);
    let deadline = Instant::now() + Duration::from_secs(10);
    while open(&greedy).status() != 200 {
        assert!(
            Instant::now() < deadline,
            "no session was ended for the key"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(proxy);
}

/// Security review 2026-12, L5 through `--listen`: a keys file made invalid
/// by a hand edit authenticates nobody (503) until it is fixed, and is
/// journaled; the last good keys do not stay in force.
#[test]
fn an_invalid_keys_file_refuses_every_listen_caller() {
    let dir = temp_dir("listen-keys").canonicalize().unwrap();
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let service = add_key(&data, "svc", "service", &["--tenants", "t"]);
    let endpoint = format!("127.0.0.1:{}", free_port());
    let mut args = assistant_args("py_upstream.policy", &data, &["cat".to_string()]);
    args.splice(1..1, ["--listen".to_string(), endpoint.clone()]);
    let proxy = listen(args);
    let url = format!("http://{endpoint}/mcp");
    let ping = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
    let keys = data.join("keys.toml");
    let good = std::fs::read_to_string(&keys).unwrap();
    std::fs::write(&keys, format!("{good}\n[[key]\nbroken")).unwrap();
    let (status, _, body) = post_mcp(&url, &service, None, ping);
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("no key authenticates"), "{body}");
    std::fs::write(&keys, good).unwrap();
    let (status, _, _) = post_mcp(&url, &service, None, ping);
    assert_eq!(status, 400, "a valid key again: no session yet");
    drop(proxy);
    let refused = journal(&data)
        .into_iter()
        .filter(|r| r["kind"] == "access_denied")
        .filter(|r| r.to_string().contains("keys file"))
        .count();
    assert_eq!(refused, 1);
}
