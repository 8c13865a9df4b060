//! The Redis store's layout: key names (prefix, tenant hash tags, escaping)
//! and the two server-side scripts.

use crate::store::CallKey;

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
