//! The command routes: each turns a request into a domain command dated by the service's
//! clock, sends it through the pipeline, and answers with what was appended and the order
//! after it.
//!
//! `Idempotency-Key` becomes the command id (scoped to the caller), so a retry is answered
//! from the log with the first outcome; `If-Match` becomes the expected revision.

use super::auth::Principal;
use super::problem::{ApiError, ApiPath, JsonBody, NoQueryString, Problem, STORAGE_FULL};
use super::AppState;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use ledger_commands::{CommandRequest, Outcome};
use ledger_domain::{
    Actor, Command, Currency, Event, ExtraKind, Money, OrderId, Resolution, UserId,
};
use ledger_projections::OrderSummary;
use lru::LruCache;
use serde::{Deserialize, Serialize};
use std::hash::{Hash, Hasher};
use std::num::NonZeroUsize;
use std::sync::Mutex;
use utoipa::{IntoParams, ToResponse, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

/// Namespace of command ids made from idempotency keys (fixed: changing it forgets retries).
const IDEMPOTENCY_NAMESPACE: Uuid = Uuid::from_u128(0x6c65_6467_6572_2d69_6465_6d70_6f74_0001);
/// Namespace of the order ids given to a `POST /orders` retried without an `order_id`.
const ORDER_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6c65_6467_6572_2d6f_7264_6572_2d69_0001);
/// Longest idempotency key accepted.
pub const IDEMPOTENCY_KEY_CHARS_MAX: usize = 255;
/// Idempotency keys whose request body is remembered, to refuse a key reused for another body.
const REMEMBERED_KEYS_MAX: usize = 100_000;

/// What each recent idempotency key was used for. The log already refuses a key reused on the
/// same order with another command; this also catches one reused on another order or route.
pub struct KeyFingerprints(Mutex<LruCache<Uuid, u64>>);

impl Default for KeyFingerprints {
    fn default() -> Self {
        let capacity = NonZeroUsize::new(REMEMBERED_KEYS_MAX).unwrap_or(NonZeroUsize::MIN);
        KeyFingerprints(Mutex::new(LruCache::new(capacity)))
    }
}

impl KeyFingerprints {
    fn check(&self, command_id: Uuid, fingerprint: u64) -> Result<(), ApiError> {
        let mut keys = self
            .0
            .lock()
            .map_err(|_| ApiError::internal("the idempotency keys' lock was poisoned"))?;
        match keys.get(&command_id) {
            Some(seen) if *seen != fingerprint => Err(key_reused()),
            Some(_) => Ok(()),
            None => {
                keys.put(command_id, fingerprint);
                Ok(())
            }
        }
    }
}

fn key_reused() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "idempotency_key_reused",
        "this Idempotency-Key was already used for a different request",
    )
}

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(place))
        .routes(routes!(confirm))
        .routes(routes!(decline))
        .routes(routes!(deliver))
        .routes(routes!(request_revision))
        .routes(routes!(accept_revision))
        .routes(routes!(refuse_revision))
        .routes(routes!(buy_extra))
        .routes(routes!(extend_deadline))
        .routes(routes!(cancel))
        .routes(routes!(request_cancellation))
        .routes(routes!(accept_cancellation))
        .routes(routes!(withdraw_cancellation))
        .routes(routes!(partial_refund))
        .routes(routes!(open_dispute))
        .routes(routes!(resolve_dispute))
        .routes(routes!(close))
        .routes(routes!(review))
}

/// What a command did.
#[derive(Serialize, ToSchema, ToResponse)]
#[response(
    description = "The command's events are appended, and the views have folded them",
    headers(
        ("ETag" = String, description = "The order's new revision, quoted: send it back as If-Match"),
        ("Idempotent-Replayed" = Option<String>, description = "`true` on a retry answered from the log")
    )
)]
pub struct CommandResponse {
    pub order_id: Uuid,
    /// The order stream's revision after the command; send it back as `If-Match`.
    pub revision: u64,
    /// The `$all` position of the command's last event.
    pub position: u64,
    /// The events appended, as in the event catalogue: `{"type": …, "data": …}`.
    #[schema(value_type = Vec<super::shapes::EventShape>)]
    pub events: Vec<Event>,
    /// The order summary after the events.
    #[schema(value_type = Option<super::shapes::OrderSummaryShape>)]
    pub order: Option<OrderSummary>,
}

