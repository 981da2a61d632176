//! The read routes: the views, and an order's history from its stream.

use super::auth::{ApiRole, Principal};
use super::problem::{ApiError, ApiPath, NoQueryString, Problem};
use super::reports::{self, wants_csv, Report};
use super::AppState;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use ledger_domain::{Currency, Decimal, Money, Order, OrderId, Status, UserId};
use ledger_projections::{
    CompletionRate, CreditReason, OrderFilter, OrderPage, OrderSummary, Period, Posting,
    ReviewWindow, Wallet, AGING_BUCKET_UPPER_DAYS, ORDER_PAGE_SIZE_MAX,
};
use ledger_replay::history::{history, Cutoff, Entry, HistoryError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

/// Orders in a page when the client does not say.
const ORDER_PAGE_SIZE_DEFAULT: usize = 50;
/// Journal postings in a page when the client does not say, and at most.
const JOURNAL_PAGE_DEFAULT: usize = 500;
const JOURNAL_PAGE_MAX: usize = 5_000;
/// Most orders holding escrow in one page, when a page is asked for.
const ESCROW_PAGE_MAX: usize = 5_000;
/// The most statement lines one page of `/wallets/{user_id}` holds.
const WALLET_PAGE_MAX: usize = 5_000;
/// Most history entries a page holds (each up to a few kilobytes with its event).
const HISTORY_PAGE_MAX: usize = 1_000;
/// Review windows in a page when the client does not say, and at most.
const REVIEW_WINDOW_PAGE_DEFAULT: usize = 100;
const REVIEW_WINDOW_PAGE_MAX: usize = 1_000;

const STAFF_SEEING_ORDERS: &[ApiRole] = &[ApiRole::Mediator, ApiRole::Finance];
const STAFF_SEEING_HISTORY: &[ApiRole] = &[ApiRole::Mediator];
/// Who may list every buyer's review windows: a service that reminds buyers, and mediators
/// (a buyer lists their own).
const SEEING_REVIEW_WINDOWS: &[ApiRole] = &[ApiRole::Service, ApiRole::Mediator];

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(order_summary))
        .routes(routes!(order_history))
        .routes(routes!(list_orders))
        .routes(routes!(disputes_waiting))
        .routes(routes!(escrow_totals))
        .routes(routes!(escrow_orders))
        .routes(routes!(wallet))
        .routes(routes!(completion_rate))
        .routes(routes!(review_window))
        .routes(routes!(review_windows_closing))
        .routes(routes!(journal))
        .routes(routes!(trial_balance))
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

/// The order summary: state, parties, price, extras, escrow held, deadlines, late or not.
#[utoipa::path(get, path = "/orders/{id}", tag = "queries",
    params(("id" = Uuid, Path, description = "order id")),
    responses((status = 200, body = super::shapes::OrderSummaryShape, headers(
            ("ETag" = String, description = "The revision of the order shown, quoted: send it \
                back as If-Match to act only on the order as read"))),
        (status = "4XX", response = Problem)))]
async fn order_summary(
    State(state): State<AppState>,
    caller: Principal,
    ApiPath(id): ApiPath<Uuid>,
    _no_query: NoQueryString,
) -> Result<Response, ApiError> {
    let order = visible_order(&state, &caller, OrderId(id), STAFF_SEEING_ORDERS)?;
    let etag = order
        .events
        .checked_sub(1)
        .and_then(super::commands::revision_etag);
    let summary = Json(OrderSummary::of(&order, state.clock.now()));
    Ok(match etag {
        Some(etag) => ([(header::ETAG, etag)], summary).into_response(),
        None => summary.into_response(),
    })
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// The order as it stood at this instant (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    #[serde(default, deserialize_with = "instant_in_query")]
    at: Option<DateTime<Utc>>,
    /// The order as it stood at this revision of its stream.
    #[serde(default, deserialize_with = "revision_in_query")]
    revision: Option<u64>,
    /// The first entry's revision (0 when absent).
    #[serde(default, deserialize_with = "revision_in_query")]
    from: Option<u64>,
    /// At most this many entries, the next page in `next_from` and `Link`; every entry up to
    /// the cutoff when absent.
    #[param(value_type = Option<i32>, minimum = 1)]
    #[serde(default, deserialize_with = "page_size_in_query")]
    limit: Option<usize>,
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

#[derive(Serialize, ToSchema)]
pub struct HistoryResponse {
    order_id: Uuid,
    /// Every event up to the cutoff, with actor, instant, money effect and state after.
    #[schema(value_type = Vec<super::shapes::EntryShape>)]
    entries: Vec<Entry>,
    /// The order as it stood at the cutoff (after the last entry of the last page); none
    /// before it was placed.
    #[schema(value_type = Option<super::shapes::OrderSummaryShape>)]
    order: Option<OrderSummary>,
    /// With `limit`: pass as `from` for the next page; none on the last.
    next_from: Option<u64>,
}

/// Every event of the order, and the order as it stood at an instant or revision.
#[utoipa::path(get, path = "/orders/{id}/history", tag = "queries",
    params(("id" = Uuid, Path, description = "order id"), HistoryQuery),
    responses((status = 200, body = HistoryResponse,
            headers(("Link" = String, description = "The next page, `<path>; rel=\"next\"` (RFC 8288); absent on the last"))),
        (status = "4XX", response = Problem)))]
