//! The memory store's ids in use: calls being decided and open leases, with
//! the open leases indexed by deadline, so that taking the expired ones
//! looks only at them, never at every lease (a busy gateway holds hundreds
//! of thousands, and the expiry task runs every second under the same lock
//! the calls take).

use crate::store::{CallKey, LeaseHolder};
use std::collections::{BTreeMap, HashMap};

/// Ids in use, and the open leases by deadline.
#[derive(Default)]
pub(super) struct Leases {
    held: HashMap<CallKey, LeaseHolder>,
    /// Deadline → the keys whose lease was opened with it. An entry may be
    /// stale (the lease was taken, or opened again with another deadline):
    /// it is checked against `held` when its deadline comes, then dropped.
    deadlines: BTreeMap<u64, Vec<CallKey>>,
}

impl Leases {
    pub(super) fn get(&self, key: &CallKey) -> Option<&LeaseHolder> {
        self.held.get(key)
    }

    pub(super) fn contains(&self, key: &CallKey) -> bool {
        self.held.contains_key(key)
    }

    /// Holds `key` for `holder` (an open lease when it has a deadline).
    pub(super) fn insert(&mut self, key: &CallKey, holder: &LeaseHolder) {
        if let Some(deadline) = holder.expires_at {
            self.deadlines
                .entry(deadline)
                .or_default()
                .push(key.clone());
        }
        self.held.insert(key.clone(), holder.clone());
    }

    pub(super) fn remove(&mut self, key: &CallKey) -> Option<LeaseHolder> {
        self.held.remove(key)
    }

    /// Takes up to `max` open leases whose deadline is at or before `now`,
    /// earliest first.
    pub(super) fn take_expired(&mut self, now: u64, max: usize) -> Vec<(CallKey, u64)> {
        let mut gone = Vec::new();
        while gone.len() < max {
            let Some(mut due) = self.deadlines.first_entry().filter(|e| *e.key() <= now) else {
                break;
            };
            let deadline = *due.key();
            while gone.len() < max {
                let Some(key) = due.get_mut().pop() else {
                    break;
                };
                if self.held.get(&key).and_then(|h| h.expires_at) == Some(deadline) {
                    self.held.remove(&key);
                    gone.push((key, deadline));
                }
            }
            if due.get().is_empty() {
                due.remove();
            }
        }
        gone
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder(expires_at: Option<u64>) -> LeaseHolder {
        LeaseHolder {
            agent: "a".into(),
            env: "prod".into(),
            expires_at,
            tool: "t".into(),
            session: None,
        }
    }

    #[test]
    fn only_held_leases_past_their_deadline_are_taken_earliest_first() {
        let mut l = Leases::default();
        let key = |id: &str| CallKey::new("acme", id);
        l.insert(&key("late"), &holder(Some(30)));
        l.insert(&key("early"), &holder(Some(10)));
        l.insert(&key("deciding"), &holder(None));
        l.insert(&key("taken"), &holder(Some(10)));
        l.remove(&key("taken"));
        l.insert(&key("moved"), &holder(Some(10)));
        l.insert(&key("moved"), &holder(Some(40)));
        assert_eq!(l.take_expired(20, 10), [(key("early"), 10)]);
        assert_eq!(l.take_expired(35, 10), [(key("late"), 30)]);
        assert!(l.contains(&key("deciding")) && l.contains(&key("moved")));
        assert_eq!(l.take_expired(50, 10), [(key("moved"), 40)]);
        assert!(l.take_expired(u64::MAX, 10).is_empty());
    }

    #[test]
    fn at_most_max_are_taken_and_the_rest_later() {
        let mut l = Leases::default();
        for i in 0..5 {
            l.insert(&CallKey::new("acme", &format!("c{i}")), &holder(Some(10)));
        }
        assert_eq!(l.take_expired(10, 2).len(), 2);
        assert_eq!(l.take_expired(10, 2).len(), 2);
        assert_eq!(l.take_expired(10, 2).len(), 1);
        assert!(!l.contains(&CallKey::new("acme", "c0")));
    }
}
