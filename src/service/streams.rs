//! Server-Sent Events over the log, in EventStoreDB's terms: `$all`, one stream, or the
//! system streams `$ce-<category>` and `$et-<type>`, catch-up then live. The SSE `id` is the
//! event's `$all` position, so a client that reconnects with `Last-Event-ID` carries on after
//! the last event it received, whichever it subscribed to.

use super::auth::{ApiRole, Principal};
use super::problem::{ApiError, ApiPath, Problem};
use super::AppState;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use ledger_replay::transfer::json_on_one_line;
use ledger_store::{
    read_whole_stream, Direction, RecordedEvent, StoreError, StreamFrom, StreamName, SubscribeFrom,
    Subscription,
};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

/// What a subscription answers, beside the events' shape.
const STREAM_ANSWER: &str = "Server-Sent Events, one per event: `id` its `$all` position, `event` its type, `data` a StreamEvent. Once the events there were at the start are sent, one `caught-up` event with no `id`, whose `data` is a CaughtUp: `{\"position\": <the last position then>}` (`{\"revision\": …}` on one stream; `null` if there was none); live events follow. A comment line every 15 s.";

const READERS: &[ApiRole] = &[ApiRole::Service, ApiRole::Mediator];

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(subscribe_all))
        .routes(routes!(subscribe_stream))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StreamQuery {
    /// `$all`, `$ce-…` and `$et-…`: the first position to send; a stream: the first
    /// revision; `end`: only what commits from now on. Ignored when `Last-Event-ID` is sent.
    #[param(value_type = Option<String>, example = "end")]
    from: Option<String>,
    /// Only events whose type starts with this.
    type_prefix: Option<String>,
}

/// One recorded event as subscribers receive it. Described as another application's event
/// (appended through the EventStoreDB protocol): data and metadata as appended, JSON where
/// they are JSON on one line, and base64 otherwise. An order's event has the same fields,
/// typed: an OrderStreamEvent.
#[derive(Serialize, ToSchema)]
#[schema(as = OtherStreamEvent)]
pub(super) struct Delivered<'a> {
    stream: &'a str,
    revision: u64,
    /// Its place in `$all`: the SSE `id`.
    position: u64,
    event_id: Uuid,
    #[serde(rename = "type")]
    event_type: &'a str,
    recorded_at: DateTime<Utc>,
    #[schema(value_type = Value)]
    data: Payload<'a>,
    /// `base64` when the data are not JSON on one line: `data` is then their standard base64.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "base64")]
    data_encoding: Option<&'static str>,
    #[schema(value_type = Value)]
    metadata: Payload<'a>,
    /// As `data_encoding`, for the metadata.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "base64")]
    metadata_encoding: Option<&'static str>,
}

/// Data or metadata as stored: JSON written through as it is (checked, not rebuilt: each
/// subscriber encodes every event), anything else as base64, as an export writes it, so that
/// what a subscriber gets is what was appended, byte for byte.
#[derive(Serialize)]
#[serde(untagged)]
enum Payload<'a> {
    Json(&'a RawValue),
    Base64(String),
}

impl<'a> Payload<'a> {
    fn of(bytes: &'a [u8]) -> Payload<'a> {
        match json_on_one_line(bytes) {
            Some(json) => Payload::Json(json),
            None => Payload::Base64(base64::engine::general_purpose::STANDARD.encode(bytes)),
        }
    }

    fn encoding(&self) -> Option<&'static str> {
        matches!(self, Payload::Base64(_)).then_some("base64")
    }
}

