//! Sessions in Redis: one hash per session, `P:{t:T}:session:<id>`, whose
//! fields are `seen` (last change, ms), `gone` (tombstoned at, ms),
//! `taint`, the counts `turns`/`obs`/`end`, `n` (digests held), `tools`,
//! `t:<tool>` (a tool's index), `c:<tool>` (its allowed calls) and
//! `d:<digest>` (`bits[,tool index...]`: where a keyed digest occurs). A
//! change is one script ([`CHANGE`]) that ages, checks the cap and applies,
//! as [`Session::apply`] does in memory; a decision's read is one `HMGET`
//! of the fields its [`SessionQuery`] names. Times come from the caller
//! (`now`), so a manual clock ages Redis sessions as it ages memory ones;
//! the key's Redis TTL only forgets it (refreshed by each change, with
//! slack) once its tombstone would be one TTL old.

use super::{Inner, RedisStore};
use crate::store::session::{source, SessionKey, SessionQuery, SessionRead, SessionWrite};
use crate::store::session::{Entry, Session, SessionAnswers, SessionChange, SessionLookup};
use crate::store::session::{SessionLimits, Standing};
use crate::store::StoreError;
use std::collections::HashMap;
use std::sync::Arc;

/// How much longer than the session logic needs Redis keeps a session's
/// hash, so that replicas' clocks a little apart never see it vanish early.
pub(super) const SESSION_SLACK_MS: u64 = 60 * 1000;

/// A session change: KEYS[1] the session's hash; ARGV: now, ttl, max
/// digests, slack, kind (`turn`, `obs`, `end`, `call`), tool, taints
/// (`1`/`0`), capped (`1`/`0`), then groups of (source bit, count, digests).
/// Returns 0 recorded, 1 capped (tainted and tombstoned), 2 gone.
pub(super) const CHANGE: &str = r"
local key = KEYS[1]
local now = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
local max = tonumber(ARGV[3])
local slack = tonumber(ARGV[4])
local kind, tool = ARGV[5], ARGV[6]
local function int(x) return string.format('%d', x) end
local function tombstone(at)
  redis.call('DEL', key)
  redis.call('HSET', key, 'gone', int(at), 'taint', '1')
  redis.call('PEXPIRE', key, int(math.max(at + ttl - now, 0) + slack))
end
local meta = redis.call('HMGET', key, 'seen', 'gone')
local seen, gone = tonumber(meta[1]), tonumber(meta[2])
local idle = false
if not gone and seen and seen + ttl <= now then gone, idle = seen + ttl, true end
if gone then
  if gone + ttl <= now then
    redis.call('DEL', key)
    seen = nil
  else
    if idle then tombstone(gone) end
    return 2
  end
end
local n = tonumber(redis.call('HGET', key, 'n') or '0')
local fresh, mark, i = 0, {}, 9
while i <= #ARGV do
  for j = i + 2, i + 1 + tonumber(ARGV[i + 1]) do
    local d = ARGV[j]
    if not mark[d] then
      mark[d] = true
      if redis.call('HEXISTS', key, 'd:' .. d) == 0 then fresh = fresh + 1 end
    end
  end
  i = i + 2 + tonumber(ARGV[i + 1])
end
if ARGV[8] == '1' or n + fresh > max then
  tombstone(now)
  return 1
end
if not seen or seen < now then
  redis.call('HSET', key, 'seen', ARGV[1])
  seen = now
end
local ti = nil
if kind == 'turn' then
  redis.call('HINCRBY', key, 'turns', 1)
elseif kind == 'end' then
  redis.call('HINCRBY', key, 'end', 1)
elseif kind == 'call' then
  redis.call('HINCRBY', key, 'c:' .. tool, 1)
else
  redis.call('HINCRBY', key, 'obs', 1)
  if ARGV[7] == '1' then redis.call('HSET', key, 'taint', '1') end
  ti = redis.call('HGET', key, 't:' .. tool)
  if not ti then
    ti = tostring(redis.call('HINCRBY', key, 'tools', 1) - 1)
    redis.call('HSET', key, 't:' .. tool, ti)
  end