async fn order_history(
    State(state): State<AppState>,
    caller: Principal,
    ApiPath(id): ApiPath<Uuid>,
    query: Result<Query<HistoryQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(bad_query)?;
    let cutoff = match (query.at, query.revision) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "invalid_query",
                "give `at` or `revision`, not both",
            ))
        }
        (Some(at), None) => Cutoff::At(at),
        (None, Some(revision)) => Cutoff::Revision(revision),
        (None, None) => Cutoff::Now,
    };
    // Who may see it is decided on the whole order, not on the part before the cutoff.
    let whole = history(&*state.store, OrderId(id), Cutoff::Now)
        .await
        .map_err(history_error)?;
    let order = whole
        .state
        .order()
        .ok_or_else(|| order_not_found(OrderId(id)))?;
    caller.require_party_or(order, STAFF_SEEING_HISTORY)?;
    // The order as it stood at a later instant is not known yet: `late` is judged now.
    let now = match cutoff {
        Cutoff::At(at) => at.min(state.clock.now()),
        _ => state.clock.now(),
    };
    let cut = whole.up_to(cutoff).map_err(history_error)?;
    let limit = query.limit.map(|limit| limit.clamp(1, HISTORY_PAGE_MAX));
    let (entries, next_from) = page_of_entries(
        cut.entries,
        query.from.unwrap_or(0),
        limit.unwrap_or(usize::MAX),
    );
    let next_page = next_from.zip(limit).map(|(from, limit)| {
        reports::with_parameters(
            format!("/orders/{id}/history?from={from}&limit={limit}"),
            [
                ("at", query.at.map(reports::instant)),
                ("revision", query.revision.map(|r| r.to_string())),
            ],
        )
    });
    let body = HistoryResponse {
        order_id: id,
        order: cut.state.order().map(|o| OrderSummary::of(o, now)),
        entries,
        next_from,
    };
    Ok(reports::json_page(body, next_page.as_deref()))
}

/// The entries from revision `from` on, at most `limit`, and the revision the next page
/// starts at if any are left.
fn page_of_entries(entries: Vec<Entry>, from: u64, limit: usize) -> (Vec<Entry>, Option<u64>) {
    let mut rest = entries
        .into_iter()
        .skip_while(|entry| entry.revision < from);
    let page: Vec<Entry> = rest.by_ref().take(limit).collect();
    (page, rest.next().map(|entry| entry.revision))
}

fn history_error(error: HistoryError) -> ApiError {
    match error {
        HistoryError::UnknownOrder(order) => order_not_found(order),
        not_yet @ HistoryError::RevisionNotReached { .. } => ApiError::new(
            StatusCode::NOT_FOUND,
            "revision_not_found",
            not_yet.to_string(),
        ),
        other => ApiError::internal(other.to_string()),
    }
}

/// A parameter a read does not take is refused, never passed over: `/orders/{id}?at=` (the
/// history's `at`) or `/journal?to=` answered as if unasked would look like an answer to it.
fn bad_query(rejection: axum::extract::rejection::QueryRejection) -> ApiError {
    ApiError::bad_request("invalid_query", rejection.body_text())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    buyer: Option<Uuid>,
    seller: Option<Uuid>,
    // The states, listed by the schema (a doc comment here would not be shown beside it).
    #[param(schema_with = super::shapes::state_query_schema)]
    state: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<Uuid>,
    #[param(value_type = Option<i32>, minimum = 1)]
    #[serde(default, deserialize_with = "page_size_in_query")]
    limit: Option<usize>,
}

