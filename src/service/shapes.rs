//! The JSON shapes of the views' types that the API sends as they are, for the OpenAPI
//! document. The views serialise themselves (no copy per answer); these types only describe
//! that JSON, and a black-box test holds each description equal to what the service sends.
//! A field the views always send, `null` where there is nothing, is `required` though optional;
//! one they leave out when empty (a credit's `cause`) is not.
#![expect(
    dead_code,
    reason = "described to the OpenAPI document, never built: the views' own types are sent"
)]

use super::streams::Delivered;
use chrono::{DateTime, Utc};
use ledger_domain::{
    CancellationCause, CloseCause, Currency, ExtraKind, Money, Party, Resolution, Role, Status,
    EVENT_TYPES,
};
use ledger_projections::{CreditReason, Memo};
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::RefOr;
use utoipa::ToSchema;
use uuid::Uuid;

/// An amount in a currency, as `ledger_domain::Money` is written.
#[derive(ToSchema)]
#[schema(as = Money)]
pub struct MoneyShape {
    /// A decimal string at the currency's minor unit, e.g. "120.00".
    amount: String,
    /// ISO 4217, e.g. "EUR".
    currency: String,
}

/// An order as the views hold it (`ledger_projections::OrderSummary`).
#[derive(ToSchema)]
#[schema(as = OrderSummary)]
pub struct OrderSummaryShape {
    order_id: Uuid,
    buyer: Uuid,
    seller: Uuid,
    title: String,
    #[schema(schema_with = status_schema)]
    status: String,
    price: MoneyShape,
    /// What the extras bought so far cost together.
    extras_total: MoneyShape,
    escrow_held: MoneyShape,
    refunded: MoneyShape,
    placed_at: DateTime<Utc>,
    /// The seller's deadline to confirm, while the order waits for it.
    #[schema(required = true)]
    confirm_by: Option<DateTime<Utc>>,
    #[schema(required = true)]
    due_at: Option<DateTime<Utc>>,
    /// Late now (in progress past its deadline) or delivered late.
    late: bool,
    deliveries: u32,
    /// When the order closes by itself unless the buyer acts first.
    #[schema(required = true)]
    auto_close_at: Option<DateTime<Utc>>,
    /// The buyer's deadline to decide after a refused revision.
    #[schema(required = true)]
    decision_deadline: Option<DateTime<Utc>>,
    #[schema(schema_with = party_schema, required = true)]
    cancellation_requested_by: Option<String>,
    #[schema(schema_with = party_schema, required = true)]
    dispute_opened_by: Option<String>,
    /// When the dispute was opened; kept once it is resolved.
    #[schema(required = true)]
    dispute_opened_at: Option<DateTime<Utc>>,
    /// Why the dispute was opened, as the party who opened it said; kept once it is resolved.
    #[schema(required = true)]
    dispute_reason: Option<String>,
    #[schema(required = true)]
    closed_at: Option<DateTime<Utc>>,
    #[schema(required = true)]
    cancelled_at: Option<DateTime<Utc>>,
    /// 1 to 5, once the buyer reviewed the order.
    #[schema(required = true)]
    review_rating: Option<u8>,
    /// The instant of the order's latest event: when anyone last acted on it.
    last_event_at: DateTime<Utc>,
    /// Events folded into this summary: the order stream's revision + 1.
    events: u64,
}

/// One page of `GET /orders` (`ledger_projections::OrderPage`).
#[derive(ToSchema)]
#[schema(as = OrderPage)]
pub struct OrderPageShape {
    orders: Vec<OrderSummaryShape>,
    /// Pass back as `cursor` for the next page; null on the last page.
    #[schema(required = true)]
    next_cursor: Option<Uuid>,
}

