//! What the service answers while it starts: the listener is bound first, and until the views
//! are up to date (a minute on ten million events with no views stored) a liveness probe gets
//! 200 and everything else 503, instead of a refused connection.

use super::problem::ApiError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::net::SocketAddr;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// The starting answers being served; `stop` ends them.
pub(super) struct Starting {
    stop: oneshot::Sender<()>,
    served: tokio::task::JoinHandle<()>,
}

impl Starting {
    /// Stops taking connections and waits for those open to finish; connections that arrive
    /// meanwhile wait in the listener's backlog for the service proper.
    pub(super) async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.served.await;
    }
}

/// Serves the starting answers on a second handle of `listener`, and gives the first back for
/// the service proper.
pub(super) fn serve(listener: TcpListener) -> std::io::Result<(TcpListener, Starting)> {
    let socket = listener.into_std()?;
    let during_start = TcpListener::from_std(socket.try_clone()?)?;
    let listener = TcpListener::from_std(socket)?;
    let app = axum::Router::new()
        .route("/healthz", get(super::ops::healthz))
        .route("/readyz", get(readyz))
        .fallback(starting)
        // No connection outlives the start: a client would otherwise send its next request
        // on one that closes under it as the service proper takes over.
        .layer(axum::middleware::map_response(close_connection));
    let (stop, stopped) = oneshot::channel::<()>();
    let served = tokio::spawn(async move {
        let shutdown = async {
            let _ = stopped.await;
        };
        if let Err(error) = axum::serve(during_start, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::warn!(%error, "serving while starting");
        }
    });
    Ok((listener, Starting { stop, served }))
}

/// Says where the service will answer, before it can.
pub(super) fn announce(address: SocketAddr) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "ledger: starting on http://{address} (bringing the views up to date)"
    )?;
    out.flush()
}

const STARTING: &str = "the service is starting: it is bringing the views up to date";

async fn readyz() -> Response {
    let body = super::ops::Readiness {
        ready: false,
        views_at: None,
        log_at: None,
        problem: Some(STARTING.to_owned()),
    };
    (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response()
}

async fn close_connection(mut response: Response) -> Response {
    response.headers_mut().insert(
        axum::http::header::CONNECTION,
        axum::http::HeaderValue::from_static("close"),
    );
    response
}

async fn starting() -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "starting", STARTING)
}
