//! Finance's reads: escrow and its aging, wallets and their statements, the journal and
//! the trial balance; each also as CSV.

use super::{
    bad_query, instant_cursor, instant_in_query, last_of_page, page_size_in_query,
    parse_instant_cursor, position_in_query, STAFF_SEEING_ORDERS,
};
use crate::service::auth::{ApiRole, Principal};
use crate::service::problem::{ApiError, ApiPath, Problem};
use crate::service::reports::{self, wants_csv, Report};
use crate::service::AppState;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use ledger_domain::{Currency, Decimal, Money, UserId};
use ledger_projections::{
    CreditReason, Period, PeriodStatement, Posting, StatementLine, Wallet, AGING_BUCKET_UPPER_DAYS,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

/// Journal postings in a page when the client does not say, and at most.
const JOURNAL_PAGE_DEFAULT: usize = 500;
const JOURNAL_PAGE_MAX: usize = 5_000;
/// Most orders holding escrow in one page, when a page is asked for.
const ESCROW_PAGE_MAX: usize = 5_000;
/// The most statement lines one page of `/wallets/{user_id}` holds.
const WALLET_PAGE_MAX: usize = 5_000;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(escrow_totals))
        .routes(routes!(escrow_orders))
        .routes(routes!(wallet))
        .routes(routes!(journal))
        .routes(routes!(trial_balance))
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
    /// The instant escrow is as at, when one was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    at: Option<DateTime<Utc>>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EscrowQuery {
    /// Escrow as it stood at this instant (RFC 3339), aged as it was then, e.g. a month's
    /// end. Without it, now.
    #[param(value_type = Option<String>, format = DateTime)]
    #[serde(default, deserialize_with = "instant_in_query")]
    at: Option<DateTime<Utc>>,
}

/// What escrow holds, per currency, with its aging.
#[utoipa::path(get, path = "/escrow", tag = "queries", params(EscrowQuery),
    responses((status = 200, content((EscrowTotals = "application/json"), (String = "text/csv"))),
        (status = "4XX", response = Problem)))]