/// An event as the event catalogue (docs/events.md) gives it (`ledger_domain::Event`): its
/// `type` says which fields `data` holds.
#[derive(ToSchema)]
#[serde(tag = "type", content = "data")]
#[schema(as = Event)]
pub enum EventShape {
    OrderPlaced(OrderPlacedShape),
    OrderConfirmed(OrderConfirmedShape),
    OrderDelivered(OrderDeliveredShape),
    RevisionRequested(RevisionRequestedShape),
    RevisionAccepted(RevisionAcceptedShape),
    RevisionRefused(RevisionRefusedShape),
    ExtraPurchased(ExtraPurchasedShape),
    DeadlineExtended(DeadlineExtendedShape),
    CancellationRequested(CancellationRequestedShape),
    CancellationWithdrawn(CancellationWithdrawnShape),
    PartialRefundIssued(PartialRefundIssuedShape),
    DisputeOpened(DisputeOpenedShape),
    DisputeResolved(DisputeResolvedShape),
    OrderClosed(OrderClosedShape),
    OrderCancelled(OrderCancelledShape),
    ReviewLeft(ReviewLeftShape),
}

/// The buyer's payment enters escrow.
#[derive(ToSchema)]
#[schema(as = OrderPlaced)]
pub struct OrderPlacedShape {
    order_id: Uuid,
    buyer: Uuid,
    seller: Uuid,
    title: String,
    price: MoneyShape,
    delivery_days: u32,
    /// The platform's rate in force, a decimal string; every later release uses it.
    commission_rate: String,
    /// The seller must confirm before this, or the order expires.
    confirm_by: DateTime<Utc>,
    escrow_after: MoneyShape,
    by: ActorShape,
    at: DateTime<Utc>,
}

#[derive(ToSchema)]
#[schema(as = OrderConfirmed)]
pub struct OrderConfirmedShape {
    due_at: DateTime<Utc>,
    by: ActorShape,
    at: DateTime<Utc>,
}

#[derive(ToSchema)]
#[schema(as = OrderDelivered)]
pub struct OrderDeliveredShape {
    /// 1 for the first delivery, 2 for the first redelivery, and so on.
    delivery_number: u32,
    redelivery: bool,
    late: bool,
    due_at: DateTime<Utc>,
    /// The order closes by itself at this instant if the buyer does nothing.
    auto_close_at: DateTime<Utc>,
    message: String,
    by: ActorShape,
    at: DateTime<Utc>,
}

#[derive(ToSchema)]
#[schema(as = RevisionRequested)]
pub struct RevisionRequestedShape {
    reason: String,
    by: ActorShape,
    at: DateTime<Utc>,
}

#[derive(ToSchema)]
#[schema(as = RevisionAccepted)]
pub struct RevisionAcceptedShape {
    due_at: DateTime<Utc>,
    by: ActorShape,
    at: DateTime<Utc>,
}

#[derive(ToSchema)]
#[schema(as = RevisionRefused)]
pub struct RevisionRefusedShape {
    reason: String,
    /// The buyer may close or dispute until this instant; then the order closes by itself.
    decision_deadline: DateTime<Utc>,
    by: ActorShape,
    at: DateTime<Utc>,
}

/// The buyer pays for an extra into escrow.
#[derive(ToSchema)]
#[schema(as = ExtraPurchased)]
pub struct ExtraPurchasedShape {
    #[schema(schema_with = extra_kind_schema)]
    kind: String,
    description: String,
    price: MoneyShape,
    extra_days: u32,
    /// The delivery deadline after the extra's days were added.
    due_at: DateTime<Utc>,
    escrow_after: MoneyShape,
    by: ActorShape,
    at: DateTime<Utc>,
}

#[derive(ToSchema)]
#[schema(as = DeadlineExtended)]
pub struct DeadlineExtendedShape {
    previous_due_at: DateTime<Utc>,
    due_at: DateTime<Utc>,
    by: ActorShape,
    at: DateTime<Utc>,
}

#[derive(ToSchema)]
#[schema(as = CancellationRequested)]
pub struct CancellationRequestedShape {
    #[schema(schema_with = one_party_schema)]
    requested_by: String,
    reason: String,
    by: ActorShape,
    at: DateTime<Utc>,
}

