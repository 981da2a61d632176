//! Server-Sent Events over the log, in EventStoreDB's terms: `$all` or one stream, catch-up
//! then live. The SSE `id` is the event's `$all` position, so a client that reconnects with
//! `Last-Event-ID` carries on after the last event it received, whichever it subscribed to.

use super::auth::{ApiRole, Principal};
use super::problem::{ApiError, ApiPath, Problem};
use super::AppState;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use ledger_store::{read_whole_stream, RecordedEvent, StreamName, SubscribeFrom, Subscription};
use serde::{Deserialize, Serialize};
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

const READERS: &[ApiRole] = &[ApiRole::Service, ApiRole::Mediator];

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(subscribe_all))
        .routes(routes!(subscribe_stream))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// `$all`: the first position to send; a stream: the first revision. Ignored when
    /// `Last-Event-ID` is sent.
    from: Option<u64>,
    /// Only events whose type starts with this.
    type_prefix: Option<String>,
}

/// One recorded event as subscribers receive it.
#[derive(Serialize)]
struct Delivered {
    stream: String,
    revision: u64,
    position: u64,
    event_id: Uuid,
    #[serde(rename = "type")]
    event_type: String,
    recorded_at: DateTime<Utc>,
    data: serde_json::Value,
    metadata: serde_json::Value,
}

impl Delivered {
    fn of(event: RecordedEvent) -> Delivered {
        let json = |bytes: &[u8]| {
            serde_json::from_slice(bytes).unwrap_or_else(|_| {
                serde_json::Value::String(String::from_utf8_lossy(bytes).into_owned())
            })
        };
        Delivered {
            data: json(&event.data),
            metadata: json(&event.metadata),
            stream: event.stream.as_str().to_owned(),
            revision: event.revision,
            position: event.position,
            event_id: event.event_id,
            event_type: event.event_type,
            recorded_at: event.recorded_at,
        }
    }
}

fn last_event_id(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    headers
        .get("last-event-id")
        .map(|v| {
            v.to_str()
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .ok_or_else(|| {
                    ApiError::bad_request("invalid_header", "Last-Event-ID must be a position")
                })
        })
        .transpose()
}

/// `$all`, catch-up then live.
#[utoipa::path(get, path = "/streams/$all", tag = "streams", params(StreamQuery,
        ("Last-Event-ID" = Option<u64>, Header, description = "resume after this position")),
    responses((status = 200, description = "text/event-stream", content_type = "text/event-stream"),
        (status = "4XX", body = Problem)))]
async fn subscribe_all(
    State(state): State<AppState>,
    caller: Principal,
    headers: HeaderMap,
    query: Result<Query<StreamQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require_role(READERS)?;
    let Query(query) = query.map_err(|r| ApiError::bad_request("invalid_query", r.body_text()))?;
    let from = match (last_event_id(&headers)?, query.from) {
        (Some(last), _) => SubscribeFrom::After(last),
        (None, Some(0) | None) => SubscribeFrom::Start,
        (None, Some(first)) => SubscribeFrom::After(first - 1),
    };
    let subscription = state
        .store
        .subscribe_all(from)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(sse(state, subscription, query.type_prefix))
}

/// One stream (e.g. `order-<uuid>`), catch-up then live.
#[utoipa::path(get, path = "/streams/{stream}", tag = "streams", params(
        ("stream" = String, Path, description = "stream name, e.g. order-<uuid>"), StreamQuery,
        ("Last-Event-ID" = Option<u64>, Header, description = "resume after this position")),
    responses((status = 200, description = "text/event-stream", content_type = "text/event-stream"),
        (status = "4XX", body = Problem)))]
async fn subscribe_stream(
    State(state): State<AppState>,
    caller: Principal,
    headers: HeaderMap,
    ApiPath(stream): ApiPath<String>,
    query: Result<Query<StreamQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require_role(READERS)?;
    let Query(query) = query.map_err(|r| ApiError::bad_request("invalid_query", r.body_text()))?;
    let name = StreamName::new(&stream)
        .map_err(|e| ApiError::bad_request("invalid_stream", e.to_string()))?;
    let from = match (last_event_id(&headers)?, query.from) {
        (Some(last_position), _) => {
            // The SSE id is a position; the stream resumes after the last revision at or
            // before it.
            let events = read_whole_stream(&*state.store, &name)
                .await
                .map_err(|e| ApiError::internal(e.to_string()))?;
            match events.iter().rev().find(|e| e.position <= last_position) {
                Some(event) => SubscribeFrom::After(event.revision),
                None => SubscribeFrom::Start,
            }
        }
        (None, Some(0) | None) => SubscribeFrom::Start,
        (None, Some(first)) => SubscribeFrom::After(first - 1),
    };
    let subscription = state
        .store
        .subscribe_stream(&name, from)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(sse(state, subscription, query.type_prefix))
}

/// The subscription as an SSE response that ends when the service shuts down.
fn sse(
    state: AppState,
    subscription: Box<dyn Subscription>,
    type_prefix: Option<String>,
) -> Response {
    let events = futures::stream::unfold(subscription, |mut subscription| async move {
        match subscription.next().await {
            Ok(event) => Some((event, subscription)),
            Err(error) => {
                tracing::warn!(%error, "a subscription ended");
                None
            }
        }
    })
    .filter(move |event| {
        let keep = type_prefix
            .as_deref()
            .is_none_or(|prefix| event.event_type.starts_with(prefix));
        std::future::ready(keep)
    })
    .map(|event| {
        let id = event.position.to_string();
        let name = event.event_type.clone();
        SseEvent::default()
            .id(id)
            .event(name)
            .json_data(Delivered::of(event))
    })
    .take_until(async move { state.shutting_down().await });
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}
