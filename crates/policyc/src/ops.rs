//! The operator CLI: `policyc approvals`, `policyc kill-switch`, `policyc
//! status` and `policyc audit tail` talk to a running `policyc serve` over
//! HTTP (see docs/server.md). Tables for people, `--json` for scripts.

use crate::cli::{ApprovalsCommand, AuditTailArgs, Conn, KillArgs, KillSwitchCommand};
use crate::client::{encode, query, Client, Failure};
use crate::eval::escape_controls;
use crate::Exit;
use serde_json::{json, Value};
use std::time::Duration;
use toolgate_api::client::audit_records;
use toolgate_api::{
    ApprovalItem, ApprovalResult, AuditRecord, KillBody, KillScopeView, KillStatus, KillTools,
    ServerStatus,
};
use toolgate_runtime::journal::sha256_hex;

fn client(conn: &Conn) -> Client {
    Client::new(&conn.url, std::env::var("TOOLGATE_KEY").ok())
}

/// Runs one command body: prints its failure and maps it to the exit status.
fn finish(result: Result<(), Failure>) -> Exit {
    match result {
        Ok(()) => Exit::Ok,
        Err(f) => f.report(),
    }
}

fn print_json(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
    );
}

/// A JSON value as table text: strings bare, null as `-`. The values come
/// from the journal, so from models too: control and bidi characters are
/// escaped as `explain` escapes them, and newlines and tabs as well (a cell
/// is one line), so no value can redraw or fake another line.
fn cell(value: &Value) -> String {
    let text = match value {
        Value::Null => return "-".into(),
        Value::String(s) => escape_controls(s),
        other => escape_controls(&other.to_string()),
    };
    text.replace('\n', "\\u{a}").replace('\t', "\\u{9}")
}

/// A UTC time `2026-11-22 05:06:23` from milliseconds since the epoch.
fn time(ms: &Value) -> String {
    let Some(ms) = ms.as_u64() else {
        return "-".into();
    };
    let secs = ms / 1000;
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Prints rows under a header, each column as wide as its widest cell.
fn table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let last = cells.len().saturating_sub(1);
        let text: Vec<String> = cells
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                if i == last {
                    c
                } else {
                    format!("{c:<w$}", w = widths.get(i).copied().unwrap_or(0))
                }
            })
            .collect();
        println!("{}", text.join("  ").trim_end());
    };
    line(header.iter().map(|h| (*h).to_string()).collect());
    for row in rows {
        line(row.clone());
    }
}

/// `policyc approvals ...`.
pub(crate) fn approvals(cmd: ApprovalsCommand) -> Exit {
    finish(match cmd {
        ApprovalsCommand::List {
            tenant,
            agent,
            tool,
            conn,
        } => list(&conn, tenant.as_deref(), agent.as_deref(), tool.as_deref()),
        ApprovalsCommand::Show { id, tenant, conn } => show(&conn, &id, tenant.as_deref()),
        ApprovalsCommand::Approve {
            id,
            digest,
            reason,
            tenant,
            conn,
        } => approve(&conn, &id, digest.as_deref(), &reason, tenant.as_deref()),
        ApprovalsCommand::Reject {
            id,
            reason,
            tenant,
            conn,
        } => decide(
            &conn,
            &id,
            tenant.as_deref(),
            "reject",
            json!({"reason": reason}),
        ),
    })
}