fn parse_status(text: &str) -> Result<Status, ApiError> {
    let wanted: String = text.chars().filter(|c| *c != '_').collect();
    Status::ALL
        .into_iter()
        .find(|s| format!("{s:?}").eq_ignore_ascii_case(&wanted))
        .ok_or_else(|| {
            let states: Vec<String> = Status::ALL.iter().map(|s| format!("{s:?}")).collect();
            ApiError::bad_request(
                "invalid_query",
                format!("`{text}` is not an order state: {}", states.join(", ")),
            )
        })
}

/// Orders by buyer, seller and state, a page at a time. Buyers and sellers see their own.
#[utoipa::path(get, path = "/orders", tag = "queries", params(ListQuery),
    responses((status = 200, body = super::shapes::OrderPageShape, headers(("Link" = String, description = "The next page, `<path>; rel=\"next\"` (RFC 8288); absent on the last"))),
        (status = "4XX", response = Problem)))]
async fn list_orders(
    State(state): State<AppState>,
    caller: Principal,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(bad_query)?;
    let mut filter = OrderFilter {
        buyer: query.buyer.map(UserId),
        seller: query.seller.map(UserId),
        status: query.state.as_deref().map(parse_status).transpose()?,
    };
    match caller.role {
        ApiRole::Mediator | ApiRole::Finance => {}
        ApiRole::Buyer | ApiRole::Seller => {
            let own = if caller.role == ApiRole::Buyer {
                &mut filter.buyer
            } else {
                &mut filter.seller
            };
            match own {
                Some(user) if *user != caller.user => {
                    return Err(ApiError::forbidden(
                        "buyers and sellers list only their own orders",
                    ))
                }
                _ => *own = Some(caller.user),
            }
        }
        ApiRole::Service => caller.require_role(STAFF_SEEING_ORDERS)?,
    }
    let now = state.clock.now();
    let limit = query.limit.unwrap_or(ORDER_PAGE_SIZE_DEFAULT);
    let page: OrderPage = state.views(|v| {
        v.orders
            .list(&filter, query.cursor.map(OrderId), limit, now)
    })?;
    // The filters as asked (a party's own is implied again), so the link reads the same list.
    let next_page = page.next_cursor.map(|cursor| {
        reports::with_parameters(
            format!("/orders?cursor={cursor}&limit={limit}"),
            [
                ("buyer", query.buyer.map(|u| u.to_string())),
                ("seller", query.seller.map(|u| u.to_string())),
                ("state", filter.status.map(|s| format!("{s:?}"))),
            ],
        )
    });
    Ok(reports::json_page(page, next_page.as_deref()))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DisputesQuery {
    /// At most this many (50 when absent, at most 500).
    #[param(value_type = Option<i32>, minimum = 1)]
    #[serde(default, deserialize_with = "page_size_in_query")]
    limit: Option<usize>,
    /// Where the previous page ended: its `next_cursor`.
    cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct DisputesWaiting {
    /// Orders in dispute, the longest waiting first (`dispute_opened_at`, then order id).
    #[schema(value_type = Vec<super::shapes::OrderSummaryShape>)]
    disputes: Vec<OrderSummary>,
    /// Pass back as `cursor` for the next page; null on the last.
    next_cursor: Option<String>,
}

/// The disputes still open, the longest waiting first: a mediator's queue.
#[utoipa::path(get, path = "/disputes", tag = "queries", params(DisputesQuery),
    responses((status = 200, body = DisputesWaiting,
            headers(("Link" = String, description = "The next page, `<path>; rel=\"next\"` (RFC 8288); absent on the last"))),
        (status = "4XX", response = Problem)))]
async fn disputes_waiting(
    State(state): State<AppState>,
    caller: Principal,
    query: Result<Query<DisputesQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require_role(STAFF_SEEING_ORDERS)?;
    let Query(query) = query.map_err(bad_query)?;
    let after = query
        .cursor
        .as_deref()
        .map(|cursor| parse_instant_cursor(cursor, "/disputes"))
        .transpose()?;
    let limit = query
        .limit
        .unwrap_or(ORDER_PAGE_SIZE_DEFAULT)
        .clamp(1, ORDER_PAGE_SIZE_MAX);
    let now = state.clock.now();
    // One more than the page, to know whether another follows.
    let mut disputes = state.views(|v| v.orders.disputes_waiting(after, limit + 1, now))?;
    let more = disputes.len() > limit;
    disputes.truncate(limit);
    let next_cursor = disputes.last().filter(|_| more).and_then(|last| {
        let opened_at = last.dispute_opened_at?;
        Some(instant_cursor(opened_at, last.order_id))
    });
    let next_page = next_cursor
        .as_ref()
        .map(|cursor| format!("/disputes?limit={limit}&cursor={cursor}"));
    let body = DisputesWaiting {
        disputes,
        next_cursor,
    };
    Ok(reports::json_page(body, next_page.as_deref()))
}