/// A command as the routes hand it over: everything but who and when.
struct Call<'a> {
    state: &'a AppState,
    caller: Principal,
    headers: &'a HeaderMap,
    order_id: OrderId,
    /// The route and body, to tell a retry from a reused key.
    fingerprint: u64,
    created: bool,
}

fn fingerprint(route: &str, order: Option<OrderId>, body: &impl Serialize) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    route.hash(&mut hasher);
    order.map(|o| o.0).hash(&mut hasher);
    serde_json::to_string(body)
        .unwrap_or_default()
        .hash(&mut hasher);
    hasher.finish()
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .map_err(|_| {
            ApiError::bad_request("invalid_header", "Idempotency-Key must be visible ASCII")
        })?
        .trim();
    if key.is_empty() || key.chars().count() > IDEMPOTENCY_KEY_CHARS_MAX {
        return Err(ApiError::bad_request(
            "invalid_header",
            format!("Idempotency-Key must have 1 to {IDEMPOTENCY_KEY_CHARS_MAX} characters"),
        ));
    }
    Ok(Some(key.to_owned()))
}

fn command_id(caller: &Principal, key: Option<&str>) -> Uuid {
    match key {
        Some(key) => Uuid::new_v5(
            &IDEMPOTENCY_NAMESPACE,
            format!("{}:{key}", caller.user.0).as_bytes(),
        ),
        None => Uuid::new_v4(),
    }
}

/// `If-Match: "3"` (or `3`): the revision the order must be at; a list, `"3", "4"`, or
/// several `If-Match` lines, any of them (RFC 9110 §13.1.1). `*` asks only that the order
/// exist, which a command on an order requires anyway. None: at any revision.
fn expected_revisions(headers: &HeaderMap) -> Result<Vec<u64>, ApiError> {
    let invalid = || {
        ApiError::bad_request(
            "invalid_header",
            "If-Match must be `*` or order revisions, e.g. \"3\" or \"3\", \"4\"",
        )
    };
    let mut revisions = Vec::new();
    let mut any = false;
    for value in headers.get_all(header::IF_MATCH) {
        for tag in value.to_str().map_err(|_| invalid())?.split(',') {
            match tag.trim() {
                // Empty list elements are allowed and ignored (RFC 9110 §5.6.1.2).
                "" => {}
                "*" => any = true,
                tag => revisions.push(
                    tag.trim_start_matches("W/")
                        .trim_matches('"')
                        .parse()
                        .map_err(|_| invalid())?,
                ),
            }
        }
    }
    let present = headers.contains_key(header::IF_MATCH);
    if (any && !revisions.is_empty()) || (present && !any && revisions.is_empty()) {
        return Err(invalid());
    }
    Ok(revisions)
}

fn correlation_id(headers: &HeaderMap) -> Result<Option<Uuid>, ApiError> {
    headers
        .get("x-correlation-id")
        .map(|v| {
            v.to_str()
                .ok()
                .and_then(|v| Uuid::parse_str(v.trim()).ok())
                .ok_or_else(|| {
                    ApiError::bad_request("invalid_header", "X-Correlation-Id must be a UUID")
                })
        })
        .transpose()
}

/// The headers a command on an order reads, as the OpenAPI document lists them.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
struct CommandHeaders {
    /// Makes the command safe to retry (1 to 255 characters): the same key answers with the
    /// first response; with another body, 409.
    #[param(rename = "Idempotency-Key", value_type = String, required = false, min_length = 1,
        max_length = 255)]
    idempotency_key: Option<String>,
    /// The revision the order must be at, e.g. `"3"`, or any of a list, `"3", "4"` (412 if
    /// it is at none); `*` sets none.
    #[param(rename = "If-Match", value_type = String, required = false,
        pattern = r#"^(\*|((W/)?"[0-9]+"|[0-9]+)( *, *((W/)?"[0-9]+"|[0-9]+))*)$"#, example = "\"3\"")]
    expected_revisions: Vec<u64>,
    /// Written into the events' metadata; the command id otherwise.
    #[param(rename = "X-Correlation-Id", value_type = Uuid, required = false)]
    correlation_id: Option<Uuid>,
}

impl CommandHeaders {
    fn read(headers: &HeaderMap) -> Result<Self, ApiError> {
        Ok(CommandHeaders {
            idempotency_key: idempotency_key(headers)?,
            expected_revisions: expected_revisions(headers)?,
            correlation_id: correlation_id(headers)?,
        })
    }
}