#[derive(ToSchema)]
#[schema(as = CancellationWithdrawn)]
pub struct CancellationWithdrawnShape {
    by: ActorShape,
    at: DateTime<Utc>,
}

/// Part of the escrow goes back to the buyer's wallet credit.
#[derive(ToSchema)]
#[schema(as = PartialRefundIssued)]
pub struct PartialRefundIssuedShape {
    amount: MoneyShape,
    reason: String,
    escrow_after: MoneyShape,
    by: ActorShape,
    at: DateTime<Utc>,
}

#[derive(ToSchema)]
#[schema(as = DisputeOpened)]
pub struct DisputeOpenedShape {
    #[schema(schema_with = one_party_schema)]
    opened_by: String,
    reason: String,
    by: ActorShape,
    at: DateTime<Utc>,
}

/// The mediator's ruling; the money moves in the events after it in the same append.
#[derive(ToSchema)]
#[schema(as = DisputeResolved)]
pub struct DisputeResolvedShape {
    resolution: ResolutionShape,
    note: String,
    by: ActorShape,
    at: DateTime<Utc>,
}

/// How the mediator settled the dispute.
#[derive(ToSchema)]
#[schema(as = Resolution)]
pub struct ResolutionShape {
    #[schema(schema_with = outcome_schema)]
    outcome: String,
    /// What goes back to the buyer: for a `split` only.
    #[schema(nullable = false)]
    refund: Option<MoneyShape>,
}

/// Escrow is released: the seller's wallet credit and the commission.
#[derive(ToSchema)]
#[schema(as = OrderClosed)]
pub struct OrderClosedShape {
    #[schema(schema_with = close_cause_schema)]
    cause: String,
    /// All that escrow held; `seller_credit + commission = released`.
    released: MoneyShape,
    commission: MoneyShape,
    seller_credit: MoneyShape,
    escrow_after: MoneyShape,
    /// Reviews are accepted strictly before this instant.
    review_closes_at: DateTime<Utc>,
    by: ActorShape,
    at: DateTime<Utc>,
}

/// All that escrow held goes back to the buyer's wallet credit.
#[derive(ToSchema)]
#[schema(as = OrderCancelled)]
pub struct OrderCancelledShape {
    #[schema(schema_with = cancellation_cause_schema)]
    cause: String,
    /// Whether this cancellation lowers the seller's completion rate.
    counts_against_seller: bool,
    refund: MoneyShape,
    reason: String,
    escrow_after: MoneyShape,
    by: ActorShape,
    at: DateTime<Utc>,
}

#[derive(ToSchema)]
#[schema(as = ReviewLeft)]
pub struct ReviewLeftShape {
    #[schema(minimum = 1, maximum = 5)]
    rating: u8,
    #[schema(required = true)]
    comment: Option<String>,
    by: ActorShape,
    at: DateTime<Utc>,
}

/// Who acted: a role and the user holding it.
#[derive(ToSchema)]
#[schema(as = Actor)]
pub struct ActorShape {
    #[schema(schema_with = role_schema)]
    role: String,
    user_id: Uuid,
}

/// What the ledger records beside each order event (`ledger_domain::EventMetadata`).
#[derive(ToSchema)]
#[schema(as = EventMetadata)]
pub struct EventMetadataShape {
    /// The version of the event's data; a newer one than the reader knows stops its views.
    schema_version: u32,
    /// The command that appended the event: the idempotency key's, or a fresh one.
    command_id: Uuid,
    /// The command's fingerprint, to tell a retry from another command under the same id.
    command_digest: String,
    /// `X-Correlation-Id`, or the command id.
    correlation_id: Uuid,
    causation_id: Uuid,
    actor: ActorShape,
}

/// One event of an order's stream as a subscription sends it: the event as the catalogue
/// gives it (`type` and `data`), where it is in the log, and the ledger's metadata.
#[derive(ToSchema)]
#[schema(as = OrderStreamEvent)]
pub struct OrderStreamEventShape {
    /// `order-<order id>`.
    stream: String,
    /// Its place in the order's stream, from 0.
    revision: u64,
    /// Its place in `$all`: the SSE `id`.
    position: u64,
    event_id: Uuid,
    recorded_at: DateTime<Utc>,
    #[serde(flatten)]
    event: EventShape,
    metadata: EventMetadataShape,
}

