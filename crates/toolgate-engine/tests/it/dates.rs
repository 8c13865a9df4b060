//! Decisions with dates, datetimes, durations and `now` (language v2, item
//! 7), each through one helper that checks the compiled engine, the cached
//! engine and the reference interpreter agree.

use serde_json::{json, Value as Json};
use toolgate_engine::Outcome;

use crate::support;

/// The outcome for `bot` calling `tool` with `args` at `now` (`None`: no clock).
fn decide(src: &str, tool: &str, args: Json, now: Option<&str>) -> Outcome {
    let context = json!({ "tenant": "acme", "env": "prod", "cutoff": "2026-12-31" });
    support::decide_in(src, tool, args, context, now).0
}

const SCHEDULE: &str = r#"
context { cutoff: date };
tool pay.schedule write { execute_on: date, until?: datetime };
tool cal.create write { start: datetime, end: datetime };
tool raw.call write;
writes enabled;
agent bot {
  write pay.schedule auto-approve limit 5 per day
    when args.execute_on >= date(now) and args.execute_on <= date(now) + 30d and args.execute_on <= ctx.cutoff;
  write cal.create auto-approve limit 5 per day
    when args.start > now and args.start <= now + 2w and args.end - args.start <= 4h;
  deny raw.call when datetime(args.at) < now - 90s;
  write raw.call auto-approve limit 5 per day;
}
"#;

const NOW: Option<&str> = Some("2026-11-22T10:00:00Z");

fn schedule(day: &str, now: Option<&str>) -> Outcome {
    decide(SCHEDULE, "pay.schedule", json!({ "execute_on": day }), now)
}

#[test]
fn a_scheduled_day_is_not_in_the_past_and_at_most_30_days_ahead() {
    assert_eq!(schedule("2026-11-22", NOW), Outcome::Allow, "today");
    assert_eq!(schedule("2026-11-21", NOW), Outcome::Deny, "yesterday");
    assert_eq!(schedule("2026-12-22", NOW), Outcome::Allow, "30 days ahead");
    assert_eq!(schedule("2026-12-23", NOW), Outcome::Deny, "31 days ahead");
    // `date(now)` is the UTC day: late on the 22nd in UTC is still the 22nd.
    let late = Some("2026-11-22T23:59:59.999Z");
    assert_eq!(schedule("2026-11-22", late), Outcome::Allow);
    let next = Some("2026-11-23T01:00:00+02:00");
    assert_eq!(schedule("2026-11-22", next), Outcome::Allow, "23:00 UTC");
    // The trusted context's cut-off (a `date` context field) applies too.
    assert_eq!(
        schedule("2026-12-31", Some("2026-12-20T00:00:00Z")),
        Outcome::Allow
    );
    assert_eq!(
        schedule("2027-01-01", Some("2026-12-20T00:00:00Z")),
        Outcome::Deny
    );
}

#[test]
fn malformed_dates_fail_the_schema_and_no_clock_fails_closed() {
    for bad in ["2026-02-30", "22.11.2026", "2026-11-22T00:00:00Z", ""] {
        assert_eq!(schedule(bad, NOW), Outcome::Deny, "{bad}");
    }
    assert_eq!(
        decide(
            SCHEDULE,
            "pay.schedule",
            json!({ "execute_on": 20261122 }),
            NOW
        ),
        Outcome::Deny
    );
    assert_eq!(
        schedule("2026-11-22", None),
        Outcome::Deny,
        "no `now`: the grant does not apply"
    );
}

#[test]
fn datetimes_compare_as_instants_whatever_their_offset() {
    let call = |start: &str, end: &str| {
        decide(
            SCHEDULE,
            "cal.create",
            json!({ "start": start, "end": end }),
            NOW,
        )
    };
    assert_eq!(
        call("2026-11-22T12:00:00Z", "2026-11-22T16:00:00Z"),
        Outcome::Allow
    );
    assert_eq!(
        call("2026-11-22T12:00:00Z", "2026-11-22T16:00:01Z"),
        Outcome::Deny,
        "over 4h"
    );
    assert_eq!(
        call("2026-11-22T10:30:00+01:00", "2026-11-22T11:00:00Z"),
        Outcome::Deny,
        "09:30Z is past"
    );
    assert_eq!(
        call("2026-11-22T11:30:00+01:00", "2026-11-22T11:00:00Z"),
        Outcome::Allow
    );
    assert_eq!(
        call("2026-12-06T10:00:00Z", "2026-12-06T11:00:00Z"),
        Outcome::Allow,
        "exactly 2w"
    );
    assert_eq!(
        call("2026-12-06T10:00:00.001Z", "2026-12-06T11:00:00Z"),
        Outcome::Deny
    );
    assert_eq!(
        call("2026-11-22T12:00:00", "2026-11-22T13:00:00Z"),
        Outcome::Deny,
        "no offset"
    );
    // A leap second reads as :59.
    assert_eq!(
        call("2026-12-31T23:59:60Z", "2027-01-01T00:00:00Z"),
        Outcome::Deny,
        "beyond 2w"
    );
}

#[test]
fn a_deny_on_a_malformed_untyped_datetime_applies() {
    let call = |at: Json, now| decide(SCHEDULE, "raw.call", json!({ "at": at }), now);
    assert_eq!(
        call(json!("2026-11-22T09:58:00Z"), NOW),
        Outcome::Deny,
        "stale"
    );
    assert_eq!(call(json!("2026-11-22T09:59:30Z"), NOW), Outcome::Allow);
    assert_eq!(
        call(json!("yesterday"), NOW),
        Outcome::Deny,
        "malformed: the deny applies"
    );
    assert_eq!(call(json!(5), NOW), Outcome::Deny);
    assert_eq!(
        call(json!("2026-11-22T09:59:30Z"), None),
        Outcome::Deny,
        "no clock"
    );
}

/// A `date | null` argument (dates meet the JSON-Schema-level types): `== null`
/// looks at the raw value, so an omitted or `null` end date is not an error,
/// and a present one is still parsed and compared as a date.
#[test]
fn a_nullable_date_is_tested_for_null_without_parsing_it() {
    let src = r#"
tool orders.create write { first_on: date, end_on?: date | null };
writes enabled;
agent bot {
  deny orders.create when args.end_on != null and args.end_on < args.first_on;
  write orders.create auto-approve limit 5 per day when args.end_on == null or args.end_on <= date(now) + 365d;
}
"#;
    let call = |args: Json| decide(src, "orders.create", args, NOW);
    let first = "2026-11-23";
    assert_eq!(
        call(json!({ "first_on": first })),
        Outcome::Allow,
        "omitted"
    );
    let null = json!({ "first_on": first, "end_on": null });
    assert_eq!(call(null), Outcome::Allow, "null");
    let ok = json!({ "first_on": first, "end_on": "2027-01-10" });
    assert_eq!(call(ok), Outcome::Allow, "within a year");
    let early = json!({ "first_on": first, "end_on": "2026-11-01" });
    assert_eq!(call(early), Outcome::Deny, "ends before it starts");
    let late = json!({ "first_on": first, "end_on": "2028-01-10" });
    assert_eq!(call(late), Outcome::Deny, "over a year ahead");
    let bad = json!({ "first_on": first, "end_on": "soon" });
    assert_eq!(call(bad), Outcome::Deny, "not a date");
}