impl Call<'_> {
    async fn run(
        self,
        build: impl FnOnce(Actor, DateTime<Utc>) -> Command,
    ) -> Result<Response, ApiError> {
        let actor = self.caller.actor().ok_or_else(|| {
            ApiError::forbidden("the service role reads streams and commands nothing")
        })?;
        let headers = CommandHeaders::read(self.headers)?;
        let command_id = command_id(&self.caller, headers.idempotency_key.as_deref());
        if headers.idempotency_key.is_some() {
            self.state.idempotency.check(command_id, self.fingerprint)?;
        }
        let command = build(actor, self.state.clock.now());
        let kind = format!("{:?}", command.kind());
        let request = CommandRequest {
            command_id,
            order_id: self.order_id,
            command,
            correlation_id: headers.correlation_id,
            causation_id: None,
            expected_revisions: headers.expected_revisions,
        };
        let result = self.state.handler.handle(request).await;
        let label = match &result {
            Ok(outcome) if outcome.replayed => "replayed",
            Ok(_) => "accepted",
            Err(error) => ApiError::from_command_error_ref(error),
        };
        metrics::counter!("ledger_commands_total", "command" => kind, "outcome" => label)
            .increment(1);
        let outcome = result?;
        let waited = std::time::Instant::now();
        let reached = self.state.views_reach(outcome.position).await;
        metrics::histogram!("ledger_views_wait_seconds").record(waited.elapsed().as_secs_f64());
        if !reached {
            tracing::warn!(
                position = outcome.position,
                "answering before the views folded the command"
            );
        }
        Ok(respond(outcome, self.created))
    }
}

impl ApiError {
    /// The metrics label of a failed command: its problem code.
    fn from_command_error_ref(error: &ledger_commands::CommandError) -> &'static str {
        use ledger_commands::CommandError;
        match error {
            CommandError::Rejected(rejection) => rejection.code(),
            CommandError::StaleRevision { .. } => "stale_revision",
            CommandError::CommandIdReused(_) => "idempotency_key_reused",
            CommandError::TooMuchContention(_) => "too_much_contention",
            CommandError::Store(ledger_store::StoreError::Full(_)) => STORAGE_FULL,
            _ => "internal",
        }
    }
}

fn respond(outcome: Outcome, created: bool) -> Response {
    // Dated by the order's last event, so that a retry gets the very same body.
    let order = outcome
        .state
        .order()
        .map(|o| OrderSummary::of(o, o.last_event_at));
    let body = CommandResponse {
        order_id: outcome.order_id.0,
        revision: outcome.revision,
        position: outcome.position,
        events: outcome.events,
        order,
    };
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let mut response = match json_bytes(&body) {
        Ok(json) => (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            json,
        )
            .into_response(),
        Err(error) => {
            return ApiError::internal(format!("writing the answer: {error}")).into_response()
        }
    };
    let headers = response.headers_mut();
    if let Some(etag) = revision_etag(outcome.revision) {
        headers.insert(header::ETAG, etag);
    }
    if created {
        if let Ok(location) = HeaderValue::from_str(&format!("/orders/{}", outcome.order_id.0)) {
            headers.insert(header::LOCATION, location);
        }
    }
    if outcome.replayed {
        headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    response
}

/// Bytes a command's answer usually takes (an event and the order summary: ~1 KB).
const ANSWER_CAPACITY: usize = 2_048;

/// The answer as JSON in one buffer of its usual size. axum's `Json` writes into a 128-byte
/// `BytesMut` through `io::Write`, growing it as it goes: twice the time for a 1 KB answer
/// (docs/performance.md).
fn json_bytes(body: &CommandResponse) -> Result<Vec<u8>, serde_json::Error> {
    let mut json = Vec::with_capacity(ANSWER_CAPACITY);
    serde_json::to_writer(&mut json, body)?;
    Ok(json)
}

fn money(text: &str, currency: Currency, field: &str) -> Result<Money, ApiError> {
    Money::parse(text, currency)
        .map_err(|e| ApiError::bad_request("invalid_amount", format!("`{field}`: {e}")))
}

/// An order's revision as an entity tag: what `If-Match` takes back.
pub(super) fn revision_etag(revision: u64) -> Option<HeaderValue> {
    HeaderValue::try_from(format!("\"{revision}\"")).ok()
}

/// The currency amounts sent for this order are in: the order's own. The views know it, unless
/// another instance placed the order a moment ago; then its first event says.
async fn order_currency(state: &AppState, order: OrderId) -> Result<Currency, ApiError> {
    if let Some(currency) = state.views(|v| v.orders.order(order).map(|o| o.currency()))? {
        return Ok(currency);
    }
    let placed = ledger_replay::history::history(
        &*state.store,
        order,
        ledger_replay::history::Cutoff::Revision(0),
    )
    .await;
    match placed {
        Ok(history) => history.state.order().map(|o| o.currency()),
        Err(ledger_replay::history::HistoryError::UnknownOrder(_)) => None,
        Err(other) => return Err(ApiError::internal(other.to_string())),
    }
    .ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "order_not_found",
            format!("order {order} does not exist"),
        )
    })
}