/// The `data` of each SSE event of a subscription but `caught-up`: an order's event, or, on
/// `$all` and its filters, another application's.
pub struct StreamEventShape;

impl utoipa::PartialSchema for StreamEventShape {
    fn schema() -> RefOr<Schema> {
        any_of::<OrderStreamEventShape, Delivered>(
            "An `order-…` stream's event is an OrderStreamEvent; any other stream's, an OtherStreamEvent",
        )
    }
}

impl ToSchema for StreamEventShape {
    fn name() -> std::borrow::Cow<'static, str> {
        "StreamEvent".into()
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        with_references::<OrderStreamEventShape>(schemas);
        with_references::<Delivered>(schemas);
    }
}

/// One of two named schemas, each by reference: a shape serde writes untagged, which utoipa
/// cannot derive for types it names elsewhere.
fn any_of<A: ToSchema, B: ToSchema>(description: &str) -> RefOr<Schema> {
    utoipa::openapi::schema::AnyOfBuilder::new()
        .item(utoipa::openapi::Ref::from_schema_name(A::name()))
        .item(utoipa::openapi::Ref::from_schema_name(B::name()))
        .description(Some(description))
        .into()
}

/// `T`'s schema and those it refers to: what a hand-written `ToSchema::schemas` lists.
fn with_references<T: ToSchema>(schemas: &mut Vec<(String, RefOr<Schema>)>) {
    schemas.push((T::name().into(), T::schema()));
    T::schemas(schemas);
}

/// The `data` of a subscription's one `caught-up` event: the last event there was when the
/// subscriber connected, `null` if there was none.
#[derive(ToSchema)]
#[schema(as = CaughtUp)]
#[serde(untagged)]
pub enum CaughtUpShape {
    /// On `$all`, `$ce-…` and `$et-…`: its `$all` position.
    #[schema(title = "CaughtUpAtPosition")]
    AtPosition {
        #[schema(required = true)]
        position: Option<u64>,
    },
    /// On one stream: its revision.
    #[schema(title = "CaughtUpAtRevision")]
    AtRevision {
        #[schema(required = true)]
        revision: Option<u64>,
    },
}

/// The `data` of every SSE event of a subscription: a StreamEvent, or for the one `caught-up`
/// event a CaughtUp.
pub struct SubscriptionDataShape;

impl utoipa::PartialSchema for SubscriptionDataShape {
    fn schema() -> RefOr<Schema> {
        any_of::<StreamEventShape, CaughtUpShape>(
            "The `caught-up` event's data is a CaughtUp; every other event's, a StreamEvent",
        )
    }
}

impl ToSchema for SubscriptionDataShape {
    fn name() -> std::borrow::Cow<'static, str> {
        "SubscriptionData".into()
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        with_references::<StreamEventShape>(schemas);
        with_references::<CaughtUpShape>(schemas);
    }
}

/// One Server-Sent Event of a subscription, its fields as OpenAPI 3.2's `itemSchema` reads an
/// event stream (and tools such as Schemathesis read `schema` already): `data` is JSON text,
/// whose shape `contentSchema` gives. utoipa has no builder for that keyword, so it goes in
/// as an extension, which is written as a field of the schema like any other.
pub struct SubscriptionEventShape;

impl utoipa::PartialSchema for SubscriptionEventShape {
    fn schema() -> RefOr<Schema> {
        let text = |description: &str| {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some(description))
        };
        let data_shape = serde_json::json!({
            "$ref": format!("#/components/schemas/{}", SubscriptionDataShape::name())
        });
        let data = text("JSON: a StreamEvent, or on `caught-up` a CaughtUp")
            .content_media_type("application/json")
            .extensions(Some([("contentSchema", data_shape)].into_iter().collect()));
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "One Server-Sent Event; comment lines (`:` keep-alives) are not events",
            ))
            .property(
                "id",
                text("The event's `$all` position, for `Last-Event-ID`; none on `caught-up`"),
            )
            .property("event", text("The event's type, or `caught-up`"))
            .property("data", data)
            .required("event")
            .required("data")
            .into()
    }
}

