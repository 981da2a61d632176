//! What operators poll: health, readiness, Prometheus metrics; and, in `--dev` only, the clock.

use super::auth::Principal;
use super::problem::{ApiError, FailureCause, JsonBody};
use super::AppState;
use crate::log_throttle::LogThrottle;
use crate::timers::TimerReport;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use ledger_store::{AllFrom, Direction};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde::{Deserialize, Serialize};
use std::sync::{LazyLock, Mutex, OnceLock};
use std::time::{Duration, Instant};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Histogram buckets in seconds, from a fast append to a slow request.
const LATENCY_BUCKETS_SECONDS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// The process's one metrics recorder (the `metrics` facade allows one per process).
pub fn install_metrics() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets(&LATENCY_BUCKETS_SECONDS)
                .and_then(|b| b.install_recorder())
                .map_err(|e| tracing::warn!(error = %e, "metrics are off"))
                .ok()
                .inspect(|_| describe_metrics())
        })
        .clone()
}

/// `# HELP` lines, so that whoever reads `/metrics` need not read the code.
fn describe_metrics() {
    use metrics::Unit;
    metrics::describe_counter!(
        "ledger_commands_total",
        "Commands handled, by command type and outcome (accepted, or the rejection's code)"
    );
    metrics::describe_counter!(
        "ledger_conflicts_retried_total",
        "Appends refused on a stale revision and decided again against the order's new state"
    );
    metrics::describe_counter!(
        "ledger_order_loads_total",
        "Orders read and folded from the log because the state cache did not hold them, or to check a refusal"
    );
    metrics::describe_counter!(
        "ledger_tls_handshakes_failed_total",
        "HTTPS connections closed before a request: the TLS handshake failed (`refused`) or did not finish in time (`timeout`)"
    );
    metrics::describe_counter!(
        "ledger_http_requests_total",
        "HTTP requests answered, by method, route and status"
    );
    metrics::describe_histogram!(
        "ledger_http_request_seconds",
        Unit::Seconds,
        "Time to answer an HTTP request, by method and route"
    );
    metrics::describe_histogram!(
        "ledger_append_seconds",
        Unit::Seconds,
        "Time for the event store to acknowledge an append (durable), by outcome"
    );
    metrics::describe_histogram!(
        "ledger_views_wait_seconds",
        Unit::Seconds,
        "Time an accepted command's answer waited, after its append, for the views to fold its events"
    );
    metrics::describe_gauge!(
        "ledger_projection_lag_events",
        "Events in the log that the views have not folded yet"
    );
    metrics::describe_gauge!(
        "ledger_timers_due",
        "Deadlines passed that the timers have not acted on yet: a backlog after downtime, or, if it stays, a timer whose command keeps being refused"
    );
    metrics::describe_counter!(
        "ledger_timers_total",
        "Timers the service fired, by outcome: fired (the order changed), already_fired (found in the log), moved_on (the order had moved on), refused (logged, tried again)"
    );
    metrics::describe_gauge!("ledger_disputes_open", "Disputes waiting for a mediator");
    metrics::describe_gauge!(
        "ledger_dispute_longest_wait_seconds",
        Unit::Seconds,
        "How long the longest waiting open dispute has waited; 0 with none open"
    );
    metrics::describe_gauge!(
        "ledger_subscribers",
        "Subscriptions open, by protocol: sse (GET /streams/…) or grpc (the EventStoreDB protocol)"
    );
    metrics::describe_gauge!(
        "ledger_starting",
        "1 while the service brings its views up to date before it takes requests; 0 once it does"
    );
    metrics::describe_gauge!(
        "ledger_views_stopped",
        "1 once the views met an event they cannot read and stopped (/readyz says which); 0 while they follow the log"
    );
}

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(prometheus_metrics))
}

pub fn dev_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_clock, set_clock))
}

/// How often a run of 503s with the same problem code is logged.
const UNAVAILABLE_LOGGED_EVERY: Duration = Duration::from_secs(10);

/// The runs of 503s by problem code: a full disk refuses every command, and a line for each
/// (thousands a second) would bury the rest of the log.
static UNAVAILABLE: LazyLock<Mutex<LogThrottle<&'static str, Instant, Duration>>> =
    LazyLock::new(|| Mutex::new(LogThrottle::new(UNAVAILABLE_LOGGED_EVERY)));

