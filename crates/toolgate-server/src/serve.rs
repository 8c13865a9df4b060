//! `policyc serve`: settings (flags over a `toolgate.toml`), the checks
//! before listening (loopback unless TLS or `--insecure-listen`), first keys,
//! the listener (plain, with a header read timeout and a connection cap, or
//! rustls), SIGHUP reloads and the background tasks.

use crate::data::{open_state, DataDir};
use crate::index::Index;
use crate::keys::{self, Key, Keyring, Role};
use crate::{policy, App, HttpLimits};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use thiserror::Error;
use toolgate_runtime::gateway::Limits;
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
    /// The policy did not check clean.
    #[error("policy `{path}` does not check clean:\n{diagnostics}")]
    #[diagnostic(code(toolgate::server::policy), help("run `policyc check {path}`"))]
    Policy {
        /// The file.
        path: String,
        /// Its diagnostics, one per line.
        diagnostics: String,
    },
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
}

/// The default data directory.
pub const DEFAULT_DATA: &str = "./toolgate-data";
/// The default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8181";

fn policy_error(path: &Path, refused: &policy::Refused) -> ServeError {
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
    ServeError::Policy {
        path: path.display().to_string(),
        diagnostics: lines.join("\n"),
    }
}

/// Checks the address: loopback, or TLS, or `insecure`.
pub fn check_listen(listen: &str, tls: bool, insecure: bool) -> Result<SocketAddr, ServeError> {
    let addr: SocketAddr = listen.parse().map_err(|_| {
        ServeError::Config(format!(
            "`--listen {listen}` is not an address like `127.0.0.1:8181`"
        ))
    })?;
    if !addr.ip().is_loopback() && !tls && !insecure {
        return Err(ServeError::Insecure(listen.to_string()));
    }
    Ok(addr)
}

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
            created_at: crate::now_ms(),
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
    )?;
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
    let now = crate::now_ms();
    let loaded = policy::load(policy_path, now).map_err(|r| policy_error(policy_path, &r))?;
    let shadow = match &settings.shadow_policy {
        Some(p) => Some(policy::load(p, now).map_err(|r| policy_error(p, &r))?),
        None => None,
    };
    std::fs::create_dir_all(&data.0)
        .map_err(|e| ServeError::Start(format!("data directory `{}`: {e}", data.0.display())))?;
    let keys_path = settings.keys.clone().unwrap_or_else(|| data.keys());
    let index = Arc::new(Index::default());
    let mut limits = Limits::default();
    if let Some(secs) = settings.result_timeout {
        limits.lease_ms = secs.saturating_mul(1000);
    }
    let store = crate::store::StoreSettings {
        url: settings.store.clone(),
        prefix: settings.store_prefix.clone(),
        down: settings.redis_down.clone(),
        replica: settings.replica_id.clone(),
    };
    let state = crate::store::open_store(&store, &data.0)
        .await
        .map_err(|e| ServeError::Config(e.to_string()))?;
    let gateway = open_state(data, loaded.compiled, fsync, limits, &index, state)
        .await
        .map_err(|e| ServeError::Start(e.to_string()))?;
    let shadow_summary = shadow.map(|s| {
        gateway.set_shadow(Some(s.compiled));
        s.summary
    });
    let first = first_keys(&keys_path)?;
    let keys = Keyring::open(keys_path).map_err(|e| ServeError::Start(e.to_string()))?;
    let app = Arc::new(App {
        gateway: Arc::new(gateway),
        keys,
        index,
        data: data.clone(),
        policy_path: policy_path.to_path_buf(),
        summary: RwLock::new(loaded.summary),
        shadow: RwLock::new(shadow_summary),
        stats: crate::metrics::Stats::default(),
        started_at: now,
        // A long poll answers before the request timeout cuts it.
        max_wait: Duration::from_secs(55).min(http.timeout.saturating_sub(Duration::from_secs(1))),
        reloading: tokio::sync::Mutex::new(()),
    });
    *FIRST_KEYS.lock().unwrap_or_else(|p| p.into_inner()) = first;
    Ok(app)
}

