//! The plain-HTTP listener of every door (`policyc serve`, `mcp-proxy
//! --listen` and `--admin-listen`): a header read timeout, a cap on open
//! connections, a graceful stop; and the one check of a listen address.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;

/// Limits of the HTTP layer.
#[derive(Clone, Copy, Debug)]
pub struct HttpLimits {
    /// Largest request body (bytes).
    pub max_body: usize,
    /// Longest request.
    pub timeout: Duration,
    /// Requests handled at once (more wait); reads of a call's state have
    /// a budget of their own of this size, half of it for long polls.
    pub concurrency: usize,
    /// How long a connection has to send a request's headers, idle
    /// keep-alive connections too ([`serve_http`]).
    pub header_timeout: Duration,
    /// Connections open at once ([`serve_http`]; more wait to be accepted).
    pub max_connections: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_body: 1024 * 1024,
            timeout: Duration::from_secs(60),
            concurrency: 1024,
            header_timeout: Duration::from_secs(10),
            max_connections: 1024,
        }
    }
}

/// Why an address cannot be listened on.
#[derive(Debug, Error)]
pub enum ListenError {
    /// Not an address.
    #[error("`{0}` is not an address like `127.0.0.1:8181`")]
    NotAnAddress(String),
    /// Not loopback, and neither TLS nor an explicit insecure listen.
    #[error("refusing to listen on `{0}` without TLS")]
    Insecure(String),
}

/// Checks the address: loopback, or TLS, or `insecure`.
pub fn check_listen(listen: &str, tls: bool, insecure: bool) -> Result<SocketAddr, ListenError> {
    let addr: SocketAddr = listen
        .parse()
        .map_err(|_| ListenError::NotAnAddress(listen.to_string()))?;
    if !addr.ip().is_loopback() && !tls && !insecure {
        return Err(ListenError::Insecure(listen.to_string()));
    }
    Ok(addr)
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