/// Whether a failed request is logged: `None` when a line of its run of 503s was written
/// lately; else how many like it went unlogged, for a 503.
fn thinned(status: StatusCode, failure: Option<&FailureCause>) -> Option<Option<u64>> {
    if status != StatusCode::SERVICE_UNAVAILABLE {
        return Some(None);
    }
    let code = failure.map_or("", |f| f.code);
    match UNAVAILABLE.lock() {
        Ok(mut runs) => runs.admit(code, Instant::now()).map(Some),
        Err(_) => Some(None),
    }
}

/// Counts every request by method, route and status, and times it.
pub async fn record_request(request: Request, next: Next) -> Response {
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let uri = request.uri().clone();
    let correlation = request.headers().get("x-correlation-id").cloned();
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    let failure = response.extensions().get::<FailureCause>();
    let status = response.status();
    if status.is_server_error() && route != "/readyz" {
        // One line per failed request, with what an operator searches by: the path (which
        // order), the caller's correlation id, and the cause the client was not sent. A run
        // of the same 503 (a full disk refuses every command) is one line every 10 s, with
        // how many like it went unlogged; metrics count each.
        if let Some(like_it_unlogged) = thinned(status, failure) {
            tracing::error!(
                %method,
                path = uri.path(),
                status = status.as_u16(),
                latency_ms = started.elapsed().as_secs_f64() * 1e3,
                correlation_id = correlation.as_ref().and_then(|c| c.to_str().ok()),
                cause = failure.map(|c| c.cause.as_str()),
                like_it_unlogged,
                "request failed"
            );
        }
    }
    let status = status.as_u16().to_string();
    metrics::counter!("ledger_http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("ledger_http_request_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations", security(()),
    responses((status = 200, description = "alive")))]
pub(super) async fn healthz() -> &'static str {
    "ok\n"
}

#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct Readiness {
    pub(super) ready: bool,
    /// The last `$all` position the views have folded.
    pub(super) views_at: Option<u64>,
    /// The last position in the log.
    pub(super) log_at: Option<u64>,
    pub(super) problem: Option<String>,
}

/// The log answers and the views are running.
#[utoipa::path(get, path = "/readyz", tag = "operations", security(()),
    responses((status = 200, body = Readiness), (status = 503, body = Readiness)))]
async fn readyz(State(state): State<AppState>) -> Response {
    let views_at = *state.folded.borrow();
    let mut problem = state.projection_failure.lock().ok().and_then(|f| f.clone());
    if problem.is_none() {
        problem = state.save_failure.lock().ok().and_then(|f| {
            f.as_ref()
                .map(|f| format!("{f} (the views are current; their save is tried again)"))
        });
    }
    let log_at = match state.store.last_position().await {
        Ok(head) => head,
        Err(e) => {
            problem = Some(format!("the log does not answer: {e}"));
            None
        }
    };
    let ready = problem.is_none();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = Readiness {
        ready,
        views_at,
        log_at,
        problem,
    };
    (status, Json(body)).into_response()
}

/// The log's last event; none for an empty log.
pub(super) async fn last_event(
    store: &dyn ledger_store::EventStore,
) -> Result<Option<ledger_store::RecordedEvent>, ledger_store::StoreError> {
    let last = store
        .read_all(AllFrom::End, Direction::Backwards, 1)
        .await?;
    Ok(last.into_iter().next())
}

/// Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "operations", security(()),
    responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain")))]
