//! The JSON shapes of the views' types that the API sends as they are, for the OpenAPI
//! document. The views serialise themselves (no copy per answer); these types only describe
//! that JSON, and a black-box test holds each description equal to what the service sends.
//! A field the views always send, `null` where there is nothing, is `required` though optional;
//! one they leave out when empty (a credit's `cause`) is not.
#![expect(
    dead_code,
    reason = "described to the OpenAPI document, never built: the views' own types are sent"
)]

use chrono::{DateTime, Utc};
use ledger_domain::{CancellationCause, Party, Role, Status, EVENT_TYPES};
use ledger_projections::CreditReason;
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
    #[schema(required = true)]
    closed_at: Option<DateTime<Utc>>,
    #[schema(required = true)]
    cancelled_at: Option<DateTime<Utc>>,
    /// 1 to 5, once the buyer reviewed the order.
    #[schema(required = true)]
    review_rating: Option<u8>,
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

/// An event as the event catalogue (docs/events.md) gives it.
#[derive(ToSchema)]
#[schema(as = Event)]
pub struct EventShape {
    #[schema(schema_with = event_type_schema)]
    r#type: String,
    // Described by `event_data_schema`, which a doc comment here would not reach.
    #[schema(schema_with = event_data_schema)]
    data: (),
}

/// Who acted: a role and the user holding it.
#[derive(ToSchema)]
#[schema(as = Actor)]
pub struct ActorShape {
    #[schema(schema_with = role_schema)]
    role: String,
    user_id: Uuid,
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
    /// completed / (completed + counted_cancellations), a decimal string; null with neither.
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
    memo: String,
}

/// A currency's wallet: its balance and the statement lines behind it.
#[derive(ToSchema)]
#[schema(as = Wallet)]
pub struct WalletShape {
    balance: MoneyShape,
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

/// Any fields, said outright: generated clients read an object without properties as one
/// that may have none (openapi-typescript: `Record<string, never>`).
fn event_data_schema() -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some("The event's fields, by type: docs/events.md."))
        .additional_properties(Some(
            utoipa::openapi::schema::AdditionalProperties::FreeForm(true),
        ))
        .into()
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
