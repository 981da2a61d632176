//! The JSON shapes of the views' types that the API sends as they are, for the OpenAPI
//! document. The views serialise themselves (no copy per answer); these types only describe
//! that JSON, and a black-box test holds each description equal to what the service sends.
//! Every field is always sent, `null` where there is nothing: hence `required` on options.
#![expect(
    dead_code,
    reason = "described to the OpenAPI document, never built: the views' own types are sent"
)]

use chrono::{DateTime, Utc};
use ledger_domain::{Party, Status};
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

fn party_schema() -> RefOr<Schema> {
    names_of(&[Party::Buyer, Party::Seller], true)
}
