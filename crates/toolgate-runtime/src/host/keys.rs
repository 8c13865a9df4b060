//! API keys: `keys.toml` holds each key's name, role, scopes and the SHA-256
//! of its secret (never the secret). Bearer tokens are compared in constant
//! time; the server re-reads the file when it changes (checked per request),
//! and a file that became invalid authenticates nobody until it is fixed.
//! A key carries only the scopes its role enforces (see [`Key::check_scopes`]).

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;
use subtle::ConstantTimeEq as _;
use thiserror::Error;

/// What a key may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// An agent's service: `/v1/decide` and `/v1/calls` within its tenants, envs and agents.
    Service,
    /// A human approver: `/v1/approvals`, as the key's name, groups and tenants.
    Approver,
    /// An operator: kill switch, policy reload, audit, metrics, key listing.
    Operator,
}

impl Role {
    /// `service`, `approver` or `operator`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Service => "service",
            Role::Approver => "approver",
            Role::Operator => "operator",
        }
    }
}

/// One key as stored (and listed, without its hash).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Key {
    /// Its name (an approver's identity).
    pub name: String,
    /// Its role.
    pub role: Role,
    /// The tenants it may act for; empty: every tenant.
    #[serde(default)]
    pub tenants: Vec<String>,
    /// The envs it may act in (service and approver keys); empty: every env.
    #[serde(default)]
    pub envs: Vec<String>,
    /// The agents it may speak for (service keys) or approve for (approver keys); empty: every agent.
    #[serde(default)]
    pub agents: Vec<String>,
    /// The approver's groups (approver keys only).
    #[serde(default)]
    pub groups: Vec<String>,
    /// When it was created (ms since the epoch).
    #[serde(default)]
    pub created_at: u64,
    /// SHA-256 (hex) of the secret.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub sha256: String,
}

impl Key {
    /// Whether the key may act for `tenant`.
    pub fn allows_tenant(&self, tenant: &str) -> bool {
        self.tenants.is_empty() || self.tenants.iter().any(|t| t == tenant)
    }

    /// Whether the key may act in `env`.
    pub fn allows_env(&self, env: &str) -> bool {
        self.envs.is_empty() || self.envs.iter().any(|e| e == env)
    }

    /// Whether the key may speak for `agent`.
    pub fn allows_agent(&self, agent: &str) -> bool {
        self.agents.is_empty() || self.agents.iter().any(|a| a == agent)
    }

    /// Refuses a scope its role does not enforce: a service key has no
    /// groups; an operator key has no envs, agents or groups (an operator
    /// acts for whole tenants). Approver keys take every scope.
    pub fn check_scopes(&self) -> Result<(), KeyError> {
        let given = |flag: &'static str, v: &[String]| (!v.is_empty()).then_some(flag);
        let wrong = match self.role {
            Role::Service => given("--groups", &self.groups),
            Role::Approver => None,
            Role::Operator => given("--envs", &self.envs)
                .or(given("--agents", &self.agents))
                .or(given("--groups", &self.groups)),
        };
        match wrong {
            None => Ok(()),
            Some(scope) => Err(KeyError::Scope {
                name: self.name.clone(),
                role: self.role.as_str(),
                scope,
            }),
        }
    }

    /// Whether the key may act on a call of `agent` in `tenant` and `env`.
    pub fn allows_call(&self, tenant: &str, env: &str, agent: &str) -> bool {
        self.allows_tenant(tenant) && self.allows_env(env) && self.allows_agent(agent)
    }

    /// The key without its hash, for listing.
    pub fn public(&self) -> Key {
        Key {
            sha256: String::new(),
            ..self.clone()
        }
    }
}

/// The keys file.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct KeyFile {
    /// Every key.
    #[serde(default, rename = "key")]
    pub keys: Vec<Key>,
}

/// Key file errors.
#[derive(Debug, Error, miette::Diagnostic)]
pub enum KeyError {
    /// The file could not be read or written.
    #[error("keys file `{path}`: {why}")]
    #[diagnostic(code(toolgate::server::keys_io))]
    Io {
        /// The file.
        path: String,
        /// Why.
        why: String,
    },
    /// The file is not valid.
    #[error("keys file `{path}` is not valid: {why}")]
    #[diagnostic(code(toolgate::server::keys_invalid))]
    Invalid {
        /// The file.
        path: String,
        /// Why.
        why: String,
    },
    /// A key with this name exists.
    #[error("a key named `{0}` exists already")]
    #[diagnostic(
        code(toolgate::server::key_exists),
        help("revoke it first, or pick another name")
    )]
    Exists(String),
    /// No key with this name.
    #[error("no key named `{0}`")]
    #[diagnostic(code(toolgate::server::no_such_key))]
    NoSuchKey(String),
    /// A key name must be non-empty, without control characters.
    #[error("invalid key name `{0}`")]
    #[diagnostic(code(toolgate::server::key_name))]
    Name(String),
    /// A scope the key's role does not enforce.
    #[error("key `{name}`: a `{role}` key takes no `{scope}`: nothing would enforce it")]
    #[diagnostic(
        code(toolgate::server::key_scope),
        help("services take `--tenants`, `--envs`, `--agents`; approvers also `--groups`; operators only `--tenants`")
    )]
    Scope {
        /// The key.
        name: String,
        /// Its role.
        role: &'static str,
        /// The flag of the scope.
        scope: &'static str,
    },
    /// No randomness for the secret.
    #[error("no randomness: {0}")]
    #[diagnostic(code(toolgate::server::random))]
    Random(String),
}

