//! RFC 3339 dates and timestamps: the one strict reader of `date` and
//! `datetime` text, shared by the checker (literals) and the engine (values).
//!
//! Accepted: a `date` is exactly `YYYY-MM-DD`; a `datetime` is
//! `YYYY-MM-DDTHH:MM:SS[.F]` followed by `Z` or an offset `+HH:MM`/`-HH:MM`
//! (`T` and `Z` in either case, 1 to 9 fraction digits). A datetime without
//! an offset names no instant and is refused (fail closed), as are spaces,
//! week or ordinal dates, and every other ISO 8601 variant. A leap second
//! (`:60`) reads as `:59`. Calendar validity (`2026-02-30`) and the
//! conversion to an instant are `jiff`'s.

pub use jiff::civil::Date;
pub use jiff::{SignedDuration, Timestamp};

/// `YYYY-MM-DD`, a real calendar date.
pub fn parse_date(text: &str) -> Option<Date> {
    let b = text.as_bytes();
    if b.len() != 10 || !full_date(b) {
        return None;
    }
    text.parse::<Date>().ok()
}

/// An RFC 3339 `date-time` with `Z` or a numeric offset.
pub fn parse_datetime(text: &str) -> Option<Timestamp> {
    let b = text.as_bytes();
    if b.len() < 20 || !full_date(b) || !matches!(b[10], b'T' | b't') || !time_of_day(&b[11..19]) {
        return None;
    }
    let mut rest = &b[19..];
    if let [b'.', tail @ ..] = rest {
        let digits = tail.iter().take_while(|c| c.is_ascii_digit()).count();
        if !(1..=9).contains(&digits) {
            return None;
        }
        rest = &tail[digits..];
    }
    let offset_ok = match rest {
        [b'Z' | b'z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => two_digits(*h1, *h2, 23) && two_digits(*m1, *m2, 59),
        _ => false,
    };
    if !offset_ok {
        return None;
    }
    let upper = text.replace('t', "T").replace('z', "Z");
    upper.parse::<Timestamp>().ok()
}

/// `YYYY-MM-DD` at the start of `b` (digits and dashes only; the calendar is checked later).
fn full_date(b: &[u8]) -> bool {
    b.len() >= 10
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && two_digits(b[5], b[6], 12)
        && b[7] == b'-'
        && two_digits(b[8], b[9], 31)
}

/// `HH:MM:SS` (`SS` up to 60, a leap second).
fn time_of_day(b: &[u8]) -> bool {
    b.len() == 8
        && two_digits(b[0], b[1], 23)
        && b[2] == b':'
        && two_digits(b[3], b[4], 59)
        && b[5] == b':'
        && two_digits(b[6], b[7], 60)
}

fn two_digits(a: u8, b: u8, max: u8) -> bool {
    a.is_ascii_digit() && b.is_ascii_digit() && (a - b'0') * 10 + (b - b'0') <= max
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_exactly_full_dates() {
        assert!(parse_date("2026-11-22").is_some());
        for bad in [
            "2026-02-30",
            "2026-11-22T00:00:00Z",
            "20261122",
            "2026-1-22",
            " 2026-11-22",
            "+2026-11-22",
            "2026-W47-7",
        ] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn datetimes_need_an_offset() {
        let utc = parse_datetime("2026-11-22T10:00:00Z");
        assert!(utc.is_some());
        assert_eq!(parse_datetime("2026-11-22t10:00:00z"), utc);
        assert_eq!(parse_datetime("2026-11-22T11:00:00+01:00"), utc);
        assert_eq!(parse_datetime("2026-11-22T10:00:00.000000000Z"), utc);
        assert!(parse_datetime("2026-12-31T23:59:60Z").is_some());
        assert_eq!(
            parse_datetime("2026-12-31T23:59:60Z"),
            parse_datetime("2026-12-31T23:59:59Z")
        );
        for bad in [
            "2026-11-22T10:00:00",
            "2026-11-22 10:00:00Z",
            "2026-11-22T10:00Z",
            "2026-11-22T10:00:00+01",
            "2026-11-22T10:00:00+0100",
            "2026-11-22T24:00:00Z",
            "2026-11-22T10:00:00.Z",
            "2026-11-22T10:00:00.1234567890Z",
            "2026-11-22T10:00:00Z[UTC]",
            "2026-02-30T10:00:00Z",
            "20261122T100000Z",
            "2026-11-22",
        ] {
            assert_eq!(parse_datetime(bad), None, "{bad}");
        }
    }
}
