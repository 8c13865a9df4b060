//! What every door opens before it serves: [`Host::open`] lays out the data
//! directory, opens the journal and restores the state from it, opens the
//! store (memory, or Redis with the `redis` feature), checks the digest key
//! against the other replicas', loads the policy (and a shadow), and opens
//! the gateway. [`Host::spawn_sweeps`] runs what a serving gateway needs
//! beside its requests (leases past their deadline journaled
//! `result_missing`, finished holds forgotten), [`Host::spawn_reload_on_hangup`]
//! reloads on SIGHUP, and
//! [`shutdown_signal`] is the one SIGINT/SIGTERM future. `policyc serve` and
//! `policyc mcp-proxy` both start here; neither depends on the other.
//!
//! - [`data`]: the data directory, the only place that opens or reads the journal;
//! - [`store`]: `--store`: the embedded state or Redis, shared by replicas;
//! - [`policy`]: a policy file checked and compiled, and its summary;
//! - [`keys`]: API keys and roles (both doors' listeners use them);
//! - [`index`]: a read-only view of the journal (held calls' arguments, recent outcomes).

pub mod data;
pub mod index;
pub mod keys;
pub mod policy;
pub mod store;

use crate::gateway::{Gateway, GatewayError, Limits};
use crate::journal::Fsync;
use data::{DataDir, DataError};
use index::Index;
use policy::{PolicySummary, Refused};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use store::{StoreOpenError, StoreSettings};
use thiserror::Error;

/// What a door gives [`Host::open`].
#[derive(Clone, Debug)]
pub struct HostConfig {
    /// The data directory (journal, checkpoints, signing key, digest key, keys).
    pub data: PathBuf,
    /// The live policy's file (re-read on reload).
    pub policy: PathBuf,
    /// A candidate policy decided beside the live one.
    pub shadow_policy: Option<PathBuf>,
    /// When journal records are made durable.
    pub fsync: Fsync,
    /// Limits of calls and leases.
    pub limits: Limits,
    /// `--store` and its companions.
    pub store: StoreSettings,
}

/// Why a host did not open.
#[derive(Debug, Error, miette::Diagnostic)]
pub enum HostError {
    /// The policy (or the shadow policy) did not check clean.
    #[error("policy `{path}` does not check clean:\n{diagnostics}")]
    #[diagnostic(code(toolgate::host::policy), help("run `policyc check {path}`"))]
    Policy {
        /// The file.
        path: String,
        /// Its error diagnostics, one per line (`  LINE:COLUMN: message`).
        diagnostics: String,
    },
    /// `--store` or a companion flag is wrong, or the store did not open.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Store(#[from] StoreOpenError),
    /// The data directory, the journal, the digest key or the gateway did not open.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Data(#[from] DataError),
}

/// Why a reload left the old policy serving.
#[derive(Debug, Error)]
pub enum ReloadError {
    /// The new policy does not check clean (journaled as `policy_refused`).
    #[error("`{path}` does not check clean; the old policy keeps serving")]
    Refused {
        /// The file.
        path: String,
        /// Its diagnostics (JSON, as `policyc check --format json` gives them).
        diagnostics: Vec<serde_json::Value>,
    },
    /// The gateway could not record the reload or the refusal.
    #[error(transparent)]
    Gateway(#[from] GatewayError),
}

/// An open gateway with everything around it that a door serves from.
pub struct Host {
    /// The gateway core.
    pub gateway: Arc<Gateway>,
    /// The journal's view for listing.
    pub index: Arc<Index>,
    /// The data directory.
    pub data: DataDir,
    /// The live policy's file (re-read on reload).
    pub policy_path: PathBuf,
    /// When the host opened (ms since the epoch).
    pub started_at: u64,
    summary: RwLock<PolicySummary>,
    shadow: RwLock<Option<PolicySummary>>,
    reloading: tokio::sync::Mutex<()>,
}

impl Host {
    /// Opens the data directory, journal, state, store, digest key, policy
    /// and gateway, in that order; any failure stops the door before it
    /// listens.
    pub async fn open(config: HostConfig) -> Result<Host, HostError> {
        let now = now_ms();
        let loaded = load_policy(&config.policy, now)?;
        let shadow = match &config.shadow_policy {
            Some(p) => Some(load_policy(p, now)?),
            None => None,
        };
        let data = DataDir(config.data.clone());
        let index = Arc::new(Index::default());
        let shared = store::open_store(&config.store, &data.0).await?;
        let gateway = data::open_state(
            &data,
            loaded.compiled,
            config.fsync,
            config.limits,
            &index,
            shared,
        )
        .await?;
        let shadow = shadow.map(|s| {
            gateway.set_shadow(Some(s.compiled));
            s.summary
        });
        Ok(Host {
            gateway: Arc::new(gateway),
            index,
            data,
            policy_path: config.policy,
            started_at: now,
            summary: RwLock::new(loaded.summary),
            shadow: RwLock::new(shadow),
            reloading: tokio::sync::Mutex::new(()),
        })
    }

