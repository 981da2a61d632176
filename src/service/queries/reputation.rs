//! A seller's reputation: the completion rate, and the review windows in which buyers may
//! review, one order's or those closing soon.

use super::{
    bad_query, bounded_in_query, instant_cursor, last_of_page, page_size_in_query,
    parse_instant_cursor, visible_order, STAFF_SEEING_HISTORY,
};
use crate::service::auth::{ApiRole, Principal};
use crate::service::problem::{ApiError, ApiPath, NoQueryString, Problem};
use crate::service::reports;
use crate::service::AppState;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use ledger_domain::{OrderId, UserId};
use ledger_projections::{CompletionRate, ReviewWindow};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

/// Review windows in a page when the client does not say, and at most.
const REVIEW_WINDOW_PAGE_DEFAULT: usize = 100;
const REVIEW_WINDOW_PAGE_MAX: usize = 1_000;
/// Who may list every buyer's review windows: a service that reminds buyers, and mediators
/// (a buyer lists their own).
const SEEING_REVIEW_WINDOWS: &[ApiRole] = &[ApiRole::Service, ApiRole::Mediator];

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(completion_rate))
        .routes(routes!(review_window))
        .routes(routes!(review_windows_closing))
}

/// A seller's completion rate, all time and over the recent window, with the counts behind it.
#[utoipa::path(get, path = "/sellers/{id}/completion-rate", tag = "queries",
    params(("id" = Uuid, Path, description = "seller's user id")),
    responses((status = 200, body = crate::service::shapes::CompletionRateShape), (status = "4XX", response = Problem)))]
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
    #[schema(value_type = crate::service::shapes::ReviewWindowShape)]
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
    #[schema(value_type = Vec<crate::service::shapes::ReviewWindowShape>)]
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
    let next_cursor =
        last_of_page(&mut windows, limit).map(|last| instant_cursor(last.closes_at, last.order));
    let next_page = next_cursor.as_ref().map(|cursor| {
        format!("/review-windows?closing_within_days={days}&limit={limit}&cursor={cursor}")
    });
    let body = ClosingWindows {
        windows,
        next_cursor,
    };
    Ok(reports::json_page(body, next_page.as_deref()))
}