#[derive(Serialize, ToSchema)]
pub struct EscrowCurrency {
    #[schema(value_type = String)]
    currency: Currency,
    #[schema(value_type = String)]
    held: Decimal,
    aging: Aging,
}

// The buckets' names below are the view's bounds.
const _: () = assert!(
    AGING_BUCKET_UPPER_DAYS.len() == 3
        && AGING_BUCKET_UPPER_DAYS[0] == 7
        && AGING_BUCKET_UPPER_DAYS[1] == 30
        && AGING_BUCKET_UPPER_DAYS[2] == 90
);

/// Held for 0–7, 8–30, 31–90 and more than 90 days, in that order.
#[derive(Serialize, ToSchema)]
pub struct Aging {
    #[serde(rename = "0-7")]
    #[schema(value_type = String)]
    up_to_7_days: Decimal,
    #[serde(rename = "8-30")]
    #[schema(value_type = String)]
    up_to_30_days: Decimal,
    #[serde(rename = "31-90")]
    #[schema(value_type = String)]
    up_to_90_days: Decimal,
    #[serde(rename = "over-90")]
    #[schema(value_type = String)]
    over_90_days: Decimal,
}

#[derive(Serialize, ToSchema)]
pub struct EscrowTotals {
    currencies: Vec<EscrowCurrency>,
}

/// What escrow holds, per currency, with its aging.
#[utoipa::path(get, path = "/escrow", tag = "queries",
    responses((status = 200, content((EscrowTotals = "application/json"), (String = "text/csv"))),
        (status = "4XX", response = Problem)))]