    /// The live policy's summary.
    pub fn summary(&self) -> PolicySummary {
        self.summary
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// `f` of the live policy's summary, without copying it.
    pub fn with_summary<R>(&self, f: impl FnOnce(&PolicySummary) -> R) -> R {
        f(&self.summary.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// The shadow policy's summary, if there is one.
    pub fn shadow(&self) -> Option<PolicySummary> {
        self.shadow
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Re-reads the policy file and swaps it in (journaled `policy_load`), or
    /// journals `policy_refused` and keeps the old one. One reload at a time.
    pub async fn reload(&self) -> Result<PolicySummary, ReloadError> {
        let _one = self.reloading.lock().await;
        match policy::load(&self.policy_path, now_ms()) {
            Ok(loaded) => {
                self.gateway.reload(loaded.compiled).await?;
                *self.summary.write().unwrap_or_else(|p| p.into_inner()) = loaded.summary.clone();
                Ok(loaded.summary)
            }
            Err(refused) => {
                let texts = refused
                    .diagnostics
                    .iter()
                    .map(|d| d["message"].as_str().unwrap_or("").to_string())
                    .collect();
                self.gateway.refuse_policy(&refused.text, texts).await?;
                Err(ReloadError::Refused {
                    path: self.policy_path.display().to_string(),
                    diagnostics: refused.diagnostics,
                })
            }
        }
    }

    /// Every second: leases past their deadline journaled `result_missing`,
    /// held calls that are no longer waiting dropped from the index. The
    /// task ends when the last `Arc<Host>` is dropped.
    pub fn spawn_sweeps(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let Some(host) = weak.upgrade() else { return };
                host.sweep().await;
            }
        });
    }

    /// On SIGHUP, a reload (`on_reload` hears how it went). Only a door whose
    /// every view of the policy follows [`Host::reload`] asks for it (`serve`;
    /// the MCP proxy's tool list is computed once at start, so it does not).
    pub fn spawn_reload_on_hangup(
        self: &Arc<Self>,
        on_reload: impl Fn(&Result<PolicySummary, ReloadError>) + Send + Sync + 'static,
    ) {
        #[cfg(unix)]
        {
            let weak = Arc::downgrade(self);
            tokio::spawn(async move {
                use tokio::signal::unix::{signal, SignalKind};
                let Ok(mut hup) = signal(SignalKind::hangup()) else {
                    return;
                };
                while hup.recv().await.is_some() {
                    let Some(host) = weak.upgrade() else { return };
                    let reloaded = host.reload().await;
                    on_reload(&reloaded);
                }
            });
        }
        #[cfg(not(unix))]
        let _ = on_reload;
    }

    async fn sweep(&self) {
        if let Err(e) = self.gateway.expire_leases().await {
            eprintln!("toolgate: cannot journal missing results: {e}");
        }
        let mut gone = Vec::new();
        for key in self.index.held_keys() {
            if let Ok(None) = self.gateway.pending(&key).await {
                gone.push(key);
            }
        }
        self.index.retain_held(|k| !gone.contains(k));
    }
}

/// The policy at `path`, checked and compiled, or its errors.
fn load_policy(path: &std::path::Path, now: u64) -> Result<policy::Loaded, HostError> {
    policy::load(path, now).map_err(|r| policy_error(path, &r))
}

fn policy_error(path: &std::path::Path, refused: &Refused) -> HostError {
    let lines: Vec<String> = refused
        .diagnostics
        .iter()
        .filter(|d| d["severity"] == "error")
        .map(|d| {
            format!(
                "  {}:{}: {}",
                d["line"],
                d["column"],
                d["message"].as_str().unwrap_or("")
            )
        })
        .collect();
    HostError::Policy {
        path: path.display().to_string(),
        diagnostics: lines.join("\n"),
    }
}

/// Ends at SIGINT or SIGTERM: the one shutdown future of every door.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// Milliseconds since the epoch.
pub fn now_ms() -> u64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    now.map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