fn call<'a>(
    state: &'a AppState,
    caller: Principal,
    headers: &'a HeaderMap,
    route: &str,
    order_id: Uuid,
    body: &impl Serialize,
) -> Call<'a> {
    let order_id = OrderId(order_id);
    Call {
        state,
        caller,
        headers,
        order_id,
        fingerprint: fingerprint(route, Some(order_id), body),
        created: false,
    }
}

/// A count of days or stars. The document calls it an `integer`, which in JSON Schema takes
/// `5.0` too (a client's float that holds a whole number): it is read as `5`, and so is the
/// same command sent again with `5`. `5.5`, a negative or a count too large is refused.
fn whole_number<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<u64>,
{
    use serde::de::{Error, Unexpected};
    /// 2^64: every whole float from 0 below it is a `u64` exactly.
    const PAST_U64: f64 = 18_446_744_073_709_551_616.0;
    let number = serde_json::Number::deserialize(deserializer)?;
    let whole = match (number.as_u64(), number.as_f64()) {
        (Some(whole), _) => whole,
        (None, Some(float)) if float.fract() == 0.0 && (0.0..PAST_U64).contains(&float) => {
            float as u64
        }
        (None, float) => {
            let unexpected = match number.as_i64() {
                Some(negative) => Unexpected::Signed(negative),
                None => Unexpected::Float(float.unwrap_or(f64::NAN)),
            };
            return Err(D::Error::invalid_value(
                unexpected,
                &"a whole number, not negative",
            ));
        }
    };
    T::try_from(whole)
        .map_err(|_| D::Error::invalid_value(Unexpected::Unsigned(whole), &"a smaller count"))
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlaceBody {
    pub seller_id: Uuid,
    /// One line.
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub title: String,
    /// A decimal string at most at the currency's minor unit, e.g. "120.00".
    #[schema(max_length = 32, pattern = r"^[0-9]+(\.[0-9]+)?$")]
    pub price: String,
    /// ISO 4217, e.g. "EUR".
    #[schema(pattern = r"^[A-Z]{3}$")]
    pub currency: String,
    #[schema(minimum = 1, maximum = 365)]
    #[serde(deserialize_with = "whole_number")]
    pub delivery_days: u32,
    /// Chosen by the client to place idempotently; made by the service otherwise.
    pub order_id: Option<Uuid>,
}

/// Places an order and pays its price into escrow.
#[utoipa::path(post, path = "/orders", tag = "commands", request_body = PlaceBody,
    params(("Idempotency-Key" = Option<String>, Header, nullable = false, min_length = 1,
        max_length = 255,
        description = "retry-safe key; without \
        `order_id`, a retry lands on the same order"),
        ("X-Correlation-Id" = Option<Uuid>, Header, nullable = false,
            description = "written into the events' metadata")),
    responses((status = 201, body = CommandResponse, description = "The order is placed and \
            its price held in escrow", headers(
            ("Location" = String, description = "The new order's path"),
            ("ETag" = String, description = "The order's revision, quoted: send it back as If-Match"),
            ("Idempotent-Replayed" = Option<String>, description = "`true` on a retry answered from the log"))),
        (status = "4XX", response = Problem)))]
