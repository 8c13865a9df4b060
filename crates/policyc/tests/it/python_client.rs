//! The test peers, run by plain `cargo test`: `scripts/setup-test-peers.sh`
//! makes a venv under `target/test-peers` with pinned, hash-checked pytest
//! and schemathesis (it fails, saying what to install, when python3 ≥ 3.10
//! with venv and pip is missing); then the Python client's pytest suite runs
//! against the real `policyc serve`, and schemathesis fuzzes the OpenAPI
//! document against a running server.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers fail loudly when a peer or the server misbehaves"
)]

use crate::ops::harness;

use harness::{repo, temp_dir, Server, BIN};
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// Examples per operation and phase (200 took over 4 minutes on the 2-core machine; 50 about one).
const MAX_EXAMPLES: &str = "50";

/// The venv's directory, made once per test process by the setup script.
fn venv() -> PathBuf {
    static VENV: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let made = VENV.get_or_init(|| {
        let out = Command::new("bash")
            .arg(repo("scripts/setup-test-peers.sh"))
            .output()
            .map_err(|e| format!("cannot run bash scripts/setup-test-peers.sh: {e}"))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            return Err(format!(
                "scripts/setup-test-peers.sh failed:\n{stderr}{stdout}"
            ));
        }
        stdout
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("venv: "))
            .map(PathBuf::from)
            .ok_or_else(|| {
                format!("scripts/setup-test-peers.sh printed no `venv:` line:\n{stdout}")
            })
    });
    match made {
        Ok(path) => path.clone(),
        Err(message) => panic!("{message}"),
    }
}

#[test]
fn the_python_client_tests_pass_against_the_real_server() {
    let python = venv().join("bin/python");
    let out = Command::new(python)
        .current_dir(repo(""))
        .args([
            "-m",
            "pytest",
            "clients/python/tests",
            "-q",
            "-p",
            "no:cacheprovider",
        ])
        .env("POLICYC", BIN)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "pytest failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(" passed"), "{stdout}");
}

/// The OpenAPI document: docs/openapi.json when it is checked in, else the served one
/// (a test of the server keeps the two equal).
fn spec(s: &Server, dir: &std::path::Path) -> PathBuf {
    let checked_in = repo("docs/openapi.json");
    if checked_in.is_file() {
        return checked_in;
    }
    let mut resp = ureq::get(format!("{}/v1/openapi.json", s.url))
        .call()
        .unwrap();
    let path = dir.join("openapi.json");
    std::fs::write(&path, resp.body_mut().read_to_string().unwrap()).unwrap();
    path
}

/// `schemathesis run SPEC` with one key and operation filter; panics with its report on failure.
fn schemathesis(s: &Server, spec: &std::path::Path, key: &str, filter: &[&str], checks: &str) {
    let dir = temp_dir("schemathesis");
    let out = Command::new(venv().join("bin/schemathesis"))
        .current_dir(&dir)
        .arg("run")
        .arg(spec)
        .args([
            "--url",
            &s.url,
            "-H",
            &format!("Authorization: Bearer {key}"),
        ])
        .args(filter)
        .args(["--checks", checks, "--max-examples", MAX_EXAMPLES])
        .env("SCHEMATHESIS_TELEMETRY", "false")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary: Vec<&str> = stdout.lines().rev().take(4).collect();
    println!("schemathesis {filter:?} ({checks}): {summary:?}");
    assert!(
        out.status.success(),
        "schemathesis {filter:?} found problems:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every operation, with the key of the role that may call it: no 5xx, and
/// every response matches the documented schema.
#[test]
fn schemathesis_finds_no_server_error_and_no_schema_mismatch() {
    let s = Server::start("schemathesis");
    let spec = spec(&s, &temp_dir("spec"));
    let both = "not_a_server_error,response_schema_conformance";
    // `POST /v1/decide` answers an object for one request and a list for a
    // list (`DecideAnswer`, a oneOf): found by this test, fixed in the document.
    schemathesis(&s, &spec, &s.service, &["--include-tag", "calls"], both);
    schemathesis(&s, &spec, &s.service, &["--include-tag", "sessions"], both);
    schemathesis(
        &s,
        &spec,
        &s.approver,
        &["--include-tag", "approvals"],
        both,
    );
    schemathesis(&s, &spec, &s.operator, &["--include-tag", "operator"], both);
    schemathesis(&s, &spec, &s.operator, &["--include-tag", "health"], both);
}
