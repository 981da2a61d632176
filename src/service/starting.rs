//! What the service answers while it starts: the listener is bound first, and until the views
//! are up to date (a minute on ten million events with no views stored) a liveness probe gets
//! 200, a scrape the metrics and how far the fold has to go, and everything else 503, instead
//! of a refused connection.

use super::problem::ApiError;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use ledger_store::EventStore;
use metrics_exporter_prometheus::PrometheusHandle;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// How far the start has come, for `/readyz`, `/metrics` and the log.
#[derive(Clone)]
pub(super) struct StartProgress {
    store: Arc<dyn EventStore>,
    metrics: Option<PrometheusHandle>,
    /// Events the stored views had folded, once they are open.
    stored: Arc<OnceLock<u64>>,
    /// Events folded since.
    folded: Arc<AtomicU64>,
}

impl StartProgress {
    pub(super) fn new(
        store: Arc<dyn EventStore>,
        metrics: Option<PrometheusHandle>,
    ) -> StartProgress {
        StartProgress {
            store,
            metrics,
            stored: Arc::default(),
            folded: Arc::default(),
        }
    }

    /// Events of a log whose last is at `head` that the views have still to fold; known
    /// once they are open.
    fn lag(&self, head: Option<u64>) -> Option<u64> {
        let folded = self.stored.get()? + self.folded.load(Ordering::Relaxed);
        Some(head.map_or(0, |h| h + 1).saturating_sub(folded))
    }

    /// The views are open, folded up to `checkpoint`: from now on the lag is known.
    pub(super) fn views_opened_at(&self, checkpoint: Option<u64>) {
        let _ = self.stored.set(checkpoint.map_or(0, |c| c + 1));
    }

    /// What `catch_up` reports as it goes: kept for `/readyz`, and logged now and then so
    /// that a start of a minute is not a silent one.
    pub(super) fn reporter(&self) -> impl FnMut(u64) {
        let folded = Arc::clone(&self.folded);
        let mut logged = Instant::now();
        move |applied| {
            folded.store(applied, Ordering::Relaxed);
            if logged.elapsed() >= PROGRESS_LOG_EVERY {
                logged = Instant::now();
                tracing::info!(events = applied, "bringing the views up to date");
            }
        }
    }
}

const PROGRESS_LOG_EVERY: Duration = Duration::from_secs(5);
/// How long the service proper waits, once the views are up to date, for the starting
/// answers still being sent; they are immediate, so only a stuck client is cut off.
const STARTING_DRAIN: Duration = Duration::from_secs(1);

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
pub(super) fn serve(
    listener: TcpListener,
    tls: Option<ledger_store::node::NodeTls>,
    progress: StartProgress,
) -> std::io::Result<(TcpListener, Starting)> {
    let socket = listener.into_std()?;
    let during_start = TcpListener::from_std(socket.try_clone()?)?;
    let listener = TcpListener::from_std(socket)?;
    let app = axum::Router::new()
        .route("/healthz", get(super::ops::healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(starting)
        // No connection outlives the start: a client would otherwise send its next request
        // on one that closes under it as the service proper takes over.
        .layer(axum::middleware::map_response(close_connection))
        .with_state(progress);
    let (stop, stopped) = oneshot::channel::<()>();
    let served = tokio::spawn(async move {
        let shutdown = async {
            let _ = stopped.await;
        };
        super::http::serve(during_start, app, tls, shutdown, STARTING_DRAIN).await;
    });
    Ok((listener, Starting { stop, served }))
}

/// Says where the service will answer, before it can.
pub(super) fn announce(address: SocketAddr, scheme: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "ledger: starting on {scheme}://{address} (bringing the views up to date)"
    )?;
    out.flush()
}

const STARTING: &str = "the service is starting: it is bringing the views up to date";

async fn readyz(State(progress): State<StartProgress>) -> Response {
    let folded = progress.folded.load(Ordering::Relaxed);
    let (log_at, problem) = match progress.store.last_position().await {
        // The views are written out after the fold: ten seconds on ten million events.
        Ok(log_at) if progress.lag(log_at) == Some(0) => (
            log_at,
            format!("{STARTING} (every event is folded; the views are being stored)"),
        ),
        Ok(log_at) => (
            log_at,
            format!("{STARTING} ({folded} events folded so far)"),
        ),
        Err(e) => (None, format!("{STARTING}; the log does not answer: {e}")),
    };
    let body = super::ops::Readiness {
        ready: false,
        views_at: None,
        log_at,
        problem: Some(problem),
    };
    (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response()
}

/// The recorder's metrics, `ledger_starting` at 1 and, once the stored views are open, how
/// many events they still have to fold: an operator watching a long start sees it move.
async fn metrics(State(progress): State<StartProgress>) -> Response {
    metrics::gauge!("ledger_starting").set(1.0);
    if let Ok(head) = progress.store.last_position().await {
        if let Some(lag) = progress.lag(head) {
            metrics::gauge!("ledger_projection_lag_events").set(lag as f64);
        }
    }
    super::ops::prometheus_text(progress.metrics.as_ref())
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
