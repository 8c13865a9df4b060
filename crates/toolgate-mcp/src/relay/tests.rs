//! The relay's fast tests: a fake gateway (`crate::fake`), no peers, under
//! tokio's paused clock (`settle` runs every task until all of them wait).

use super::{Options, MAX_DECIDING, QUEUE};
use crate::decider::Decided;
use crate::envelope::Outgoing;
use crate::fake::{check_framing, session, session_over, settle, FakeDecider, Session};
use crate::relay::Relay;
use crate::tools::Visibility;
use crate::wire::{MAX_CLIENT_LINE, MAX_UPSTREAM_LINE};
use proptest::prelude::*;
use serde_json::{json, Value as Json};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::Receiver;

mod sessions;

/// Every message the relay queued on `rx` so far, parsed.
fn drain(rx: &mut Receiver<Outgoing>) -> Vec<Json> {
    let mut out = Vec::new();
    while let Ok(message) = rx.try_recv() {
        out.push(serde_json::from_str(message.line.as_str()).unwrap());
    }
    out
}

fn call(id: u64, tool: &str, args: Json) -> Json {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": args}})
}

/// Hands `message` to the relay as the client's.
async fn client(relay: &Relay, message: Json) {
    relay.from_client_text(message.to_string().as_bytes()).await;
}

/// Hands `message` to the relay as the upstream's.
async fn upstream(relay: &Relay, message: Json) {
    relay
        .from_upstream_text(message.to_string().as_bytes())
        .await;
}

/// The pending call id the fake gave its `n`th decision.
fn pending_id(s: &Session, n: usize) -> String {
    match &s.fake.seen().decided[n].2 {
        Decided::Pending { id, .. } => id.clone(),
        other => panic!("{other:?}"),
    }
}

/// The error codes of the messages in `messages`.
fn codes(messages: &[Json]) -> Vec<i64> {
    messages
        .iter()
        .map(|m| m["error"]["code"].as_i64().unwrap())
        .collect()
}

/// The body of finding C1: a notification whose parameters hold, between
/// JSON tokens, raw line breaks and a whole `tools/call`.
fn smuggling(separator: &str) -> String {
    let inner = call(77, "deny_move", json!({"from": "a", "to": "b"})).to_string();
    format!(
        r#"{{"jsonrpc":"2.0","method":"notifications/x","params":{{"a":{separator}{inner}{separator}}}}}"#
    )
}

#[tokio::test(start_paused = true)]
async fn raw_line_breaks_inside_a_message_never_reach_the_upstream() {
    // Failed before the fix: the text went upstream as received, several lines.
    for separator in ["\n", "\r", "\r\n", "\t \n"] {
        let mut s: Session = session(Options::default(), false);
        let body = smuggling(separator);
        assert!(serde_json::from_str::<Json>(&body).is_ok());
        s.relay.from_client_text(body.as_bytes()).await;
        settle().await;
        let mut lines = Vec::new();
        while let Ok(message) = s.upstream.try_recv() {
            lines.push(message.line);
        }
        assert_eq!(lines.len(), 1, "{separator:?}");
        let text = lines[0].as_str();
        assert!(!text.contains(['\n', '\r', '\u{2028}']), "{text:?}");
        let forwarded: Json = serde_json::from_str(text).unwrap();
        assert_eq!(forwarded["method"], "notifications/x");
        assert_eq!(forwarded["params"]["a"]["method"], "tools/call");
        assert!(
            s.fake.seen().decided.is_empty(),
            "nothing was a call to decide"
        );
    }
}

#[test]
fn the_smuggling_bodies_pass_the_framing_check() {
    for separator in ["\r", "\u{2028}", "\t \r"] {
        let body = smuggling(separator);
        assert_eq!(
            check_framing(&[&[0u8][..], body.as_bytes()].concat()),
            Ok(())
        );
        assert_eq!(
            check_framing(&[&[1u8][..], body.as_bytes()].concat()),
            Ok(())
        );
    }
}