end
i = 9
while i <= #ARGV do
  local b = tonumber(ARGV[i])
  for j = i + 2, i + 1 + tonumber(ARGV[i + 1]) do
    local f = 'd:' .. ARGV[j]
    local v = redis.call('HGET', key, f) or '0'
    local comma = string.find(v, ',', 1, true)
    local bits, tools = v, ''
    if comma then bits, tools = string.sub(v, 1, comma - 1), string.sub(v, comma) end
    bits = bit.bor(tonumber(bits), b)
    if ti and not string.find(tools .. ',', ',' .. ti .. ',', 1, true) then
      tools = tools .. ',' .. ti
    end
    redis.call('HSET', key, f, int(bits) .. tools)
  end
  i = i + 2 + tonumber(ARGV[i + 1])
end
redis.call('HSET', key, 'n', int(n + fresh))
redis.call('PEXPIRE', key, int(math.max(seen + 2 * ttl - now, 0) + slack))
return 0
";

impl RedisStore {
    /// Sets the sessions' TTL and cap (tests; every replica on one Redis
    /// must use the same).
    pub fn set_session_limits(&self, limits: SessionLimits) {
        *self
            .inner
            .session_limits
            .write()
            .unwrap_or_else(|p| p.into_inner()) = limits;
    }
}

/// The script's arguments after the key for `change`.
fn change_args(change: &SessionChange, limits: SessionLimits) -> Vec<String> {
    let (kind, tool, taints, capped, groups): (_, &str, _, _, Vec<(u8, &[String])>) = match change {
        SessionChange::Turn(t) => (
            "turn",
            "",
            false,
            t.capped,
            vec![(source::USER, &t.digests)],
        ),
        SessionChange::Observed(o) => (
            "obs",
            &o.tool,
            o.taints,
            o.capped,
            vec![
                (source::TRUSTED_OUTPUT, &o.trusted),
                (source::UNTRUSTED_OUTPUT, &o.untrusted),
            ],
        ),
        SessionChange::Endorsed(e) => (
            "end",
            "",
            false,
            e.capped,
            vec![(source::ENDORSED, &e.digests)],
        ),
        SessionChange::Call(c) => ("call", &c.tool, false, false, Vec::new()),
    };
    let flag = |b: bool| if b { "1" } else { "0" }.to_string();
    let mut args = vec![
        change.at().to_string(),
        limits.ttl_ms.to_string(),
        limits.max_digests.to_string(),
        SESSION_SLACK_MS.to_string(),
        kind.to_string(),
        tool.to_string(),
        flag(taints),
        flag(capped),
    ];
    for (bit, digests) in groups {
        args.push(bit.to_string());
        args.push(digests.len().to_string());
        args.extend(digests.iter().cloned());
    }
    args
}

fn number(raw: Option<&str>) -> Result<Option<u64>, StoreError> {
    raw.map(|r| {
        r.parse::<u64>()
            .map_err(|_| StoreError(format!("unreadable session field in redis: `{r}`")))
    })
    .transpose()
}

/// A `d:` field's value: source bits, then the indices of the tools whose outputs held it.
fn entry(raw: &str) -> Result<Entry, StoreError> {
    let bad = || StoreError(format!("unreadable session entry in redis: `{raw}`"));
    let mut parts = raw.split(',');
    let s = parts
        .next()
        .unwrap_or("")
        .parse::<u8>()
        .map_err(|_| bad())?;
    let t = parts
        .map(|p| p.parse::<u32>().map_err(|_| bad()))
        .collect::<Result<Vec<u32>, StoreError>>()?;
    Ok(Entry { s, t })
}

