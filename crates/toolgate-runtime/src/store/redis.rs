//! The Redis store: the gateway's state shared by several replicas (feature
//! `redis`). Every operation that grants or spends is atomic in Redis itself:
//! a budget unit is one Lua script (a sliding window in a sorted set); a hold,
//! an approval (with the token it completes), a rejection and a token use are
//! a read followed by one compare-and-set script that writes only if the value
//! is still the one read (else it reads again), so the pure admission rules
//! of [`Pending`] and [`Token`] run here unchanged and nothing is granted twice
//! across replicas. The kill switch is a hash of engaged scopes plus a pub/sub
//! message carrying the change: each replica keeps a copy, changed by the
//! message as it arrives and re-read every 100 ms. Decisions use the copy only
//! while it is exact (subscribed without a break since it was read); otherwise
//! (a replica that may have missed a message) a write reads the hash itself.
//!
//! Sessions (`sessions.rs`): a hash per session, changed by one script,
//! read by one `HMGET` of what the decision asks.
//!
//! Layout (prefix `P`, tenant `T` escaped): `P:{t:T}:budget:<sha256>` (sorted
//! set), `P:{t:T}:pending:<id>` and `P:{t:T}:token:<sha256>` (JSON strings),
//! `P:{t:T}:session:<id>` (hash),
//! `P:{kill}:scopes` (hash), channel `P:kill`. The braces are Redis Cluster
//! hash tags: each tenant's keys share one slot, so each script touches one
//! slot. Everything expires with a Redis TTL.

use super::{
    Admitted, Approver, Binding, CallKey, KillScope, LeaseHolder, Pending, PendingState, Store,
    StoreError, Subject, Token, TOKEN_TTL_MS,
};
use super::{SessionChange, SessionKey, SessionLimits, SessionLookup, SessionQuery};
use super::{SessionRead, SessionWrite};
use crate::record::{ApprovalGranted, ApprovalRejected, ApprovalRequested, KillSwitch};
use crate::record::{TokenIssued, TokenUsed};
use crate::refusal::Refusal;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

mod layout;
mod sessions;
use layout::{valid_prefix, Keys, CAS, CONSUME, DUE, TAKE};

/// What a replica does while Redis does not answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RedisDown {
    /// Deny every call (the default).
    #[default]
    DenyAll,
    /// Keep deciding reads that need no state (no budget, no approval), with
    /// the kill switch as last seen; deny everything else.
    ReadsOnly,
}

/// How to reach Redis.
#[derive(Clone, Debug)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port/db` or `rediss://...` (TLS).
    pub url: String,
    /// Prefix of every key (letters, digits, `_`, `-`, `.`, `:`).
    pub prefix: String,
    /// What to do while Redis does not answer.
    pub down: RedisDown,
    /// Longest wait for a connection or an answer.
    pub timeout: Duration,
}

/// Retries of a compare-and-set that lost a race before giving up.
const CAS_ATTEMPTS: usize = 32;
/// How long a finished pending call or a used token stays readable (ms).
const KEEP_MS: u64 = 24 * 3600 * 1000;
/// How long a pending call with no expiry waits (ms).
const WAIT_MS: u64 = 30 * 24 * 3600 * 1000;
/// How much longer than its window a budget window is kept (ms).
const WINDOW_SLACK_MS: u64 = 60 * 1000;

/// The gateway's state in Redis. Cheap to clone.
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    conn: ConnectionManager,
    client: redis::Client,
    keys: Keys,
    down: RedisDown,
    healthy: AtomicBool,
    kill: RwLock<Vec<KillScope>>,
    /// Subscribed to the kill switch channel without a break.
    subscribed: AtomicBool,
    /// `kill` is exact: read while subscribed (cleared with `subscribed`).
    fresh: AtomicBool,
    wake: tokio::sync::Notify,
    consume: redis::Script,
    cas: redis::Script,
    take: redis::Script,
    due: redis::Script,
    /// A session change ([`sessions::CHANGE`]).
    session: redis::Script,
    /// The sessions' TTL and cap.
    session_limits: RwLock<SessionLimits>,
    /// Makes budget units unique across replicas.
    nonce: String,
    units: AtomicU64,
}