fn list(
    conn: &Conn,
    tenant: Option<&str>,
    agent: Option<&str>,
    tool: Option<&str>,
) -> Result<(), Failure> {
    let c = client(conn);
    let list = c
        .api()
        .approvals(&[("tenant", tenant), ("agent", agent), ("tool", tool)])
        .map_err(|e| c.failed(e))?;
    if conn.json {
        let items: Vec<Value> = list
            .approvals
            .iter()
            .map(held_json)
            .collect::<Result<_, _>>()?;
        print_json(&json!({ "approvals": items }));
        return Ok(());
    }
    if list.approvals.is_empty() {
        println!("no calls wait for approval");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = list
        .approvals
        .iter()
        .map(|a| {
            vec![
                text(&a.id),
                hold_digest(a).chars().take(12).collect(),
                text(&a.tenant),
                text(&a.agent),
                text(&a.tool),
                opt(a.group.as_deref()),
                format!("{}/{}", a.approvals.len(), a.count),
                at(a.requested_at),
                at(a.expires_at),
                cell(&a.args),
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "DIGEST",
            "TENANT",
            "AGENT",
            "TOOL",
            "GROUP",
            "APPROVALS",
            "REQUESTED (UTC)",
            "EXPIRES (UTC)",
            "ARGS",
        ],
        &rows,
    );
    Ok(())
}

/// A string as a table cell.
fn text(s: &str) -> String {
    cell(&Value::String(s.to_string()))
}

/// An optional string as a table cell (`-` when absent).
fn opt(s: Option<&str>) -> String {
    s.map_or_else(|| "-".into(), text)
}

/// An optional time in ms as a UTC time (`-` when absent).
fn at(ms: Option<u64>) -> String {
    time(&json!(ms))
}

/// The held call `id`.
fn fetch(client: &Client, id: &str, tenant: Option<&str>) -> Result<ApprovalItem, Failure> {
    client
        .api()
        .approval(id, tenant)
        .map_err(|e| client.failed(e))
}

/// An answer read through the API's types, as JSON for printing.
fn as_json(answer: &impl serde::Serialize) -> Result<Value, Failure> {
    serde_json::to_value(answer).map_err(|e| Failure::Transport(e.to_string()))
}

/// A held call as `--json` prints it: as the server lists it, with its `hold_digest`.
fn held_json(item: &ApprovalItem) -> Result<Value, Failure> {
    let mut out = as_json(item)?;
    if let Some(map) = out.as_object_mut() {
        map.insert("hold_digest".into(), Value::String(hold_digest(item)));
    }
    Ok(out)
}

/// The digest `list` and `show` print and `approve --digest` takes. SHA-256
/// of what the approver reviews (tenant, id, agent, tool, env, the server's
/// keyed digest of the arguments) and of when the call was held, each as
/// JSON, so a later hold of the same id (after this one expired, was rejected
/// or cancelled) has another digest, even with the same arguments.
fn hold_digest(item: &ApprovalItem) -> String {
    let fields = [
        json!(item.tenant),
        json!(item.id),
        json!(item.agent),
        json!(item.tool),
        json!(item.env),
        json!(item.args_digest),
        json!(item.requested_at),
    ];
    let text: Vec<String> = fields.iter().map(Value::to_string).collect();
    sha256_hex(format!("toolgate-hold-v1\n{}", text.join("\n")).as_bytes())
}

fn show(conn: &Conn, id: &str, tenant: Option<&str>) -> Result<(), Failure> {
    let item = fetch(&client(conn), id, tenant)?;
    if conn.json {
        print_json(&held_json(&item)?);
        return Ok(());
    }
    print_held(&item);
    Ok(())
}

/// A held call as an approver reviews it.
fn print_held(item: &ApprovalItem) {
    println!("{:<13}{}", "digest", hold_digest(item));
    for (label, value) in [
        ("id", text(&item.id)),
        ("state", text(item.state.as_str())),
        ("tenant", text(&item.tenant)),
        ("env", text(&item.env)),
        ("agent", text(&item.agent)),
        ("tool", text(&item.tool)),
        ("rule", opt(item.rule.as_deref())),
        ("reason", opt(item.reason.as_deref())),
        ("group", opt(item.group.as_deref())),
        ("args digest", text(&item.args_digest)),
    ] {
        println!("{label:<13}{value}");
    }
    println!("{:<13}{}", "requested", at(item.requested_at));
    println!("{:<13}{}", "expires", at(item.expires_at));
    println!(
        "{:<13}{} of {}",
        "approvals",
        item.approvals.len(),
        item.count
    );
    for a in &item.approvals {
        println!("  - {}: {}", text(&a.approver), text(&a.reason));
    }
    println!("args (as journaled; redacted fields redacted):");
    let args = serde_json::to_string_pretty(&item.args).unwrap_or_default();
    for l in escape_controls(&args).lines() {
        println!("  {l}");
    }
}

/// Approves the call held as `id` only if it is the one the approver
/// reviewed: its digest starts with `--digest`, or, without it, the approver
/// confirms it on a terminal. The server is then sent that hold's arguments
/// digest and `requested_at`, and refuses the approval if the id was held
/// again in the meantime.
fn approve(
    conn: &Conn,
    id: &str,
    digest: Option<&str>,
    reason: &str,
    tenant: Option<&str>,
) -> Result<(), Failure> {
    let given = digest.map(digest_prefix).transpose()?;
    let item = fetch(&client(conn), id, tenant)?;
    let held = hold_digest(&item);
    match given {
        Some(given) if held.starts_with(&given) => {}
        Some(given) => {
            return Err(Failure::Refused(format!(
                "the call held as `{id}` does not have digest `{given}`: it is not the call \
                 you reviewed (its arguments changed, or the id was held again); nothing \
                 was approved: review it again with `policyc approvals show {id}`"
            )))
        }
        None => confirm(&item, &held)?,
    }
    let body = toolgate_api::ApproveBody {
        args_digest: item.args_digest.clone(),
        requested_at: item.requested_at,
        reason: reason.to_string(),
    };
    decide(conn, id, Some(&item.tenant), "approve", as_json(&body)?)
}

/// `--digest` as lower-case hex: 12 to 64 hex digits.
fn digest_prefix(text: &str) -> Result<String, Failure> {
    let hex = text.trim().to_ascii_lowercase();
    let digits = hex.chars().all(|c| c.is_ascii_hexdigit());
    if digits && (12..=64).contains(&hex.len()) {
        return Ok(hex);
    }
    Err(Failure::Usage(format!(
        "`--digest {}`: give the digest `policyc approvals show` printed, or its first 12 \
         hex digits or more",
        escape_controls(text)
    )))
}

/// Without `--digest`: shows the held call and asks the approver on a
/// terminal; never approves unasked in a script.
fn confirm(item: &ApprovalItem, held: &str) -> Result<(), Failure> {
    use std::io::{BufRead as _, IsTerminal as _, Write as _};
    if !std::io::stdin().is_terminal() || !std::io::stdout().is_terminal() {
        return Err(Failure::Usage(
            "`approvals approve` needs `--digest` (the digest `policyc approvals show` \
             printed for the call you reviewed) when it cannot ask on a terminal"
                .into(),
        ));
    }
    print_held(item);
    print!(
        "approve this call (digest {})? [y/N] ",
        held.get(..12).unwrap_or(held)
    );
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    let read = std::io::stdin().lock().read_line(&mut answer);
    match (read, answer.trim().to_ascii_lowercase().as_str()) {
        (Ok(_), "y" | "yes") => Ok(()),
        _ => Err(Failure::Refused("not approved".into())),
    }
}

fn decide(
    conn: &Conn,
    id: &str,
    tenant: Option<&str>,
    action: &str,
    body: Value,
) -> Result<(), Failure> {
    let q = query(&[("tenant", tenant)]);
    let path = format!("/v1/approvals/{}/{action}{q}", encode(id));
    let c = client(conn);
    let answer: ApprovalResult = c.api().post(&path, &body).map_err(|e| c.failed(e))?;
    if conn.json {
        print_json(&as_json(&answer)?);
        return Ok(());
    }
    println!(
        "{} `{}` (tenant `{}`): {}, {} of {} approvals",
        if action == "approve" {
            "approved"
        } else {
            "rejected"
        },
        text(&answer.id),
        text(&answer.tenant),
        answer.state.as_str(),
        answer.approvals,
        answer.count,
    );
    Ok(())
}

/// `policyc kill-switch ...`.
pub(crate) fn kill_switch(cmd: KillSwitchCommand) -> Exit {
    finish(match cmd {
        KillSwitchCommand::Engage(args) => set_kill(&args, true),
        KillSwitchCommand::Release(args) => set_kill(&args, false),
        KillSwitchCommand::Status(conn) => {
            let c = client(&conn);
            c.api()
                .kill_status()
                .map_err(|e| c.failed(e))
                .and_then(|answer| print_kill(&conn, &answer))
        }
    })
}

fn set_kill(args: &KillArgs, engaged: bool) -> Result<(), Failure> {
    let body = KillBody {
        engaged,
        tenant: args.tenant.clone(),
        agent: args.agent.clone(),
        tools: Some(if args.all_tools {
            KillTools::All
        } else {
            KillTools::Writes
        }),
        reason: args.reason.clone(),
    };
    let c = client(&args.conn);
    let answer = c.api().kill_switch(&body).map_err(|e| c.failed(e))?;
    if !args.conn.json {
        println!(
            "kill switch {} for tenant {}, agent {}, {}",
            if engaged { "engaged" } else { "released" },
            args.tenant.as_deref().unwrap_or("*"),
            args.agent.as_deref().unwrap_or("*"),
            if args.all_tools {
                "all tools"
            } else {
                "writes"
            },
        );
    }
    print_kill(&args.conn, &answer)
}

/// TENANT, AGENT, STOPS of each engaged scope (`*` for every tenant or agent).
fn kill_rows(scopes: &[KillScopeView]) -> Vec<Vec<String>> {
    scopes
        .iter()
        .map(|s| {
            let stops = match s.tools {
                KillTools::All => "all",
                KillTools::Writes => "writes",
            };
            vec![
                s.tenant.as_deref().map_or_else(|| "*".into(), text),
                s.agent.as_deref().map_or_else(|| "*".into(), text),
                stops.to_string(),
            ]
        })
        .collect()
}

fn print_kill(conn: &Conn, answer: &KillStatus) -> Result<(), Failure> {
    if conn.json {
        print_json(&as_json(answer)?);
        return Ok(());
    }
    let rows = kill_rows(&answer.engaged);
    if rows.is_empty() {
        println!("no kill switch is engaged");
    } else {
        table(&["TENANT", "AGENT", "STOPS"], &rows);
    }
    Ok(())
}

/// `policyc status`.
pub(crate) fn status(conn: &Conn) -> Exit {
    let c = client(conn);
    let answer = c.api().server_status().map_err(|e| c.failed(e));
    finish(answer.and_then(|s| print_status(conn, &s)))
}

fn print_status(conn: &Conn, s: &ServerStatus) -> Result<(), Failure> {
    if conn.json {
        print_json(&as_json(s)?);
        return Ok(());
    }
    let sha = text(&s.policy_sha256);
    println!(
        "policy        {} (sha256 {})",
        opt(s.policy.as_deref()),
        sha.get(..12).unwrap_or(&sha)
    );
    println!("uptime        {}", uptime(s.uptime_secs));
    println!("pending       {} call(s) wait for approval", s.pending);
    let kills = kill_rows(&s.kill_switch);
    if kills.is_empty() {
        println!("kill switch   none engaged");
    }
    for k in kills {
        println!(
            "kill switch   engaged: tenant {}, agent {}, stops {}",
            k[0], k[1], k[2]
        );
    }
    match &s.journal_head {
        None => println!("journal head  (empty journal)"),
        Some(head) => println!(
            "journal head  seq {} sha256 {} at {}",
            head.seq,
            text(&head.hash),
            at(Some(head.ts_ms))
        ),
    }
    Ok(())
}

fn uptime(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m {}s", s / 60, s % 60),
        s => format!("{}h {}m", s / 3600, s % 3600 / 60),
    }
}

/// `policyc audit tail`.
pub(crate) fn audit_tail(args: &AuditTailArgs) -> Exit {
    finish(tail(args))
}

fn tail(args: &AuditTailArgs) -> Result<(), Failure> {
    if !args.journals.is_empty() {
        return tail_journals(args);
    }
    let client = client(&args.conn);
    let read = |after: Option<String>| {
        let filters = [
            ("since", args.since.as_deref()),
            ("kind", args.kind.as_deref()),
            ("call", args.call.as_deref()),
            ("tenant", args.tenant.as_deref()),
            ("after", after.as_deref()),
        ];
        client.api().audit(&filters).map_err(|e| client.failed(e))
    };
    let records = read(None)?;
    let mut last = records.last().map(|r| r.seq);
    print_last(args, records.iter());
    if !args.follow {
        return Ok(());
    }
    loop {
        std::thread::sleep(Duration::from_millis(500));
        for r in read(Some(last.unwrap_or(0).to_string()))? {
            last = Some(r.seq);
            print_record(args.conn.json, &r);
        }
    }
}

/// `audit tail --journal A --journal B ...`: the replicas' journals (their
/// sealed segments, then the live file), merged by time, then by journal and
/// seq (the order each journal gives its records of one millisecond).
fn tail_journals(args: &AuditTailArgs) -> Result<(), Failure> {
    let mut merged: Vec<(usize, AuditRecord)> = Vec::new();
    for (n, path) in args.journals.iter().enumerate() {
        let files = toolgate_runtime::journal::journal_files(path)
            .map_err(|e| Failure::Transport(format!("`{}`: {e}", path.display())))?;
        for file in files {
            let text = match std::fs::read_to_string(&file) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Failure::Transport(format!("`{}`: {e}", file.display()))),
            };
            let records = audit_records(&text).filter(|r| wanted(args, r));
            merged.extend(records.map(|r| (n, r)));
        }
    }
    merged.sort_by_key(|(n, r)| (r.ts_ms, *n, r.seq));
    print_last(args, merged.iter().map(|(_, r)| r));
    Ok(())
}

