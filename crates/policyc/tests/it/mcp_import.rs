//! `policyc mcp-import`: golden files from `tools/list` fixtures under
//! `tests/mcp_import/` (`X.tools.json` → `X.policy` on stdout, the warnings
//! in `X.stderr`; `BLESS=1` rewrites them), each output `check`- and
//! `fmt`-clean; and a live import of the real `mcp-server-filesystem`
//! (installed by `scripts/setup-test-peers.sh npm`).

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers fail loudly on broken fixtures or peers"
)]

use crate::support::npm::npm_peers;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_policyc");

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mcp_import")
}

fn work_dir(name: &str) -> PathBuf {
    toolgate_testkit::scratch!(format!("mcp_import_{name}"))
}

fn policyc(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `policyc check --deny-warnings` and `policyc fmt --check` both pass on `file`.
fn assert_clean(dir: &Path, file: &str) {
    for args in [
        &["check", "--deny-warnings", file][..],
        &["fmt", "--check", file],
    ] {
        let out = policyc(dir, args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "policyc {args:?}:\n{}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
    }
}

/// Compares with a golden file, or writes it when `BLESS` is set.
fn golden(path: &Path, actual: &str) {
    if std::env::var_os("BLESS").is_some() {
        std::fs::write(path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with BLESS=1 to create it)", path.display()));
    assert!(
        expected == actual,
        "{} differs (BLESS=1 rewrites it):\n--- expected\n{expected}\n--- actual\n{actual}",
        path.display()
    );
}

fn check_fixture(name: &str) {
    let dir = work_dir(name);
    let from = fixtures().join(format!("{name}.tools.json"));
    let out = policyc(
        &dir,
        &[
            "mcp-import",
            "--from",
            from.to_str().unwrap(),
            "-o",
            "out.policy",
        ],
    );
    let stderr = text(&out.stderr).replace(&fixtures().display().to_string(), "FIXTURES");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let policy = std::fs::read_to_string(dir.join("out.policy")).unwrap();
    let policy = policy.replace(&fixtures().display().to_string(), "FIXTURES");
    golden(&fixtures().join(format!("{name}.policy")), &policy);
    golden(&fixtures().join(format!("{name}.stderr")), &stderr);
    assert_clean(&dir, "out.policy");
}

#[test]
fn the_filesystem_servers_tools_import_as_golden() {
    check_fixture("filesystem");
}

#[test]
fn the_everything_servers_tools_import_as_golden() {
    check_fixture("everything");
}

/// Unions, maps, `$ref`, enums at depth, bad names, duplicates: each reported
/// per tool and field, none widened.
#[test]
fn what_the_language_cannot_express_is_reported_never_widened() {
    check_fixture("edge");
}

#[test]
fn a_bare_list_from_stdin_imports_like_a_tools_list_result() {
    let dir = work_dir("stdin");
    let mut child = Command::new(BIN)
        .args(["mcp-import", "--from", "-", "--name", "piped"])
        .current_dir(&dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let list = r#"[{"name":"kb.get","inputSchema":{"type":"object","properties":{"id":{"type":"string"}},"required":["id"]},"annotations":{"readOnlyHint":true}}]"#;
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), list.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("policy piped;\n"), "{stdout}");
    assert!(
        stdout.contains("tool kb.get read { id: string };\n"),
        "{stdout}"
    );
    assert_eq!(text(&out.stderr), "");
}

#[test]
fn usage_errors_exit_2_and_say_what_to_give() {
    let dir = work_dir("usage");
    let out = policyc(&dir, &["mcp-import"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("give either `--from tools.json` or `-- <server command...>`"),
        "{}",
        text(&out.stderr)
    );
    std::fs::write(dir.join("x.json"), "{\"nope\": 1}").unwrap();
    let out = policyc(&dir, &["mcp-import", "--from", "x.json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("`x.json` has no `tools` list"));
    let out = policyc(&dir, &["mcp-import", "--", "/nonexistent/server"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("`/nonexistent/server`: cannot start it"),
        "{}",
        text(&out.stderr)
    );
}

/// The live import of the real server declares what the fixture (recorded
/// with the MCP Python SDK from the same server) declares, and checks clean.
#[test]
fn the_real_filesystem_server_imports_live_and_checks_clean() {
    let server = npm_peers().join(".bin/mcp-server-filesystem");
    let dir = work_dir("live");
    std::fs::create_dir_all(dir.join("files")).unwrap();
    let files = dir.join("files");
    let out = policyc(
        &dir,
        &[
            "mcp-import",
            "-o",
            "fs.policy",
            "--",
            server.to_str().unwrap(),
            files.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_clean(&dir, "fs.policy");
    let live = std::fs::read_to_string(dir.join("fs.policy")).unwrap();
    let (header, body) = live.split_once("policy ").unwrap();
    assert!(
        header.contains("from server `secure-filesystem-server`"),
        "{header}"
    );
    let recorded = std::fs::read_to_string(fixtures().join("filesystem.policy")).unwrap();
    let recorded_body = recorded.split_once("policy ").unwrap().1;
    let declarations = |s: &str| -> Vec<String> {
        s.lines()
            .filter(|l| l.starts_with("tool ") || l.starts_with("deny "))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(declarations(body), declarations(recorded_body));
    assert!(body.contains("tool write_file "), "{body}");
}