async fn prometheus_metrics(State(state): State<AppState>) -> Response {
    let head = state.store.last_position().await.ok().flatten();
    let folded = *state.folded.borrow();
    let lag = match (head, folded) {
        (Some(head), Some(folded)) => head.saturating_sub(folded),
        (Some(head), None) => head + 1,
        (None, _) => 0,
    };
    metrics::gauge!("ledger_projection_lag_events").set(lag as f64);
    let stopped = state
        .projection_failure
        .lock()
        .map_or(true, |failure| failure.is_some());
    metrics::gauge!("ledger_views_stopped").set(if stopped { 1.0 } else { 0.0 });
    let save_failing = state
        .save_failure
        .lock()
        .map_or(true, |failure| failure.is_some());
    metrics::gauge!("ledger_views_save_failing").set(if save_failing { 1.0 } else { 0.0 });
    metrics::counter!("ledger_conflicts_retried_total").absolute(state.handler.conflicts_retried());
    metrics::counter!("ledger_order_loads_total").absolute(state.handler.orders_loaded());
    metrics::gauge!("ledger_starting").set(0.0);
    let now = state.clock.now();
    // One turn at the views' lock for both, not two: the fold waits while it is held.
    let read = state.views(|v| (v.timers.due_count(now), v.orders.disputes_open()));
    if let Ok((due, (open, oldest))) = read {
        metrics::gauge!("ledger_timers_due").set(due as f64);
        metrics::gauge!("ledger_disputes_open").set(open as f64);
        let waited = oldest.map_or(0.0, |opened_at| {
            (now - opened_at).num_milliseconds().max(0) as f64 / 1_000.0
        });
        metrics::gauge!("ledger_dispute_longest_wait_seconds").set(waited);
    }
    // Listed from the start, not only once a timer fired or someone subscribed.
    count_timers(&TimerReport::default());
    metrics::gauge!("ledger_subscribers", "protocol" => "sse").increment(0.0);
    if let Some(grpc) = state.grpc_subscriptions.get() {
        metrics::gauge!("ledger_subscribers", "protocol" => "grpc").set(grpc.open() as f64);
    }
    prometheus_text(state.metrics.as_ref())
}

/// Adds a tick's timers to `ledger_timers_total`, by what became of each.
pub(super) fn count_timers(report: &TimerReport) {
    for (outcome, count) in [
        ("fired", report.fired),
        ("already_fired", report.already_fired),
        ("moved_on", report.moved_on),
        ("refused", report.refused),
    ] {
        metrics::counter!("ledger_timers_total", "outcome" => outcome).increment(count as u64);
    }
}

/// What the recorder holds, in Prometheus's text format; empty when metrics are off.
pub(super) fn prometheus_text(metrics: Option<&PrometheusHandle>) -> Response {
    let text = metrics.map(PrometheusHandle::render).unwrap_or_default();
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

#[derive(Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClockBody {
    /// RFC 3339; only forward.
    #[schema(value_type = String, format = DateTime)]
    now: DateTime<Utc>,
}

/// `--dev` only: what the service's clock reads.
#[utoipa::path(get, path = "/dev/clock", tag = "development",
    responses((status = 200, body = ClockBody), (status = "4XX", response = super::problem::Problem)))]
async fn get_clock(State(state): State<AppState>, _caller: Principal) -> Json<ClockBody> {
    Json(ClockBody {
        now: state.clock.now(),
    })
}

/// `--dev` only: moves the service's clock forward, for lateness, auto-close and review windows;
/// the deadlines it passes are acted on at once, not at the timers' next tick.
#[utoipa::path(post, path = "/dev/clock", tag = "development", request_body = ClockBody,
    responses((status = 200, body = ClockBody), (status = "4XX", response = super::problem::Problem)))]
async fn set_clock(
    State(state): State<AppState>,
    _caller: Principal,
    JsonBody(body): JsonBody<ClockBody>,
) -> Result<Json<ClockBody>, ApiError> {
    let now = state
        .clock
        .advance_to(body.now)
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.code(), e.to_string()))?;
    state.timers_wake.notify_one();
    Ok(Json(ClockBody { now }))
}

#[cfg(test)]
mod tests {
    use super::{LogThrottle, UNAVAILABLE_LOGGED_EVERY};
    use std::time::{Duration, Instant};

    #[test]
    fn a_run_of_the_same_503_is_one_line_every_ten_seconds_with_how_many_went_unlogged() {
        let start = Instant::now();
        let mut runs = LogThrottle::new(UNAVAILABLE_LOGGED_EVERY);
        let mut lines = Vec::new();
        // A full disk refusing a command every 10 ms for 25 s, and once a contention.
        for tick in 0..2_500u64 {
            let now = start + Duration::from_millis(tick * 10);
            if let Some(unlogged) = runs.admit("storage_full", now) {
                lines.push(("storage_full", now.duration_since(start), unlogged));
            }
            if tick == 1_234 {
                let other = runs.admit("too_much_contention", now);
                assert_eq!(other, Some(0), "another kind is logged on its own");
            }
        }
        let every = UNAVAILABLE_LOGGED_EVERY;
        assert_eq!(
            lines,
            [
                ("storage_full", Duration::ZERO, 0),
                ("storage_full", every, 999),
                ("storage_full", every * 2, 999),
            ]
        );
    }
}
