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
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// How long a client may take to send a request's line and headers (HTTP/1). Clients send
/// them in one write; hyper's default of 30 s would make a stop wait that long for one that
/// never finishes.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// What an HTTP/2 client sends first. hyper reads up to its length to tell the protocols
/// apart, with no deadline of its own.
const HTTP2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

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
            if !protocol_told_in_time(&stream).await {
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

/// Whether the client sent, within `HEADER_READ_TIMEOUT`, enough for hyper to tell its
/// protocol (or hung up): one that connects and sends nothing is let go.
async fn protocol_told_in_time(stream: &TcpStream) -> bool {
    let sniff = async {
        let mut first = [0; HTTP2_PREFACE.len()];
        loop {
            let sent = stream.peek(&mut first).await?;
            if sent == 0 || sent == first.len() || !HTTP2_PREFACE.starts_with(&first[..sent]) {
                return Ok::<(), std::io::Error>(());
            }
            // Part of the preface: peeking again at once would see the same bytes.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    matches!(
        tokio::time::timeout(HEADER_READ_TIMEOUT, sniff).await,
        Ok(Ok(()))
    )
}