async fn escrow_totals(
    State(state): State<AppState>,
    caller: Principal,
    headers: HeaderMap,
    query: Result<Query<EscrowQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require_role(STAFF_SEEING_ORDERS)?;
    let Query(query) = query.map_err(bad_query)?;
    let held: BTreeMap<Currency, (Decimal, [Decimal; 4])> = match query.at {
        None => {
            let now = state.clock.now();
            let (totals, aging) = state.views(|v| (v.escrow.totals(), v.escrow.aging(now)))?;
            totals
                .into_iter()
                .map(|(currency, held)| {
                    let zero = Money::zero(currency).amount();
                    (
                        currency,
                        (held, aging.get(&currency).copied().unwrap_or([zero; 4])),
                    )
                })
                .collect()
        }
        // Each order's escrow account as the books stood then, aged from its placement.
        Some(at) => {
            let books = journal_books_at(&state, at, true)?;
            state.views(|v| {
                let placed_at = |order| v.orders.order(order).map(|o| o.placed_at);
                ledger_projections::escrow_as_at(&books, placed_at, at)
            })?
        }
    };
    let currencies = held
        .into_iter()
        .map(|(currency, (held, buckets))| {
            let [up_to_7_days, up_to_30_days, up_to_90_days, over_90_days] = buckets;
            EscrowCurrency {
                currency,
                held,
                aging: Aging {
                    up_to_7_days,
                    up_to_30_days,
                    up_to_90_days,
                    over_90_days,
                },
            }
        })
        .collect::<Vec<_>>();
    if !wants_csv(&headers) {
        return Ok(Json(EscrowTotals {
            currencies,
            at: query.at,
        })
        .into_response());
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

/// Orders holding escrow for at least `min_age_days`, oldest first.
#[utoipa::path(get, path = "/escrow/orders", tag = "queries", params(AgeQuery),
    responses((status = 200, content((Vec<crate::service::shapes::AgedHoldingShape> = "application/json"), (String = "text/csv")),
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
        let last = last_of_page(&mut holdings, limit)?;
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
    #[schema(value_type = BTreeMap<String, crate::service::shapes::WalletShape>)]
    currencies: BTreeMap<Currency, WalletAnswer>,
    /// With `limit`: pass as `from` for the next page; none on the last.
    next_from: Option<u64>,
}

/// A currency's wallet as answered: with a period, its lines are the period's and its
/// balances at the period's ends are beside the balance now.
#[derive(Serialize)]
pub struct WalletAnswer {
    balance: Money,
    #[serde(skip_serializing_if = "Option::is_none")]
    opening: Option<Money>,
    #[serde(skip_serializing_if = "Option::is_none")]
    closing: Option<Money>,
    lines: Vec<StatementLine>,
}

impl From<Wallet> for WalletAnswer {
    fn from(wallet: Wallet) -> WalletAnswer {
        WalletAnswer {
            balance: wallet.balance,
            opening: None,
            closing: None,
            lines: wallet.lines,
        }
    }
}

impl From<PeriodStatement> for WalletAnswer {
    fn from(statement: PeriodStatement) -> WalletAnswer {
        WalletAnswer {
            balance: statement.balance,
            opening: Some(statement.opening),
            closing: Some(statement.closing),
            lines: statement.lines,
        }
    }
}

/// A page of wallets, per currency, as answered.
fn answers<W: Into<WalletAnswer>>(
    (wallets, next_from): (BTreeMap<Currency, W>, Option<u64>),
) -> (BTreeMap<Currency, WalletAnswer>, Option<u64>) {
    let answers = wallets.into_iter().map(|(c, w)| (c, w.into())).collect();
    (answers, next_from)
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
    /// A statement for a period: only lines made after this instant (RFC 3339), e.g. the
    /// end of last month, and the balance then in `opening`.
    #[param(value_type = Option<String>, format = DateTime)]
    #[serde(default, deserialize_with = "instant_in_query")]
    after: Option<DateTime<Utc>>,
    /// A statement for a period: only lines made at or before this instant (RFC 3339),
    /// and the balance then in `closing`.
    #[param(value_type = Option<String>, format = DateTime)]
    #[serde(default, deserialize_with = "instant_in_query")]
    until: Option<DateTime<Utc>>,
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
    let period = checked_period(query.after, query.until, "until")?;
    let (user, from) = (UserId(user_id), query.from.unwrap_or(0));
    let (currencies, next_from) = state.views(|v| {
        let limit = limit.unwrap_or(usize::MAX);
        // A page costs its lines; a period adds up all of the user's, so only when asked.
        if period.after.is_none() && period.until.is_none() {
            answers(v.wallets.wallet_page(user, from, limit))
        } else {
            answers(v.wallets.period_statement(user, period, from, limit))
        }
    })?;
    let next_page = next_from.zip(limit).map(|(from, limit)| {
        reports::with_parameters(
            format!("/wallets/{user_id}?from={from}&limit={limit}"),
            [
                ("after", period.after.map(reports::instant)),
                ("until", period.until.map(reports::instant)),
            ],
        )
    });
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
    #[schema(value_type = Vec<crate::service::shapes::PostingShape>)]
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
    let period = checked_period(query.after, query.until, "until")?;
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
            p.memo.text(),
        )
    }))
}

/// A period from its two ends, either of which may be open; one that ends before it
/// starts is refused, naming the query's parameter for its end.
fn checked_period(
    after: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    end_name: &str,
) -> Result<Period, ApiError> {
    if let (Some(after), Some(until)) = (after, until) {
        if after >= until {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("`after` must be earlier than `{end_name}`"),
            ));
        }
    }
    Ok(Period { after, until })
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
    /// With `after`: the start of the period, whose books are `opening`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    after: Option<DateTime<Utc>>,
    /// With `after`: every account's balance as at `after`, as `accounts` gives them.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<BTreeMap<String, BTreeMap<String, String>>>)]
    opening: Option<Accounts>,
    /// With `after`: what each account moved in the period, `accounts` less `opening`;
    /// accounts that did not move are left out.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<BTreeMap<String, BTreeMap<String, String>>>)]
    movements: Option<Accounts>,
}