async fn place(
    State(state): State<AppState>,
    caller: Principal,
    _no_query: NoQueryString,
    headers: HeaderMap,
    JsonBody(body): JsonBody<PlaceBody>,
) -> Result<Response, ApiError> {
    let currency = Currency::from_code(&body.currency)
        .map_err(|e| ApiError::bad_request("invalid_currency", e.to_string()))?;
    let price = money(&body.price, currency, "price")?;
    let key = idempotency_key(&headers)?;
    let order_id = match (body.order_id, &key) {
        (Some(id), _) => id,
        // A retry without an order id must land on the same order, not place a second one.
        (None, Some(_)) => Uuid::new_v5(
            &ORDER_ID_NAMESPACE,
            command_id(&caller, key.as_deref()).as_bytes(),
        ),
        // Time-ordered (RFC 9562 v7): a new order's stream name, and its keys in the read
        // model, land next to the last order's in their indexes instead of on a random page.
        (None, None) => Uuid::now_v7(),
    };
    let order = OrderId(order_id);
    let call = Call {
        state: &state,
        caller,
        headers: &headers,
        order_id: order,
        fingerprint: fingerprint("place", None, &body),
        created: true,
    };
    call.run(|by, at| Command::Place {
        by,
        at,
        order_id: order,
        seller: UserId(body.seller_id),
        title: body.title,
        price,
        delivery_days: body.delivery_days,
    })
    .await
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReasonBody {
    #[schema(min_length = 1, max_length = 2000, pattern = r"\S")]
    pub reason: String,
}

#[derive(Serialize, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct EmptyBody {}

macro_rules! simple_command {
    ($name:ident, $path:literal, $doc:literal, $variant:ident) => {
        #[doc = $doc]
        #[utoipa::path(post, path = $path, tag = "commands",
            params(("id" = Uuid, Path, description = "order id"), CommandHeaders),
            responses((status = 200, response = CommandResponse), (status = "4XX", response = Problem)))]
        async fn $name(
            State(state): State<AppState>,
            caller: Principal,
            _no_query: NoQueryString,
            headers: HeaderMap,
            ApiPath(id): ApiPath<Uuid>,
            JsonBody(body): JsonBody<EmptyBody>,
        ) -> Result<Response, ApiError> {
            call(&state, caller, &headers, $path, id, &body)
                .run(|by, at| Command::$variant { by, at })
                .await
        }
    };
}

macro_rules! reason_command {
    ($name:ident, $path:literal, $doc:literal, $variant:ident) => {
        #[doc = $doc]
        #[utoipa::path(post, path = $path, tag = "commands", request_body = ReasonBody,
            params(("id" = Uuid, Path, description = "order id"), CommandHeaders),
            responses((status = 200, response = CommandResponse), (status = "4XX", response = Problem)))]
        async fn $name(
            State(state): State<AppState>,
            caller: Principal,
            _no_query: NoQueryString,
            headers: HeaderMap,
            ApiPath(id): ApiPath<Uuid>,
            JsonBody(body): JsonBody<ReasonBody>,
        ) -> Result<Response, ApiError> {
            call(&state, caller, &headers, $path, id, &body)
                .run(|by, at| Command::$variant { by, at, reason: body.reason })
                .await
        }
    };
}

simple_command!(
    confirm,
    "/orders/{id}/confirm",
    "The seller confirms the order.",
    Confirm
);
simple_command!(
    close,
    "/orders/{id}/close",
    "The buyer accepts the delivery; escrow is released.",
    Close
);
simple_command!(
    accept_cancellation,
    "/orders/{id}/cancellation/accept",
    "The other party agrees to the pending mutual cancellation.",
    AgreeCancellation
);
simple_command!(
    withdraw_cancellation,
    "/orders/{id}/cancellation/withdraw",
    "The requester withdraws a pending mutual cancellation.",
    WithdrawCancellation
);
reason_command!(
    decline,
    "/orders/{id}/decline",
    "The seller declines the order; the buyer is refunded.",
    Decline
);
reason_command!(
    request_revision,
    "/orders/{id}/revision/request",
    "The buyer asks for a revision of the delivery.",
    RequestRevision
);
reason_command!(
    refuse_revision,
    "/orders/{id}/revision/refuse",
    "The seller refuses the revision; the buyer has the decision window to decide.",
    RefuseRevision
);
reason_command!(
    cancel,
    "/orders/{id}/cancel",
    "A party cancels the order where the rules allow it.",
    Cancel
);
reason_command!(
    request_cancellation,
    "/orders/{id}/cancellation/request",
    "A party asks the other to cancel by mutual agreement.",
    RequestCancellation
);
reason_command!(
    open_dispute,
    "/orders/{id}/dispute",
    "A party opens a dispute.",
    OpenDispute
);

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeliverBody {
    #[schema(max_length = 2000)]
    pub message: String,
}