#[tokio::test(start_paused = true)]
async fn upstream_messages_reach_the_client_reserialized_and_garbage_is_dropped() {
    let mut s = session(Options::default(), false);
    let text = "{\"jsonrpc\":\"2.0\",\r\"method\":\"notifications/message\",\"params\":{\"data\":\"a\u{2028}b\"}}";
    s.relay.from_upstream_text(text.as_bytes()).await;
    for garbage in [
        &b"not json {\"id\":1}"[..],
        b"[1, 2]",
        br#"{"id":1}"#,
        br#"{"jsonrpc":"2.0"}"#,
    ] {
        s.relay.from_upstream_text(garbage).await;
    }
    settle().await;
    let mut lines = Vec::new();
    while let Ok(message) = s.client.try_recv() {
        lines.push(message.line);
    }
    assert_eq!(lines.len(), 1);
    assert_eq!(
        lines[0].as_str(),
        r#"{"jsonrpc":"2.0","method":"notifications/message","params":{"data":"a\u2028b"}}"#
    );
    assert!(drain(&mut s.upstream).is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_call_reaches_the_upstream_only_when_the_gateway_allows_it() {
    let mut s = session(Options::default(), false);
    client(&s.relay, call(1, "allow_read", json!({"q": "x"}))).await;
    client(&s.relay, call(2, "deny_write", json!({"q": "x"}))).await;
    client(&s.relay, call(3, "hold_pay", json!({"to": "bob"}))).await;
    settle().await;
    let up = drain(&mut s.upstream);
    assert_eq!(up, [call(1, "allow_read", json!({"q": "x"}))]);
    let mut down = drain(&mut s.client);
    down.sort_by_key(|m| m["id"].as_u64());
    assert_eq!(down.len(), 2);
    assert_eq!(down[0]["result"]["isError"], true);
    assert!(
        down[0].to_string().contains("the fake denies it"),
        "{}",
        down[0]
    );
    assert!(
        down[1].to_string().contains("needs a human approval"),
        "{}",
        down[1]
    );
    // The result of the allowed call is relayed, then reported to the gateway.
    let answer = json!({"jsonrpc": "2.0", "id": 1, "result": {"content": []}});
    upstream(&s.relay, answer.clone()).await;
    settle().await;
    assert_eq!(drain(&mut s.client), [answer]);
    assert_eq!(s.fake.seen().completed.len(), 1);
    assert_eq!(s.fake.seen().completed[0].1, Ok(()));
}

#[tokio::test(start_paused = true)]
async fn a_held_call_made_again_after_its_approval_runs_once() {
    let mut s = session(Options::default(), false);
    let pay = || json!({"to": "bob"});
    client(&s.relay, call(1, "hold_pay", pay())).await;
    settle().await;
    let id = pending_id(&s, 0);
    // Made again before its approval: the same answer, not decided again.
    client(&s.relay, call(2, "hold_pay", pay())).await;
    settle().await;
    let down = drain(&mut s.client);
    assert_eq!(down.len(), 2);
    assert!(down.iter().all(|m| m.to_string().contains(&id)), "{down:?}");
    assert_eq!(s.fake.seen().decided.len(), 1);
    assert!(drain(&mut s.upstream).is_empty());
    // Approved, then made again: it runs once, with its token.
    s.fake.approve(&id);
    client(&s.relay, call(3, "hold_pay", pay())).await;
    settle().await;
    assert_eq!(drain(&mut s.upstream), [call(3, "hold_pay", pay())]);
    assert!(drain(&mut s.client).is_empty());
    // Made again after it ran: a new call, held anew.
    client(&s.relay, call(4, "hold_pay", pay())).await;
    settle().await;
    assert!(drain(&mut s.upstream).is_empty());
    assert_eq!(
        s.fake.seen().decided.len(),
        3,
        "authorize, execute, authorize"
    );
    assert_ne!(pending_id(&s, 2), id);
}

/// A session holding calls that need an approval for `secs` (`--wait-approval`).
fn waiting_session(secs: u64) -> Session {
    let options = Options {
        wait_approval: Some(Duration::from_secs(secs)),
        ..Options::default()
    };
    session(options, false)
}

#[tokio::test(start_paused = true)]
async fn with_wait_approval_a_held_call_runs_once_it_is_approved() {
    let mut s = waiting_session(60);
    client(&s.relay, call(1, "hold_pay", json!({"to": "bob"}))).await;
    settle().await;
    assert_eq!(s.fake.waiting(), 1);
    assert!(
        drain(&mut s.client).is_empty(),
        "the call is held, not answered"
    );
    s.fake.approve(&pending_id(&s, 0));
    settle().await;
    assert_eq!(s.fake.waiting(), 0);
    assert_eq!(
        drain(&mut s.upstream),
        [call(1, "hold_pay", json!({"to": "bob"}))]
    );
    // Another held call whose wait ends unapproved is answered.
    client(&s.relay, call(2, "hold_sell", json!({}))).await;
    tokio::time::sleep(Duration::from_secs(61)).await;
    let down = drain(&mut s.client);
    assert!(
        down[0].to_string().contains("not approved in time"),
        "{down:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_held_call_waiting_for_approval_ends_with_the_session() {
    let mut s = waiting_session(3600);
    client(&s.relay, call(1, "hold_pay", json!({"to": "bob"}))).await;
    settle().await;
    assert_eq!(
        s.fake.waiting(),
        1,
        "the call's task waits for its approval"
    );
    s.relay.stop().await;
    assert_eq!(s.fake.waiting(), 0, "the wait was dropped with the session");
    // The session's queues closed, with nothing sent: the call never ran.
    assert!(s.upstream.recv().await.is_none());
    assert!(s.client.recv().await.is_none());
    s.fake.approve(&pending_id(&s, 0));
    settle().await;
    assert_eq!(
        s.fake.seen().decided.len(),
        1,
        "nothing ran it after the approval"
    );
    // A stopped session takes nothing more.
    client(&s.relay, call(2, "allow_read", json!({}))).await;
    assert_eq!(s.fake.seen().decided.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_session_decides_at_most_so_many_calls_and_refuses_an_id_in_use() {
    let mut s = waiting_session(3600);
    for id in 0..MAX_DECIDING as u64 {
        client(&s.relay, call(id, "hold_pay", json!({"n": id}))).await;
    }
    settle().await;
    assert_eq!(s.fake.waiting(), MAX_DECIDING);
    client(&s.relay, call(3, "allow_read", json!({}))).await;
    client(&s.relay, call(999, "allow_read", json!({}))).await;
    settle().await;
    let down = drain(&mut s.client);
    assert_eq!(codes(&down), [-32600, -32000], "{down:?}");
    assert_eq!(down[0]["id"], 3);
    assert!(down[1].to_string().contains("calls are being decided"));
    assert!(drain(&mut s.upstream).is_empty());
    assert_eq!(
        s.fake.seen().decided.len(),
        MAX_DECIDING,
        "neither was decided"
    );
}

/// A client declaring elicitation, then a call held for the `user` group.
async fn user_held_call(ask_client_user: bool) -> Session {
    let options = Options {
        ask_client_user,
        ..Options::default()
    };
    let s = session(options, true);
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"capabilities": {"elicitation": {}}}});
    client(&s.relay, init).await;
    client(&s.relay, call(1, "hold_delete", json!({"path": "x"}))).await;
    settle().await;
    s
}

#[tokio::test(start_paused = true)]
async fn the_user_is_asked_only_where_the_client_is_the_users() {
    // Finding M7: over `--listen` the HTTP client is the agent's own process;
    // failed before the fix: it was sent the question and its answer approved the call.
    let mut s = user_held_call(false).await;
    let down = drain(&mut s.client);
    assert!(
        down.iter().all(|m| m["method"] != "elicitation/create"),
        "{down:?}"
    );
    assert!(down
        .iter()
        .any(|m| m.to_string().contains("needs a human approval")));
    assert!(s.fake.seen().user_approvals.is_empty());
    // Where the client is the user's app (stdio), the user is asked.
    let mut s = user_held_call(true).await;
    let down = drain(&mut s.client);
    let ask = down.iter().find(|m| m["method"] == "elicitation/create");
    let ask = ask.unwrap_or_else(|| panic!("no question in {down:?}"));
    assert!(ask["id"].as_str().unwrap().len() > 40, "an unguessable id");
    let answer = json!({"jsonrpc": "2.0", "id": ask["id"],
        "result": {"action": "accept", "content": {"approve": true}}});
    client(&s.relay, answer).await;
    settle().await;
    assert_eq!(s.fake.seen().user_approvals.len(), 1);
    let up = drain(&mut s.upstream);
    assert!(up.iter().any(|m| m["method"] == "tools/call"), "{up:?}");
    assert!(
        up.iter().all(|m| m["result"].is_null()),
        "the user's answer is the proxy's, never forwarded: {up:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_answer_to_a_question_never_asked_is_not_an_approval() {
    let mut s = user_held_call(true).await;
    drain(&mut s.client);
    // An answer under a guessed id goes upstream as any response would.
    let spoof = json!({"jsonrpc": "2.0", "id": "toolgate-ask-0",
        "result": {"action": "accept", "content": {"approve": true}}});
    client(&s.relay, spoof.clone()).await;
    settle().await;
    assert!(s.fake.seen().user_approvals.is_empty());
    let up = drain(&mut s.upstream);
    assert!(up.iter().all(|m| m["method"] != "tools/call"), "{up:?}");
    assert!(up.contains(&spoof), "{up:?}");
}

#[tokio::test(start_paused = true)]
async fn unknown_tools_methods_and_malformed_input_are_answered_not_forwarded() {
    let mut s = session(Options::default(), false);
    // Each client text, and the error code it is answered with (none: dropped).
    let cases: [(&str, Option<i64>); 11] = [
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/execute"}"#,
            Some(-32601),
        ),
        // A notification on the tools path has no answer, and is not forwarded either.
        (r#"{"jsonrpc":"2.0","method":"tools/execute"}"#, None),
        (r#"{"jsonrpc":"2.0","method":"tools/call"}"#, None),
        ("not json", Some(-32700)),
        (
            r#"[{"jsonrpc":"2.0","id":2,"method":"tools/call"}]"#,
            Some(-32600),
        ),
        (
            r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"allow_x","arguments":5}}"#,
            Some(-32602),
        ),
        (
            r#"{"jsonrpc":"2.0","id":4,"method":"tools/call"}"#,
            Some(-32602),
        ),
        (
            r#"{"jsonrpc":"2.0","id":null,"method":"tools/call"}"#,
            Some(-32600),
        ),
        (
            r#"{"jsonrpc":"2.0","id":{},"method":"tools/call"}"#,
            Some(-32600),
        ),
        (r#"{"jsonrpc":"2.0","id":5}"#, Some(-32600)),
        (r#"{"jsonrpc":"2.0","id":6,"method":7}"#, Some(-32600)),
    ];
    for (text, _) in cases {
        s.relay.from_client_text(text.as_bytes()).await;
    }
    s.relay.too_long(4).await;
    settle().await;
    assert!(drain(&mut s.upstream).is_empty());
    let down = drain(&mut s.client);
    let mut want: Vec<i64> = cases.iter().filter_map(|(_, code)| *code).collect();
    want.push(-32600);
    assert_eq!(codes(&down), want, "{down:?}");
    assert_eq!(down[0]["id"], 1);
    assert!(down[0].to_string().contains("not relayed"), "{}", down[0]);
    assert_eq!(down[3]["id"], 3);
    let last = down[down.len() - 1].to_string();
    assert!(last.contains("at most 4 bytes"), "{last}");
    assert!(s.fake.seen().decided.is_empty());
}

/// A notification of exactly `size` bytes.
fn padded(size: usize) -> String {
    let empty = r#"{"jsonrpc":"2.0","method":"notifications/x","params":{"pad":""}}"#;
    let pad = "x".repeat(size - empty.len());
    format!(r#"{{"jsonrpc":"2.0","method":"notifications/x","params":{{"pad":"{pad}"}}}}"#)
}

#[tokio::test(start_paused = true)]
async fn a_client_line_over_one_mib_is_answered_unread_and_the_next_one_is_read() {
    let mut s = session(Options::default(), false);
    let input = format!(
        "{}\n{}\n{}\n",
        padded(MAX_CLIENT_LINE + 1),
        padded(MAX_CLIENT_LINE),
        json!({"jsonrpc": "2.0", "id": 7, "method": "ping"})
    );
    assert_eq!(MAX_CLIENT_LINE, 1024 * 1024);
    let relay = s.relay.clone();
    let reader =
        tokio::spawn(async move { crate::stdio::read_client(input.as_bytes(), &relay).await });
    settle().await;
    let down = drain(&mut s.client);
    assert_eq!(codes(&down), [-32600]);
    assert!(
        down[0].to_string().contains("at most 1048576 bytes"),
        "{}",
        down[0]
    );
    let up = drain(&mut s.upstream);
    assert_eq!(
        up.len(),
        2,
        "a message of exactly the cap is read, and the next"
    );
    assert_eq!(up[1]["method"], "ping");
    assert!(reader.is_finished());
}

#[tokio::test(start_paused = true)]
async fn an_upstream_line_over_its_cap_is_dropped_and_the_next_one_relayed() {
    let mut s = session(Options::default(), false);
    let input = format!(
        "{}\n{}\n",
        padded(MAX_UPSTREAM_LINE + 1),
        json!({"jsonrpc": "2.0", "method": "notifications/progress"})
    );
    let reader = tokio::spawn(crate::stdio::read_upstream(
        std::io::Cursor::new(input.into_bytes()),
        s.relay.clone(),
    ));
    settle().await;
    let down = drain(&mut s.client);
    assert_eq!(down.len(), 1);
    assert_eq!(down[0]["method"], "notifications/progress");
    assert!(reader.is_finished());
}

#[tokio::test(start_paused = true)]
async fn progress_is_never_stuck_behind_a_journal_write() {
    let mut s = session(Options::default(), false);
    client(&s.relay, call(1, "allow_read", json!({}))).await;
    settle().await;
    assert_eq!(drain(&mut s.upstream).len(), 1);
    s.fake.stall_journal();
    let answer = json!({"jsonrpc": "2.0", "id": 1, "result": {"content": [], "isError": true}});
    let progress =
        json!({"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progress": 1}});
    upstream(&s.relay, answer.clone()).await;
    upstream(&s.relay, progress.clone()).await;
    settle().await;
    assert_eq!(drain(&mut s.client), [answer, progress]);
    assert!(
        s.fake.seen().completed.is_empty(),
        "the execution record is still being written"
    );
    s.fake.release_journal();
    settle().await;
    let completed = &s.fake.seen().completed;
    assert_eq!(completed.len(), 1);
    assert!(
        completed[0].1.is_err(),
        "an `isError` result is a failed execution"
    );
}

#[tokio::test(start_paused = true)]
async fn a_peer_that_does_not_read_stalls_its_session_instead_of_queueing() {
    let mut s = session(Options::default(), false);
    let relay = s.relay.clone();
    let sent = 10 * QUEUE;
    let feeder = tokio::spawn(async move {
        for n in 0..sent {
            let note = json!({"jsonrpc": "2.0", "method": "notifications/x", "params": {"n": n}});
            client(&relay, note).await;
        }
    });
    settle().await;
    // Nobody reads the upstream's queue: it is full, the loop and the
    // client's reader wait, nothing more is taken.
    assert!(!feeder.is_finished());
    assert_eq!(s.upstream.len(), QUEUE);
    for n in 0..sent {
        let message = s.upstream.recv().await.unwrap();
        let message: Json = serde_json::from_str(message.line.as_str()).unwrap();
        assert_eq!(message["params"]["n"], n, "in order, none dropped");
    }
    feeder.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn tools_list_answers_are_filtered_by_the_policy() {
    let policy = r#"
tool read_file read { path: string };
tool stat read { path: string };
agent a {
  allow read_file;
}
"#;
    let parsed = toolgate_syntax::parse(policy);
    let checked = toolgate_check::check(&parsed.file, policy);
    let visibility = Visibility::of(&checked.policy.unwrap(), "a").unwrap();
    let fake = Arc::new(FakeDecider::default());
    let mut s = session_over(Options::default(), fake, visibility, "s_1");
    let tools = json!([{"name": "read_file"}, {"name": "stat"}, {"name": "rm_rf"}]);
    client(
        &s.relay,
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
    )
    .await;
    client(
        &s.relay,
        json!({"jsonrpc": "2.0", "id": 2, "method": "resources/list"}),
    )
    .await;
    settle().await;
    assert_eq!(drain(&mut s.upstream).len(), 2);
    upstream(
        &s.relay,
        json!({"jsonrpc": "2.0", "id": 1, "result": {"tools": tools, "nextCursor": "c"}}),
    )
    .await;
    // Only the answer to `tools/list` is filtered.
    let other = json!({"jsonrpc": "2.0", "id": 2, "result": {"tools": tools}});
    upstream(&s.relay, other.clone()).await;
    settle().await;
    let down = drain(&mut s.client);
    assert_eq!(
        down[0]["result"],
        json!({"tools": [{"name": "read_file"}], "nextCursor": "c"})
    );
    assert_eq!(down[1], other);
    let notices = &s.fake.seen().notices;
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert_eq!(
        (notices[0].tool.as_str(), notices[0].what.as_str()),
        ("rm_rf", "hidden")
    );
}

/// A client declaring `roots`, its `list_changed`, an upstream asking for
/// them: what reaches the upstream and what reaches the client.
async fn roots(forward_roots: bool) -> (Vec<Json>, Vec<Json>) {
    let options = Options {
        forward_roots,
        ..Options::default()
    };
    let mut s = session(options, false);
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"capabilities": {"roots": {"listChanged": true}}}});
    let changed = json!({"jsonrpc": "2.0", "method": "notifications/roots/list_changed"});
    client(&s.relay, init).await;
    client(&s.relay, changed).await;
    let ask = json!({"jsonrpc": "2.0", "id": 9, "method": "roots/list"});
    upstream(&s.relay, ask).await;
    settle().await;
    (drain(&mut s.upstream), drain(&mut s.client))
}

#[tokio::test(start_paused = true)]
async fn roots_are_withheld_unless_configured() {
    let (up, down) = roots(false).await;
    assert_eq!(up.len(), 2, "{up:?}");
    assert_eq!(up[0]["params"]["capabilities"], json!({}));
    assert_eq!(up[1]["error"]["code"], -32601);
    assert!(down.is_empty());
    // With `--forward-roots`, all three pass.
    let (up, down) = roots(true).await;
    assert_eq!(up.len(), 2, "{up:?}");
    assert_eq!(
        up[0]["params"]["capabilities"]["roots"]["listChanged"],
        true
    );
    assert_eq!(up[1]["method"], "notifications/roots/list_changed");
    assert_eq!(down[0]["method"], "roots/list");
}

/// Pieces that make JSON-RPC-shaped input with line breaks in odd places.
fn fragment() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "\n\u{0}",
        "\n\u{1}",
        "{",
        "}",
        "[",
        "]",
        ",",
        ":",
        " ",
        "\r",
        "\n",
        "\u{2028}",
        "\"",
        r#""jsonrpc":"2.0""#,
        r#""method":"tools/call""#,
        r#""method":"notifications/x""#,
        r#""id":1"#,
        r#""id":"a""#,
        r#""params":"#,
        r#"{"name":"allow_x","arguments":{"k":"v"}}"#,
        r#"{"name":"deny_x"}"#,
        r#"{"name":"hold_x","arguments":null}"#,
        r#""result":{}"#,
        r#""method":"tools/list""#,
        r#""method":"roots/list""#,
    ])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn whatever_arrives_every_line_out_is_one_message_and_every_call_was_decided(
        pieces in prop::collection::vec(fragment(), 0..40)
    ) {
        let input = pieces.concat();
        prop_assert_eq!(check_framing(input.as_bytes()), Ok(()));
    }
}
