//! The gateway fixture of the runtime's tests (gateway.rs, findings.rs,
//! tamper.rs): a [`Gateway`] that keeps the tools its test gave it, so that
//! `call` and `execute_approved` need no executor argument, and the two halves
//! a test writes, credentials and tools, as one [`Executor`].

#![expect(
    clippy::expect_used,
    reason = "a fixture that cannot open fails the test"
)]

use serde_json::Value as Json;
use std::future::Future;
use toolgate_runtime::gateway::{
    Call, CallOutcome, CompiledPolicy, Executor, Gateway, GatewayError, Services, ToolError,
};

/// A test's credentials: what the gateway loads for a tool within the trusted scope.
pub trait CredentialProvider: Send + Sync {
    /// The credentials for `tool` within `scope`.
    fn load(&self, tool: &str, scope: &[(String, Json)]) -> Result<Json, String>;
}

/// A test's tools: what runs an allowed call.
pub trait ToolExecutor: Send + Sync {
    /// Runs `tool` with `args` and `creds`.
    fn execute(
        &self,
        tool: &str,
        args: &Json,
        creds: &Json,
    ) -> impl Future<Output = Result<Json, String>> + Send;
}

/// The credentials and the tools, as the gateway's [`Executor`].
pub struct Tools<C, X>(pub C, pub X);

#[async_trait::async_trait]
impl<C: CredentialProvider, X: ToolExecutor> Executor for Tools<C, X> {
    fn credentials(&self, tool: &str, scope: &[(String, Json)]) -> Result<Json, ToolError> {
        self.0.load(tool, scope).map_err(Into::into)
    }
    async fn execute(&self, tool: &str, args: &Json, creds: &Json) -> Result<Json, ToolError> {
        self.1.execute(tool, args, creds).await.map_err(Into::into)
    }
}

/// The gateway with the tools these tests run allowed calls with.
pub struct Gw {
    inner: Gateway,
    tools: Box<dyn Executor>,
}

impl std::ops::Deref for Gw {
    type Target = Gateway;
    fn deref(&self) -> &Gateway {
        &self.inner
    }
}

impl Gw {
    /// Opens the gateway; a test whose gateway does not open fails here.
    pub async fn open(
        policy: CompiledPolicy,
        services: Services,
        tools: impl Executor + 'static,
    ) -> Gw {
        let inner = Gateway::open(policy, services).await.expect("gateway");
        Gw {
            inner,
            tools: Box::new(tools),
        }
    }

    /// [`Gateway::call`] with this gateway's tools.
    pub async fn call(&self, call: &Call) -> Result<CallOutcome, GatewayError> {
        self.inner.call(call, self.tools.as_ref()).await
    }

    /// [`Gateway::execute_approved`] with this gateway's tools.
    pub async fn execute_approved(
        &self,
        call: &Call,
        token: &str,
    ) -> Result<CallOutcome, GatewayError> {
        self.inner
            .execute_approved(call, token, self.tools.as_ref())
            .await
    }
}
