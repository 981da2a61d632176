//! The lists read a page at a time: orders filtered by party and state, the disputes
//! waiting for a mediator, and the review windows closing soon.

use crate::support::{parse_instant, user, Server, User};
use chrono::Duration;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// Every order id of the list at `path`, following `Link: <…>; rel="next"` page after page
/// and checking that `next_cursor` names the same page.
pub async fn follow(server: &Server, who: &User, path: &str) -> (Vec<String>, usize) {
    follow_list(server, who, path, "orders", "order_id").await
}

/// `follow` for a list whose page holds its items under `items`, each named by `id`.
async fn follow_list(
    server: &Server,
    who: &User,
    path: &str,
    items: &str,
    id: &str,
) -> (Vec<String>, usize) {
    let (mut ids, mut pages) = (Vec::new(), 0);
    let mut next = Some(path.to_owned());
    while let Some(path) = next {
        let reply = server.get(who, &path).await;
        next = reply.next_page();
        let page = reply.ok();
        let cursor = page["next_cursor"].as_str().map(str::to_owned);
        match (&next, &cursor) {
            (Some(link), Some(cursor)) => assert!(link.contains(&format!("cursor={cursor}"))),
            (None, None) => {}
            _ => panic!("`Link` and `next_cursor` disagree: {next:?}, {page}"),
        }
        let listed = page[items].as_array().map_or(&[][..], Vec::as_slice);
        ids.extend(
            listed
                .iter()
                .map(|item| item[id].as_str().unwrap_or_default().to_owned()),
        );
        pages += 1;
        assert!(pages < 100, "the pages never end: {path}");
    }
    (ids, pages)
}

