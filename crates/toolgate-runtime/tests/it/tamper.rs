//! Issue #7's promise at the gateway level: after each way of tampering with
//! a sealed journal (cut the last records, edit the last record, recompute
//! the whole chain, append forged records, empty the file, delete it), a
//! restarted gateway either refuses to start with a clear error or rebuilds
//! exactly the state from before: never a re-usable token, a released kill
//! switch or a forged approval.

#![expect(
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail loudly"
)]

use crate::support::{CredentialProvider, Gw, ToolExecutor, Tools};
use serde_json::{json, Value as Json};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use toolgate_engine::Context;
use toolgate_runtime::gateway::{
    open_journal, Call, CallOutcome, CompiledPolicy, DigestKey, GatewayError, Limits, ManualClock,
    Services,
};
use toolgate_runtime::journal::{
    sha256_hex, JournalConfig, JournalError, SealConfig, SigningKeySource, GENESIS,
};
use toolgate_runtime::refusal::Refusal;
use toolgate_runtime::store::{
    Approver, CallKey, KillScope, MemoryStore, Store, Subject, TenantScope,
};

struct Creds;
impl CredentialProvider for Creds {
    fn load(&self, _: &str, _: &[(String, Json)]) -> Result<Json, String> {
        Ok(json!({}))
    }
}
struct Exec;
impl ToolExecutor for Exec {
    async fn execute(&self, _: &str, _: &Json, _: &Json) -> Result<Json, String> {
        Ok(json!({}))
    }
}

const POLICY: &str = "tool pay.send write { to: string, amount: int };\nwrites enabled;\n\
                      agent bot {\n  write pay.send require approval from \"fin\";\n}\n";

fn config(dir: &Path) -> JournalConfig {
    JournalConfig {
        seal: Some(SealConfig::new(
            SigningKeySource::File(dir.join("audit.key")),
            dir.join("audit.checkpoints"),
        )),
        ..JournalConfig::default()
    }
}

/// Opens the gateway over `dir`'s journal, or says why the journal was refused.
async fn open(dir: &Path) -> Result<(Gw, Arc<MemoryStore>), JournalError> {
    let (journal, store, _) = match open_journal(&dir.join("audit.jsonl"), config(dir)).await {
        Ok(opened) => opened,
        Err(GatewayError::Journal(e)) => return Err(e),
        Err(other) => panic!("not a journal error: {other}"),
    };
    let clock = Arc::new(ManualClock::default());
    clock.set(1_800_000_000_000);
    let services = Services {
        journal,
        store: store.clone(),
        clock,
        digest_key: DigestKey::from_bytes([9; 32]),
        replica: None,
        limits: Limits::default(),
    };
    let policy = CompiledPolicy::compile(POLICY, "t.policy").expect("compiles");
    Ok((Gw::open(policy, services, Tools(Creds, Exec)).await, store))
}

fn pay(id: &str, to: &str) -> Call {
    let context = Context {
        tenant: "acme".into(),
        env: "prod".into(),
        ..Default::default()
    };
    Call {
        session: None,
        id: id.into(),
        agent: "bot".into(),
        tool: "pay.send".into(),
        args: json!({ "to": to, "amount": 10 }),
        context,
    }
}

fn fin() -> Approver {
    Approver {
        name: "fay".into(),
        groups: vec!["fin".into()],
        tenants: TenantScope::Any,
    }
}

fn acme() -> KillScope {
    KillScope {
        tenant: Some("acme".into()),
        agent: None,
        all_tools: false,
    }
}

/// The history every case starts from: a token used, a call approved and
/// waiting for its token to be used, a call pending, the kill switch engaged
/// for `acme` (which cancels the pending call and revokes the token).
/// Returns the used and the revoked token.
async fn history(dir: &Path) -> (String, String) {
    let (g, _) = open(dir).await.expect("a new journal opens");
    let used = pay("c1", "alice");
    let digest = g.binding(&used).args_digest;
    g.call(&used).await.expect("held");
    let t1 = g
        .approve(&used.key(), &fin(), &digest, "ok")
        .await
        .expect("ok")
        .expect("token");
    g.execute_approved(&used, &t1).await.expect("runs once");
    let approved = pay("c2", "bob");
    g.call(&approved).await.expect("held");
    let digest = g.binding(&approved).args_digest;
    let t2 = g
        .approve(&approved.key(), &fin(), &digest, "ok")
        .await
        .expect("ok")
        .expect("token");
    g.call(&pay("c3", "carol")).await.expect("held");
    g.kill_switch(acme(), true, "oncall", "incident")
        .await
        .expect("engaged");
    drop(g); // a clean shutdown: the writer seals and releases the lock
    (t1, t2)
}