/// Keys made at this start, shown once in the banner.
static FIRST_KEYS: std::sync::Mutex<Vec<(String, String)>> = std::sync::Mutex::new(Vec::new());

/// Prints where the server listens and a first request to try.
fn banner(app: &App, url: &str, data: &DataDir) -> Result<(), ServeError> {
    let s = app.summary();
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

/// Expires leases (`result_missing`) and forgets finished held calls every second;
/// reloads the policy on SIGHUP.
fn background(app: Arc<App>) {
    let ticker = app.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            // An invalid keys file is reported even when no request comes.
            let _ = crate::auth::keys_valid(&ticker).await;
            if let Err(e) = ticker.gateway.expire_leases().await {
                eprintln!("toolgate: cannot journal missing results: {e}");
            }
            let held = ticker.index.held_keys();
            let mut gone = Vec::new();
            for key in held {
                if let Ok(None) = ticker.gateway.pending(&key).await {
                    gone.push(key);
                }
            }
            ticker.index.retain_held(|k| !gone.contains(k));
        }
    });
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            return;
        };
        while hup.recv().await.is_some() {
            match crate::api::admin::reload_policy(&app).await {
                Ok(s) => eprintln!("toolgate: SIGHUP: loaded `{}` sha256 {}", s.file, s.sha256),
                Err(p) => eprintln!("toolgate: SIGHUP: {}", p.detail),
            }
        }
    });
}

async fn shutdown() {
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

async fn serve_plain(
    listener: std::net::TcpListener,
    router: axum::Router,
    limits: HttpLimits,
) -> Result<(), ServeError> {
    let listener = tokio::net::TcpListener::from_std(listener)
        .map_err(|e| ServeError::Start(e.to_string()))?;
    serve_http(listener, router, limits, shutdown()).await;
    Ok(())
}

/// Serves `router` over plain HTTP/1.1 on `listener` until `stop` ends (then
/// stops accepting and gives open requests 5 s), for every plain-HTTP door
/// (`serve`, `mcp-proxy --listen` and `--admin-listen`). A connection has
/// `limits.header_timeout` to send each request's headers, idle keep-alive
/// included, else it is closed; at most `limits.max_connections` are open,
/// more wait in the listen backlog. Half-sent requests cannot pile up.
pub async fn serve_http(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    limits: HttpLimits,
    stop: impl std::future::Future<Output = ()>,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let places = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut stop = std::pin::pin!(stop);
    loop {
        let accepted = tokio::select! {
            () = &mut stop => break,
            accepted = accept(&listener, &places) => accepted,
        };
        let Some((stream, place)) = accepted else {
            continue;
        };
        let service = hyper_util::service::TowerToHyperService::new(router.clone());
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _ = conn.await;
            drop(place);
        });
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), graceful.shutdown()).await;
}

/// One connection, once one of `places` is free; `None` after an accept
/// error (out of descriptors, say), after a short pause so as not to spin.
async fn accept(
    listener: &tokio::net::TcpListener,
    places: &Arc<tokio::sync::Semaphore>,
) -> Option<(tokio::net::TcpStream, tokio::sync::OwnedSemaphorePermit)> {
    let place = places.clone().acquire_owned().await.ok()?;
    match listener.accept().await {
        Ok((stream, _)) => Some((stream, place)),
        Err(_) => {
            tokio::time::sleep(Duration::from_millis(50)).await;
            None
        }
    }
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
        shutdown().await;
        stopper.graceful_shutdown(Some(Duration::from_secs(5)));
    });
    axum_server::from_tcp_rustls(listener, config)
        .handle(handle)
        .serve(router.into_make_service())
        .await
        .map_err(|e| ServeError::Start(e.to_string()))
}