/// Balances by account name, then currency.
type Accounts = BTreeMap<String, BTreeMap<Currency, Decimal>>;

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
    /// The start of a period that ends at `at` (or now): adds the books as at this instant
    /// (`opening`) and each account's movement since (`movements`), e.g. last month's end.
    #[param(value_type = Option<String>, format = DateTime)]
    #[serde(default, deserialize_with = "instant_in_query")]
    after: Option<DateTime<Utc>>,
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
    let every_account = matches!(query.accounts.unwrap_or_default(), AccountLevel::All);
    checked_period(query.after, query.at, "at")?;
    let (totals, accounts) = books(&state, query.at, every_account)?;
    let opening = match query.after {
        Some(after) => Some(books(&state, Some(after), every_account)?.1),
        None => None,
    };
    let movements = opening
        .as_ref()
        .map(|opening| movements(opening, &accounts));
    let balanced = totals.values().all(|sum| sum.is_zero());
    if !wants_csv(&headers) {
        return Ok(Json(TrialBalance {
            totals,
            balanced,
            accounts,
            at: query.at,
            after: query.after,
            opening,
            movements,
        })
        .into_response());
    }
    let filename = "trial-balance.csv";
    let Some(opening) = opening else {
        let report = Report {
            filename,
            header: &["account", "currency", "balance"],
            next_page: None,
        };
        return report.render(accounts.iter().flat_map(|(account, balances)| {
            balances
                .iter()
                .map(move |(currency, balance)| (account, currency.to_string(), balance))
        }));
    };
    let report = Report {
        filename,
        header: &["account", "currency", "opening", "movement", "balance"],
        next_page: None,
    };
    report.render(
        period_lines(&opening, &accounts).map(|(account, currency, before, after)| {
            (account, currency.to_string(), before, after - before, after)
        }),
    )
}

/// The books as at `at`, or now: the sum per currency, and every account's balance (or
/// each control account's). Under the views' lock only what must be: with an escrow
/// account per open order, naming and sorting every account is what takes time, and it is
/// done after.
fn books(
    state: &AppState,
    at: Option<DateTime<Utc>>,
    every_account: bool,
) -> Result<(BTreeMap<Currency, Decimal>, Accounts), ApiError> {
    let (totals, every, controls) = match at {
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
        Some(at) => {
            let books = journal_books_at(state, at, every_account)?;
            let controls = if every_account {
                Vec::new()
            } else {
                books.controls
            };
            (books.trial_balance, books.accounts, controls)
        }
    };
    let mut accounts: Accounts = controls
        .into_iter()
        .map(|(name, b)| (name.to_owned(), b))
        .collect();
    accounts.extend(every.into_iter().map(|(a, b)| (a.to_string(), b)));
    Ok((totals, accounts))
}

/// The journal's books as at `at`, added up a slice at a time under the views' lock and
/// outside it between slices, so that commands are folded meanwhile.
fn journal_books_at(
    state: &AppState,
    at: DateTime<Utc>,
    every_account: bool,
) -> Result<ledger_projections::BooksAt, ApiError> {
    ledger_projections::books_at(
        at,
        every_account,
        ledger_projections::POSTINGS_PER_SLICE,
        |read| state.views(|v| read(&v.journal)),
    )
}

/// `closing` less `opening`, account by account and currency by currency, without the
/// ones that did not move.
fn movements(opening: &Accounts, closing: &Accounts) -> Accounts {
    let mut moved = Accounts::new();
    for (account, currency, before, after) in period_lines(opening, closing) {
        let movement = after - before;
        if !movement.is_zero() {
            moved
                .entry(account.to_owned())
                .or_default()
                .insert(currency, movement);
        }
    }
    moved
}

/// Every account and currency with a balance at either end of a period: its opening and
/// closing balance, zero (at the currency's minor unit) where it had none.
fn period_lines<'a>(
    opening: &'a Accounts,
    closing: &'a Accounts,
) -> impl Iterator<Item = (&'a str, Currency, Decimal, Decimal)> + 'a {
    let mut lines: BTreeMap<(&str, Currency), [Decimal; 2]> = BTreeMap::new();
    for (end, books) in [opening, closing].into_iter().enumerate() {
        for (account, balances) in books {
            for (currency, balance) in balances {
                let zero = Decimal::new(0, currency.minor_unit());
                lines.entry((account, *currency)).or_insert([zero; 2])[end] = *balance;
            }
        }
    }
    lines
        .into_iter()
        .map(|((account, currency), [before, after])| (account, currency, before, after))
}