impl ToSchema for SubscriptionEventShape {
    fn name() -> std::borrow::Cow<'static, str> {
        "SubscriptionEvent".into()
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        with_references::<SubscriptionDataShape>(schemas);
    }
}

/// One event of an order's timeline (`ledger_replay::history::Entry`).
#[derive(ToSchema)]
#[schema(as = HistoryEntry)]
pub struct EntryShape {
    revision: u64,
    position: u64,
    at: DateTime<Utc>,
    actor: ActorShape,
    #[schema(schema_with = event_type_schema)]
    event_type: String,
    /// How the event moved money, in words; null if it moved none.
    #[schema(required = true)]
    money_effect: Option<String>,
    #[schema(schema_with = nullable_status_schema, required = true)]
    status_after: Option<String>,
    /// The command that appended the event (the idempotency key's, or a fresh one): the
    /// events one command appended share it.
    command_id: Uuid,
    /// `X-Correlation-Id` as the command was sent, or the command id.
    correlation_id: Uuid,
    event: EventShape,
}

/// An order holding escrow, and for how long (`GET /escrow/orders`).
#[derive(ToSchema)]
#[schema(as = AgedHolding)]
pub struct AgedHoldingShape {
    order: Uuid,
    held: MoneyShape,
    /// Held since this instant (placement, or the last payment into it).
    since: DateTime<Utc>,
    age_days: i64,
}

/// A seller's completion rate, all time and over the recent window.
#[derive(ToSchema)]
#[schema(as = CompletionRate)]
pub struct CompletionRateShape {
    seller: Uuid,
    all_time: RateFiguresShape,
    recent: RateFiguresShape,
    recent_days: u32,
}

/// The counts behind a rate, and the rate.
#[derive(ToSchema)]
#[schema(as = RateFigures)]
pub struct RateFiguresShape {
    completed: u64,
    counted_cancellations: u64,
    /// completed / (completed + counted_cancellations), a decimal string at four places
    /// ("0.6667"); null with neither.
    #[schema(required = true)]
    rate: Option<String>,
}

/// An order's review window (`ledger_projections::ReviewWindow`).
#[derive(ToSchema)]
#[schema(as = ReviewWindow)]
pub struct ReviewWindowShape {
    order: Uuid,
    buyer: Uuid,
    seller: Uuid,
    opens_at: DateTime<Utc>,
    /// Reviews are accepted strictly before this instant.
    closes_at: DateTime<Utc>,
    #[schema(required = true)]
    review: Option<LeftReviewShape>,
}

#[derive(ToSchema)]
#[schema(as = LeftReview)]
pub struct LeftReviewShape {
    rating: u8,
    at: DateTime<Utc>,
}

/// One balanced posting of the journal.
#[derive(ToSchema)]
#[schema(as = Posting)]
pub struct PostingShape {
    position: u64,
    order: Uuid,
    at: DateTime<Utc>,
    /// `payments`, `escrow:<order>`, `wallet:<user>` or `commission`.
    debit: String,
    credit: String,
    amount: MoneyShape,
    #[schema(schema_with = memo_schema)]
    memo: String,
}

/// A currency's wallet: its balance and the statement lines behind it.
#[derive(ToSchema)]
#[schema(as = Wallet)]
pub struct WalletShape {
    /// What the wallet holds now.
    balance: MoneyShape,
    /// With `after` or `until`: what it held as the period began (zero without `after`).
    opening: Option<MoneyShape>,
    /// With `after` or `until`: what it held as the period ended (now without `until`).
    closing: Option<MoneyShape>,
    /// The lines (of the period, with one), in log order.
    lines: Vec<StatementLineShape>,
}