fn scratch(name: &str) -> PathBuf {
    toolgate_testkit::scratch!("tamper", name)
}

fn lines(dir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(dir.join("audit.jsonl")).expect("journal");
    text.lines().map(String::from).collect()
}

fn write(dir: &Path, lines: &[String]) {
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(dir.join("audit.jsonl"), text).expect("write");
}

/// Re-chains `lines` (seq from 1, `prev` the hash of the line before), as
/// someone with file access but no signing key can.
fn rechain(lines: &[Json]) -> Vec<String> {
    let mut prev = GENESIS.to_string();
    let mut out = Vec::new();
    for (i, record) in lines.iter().enumerate() {
        let mut r = record.clone();
        r["seq"] = json!(i as u64 + 1);
        r["prev"] = json!(prev);
        let line = r.to_string();
        prev = sha256_hex(line.as_bytes());
        out.push(line);
    }
    out
}

fn parsed(dir: &Path) -> Vec<Json> {
    lines(dir)
        .iter()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect()
}

fn code(e: &JournalError) -> String {
    miette::Diagnostic::code(e)
        .map(|c| c.to_string())
        .unwrap_or_default()
}

/// Opening refuses, with this code.
async fn refused(dir: &Path, expected: &str) {
    match open(dir).await {
        Err(e) => assert_eq!(code(&e), expected, "{e}"),
        Ok(_) => panic!("a tampered journal was opened (expected {expected})"),
    }
}

/// What a restart must hold, at the least: the kill switch engaged, neither
/// token able to run, the pending call not approvable. `Exact`: the state is
/// exactly the state before the tampering (each refusal for its own reason).
#[derive(Clone, Copy, PartialEq)]
enum Expect {
    Exact,
    NothingReopened,
}

async fn state_is_intact(dir: &Path, used: &str, revoked: &str) {
    state_holds(dir, used, revoked, Expect::Exact).await;
}

async fn state_holds(dir: &Path, used: &str, revoked: &str, expect: Expect) {
    let (g, store) = open(dir).await.expect("opens");
    assert!(
        store
            .killed(Subject {
                tenant: "acme",
                agent: "bot",
                write: true
            })
            .await
            .expect("the memory store answers"),
        "the kill switch stays engaged"
    );
    let r = g.execute_approved(&pay("c1", "alice"), used).await;
    assert!(
        matches!(r, Err(GatewayError::Refused(Refusal::KillSwitch))),
        "{r:?}"
    );
    g.kill_switch(acme(), false, "oncall", "resolved")
        .await
        .expect("released");
    let refused = |r: Result<CallOutcome, GatewayError>, exact: Refusal| match r {
        Err(GatewayError::Refused(why)) => {
            assert!(
                why == exact || (expect == Expect::NothingReopened && why == Refusal::TokenUnknown),
                "{why:?} where {exact:?} was expected"
            );
        }
        other => panic!("a token ran again: {other:?}"),
    };
    refused(
        g.execute_approved(&pay("c1", "alice"), used).await,
        Refusal::TokenUsed,
    );
    refused(
        g.execute_approved(&pay("c2", "bob"), revoked).await,
        Refusal::TokenRevoked,
    );
    match g
        .pending(&CallKey::new("acme", "c3"))
        .await
        .expect("the memory store answers")
    {
        Some(waiting) => assert!(waiting.cancelled.is_some() && waiting.approvals.is_empty()),
        None => assert!(expect == Expect::NothingReopened, "c3 is gone"),
    }
}

#[tokio::test]
async fn an_untouched_journal_restarts_with_exactly_its_state() {
    let dir = scratch("untouched");
    let (used, revoked) = history(&dir).await;
    state_is_intact(&dir, &used, &revoked).await;
}