async fn escrow_totals(
    State(state): State<AppState>,
    caller: Principal,
    headers: HeaderMap,
    _no_query: NoQueryString,
) -> Result<Response, ApiError> {
    caller.require_role(STAFF_SEEING_ORDERS)?;
    let now = state.clock.now();
    let (totals, aging) = state.views(|v| (v.escrow.totals(), v.escrow.aging(now)))?;
    let currencies = totals
        .into_iter()
        .map(|(currency, held)| EscrowCurrency {
            currency,
            held,
            aging: {
                let zero = Money::zero(currency).amount();
                let [up_to_7_days, up_to_30_days, up_to_90_days, over_90_days] =
                    aging.get(&currency).copied().unwrap_or([zero; 4]);
                Aging {
                    up_to_7_days,
                    up_to_30_days,
                    up_to_90_days,
                    over_90_days,
                }
            },
        })
        .collect::<Vec<_>>();
    if !wants_csv(&headers) {
        return Ok(Json(EscrowTotals { currencies }).into_response());
    }
    let report = Report {
        filename: "escrow.csv",
        header: &["currency", "held", "0-7", "8-30", "31-90", "over-90"],
        next_page: None,
    };
    report.render(currencies.iter().map(|c| {
        let aging = &c.aging;
        (
            c.currency.to_string(),
            c.held,
            aging.up_to_7_days,
            aging.up_to_30_days,
            aging.up_to_90_days,
            aging.over_90_days,
        )
    }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AgeQuery {
    min_age_days: Option<i64>,
    /// At most this many, the next page named in `Link`; all of them when absent.
    #[param(value_type = Option<i32>, minimum = 1)]
    #[serde(default, deserialize_with = "page_size_in_query")]
    limit: Option<usize>,
    /// Where the previous page ended, as its `Link` gives it.
    after: Option<String>,
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

/// Orders holding escrow for at least `min_age_days`, oldest first.
#[utoipa::path(get, path = "/escrow/orders", tag = "queries", params(AgeQuery),
    responses((status = 200, content((Vec<super::shapes::AgedHoldingShape> = "application/json"), (String = "text/csv")),
            headers(("Link" = String, description = "The next page, `<path>; rel=\"next\"` (RFC 8288); absent on the last"))),
        (status = "4XX", response = Problem)))]
async fn escrow_orders(
    State(state): State<AppState>,
    caller: Principal,
    headers: HeaderMap,
    query: Result<Query<AgeQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require_role(STAFF_SEEING_ORDERS)?;
    let Query(query) = query.map_err(bad_query)?;
    let min_age_days = query.min_age_days.unwrap_or(0);
    if min_age_days < 0 {
        return Err(ApiError::bad_request(
            "invalid_query",
            "min_age_days cannot be negative",
        ));
    }
    let after = query
        .after
        .as_deref()
        .map(|after| parse_instant_cursor(after, "/escrow/orders"))
        .transpose()?;
    let now = state.clock.now();
    let limit = query.limit.map(|limit| limit.clamp(1, ESCROW_PAGE_MAX));
    // One more than the page, to know whether another follows.
    let wanted = limit.map_or(usize::MAX, |limit| limit + 1);
    let mut holdings = state.views(|v| {
        v.escrow
            .holdings_older_than(min_age_days, now, after, wanted)
    })?;
    let next_page = limit.and_then(|limit| {
        let more = holdings.len() > limit;
        holdings.truncate(limit);
        let last = holdings.last().filter(|_| more)?;
        Some(format!(
            "/escrow/orders?min_age_days={min_age_days}&limit={limit}&after={}",
            instant_cursor(last.since, last.order)
        ))
    });
    if !wants_csv(&headers) {
        return Ok(reports::json_page(holdings, next_page.as_deref()));
    }
    let report = Report {
        filename: "escrow-orders.csv",
        header: &["order_id", "currency", "held", "since", "age_days"],
        next_page,
    };
    report.render(holdings.iter().map(|h| {
        (
            h.order.0,
            h.held.currency().to_string(),
            h.held.amount(),
            reports::instant(h.since),
            h.age_days,
        )
    }))
}

#[derive(Serialize, ToSchema)]
pub struct WalletResponse {
    user_id: Uuid,
    /// Per currency: the balance and the statement lines behind it (those of this page).
    #[schema(value_type = BTreeMap<String, super::shapes::WalletShape>)]
    currencies: BTreeMap<Currency, Wallet>,
    /// With `limit`: pass as `from` for the next page; none on the last.
    next_from: Option<u64>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StatementQuery {
    /// First `$all` position of the statement lines.
    #[serde(default, deserialize_with = "position_in_query")]
    from: Option<u64>,
    /// At most this many lines, the next page in `next_from` and `Link`; every line when
    /// absent.
    #[param(value_type = Option<i32>, minimum = 1)]
    #[serde(default, deserialize_with = "page_size_in_query")]
    limit: Option<usize>,
}

/// A user's wallet credit: balance and statement, per currency.
#[utoipa::path(get, path = "/wallets/{user_id}", tag = "queries",
    params(("user_id" = Uuid, Path, description = "user id"), StatementQuery),
    responses((status = 200, content((WalletResponse = "application/json"), (String = "text/csv")),
            headers(("Link" = String, description = "The next page, `<path>; rel=\"next\"` (RFC 8288); absent on the last"))),
        (status = "4XX", response = Problem)))]
async fn wallet(
    State(state): State<AppState>,
    caller: Principal,
    headers: HeaderMap,
    ApiPath(user_id): ApiPath<Uuid>,
    query: Result<Query<StatementQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let own = caller.user.0 == user_id && matches!(caller.role, ApiRole::Buyer | ApiRole::Seller);
    if !own {
        caller
            .require_role(&[ApiRole::Finance])
            .map_err(|_| ApiError::forbidden("a wallet is seen by its owner and by finance"))?;
    }
    let Query(query) = query.map_err(bad_query)?;
    let limit = query.limit.map(|limit| limit.clamp(1, WALLET_PAGE_MAX));
    let (currencies, next_from) = state.views(|v| {
        v.wallets.wallet_page(
            UserId(user_id),
            query.from.unwrap_or(0),
            limit.unwrap_or(usize::MAX),
        )
    })?;
    let next_page = next_from
        .zip(limit)
        .map(|(from, limit)| format!("/wallets/{user_id}?from={from}&limit={limit}"));
    if !wants_csv(&headers) {
        let body = WalletResponse {
            user_id,
            currencies,
            next_from,
        };
        return Ok(reports::json_page(body, next_page.as_deref()));
    }
    let report = Report {
        filename: &format!("wallet-{user_id}.csv"),
        header: &[
            "currency", "position", "order_id", "at", "amount", "reason", "cause",
        ],
        next_page,
    };
    report.render(
        currencies
            .values()
            .flat_map(|wallet| &wallet.lines)
            .map(|line| {
                let (reason, cause) = match line.reason {
                    CreditReason::PartialRefund => ("partial_refund", None),
                    CreditReason::CancellationRefund { cause } => {
                        ("cancellation_refund", Some(cause))
                    }
                    CreditReason::Release => ("release", None),
                };
                (
                    line.amount.currency().to_string(),
                    line.position,
                    line.order.0,
                    reports::instant(line.at),
                    line.amount.amount(),
                    reason,
                    cause,
                )
            }),
    )
}

/// A seller's completion rate, all time and over the recent window, with the counts behind it.
#[utoipa::path(get, path = "/sellers/{id}/completion-rate", tag = "queries",
    params(("id" = Uuid, Path, description = "seller's user id")),
    responses((status = 200, body = super::shapes::CompletionRateShape), (status = "4XX", response = Problem)))]