/// A whole session from its hash's fields.
fn whole(fields: HashMap<String, String>) -> Result<Session, StoreError> {
    let mut s = Session::default();
    let mut tools: Vec<(u32, String)> = Vec::new();
    for (f, v) in &fields {
        if let Some(d) = f.strip_prefix("d:") {
            s.index.insert(d.to_string(), entry(v)?);
        } else if let Some(t) = f.strip_prefix("t:") {
            let i = number(Some(v))?.unwrap_or(0);
            tools.push((u32::try_from(i).unwrap_or(u32::MAX), t.to_string()));
        } else if let Some(t) = f.strip_prefix("c:") {
            s.calls.insert(t.to_string(), number(Some(v))?.unwrap_or(0));
        }
    }
    tools.sort();
    s.tools = tools.into_iter().map(|(_, t)| t).collect();
    let get = |f: &str| number(fields.get(f).map(String::as_str));
    s.last_seen = get("seen")?.unwrap_or(0);
    s.gone_at = get("gone")?;
    s.tainted = fields.contains_key("taint");
    s.turns = get("turns")?.unwrap_or(0);
    s.observations = get("obs")?.unwrap_or(0);
    s.endorsements = get("end")?.unwrap_or(0);
    Ok(s)
}

impl Inner {
    fn limits(&self) -> SessionLimits {
        *self
            .session_limits
            .read()
            .unwrap_or_else(|p| p.into_inner())
    }

    pub(super) async fn session_change(
        &self,
        change: &SessionChange,
    ) -> Result<SessionWrite, StoreError> {
        let mut call = self.session.prepare_invoke();
        call.key(self.keys.session(change.key()));
        for arg in change_args(change, self.limits()) {
            call.arg(arg);
        }
        let r: redis::RedisResult<i64> = call.invoke_async(&mut self.conn()).await;
        match self.answered(r)? {
            0 => Ok(SessionWrite::Recorded),
            1 => Ok(SessionWrite::Capped),
            2 => Ok(SessionWrite::Gone),
            other => Err(StoreError(format!("the session script answered `{other}`"))),
        }
    }

    pub(super) async fn session(
        &self,
        key: &SessionKey,
        now: u64,
    ) -> Result<SessionRead, StoreError> {
        let r: redis::RedisResult<HashMap<String, String>> = redis::cmd("HGETALL")
            .arg(self.keys.session(key))
            .query_async(&mut self.conn())
            .await;
        let session = Arc::new(whole(self.answered(r)?)?);
        Ok(Session::read_at(&session, now, self.limits()))
    }

    /// One `HMGET` of what `query` asks.
    pub(super) async fn session_lookup(
        &self,
        key: &SessionKey,
        query: &SessionQuery,
        now: u64,
    ) -> Result<SessionLookup, StoreError> {
        let mut fields = vec!["seen".to_string(), "gone".into(), "taint".into()];
        fields.extend(query.calls.iter().map(|t| format!("c:{t}")));
        fields.extend(query.tools.iter().map(|t| format!("t:{t}")));
        fields.extend(query.digests.iter().map(|d| format!("d:{d}")));
        let r: redis::RedisResult<Vec<Option<String>>> = redis::cmd("HMGET")
            .arg(self.keys.session(key))
            .arg(&fields)
            .query_async(&mut self.conn())
            .await;
        let values = self.answered(r)?;
        let mut values = values.iter().map(Option::as_deref);
        let mut next = || values.next().flatten();
        let (seen, gone, taint) = (number(next())?, number(next())?, next().is_some());
        match Standing::at(seen, gone, now, self.limits()) {
            Standing::Gone => return Ok(SessionLookup::Gone),
            Standing::Forgotten => return Ok(SessionLookup::Live(SessionAnswers::empty(query))),
            Standing::Live => {}
        }
        let mut out = SessionAnswers::empty(query);
        out.tainted = taint;
        for t in &query.calls {
            out.calls.insert(t.clone(), number(next())?.unwrap_or(0));
        }
        let mut tools = Vec::new();
        for t in &query.tools {
            if let Some(i) = number(next())? {
                tools.push((u32::try_from(i).unwrap_or(u32::MAX), t));
            }
        }
        for d in &query.digests {
            let Some(raw) = next() else { continue };
            let e = entry(raw)?;
            out.sources.insert(d.clone(), e.s);
            let held = tools.iter().filter(|(i, _)| e.t.contains(i));
            out.outputs
                .insert(d.clone(), held.map(|(_, t)| (*t).clone()).collect());
        }
        Ok(SessionLookup::Live(out))
    }
}
