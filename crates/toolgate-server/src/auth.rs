//! Who is calling: the bearer key (401 without a valid one), its role (403,
//! journaled as `access_denied`, when it is the wrong one) and its scopes:
//! the tenant, env and agent of a request must be within the key's.

use crate::problem::Problem;
use crate::App;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use std::sync::Arc;
use toolgate_engine::Context;
use toolgate_runtime::host::keys::{Change, Key, Role};
use toolgate_runtime::store::{Approver, TenantScope};

/// The authenticated caller.
#[derive(Clone, Debug)]
pub struct Caller(pub Key);

impl FromRequestParts<Arc<App>> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, Problem> {
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let Some(header) = header else {
            return Err(
                Problem::unauthorized("send `authorization: Bearer <key>`").field("authorization")
            );
        };
        let secret = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .unwrap_or("")
            .trim();
        keys_valid(app).await?;
        match app.keys.authenticate_loaded(secret) {
            Some(key) => Ok(Caller(key)),
            None => Err(Problem::unauthorized("unknown or revoked key").field("authorization")),
        }
    }
}

/// Re-reads a changed keys file (one `stat` when it did not change); one
/// that became invalid is logged and journaled (`access_denied`, action
/// `reload keys`) once, and answers 503 to every caller until it is fixed: a
/// hand edit never leaves the last good keys (a revoked one among them) working.
pub async fn keys_valid(app: &App) -> Result<(), Problem> {
    if let Change::Invalid(why) = app.keys.refresh() {
        eprintln!("toolgate: {why}; no key authenticates until it is fixed");
        let file = format!("keys file `{}`", app.keys.path().display());
        if let Err(e) = app
            .host
            .gateway
            .access_denied(&file, "reload keys", &why)
            .await
        {
            eprintln!("toolgate: cannot journal the invalid keys file: {e}");
        }
    }
    match app.keys.loaded() {
        Ok(_) => Ok(()),
        Err(why) => Err(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "keys_invalid",
            format!("{why}; no key authenticates until it is fixed"),
        )),
    }
}

impl Caller {
    /// Its name.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// Requires one of `roles`; otherwise 403, journaled.
    pub async fn require(&self, app: &App, roles: &[Role], action: &str) -> Result<(), Problem> {
        if roles.contains(&self.0.role) {
            return Ok(());
        }
        let want: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
        let why = format!(
            "a `{}` key cannot {action}; it needs a `{}` key",
            self.0.role.as_str(),
            want.join("` or `")
        );
        Err(self.deny(app, action, why).await)
    }

    /// Journals a refusal of this caller and returns the 403 to answer with
    /// (a 503 if the journal cannot record it).
    pub async fn deny(&self, app: &App, action: &str, why: String) -> Problem {
        let caller = format!("{} ({})", self.0.name, self.0.role.as_str());
        if let Err(e) = app.host.gateway.access_denied(&caller, action, &why).await {
            return Problem::from(e);
        }
        Problem::forbidden(why)
    }

    /// Requires the trusted context (and agent) to be within the key's scopes; otherwise 403, journaled.
    pub async fn within(
        &self,
        app: &App,
        agent: &str,
        ctx: &Context,
        action: &str,
    ) -> Result<(), Problem> {
        let key = &self.0;
        let wrong = if !key.allows_tenant(&ctx.tenant) {
            Some((
                "context.tenant",
                format!("key `{}` may not act for tenant `{}`", key.name, ctx.tenant),
            ))
        } else if !key.allows_env(&ctx.env) {
            Some((
                "context.env",
                format!("key `{}` may not act in env `{}`", key.name, ctx.env),
            ))
        } else if !key.allows_agent(agent) {
            Some((
                "agent",
                format!("key `{}` may not speak for agent `{agent}`", key.name),
            ))
        } else {
            None
        };
        match wrong {
            None => Ok(()),
            Some((field, why)) => Err(self.deny(app, action, why).await.field(field)),
        }
    }

    /// Requires the key to act for `tenant`, where `None` is every tenant
    /// (a global kill switch, a policy reload, the keys, the metrics): a key
    /// limited to some tenants is refused those; otherwise 403, journaled.
    pub async fn for_tenant(
        &self,
        app: &App,
        tenant: Option<&str>,
        action: &str,
    ) -> Result<(), Problem> {
        let key = &self.0;
        let why = match tenant {
            Some(t) if key.allows_tenant(t) => return Ok(()),
            None if key.tenants.is_empty() => return Ok(()),
            Some(t) => format!("key `{}` may not act for tenant `{t}`", key.name),
            None => format!(
                "key `{}` is limited to tenants `{}`: it cannot {action}, which acts for every tenant",
                key.name,
                key.tenants.join("`, `")
            ),
        };
        Err(self.deny(app, action, why).await.field("tenant"))
    }

    /// The tenant a call id belongs to: the key's one tenant, or the
    /// `tenant` parameter, which must be within the key's tenants.
    pub async fn tenant(
        &self,
        app: &App,
        given: Option<&str>,
        action: &str,
    ) -> Result<String, Problem> {
        let key = &self.0;
        match (given, key.tenants.as_slice()) {
            (Some(t), _) if key.allows_tenant(t) => Ok(t.to_string()),
            (Some(t), _) => {
                let why = format!("key `{}` may not act for tenant `{t}`", key.name);
                Err(self.deny(app, action, why).await.field("tenant"))
            }
            (None, [only]) => Ok(only.clone()),
            (None, _) => Err(Problem::bad(
                "tenant",
                "this key has more than one tenant: give `?tenant=`",
            )),
        }
    }

    /// The approver this key is: its name, groups and tenants, never anything from a body.
    pub fn approver(&self) -> Approver {
        let key = &self.0;
        Approver {
            name: key.name.clone(),
            groups: key.groups.clone(),
            tenants: if key.tenants.is_empty() {
                TenantScope::Any
            } else {
                TenantScope::Only(key.tenants.clone())
            },
        }
    }
}