async fn completion_rate(
    State(state): State<AppState>,
    _caller: Principal,
    ApiPath(id): ApiPath<Uuid>,
    _no_query: NoQueryString,
) -> Result<Json<CompletionRate>, ApiError> {
    let now = state.clock.now();
    let days = state.policy.completion_rate_recent_days;
    Ok(Json(
        state.views(|v| v.completion.rate(UserId(id), now, days))?,
    ))
}

#[derive(Serialize, ToSchema)]
pub struct ReviewWindowResponse {
    order_id: Uuid,
    /// Whether a review can be left now.
    open: bool,
    #[schema(value_type = super::shapes::ReviewWindowShape)]
    window: ReviewWindow,
}

/// The order's review window: opens at close, ends 6 calendar months later.
#[utoipa::path(get, path = "/orders/{id}/review-window", tag = "queries",
    params(("id" = Uuid, Path, description = "order id")),
    responses((status = 200, body = ReviewWindowResponse), (status = "4XX", response = Problem)))]
async fn review_window(
    State(state): State<AppState>,
    caller: Principal,
    ApiPath(id): ApiPath<Uuid>,
    _no_query: NoQueryString,
) -> Result<Json<ReviewWindowResponse>, ApiError> {
    visible_order(&state, &caller, OrderId(id), STAFF_SEEING_HISTORY)?;
    let window = state
        .views(|v| v.reviews.window(OrderId(id)).cloned())?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "no_review_window",
                format!("order {id} has not closed, so it has no review window"),
            )
        })?;
    Ok(Json(ReviewWindowResponse {
        order_id: id,
        open: window.is_open_at(state.clock.now()),
        window,
    }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ClosingQuery {
    /// Windows that close within this many days from now (0: none).
    #[param(value_type = i32, minimum = 0, required = true)]
    #[serde(default, deserialize_with = "days_in_query")]
    closing_within_days: Option<u32>,
    /// At most this many (100 when absent, at most 1,000).
    #[param(value_type = Option<i32>, minimum = 1)]
    #[serde(default, deserialize_with = "page_size_in_query")]
    limit: Option<usize>,
    /// Where the previous page ended: its `next_cursor`.
    cursor: Option<String>,
}

/// A count of days asked for in a query, at most `i32::MAX` as the document's `int32` says.
fn days_in_query<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<u32>, D::Error> {
    let largest = i32::MAX.unsigned_abs();
    let days = bounded_in_query(deserializer, u64::from(largest), "too many days")?;
    Ok(days.map(|days| u32::try_from(days).unwrap_or(u32::MAX)))
}

#[derive(Serialize, ToSchema)]
pub struct ClosingWindows {
    /// Open windows without a review, the soonest to close first.
    #[schema(value_type = Vec<super::shapes::ReviewWindowShape>)]
    windows: Vec<ReviewWindow>,
    /// Pass back as `cursor` for the next page; null on the last.
    next_cursor: Option<String>,
}

/// Review windows that close soon without a review, soonest first: whom to remind. A buyer
/// gets their own.
#[utoipa::path(get, path = "/review-windows", tag = "queries", params(ClosingQuery),
    responses((status = 200, body = ClosingWindows,
            headers(("Link" = String, description = "The next page, `<path>; rel=\"next\"` (RFC 8288); absent on the last"))),
        (status = "4XX", response = Problem)))]
