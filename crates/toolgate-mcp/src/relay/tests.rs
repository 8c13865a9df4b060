//! The relay's fast tests: a fake gateway (`crate::fake`), no peers.

use super::Options;
use crate::fake::{check_framing, session, Session};
use crate::wire::Line;
use proptest::prelude::*;
use serde_json::{json, Value as Json};

/// Every line the relay wrote to `rx` so far, parsed.
fn drain(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Line>) -> Vec<Json> {
    let mut out = Vec::new();
    while let Ok(line) = rx.try_recv() {
        out.push(serde_json::from_str(line.as_str()).unwrap());
    }
    out
}

/// Lets the relay's spawned tasks run.
async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

fn call(id: u64, tool: &str, args: Json) -> Json {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": args}})
}

/// The body of finding C1: a notification whose parameters hold, between
/// JSON tokens, raw line breaks and a whole `tools/call`.
fn smuggling(separator: &str) -> String {
    let inner = call(77, "deny_move", json!({"from": "a", "to": "b"})).to_string();
    format!(
        r#"{{"jsonrpc":"2.0","method":"notifications/x","params":{{"a":{separator}{inner}{separator}}}}}"#
    )
}

#[tokio::test]
async fn raw_line_breaks_inside_a_message_never_reach_the_upstream() {
    // Failed before the fix: the text went upstream as received, several lines.
    for separator in ["\n", "\r", "\r\n", "\t \n"] {
        let mut s: Session = session(Options::default(), false);
        let body = smuggling(separator);
        assert!(serde_json::from_str::<Json>(&body).is_ok());
        s.relay.from_client_text(body.as_bytes());
        settle().await;
        let mut lines = Vec::new();
        while let Ok(line) = s.upstream.try_recv() {
            lines.push(line);
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

#[tokio::test]
async fn upstream_messages_reach_the_client_reserialized_and_garbage_is_dropped() {
    let mut s = session(Options::default(), false);
    let text = "{\"jsonrpc\":\"2.0\",\r\"method\":\"notifications/message\",\"params\":{\"data\":\"a\u{2028}b\"}}";
    s.relay.from_upstream_text(text.as_bytes()).await;
    s.relay.from_upstream_text(b"not json {\"id\":1}").await;
    s.relay.from_upstream_text(b"[1, 2]").await;
    let mut lines = Vec::new();
    while let Ok(line) = s.client.try_recv() {
        lines.push(line);
    }
    assert_eq!(lines.len(), 1);
    assert_eq!(
        lines[0].as_str(),
        r#"{"jsonrpc":"2.0","method":"notifications/message","params":{"data":"a\u2028b"}}"#
    );
}

#[tokio::test]
async fn a_call_reaches_the_upstream_only_when_the_gateway_allows_it() {
    let mut s = session(Options::default(), false);
    s.relay
        .from_client(call(1, "allow_read", json!({"q": "x"})));
    s.relay
        .from_client(call(2, "deny_write", json!({"q": "x"})));
    s.relay
        .from_client(call(3, "hold_pay", json!({"to": "bob"})));
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
    // The result of the allowed call is reported to the gateway, then relayed.
    let answer = json!({"jsonrpc": "2.0", "id": 1, "result": {"content": []}});
    s.relay.from_upstream(answer.clone()).await;
    assert_eq!(drain(&mut s.client), [answer]);
    settle().await;
    assert_eq!(s.fake.seen().completed.len(), 1);
    // Made again once approved, the held call runs once with its token.
    let held = s.fake.seen().decided[2].2.clone();
    let crate::decider::Decided::Pending { id, .. } = held else {
        panic!("{held:?}")
    };
    s.fake.approve(&id);
    s.relay
        .from_client(call(4, "hold_pay", json!({"to": "bob"})));
    settle().await;
    assert_eq!(
        drain(&mut s.upstream),
        [call(4, "hold_pay", json!({"to": "bob"}))]
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
    s.relay.from_client(init);
    s.relay
        .from_client(call(1, "hold_delete", json!({"path": "x"})));
    settle().await;
    s
}

#[tokio::test]
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
    let answer = json!({"jsonrpc": "2.0", "id": ask["id"],
        "result": {"action": "accept", "content": {"approve": true}}});
    s.relay.from_client(answer);
    settle().await;
    assert_eq!(s.fake.seen().user_approvals.len(), 1);
    let up = drain(&mut s.upstream);
    assert!(up.iter().any(|m| m["method"] == "tools/call"), "{up:?}");
}

#[tokio::test]
async fn an_answer_to_a_question_never_asked_is_not_an_approval() {
    let mut s = user_held_call(true).await;
    drain(&mut s.client);
    // An answer under a guessed id goes upstream as any response would.
    let spoof = json!({"jsonrpc": "2.0", "id": "toolgate-ask-0",
        "result": {"action": "accept", "content": {"approve": true}}});
    s.relay.from_client(spoof);
    settle().await;
    assert!(s.fake.seen().user_approvals.is_empty());
    assert!(drain(&mut s.upstream)
        .iter()
        .all(|m| m["method"] != "tools/call"));
}

#[tokio::test]
async fn unknown_tools_methods_malformed_and_long_input_are_answered_not_forwarded() {
    let mut s = session(Options::default(), false);
    s.relay
        .from_client(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/execute"}));
    s.relay.from_client_text(b"not json");
    s.relay
        .from_client_text(br#"[{"jsonrpc":"2.0","id":2,"method":"tools/call"}]"#);
    s.relay.from_client(json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "allow_x", "arguments": 5}}));
    s.relay.too_long(4);
    settle().await;
    assert!(drain(&mut s.upstream).is_empty());
    let codes: Vec<i64> = drain(&mut s.client)
        .iter()
        .map(|m| m["error"]["code"].as_i64().unwrap())
        .collect();
    assert_eq!(codes.len(), 5);
    for code in [-32601, -32700, -32600, -32602] {
        assert!(codes.contains(&code), "{codes:?}");
    }
}

#[tokio::test]
async fn roots_are_withheld_unless_configured() {
    let mut s = session(Options::default(), false);
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"capabilities": {"roots": {"listChanged": true}}}});
    s.relay.from_client(init);
    s.relay
        .from_upstream(json!({"jsonrpc": "2.0", "id": 9, "method": "roots/list"}))
        .await;
    let up = drain(&mut s.upstream);
    assert_eq!(up[0]["params"]["capabilities"], json!({}));
    assert_eq!(up[1]["error"]["code"], -32601);
    assert!(drain(&mut s.client).is_empty());
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
