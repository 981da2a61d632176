//! The orders lists: a page at a time, filtered by party and state.

use crate::support::{user, Server, User};
use serde_json::Value;
use std::collections::BTreeSet;

/// Every order id of the list at `path`, following `Link: <…>; rel="next"` page after page
/// and checking that `next_cursor` names the same page.
pub async fn follow(server: &Server, who: &User, path: &str) -> (Vec<String>, usize) {
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
        ids.extend(order_ids(
            page["orders"].as_array().map_or(&[][..], Vec::as_slice),
        ));
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
}
