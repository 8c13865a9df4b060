//! The MCP conformance suite (`@modelcontextprotocol/conformance`, pinned by
//! `scripts/setup-test-peers.sh npm`) against `mcp-server-everything`, twice:
//! directly (its own Streamable HTTP mode: the baseline) and through
//! `policyc mcp-proxy --listen` with the server as its stdio upstream behind
//! `tests/mcp_conformance/allow-all.policy`, reached through
//! `tests/mcp_conformance/add-bearer.mjs` (the suite cannot send the service
//! key `--listen` requires). Every scenario that passes directly must pass
//! through the proxy, so a failure the proxy causes fails this test. The
//! per-scenario results are recorded in docs/mcp.md ("Conformance").

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers fail loudly when a peer or the proxy misbehaves"
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_policyc");

use crate::support::npm;
use npm::npm_peers;

/// Kills and reaps the child when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn work_dir(name: &str) -> PathBuf {
    toolgate_testkit::scratch!(format!("mcp_conformance_{name}"))
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn wait_port(port: u16, child: &mut Running, what: &str) {
    let until = Instant::now() + Duration::from_secs(30);
    while Instant::now() < until {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.0.try_wait() {
            panic!("{what} exited with {status} before listening on port {port}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} does not listen on 127.0.0.1:{port} after 30 s");
}

/// Scenario → (checks passed, checks failed), from the suite's summary.
type Results = BTreeMap<String, (u32, u32)>;

/// `conformance server --url URL`; the summary parsed.
fn conformance(peers: &Path, url: &str, dir: &Path) -> (Results, String) {
    let out = Command::new(peers.join(".bin/conformance"))
        .args(["server", "--url", url, "-o"])
        .arg(dir.join("results"))
        .current_dir(dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let summary = stdout.split_once("=== SUMMARY ===").map_or("", |(_, s)| s);
    let results: Results = summary.lines().filter_map(parse_summary_line).collect();
    assert!(
        !results.is_empty(),
        "the conformance suite printed no summary against {url}:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (results, stdout)
}

/// `✓ tools-list: 1 passed, 0 failed`.
fn parse_summary_line(line: &str) -> Option<(String, (u32, u32))> {
    let line = line.trim_start_matches(['✓', '✗', ' ']);
    let (name, counts) = line.split_once(": ")?;
    if name == "Total" {
        return None;
    }
    let (passed, failed) = counts.split_once(", ")?;
    let passed = passed.strip_suffix(" passed")?.parse().ok()?;
    let failed = failed.strip_suffix(" failed")?.parse().ok()?;
    Some((name.to_string(), (passed, failed)))
}

fn table(direct: &Results, proxied: &Results) -> String {
    let mut out = String::from("| Scenario | Direct | Through the proxy |\n|---|---|---|\n");
    let show = |r: Option<&(u32, u32)>| match r {
        Some((p, 0)) => format!("pass ({p})"),
        Some((p, f)) => format!("FAIL ({p} passed, {f} failed)"),
        None => "not run".into(),
    };
    for (name, r) in direct {
        out.push_str(&format!(
            "| {name} | {} | {} |\n",
            show(Some(r)),
            show(proxied.get(name))
        ));
    }
    out
}

/// `policyc keys add NAME --role service`: the secret.
fn service_key(keys: &Path) -> String {
    let out = Command::new(BIN)
        .args(["keys", "add", "conformance", "--role", "service", "--keys"])
        .arg(keys)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "policyc keys add: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout.lines().last().unwrap().trim().to_string()
}

/// `policyc mcp-proxy --listen` with `mcp-server-everything` as its stdio
/// upstream, behind `add-bearer.mjs` (the suite cannot send the service key
/// `--listen` requires): the URL the suite tests, and the processes.
fn start_proxy(dir: &Path, everything: &Path) -> (String, [Running; 2]) {
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mcp_conformance");
    let keys = dir.join("keys.toml");
    let key = service_key(&keys);
    let port = free_port();
    let mut proxy = Running(
        Command::new(BIN)
            .arg("mcp-proxy")
            .arg("--policy")
            .arg(here.join("allow-all.policy"))
            .args([
                "--agent",
                "conformance",
                "--tenant",
                "t1",
                "--env",
                "dev",
                "--data",
            ])
            .arg(dir.join("data"))
            .arg("--keys")
            .arg(&keys)
            // The suite runs every scenario under one key and keeps each
            // session's stream open: one key holds all of the sessions here.
            .args(["--max-sessions-per-key", "64"])
            .args(["--listen", &format!("127.0.0.1:{port}"), "--"])
            .arg(everything)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    wait_port(port, &mut proxy, "policyc mcp-proxy --listen");
    let front = free_port();
    let mut shim = Running(
        Command::new("node")
            .arg(here.join("add-bearer.mjs"))
            .args([front.to_string(), port.to_string()])
            .env("TOOLGATE_KEY", key)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    wait_port(front, &mut shim, "node add-bearer.mjs");
    (format!("http://127.0.0.1:{front}/mcp"), [shim, proxy])
}

#[test]
fn every_scenario_that_passes_directly_passes_through_the_proxy() {
    let peers = npm_peers();
    let everything = peers.join(".bin/mcp-server-everything");
    let dir = work_dir("suite");

    let port = free_port();
    let mut direct_server = Running(
        Command::new(&everything)
            .arg("streamableHttp")
            .env("PORT", port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_port(
        port,
        &mut direct_server,
        "mcp-server-everything streamableHttp",
    );
    let direct_dir = dir.join("direct");
    std::fs::create_dir_all(&direct_dir).unwrap();
    let (direct, _) = conformance(&peers, &format!("http://127.0.0.1:{port}/mcp"), &direct_dir);
    drop(direct_server);

    let (url, _proxy) = start_proxy(&dir, &everything);
    let proxy_dir = dir.join("proxy");
    std::fs::create_dir_all(&proxy_dir).unwrap();
    let (proxied, proxied_out) = conformance(&peers, &url, &proxy_dir);

    let table = table(&direct, &proxied);
    println!("{table}");
    let caused: Vec<&String> = direct
        .iter()
        .filter(|(name, (_, failed))| *failed == 0 && proxied.get(*name).is_none_or(|r| r.1 > 0))
        .map(|(name, _)| name)
        .collect();
    assert!(
        caused.is_empty(),
        "scenarios that pass directly but not through the proxy: {caused:?}\n{table}\n\
         details: {}/proxy/results/server-SCENARIO-*/checks.json\n{proxied_out}",
        dir.display()
    );
    let passing = direct.values().filter(|r| r.1 == 0).count();
    assert!(
        passing >= 10,
        "only {passing} scenarios pass directly: is the pinned server-everything broken?\n{table}"
    );
}
