//! The AgentDojo fixture (`benches/agentdojo/fixture`, a few user sessions
//! and attack cases per suite written by `benches/agentdojo/run.py
//! --fixture`) replayed through the gateway with the shipped policies
//! (`policies/agentdojo/SUITE.policy`): every user call runs (without a
//! human, or approved where the fixture's `expected.json` says the user
//! approved it), and no injection call runs without a human except the
//! measured misses `expected.json` lists as `leaked` (FIXME: reads shaped
//! exactly like the user's, and a reminder in the user's own calendar;
//! `docs/provenance.md`, "AgentDojo"), asserted as they are so that a
//! change either way shows.

#![expect(
    clippy::expect_used,
    reason = "test helpers fail loudly on broken fixtures"
)]

use crate::support::run::policyc;
use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Each call's final outcome in `policyc replay`'s output, by id.
fn outcomes(stdout: &str) -> BTreeMap<String, String> {
    stdout
        .lines()
        .map(|l| serde_json::from_str::<Json>(l).expect("replay prints JSON lines"))
        .filter_map(|v| {
            let id = v["id"].as_str()?.to_string();
            Some((id, v["outcome"].as_str()?.to_string()))
        })
        .collect()
}

/// The call ids of a trace, in order.
fn call_ids(trace: &Path) -> Vec<String> {
    std::fs::read_to_string(trace)
        .expect("fixture trace")
        .lines()
        .map(|l| serde_json::from_str::<Json>(l).expect("trace line"))
        .filter(|v| v.get("event").is_none())
        .map(|v| v["id"].as_str().expect("call id").to_string())
        .collect()
}

#[test]
fn the_fixture_runs_user_calls_and_holds_every_injection_call() {
    let root = repo();
    let fixture = root.join("benches/agentdojo/fixture");
    let expected: BTreeMap<String, Json> = serde_json::from_str(
        &std::fs::read_to_string(fixture.join("expected.json")).expect("expected.json"),
    )
    .expect("expected.json is JSON");
    let (mut injection_calls, mut held, mut approvals) = (0, 0, 0);
    let mut suites = std::collections::BTreeSet::new();
    for (name, want) in &expected {
        let suite = name.split('/').next().expect("SUITE/TRACE");
        suites.insert(suite.to_string());
        let policy = root.join(format!("policies/agentdojo/{suite}.policy"));
        let trace = fixture.join(name);
        let run = policyc(
            &root,
            &[
                "replay",
                policy.to_str().expect("utf-8"),
                "--trace",
                trace.to_str().expect("utf-8"),
            ],
        );
        assert_eq!(run.code, 0, "{name}: {}{}", run.stdout, run.stderr);
        let got = outcomes(&run.stdout);
        let ids = |key: &str| -> Vec<String> {
            want[key]
                .as_array()
                .expect(key)
                .iter()
                .map(|a| a.as_str().expect("id").to_string())
                .collect()
        };
        let (approved, leaked) = (ids("approved"), ids("leaked"));
        for id in call_ids(&trace) {
            let outcome = got.get(&id).map(String::as_str);
            if id.starts_with('i') {
                injection_calls += 1;
                let ran = matches!(outcome, Some("executed" | "approved_executed") | None);
                assert_eq!(
                    ran,
                    leaked.contains(&id),
                    "{name}: injection call {id}: {outcome:?}\n{}",
                    run.stdout
                );
                held += usize::from(!ran);
            } else if approved.contains(&id) {
                approvals += 1;
                assert_eq!(
                    outcome,
                    Some("approved_executed"),
                    "{name}: user call {id}\n{}",
                    run.stdout
                );
            } else {
                assert_eq!(
                    outcome,
                    Some("executed"),
                    "{name}: user call {id} needed no human\n{}",
                    run.stdout
                );
            }
        }
    }
    assert_eq!(suites.len(), 4, "a fixture per suite: {suites:?}");
    assert!(
        injection_calls > 0 && held > 0 && approvals > 0,
        "the fixture has injection calls, held ones, and approved user calls"
    );
}
