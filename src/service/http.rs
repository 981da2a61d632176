//! The accept loop of both HTTP servers (the starting answers and the service proper): what
//! `axum::serve` does, plus the bounds it cannot be given. A client that sends nothing, or
//! stops halfway through a request's head, would otherwise hold its connection for good, and
//! a graceful stop waits for every connection: such a client kept a start from ever taking
//! over, and a SIGTERM from ever stopping the service.

use axum::serve::Listener;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

/// How long a client may take to send a request's line and headers (HTTP/1). Clients send
/// them in one write; hyper's default of 30 s would make a stop wait that long for one that
/// never finishes.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `app` on `listener` until `shutdown` resolves; then stops accepting, lets requests
/// in flight finish, and after `drain` closes the connections still open.
pub async fn serve(
    mut listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            // axum's accept: it retries past a failed accept (EMFILE waits a second).
            accepted = Listener::accept(&mut listener) => accepted,
            () = &mut shutdown => break,
        };
        let (builder, app, watcher) = (builder.clone(), app.clone(), graceful.watcher());
        connections.spawn(async move {
            // hyper's protocol sniff waits for the first bytes with no deadline of its own.
            if !ledger_store::node::spoke_in_time(&stream).await {
                return;
            }
            let connection = builder.serve_connection_with_upgrades(
                TokioIo::new(stream),
                TowerToHyperService::new(app),
            );
            if let Err(error) = watcher.watch(connection).await {
                tracing::trace!(%error, "connection ended");
            }
        });
        // Reap the connections that ended, so that the set holds only open ones.
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            open = connections.len(),
            "HTTP connections still open after the drain; closing them"
        );
    }
    connections.shutdown().await;
}
