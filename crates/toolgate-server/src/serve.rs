//! `policyc serve`: settings (flags over a `toolgate.toml`), the checks
//! before listening (loopback unless TLS or `--insecure-listen`), first keys,
//! the listener (plain, with a header read timeout and a connection cap, or
//! rustls), SIGHUP reloads and the background tasks.

use crate::App;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use toolgate_api::listen::{check_listen, serve_http, HttpLimits, ListenError};
use toolgate_runtime::gateway::Limits;
use toolgate_runtime::host::data::DataDir;
use toolgate_runtime::host::keys::{self, Key, Keyring, Role};
use toolgate_runtime::host::store::StoreSettings;
use toolgate_runtime::host::{shutdown_signal, Host, HostConfig, HostError};
use toolgate_runtime::journal::Fsync;

/// The settings of `policyc serve`; a config file may hold any of them
/// (same names, `snake_case`), flags win.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The policy file.
    pub policy: Option<PathBuf>,
    /// The data directory (journal, digest key, keys). Default `./toolgate-data`.
    pub data: Option<PathBuf>,
    /// Where to listen. Default `127.0.0.1:8181`.
    pub listen: Option<String>,
    /// The keys file. Default `DATA/keys.toml`.
    pub keys: Option<PathBuf>,
    /// A shadow policy decided beside the live one.
    pub shadow_policy: Option<PathBuf>,
    /// TLS certificate chain (PEM).
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    pub tls_key: Option<PathBuf>,
    /// Allow a non-loopback address without TLS.
    pub insecure_listen: Option<bool>,
    /// Largest request body in bytes. Default 1 MiB.
    pub max_body: Option<usize>,
    /// Request timeout in seconds. Default 60.
    pub timeout: Option<u64>,
    /// Requests handled at once. Default 1024.
    pub concurrency: Option<usize>,
    /// Seconds a connection has to send a request's headers. Default 10.
    pub header_timeout: Option<u64>,
    /// Connections open at once. Default 1024.
    pub max_connections: Option<usize>,
    /// `always` (default) or `never`.
    pub fsync: Option<String>,
    /// Seconds a service has to report an allowed call's result before it
    /// is journaled as `result_missing`. Default 300.
    pub result_timeout: Option<u64>,
    /// `memory` (default) or a `redis://` / `rediss://` URL.
    pub store: Option<String>,
    /// Prefix of every Redis key. Default `toolgate`.
    pub store_prefix: Option<String>,
    /// `deny-all` (default) or `reads-only`.
    pub redis_down: Option<String>,
    /// This replica's id. Default: a random id kept in `DATA/replica.id`.
    pub replica_id: Option<String>,
}

impl Settings {
    /// Reads a config file.
    pub fn from_file(path: &Path) -> Result<Settings, ServeError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ServeError::Config(format!("cannot read `{}`: {e}", path.display())))?;
        toml::from_str(&text).map_err(|e| ServeError::Config(format!("`{}`: {e}", path.display())))
    }

    /// `self` with every unset setting taken from `file`.
    pub fn over(self, file: Settings) -> Settings {
        Settings {
            policy: self.policy.or(file.policy),
            data: self.data.or(file.data),
            listen: self.listen.or(file.listen),
            keys: self.keys.or(file.keys),
            shadow_policy: self.shadow_policy.or(file.shadow_policy),
            tls_cert: self.tls_cert.or(file.tls_cert),
            tls_key: self.tls_key.or(file.tls_key),
            insecure_listen: self.insecure_listen.or(file.insecure_listen),
            max_body: self.max_body.or(file.max_body),
            timeout: self.timeout.or(file.timeout),
            concurrency: self.concurrency.or(file.concurrency),
            header_timeout: self.header_timeout.or(file.header_timeout),
            max_connections: self.max_connections.or(file.max_connections),
            fsync: self.fsync.or(file.fsync),
            result_timeout: self.result_timeout.or(file.result_timeout),
            store: self.store.or(file.store),
            store_prefix: self.store_prefix.or(file.store_prefix),
            redis_down: self.redis_down.or(file.redis_down),
            replica_id: self.replica_id.or(file.replica_id),
        }
    }
}

/// Why the server did not start (or stopped).
#[derive(Debug, Error, miette::Diagnostic)]
pub enum ServeError {
    /// A setting is wrong.
    #[error("{0}")]
    #[diagnostic(code(toolgate::server::config))]
    Config(String),
    /// The listen address is not loopback and there is no TLS.
    #[error("refusing to listen on `{0}` without TLS")]
    #[diagnostic(
        code(toolgate::server::insecure_listen),
        help("give `--tls-cert` and `--tls-key`, or `--insecure-listen` if a proxy in front terminates TLS")
    )]
    Insecure(String),
    /// Keys, data or listening failed.
    #[error("{0}")]
    #[diagnostic(code(toolgate::server::start))]
    Start(String),
    /// The host (data, journal, store, policy, gateway) did not open.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Host(#[from] HostError),
}