/// The header (unless `--json`), then the last `--lines` records (all for 0).
fn print_last<'a>(args: &AuditTailArgs, records: impl ExactSizeIterator<Item = &'a AuditRecord>) {
    let skip = match args.lines {
        0 => 0,
        n => records.len().saturating_sub(n),
    };
    if !args.conn.json {
        println!(
            "{:<6}  {:<19}  {:<22}  {:<14}  DETAIL",
            "SEQ", "TIME (UTC)", "KIND", "CALL"
        );
    }
    for r in records.skip(skip) {
        print_record(args.conn.json, r);
    }
}

fn wanted(args: &AuditTailArgs, r: &AuditRecord) -> bool {
    let is =
        |want: &Option<String>, got: Option<&str>| want.as_deref().is_none_or(|w| got == Some(w));
    is(&args.kind, Some(&r.kind))
        && is(&args.call, r.field("call"))
        && is(&args.tenant, r.field("tenant"))
}

fn print_record(json: bool, r: &AuditRecord) {
    if json {
        match serde_json::to_string(r) {
            Ok(line) => println!("{line}"),
            Err(e) => eprintln!("error: cannot print record {}: {e}", r.seq),
        }
        return;
    }
    let detail: Vec<String> = [
        "replica", "tenant", "agent", "tool", "decision", "outcome", "approver", "caller",
        "action", "reason", "why", "error",
    ]
    .iter()
    .filter_map(|k| match r.body.get(*k) {
        None | Some(Value::Null) => None,
        Some(v) => Some(format!("{k}={}", cell(v))),
    })
    .collect();
    println!(
        "{:<6}  {:<19}  {:<22}  {:<14}  {}",
        r.seq,
        at(Some(r.ts_ms)),
        text(&r.kind),
        opt(r.field("call")),
        detail.join(" ")
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc() {
        assert_eq!(time(&json!(0)), "1970-01-01 00:00:00");
        assert_eq!(time(&json!(1_795_323_983_000_u64)), "2026-11-22 05:06:23");
        assert_eq!(time(&Value::Null), "-");
    }

    #[test]
    fn uptimes_read_as_people_say_them() {
        assert_eq!(uptime(5), "5s");
        assert_eq!(uptime(125), "2m 5s");
        assert_eq!(uptime(7260), "2h 1m");
    }
}
