//! docs/openapi.json types a call in TypeScript: `openapi-typescript` (npm,
//! pinned by scripts/setup-test-peers.sh) turns the contract into types, and
//! `tsc --strict` compiles a typed call and answer against them. Before, open
//! objects were declared without `additionalProperties`, so `args` and
//! `context` came out as `Record<string, never>` and no call compiled; closed
//! sets (`outcome`, `state`) were plain strings.

#![expect(
    clippy::unwrap_used,
    reason = "test helpers fail loudly when a peer misbehaves"
)]

use crate::support::npm;

use std::path::Path;
use std::process::Command;

const CALL_TS: &str = r#"import type { components } from "./api";

type CallRequest = components["schemas"]["CallRequest"];
type CallAnswer = components["schemas"]["CallAnswer"];
type CallStatus = components["schemas"]["CallStatus"];

// Arguments and context fields are open objects of any JSON.
export const call: CallRequest = {
  agent: "support-bot",
  tool: "kb.read",
  args: { q: "refund", limit: 5, filters: { tags: ["billing"], open: true } },
  context: { tenant: "acme", env: "prod", account_id: "A1" },
};

export function ran(answer: CallAnswer): boolean {
  switch (answer.outcome) {
    case "allowed":
      return true;
    case "denied":
    case "pending":
      return false;
  }
}

export function waiting(status: CallStatus): boolean {
  return status.state === "pending" || status.state === "approved";
}

// Closed sets: a value outside them does not compile.
// @ts-expect-error
export const wrong: CallAnswer["outcome"] = "maybe";
"#;

fn run(program: &Path, args: &[&str], dir: &Path) {
    let out = Command::new("node")
        .arg(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{} {args:?}:\n{}{}",
        program.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_openapi_document_types_a_call_in_typescript() {
    let modules = npm::npm_peers();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("openapi_typescript");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let spec = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
    let generate = modules.join("openapi-typescript/bin/cli.js");
    run(&generate, &[spec.to_str().unwrap(), "-o", "api.d.ts"], &dir);
    std::fs::write(dir.join("call.ts"), CALL_TS).unwrap();
    let tsc = modules.join("typescript/bin/tsc");
    let flags = ["--strict", "--noEmit", "--target", "es2022"];
    let resolution = ["--module", "esnext", "--moduleResolution", "bundler"];
    let args: Vec<&str> = flags
        .iter()
        .chain(&resolution)
        .copied()
        .chain(["call.ts"])
        .collect();
    run(&tsc, &args, &dir);
}