fn field(scope: &KillScope) -> String {
    serde_json::to_string(scope).unwrap_or_default()
}

fn json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError(format!("cannot encode state: {e}")))
}

fn parse<T: serde::de::DeserializeOwned>(raw: &str) -> Result<T, StoreError> {
    serde_json::from_str(raw).map_err(|e| StoreError(format!("unreadable state in redis: {e}")))
}

/// How long Redis keeps a pending call: while it waits or its token may be
/// used, then `KEEP_MS` for `GET /v1/calls/{id}`.
fn pending_ttl(p: &Pending, token_expires: Option<u64>, now: u64) -> u64 {
    let until = match (token_expires, p.expires_at) {
        _ if p.rejected.is_some() || p.cancelled.is_some() => now,
        (Some(t), _) => t,
        (None, Some(e)) => e,
        (None, None) => now.saturating_add(WAIT_MS),
    };
    until.saturating_sub(now).saturating_add(KEEP_MS)
}

impl RedisStore {
    /// Connects (lazily: a replica starts while Redis is down, fails closed
    /// and recovers on its own), and starts the kill switch watcher.
    pub async fn open(config: RedisConfig) -> Result<RedisStore, StoreError> {
        if !valid_prefix(&config.prefix) {
            return Err(StoreError(format!(
                "the key prefix `{}` may hold only letters, digits, `_`, `-`, `.` and `:`",
                config.prefix
            )));
        }
        let client = redis::Client::open(config.url.as_str())
            .map_err(|e| StoreError(format!("`--store`: {e}")))?;
        let manager = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.timeout))
            .set_response_timeout(Some(config.timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(100));
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), manager)
            .map_err(|e| StoreError(format!("redis: {e}")))?;
        let mut nonce = [0u8; 8];
        getrandom::fill(&mut nonce).map_err(|e| StoreError(format!("no randomness: {e}")))?;
        let inner = Arc::new(Inner {
            conn,
            client,
            keys: Keys {
                prefix: config.prefix,
            },
            down: config.down,
            healthy: AtomicBool::new(false),
            kill: RwLock::new(Vec::new()),
            subscribed: AtomicBool::new(false),
            fresh: AtomicBool::new(false),
            wake: tokio::sync::Notify::new(),
            consume: redis::Script::new(CONSUME),
            cas: redis::Script::new(CAS),
            take: redis::Script::new(TAKE),
            due: redis::Script::new(DUE),
            session: redis::Script::new(sessions::CHANGE),
            session_limits: RwLock::new(SessionLimits::default()),
            nonce: nonce.iter().map(|b| format!("{b:02x}")).collect(),
            units: AtomicU64::new(0),
        });
        let _ = inner.refresh().await;
        tokio::spawn(watch(Arc::downgrade(&inner)));
        tokio::spawn(listen(Arc::downgrade(&inner)));
        Ok(RedisStore { inner })
    }
}

/// Refreshes the kill switch copy (and health) on every message and every 100 ms.
async fn watch(inner: Weak<Inner>) {
    loop {
        let Some(i) = inner.upgrade() else { return };
        // Any error (not only a lost connection: a refused password, an
        // out-of-memory Redis) makes the store not ready until it answers.
        if i.refresh().await.is_err() {
            i.healthy.store(false, Ordering::SeqCst);
        }
        let woken = i.wake.notified();
        let _ = tokio::time::timeout(Duration::from_millis(100), woken).await;
    }
}