#[tokio::test]
async fn cutting_the_last_records_is_refused() {
    let dir = scratch("cut");
    history(&dir).await;
    let mut l = lines(&dir);
    l.truncate(l.len() - 2); // the kill switch and what follows it
    write(&dir, &l);
    refused(&dir, "toolgate::journal::truncated").await;
}

#[tokio::test]
async fn editing_the_last_record_is_refused() {
    let dir = scratch("edit");
    history(&dir).await;
    let l = lines(&dir);
    let edited: Vec<String> = l
        .iter()
        .map(|line| line.replace(r#""engaged":true"#, r#""engaged":false"#))
        .collect();
    assert_ne!(edited, l, "the kill switch record was edited");
    write(&dir, &edited);
    refused(&dir, "toolgate::journal::rewritten").await;
}

#[tokio::test]
async fn recomputing_the_whole_chain_is_refused() {
    // The kill switch turned into a release, every hash recomputed.
    let dir = scratch("rechain");
    history(&dir).await;
    let mut records = parsed(&dir);
    for r in records.iter_mut().filter(|r| r["kind"] == "kill_switch") {
        r["body"]["engaged"] = json!(false);
    }
    write(&dir, &rechain(&records));
    refused(&dir, "toolgate::journal::rewritten").await;
    // The kill switch removed, every hash recomputed: shorter than sealed.
    let dir = scratch("rechain-cut");
    history(&dir).await;
    let kept: Vec<Json> = parsed(&dir)
        .into_iter()
        .filter(|r| r["kind"] != "kill_switch")
        .collect();
    write(&dir, &rechain(&kept));
    refused(&dir, "toolgate::journal::truncated").await;
}

#[tokio::test]
async fn appended_forged_records_are_set_aside_and_never_applied() {
    let dir = scratch("append");
    let (used, revoked) = history(&dir).await;
    let mut records = parsed(&dir);
    let last = records.last().cloned().expect("a record");
    let forge = |kind: &str, body: Json| {
        let mut r = last.clone();
        r["kind"] = json!(kind);
        r["body"] = body;
        r
    };
    records.push(forge(
        "kill_switch",
        json!({ "tenant": "acme", "agent": null, "all_tools": false, "engaged": false, "by": "mallory", "reason": "x" }),
    ));
    records.push(forge(
        "approval_granted",
        json!({ "tenant": "acme", "call": "c3", "approver": "fay", "groups": ["fin"], "args_digest": "x", "reason": "forged" }),
    ));
    write(&dir, &rechain(&records));
    state_is_intact(&dir, &used, &revoked).await;
    let text = std::fs::read_to_string(dir.join("audit.jsonl")).expect("journal");
    assert!(
        text.contains("unsealed_set_aside") && !text.contains("mallory"),
        "{text}"
    );
}

#[tokio::test]
async fn an_emptied_journal_is_refused() {
    let dir = scratch("empty");
    history(&dir).await;
    write(&dir, &[]);
    refused(&dir, "toolgate::journal::missing").await;
}

#[tokio::test]
async fn a_deleted_journal_is_refused() {
    let dir = scratch("deleted");
    history(&dir).await;
    std::fs::remove_file(dir.join("audit.jsonl")).expect("removed");
    refused(&dir, "toolgate::journal::missing").await;
}

/// The checkpoint file rolled back (its last lines cut, or an older signed
/// line appended again): the records after the older checkpoint are set
/// aside, but those that only restrict (a token used, the kill switch
/// engaged) are restored, so nothing granted before is re-opened. (Found by
/// the security review of the hardening work.)
#[tokio::test]
async fn a_rolled_back_checkpoint_file_reopens_nothing() {
    for appended in [false, true] {
        let dir = scratch(if appended {
            "rollback-append"
        } else {
            "rollback-cut"
        });
        let (used, revoked) = history(&dir).await;
        let file = dir.join("audit.checkpoints");
        let text = std::fs::read_to_string(&file).expect("checkpoints");
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines.len() >= 3, "{} checkpoints", lines.len());
        let rolled = if appended {
            format!("{text}{}\n", lines[0])
        } else {
            format!("{}\n", lines[0])
        };
        std::fs::write(&file, rolled).expect("rolled back");
        state_holds(&dir, &used, &revoked, Expect::NothingReopened).await;
    }
}