async fn review_windows_closing(
    State(state): State<AppState>,
    caller: Principal,
    query: Result<Query<ClosingQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let own = caller.role == ApiRole::Buyer;
    if !own {
        caller.require_role(SEEING_REVIEW_WINDOWS)?;
    }
    let Query(query) = query.map_err(bad_query)?;
    let days = query.closing_within_days.ok_or_else(|| {
        ApiError::bad_request(
            "invalid_query",
            "give `closing_within_days`: the windows closing within that many days",
        )
    })?;
    let after = query
        .cursor
        .as_deref()
        .map(|cursor| parse_instant_cursor(cursor, "/review-windows"))
        .transpose()?;
    let limit = query
        .limit
        .unwrap_or(REVIEW_WINDOW_PAGE_DEFAULT)
        .clamp(1, REVIEW_WINDOW_PAGE_MAX);
    let now = state.clock.now();
    // One more than the page, to know whether another follows.
    let mut windows: Vec<ReviewWindow> = state.views(|v| {
        let closing = if own {
            let theirs = v.orders.orders_of_buyer(caller.user);
            v.reviews
                .closing_within_of(theirs, now, days, after, limit + 1)
        } else {
            v.reviews.closing_within(now, days, after, limit + 1)
        };
        closing.into_iter().cloned().collect()
    })?;
    let more = windows.len() > limit;
    windows.truncate(limit);
    let next_cursor = windows
        .last()
        .filter(|_| more)
        .map(|last| instant_cursor(last.closes_at, last.order));
    let next_page = next_cursor.as_ref().map(|cursor| {
        format!("/review-windows?closing_within_days={days}&limit={limit}&cursor={cursor}")
    });
    let body = ClosingWindows {
        windows,
        next_cursor,
    };
    Ok(reports::json_page(body, next_page.as_deref()))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct JournalQuery {
    /// First `$all` position.
    #[serde(default, deserialize_with = "position_in_query")]
    from: Option<u64>,
    #[param(value_type = Option<i32>, minimum = 1)]
    #[serde(default, deserialize_with = "page_size_in_query")]
    limit: Option<usize>,
    /// Only postings made after this instant (RFC 3339), e.g. the end of last month.
    #[param(value_type = Option<String>, format = DateTime)]
    #[serde(default, deserialize_with = "instant_in_query")]
    after: Option<DateTime<Utc>>,
    /// Only postings made at or before this instant (RFC 3339), e.g. the end of this month:
    /// the period's postings are then the difference between the trial balances as at its
    /// two ends.
    #[param(value_type = Option<String>, format = DateTime)]
    #[serde(default, deserialize_with = "instant_in_query")]
    until: Option<DateTime<Utc>>,
}

#[derive(Serialize, ToSchema)]
pub struct JournalPage {
    #[schema(value_type = Vec<super::shapes::PostingShape>)]
    postings: Vec<Posting>,
    /// Pass as `from` for the next page; none on the last.
    next_from: Option<u64>,
}

/// The double-entry journal: a balanced posting for every money movement, from a position.
#[utoipa::path(get, path = "/journal", tag = "queries", params(JournalQuery),
    responses((status = 200, content((JournalPage = "application/json"), (String = "text/csv")),
            headers(("Link" = String, description = "The next page, `<path>; rel=\"next\"` (RFC 8288); absent on the last"))),
        (status = "4XX", response = Problem)))]
async fn journal(
    State(state): State<AppState>,
    caller: Principal,
    headers: HeaderMap,
    query: Result<Query<JournalQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require_role(&[ApiRole::Finance])?;
    let Query(query) = query.map_err(bad_query)?;
    let limit = query
        .limit
        .unwrap_or(JOURNAL_PAGE_DEFAULT)
        .clamp(1, JOURNAL_PAGE_MAX);
    let from = query.from.unwrap_or(0);
    let period = Period {
        after: query.after,
        until: query.until,
    };
    if let (Some(after), Some(until)) = (period.after, period.until) {
        if after >= until {
            return Err(ApiError::bad_request(
                "invalid_query",
                "`after` must be earlier than `until`".to_owned(),
            ));
        }
    }
    let (postings, next_from) = state.views(|v| v.journal.postings(from, period, limit))?;
    let next_page = next_from.map(|from| {
        reports::with_parameters(
            format!("/journal?from={from}&limit={limit}"),
            [
                ("after", period.after.map(reports::instant)),
                ("until", period.until.map(reports::instant)),
            ],
        )
    });
    if !wants_csv(&headers) {
        let page = JournalPage {
            postings,
            next_from,
        };
        return Ok(reports::json_page(page, next_page.as_deref()));
    }
    let report = Report {
        filename: "journal.csv",
        header: &[
            "position", "order_id", "at", "debit", "credit", "amount", "currency", "memo",
        ],
        next_page,
    };
    report.render(postings.iter().map(|p| {
        (
            p.position,
            p.order.0,
            reports::instant(p.at),
            p.debit.to_string(),
            p.credit.to_string(),
            p.amount.amount(),
            p.amount.currency().to_string(),
            &*p.memo,
        )
    }))
}