impl<'a> Delivered<'a> {
    fn of(event: &'a RecordedEvent) -> Delivered<'a> {
        let (data, metadata) = (Payload::of(&event.data), Payload::of(&event.metadata));
        Delivered {
            stream: event.stream.as_str(),
            revision: event.revision,
            position: event.position,
            event_id: event.event_id,
            event_type: &event.event_type,
            recorded_at: event.recorded_at,
            data_encoding: data.encoding(),
            data,
            metadata_encoding: metadata.encoding(),
            metadata,
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

/// Where a subscription starts: after `Last-Event-ID` if sent, else at `?from=`.
fn start(last_event_id: Option<u64>, from: Option<&str>) -> Result<SubscribeFrom, ApiError> {
    if let Some(last) = last_event_id {
        return Ok(SubscribeFrom::After(last));
    }
    match from.map(str::trim) {
        None | Some("start") => Ok(SubscribeFrom::Start),
        Some("end") => Ok(SubscribeFrom::End),
        Some(first) => match first.parse::<u64>() {
            Ok(0) => Ok(SubscribeFrom::Start),
            Ok(first) => Ok(SubscribeFrom::After(first - 1)),
            Err(_) => Err(ApiError::bad_request(
                "invalid_query",
                format!("from must be a number, `start` or `end`, not `{first}`"),
            )),
        },
    }
}

/// The system streams of EventStoreDB's projections, served as filters over `$all`.
enum SystemStream {
    /// `$ce-<category>`: every stream named `<category>-…`.
    Category(String),
    /// `$et-<type>`: every event of that type.
    EventType(String),
}

impl SystemStream {
    fn parse(name: &str) -> Option<SystemStream> {
        let nonempty = |rest: &str| (!rest.is_empty()).then(|| rest.to_owned());
        if let Some(category) = name.strip_prefix("$ce-") {
            nonempty(category).map(SystemStream::Category)
        } else {
            name.strip_prefix("$et-")
                .and_then(nonempty)
                .map(SystemStream::EventType)
        }
    }

    fn holds(&self, stream: &str, event_type: &str) -> bool {
        match self {
            SystemStream::Category(category) => stream
                .split_once('-')
                .is_some_and(|(head, _)| head == category),
            SystemStream::EventType(wanted) => event_type == wanted,
        }
    }
}

/// `$all`, catch-up then live.
#[utoipa::path(get, path = "/streams/$all", tag = "streams", params(StreamQuery,
        ("Last-Event-ID" = Option<u64>, Header, description = "resume after this position")),
    responses((status = 200, description = STREAM_ANSWER, content_type = "text/event-stream", body = super::shapes::SubscriptionEventShape),
        (status = "4XX", response = Problem)))]
async fn subscribe_all(
    State(state): State<AppState>,
    caller: Principal,
    headers: HeaderMap,
    query: Result<Query<StreamQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require_role(READERS)?;
    let Query(query) = query.map_err(|r| ApiError::bad_request("invalid_query", r.body_text()))?;
    subscribe_all_through(state, &headers, query, None).await
}

/// `$all`, through a system stream's filter if given.
async fn subscribe_all_through(
    state: AppState,
    headers: &HeaderMap,
    query: StreamQuery,
    system: Option<SystemStream>,
) -> Result<Response, ApiError> {
    let from = start(last_event_id(headers)?, query.from.as_deref())?;
    // Refused before a subscription is opened for it: the log only grows.
    held(Key::Position, from, log_head(&state).await?)?;
    let subscription = state
        .store
        .subscribe_all(from)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    // Read once subscribed: every event up to it reaches the subscriber before `caught-up`.
    let head = log_head(&state).await?;
    let handover = Handover::new(Key::Position, head, from);
    Ok(sse(
        state,
        subscription,
        handover,
        system,
        query.type_prefix,
    ))
}

/// One stream (e.g. `order-<uuid>`), or a system stream (`$ce-order`, `$et-OrderClosed`),
/// catch-up then live.
#[utoipa::path(get, path = "/streams/{stream}", tag = "streams", params(
        ("stream" = String, Path, description = "stream name, e.g. order-<uuid>, or $ce-<category>, $et-<event type>"), StreamQuery,
        ("Last-Event-ID" = Option<u64>, Header, description = "resume after this position")),
    responses((status = 200, description = STREAM_ANSWER, content_type = "text/event-stream", body = super::shapes::SubscriptionEventShape),
        (status = "4XX", response = Problem)))]
