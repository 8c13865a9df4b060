//! `--store`: where the gateway's state lives. `memory` (the default) keeps it
//! in this process, rebuilt from the journal on restart; a `redis://` or
//! `rediss://` URL puts it in Redis, shared by every replica on it (each with
//! its own journal and replica id). Every front door that takes `--store`
//! (`policyc serve`, `policyc mcp-proxy`) opens it through [`open_store`].

#[cfg(feature = "redis")]
use crate::store::redis::{RedisConfig, RedisDown, RedisStore};
use crate::store::Store;
use std::path::Path;
use std::sync::Arc;
#[cfg(feature = "redis")]
use std::time::Duration;
use thiserror::Error;

/// The store flags, as given.
#[derive(Clone, Debug, Default)]
pub struct StoreSettings {
    /// `--store`: `memory` or a Redis URL. Default `memory`.
    pub url: Option<String>,
    /// `--store-prefix`. Default `toolgate`.
    pub prefix: Option<String>,
    /// `--redis-down`: `deny-all` (default) or `reads-only`.
    pub down: Option<String>,
    /// `--replica-id`. Default: a random id kept in `DATA/replica.id`.
    pub replica: Option<String>,
}

/// What [`open_store`] opened.
#[derive(Default)]
pub struct Opened {
    /// The shared store; `None`: the embedded store rebuilt from the journal.
    pub store: Option<Arc<dyn Store>>,
    /// The replica id written into every record (`None` with the embedded
    /// store unless `--replica-id` was given).
    pub replica: Option<String>,
}

/// Why the store could not be opened.
#[derive(Debug, Error, miette::Diagnostic)]
pub enum StoreOpenError {
    /// A flag is wrong.
    #[error("{0}")]
    #[diagnostic(code(toolgate::server::store))]
    Config(String),
}

/// The default key prefix.
pub const DEFAULT_PREFIX: &str = "toolgate";

/// How long a replica waits for Redis to connect or answer.
#[cfg(feature = "redis")]
const REDIS_TIMEOUT: Duration = Duration::from_millis(500);

/// Opens the store the settings name; `data` is the replica's data
/// directory (where its id is kept).
pub async fn open_store(settings: &StoreSettings, data: &Path) -> Result<Opened, StoreOpenError> {
    let url = settings.url.as_deref().unwrap_or("memory");
    let down = match settings.down.as_deref() {
        None | Some("deny-all") => Down::DenyAll,
        Some("reads-only") => Down::ReadsOnly,
        Some(other) => {
            return Err(StoreOpenError::Config(format!(
                "`--redis-down` is `deny-all` or `reads-only`, not `{other}`"
            )))
        }
    };
    if url == "memory" {
        return Ok(Opened {
            store: None,
            replica: settings.replica.clone(),
        });
    }
    if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
        return Err(StoreOpenError::Config(format!(
            "`--store` is `memory` or a `redis://` or `rediss://` URL, not `{}`",
            redact(url)
        )));
    }
    open_redis(url, settings, down, data).await
}

/// `--redis-down`, parsed before the store is known.
enum Down {
    DenyAll,
    ReadsOnly,
}

#[cfg(not(feature = "redis"))]
async fn open_redis(
    url: &str,
    _: &StoreSettings,
    _: Down,
    _: &Path,
) -> Result<Opened, StoreOpenError> {
    Err(StoreOpenError::Config(format!(
        "`--store {}`: this build has no Redis store (toolgate-runtime's `redis` feature)",
        redact(url)
    )))
}

#[cfg(feature = "redis")]
async fn open_redis(
    url: &str,
    settings: &StoreSettings,
    down: Down,
    data: &Path,
) -> Result<Opened, StoreOpenError> {
    let down = match down {
        Down::DenyAll => RedisDown::DenyAll,
        Down::ReadsOnly => RedisDown::ReadsOnly,
    };
    // rustls needs one process-wide crypto provider for `rediss://`.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = RedisConfig {
        url: url.to_string(),
        prefix: settings
            .prefix
            .clone()
            .unwrap_or_else(|| DEFAULT_PREFIX.into()),
        down,
        timeout: REDIS_TIMEOUT,
    };
    let store = RedisStore::open(config)
        .await
        .map_err(|e| StoreOpenError::Config(e.to_string()))?;
    let replica = match &settings.replica {
        Some(id) => id.clone(),
        None => replica_id(data)?,
    };
    Ok(Opened {
        store: Some(Arc::new(store)),
        replica: Some(replica),
    })
}

/// A URL with its password replaced, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

#[cfg(feature = "redis")]
/// This replica's id: kept in `DATA/replica.id`, made (random) on first start.
fn replica_id(data: &Path) -> Result<String, StoreOpenError> {
    let path = data.join("replica.id");
    let io =
        |e: std::io::Error| StoreOpenError::Config(format!("replica id `{}`: {e}", path.display()));
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => return Ok(id.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    let token =
        crate::gateway::random_token().map_err(|e| StoreOpenError::Config(e.to_string()))?;
    let id = format!("r-{}", token.get(..12).unwrap_or(&token));
    std::fs::create_dir_all(data).map_err(io)?;
    std::fs::write(&path, format!("{id}\n")).map_err(io)?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            redact("redis://app:s3cret@db:6379/0"),
            "redis://***@db:6379/0"
        );
        assert_eq!(redact("redis://db:6379"), "redis://db:6379");
    }
}
