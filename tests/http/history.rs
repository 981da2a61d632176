//! A mediator reading an order's history: the timeline, and the order as it stood at an
//! instant or a revision.

use crate::support::{parse_instant, user, Server, User};
use chrono::{Duration, SecondsFormat};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn the_order_as_it_stood_at_a_revision_or_an_instant() {
    let server = Server::start();
    let (buyer, seller, mediator) = (user("buyer"), user("seller"), user("mediator"));
    let order = server.place(&buyer, &seller, "200.00").await;
    let confirmed = server.act(&seller, order, "confirm", json!({})).await;
    let due = parse_instant(&confirmed["order"]["due_at"]);
    server.advance(due + Duration::hours(1)).await;
    server
        .act(
            &seller,
            order,
            "deliver",
            json!({ "message": "late, sorry" }),
        )
        .await;
    let path = format!("/orders/{order}/history");

    let whole = server.get(&mediator, &path).await.ok();
    assert_eq!(
        whole["entries"].as_array().map(Vec::len),
        Some(3),
        "{whole}"
    );
    assert_eq!(whole["order"]["status"], "Delivered");

    let at_confirmation = server
        .get(&mediator, &format!("{path}?revision=1"))
        .await
        .ok();
    assert_eq!(at_confirmation["entries"].as_array().map(Vec::len), Some(2));
    assert_eq!(at_confirmation["order"]["status"], "InProgress");
    assert_eq!(at_confirmation["order"]["events"], 2);

    // Past the deadline, before the delivery: in progress and late, as it stood then.
    let late_then = (due + Duration::minutes(1)).to_rfc3339_opts(SecondsFormat::Nanos, true);
    let then = server
        .get(&mediator, &format!("{path}?at={late_then}"))
        .await
        .ok();
    assert_eq!(then["order"]["status"], "InProgress", "{then}");
    assert_eq!(then["order"]["late"], true, "{then}");
    // The same instant with an offset, its `+` typed as is (a query string reads it as a
    // space) or encoded as `%2B`.
    let paris = chrono::FixedOffset::east_opt(3600).expect("offset");
    let in_paris = (due + Duration::minutes(1))
        .with_timezone(&paris)
        .to_rfc3339_opts(SecondsFormat::Nanos, false);
    assert!(in_paris.ends_with("+01:00"), "{in_paris}");
    for query in [in_paris.clone(), in_paris.replace('+', "%2B")] {
        let there = server
            .get(&mediator, &format!("{path}?at={query}"))
            .await
            .ok();
        assert_eq!(there["order"], then["order"], "{query}");
    }
    let reply = server.get(&mediator, &format!("{path}?at=yesterday")).await;
    reply.problem(StatusCode::BAD_REQUEST, "invalid_query");
    assert!(
        reply.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("`yesterday` is not an RFC 3339 instant")),
        "{}",
        reply.body
    );

    // Before the deadline, the same order was not late.
    let on_time = (due - Duration::minutes(1)).to_rfc3339_opts(SecondsFormat::Nanos, true);
    let then = server
        .get(&mediator, &format!("{path}?at={on_time}"))
        .await
        .ok();
    assert_eq!(then["order"]["late"], false, "{then}");

    // A revision the order has not reached is not today's state under its number.
    server
        .get(&mediator, &format!("{path}?revision=3"))
        .await
        .problem(StatusCode::NOT_FOUND, "revision_not_found");
}

#[tokio::test]
async fn an_instant_still_to_come_shows_the_order_as_it_stands_now() {
    let server = Server::start();
    let (buyer, seller, mediator) = (user("buyer"), user("seller"), user("mediator"));
    let order = server.place(&buyer, &seller, "200.00").await;
    let confirmed = server.act(&seller, order, "confirm", json!({})).await;
    let due = parse_instant(&confirmed["order"]["due_at"]);
    // A week past the deadline has not happened: the order is in progress and not late yet.
    let later = (due + Duration::days(7)).to_rfc3339_opts(SecondsFormat::Nanos, true);
    let then = server
        .get(&mediator, &format!("/orders/{order}/history?at={later}"))
        .await
        .ok();
    assert_eq!(then["order"]["status"], "InProgress", "{then}");
    assert_eq!(then["order"]["late"], false, "{then}");
}