fn io(path: &Path, e: impl std::fmt::Display) -> KeyError {
    KeyError::Io {
        path: path.display().to_string(),
        why: e.to_string(),
    }
}

/// SHA-256 (hex) of a secret.
pub fn hash_secret(secret: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let d = Sha256::digest(secret.as_bytes());
    let mut out = String::with_capacity(64);
    for b in d {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 15)]));
    }
    out
}

/// Reads a keys file; a missing file has no keys. A key with a scope its
/// role does not enforce makes the file invalid.
pub fn read(path: &Path) -> Result<KeyFile, KeyError> {
    let file = parse(path)?;
    for key in &file.keys {
        key.check_scopes().map_err(|e| KeyError::Invalid {
            path: path.display().to_string(),
            why: e.to_string(),
        })?;
    }
    Ok(file)
}

/// Parses a keys file without checking scopes (so `revoke` can remove a bad key).
fn parse(path: &Path) -> Result<KeyFile, KeyError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(KeyFile::default()),
        Err(e) => return Err(io(path, e)),
    };
    toml::from_str(&text).map_err(|e| KeyError::Invalid {
        path: path.display().to_string(),
        why: e.to_string(),
    })
}

/// Writes a keys file whole (a temporary file renamed over it), readable by its owner only.
pub fn write(path: &Path, file: &KeyFile) -> Result<(), KeyError> {
    let text = toml::to_string(file).map_err(|e| io(path, e))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| io(path, e))?;
    }
    let tmp = path.with_extension("toml.tmp");
    let header =
        "# Toolgate API keys: managed by `policyc keys`; only SHA-256 hashes of secrets.\n";
    std::fs::write(&tmp, format!("{header}{text}")).map_err(|e| io(&tmp, e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let perms = std::fs::Permissions::from_mode(0o600);
        std::fs::set_permissions(&tmp, perms).map_err(|e| io(&tmp, e))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| io(path, e))
}

/// Adds a key (its `sha256` is set here) and returns its secret, which is stored nowhere.
pub fn add(path: &Path, mut key: Key) -> Result<String, KeyError> {
    if key.name.trim().is_empty() || key.name.chars().any(char::is_control) {
        return Err(KeyError::Name(key.name));
    }
    key.check_scopes()?;
    let mut file = read(path)?;
    if file.keys.iter().any(|k| k.name == key.name) {
        return Err(KeyError::Exists(key.name));
    }
    let token = crate::gateway::random_token().map_err(|e| KeyError::Random(e.to_string()))?;
    let secret = format!("tg_{}_{token}", key.role.as_str());
    key.sha256 = hash_secret(&secret);
    file.keys.push(key);
    write(path, &file)?;
    Ok(secret)
}

/// Removes a key by name.
pub fn revoke(path: &Path, name: &str) -> Result<(), KeyError> {
    let mut file = parse(path)?;
    let before = file.keys.len();
    file.keys.retain(|k| k.name != name);
    if file.keys.len() == before {
        return Err(KeyError::NoSuchKey(name.to_string()));
    }
    write(path, &file)
}

/// The keys a server checks callers against, re-read when the file changes.
pub struct Keyring {
    path: PathBuf,
    cache: RwLock<Cached>,
}

/// The keys as last read, or why the file is not valid (then nobody authenticates).
type Loaded = Result<Arc<Vec<Key>>, String>;

#[derive(Clone)]
struct Cached {
    stamp: Option<(SystemTime, u64)>,
    keys: Loaded,
}

/// What re-reading a changed keys file found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// The file did not change.
    Same,
    /// It changed and is valid: its keys are the keys now.
    Loaded,
    /// It changed and is not valid (why): no key authenticates until it is fixed.
    Invalid(String),
}

