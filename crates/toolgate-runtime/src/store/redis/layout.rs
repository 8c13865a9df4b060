//! The Redis store's layout: key names (prefix, tenant hash tags, escaping)
//! and the server-side scripts.

use crate::store::{CallKey, SessionKey};

/// The sliding window: drop units at or before `now - window`, take one if
/// fewer than `limit` remain.
pub(super) const CONSUME: &str = r"
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[1], now, ARGV[4])
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
  return 1
end
return 0
";

/// Compare-and-set: writes KEYS[1] (and KEYS[2]) only if KEYS[1] still holds
/// ARGV[1] (`''`: absent). A TTL of `0` keeps the key's TTL.
pub(super) const CAS: &str = r"
local cur = redis.call('GET', KEYS[1]) or ''
if cur ~= ARGV[1] then return 0 end
if ARGV[3] == '0' then
  redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
else
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
end
if ARGV[4] ~= '' then redis.call('SET', KEYS[2], ARGV[4], 'PX', ARGV[5]) end
return 1
";

/// Deletes KEYS[1] when its value starts with ARGV[1] (`r:` a reservation,
/// `o:` an open lease); returns 1 when it did: one caller takes a lease.
pub(super) const TAKE: &str = r"
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, 2) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
";

/// Pops up to ARGV[2] members of the lease deadlines KEYS[1] due at ARGV[1].
pub(super) const DUE: &str = r"
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, ARGV[2])
for i = 1, #due, 2 do redis.call('ZREM', KEYS[1], due[i]) end
return due
";

pub(super) struct Keys {
    pub(super) prefix: String,
}

/// `{`, `}` (hash tags), `*?[]\` (SCAN patterns) and `%` escaped, so a tenant
/// or id can neither move a key to another slot nor widen a pattern.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '%' | '{' | '}' | '*' | '?' | '[' | ']' | '\\' | ':' => {
                out.push_str(&format!("%{:02X}", u32::from(c)));
            }
            c => out.push(c),
        }
    }
    out
}

impl Keys {
    pub(super) fn tenant(&self, tenant: &str) -> String {
        format!("{}:{{t:{}}}", self.prefix, esc(tenant))
    }
    pub(super) fn budget(&self, tenant: &str, key: &str) -> String {
        let hash = crate::journal::sha256_hex(key.as_bytes());
        format!(
            "{}:budget:{}",
            self.tenant(tenant),
            hash.get(..32).unwrap_or("")
        )
    }
    pub(super) fn pending(&self, key: &CallKey) -> String {
        format!("{}:pending:{}", self.tenant(&key.tenant), esc(&key.id))
    }
    pub(super) fn token(&self, tenant: &str, digest: &str) -> String {
        format!("{}:token:{}", self.tenant(tenant), esc(digest))
    }
    pub(super) fn pattern(&self, tenant: Option<&str>, kind: &str) -> String {
        match tenant {
            Some(t) => format!("{}:{kind}:*", self.tenant(t)),
            None => format!("{}:{{t:*}}:{kind}:*", self.prefix),
        }
    }
    /// A session's hash (`sessions.rs`).
    pub(super) fn session(&self, key: &SessionKey) -> String {
        format!("{}:session:{}", self.tenant(&key.tenant), esc(&key.session))
    }
    pub(super) fn lease(&self, key: &CallKey) -> String {
        format!("{}:lease:{}", self.tenant(&key.tenant), esc(&key.id))
    }
    /// The open leases' deadlines (one sorted set: members are `[tenant, id]`).
    pub(super) fn lease_deadlines(&self) -> String {
        format!("{}:{{leases}}:deadlines", self.prefix)
    }
    /// The fingerprint of the digest key every gateway on this store uses.
    pub(super) fn digest_key(&self) -> String {
        format!("{}:{{meta}}:digest-key", self.prefix)
    }
    pub(super) fn kill(&self) -> String {
        format!("{}:{{kill}}:scopes", self.prefix)
    }
    pub(super) fn channel(&self) -> String {
        format!("{}:kill", self.prefix)
    }
}

pub(super) fn valid_prefix(prefix: &str) -> bool {
    !prefix.is_empty()
        && prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'))
}