/// An order of 200.00 placed, confirmed, delivered and disputed by the buyer (four events).
async fn disputed_order(server: &Server, buyer: &User, seller: &User) -> uuid::Uuid {
    let order = server.place(buyer, seller, "200.00").await;
    server.act(seller, order, "confirm", json!({})).await;
    server
        .act(seller, order, "deliver", json!({ "message": "done" }))
        .await;
    server
        .act(buyer, order, "dispute", json!({ "reason": "not done" }))
        .await;
    order
}

/// An order disputed by its buyer and split by the mediator: seven events, the last three
/// of one command.
async fn split_dispute(server: &Server, mediator: &User) -> uuid::Uuid {
    let order = disputed_order(server, &user("buyer"), &user("seller")).await;
    let split = json!({ "outcome": "split", "refund": "50.00", "note": "half done" });
    server.act(mediator, order, "dispute/resolve", split).await;
    order
}

/// Each entry names the command that appended it and the caller's correlation id, so that a
/// mediator can tie an event to the request behind it (a checkout, a support ticket).
#[tokio::test]
async fn each_entry_names_its_command_and_the_callers_correlation_id() {
    let server = Server::start();
    let (buyer, seller, mediator) = (user("buyer"), user("seller"), user("mediator"));
    let order = disputed_order(&server, &buyer, &seller).await;
    let ticket = uuid::Uuid::new_v4();
    let split = server
        .client()
        .post(server.url(&format!("/orders/{order}/dispute/resolve")));
    let split = split
        .bearer_auth(&mediator.token)
        .header("X-Correlation-Id", ticket.to_string())
        .json(&json!({ "outcome": "split", "refund": "50.00", "note": "half done" }));
    server.send(split).await.ok();

    let history = server
        .get(&mediator, &format!("/orders/{order}/history"))
        .await
        .ok();
    let entries = history["entries"].as_array().expect("entries");
    let ids = |field: &str| -> Vec<String> {
        entries
            .iter()
            .map(|entry| entry[field].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    let (commands, correlations) = (ids("command_id"), ids("correlation_id"));
    // Placed, confirmed, delivered, disputed: a command each; the split's three events
    // (resolved, refunded, closed) one command.
    assert_eq!(commands.len(), 7, "{history:#}");
    let distinct: std::collections::BTreeSet<&String> = commands.iter().collect();
    assert_eq!(distinct.len(), 5, "{commands:?}");
    assert!(
        commands[4..].iter().all(|id| *id == commands[4]),
        "{commands:?}"
    );
    // Without the header, the correlation id is the command's own.
    assert_eq!(correlations[..4], commands[..4]);
    assert!(
        correlations[4..].iter().all(|id| *id == ticket.to_string()),
        "{correlations:?}"
    );
}

/// A long timeline is read a page at a time: every entry once and in order, the pages
/// following `Link` (which keeps the cutoff), each with the order as it stood at the cutoff.
#[tokio::test]
async fn a_history_is_read_a_page_at_a_time() {
    let server = Server::start();
    let mediator = user("mediator");
    // Three events of one command (resolved, refunded, closed), across a page's end.
    let order = split_dispute(&server, &mediator).await;
    let path = format!("/orders/{order}/history");

    for cutoff in ["", "&revision=4"] {
        let whole = server
            .get(
                &mediator,
                &format!("{path}?{}", cutoff.trim_start_matches('&')),
            )
            .await
            .ok();
        let expected = whole["entries"].as_array().expect("entries").clone();
        assert_eq!(expected.len(), if cutoff.is_empty() { 7 } else { 5 });
        let (mut entries, mut pages) = (Vec::new(), 0);
        let mut next = Some(format!("{path}?limit=3{cutoff}"));
        while let Some(page_path) = next {
            let reply = server.get(&mediator, &page_path).await;
            next = reply.next_page();
            let page = reply.ok();
            match (&next, page["next_from"].as_u64()) {
                (Some(link), Some(from)) => {
                    assert!(link.contains(&format!("from={from}")), "{link}");
                    assert!(link.contains(cutoff), "{link} keeps `{cutoff}`");
                }
                (None, None) => {}
                _ => panic!("`Link` and `next_from` disagree: {next:?}, {page}"),
            }
            assert_eq!(page["order"], whole["order"], "{cutoff}");
            entries.extend(page["entries"].as_array().expect("entries").clone());
            pages += 1;
            assert!(pages < 10, "the pages never end: {page_path}");
        }
        assert_eq!(entries, expected, "{cutoff}");
        assert_eq!(pages, expected.len().div_ceil(3), "{cutoff}");
    }

    let from_five = server.get(&mediator, &format!("{path}?from=5")).await.ok();
    let revisions: Vec<_> = from_five["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|entry| entry["revision"].as_u64())
        .collect();
    assert_eq!(revisions, [Some(5), Some(6)], "{from_five}");
    assert_eq!(from_five["next_from"], serde_json::Value::Null);
}

/// The timeline as a mediator files it with a dispute: the JSON's entries line for line,
/// with what each event said, a page at a time by `Link` as the JSON is.
#[tokio::test]
async fn a_history_as_csv_is_the_timeline_line_for_line() {
    let server = Server::start();
    let mediator = user("mediator");
    let order = split_dispute(&server, &mediator).await;
    let path = format!("/orders/{order}/history");
    let whole = server.get(&mediator, &path).await.ok();
    let entries = whole["entries"].as_array().expect("entries").clone();

    let report = crate::reports::csv(&server, &mediator, &path, "text/csv").await;
    assert_eq!(
        report.header,
        [
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
            "correlation_id"
        ]
    );
    assert_eq!(report.rows.len(), entries.len());
    let text = |value: &serde_json::Value| match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    };
    for (row, entry) in report.rows.iter().zip(&entries) {
        for (column, field) in [
            ("revision", &entry["revision"]),
            ("position", &entry["position"]),
            ("role", &entry["actor"]["role"]),
            ("user_id", &entry["actor"]["user_id"]),
            ("event", &entry["event_type"]),
            ("status_after", &entry["status_after"]),
            ("money_effect", &entry["money_effect"]),
            ("command_id", &entry["command_id"]),
            ("correlation_id", &entry["correlation_id"]),
        ] {
            assert_eq!(row[column], text(field), "{column} of {entry}");
        }
        assert_eq!(
            parse_instant(&json!(row["at"])),
            parse_instant(&entry["at"])
        );
    }
    // What the parties and the mediator said, as they said it.
    let said = |event: &str| {
        report
            .rows
            .iter()
            .find(|row| row["event"] == event)
            .map(|row| row["said"].clone())
            .unwrap_or_default()
    };
    assert!(
        said("DisputeOpened").contains("\"not done\""),
        "{:?}",
        report.rows
    );
    assert!(said("DisputeResolved").contains("\"half done\""));
    assert!(said("DisputeResolved").contains("50.00 EUR"));

    // A page at a time, as the JSON.
    let mut rows = Vec::new();
    let mut next = Some(format!("{path}?limit=3"));
    while let Some(page_path) = next {
        let page = crate::reports::csv(&server, &mediator, &page_path, "text/csv").await;
        assert!(page.rows.len() <= 3, "{page_path}");
        rows.extend(page.rows);
        next = page
            .link
            .and_then(|link| crate::support::next_page_of(&link));
        assert!(rows.len() <= entries.len(), "the pages never end");
    }
    assert_eq!(rows, report.rows);
    // Who may not read the history is refused as with JSON.
    let finance = user("finance");
    let refused = server
        .client()
        .get(server.url(&path))
        .bearer_auth(&finance.token)
        .header(reqwest::header::ACCEPT, "text/csv");
    server
        .send(refused)
        .await
        .problem(StatusCode::FORBIDDEN, "forbidden");
}