/// The seller delivers.
#[utoipa::path(post, path = "/orders/{id}/deliver", tag = "commands", request_body = DeliverBody,
    params(("id" = Uuid, Path, description = "order id"), CommandHeaders),
    responses((status = 200, response = CommandResponse), (status = "4XX", response = Problem)))]
async fn deliver(
    State(state): State<AppState>,
    caller: Principal,
    _no_query: NoQueryString,
    headers: HeaderMap,
    ApiPath(id): ApiPath<Uuid>,
    JsonBody(body): JsonBody<DeliverBody>,
) -> Result<Response, ApiError> {
    call(&state, caller, &headers, "deliver", id, &body)
        .run(|by, at| Command::Deliver {
            by,
            at,
            message: body.message,
        })
        .await
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptRevisionBody {
    #[schema(minimum = 1, maximum = 365)]
    #[serde(deserialize_with = "whole_number")]
    pub delivery_days: u32,
}

/// The seller accepts a revision request, with the days it will take.
#[utoipa::path(post, path = "/orders/{id}/revision/accept", tag = "commands", request_body = AcceptRevisionBody,
    params(("id" = Uuid, Path, description = "order id"), CommandHeaders),
    responses((status = 200, response = CommandResponse), (status = "4XX", response = Problem)))]
async fn accept_revision(
    State(state): State<AppState>,
    caller: Principal,
    _no_query: NoQueryString,
    headers: HeaderMap,
    ApiPath(id): ApiPath<Uuid>,
    JsonBody(body): JsonBody<AcceptRevisionBody>,
) -> Result<Response, ApiError> {
    call(&state, caller, &headers, "accept_revision", id, &body)
        .run(|by, at| Command::AcceptRevision {
            by,
            at,
            delivery_days: body.delivery_days,
        })
        .await
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtraBody {
    #[schema(schema_with = super::shapes::extra_kind_schema, example = "option")]
    pub kind: ExtraKind,
    #[schema(min_length = 1, max_length = 500, pattern = r"\S")]
    pub description: String,
    /// In the order's currency.
    #[schema(max_length = 32, pattern = r"^[0-9]+(\.[0-9]+)?$")]
    pub price: String,
    #[schema(minimum = 0, maximum = 365)]
    #[serde(deserialize_with = "whole_number")]
    pub extra_days: u32,
}

/// The buyer buys an extra (an option or a custom offer), paid into escrow.
#[utoipa::path(post, path = "/orders/{id}/extras", tag = "commands", request_body = ExtraBody,
    params(("id" = Uuid, Path, description = "order id"), CommandHeaders),
    responses((status = 200, response = CommandResponse), (status = "4XX", response = Problem)))]
async fn buy_extra(
    State(state): State<AppState>,
    caller: Principal,
    _no_query: NoQueryString,
    headers: HeaderMap,
    ApiPath(id): ApiPath<Uuid>,
    JsonBody(body): JsonBody<ExtraBody>,
) -> Result<Response, ApiError> {
    let price = money(
        &body.price,
        order_currency(&state, OrderId(id)).await?,
        "price",
    )?;
    call(&state, caller, &headers, "extras", id, &body)
        .run(|by, at| Command::BuyExtra {
            by,
            at,
            kind: body.kind,
            description: body.description,
            price,
            extra_days: body.extra_days,
        })
        .await
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeadlineBody {
    /// RFC 3339.
    #[schema(value_type = String, format = DateTime)]
    pub due_at: DateTime<Utc>,
}

/// The buyer moves the deadline later.
#[utoipa::path(post, path = "/orders/{id}/deadline", tag = "commands", request_body = DeadlineBody,
    params(("id" = Uuid, Path, description = "order id"), CommandHeaders),
    responses((status = 200, response = CommandResponse), (status = "4XX", response = Problem)))]
