//! Finance's reports as CSV (`Accept: text/csv`): the same figures as the JSON reads, row for
//! row, ready for a spreadsheet.

use crate::support::{next_page_of, user, Server, User};
use reqwest::header::{ACCEPT, CONTENT_DISPOSITION, CONTENT_TYPE, LINK};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// One closed order (released, commission taken), one cancelled before confirmation
/// (refunded to the buyer's wallet), one still holding escrow.
async fn books(server: &Server, buyer: &User, seller: &User) -> uuid::Uuid {
    let closed = server.place(buyer, seller, "100.00").await;
    server.act(seller, closed, "confirm", json!({})).await;
    server
        .act(seller, closed, "deliver", json!({ "message": "done" }))
        .await;
    server.act(buyer, closed, "close", json!({})).await;
    let cancelled = server.place(buyer, seller, "40.00").await;
    server
        .act(
            buyer,
            cancelled,
            "cancel",
            json!({ "reason": "changed my mind" }),
        )
        .await;
    server.place(buyer, seller, "25.50").await
}

pub(crate) struct Csv {
    pub(crate) header: Vec<String>,
    pub(crate) rows: Vec<BTreeMap<String, String>>,
    pub(crate) link: Option<String>,
}

pub(crate) async fn csv(server: &Server, who: &User, path: &str, accept: &str) -> Csv {
    let response = server
        .client()
        .get(server.url(path))
        .bearer_auth(&who.token)
        .header(ACCEPT, accept)
        .send()
        .await
        .expect("report");
    assert_eq!(response.status(), StatusCode::OK);
    let header = |name| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    assert_eq!(
        header(CONTENT_TYPE).as_deref(),
        Some("text/csv; charset=utf-8")
    );
    let disposition = header(CONTENT_DISPOSITION).unwrap_or_default();
    assert!(
        disposition.starts_with("attachment; filename="),
        "{disposition}"
    );
    let link = header(LINK);
    let text = response.text().await.expect("text");
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .expect("a header line")
        .iter()
        .map(str::to_owned)
        .collect();
    let rows = reader
        .records()
        .map(|record| {
            let record = record.expect("a CSV record");
            header
                .iter()
                .cloned()
                .zip(record.iter().map(str::to_owned))
                .collect()
        })
        .collect();
    Csv { header, rows, link }
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[tokio::test]
async fn the_journal_as_csv_is_the_json_journal_row_for_row_and_pages_by_link() {
    let server = Server::start();
    let (buyer, seller, finance) = (user("buyer"), user("seller"), user("finance"));
    books(&server, &buyer, &seller).await;
    let json = server.get(&finance, "/journal").await.ok();
    let postings = json["postings"].as_array().cloned().unwrap_or_default();
    assert!(postings.len() >= 5, "{json}");

    let report = csv(&server, &finance, "/journal", "text/csv").await;
    assert_eq!(
        report.header,
        ["position", "order_id", "at", "debit", "credit", "amount", "currency", "memo"]
    );
    assert_eq!(report.rows.len(), postings.len());
    for (row, posting) in report.rows.iter().zip(&postings) {
        assert_eq!(row["position"], text(&posting["position"]));
        assert_eq!(row["order_id"], text(&posting["order"]));
        assert_eq!(row["at"], text(&posting["at"]));
        assert_eq!(row["debit"], text(&posting["debit"]));
        assert_eq!(row["credit"], text(&posting["credit"]));
        assert_eq!(row["amount"], text(&posting["amount"]["amount"]));
        assert_eq!(row["currency"], text(&posting["amount"]["currency"]));
        assert_eq!(row["memo"], text(&posting["memo"]));
    }
    assert_eq!(report.link, None, "one page holds it all");

    // A page at a time: each names the next in `Link`, and together they are the journal.
    // A page holds two postings, or more where one event's postings (a release and its
    // commission) would otherwise be split.
    let mut rows: Vec<BTreeMap<String, String>> = Vec::new();
    let mut next = Some("/journal?limit=2".to_owned());
    while let Some(path) = next {
        let page = csv(&server, &finance, &path, "text/csv").await;
        let mut beyond_limit = page.rows.iter().skip(2);
        assert!(
            beyond_limit.all(|r| r["position"] == page.rows[1]["position"]),
            "{:?}",
            page.rows
        );
        if let (Some(last), Some(first)) = (rows.last(), page.rows.first()) {
            assert_ne!(last["position"], first["position"], "an event split");
        }
        rows.extend(page.rows);
        next = page
            .link
            .map(|link| next_page_of(&link).expect("a next link"));
    }
    assert_eq!(rows, report.rows);

    // The JSON journal pages the same way, by `next_from` or by the same `Link` as the CSV
    // (a generic RFC 8288 client follows it): every posting once.
    let mut paged = Vec::new();
    let mut from = Some(0);
    while let Some(position) = from {
        let page = server
            .get(&finance, &format!("/journal?from={position}&limit=1"))
            .await;
        let link = page.next_page();
        let page = page.ok();
        paged.extend(page["postings"].as_array().cloned().unwrap_or_default());
        from = page["next_from"].as_u64();
        let expected = from.map(|from| format!("/journal?from={from}&limit=1"));
        assert_eq!(link, expected, "{page}");
    }
    assert_eq!(paged, postings);
}

#[tokio::test]
async fn the_trial_balance_as_csv_sums_to_zero_per_currency() {
    let server = Server::start();
    let (buyer, seller, finance) = (user("buyer"), user("seller"), user("finance"));
    let holding = books(&server, &buyer, &seller).await;
    let json = server.get(&finance, "/trial-balance").await.ok();
    let report = csv(&server, &finance, "/trial-balance", "text/csv").await;
    assert_eq!(report.header, ["account", "currency", "balance"]);
    let mut from_json = Vec::new();
    for (account, balances) in json["accounts"].as_object().cloned().unwrap_or_default() {
        for (currency, balance) in balances.as_object().cloned().unwrap_or_default() {
            from_json.push([account.clone(), currency, text(&balance)]);
        }
    }
    let from_csv: Vec<[String; 3]> = report
        .rows
        .iter()
        .map(|r| {
            [
                r["account"].clone(),
                r["currency"].clone(),
                r["balance"].clone(),
            ]
        })
        .collect();
    assert_eq!(from_csv, from_json);
    let cents: i64 = from_csv
        .iter()
        .map(|[_, _, balance]| balance.replace('.', "").parse::<i64>().expect("cents"))
        .sum();
    assert_eq!(cents, 0, "{from_csv:?}");
    assert!(from_csv
        .iter()
        .any(|[a, _, b]| a == "commission" && b == "20.00"));
    // Finished orders' escrow accounts are at zero and left out; the one holding is listed.
    let escrow: Vec<&[String; 3]> = from_csv
        .iter()
        .filter(|[account, _, _]| account.starts_with("escrow:"))
        .collect();
    assert_eq!(
        escrow,
        [&[
            format!("escrow:{holding}"),
            "EUR".to_owned(),
            "25.50".to_owned()
        ]]
    );
}

#[tokio::test]
async fn a_wallet_statement_and_the_orders_holding_escrow_as_csv() {
    let server = Server::start();
    let (buyer, seller, finance) = (user("buyer"), user("seller"), user("finance"));
    let holding = books(&server, &buyer, &seller).await;

    let report = csv(
        &server,
        &finance,
        &format!("/wallets/{}", buyer.id),
        "text/csv",
    )
    .await;
    assert_eq!(
        report.header,
        ["currency", "position", "order_id", "at", "amount", "reason", "cause"]
    );
    assert_eq!(report.rows.len(), 1, "{:?}", report.rows);
    assert_eq!(report.rows[0]["amount"], "40.00");
    assert_eq!(report.rows[0]["reason"], "cancellation_refund");
    assert_eq!(
        report.rows[0]["cause"],
        "cancelled_by_buyer_before_confirmation"
    );
    // The owner reads their own statement too.
    let own = csv(
        &server,
        &seller,
        &format!("/wallets/{}", seller.id),
        "text/csv",
    )
    .await;
    assert_eq!(own.rows.len(), 1);
    assert_eq!(own.rows[0]["amount"], "80.00");
    assert_eq!(own.rows[0]["reason"], "release");
    assert_eq!(own.rows[0]["cause"], "");

    let report = csv(&server, &finance, "/escrow/orders", "text/csv").await;
    assert_eq!(
        report.header,
        ["order_id", "currency", "held", "since", "age_days"]
    );
    assert_eq!(report.rows.len(), 1, "{:?}", report.rows);
    assert_eq!(report.rows[0]["order_id"], holding.to_string());
    assert_eq!(report.rows[0]["held"], "25.50");
    assert_eq!(report.rows[0]["age_days"], "0");

    // The totals, a row per currency with its aging, as the JSON gives them.
    let totals = server.get(&finance, "/escrow").await.ok();
    let report = csv(&server, &finance, "/escrow", "text/csv").await;
    assert_eq!(
        report.header,
        ["currency", "held", "0-7", "8-30", "31-90", "over-90"]
    );
    let rows: Vec<Vec<String>> = report
        .rows
        .iter()
        .map(|row| {
            report
                .header
                .iter()
                .map(|column| row[column].clone())
                .collect()
        })
        .collect();
    assert_eq!(rows, [["EUR", "25.50", "25.50", "0.00", "0.00", "0.00"]]);
    let eur = &totals["currencies"][0];
    assert_eq!(
        [
            &eur["currency"],
            &eur["held"],
            &eur["aging"]["0-7"],
            &eur["aging"]["over-90"]
        ],
        [
            &json!("EUR"),
            &json!("25.50"),
            &json!("25.50"),
            &json!("0.00")
        ],
        "{totals}"
    );
}

#[tokio::test]
async fn json_stays_the_default_and_csv_changes_nothing_about_who_may_read() {
    let server = Server::start();
    let (buyer, seller, finance) = (user("buyer"), user("seller"), user("finance"));
    books(&server, &buyer, &seller).await;
    for accept in [
        "*/*",
        "application/json",
        "application/json, text/csv;q=0.5",
        "text/csv;q=0",
    ] {
        let reply = server
            .send(
                server
                    .client()
                    .get(server.url("/trial-balance"))
                    .bearer_auth(&finance.token)
                    .header(ACCEPT, accept),
            )
            .await;
        assert_eq!(reply.ok()["balanced"], true, "Accept: {accept}");
    }
    let csv_first = csv(
        &server,
        &finance,
        "/trial-balance",
        "text/csv, application/json;q=0.9",
    )
    .await;
    assert!(!csv_first.rows.is_empty());

    // A buyer may not read the journal, in any format: the refusal is a problem document.
    let reply = server
        .send(
            server
                .client()
                .get(server.url("/journal"))
                .bearer_auth(&buyer.token)
                .header(ACCEPT, "text/csv"),
        )
        .await;
    reply.problem(StatusCode::FORBIDDEN, "forbidden");
}

#[tokio::test]
async fn the_trial_balance_rolled_up_into_control_accounts() {
    let server = Server::start();
    let (buyer, seller, finance) = (user("buyer"), user("seller"), user("finance"));
    books(&server, &buyer, &seller).await;
    server.place(&buyer, &seller, "10.00").await; // a second order holding escrow
    let detail = server.get(&finance, "/trial-balance").await.ok();
    let control = server
        .get(&finance, "/trial-balance?accounts=control")
        .await
        .ok();
    let eur = |name: &str| control["accounts"][name]["EUR"].clone();
    // Two orders' escrow in one line, the seller's and the buyer's wallets in another.
    assert_eq!(eur("escrow"), "35.50", "{control}");
    assert_eq!(eur("wallet"), "120.00", "{control}");
    assert_eq!(eur("commission"), "20.00", "{control}");
    assert_eq!(eur("payments"), "-175.50", "{control}");
    assert_eq!(control["accounts"].as_object().map(|a| a.len()), Some(4));
    assert_eq!(control["totals"], detail["totals"]);
    assert_eq!(control["balanced"], true);

    let report = csv(
        &server,
        &finance,
        "/trial-balance?accounts=control",
        "text/csv",
    )
    .await;
    let rows: Vec<(&str, &str)> = report
        .rows
        .iter()
        .map(|r| (r["account"].as_str(), r["balance"].as_str()))
        .collect();
    assert_eq!(
        rows,
        [
            ("commission", "20.00"),
            ("escrow", "35.50"),
            ("payments", "-175.50"),
            ("wallet", "120.00")
        ]
    );
    server
        .get(&finance, "/trial-balance?accounts=some")
        .await
        .problem(StatusCode::BAD_REQUEST, "invalid_query");
}

/// An order paid for before a month's end and released after it: its order, an instant
/// before everything, and the month's end.
async fn paid_before_and_released_after_a_months_end(
    server: &Server,
    buyer: &User,
    seller: &User,
) -> (
    uuid::Uuid,
    chrono::DateTime<chrono::Utc>,
    chrono::DateTime<chrono::Utc>,
) {
    let before = server.now().await - chrono::Duration::seconds(1);
    let order = server.place(buyer, seller, "100.00").await;
    server.act(seller, order, "confirm", json!({})).await;
    server
        .act(seller, order, "deliver", json!({ "message": "done" }))
        .await;
    // The buyer closes two days after delivery, inside the three-day acceptance window: any
    // later and the auto-close timer may close the order first.
    let month_end = server.now().await + chrono::Duration::days(1);
    server.advance(month_end + chrono::Duration::days(1)).await;
    server.act(buyer, order, "close", json!({})).await;
    (order, before, month_end)
}

fn instant(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// A month's end: the books as at an instant count what was made by then, and nothing after.
#[tokio::test]
async fn the_trial_balance_as_at_an_instant_counts_only_what_was_made_by_then() {
    let server = Server::start();
    let (buyer, seller, finance) = (user("buyer"), user("seller"), user("finance"));
    let (order, before, month_end) =
        paid_before_and_released_after_a_months_end(&server, &buyer, &seller).await;

    let as_at = |at: chrono::DateTime<chrono::Utc>, accounts: &str| {
        format!("/trial-balance?at={}{accounts}", instant(at))
    };
    let escrow = format!("escrow:{order}");
    let wallet = format!("wallet:{}", seller.id);
    // At the month's end the price was held in escrow: the release came after.
    let then = server.get(&finance, &as_at(month_end, "")).await.ok();
    assert_eq!(
        eur_of(&then, "accounts"),
        BTreeMap::from([
            (escrow.clone(), "100.00".to_owned()),
            ("payments".to_owned(), "-100.00".to_owned())
        ]),
        "{then}"
    );
    assert_eq!(then["balanced"], true);
    assert_eq!(then["totals"]["EUR"], "0.00", "{then}");
    assert_eq!(
        crate::support::parse_instant(&then["at"]),
        month_end,
        "{then}"
    );
    let control = server
        .get(&finance, &as_at(month_end, "&accounts=control"))
        .await
        .ok();
    assert_eq!(
        eur_of(&control, "accounts"),
        BTreeMap::from([
            ("escrow".to_owned(), "100.00".to_owned()),
            ("payments".to_owned(), "-100.00".to_owned())
        ]),
        "{control}"
    );
    // Now, and as at any later instant: released to the seller, commission taken.
    let now = server.get(&finance, "/trial-balance").await.ok();
    assert_eq!(
        eur_of(&now, "accounts"),
        BTreeMap::from([
            ("commission".to_owned(), "20.00".to_owned()),
            ("payments".to_owned(), "-100.00".to_owned()),
            (wallet, "80.00".to_owned())
        ]),
        "{now}"
    );
    assert!(now.get("at").is_none(), "{now}");
    let later = server
        .get(
            &finance,
            &as_at(month_end + chrono::Duration::days(365), ""),
        )
        .await
        .ok();
    assert_eq!(eur_of(&later, "accounts"), eur_of(&now, "accounts"));
    // Before the first payment: nothing.
    let empty = server.get(&finance, &as_at(before, "")).await.ok();
    assert_eq!(empty["accounts"], json!({}), "{empty}");
    assert_eq!(empty["balanced"], true);
    // The same as a report.
    let report = csv(&server, &finance, &as_at(month_end, ""), "text/csv").await;
    let rows: Vec<(&str, &str)> = report
        .rows
        .iter()
        .map(|r| (r["account"].as_str(), r["balance"].as_str()))
        .collect();
    assert_eq!(rows, [(escrow.as_str(), "100.00"), ("payments", "-100.00")]);
    server
        .get(&finance, "/trial-balance?at=last-month")
        .await
        .problem(StatusCode::BAD_REQUEST, "invalid_query");
}

/// Balances per account and currency, in EUR, as the books' JSON gives them under `key`.
fn eur_of(books: &Value, key: &str) -> BTreeMap<String, String> {
    books[key]
        .as_object()
        .map(|accounts| {
            accounts
                .iter()
                .map(|(name, b)| (name.clone(), b["EUR"].as_str().unwrap_or("").to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// A month's books: what each account held at the month's start, what it moved in the
/// month and what it held at its end, as JSON and as a report.
#[tokio::test]
async fn the_trial_balance_of_a_period_opens_moves_and_closes() {
    let server = Server::start();
    let (buyer, seller, finance) = (user("buyer"), user("seller"), user("finance"));
    let (order, before, month_end) =
        paid_before_and_released_after_a_months_end(&server, &buyer, &seller).await;
    let escrow = format!("escrow:{order}");
    let wallet = format!("wallet:{}", seller.id);
    let pairs = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(account, amount)| ((*account).to_owned(), (*amount).to_owned()))
            .collect()
    };

    // The month of the payment: from nothing to the price in escrow.
    let first = format!(
        "/trial-balance?after={}&at={}",
        instant(before),
        instant(month_end)
    );
    let month = server.get(&finance, &first).await.ok();
    assert_eq!(eur_of(&month, "opening"), BTreeMap::new(), "{month}");
    let paid = pairs(&[(&escrow, "100.00"), ("payments", "-100.00")]);
    assert_eq!(eur_of(&month, "movements"), paid, "{month}");
    assert_eq!(eur_of(&month, "accounts"), paid, "{month}");
    assert_eq!(crate::support::parse_instant(&month["after"]), before);
    assert_eq!(crate::support::parse_instant(&month["at"]), month_end);

    // From the month's end until now: the release moved escrow to the seller's wallet and
    // the commission; the payments account did not move.
    let since = format!("/trial-balance?after={}", instant(month_end));
    let next = server.get(&finance, &since).await.ok();
    assert_eq!(eur_of(&next, "opening"), paid, "{next}");
    assert_eq!(
        eur_of(&next, "movements"),
        pairs(&[
            ("commission", "20.00"),
            (&escrow, "-100.00"),
            (&wallet, "80.00")
        ]),
        "{next}"
    );
    assert_eq!(
        eur_of(&next, "accounts"),
        pairs(&[
            ("commission", "20.00"),
            ("payments", "-100.00"),
            (&wallet, "80.00")
        ]),
        "{next}"
    );
    assert_eq!(next["balanced"], true);
    assert!(next.get("at").is_none(), "{next}");
    let control = server
        .get(&finance, &format!("{since}&accounts=control"))
        .await
        .ok();
    assert_eq!(
        eur_of(&control, "movements"),
        pairs(&[
            ("commission", "20.00"),
            ("escrow", "-100.00"),
            ("wallet", "80.00")
        ]),
        "{control}"
    );
    // Without `after`, the books say nothing of a period.
    let now = server.get(&finance, "/trial-balance").await.ok();
    assert!(now.get("opening").is_none() && now.get("movements").is_none());

    // The same as a report: a line for every account with a balance at either end.
    let report = csv(&server, &finance, &since, "text/csv").await;
    assert_eq!(
        report.header,
        ["account", "currency", "opening", "movement", "balance"]
    );
    let lines: Vec<Vec<&str>> = report
        .rows
        .iter()
        .map(|r| {
            ["account", "opening", "movement", "balance"]
                .iter()
                .map(|column| r[*column].as_str())
                .collect()
        })
        .collect();
    assert_eq!(
        lines,
        [
            vec!["commission", "0.00", "20.00", "20.00"],
            vec![escrow.as_str(), "100.00", "-100.00", "0.00"],
            vec!["payments", "-100.00", "0.00", "-100.00"],
            vec![wallet.as_str(), "0.00", "80.00", "80.00"],
        ]
    );

    // A period that ends before it starts.
    let backwards = format!(
        "/trial-balance?after={}&at={}",
        instant(month_end),
        instant(before)
    );
    server
        .get(&finance, &backwards)
        .await
        .problem(StatusCode::BAD_REQUEST, "invalid_query");
}

/// A seller's statement for a month: the balance as it began and ended, and the lines
/// made in it, in pages that keep the period, as JSON and as a report.
#[tokio::test]
async fn a_wallet_statement_for_a_period_has_its_lines_and_the_balances_at_its_ends() {
    let server = Server::start();
    let (buyer, seller) = (user("buyer"), user("seller"));
    // 40.00 to the seller within the month; then 80.00 paid for in it, released after it.
    let early = server.place(&buyer, &seller, "50.00").await;
    server.act(&seller, early, "confirm", json!({})).await;
    server
        .act(&seller, early, "deliver", json!({ "message": "done" }))
        .await;
    server.act(&buyer, early, "close", json!({})).await;
    let (late, _, month_end) =
        paid_before_and_released_after_a_months_end(&server, &buyer, &seller).await;
    let wallet = format!("/wallets/{}", seller.id);
    let eur = |statement: &Value, field: &str| {
        statement["currencies"]["EUR"][field]["amount"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    };
    let orders = |statement: &Value| -> Vec<String> {
        statement["currencies"]["EUR"]["lines"]
            .as_array()
            .map(|lines| lines.iter().map(|l| text(&l["order"])).collect())
            .unwrap_or_default()
    };

    let month = format!("{wallet}?until={}", instant(month_end));
    let until_end = server.get(&seller, &month).await.ok();
    assert_eq!(eur(&until_end, "opening"), "0.00", "{until_end}");
    assert_eq!(eur(&until_end, "closing"), "40.00", "{until_end}");
    assert_eq!(eur(&until_end, "balance"), "120.00", "{until_end}");
    assert_eq!(orders(&until_end), [early.to_string()]);

    let since = format!("{wallet}?after={}", instant(month_end));
    let after_end = server.get(&seller, &since).await.ok();
    assert_eq!(eur(&after_end, "opening"), "40.00", "{after_end}");
    assert_eq!(eur(&after_end, "closing"), "120.00", "{after_end}");
    assert_eq!(orders(&after_end), [late.to_string()]);
    // Without a period, no balances at its ends.
    let whole = server.get(&seller, &wallet).await.ok();
    assert!(
        whole["currencies"]["EUR"].get("opening").is_none(),
        "{whole}"
    );
    assert_eq!(orders(&whole), [early.to_string(), late.to_string()]);

    // A page a line, the period kept from page to page.
    let long_ago = instant(month_end - chrono::Duration::days(30));
    let mut next = Some(format!("{wallet}?after={long_ago}&limit=1"));
    let mut walked = Vec::new();
    while let Some(path) = next {
        let reply = server.get(&seller, &path).await;
        next = reply.next_page();
        if let Some(link) = &next {
            assert!(link.contains(&format!("after={long_ago}")), "{link}");
        }
        walked.extend(orders(&reply.ok()));
        assert!(walked.len() <= 2, "the pages never end");
    }
    assert_eq!(walked, [early.to_string(), late.to_string()]);

    // As a report: the period's lines.
    let report = csv(&server, &seller, &since, "text/csv").await;
    let lines: Vec<&str> = report.rows.iter().map(|r| r["order_id"].as_str()).collect();
    assert_eq!(lines, [late.to_string()]);
    let backwards = format!("{wallet}?after={}&until={long_ago}", instant(month_end));
    server
        .get(&seller, &backwards)
        .await
        .problem(StatusCode::BAD_REQUEST, "invalid_query");
}

/// A month's journal: the postings made after one instant and until another, as JSON and
/// as a report whose next page keeps the period.
#[tokio::test]
async fn the_journal_of_a_period_holds_the_postings_made_in_it() {
    let server = Server::start();
    let (buyer, seller, finance) = (user("buyer"), user("seller"), user("finance"));
    let (order, before, month_end) =
        paid_before_and_released_after_a_months_end(&server, &buyer, &seller).await;
    let memos = |page: &Value| -> Vec<String> {
        page["postings"]
            .as_array()
            .map(|postings| {
                postings
                    .iter()
                    .map(|p| p["memo"].as_str().unwrap_or("").to_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    let until = format!("/journal?until={}", instant(month_end));
    let month = server.get(&finance, &until).await.ok();
    assert_eq!(memos(&month), ["payment into escrow"], "{month}");
    assert_eq!(month["postings"][0]["order"], json!(order));
    let next_month = format!("/journal?after={}", instant(month_end));
    let next = server.get(&finance, &next_month).await.ok();
    assert_eq!(
        memos(&next),
        ["release to seller", "platform commission"],
        "{next}"
    );
    let nothing = format!("/journal?until={}", instant(before));
    assert_eq!(
        memos(&server.get(&finance, &nothing).await.ok()),
        Vec::<String>::new()
    );
    // The report's next page keeps the period.
    let later = month_end + chrono::Duration::days(365);
    let first = csv(
        &server,
        &finance,
        &format!("/journal?limit=1&until={}", instant(later)),
        "text/csv",
    )
    .await;
    assert_eq!(first.rows.len(), 1);
    let link = first.link.unwrap_or_default();
    assert!(
        link.contains(&format!("until={}", instant(later))),
        "{link}"
    );
    server
        .get(
            &finance,
            &format!(
                "/journal?after={}&until={}",
                instant(month_end),
                instant(month_end)
            ),
        )
        .await
        .problem(StatusCode::BAD_REQUEST, "invalid_query");
}

#[tokio::test]
async fn a_wallet_statement_pages_by_position_and_keeps_its_balance_on_every_page() {
    let server = Server::start();
    let (buyer, seller, finance) = (user("buyer"), user("seller"), user("finance"));
    for price in ["10.00", "20.00", "30.00", "40.00", "50.00"] {
        let order = server.place(&buyer, &seller, price).await;
        server.act(&seller, order, "confirm", json!({})).await;
        server
            .act(&seller, order, "deliver", json!({ "message": "done" }))
            .await;
        server.act(&buyer, order, "close", json!({})).await;
    }
    let whole = server
        .get(&finance, &format!("/wallets/{}", seller.id))
        .await
        .ok();
    assert_eq!(whole["next_from"], Value::Null);
    let every_line = whole["currencies"]["EUR"]["lines"].clone();
    assert_eq!(every_line.as_array().map(Vec::len), Some(5));

    // The seller reads its own statement two lines at a time, by `next_from`.
    let (mut walked, mut pages, mut from) = (Vec::new(), 0, Some(0));
    while let Some(position) = from {
        let reply = server
            .get(
                &seller,
                &format!("/wallets/{}?from={position}&limit=2", seller.id),
            )
            .await;
        let link = reply
            .headers
            .get(LINK)
            .map(|l| l.to_str().expect("ascii").to_owned());
        let page = reply.ok();
        assert_eq!(
            page["currencies"]["EUR"]["balance"],
            whole["currencies"]["EUR"]["balance"]
        );
        let lines = page["currencies"]["EUR"]["lines"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(lines.len() <= 2, "{page}");
        walked.extend(lines);
        from = page["next_from"].as_u64();
        assert_eq!(
            link,
            from.map(|next| format!("</wallets/{}?from={next}&limit=2>; rel=\"next\"", seller.id))
        );
        pages += 1;
    }
    assert_eq!(Value::Array(walked), every_line);
    assert_eq!(pages, 3);

    // As CSV, finance gets the same page and the same next one.
    let first_position = every_line[0]["position"].as_u64().expect("position");
    let third_position = every_line[2]["position"].as_u64().expect("position");
    let report = csv(
        &server,
        &finance,
        &format!("/wallets/{}?from={first_position}&limit=2", seller.id),
        "text/csv",
    )
    .await;
    assert_eq!(report.rows.len(), 2);
    assert_eq!(
        report.link,
        Some(format!(
            "</wallets/{}?from={third_position}&limit=2>; rel=\"next\"",
            seller.id
        ))
    );
    server
        .get(&finance, &format!("/wallets/{}?limit=many", seller.id))
        .await
        .problem(StatusCode::BAD_REQUEST, "invalid_query");
}