#[derive(Serialize, ToSchema)]
pub struct TrialBalance {
    /// Per currency, the sum of every account: zero when the books balance.
    #[schema(value_type = BTreeMap<String, String>)]
    totals: BTreeMap<Currency, Decimal>,
    balanced: bool,
    /// Every account's balance per currency; accounts and currencies at zero are left out.
    #[schema(value_type = BTreeMap<String, BTreeMap<String, String>>)]
    accounts: BTreeMap<String, BTreeMap<Currency, Decimal>>,
    /// The instant the books are as at, when one was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    at: Option<DateTime<Utc>>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TrialBalanceQuery {
    /// `all` (the default): every account; `control`: one line per control account
    /// (`payments`, `escrow` for every order's, `wallet` for every user's, `commission`).
    #[param(value_type = AccountLevel, inline, required = false, example = "control")]
    accounts: Option<AccountLevel>,
    /// The books as they stood at this instant (RFC 3339): the postings made at or before
    /// it, e.g. a month's end. Without it, now.
    #[param(value_type = Option<String>, format = DateTime)]
    #[serde(default, deserialize_with = "instant_in_query")]
    at: Option<DateTime<Utc>>,
}

#[derive(Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
enum AccountLevel {
    #[default]
    All,
    Control,
}

/// The trial balance of the journal.
#[utoipa::path(get, path = "/trial-balance", tag = "queries", params(TrialBalanceQuery),
    responses((status = 200, content((TrialBalance = "application/json"), (String = "text/csv"))),
        (status = "4XX", response = Problem)))]
async fn trial_balance(
    State(state): State<AppState>,
    caller: Principal,
    headers: HeaderMap,
    query: Result<Query<TrialBalanceQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require_role(&[ApiRole::Finance])?;
    let Query(query) = query.map_err(bad_query)?;
    // Under the views' lock only what must be: with an escrow account per open order,
    // naming and sorting every account is what takes time, and it is done after.
    let level = query.accounts.unwrap_or_default();
    let every_account = matches!(level, AccountLevel::All);
    let (totals, every, controls) = match query.at {
        None => state.views(|v| {
            let journal = &v.journal;
            let (every, controls) = if every_account {
                let every = journal.balances().map(|(a, b)| (*a, b.clone())).collect();
                (every, Vec::new())
            } else {
                let controls = journal.controls().map(|(n, b)| (n, b.clone())).collect();
                (Vec::new(), controls)
            };
            (journal.trial_balance(), every, controls)
        })?,
        // A slice of the journal at a time under the lock, added up outside it: commands
        // are folded between two slices.
        Some(at) => {
            let books = ledger_projections::books_at(
                at,
                every_account,
                ledger_projections::POSTINGS_PER_SLICE,
                |read| state.views(|v| read(&v.journal)),
            )?;
            let controls = if every_account {
                Vec::new()
            } else {
                books.controls
            };
            (books.trial_balance, books.accounts, controls)
        }
    };
    let controls: BTreeMap<String, BTreeMap<Currency, Decimal>> = controls
        .into_iter()
        .map(|(name, b)| (name.to_owned(), b))
        .collect();
    let mut accounts = controls;
    accounts.extend(every.into_iter().map(|(a, b)| (a.to_string(), b)));
    let balanced = totals.values().all(|sum| sum.is_zero());
    if !wants_csv(&headers) {
        return Ok(Json(TrialBalance {
            totals,
            balanced,
            accounts,
            at: query.at,
        })
        .into_response());
    }
    let report = Report {
        filename: "trial-balance.csv",
        header: &["account", "currency", "balance"],
        next_page: None,
    };
    report.render(accounts.iter().flat_map(|(account, balances)| {
        balances
            .iter()
            .map(move |(currency, balance)| (account, currency.to_string(), balance))
    }))
}