impl Keyring {
    /// A keyring over `path` (read now; an invalid file is an error).
    pub fn open(path: PathBuf) -> Result<Keyring, KeyError> {
        let keys = read(&path)?.keys;
        let ring = Keyring {
            cache: RwLock::new(Cached {
                stamp: stamp(&path),
                keys: Ok(Arc::new(keys)),
            }),
            path,
        };
        Ok(ring)
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Re-reads the file when its time or size changed; says what it found,
    /// once per change (the caller reports an invalid file).
    pub fn refresh(&self) -> Change {
        let now = stamp(&self.path);
        if self.cached().stamp == now {
            return Change::Same;
        }
        let mut w = self.cache.write().unwrap_or_else(|p| p.into_inner());
        if w.stamp == now {
            return Change::Same;
        }
        let (keys, change) = match read(&self.path) {
            Ok(f) => (Ok(Arc::new(f.keys)), Change::Loaded),
            Err(e) => (Err(e.to_string()), Change::Invalid(e.to_string())),
        };
        *w = Cached { stamp: now, keys };
        change
    }

    fn cached(&self) -> Cached {
        self.cache.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The current keys (re-read when the file changed), or why there are
    /// none: a file that became invalid authenticates nobody.
    pub fn keys(&self) -> Loaded {
        self.refresh();
        self.loaded()
    }

    /// The keys as last read, without looking at the file: for a caller
    /// that has just called [`Keyring::refresh`] (one `stat` per request).
    pub fn loaded(&self) -> Loaded {
        self.cached().keys
    }

    /// The key whose secret is `secret`; none while the file is invalid.
    /// Every key's hash is compared, in constant time, whether or not an
    /// earlier one matched.
    pub fn authenticate(&self, secret: &str) -> Option<Key> {
        self.refresh();
        self.authenticate_loaded(secret)
    }

    /// [`Keyring::authenticate`] against the keys as last read (see [`Keyring::loaded`]).
    pub fn authenticate_loaded(&self, secret: &str) -> Option<Key> {
        let presented = hash_secret(secret);
        let mut found = None;
        for key in self.loaded().ok()?.iter() {
            let same: bool = presented.as_bytes().ct_eq(key.sha256.as_bytes()).into();
            if same && found.is_none() {
                found = Some(key.clone());
            }
        }
        found
    }
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str, role: Role) -> Key {
        Key {
            name: name.into(),
            role,
            tenants: vec!["acme".into()],
            envs: Vec::new(),
            agents: Vec::new(),
            groups: Vec::new(),
            created_at: 0,
            sha256: String::new(),
        }
    }

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tg-keys-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir.join("keys.toml")
    }

    #[test]
    fn the_file_holds_the_hash_and_the_secret_authenticates() {
        let path = temp("hash");
        let secret = add(&path, key("svc", Role::Service)).unwrap();
        assert!(secret.starts_with("tg_service_"));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(&secret));
        assert!(text.contains(&hash_secret(&secret)));
        let ring = Keyring::open(path.clone()).unwrap();
        assert_eq!(ring.authenticate(&secret).unwrap().name, "svc");
        assert!(ring.authenticate("tg_service_wrong").is_none());
        assert!(ring.authenticate("").is_none());
        assert!(matches!(
            add(&path, key("svc", Role::Operator)),
            Err(KeyError::Exists(_))
        ));
        assert!(matches!(
            add(&path, key(" ", Role::Operator)),
            Err(KeyError::Name(_))
        ));
    }

    #[test]
    fn a_keyring_sees_added_and_revoked_keys() {
        let path = temp("reload");
        let first = add(&path, key("a", Role::Service)).unwrap();
        let ring = Keyring::open(path.clone()).unwrap();
        let second = add(&path, key("bb", Role::Approver)).unwrap();
        assert_eq!(ring.authenticate(&second).unwrap().role, Role::Approver);
        revoke(&path, "a").unwrap();
        assert!(ring.authenticate(&first).is_none());
        assert!(matches!(revoke(&path, "a"), Err(KeyError::NoSuchKey(_))));
        // A file that became invalid authenticates nobody, once reported.
        std::fs::write(&path, "key = 5").unwrap();
        assert!(matches!(ring.refresh(), Change::Invalid(_)));
        assert_eq!(ring.refresh(), Change::Same);
        assert!(ring.authenticate(&second).is_none());
        // A scope the role does not enforce is refused, and invalid in the file.
        let mut op = key("op", Role::Operator);
        op.envs = vec!["dev".into()];
        assert!(matches!(add(&path, op), Err(KeyError::Scope { .. })));
    }

    #[test]
    fn empty_scopes_mean_every_one() {
        let mut k = key("s", Role::Service);
        assert!(k.allows_tenant("acme") && !k.allows_tenant("globex"));
        assert!(k.allows_env("prod") && k.allows_agent("any"));
        k.tenants.clear();
        assert!(k.allows_tenant("globex"));
    }
}
