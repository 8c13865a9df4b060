//! Approval floors: the approval a decision needs once the floors that apply
//! are taken into account. Shared by the engine and the reference interpreter
//! (like `value.rs`), so both combine approvals the same way; which floors
//! apply is each one's own procedure.

use toolgate_check::ir;

/// What the floors that apply do to a grant's approval.
#[derive(Debug, PartialEq)]
pub(crate) enum Raised {
    /// The grant's approval is already at least as strict.
    Unchanged,
    /// The decision needs this approval instead.
    To(ir::HumanApproval),
    /// Two floors name different groups: no one approval satisfies both.
    Conflict(String),
}

/// `grant`: the human approval of the chosen grant (`None` for an allow,
/// budgeted or not); `floors`: the approvals of the floors that apply.
pub(crate) fn raise(grant: Option<&ir::HumanApproval>, floors: &[&ir::HumanApproval]) -> Raised {
    let mut floor: Option<(Option<&String>, u32, Option<u64>)> = None;
    for f in floors {
        floor = Some(match floor {
            None => (f.group.as_ref(), f.count, f.expires_secs),
            Some((g, c, e)) => {
                if let (Some(a), Some(b)) = (g, &f.group) {
                    if a != b {
                        let why =
                            format!("approval floors name different groups (`{a}` and `{b}`)");
                        return Raised::Conflict(why);
                    }
                }
                (
                    g.or(f.group.as_ref()),
                    c.max(f.count),
                    min(e, f.expires_secs),
                )
            }
        });
    }
    let Some((group, count, expires)) = floor else {
        return Raised::Unchanged;
    };
    let Some(ir::HumanApproval {
        group: g,
        count: c,
        expires_secs: e,
    }) = grant
    else {
        return Raised::To(human(group.cloned(), count, expires));
    };
    let covers = *c >= count
        && (group.is_none() || g.as_ref() == group)
        && (expires.is_none() || e.is_some_and(|e| Some(e) <= expires));
    if covers {
        return Raised::Unchanged;
    }
    let group = group.or(g.as_ref()).cloned();
    Raised::To(human(group, count.max(*c), min(expires, *e)))
}

fn human(group: Option<String>, count: u32, expires_secs: Option<u64>) -> ir::HumanApproval {
    ir::HumanApproval {
        group,
        count,
        expires_secs,
    }
}

/// The shorter of two expiries (`None`: no expiry).
fn min(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(group: Option<&str>, count: u32, expires: Option<u64>) -> ir::HumanApproval {
        human(group.map(String::from), count, expires)
    }

    #[test]
    fn floors_raise_weaker_approvals_and_keep_stricter_ones() {
        let floor = h(Some("finance"), 2, None);
        // An allow or a budget becomes the floor's approval.
        assert_eq!(raise(None, &[&floor]), Raised::To(floor.clone()));
        // Fewer approvers, or another group: raised to the floor's.
        let one_support = h(Some("support"), 1, Some(600));
        assert_eq!(
            raise(Some(&one_support), &[&floor]),
            Raised::To(h(Some("finance"), 2, Some(600)))
        );
        // Already stricter: unchanged.
        let three_finance = h(Some("finance"), 3, None);
        assert_eq!(raise(Some(&three_finance), &[&floor]), Raised::Unchanged);
        // Floors combine: most approvers, shortest expiry, their group.
        let anyone_3 = h(None, 3, Some(60));
        assert_eq!(
            raise(None, &[&floor, &anyone_3]),
            Raised::To(h(Some("finance"), 3, Some(60)))
        );
        let legal = h(Some("legal"), 1, None);
        assert!(matches!(
            raise(None, &[&floor, &legal]),
            Raised::Conflict(_)
        ));
        assert_eq!(raise(Some(&one_support), &[]), Raised::Unchanged);
    }
}