#[derive(ToSchema)]
#[schema(as = StatementLine)]
pub struct StatementLineShape {
    order: Uuid,
    position: u64,
    at: DateTime<Utc>,
    amount: MoneyShape,
    reason: CreditReasonShape,
}

/// Why the wallet was credited; `cause` for a cancellation refund only.
#[derive(ToSchema)]
#[schema(as = CreditReason)]
pub struct CreditReasonShape {
    #[schema(schema_with = credit_kind_schema)]
    kind: String,
    #[schema(schema_with = cancellation_cause_schema)]
    cause: Option<String>,
}

/// A string enum of `values` as serde writes them, so that a new variant is listed without
/// an edit here.
fn names_of<T: serde::Serialize>(values: &[T], nullable: bool) -> RefOr<Schema> {
    let mut names: Vec<serde_json::Value> = values
        .iter()
        .filter_map(|v| serde_json::to_value(v).ok())
        .collect();
    if nullable {
        names.push(serde_json::Value::Null);
    }
    let schema_type = if nullable {
        utoipa::openapi::schema::SchemaType::from_iter([Type::String, Type::Null])
    } else {
        Type::String.into()
    };
    ObjectBuilder::new()
        .schema_type(schema_type)
        .enum_values(Some(names))
        .into()
}

fn status_schema() -> RefOr<Schema> {
    names_of(&Status::ALL, false)
}

fn nullable_status_schema() -> RefOr<Schema> {
    names_of(&Status::ALL, true)
}

fn party_schema() -> RefOr<Schema> {
    names_of(&[Party::Buyer, Party::Seller], true)
}

fn role_schema() -> RefOr<Schema> {
    names_of(&Role::ALL, false)
}

fn one_party_schema() -> RefOr<Schema> {
    names_of(&[Party::Buyer, Party::Seller], false)
}

pub(super) fn extra_kind_schema() -> RefOr<Schema> {
    names_of(&[ExtraKind::Option, ExtraKind::CustomOffer], false)
}

/// The states `GET /orders?state=` takes, as its description writes them (`in_progress`).
pub(super) fn state_query_schema() -> RefOr<Schema> {
    let snake_case = |status: &Status| {
        let mut name = String::new();
        for (index, character) in format!("{status:?}").chars().enumerate() {
            if character.is_ascii_uppercase() && index > 0 {
                name.push('_');
            }
            name.push(character.to_ascii_lowercase());
        }
        name
    };
    let names: Vec<String> = Status::ALL.iter().map(snake_case).collect();
    names_of(&names, false)
}

fn close_cause_schema() -> RefOr<Schema> {
    names_of(&CloseCause::ALL, false)
}

/// The `outcome` names, as serde tags each resolution.
fn outcome_schema() -> RefOr<Schema> {
    let split = Currency::from_code("EUR").map(|eur| Resolution::Split {
        refund: Money::zero(eur),
    });
    let outcomes: Vec<serde_json::Value> = [Ok(Resolution::Release), Ok(Resolution::Refund), split]
        .iter()
        .flatten()
        .filter_map(|resolution| serde_json::to_value(resolution).ok())
        .map(|resolution| resolution["outcome"].clone())
        .collect();
    names_of(&outcomes, false)
}

fn event_type_schema() -> RefOr<Schema> {
    names_of(&EVENT_TYPES, false)
}

fn credit_kind_schema() -> RefOr<Schema> {
    let reasons = [
        CreditReason::PartialRefund,
        CreditReason::CancellationRefund {
            cause: CancellationCause::Mutual,
        },
        CreditReason::Release,
    ];
    let kinds: Vec<serde_json::Value> = reasons
        .iter()
        .filter_map(|reason| serde_json::to_value(reason).ok())
        .map(|reason| reason["kind"].clone())
        .collect();
    names_of(&kinds, false)
}

fn cancellation_cause_schema() -> RefOr<Schema> {
    names_of(&CancellationCause::ALL, false)
}

fn memo_schema() -> RefOr<Schema> {
    names_of(&Memo::ALL, false)
}
