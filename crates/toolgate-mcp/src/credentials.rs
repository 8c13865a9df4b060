//! `--credentials creds.toml`: the secrets given to the upstream, chosen by
//! the session's trusted context (tenant, env, `ctx` values), never by
//! anything the model or the upstream says: environment variables for a
//! stdio child, headers for an HTTP upstream. They are never journaled and
//! never reach the client.
//!
//! ```toml
//! [[credential]]
//! tenant = "acme"                 # optional: every tenant when absent
//! env = "prod"                    # optional
//! ctx = { region = "eu" }         # optional: each listed field must match
//! vars = { GITHUB_TOKEN = "..." } # a stdio child's environment
//! headers = { authorization = "Bearer ..." } # an HTTP upstream's headers
//! ```
//!
//! Every entry whose scope matches applies, in file order (a later one wins
//! for the same name). The upstream connection is one per session, so the
//! scope is the session's, not a tool's.
//!
//! A stdio child starts with a cleared environment: only [`BASE_ENV`] and
//! the variables named by `--pass-env` are taken from the proxy's own
//! environment (so `TOOLGATE_KEY` and anything else the proxy was given
//! never reach the upstream unless named), then the matching `vars`.

use crate::config::Trusted;
use crate::connect::Secrets;
use crate::McpError;
use serde::Deserialize;
use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::path::Path;

/// One scoped credential.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    tenant: Option<String>,
    env: Option<String>,
    #[serde(default)]
    ctx: BTreeMap<String, toml::Value>,
    #[serde(default)]
    vars: BTreeMap<String, String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    credential: Vec<Entry>,
}

/// The variables a stdio child gets from the proxy's environment without
/// `--pass-env`: where programs are and how text is read, nothing secret.
pub const BASE_ENV: [&str; 7] = ["PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR"];

/// The credentials file, and what a stdio child takes from the proxy's environment.
#[derive(Clone, Debug, Default)]
pub struct Credentials {
    entries: Vec<Entry>,
    /// From the proxy's environment: [`BASE_ENV`] and `--pass-env`.
    inherited: Vec<(String, String)>,
}

impl Credentials {
    /// Reads `path` (its secrets are not shown in an error).
    pub fn load(path: &Path) -> Result<Credentials, McpError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| McpError::Config(format!("cannot read `{}`: {e}", path.display())))?;
        let file: File = toml::from_str(&text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start].lines().count())
                .unwrap_or(0);
            McpError::Config(format!("`{}` line {line}: {}", path.display(), e.message()))
        })?;
        Ok(Credentials {
            entries: file.credential,
            inherited: Vec::new(),
        })
    }

    /// Takes [`BASE_ENV`] and the variables named in `pass` from the proxy's
    /// environment, as they are now (those that are set).
    pub fn inherit(mut self, pass: &[String]) -> Credentials {
        let names = BASE_ENV
            .iter()
            .map(|n| n.to_string())
            .chain(pass.iter().cloned());
        self.inherited = names
            .filter_map(|name| std::env::var_os(&name).map(|v| (name, v)))
            .filter_map(|(name, v)| Some((name, v.into_string().ok()?)))
            .collect();
        self
    }

    /// The secrets for a session with this trusted context (for a stdio
    /// child: its whole environment).
    pub fn for_scope(&self, trusted: &Trusted) -> Secrets {
        let mut vars: BTreeMap<String, String> = self.inherited.iter().cloned().collect();
        let mut headers = BTreeMap::new();
        for e in self.entries.iter().filter(|e| e.matches(trusted)) {
            vars.extend(e.vars.clone());
            headers.extend(e.headers.clone());
        }
        Secrets {
            env: vars.into_iter().collect(),
            headers: headers.into_iter().collect(),
        }
    }
}

impl Entry {
    fn matches(&self, t: &Trusted) -> bool {
        let same = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        same(&self.tenant, &t.tenant)
            && same(&self.env, &t.env)
            && self.ctx.iter().all(|(k, v)| {
                let want = serde_json::to_value(v).unwrap_or(Json::Null);
                t.fields.get(k) == Some(&want)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn trusted(tenant: &str, region: &str) -> Trusted {
        let mut fields = serde_json::Map::new();
        fields.insert("region".into(), json!(region));
        Trusted {
            agent: "a".into(),
            tenant: tenant.into(),
            env: "prod".into(),
            fields,
            session: None,
        }
    }

    fn creds(text: &str) -> Credentials {
        let file: File = toml::from_str(text).unwrap_or_else(|e| panic!("{e}"));
        Credentials {
            entries: file.credential,
            inherited: Vec::new(),
        }
    }

    #[test]
    fn only_entries_whose_scope_matches_apply_later_ones_winning() {
        let c = creds(
            r#"
[[credential]]
vars = { SHARED = "all", TOKEN = "default" }
[[credential]]
tenant = "acme"
ctx = { region = "eu" }
vars = { TOKEN = "acme-eu" }
headers = { authorization = "Bearer acme" }
[[credential]]
tenant = "globex"
vars = { TOKEN = "globex" }
"#,
        );
        let s = c.for_scope(&trusted("acme", "eu"));
        let token = |s: &Secrets| {
            s.env
                .iter()
                .find(|(k, _)| k == "TOKEN")
                .map(|(_, v)| v.clone())
        };
        assert_eq!(token(&s).as_deref(), Some("acme-eu"));
        assert!(s.env.iter().any(|(k, v)| k == "SHARED" && v == "all"));
        assert_eq!(
            s.headers,
            [("authorization".to_string(), "Bearer acme".to_string())]
        );
        let us = c.for_scope(&trusted("acme", "us"));
        assert_eq!(token(&us).as_deref(), Some("default"));
        assert!(us.headers.is_empty());
        assert_eq!(
            token(&c.for_scope(&trusted("globex", "eu"))).as_deref(),
            Some("globex")
        );
    }

    #[test]
    fn an_unknown_field_is_refused() {
        let parsed: Result<File, _> = toml::from_str("[[credential]]\ntenants = [\"a\"]\n");
        assert!(parsed.is_err());
    }
}
