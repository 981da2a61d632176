//! The read routes: the views, and an order's history from its stream, one module per
//! resource; the query parameters and cursors they share.

use crate::service::auth::{ApiRole, Principal};
use crate::service::problem::ApiError;
use crate::service::reports;
use crate::service::AppState;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use ledger_domain::{Order, OrderId};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use uuid::Uuid;

mod money;
mod orders;
mod reputation;

const STAFF_SEEING_ORDERS: &[ApiRole] = &[ApiRole::Mediator, ApiRole::Finance];
const STAFF_SEEING_HISTORY: &[ApiRole] = &[ApiRole::Mediator];

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(orders::routes())
        .merge(money::routes())
        .merge(reputation::routes())
}

fn order_not_found(order: OrderId) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "order_not_found",
        format!("order {order} does not exist"),
    )
}

/// The order as the views hold it, if the caller may see it.
fn visible_order(
    state: &AppState,
    caller: &Principal,
    id: OrderId,
    staff: &[ApiRole],
) -> Result<Order, ApiError> {
    let order = state
        .views(|v| v.orders.order(id).cloned())?
        .ok_or_else(|| order_not_found(id))?;
    caller.require_party_or(&order, staff)?;
    Ok(order)
}

/// An RFC 3339 instant from a query string, where `+` reads as a space: `…T10:00:00+01:00`
/// typed into a URL arrives as `…T10:00:00 01:00`, and is read as it was meant.
fn instant_in_query<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<DateTime<Utc>>, D::Error> {
    let text = String::deserialize(deserializer)?;
    let offset = |tail: &str| {
        tail.len() == 5
            && tail.bytes().enumerate().all(|(i, b)| match i {
                2 => b == b':',
                _ => b.is_ascii_digit(),
            })
    };
    let mended = match text.rsplit_once(' ') {
        Some((instant, tail)) if offset(tail) => format!("{instant}+{tail}"),
        _ => text.clone(),
    };
    DateTime::parse_from_rfc3339(&mended)
        .map(|at| Some(at.with_timezone(&Utc)))
        .map_err(|e| {
            serde::de::Error::custom(format!(
                "`{text}` is not an RFC 3339 instant ({e}), e.g. 2026-03-02T09:00:00Z; in a URL write `+` as `%2B`"
            ))
        })
}

/// A `$all` position asked for in a query: at most `i64::MAX`, as the OpenAPI document's
/// `int64` says (positions are the log's row ids). A larger one is a mistake, refused rather
/// than read as "after the end".
fn position_in_query<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<u64>, D::Error> {
    let largest = i64::MAX.unsigned_abs();
    bounded_in_query(deserializer, largest, "past any position of a log")
}

/// A page's size asked for in a query: at most `i32::MAX`, as the document's `int32` says;
/// every read clamps it far below that anyway. At least 1: a page "of at most 0" would have
/// to be empty, and one entry given instead would break the word.
fn page_size_in_query<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<usize>, D::Error> {
    let largest = i32::MAX.unsigned_abs();
    let size = bounded_in_query(deserializer, u64::from(largest), "larger than any page")?;
    if size == Some(0) {
        return Err(serde::de::Error::custom(
            "0 is no page size: ask for 1 or more, or leave `limit` out",
        ));
    }
    Ok(size.map(|size| usize::try_from(size).unwrap_or(usize::MAX)))
}

/// A revision of an order's stream, which positions bound.
fn revision_in_query<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<u64>, D::Error> {
    let largest = i64::MAX.unsigned_abs();
    bounded_in_query(deserializer, largest, "past any revision of a stream")
}

/// What a generated client checks against a documented format, the service takes, and
/// nothing past it. Read as text, so that `-1` or `ten` is answered with what was sent and
/// what is wanted, not "invalid digit found in string".
fn bounded_in_query<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
    largest: u64,
    past_it: &str,
) -> Result<Option<u64>, D::Error> {
    let text = String::deserialize(deserializer)?;
    let shown: String = text.chars().take(40).collect();
    let digits_only = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    match text.parse::<u64>() {
        Ok(number) if number <= largest => Ok(Some(number)),
        _ if digits_only => Err(serde::de::Error::custom(format!(
            "{shown} is {past_it} (at most {largest})"
        ))),
        _ => Err(serde::de::Error::custom(format!(
            "`{shown}` is not a whole number (digits only, at most {largest})"
        ))),
    }
}

/// A parameter a read does not take is refused, never passed over: `/orders/{id}?at=` (the
/// history's `at`) or `/journal?to=` answered as if unasked would look like an answer to it.
fn bad_query(rejection: axum::extract::rejection::QueryRejection) -> ApiError {
    ApiError::bad_request("invalid_query", rejection.body_text())
}

/// Cuts `fetched` (read one past the page, to know whether another follows) to `limit`,
/// and gives the page's last item if another page follows: what its cursor names.
fn last_of_page<T>(fetched: &mut Vec<T>, limit: usize) -> Option<&T> {
    let more = fetched.len() > limit;
    fetched.truncate(limit);
    fetched.last().filter(|_| more)
}

/// `<instant>_<order id>`: where a page ordered by an instant, then order id, ended (the
/// holding's `since`, the window's `closes_at`).
fn instant_cursor(at: DateTime<Utc>, order: OrderId) -> String {
    format!("{}_{}", reports::instant(at), order)
}

fn parse_instant_cursor(text: &str, list: &str) -> Result<(DateTime<Utc>, OrderId), ApiError> {
    let bad = || {
        ApiError::bad_request(
            "invalid_query",
            format!("`{text}` is not a cursor of {list}"),
        )
    };
    let (at, order) = text.rsplit_once('_').ok_or_else(bad)?;
    let at = DateTime::parse_from_rfc3339(at).map_err(|_| bad())?;
    let order = Uuid::parse_str(order).map_err(|_| bad())?;
    Ok((at.with_timezone(&Utc), OrderId(order)))
}