/// Subscribes to the kill switch channel (again after each disconnection).
async fn listen(inner: Weak<Inner>) {
    use futures_util::StreamExt as _;
    loop {
        let Some(i) = inner.upgrade() else { return };
        let (client, channel) = (i.client.clone(), i.keys.channel());
        drop(i);
        if let Ok(mut pubsub) = client.get_async_pubsub().await {
            if pubsub.subscribe(&channel).await.is_ok() {
                if let Some(i) = inner.upgrade() {
                    i.subscribed.store(true, Ordering::SeqCst);
                    i.wake.notify_one();
                }
                let mut messages = pubsub.on_message();
                while let Some(msg) = messages.next().await {
                    let Some(i) = inner.upgrade() else { return };
                    i.changed(msg.get_payload_bytes());
                    i.wake.notify_one();
                }
            }
        }
        if let Some(i) = inner.upgrade() {
            i.subscribed.store(false, Ordering::SeqCst);
            i.fresh.store(false, Ordering::SeqCst);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// How long a call being decided keeps its id reserved if its replica dies
/// before deciding (a decision takes milliseconds).
const RESERVATION_TTL_MS: u64 = 60_000;

/// How long an open lease outlives its deadline in Redis, so that the expiry
/// (run every second by each replica) always finds it.
const LEASE_SLACK_MS: u64 = 60 * 60 * 1000;

impl Inner {
    fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// Deletes the lease key of `key` when its value starts with `tag`; whether it did.
    async fn take(&self, key: &CallKey, tag: &str) -> Result<bool, StoreError> {
        let mut call = self.take.prepare_invoke();
        call.key(self.keys.lease(key)).arg(tag);
        let r: redis::RedisResult<i64> = call.invoke_async(&mut self.conn()).await;
        Ok(self.answered(r)? == 1)
    }

    /// A Redis error as the gateway sees it; marks the store down when Redis
    /// did not answer.
    fn fail(&self, e: &redis::RedisError) -> StoreError {
        if e.is_io_error()
            || e.is_timeout()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
        {
            self.healthy.store(false, Ordering::SeqCst);
        }
        StoreError(format!("redis: {e}"))
    }

    fn answered<T>(&self, r: redis::RedisResult<T>) -> Result<T, StoreError> {
        match r {
            Ok(v) => {
                self.healthy.store(true, Ordering::SeqCst);
                Ok(v)
            }
            Err(e) => Err(self.fail(&e)),
        }
    }

    async fn refresh(&self) -> Result<(), StoreError> {
        let subscribed = self.subscribed.load(Ordering::SeqCst);
        let scopes = self.scopes().await?;
        *self.kill.write().unwrap_or_else(|p| p.into_inner()) = scopes;
        // Exact only if no message could have been missed since before the read.
        let still = self.subscribed.load(Ordering::SeqCst);
        self.fresh.store(subscribed && still, Ordering::SeqCst);
        Ok(())
    }

    /// A kill switch message (`+SCOPE` engaged, `-SCOPE` released): applied
    /// to the copy at once.
    fn changed(&self, payload: &[u8]) {
        let text = String::from_utf8_lossy(payload);
        let (engaged, scope) = match text.split_at_checked(1) {
            Some(("+", rest)) => (true, rest),
            Some(("-", rest)) => (false, rest),
            _ => return,
        };
        let Ok(scope) = parse::<KillScope>(scope) else {
            return;
        };
        let mut kill = self.kill.write().unwrap_or_else(|p| p.into_inner());
        kill.retain(|k| *k != scope);
        if engaged {
            kill.push(scope);
        }
    }

    /// The copy's answer, when it is exact and Redis answers.
    fn cached(&self, who: Subject<'_>) -> Option<bool> {
        let usable = self.fresh.load(Ordering::SeqCst) && self.healthy.load(Ordering::SeqCst);
        usable.then(|| {
            let kill = self.kill.read().unwrap_or_else(|p| p.into_inner());
            kill.iter()
                .any(|k| k.stops(who.tenant, who.agent, who.write))
        })
    }

    async fn scopes(&self) -> Result<Vec<KillScope>, StoreError> {
        let fields: Vec<String> = self.answered(
            redis::cmd("HKEYS")
                .arg(self.keys.kill())
                .query_async(&mut self.conn())
                .await,
        )?;
        let mut scopes: Vec<KillScope> = fields.iter().filter_map(|f| parse(f).ok()).collect();
        scopes.sort_by_key(field);
        Ok(scopes)
    }

    async fn get(&self, key: &str) -> Result<Option<String>, StoreError> {
        let r = redis::cmd("GET")
            .arg(key)
            .query_async(&mut self.conn())
            .await;
        self.answered(r)
    }

    /// Writes `new` (and `also`) if `key` still holds `old`; whether it did.
    async fn cas(
        &self,
        key: &str,
        old: Option<&str>,
        new: (&str, u64),
        also: Option<(&str, &str, u64)>,
    ) -> Result<bool, StoreError> {
        let mut call = self.cas.prepare_invoke();
        call.key(key);
        match also {
            Some((k, v, ttl)) => call
                .key(k)
                .arg(old.unwrap_or(""))
                .arg(new.0)
                .arg(new.1)
                .arg(v)
                .arg(ttl.max(1)),
            None => call
                .arg(old.unwrap_or(""))
                .arg(new.0)
                .arg(new.1)
                .arg("")
                .arg(0),
        };
        let r: redis::RedisResult<i64> = call.invoke_async(&mut self.conn()).await;
        Ok(self.answered(r)? == 1)
    }

    async fn token_of(&self, p: &Pending) -> Result<Option<Token>, StoreError> {
        let Some(digest) = &p.token else {
            return Ok(None);
        };
        match self.get(&self.keys.token(&p.key.tenant, digest)).await? {
            Some(raw) => Ok(Some(parse(&raw)?)),
            None => Ok(None),
        }
    }

    async fn killed(&self, who: Subject<'_>) -> Result<bool, StoreError> {
        if let Some(known) = self.cached(who) {
            return Ok(known);
        }
        if !who.write {
            if self.down == RedisDown::DenyAll && !self.healthy.load(Ordering::SeqCst) {
                return Err(StoreError("redis does not answer".into()));
            }
            let kill = self.kill.read().unwrap_or_else(|p| p.into_inner());
            return Ok(kill.iter().any(|k| k.stops(who.tenant, who.agent, false)));
        }
        let mut fields = Vec::with_capacity(8);
        for tenant in [Some(who.tenant), None] {
            for agent in [Some(who.agent), None] {
                for all_tools in [true, false] {
                    let scope = KillScope {
                        tenant: tenant.map(String::from),
                        agent: agent.map(String::from),
                        all_tools,
                    };
                    fields.push(field(&scope));
                }
            }
        }
        let r: redis::RedisResult<Vec<Option<String>>> = redis::cmd("HMGET")
            .arg(self.keys.kill())
            .arg(fields)
            .query_async(&mut self.conn())
            .await;
        Ok(self.answered(r)?.iter().any(Option::is_some))
    }

    async fn scan(&self, pattern: &str) -> Result<Vec<String>, StoreError> {
        let mut cursor: u64 = 0;
        let mut keys = Vec::new();
        loop {
            let r: redis::RedisResult<(u64, Vec<String>)> = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut self.conn())
                .await;
            let (next, batch) = self.answered(r)?;
            keys.extend(batch);
            if next == 0 {
                return Ok(keys);
            }
            cursor = next;
        }
    }

    fn contention(key: &str) -> StoreError {
        StoreError(format!(
            "`{key}` kept changing under {CAS_ATTEMPTS} attempts"
        ))
    }
}

impl Inner {
    async fn hold_once(
        &self,
        request: &ApprovalRequested,
        now: u64,
    ) -> Result<Option<Result<(), Refusal>>, StoreError> {
        let key = self.keys.pending(&request.key);
        let raw = self.get(&key).await?;
        if let Some(raw) = &raw {
            let p: Pending = parse(raw)?;
            let token = self.token_of(&p).await?;
            let state = match p.state(token.as_ref(), now) {
                PendingState::Waiting => Some("waiting for approval"),
                PendingState::Approved => Some("approved and its token not yet used"),
                PendingState::Finished => None,
            };
            if let Some(state) = state {
                let id = request.key.id.clone();
                return Ok(Some(Err(Refusal::IdInUse { id, state })));
            }
        }
        let p = Pending::requested(request);
        let value = json(&p)?;
        let ttl = pending_ttl(&p, None, now);
        let written = self.cas(&key, raw.as_deref(), (&value, ttl), None).await?;
        Ok(written.then_some(Ok(())))
    }

    async fn approve_once(
        &self,
        grant: &ApprovalGranted,
        who: &Approver,
        write: bool,
        token_digest: &str,
        sealed: &str,
        now: u64,
    ) -> Result<Option<Result<Option<TokenIssued>, Refusal>>, StoreError> {
        let key = self.keys.pending(&grant.key);
        let Some(raw) = self.get(&key).await? else {
            return Ok(Some(Err(Refusal::NoSuchRequest)));
        };
        let mut p: Pending = parse(&raw)?;
        let (tenant, agent) = (&p.binding.tenant, &p.binding.agent);
        if self
            .killed(Subject {
                tenant,
                agent,
                write,
            })
            .await?
        {
            return Ok(Some(Err(Refusal::KillSwitch)));
        }
        let completes = match p.admit_approval(who, grant, now) {
            Ok(c) => c,
            Err(refusal) => return Ok(Some(Err(refusal))),
        };
        p.approvals
            .push((grant.approver.clone(), grant.reason.clone()));
        let issued = completes.then(|| TokenIssued {
            key: p.key.clone(),
            token_digest: token_digest.to_string(),
            expires_at: p.expires_at.unwrap_or(now.saturating_add(TOKEN_TTL_MS)),
            binding: p.binding.clone(),
        });
        let token = issued.as_ref().map(|i| {
            p.token = Some(i.token_digest.clone());
            Token {
                key: i.key.clone(),
                binding: i.binding.clone(),
                expires_at: i.expires_at,
                used: false,
                revoked: false,
                sealed: Some(sealed.to_string()),
            }
        });
        let value = json(&p)?;
        let ttl = pending_ttl(&p, token.as_ref().map(|t| t.expires_at), now);
        let written = match &token {
            Some(t) => {
                let token_key = self.keys.token(&t.key.tenant, token_digest);
                let token_ttl = t.expires_at.saturating_sub(now).saturating_add(KEEP_MS);
                let also = Some((token_key.as_str(), &json(t)?[..], token_ttl));
                self.cas(&key, Some(&raw), (&value, ttl), also).await?
            }
            None => self.cas(&key, Some(&raw), (&value, ttl), None).await?,
        };
        Ok(written.then_some(Ok(issued)))
    }

    async fn reject_once(
        &self,
        rejected: &ApprovalRejected,
        who: &Approver,
        now: u64,
    ) -> Result<Option<Result<(), Refusal>>, StoreError> {
        let key = self.keys.pending(&rejected.key);
        let Some(raw) = self.get(&key).await? else {
            return Ok(Some(Err(Refusal::NoSuchRequest)));
        };
        let mut p: Pending = parse(&raw)?;
        if let Err(refusal) = p.admit_rejection(who, &rejected.reason, now) {
            return Ok(Some(Err(refusal)));
        }
        p.rejected = Some((rejected.approver.clone(), rejected.reason.clone()));
        let value = json(&p)?;
        let written = self
            .cas(&key, Some(&raw), (&value, pending_ttl(&p, None, now)), None)
            .await?;
        Ok(written.then_some(Ok(())))
    }

    async fn use_token_once(
        &self,
        key: &str,
        binding: &Binding,
        now: u64,
    ) -> Result<Option<Result<(), Refusal>>, StoreError> {
        let Some(raw) = self.get(key).await? else {
            return Ok(Some(Err(Refusal::TokenUnknown)));
        };
        let mut token: Token = parse(&raw)?;
        if let Err(refusal) = token.admit(binding, now) {
            return Ok(Some(Err(refusal)));
        }
        token.used = true;
        let written = self.cas(key, Some(&raw), (&json(&token)?, 0), None).await?;
        Ok(written.then_some(Ok(())))
    }

    /// Marks one pending call cancelled, or one token revoked, if `scope` covers it.
    async fn stop_one(
        &self,
        key: &str,
        kill: &KillSwitch,
        pending: bool,
    ) -> Result<(), StoreError> {
        for _ in 0..CAS_ATTEMPTS {
            let Some(raw) = self.get(key).await? else {
                return Ok(());
            };
            let value = if pending {
                let mut p: Pending = parse(&raw)?;
                if !kill.scope.covers(&p.binding) || p.cancelled.is_some() {
                    return Ok(());
                }
                p.cancelled = Some((kill.by.clone(), kill.reason.clone()));
                json(&p)?
            } else {
                let mut t: Token = parse(&raw)?;
                if !kill.scope.covers(&t.binding) || t.used {
                    return Ok(());
                }
                t.revoked = true;
                json(&t)?
            };
            if self.cas(key, Some(&raw), (&value, 0), None).await? {
                return Ok(());
            }
        }
        Err(Self::contention(key))
    }
}

/// Runs a compare-and-set step until it writes or refuses.
macro_rules! retry {
    ($key:expr, $step:expr) => {{
        let mut outcome = None;
        for _ in 0..CAS_ATTEMPTS {
            if let Some(done) = $step.await? {
                outcome = Some(done);
                break;
            }
        }
        match outcome {
            Some(done) => Ok(done),
            None => Err(Inner::contention(&$key)),
        }
    }};
}

#[async_trait::async_trait]
impl Store for RedisStore {
    async fn consume(
        &self,
        tenant: &str,
        key: &str,
        limit: u64,
        window_ms: u64,
        now: u64,
    ) -> Result<bool, StoreError> {
        let i = &self.inner;
        let unit = i.units.fetch_add(1, Ordering::Relaxed);
        let member = format!("{now}:{}:{unit}", i.nonce);
        let mut call = i.consume.prepare_invoke();
        call.key(i.keys.budget(tenant, key))
            .arg(now)
            .arg(window_ms)
            .arg(limit)
            .arg(member)
            .arg(window_ms.saturating_add(WINDOW_SLACK_MS));
        let r: redis::RedisResult<i64> = call.invoke_async(&mut i.conn()).await;
        Ok(i.answered(r)? == 1)
    }

    async fn hold(&self, request: &ApprovalRequested, who: Subject<'_>, now: u64) -> Admitted<()> {
        if self.inner.killed(who).await? {
            return Ok(Err(Refusal::KillSwitch));
        }
        retry!(
            self.inner.keys.pending(&request.key),
            self.inner.hold_once(request, now)
        )
    }

    async fn approve(
        &self,
        grant: &ApprovalGranted,
        who: &Approver,
        write: bool,
        token_digest: &str,
        sealed: &str,
        now: u64,
    ) -> Admitted<Option<TokenIssued>> {
        let step = || {
            self.inner
                .approve_once(grant, who, write, token_digest, sealed, now)
        };
        retry!(self.inner.keys.pending(&grant.key), step())
    }

    async fn reject(&self, rejected: &ApprovalRejected, who: &Approver, now: u64) -> Admitted<()> {
        let step = || self.inner.reject_once(rejected, who, now);
        retry!(self.inner.keys.pending(&rejected.key), step())
    }

    async fn use_token(
        &self,
        used: &TokenUsed,
        binding: &Binding,
        who: Subject<'_>,
        now: u64,
    ) -> Admitted<()> {
        if self.inner.killed(who).await? {
            return Ok(Err(Refusal::KillSwitch));
        }
        let key = self.inner.keys.token(&used.key.tenant, &used.token_digest);
        retry!(key, self.inner.use_token_once(&key, binding, now))
    }

    async fn kill_switch(&self, kill: &KillSwitch) -> Result<(), StoreError> {
        let i = &self.inner;
        let name = field(&kill.scope);
        let mut pipe = redis::pipe();
        if kill.engaged {
            pipe.cmd("HSET").arg(i.keys.kill()).arg(&name).arg(1);
        } else {
            pipe.cmd("HDEL").arg(i.keys.kill()).arg(&name);
        }
        let sign = if kill.engaged { "+" } else { "-" };
        pipe.cmd("PUBLISH")
            .arg(i.keys.channel())
            .arg(format!("{sign}{name}"));
        let r: redis::RedisResult<()> = pipe.query_async(&mut i.conn()).await;
        i.answered(r)?;
        i.refresh().await?;
        if !kill.engaged {
            return Ok(());
        }
        let tenant = kill.scope.tenant.as_deref();
        for key in i.scan(&i.keys.pattern(tenant, "pending")).await? {
            i.stop_one(&key, kill, true).await?;
        }
        for key in i.scan(&i.keys.pattern(tenant, "token")).await? {
            i.stop_one(&key, kill, false).await?;
        }
        Ok(())
    }

    async fn killed(&self, who: Subject<'_>) -> Result<bool, StoreError> {
        self.inner.killed(who).await
    }

    async fn kill_scopes(&self) -> Result<Vec<KillScope>, StoreError> {
        self.inner.scopes().await
    }

    async fn pending(&self, key: &CallKey) -> Result<Option<Pending>, StoreError> {
        match self.inner.get(&self.inner.keys.pending(key)).await? {
            Some(raw) => Ok(Some(parse(&raw)?)),
            None => Ok(None),
        }
    }

    async fn pending_state(
        &self,
        key: &CallKey,
        now: u64,
    ) -> Result<Option<PendingState>, StoreError> {
        let Some(p) = self.pending(key).await? else {
            return Ok(None);
        };
        let token = self.inner.token_of(&p).await?;
        Ok(Some(p.state(token.as_ref(), now)))
    }

    async fn waiting(&self, now: u64) -> Result<Vec<Pending>, StoreError> {
        let i = &self.inner;
        let mut out = Vec::new();
        for key in i.scan(&i.keys.pattern(None, "pending")).await? {
            let Some(raw) = i.get(&key).await? else {
                continue;
            };
            let p: Pending = parse(&raw)?;
            // A call with a token is never waiting, whatever the token's state.
            if p.token.is_none() && p.state(None, now) == PendingState::Waiting {
                out.push(p);
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    async fn sealed_token(
        &self,
        key: &CallKey,
        digest: &str,
    ) -> Result<Option<String>, StoreError> {
        let raw = self
            .inner
            .get(&self.inner.keys.token(&key.tenant, digest))
            .await?;
        match raw {
            Some(raw) => Ok(parse::<Token>(&raw)?.sealed),
            None => Ok(None),
        }
    }

    async fn token_used(&self, key: &CallKey, digest: &str) -> Result<bool, StoreError> {
        let raw = self
            .inner
            .get(&self.inner.keys.token(&key.tenant, digest))
            .await?;
        match raw {
            Some(raw) => {
                let t: Token = parse(&raw)?;
                Ok(t.used && !t.revoked)
            }
            None => Ok(false),
        }
    }

    async fn reserve_lease(&self, key: &CallKey, holder: &LeaseHolder) -> Result<bool, StoreError> {
        let i = &self.inner;
        let value = format!("r:{}", json(holder)?);
        let mut cmd = redis::cmd("SET");
        cmd.arg(i.keys.lease(key)).arg(value).arg("NX");
        cmd.arg("PX").arg(RESERVATION_TTL_MS);
        let r: redis::RedisResult<Option<String>> = cmd.query_async(&mut i.conn()).await;
        Ok(i.answered(r)?.is_some())
    }

    async fn open_lease(
        &self,
        key: &CallKey,
        holder: &LeaseHolder,
        now: u64,
    ) -> Result<(), StoreError> {
        let i = &self.inner;
        let deadline = holder.expires_at.unwrap_or(now);
        let ttl = deadline.saturating_sub(now).saturating_add(LEASE_SLACK_MS);
        let member = json(&(&key.tenant, &key.id))?;
        let mut pipe = redis::pipe();
        pipe.atomic();
        pipe.cmd("SET")
            .arg(i.keys.lease(key))
            .arg(format!("o:{}", json(holder)?))
            .arg("PX")
            .arg(ttl)
            .ignore();
        pipe.cmd("ZADD")
            .arg(i.keys.lease_deadlines())
            .arg(deadline)
            .arg(member)
            .ignore();
        let r: redis::RedisResult<()> = pipe.query_async(&mut i.conn()).await;
        i.answered(r)
    }

    async fn release_lease(&self, key: &CallKey) -> Result<(), StoreError> {
        self.inner.take(key, "r:").await.map(|_| ())
    }

    async fn lease(&self, key: &CallKey) -> Result<Option<LeaseHolder>, StoreError> {
        let raw = self.inner.get(&self.inner.keys.lease(key)).await?;
        match raw.as_deref().and_then(|v| v.strip_prefix("o:")) {
            Some(holder) => Ok(Some(parse(holder)?)),
            None => Ok(None),
        }
    }

    async fn take_lease(&self, key: &CallKey) -> Result<bool, StoreError> {
        let taken = self.inner.take(key, "o:").await?;
        if taken {
            // The deadline goes too (were it left, the expiry would find no lease and skip it).
            let member = json(&(&key.tenant, &key.id))?;
            let mut cmd = redis::cmd("ZREM");
            cmd.arg(self.inner.keys.lease_deadlines()).arg(member);
            let r: redis::RedisResult<i64> = cmd.query_async(&mut self.inner.conn()).await;
            self.inner.answered(r)?;
        }
        Ok(taken)
    }

    async fn take_expired_leases(
        &self,
        now: u64,
        max: usize,
    ) -> Result<Vec<(CallKey, u64)>, StoreError> {
        let i = &self.inner;
        let mut call = i.due.prepare_invoke();
        call.key(i.keys.lease_deadlines()).arg(now).arg(max);
        let r: redis::RedisResult<Vec<String>> = call.invoke_async(&mut i.conn()).await;
        let due = i.answered(r)?;
        let mut expired = Vec::new();
        for pair in due.chunks(2) {
            let [member, deadline] = pair else { continue };
            let (tenant, id): (String, String) = parse(member)?;
            let key = CallKey::new(&tenant, &id);
            // Only the caller that takes the lease reports it missing: a
            // result that came in first has taken it already.
            if i.take(&key, "o:").await? {
                expired.push((key, deadline.parse().unwrap_or(now)));
            }
        }
        Ok(expired)
    }

    async fn claim_digest_key(&self, fingerprint: &str) -> Result<Option<String>, StoreError> {
        let i = &self.inner;
        let key = i.keys.digest_key();
        let mut cmd = redis::cmd("SET");
        cmd.arg(&key).arg(fingerprint).arg("NX");
        let set: redis::RedisResult<Option<String>> = cmd.query_async(&mut i.conn()).await;
        if i.answered(set)?.is_some() {
            return Ok(None);
        }
        let seen = i.get(&key).await?;
        Ok(seen.filter(|seen| seen != fingerprint))
    }

    async fn prune(&self, _now: u64) -> Result<(), StoreError> {
        // Every key carries its own TTL.
        Ok(())
    }

    async fn session_change(&self, change: &SessionChange) -> Result<SessionWrite, StoreError> {
        self.inner.session_change(change).await
    }

    async fn session(&self, key: &SessionKey, now: u64) -> Result<SessionRead, StoreError> {
        self.inner.session(key, now).await
    }

    async fn session_lookup(
        &self,
        key: &SessionKey,
        query: &SessionQuery,
        now: u64,
    ) -> Result<SessionLookup, StoreError> {
        self.inner.session_lookup(key, query, now).await
    }

    fn healthy(&self) -> bool {
        self.inner.healthy.load(Ordering::SeqCst)
    }
}