fn order_ids(orders: &[Value]) -> Vec<String> {
    orders
        .iter()
        .map(|o| o["order_id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn the_orders_list_pages_by_link_with_its_filters_each_order_once() {
    let server = Server::start();
    let (buyer, other_buyer, seller) = (user("buyer"), user("buyer"), user("seller"));
    let mediator = user("mediator");
    let mut placed = Vec::new();
    for _ in 0..5 {
        placed.push(server.place(&buyer, &seller, "10.00").await.to_string());
    }
    for order in &placed[..3] {
        let order = order.parse().expect("uuid");
        server
            .act(&seller, order, "confirm", serde_json::json!({}))
            .await;
    }
    server.place(&other_buyer, &seller, "10.00").await;

    // The whole list, two at a time: every order once, in order-id order.
    let all = server.get(&mediator, "/orders?limit=100").await.ok();
    let all = order_ids(all["orders"].as_array().map_or(&[][..], Vec::as_slice));
    assert_eq!(all.len(), 6);
    let (paged, pages) = follow(&server, &mediator, "/orders?limit=2").await;
    assert_eq!((paged, pages), (all, 3));

    // The filters go on with the link: the buyer's in-progress orders, one page each.
    let path = format!("/orders?buyer={}&state=InProgress&limit=1", buyer.id);
    let (paged, pages) = follow(&server, &mediator, &path).await;
    let expected: BTreeSet<&String> = placed[..3].iter().collect();
    assert_eq!(paged.iter().collect::<BTreeSet<_>>(), expected);
    assert_eq!((paged.len(), pages), (3, 3));

    // A buyer's own list, its filter implied: the links stay on its orders.
    let (paged, _) = follow(&server, &buyer, "/orders?limit=2").await;
    let expected: BTreeSet<&String> = placed.iter().collect();
    assert_eq!(paged.iter().collect::<BTreeSet<_>>(), expected);
    assert_eq!(paged.len(), 5);

    // A state misnamed is answered with the names there are.
    let misnamed = server.get(&mediator, "/orders?state=Disputed").await;
    misnamed.problem(StatusCode::BAD_REQUEST, "invalid_query");
    let detail = misnamed.body["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("InDispute, Closed, Cancelled"), "{detail}");
}

#[tokio::test]
async fn the_review_windows_closing_soon_are_listed_soonest_first_a_page_at_a_time() {
    let server = Server::start();
    let (buyer, seller) = (user("buyer"), user("seller"));
    // Four orders closed a day apart; the last one reviewed.
    let mut closed = Vec::new();
    let start = server.now().await;
    for day in 0..4 {
        if day > 0 {
            server.advance(start + Duration::days(day)).await;
        }
        let order = server.place(&buyer, &seller, "10.00").await;
        server.act(&seller, order, "confirm", json!({})).await;
        server
            .act(&seller, order, "deliver", json!({ "message": "done" }))
            .await;
        let closing = server.act(&buyer, order, "close", json!({})).await;
        let closes_at = parse_instant(&closing["events"][0]["data"]["review_closes_at"]);
        closed.push((order.to_string(), closes_at));
    }
    let reviewed = closed[3].0.parse().expect("uuid");
    server
        .act(&buyer, reviewed, "review", json!({ "rating": 4 }))
        .await;
    let first_closes = closed[0].1;

    // An hour before the first closes: two close within 2 days, three within 10 (the
    // reviewed one is not waiting for anything).
    server.advance(first_closes - Duration::hours(1)).await;
    let reminders = user("service");
    let ids = |n: usize| {
        closed[..n]
            .iter()
            .map(|(id, _)| id.clone())
            .collect::<Vec<_>>()
    };
    let path = "/review-windows?closing_within_days=2&limit=1";
    let (listed, pages) = follow_list(&server, &reminders, path, "windows", "order").await;
    assert_eq!((listed, pages), (ids(2), 2));
    let path = "/review-windows?closing_within_days=10";
    let (listed, pages) = follow_list(&server, &reminders, path, "windows", "order").await;
    assert_eq!((listed, pages), (ids(3), 1));
    let page = server.get(&user("mediator"), path).await.ok();
    assert_eq!(
        parse_instant(&page["windows"][0]["closes_at"]),
        first_closes,
        "{page}"
    );

    // Once the first has closed, it is no longer listed.
    server.advance(first_closes + Duration::minutes(1)).await;
    let still_open: Vec<String> = closed[1..3].iter().map(|(id, _)| id.clone()).collect();
    let (listed, _) = follow_list(&server, &reminders, path, "windows", "order").await;
    assert_eq!(listed, still_open);

    // A buyer lists their own, another buyer none; sellers and finance have no windows to
    // be reminded of. The question must be asked whole.
    let (listed, _) = follow_list(&server, &buyer, path, "windows", "order").await;
    assert_eq!(listed, still_open);
    let other = server.get(&user("buyer"), path).await.ok();
    assert_eq!(other["windows"], json!([]), "{other}");
    for who in [&user("finance"), &seller] {
        server
            .get(who, path)
            .await
            .problem(StatusCode::FORBIDDEN, "forbidden");
    }
    for bad in [
        "/review-windows",
        "/review-windows?closing_within_days=-1",
        "/review-windows?closing_within_days=2&cursor=yesterday",
        "/review-windows?closing_within_days=2&limit=0",
    ] {
        server
            .get(&reminders, bad)
            .await
            .problem(StatusCode::BAD_REQUEST, "invalid_query");
    }
}

#[tokio::test]
async fn the_disputes_are_queued_longest_waiting_first_a_page_at_a_time() {
    let server = Server::start();
    let (buyer, seller, mediator) = (user("buyer"), user("seller"), user("mediator"));
    let mut placed = Vec::new();
    for _ in 0..4 {
        let order = server.place(&buyer, &seller, "10.00").await;
        server.act(&seller, order, "confirm", json!({})).await;
        placed.push(order);
    }
    // Disputes opened a day apart, in an order unlike placement's: the queue is not id order.
    let start = server.now().await;
    let opened = [placed[2], placed[0], placed[3], placed[1]];
    let mut opened_at = Vec::new();
    for (day, order) in (1..).zip(opened) {
        server.advance(start + Duration::days(day)).await;
        let reason = json!({ "reason": "not what was agreed" });
        let disputed = server.act(&buyer, order, "dispute", reason).await;
        opened_at.push(parse_instant(&disputed["events"][0]["data"]["at"]));
    }
    let release = json!({ "outcome": "release", "note": "delivered as agreed" });
    server
        .act(&mediator, opened[1], "dispute/resolve", release)
        .await;

    let waiting: Vec<String> = [opened[0], opened[2], opened[3]]
        .iter()
        .map(ToString::to_string)
        .collect();
    let path = "/disputes?limit=1";
    let (listed, pages) = follow_list(&server, &mediator, path, "disputes", "order_id").await;
    assert_eq!((listed, pages), (waiting.clone(), 3));
    let finance = user("finance");
    let first = server.get(&finance, "/disputes").await.ok();
    assert_eq!(
        order_ids(first["disputes"].as_array().map_or(&[][..], Vec::as_slice)),
        waiting
    );
    assert_eq!(
        parse_instant(&first["disputes"][0]["dispute_opened_at"]),
        opened_at[0],
        "{first}"
    );
    assert_eq!(first["disputes"][0]["dispute_opened_by"], "buyer");

    for bad in ["/disputes?cursor=yesterday", "/disputes?limit=0"] {
        server
            .get(&mediator, bad)
            .await
            .problem(StatusCode::BAD_REQUEST, "invalid_query");
    }
}