/// The default data directory.
pub const DEFAULT_DATA: &str = "./toolgate-data";
/// The default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8181";

/// Creates an operator key and a service key when there is no keys file
/// (a first start), so that the first `curl` works; returns their secrets
/// (shown once). A keys file whose keys were all revoked stays empty.
fn first_keys(path: &Path) -> Result<Vec<(String, String)>, ServeError> {
    if path.exists() {
        return Ok(Vec::new());
    }
    let mut made = Vec::new();
    for (name, role) in [("admin", Role::Operator), ("local-service", Role::Service)] {
        let key = Key {
            name: name.into(),
            role,
            tenants: Vec::new(),
            envs: Vec::new(),
            agents: Vec::new(),
            groups: Vec::new(),
            created_at: toolgate_runtime::host::now_ms(),
            sha256: String::new(),
        };
        let secret = keys::add(path, key).map_err(|e| ServeError::Start(e.to_string()))?;
        made.push((name.to_string(), secret));
    }
    Ok(made)
}

/// Runs the server until SIGINT or SIGTERM.
pub async fn run(settings: Settings) -> Result<(), ServeError> {
    let Some(policy_path) = settings.policy.clone() else {
        return Err(ServeError::Config(
            "`--policy FILE` is required (or `policy` in the config file)".into(),
        ));
    };
    let data = DataDir(
        settings
            .data
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA)),
    );
    let listen = settings
        .listen
        .clone()
        .unwrap_or_else(|| DEFAULT_LISTEN.to_string());
    let tls = match (&settings.tls_cert, &settings.tls_key) {
        (Some(c), Some(k)) => Some((c.clone(), k.clone())),
        (None, None) => None,
        _ => {
            return Err(ServeError::Config(
                "`--tls-cert` and `--tls-key` go together".into(),
            ))
        }
    };
    let addr = check_listen(
        &listen,
        tls.is_some(),
        settings.insecure_listen.unwrap_or(false),
    )
    .map_err(|e| match e {
        ListenError::Insecure(a) => ServeError::Insecure(a),
        ListenError::NotAnAddress(a) => ServeError::Config(format!(
            "`--listen {a}` is not an address like `127.0.0.1:8181`"
        )),
    })?;
    let fsync = match settings.fsync.as_deref() {
        None => Fsync::Writes,
        Some(name) => Fsync::from_name(name).ok_or_else(|| {
            ServeError::Config(format!(
                "`fsync` is `always`, `writes` or `never`, not `{name}`"
            ))
        })?,
    };
    let limits = HttpLimits {
        max_body: settings.max_body.unwrap_or(HttpLimits::default().max_body),
        timeout: settings
            .timeout
            .map_or(HttpLimits::default().timeout, Duration::from_secs),
        concurrency: settings
            .concurrency
            .unwrap_or(HttpLimits::default().concurrency)
            .max(1),
        header_timeout: settings
            .header_timeout
            .map_or(HttpLimits::default().header_timeout, Duration::from_secs),
        max_connections: settings
            .max_connections
            .unwrap_or(HttpLimits::default().max_connections),
    };
    if limits.timeout.is_zero()
        || limits.max_body == 0
        || limits.header_timeout.is_zero()
        || limits.max_connections == 0
    {
        return Err(ServeError::Config(
            "`timeout`, `max_body`, `header_timeout` and `max_connections` must be at least 1"
                .into(),
        ));
    }
    let app = start(&settings, &policy_path, &data, fsync, limits).await?;
    let router = crate::router(app.clone(), limits);
    background(app.clone());
    let listener = std::net::TcpListener::bind(addr)
        .map_err(|e| ServeError::Start(format!("cannot listen on `{addr}`: {e}")))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| ServeError::Start(e.to_string()))?;
    let bound = listener
        .local_addr()
        .map_err(|e| ServeError::Start(e.to_string()))?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    banner(&app, &format!("{scheme}://{bound}"), &data)?;
    match tls {
        Some((cert, key)) => serve_tls(listener, router, &cert, &key).await,
        None => serve_plain(listener, router, limits).await,
    }
}

