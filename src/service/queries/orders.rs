//! An order's reads: its summary, its history as it stood at any moment, the lists per
//! party and state, and the mediators' queue of disputes.

use super::{
    bad_query, instant_cursor, instant_in_query, last_of_page, order_not_found, page_size_in_query,
    parse_instant_cursor, revision_in_query, visible_order, STAFF_SEEING_HISTORY,
    STAFF_SEEING_ORDERS,
};
use crate::service::auth::{ApiRole, Principal};
use crate::service::problem::{ApiError, ApiPath, NoQueryString, Problem};
use crate::service::reports::{self, wants_csv, Report};
use crate::service::AppState;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use ledger_domain::{OrderId, Status, UserId};
use ledger_projections::{OrderFilter, OrderPage, OrderSummary, ORDER_PAGE_SIZE_MAX};
use ledger_replay::history::{details, history, Cutoff, Entry, HistoryError};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

/// Orders in a page when the client does not say.
const ORDER_PAGE_SIZE_DEFAULT: usize = 50;
/// Most history entries a page holds (each up to a few kilobytes with its event).
const HISTORY_PAGE_MAX: usize = 1_000;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(order_summary))
        .routes(routes!(order_history))
        .routes(routes!(list_orders))
        .routes(routes!(disputes_waiting))
}

/// The order summary: state, parties, price, extras, escrow held, deadlines, late or not.
#[utoipa::path(get, path = "/orders/{id}", tag = "queries",
    params(("id" = Uuid, Path, description = "order id")),
    responses((status = 200, body = crate::service::shapes::OrderSummaryShape, headers(
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
        .and_then(crate::service::commands::revision_etag);
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

#[derive(Serialize, ToSchema)]
pub struct HistoryResponse {
    order_id: Uuid,
    /// Every event up to the cutoff, with actor, instant, money effect and state after.
    #[schema(value_type = Vec<crate::service::shapes::EntryShape>)]
    entries: Vec<Entry>,
    /// The order as it stood at the cutoff (after the last entry of the last page); none
    /// before it was placed.
    #[schema(value_type = Option<crate::service::shapes::OrderSummaryShape>)]
    order: Option<OrderSummary>,
    /// With `limit`: pass as `from` for the next page; none on the last.
    next_from: Option<u64>,
}

/// Every event of the order, and the order as it stood at an instant or revision.
#[utoipa::path(get, path = "/orders/{id}/history", tag = "queries",
    params(("id" = Uuid, Path, description = "order id"), HistoryQuery),
    responses((status = 200, content((HistoryResponse = "application/json"), (String = "text/csv")),
            headers(("Link" = String, description = "The next page, `<path>; rel=\"next\"` (RFC 8288); absent on the last"))),
        (status = "4XX", response = Problem)))]
async fn order_history(
    State(state): State<AppState>,
    caller: Principal,
    ApiPath(id): ApiPath<Uuid>,
    headers: HeaderMap,
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
    if wants_csv(&headers) {
        return timeline_report(id, &entries, next_page);
    }
    let body = HistoryResponse {
        order_id: id,
        order: cut.state.order().map(|o| OrderSummary::of(o, now)),
        entries,
        next_from,
    };
    Ok(reports::json_page(body, next_page.as_deref()))
}

/// The timeline as a mediator files it with a dispute: an event a line, with who, when,
/// what it did to the money and what it said, as `ledger history` prints it.
fn timeline_report(
    id: Uuid,
    entries: &[Entry],
    next_page: Option<String>,
) -> Result<Response, ApiError> {
    let filename = format!("order-{id}-history.csv");
    let report = Report {
        filename: &filename,
        header: &[
            "revision",
            "position",
            "at",
            "role",
            "user_id",
            "event",
            "status_after",
            "money_effect",
            "said",
            "command_id",
            "correlation_id",
        ],
        next_page,
    };
    report.render(entries.iter().map(|entry| {
        (
            entry.revision,
            entry.position,
            reports::instant(entry.at),
            entry.actor.role.to_string(),
            entry.actor.user_id,
            entry.event_type,
            entry.status_after.map(|status| format!("{status:?}")),
            entry.money_effect.as_deref(),
            details(&entry.event),
            entry.command_id,
            entry.correlation_id,
        )
    }))
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

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    buyer: Option<Uuid>,
    seller: Option<Uuid>,
    // The states, listed by the schema (a doc comment here would not be shown beside it).
    #[param(schema_with = crate::service::shapes::state_query_schema)]
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
    responses((status = 200, body = crate::service::shapes::OrderPageShape, headers(("Link" = String, description = "The next page, `<path>; rel=\"next\"` (RFC 8288); absent on the last"))),
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
    #[schema(value_type = Vec<crate::service::shapes::OrderSummaryShape>)]
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
    let next_cursor = last_of_page(&mut disputes, limit).and_then(|last| {
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