async fn extend_deadline(
    State(state): State<AppState>,
    caller: Principal,
    _no_query: NoQueryString,
    headers: HeaderMap,
    ApiPath(id): ApiPath<Uuid>,
    JsonBody(body): JsonBody<DeadlineBody>,
) -> Result<Response, ApiError> {
    call(&state, caller, &headers, "deadline", id, &body)
        .run(|by, at| Command::ExtendDeadline {
            by,
            at,
            due_at: body.due_at,
        })
        .await
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundBody {
    /// In the order's currency; less than what escrow holds.
    #[schema(max_length = 32, pattern = r"^[0-9]+(\.[0-9]+)?$")]
    pub amount: String,
    #[schema(min_length = 1, max_length = 2000, pattern = r"\S")]
    pub reason: String,
}

/// The seller refunds part of what escrow holds.
#[utoipa::path(post, path = "/orders/{id}/refunds", tag = "commands", request_body = RefundBody,
    params(("id" = Uuid, Path, description = "order id"), CommandHeaders),
    responses((status = 200, response = CommandResponse), (status = "4XX", response = Problem)))]
async fn partial_refund(
    State(state): State<AppState>,
    caller: Principal,
    _no_query: NoQueryString,
    headers: HeaderMap,
    ApiPath(id): ApiPath<Uuid>,
    JsonBody(body): JsonBody<RefundBody>,
) -> Result<Response, ApiError> {
    let amount = money(
        &body.amount,
        order_currency(&state, OrderId(id)).await?,
        "amount",
    )?;
    call(&state, caller, &headers, "refunds", id, &body)
        .run(|by, at| Command::PartialRefund {
            by,
            at,
            amount,
            reason: body.reason,
        })
        .await
}

#[derive(Serialize, Deserialize, ToSchema, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ResolveOutcome {
    Release,
    Refund,
    Split,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveBody {
    pub outcome: ResolveOutcome,
    /// For `split` only: what goes back to the buyer.
    #[schema(max_length = 32, pattern = r"^[0-9]+(\.[0-9]+)?$")]
    pub refund: Option<String>,
    #[schema(min_length = 1, max_length = 2000, pattern = r"\S")]
    pub note: String,
}

/// A mediator settles the dispute.
#[utoipa::path(post, path = "/orders/{id}/dispute/resolve", tag = "commands", request_body = ResolveBody,
    params(("id" = Uuid, Path, description = "order id"), CommandHeaders),
    responses((status = 200, response = CommandResponse), (status = "4XX", response = Problem)))]
async fn resolve_dispute(
    State(state): State<AppState>,
    caller: Principal,
    _no_query: NoQueryString,
    headers: HeaderMap,
    ApiPath(id): ApiPath<Uuid>,
    JsonBody(body): JsonBody<ResolveBody>,
) -> Result<Response, ApiError> {
    let resolution = match (body.outcome, &body.refund) {
        (ResolveOutcome::Release, None) => Resolution::Release,
        (ResolveOutcome::Refund, None) => Resolution::Refund,
        (ResolveOutcome::Split, Some(refund)) => Resolution::Split {
            refund: money(refund, order_currency(&state, OrderId(id)).await?, "refund")?,
        },
        (ResolveOutcome::Split, None) => {
            return Err(ApiError::bad_request(
                "malformed_body",
                "a split needs `refund`",
            ))
        }
        (_, Some(_)) => {
            return Err(ApiError::bad_request(
                "malformed_body",
                "`refund` goes only with the outcome `split`",
            ))
        }
    };
    call(&state, caller, &headers, "resolve", id, &body)
        .run(|by, at| Command::ResolveDispute {
            by,
            at,
            resolution,
            note: body.note,
        })
        .await
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewBody {
    #[schema(minimum = 1, maximum = 5)]
    #[serde(deserialize_with = "whole_number")]
    pub rating: u8,
    #[schema(max_length = 2000)]
    pub comment: Option<String>,
}

/// The buyer reviews a closed order, within the review window.
#[utoipa::path(post, path = "/orders/{id}/review", tag = "commands", request_body = ReviewBody,
    params(("id" = Uuid, Path, description = "order id"), CommandHeaders),
    responses((status = 200, response = CommandResponse), (status = "4XX", response = Problem)))]
async fn review(
    State(state): State<AppState>,
    caller: Principal,
    _no_query: NoQueryString,
    headers: HeaderMap,
    ApiPath(id): ApiPath<Uuid>,
    JsonBody(body): JsonBody<ReviewBody>,
) -> Result<Response, ApiError> {
    call(&state, caller, &headers, "review", id, &body)
        .run(|by, at| Command::LeaveReview {
            by,
            at,
            rating: body.rating,
            comment: body.comment,
        })
        .await
}