async fn start(
    settings: &Settings,
    policy_path: &Path,
    data: &DataDir,
    fsync: Fsync,
    http: HttpLimits,
) -> Result<Arc<App>, ServeError> {
    let mut limits = Limits::default();
    if let Some(secs) = settings.result_timeout {
        limits.lease_ms = secs.saturating_mul(1000);
    }
    let host = Host::open(HostConfig {
        data: data.0.clone(),
        policy: policy_path.to_path_buf(),
        shadow_policy: settings.shadow_policy.clone(),
        fsync,
        limits,
        store: StoreSettings {
            url: settings.store.clone(),
            prefix: settings.store_prefix.clone(),
            down: settings.redis_down.clone(),
            replica: settings.replica_id.clone(),
        },
    })
    .await?;
    let keys_path = settings.keys.clone().unwrap_or_else(|| data.keys());
    let first = first_keys(&keys_path)?;
    let keys = Keyring::open(keys_path).map_err(|e| ServeError::Start(e.to_string()))?;
    let app = Arc::new(App::new(Arc::new(host), keys, http));
    *FIRST_KEYS.lock().unwrap_or_else(|p| p.into_inner()) = first;
    Ok(app)
}

/// Keys made at this start, shown once in the banner.
static FIRST_KEYS: std::sync::Mutex<Vec<(String, String)>> = std::sync::Mutex::new(Vec::new());

/// Prints where the server listens and a first request to try.
fn banner(app: &App, url: &str, data: &DataDir) -> Result<(), ServeError> {
    let s = app.host.summary();
    let name = s.name.clone().unwrap_or_else(|| "(unnamed)".into());
    println!(
        "toolgate: policy `{name}` ({}) sha256 {}",
        s.file,
        s.sha256.get(..12).unwrap_or("")
    );
    println!(
        "toolgate: data in {} (journal, digest key), keys in {}",
        data.0.display(),
        app.keys.path().display()
    );
    let first = std::mem::take(&mut *FIRST_KEYS.lock().unwrap_or_else(|p| p.into_inner()));
    let mut service = "$TOOLGATE_KEY".to_string();
    for (name, secret) in &first {
        println!("toolgate: created key `{name}` (shown once, store it now): {secret}");
        if name == "local-service" {
            service = secret.clone();
        }
    }
    let agent = s
        .agents
        .first()
        .cloned()
        .unwrap_or_else(|| "my-agent".into());
    let tool = s
        .tools
        .iter()
        .find(|t| t.class == "read")
        .or(s.tools.first())
        .map_or("my.tool".into(), |t| t.name.clone());
    let env = s.envs.first().cloned().unwrap_or_else(|| "dev".into());
    let mut context = serde_json::json!({"tenant": "acme", "env": env});
    for field in &s.context {
        context[field] = serde_json::json!("A1");
    }
    let body = serde_json::json!({"agent": agent, "tool": tool, "args": {}, "context": context});
    println!("try:");
    println!(
        "  curl -s {url}/v1/calls -H 'authorization: Bearer {service}' -H 'content-type: application/json' -d '{body}'"
    );
    println!("toolgate: listening on {url}");
    Ok(())
}

/// The host's background tasks (lease expiry, held calls swept, SIGHUP
/// reloads, counted in `/metrics`), and a check of the keys file every
/// second, so an invalid one is reported even when no request comes.
fn background(app: Arc<App>) {
    let counted = Arc::downgrade(&app);
    app.host.spawn_sweeps();
    app.host.spawn_reload_on_hangup(move |reloaded| {
        if let Some(app) = counted.upgrade() {
            crate::api::admin::count_reload(&app, reloaded);
        }
        match reloaded {
            Ok(s) => eprintln!("toolgate: SIGHUP: loaded `{}` sha256 {}", s.file, s.sha256),
            Err(e) => eprintln!("toolgate: SIGHUP: {e}"),
        }
    });
    let weak = Arc::downgrade(&app);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let Some(app) = weak.upgrade() else { return };
            let _ = crate::auth::keys_valid(&app).await;
        }
    });
}

async fn serve_plain(
    listener: std::net::TcpListener,
    router: axum::Router,
    limits: HttpLimits,
) -> Result<(), ServeError> {
    let listener = tokio::net::TcpListener::from_std(listener)
        .map_err(|e| ServeError::Start(e.to_string()))?;
    serve_http(listener, router, limits, shutdown_signal()).await;
    Ok(())
}

async fn serve_tls(
    listener: std::net::TcpListener,
    router: axum::Router,
    cert: &Path,
    key: &Path,
) -> Result<(), ServeError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
        .await
        .map_err(|e| {
            ServeError::Start(format!(
                "TLS certificate `{}` or key `{}`: {e}",
                cert.display(),
                key.display()
            ))
        })?;
    let handle = axum_server::Handle::new();
    let stopper = handle.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        stopper.graceful_shutdown(Some(Duration::from_secs(5)));
    });
    axum_server::from_tcp_rustls(listener, config)
        .handle(handle)
        .serve(router.into_make_service())
        .await
        .map_err(|e| ServeError::Start(e.to_string()))
}