async fn subscribe_stream(
    State(state): State<AppState>,
    caller: Principal,
    headers: HeaderMap,
    ApiPath(stream): ApiPath<String>,
    query: Result<Query<StreamQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require_role(READERS)?;
    let Query(query) = query.map_err(|r| ApiError::bad_request("invalid_query", r.body_text()))?;
    // `/streams/%24all`: clients that encode `$` (JavaScript's `encodeURIComponent`) miss
    // the route of `$all`, which is matched before decoding, and land here.
    if stream == "$all" {
        return subscribe_all_through(state, &headers, query, None).await;
    }
    if let Some(system) = SystemStream::parse(&stream) {
        return subscribe_all_through(state, &headers, query, Some(system)).await;
    }
    let name = StreamName::new(&stream).map_err(|e| {
        let detail = if stream.starts_with('$') {
            "of the streams starting with `$`, only `$all`, `$ce-<category>` and `$et-<event type>` can be read".to_owned()
        } else {
            e.to_string()
        };
        ApiError::bad_request("invalid_stream", detail)
    })?;
    let from = match last_event_id(&headers)? {
        Some(last_position) => {
            let log_head = log_head(&state).await?;
            held(Key::Position, SubscribeFrom::After(last_position), log_head)?;
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
        None => start(None, query.from.as_deref())?,
    };
    held(Key::Revision, from, stream_head(&state, &name).await?)?;
    let subscription = state
        .store
        .subscribe_stream(&name, from)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let head = stream_head(&state, &name).await?;
    let handover = Handover::new(Key::Revision, head, from);
    Ok(sse(state, subscription, handover, None, query.type_prefix))
}

/// The log's last position; none while it is empty.
async fn log_head(state: &AppState) -> Result<Option<u64>, ApiError> {
    state
        .store
        .last_position()
        .await
        .map_err(|e| ApiError::internal(e.to_string()))
}

/// The stream's last revision; none while it has no event.
async fn stream_head(state: &AppState, name: &StreamName) -> Result<Option<u64>, ApiError> {
    match state
        .store
        .read_stream(name, StreamFrom::End, Direction::Backwards, 1)
        .await
    {
        Ok(last) => Ok(last.first().map(|event| event.revision)),
        Err(StoreError::StreamNotFound(_)) => Ok(None),
        Err(e) => Err(ApiError::internal(e.to_string())),
    }
}

/// A subscription resumes only after an event the log (or stream) holds, as KurrentDB's
/// refuse an invalid position: a checkpoint past its end comes from another log, or from
/// before a restore, and going on from there would skip the events that take those places.
fn held(key: Key, from: SubscribeFrom, head: Option<u64>) -> Result<(), ApiError> {
    let SubscribeFrom::After(after) = from else {
        return Ok(());
    };
    if head.is_some_and(|head| after <= head) {
        return Ok(());
    }
    let (code, what) = match key {
        Key::Position => ("position_not_found", "the log"),
        Key::Revision => ("revision_not_found", "the stream"),
    };
    let holds = match head {
        Some(head) => format!("{what}'s last {} is {head}", key.name()),
        None => format!("{what} is empty"),
    };
    Err(ApiError::new(
        StatusCode::NOT_FOUND,
        code,
        format!(
            "cannot go on after {} {after}: {holds} (a checkpoint from another log, or from before a restore?)",
            key.name()
        ),
    ))
}

/// What a subscription counts its events by: `$all` positions, or one stream's revisions.
#[derive(Clone, Copy)]
enum Key {
    Position,
    Revision,
}

impl Key {
    fn of(self, event: &RecordedEvent) -> u64 {
        match self {
            Key::Position => event.position,
            Key::Revision => event.revision,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Key::Position => "position",
            Key::Revision => "revision",
        }
    }
}

/// The handover from catch-up to live, announced once as a `caught-up` event (no `id`, so
/// `Last-Event-ID` is untouched) as EventStoreDB's subscriptions announce `CaughtUp`: once
/// the subscriber has what the log (or stream) held when it connected.
#[derive(Clone, Copy)]
struct Handover {
    key: Key,
    /// The last event's key when the subscriber connected; none if there was none.
    head: Option<u64>,
    state: HandoverState,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum HandoverState {
    Catching,
    Announce,
    Live,
}

impl Handover {
    fn new(key: Key, head: Option<u64>, from: SubscribeFrom) -> Handover {
        let caught_up = match (head, from) {
            (None, _) | (_, SubscribeFrom::End) => true,
            (Some(head), SubscribeFrom::After(after)) => after >= head,
            (Some(_), SubscribeFrom::Start) => false,
        };
        let state = if caught_up {
            HandoverState::Announce
        } else {
            HandoverState::Catching
        };
        Handover { key, head, state }
    }

    fn passed(&mut self, event: &RecordedEvent) {
        let reached = self.head.is_some_and(|head| self.key.of(event) >= head);
        if self.state == HandoverState::Catching && reached {
            self.state = HandoverState::Announce;
        }
    }

    fn announcement(&self) -> SseEvent {
        SseEvent::default()
            .event("caught-up")
            .data(serde_json::json!({ self.key.name(): self.head }).to_string())
    }
}

/// Counted in `ledger_subscribers` from the response's start until its stream is dropped
/// (the subscriber left, the subscription ended, or the service stopped).
struct Subscribed;

impl Subscribed {
    fn new() -> Subscribed {
        metrics::gauge!("ledger_subscribers", "protocol" => "sse").increment(1.0);
        Subscribed
    }
}

impl Drop for Subscribed {
    fn drop(&mut self) {
        metrics::gauge!("ledger_subscribers", "protocol" => "sse").decrement(1.0);
    }
}

/// What the SSE stream sends: an event of the log, or the handover to live.
enum Sent {
    Event(RecordedEvent),
    CaughtUp(SseEvent),
}

/// The subscription as an SSE response that ends when the service shuts down.
fn sse(
    state: AppState,
    subscription: Box<dyn Subscription>,
    handover: Handover,
    system: Option<SystemStream>,
    type_prefix: Option<String>,
) -> Response {
    let sent = futures::stream::unfold(
        (subscription, handover, Subscribed::new()),
        |(mut subscription, mut handover, subscribed)| async move {
            if handover.state == HandoverState::Announce {
                handover.state = HandoverState::Live;
                let announcement = handover.announcement();
                return Some((
                    Sent::CaughtUp(announcement),
                    (subscription, handover, subscribed),
                ));
            }
            match subscription.next().await {
                Ok(event) => {
                    handover.passed(&event);
                    Some((Sent::Event(event), (subscription, handover, subscribed)))
                }
                Err(error) => {
                    tracing::warn!(%error, "a subscription ended");
                    None
                }
            }
        },
    )
    .filter_map(move |sent| {
        let event = match sent {
            Sent::CaughtUp(announcement) => return std::future::ready(Some(Ok(announcement))),
            Sent::Event(event) => event,
        };
        let keep = system
            .as_ref()
            .is_none_or(|system| system.holds(event.stream.as_str(), &event.event_type))
            && type_prefix
                .as_deref()
                .is_none_or(|prefix| event.event_type.starts_with(prefix));
        std::future::ready(keep.then(|| framed(event)))
    })
    .take_until(async move { state.shutting_down().await });
    Sse::new(sent)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// An event as SSE: `id` its position, `event` its type, `data` the event as JSON.
fn framed(event: RecordedEvent) -> Result<SseEvent, axum::Error> {
    let framed = SseEvent::default().id(event.position.to_string());
    // An `event:` line cannot hold a line break (axum panics on one). The embedded store
    // refuses such types, but EventStoreDB may hold them; the data still names the type.
    let framed = if event.event_type.contains(['\r', '\n']) {
        framed
    } else {
        framed.event(&event.event_type)
    };
    framed.json_data(Delivered::of(&event))
}

#[cfg(test)]
mod tests {
    use super::{framed, SystemStream};
    use axum::response::IntoResponse;
    use http_body_util::BodyExt;
    use ledger_store::{RecordedEvent, StreamName};

    #[tokio::test]
    async fn a_type_with_a_line_break_is_sent_without_its_event_line() {
        let event = |event_type: &str| RecordedEvent {
            stream: StreamName::new("other-1").expect("name"),
            revision: 0,
            position: 7,
            event_id: uuid::Uuid::nil(),
            event_type: event_type.to_owned(),
            data: br#"{"x":1}"#.to_vec(),
            metadata: b"{}".to_vec(),
            recorded_at: chrono::DateTime::UNIX_EPOCH,
        };
        let events = [event("Noted"), event("Noted\nevent: forged")].map(framed);
        let response = axum::response::Sse::new(futures::stream::iter(events)).into_response();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let text = String::from_utf8_lossy(&body);
        let frames: Vec<&str> = text.split("\n\n").filter(|f| !f.is_empty()).collect();
        assert_eq!(frames.len(), 2, "{text}");
        assert!(
            frames[0].starts_with("id: 7\nevent: Noted\ndata: {"),
            "{text}"
        );
        assert!(frames[1].starts_with("id: 7\ndata: {"), "{text}");
        assert!(
            frames[1].contains(r#""type":"Noted\nevent: forged""#),
            "{text}"
        );
    }

    #[test]
    fn data_is_sent_as_stored_when_json_on_one_line_and_as_base64_otherwise() {
        let payloads = [
            &br#"{"b":1,"a":[true,null]}"#[..],
            br#""a JSON string""#,
            "not json { é".as_bytes(),
            b"\"text in quotes",
            b"{\r\n  \"a\": 1\r\n}",
            &[0xff, 0x00, b'a'],
        ]
        .map(super::Payload::of);
        let encodings = payloads.each_ref().map(super::Payload::encoding);
        let base64 = Some("base64");
        assert_eq!(encodings, [None, None, base64, base64, base64, base64]);
        let sent = serde_json::to_string(&payloads).expect("serialise");
        assert_eq!(
            sent,
            r#"[{"b":1,"a":[true,null]},"a JSON string","bm90IGpzb24geyDDqQ==","InRleHQgaW4gcXVvdGVz","ew0KICAiYSI6IDENCn0=","/wBh"]"#
        );
    }

    #[test]
    fn a_category_is_the_stream_name_before_its_first_dash_and_a_type_matches_whole() {
        let cases = [
            ("$ce-order", "order-1f0e", "OrderPlaced", true),
            ("$ce-order", "order-1f0e-2", "OrderPlaced", true),
            ("$ce-ord", "order-1f0e", "OrderPlaced", false),
            ("$ce-order", "orders-1f0e", "OrderPlaced", false),
            ("$ce-order", "order", "OrderPlaced", false),
            ("$et-OrderClosed", "order-1f0e", "OrderClosed", true),
            ("$et-OrderClosed", "order-1f0e", "OrderClosedLate", false),
            ("$et-Order", "order-1f0e", "OrderClosed", false),
        ];
        for (system, stream, event_type, held) in cases {
            let parsed = SystemStream::parse(system).expect(system);
            assert_eq!(
                parsed.holds(stream, event_type),
                held,
                "{system} holding {stream} {event_type}"
            );
        }
        for not_system in ["$ce-", "$et-", "$all", "$users", "order-1"] {
            assert!(SystemStream::parse(not_system).is_none(), "{not_system}");
        }
    }
}
