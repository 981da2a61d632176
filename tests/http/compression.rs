//! Large answers go out gzipped to clients that ask for it; commands' answers and event
//! streams never do.

use crate::support::{user, Server, User};
use futures::StreamExt;
use reqwest::header::{ACCEPT, ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_TYPE};
use reqwest::StatusCode;
use serde_json::json;
use std::io::Read;

/// Enough closed orders that the journal's page is well past the compression threshold.
async fn closed_orders(server: &Server, buyer: &User, seller: &User, orders: usize) {
    for _ in 0..orders {
        let order = server.place(buyer, seller, "120.00").await;
        server.act(seller, order, "confirm", json!({})).await;
        server
            .act(seller, order, "deliver", json!({ "message": "done" }))
            .await;
        server.act(buyer, order, "close", json!({})).await;
    }
}

/// The body as sent, and how it was encoded.
async fn fetch(
    server: &Server,
    who: &User,
    path: &str,
    accept: &str,
    gzip: bool,
) -> (Option<String>, Vec<u8>) {
    let mut request = server
        .client()
        .get(server.url(path))
        .bearer_auth(&who.token)
        .header(ACCEPT, accept);
    if gzip {
        request = request.header(ACCEPT_ENCODING, "gzip");
    }
    let response = request.send().await.expect("request");
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    let encoding = response
        .headers()
        .get(CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = response.bytes().await.expect("body").to_vec();
    (encoding, body)
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut plain)
        .expect("a gzip body");
    plain
}

#[tokio::test]
async fn long_reads_are_gzipped_for_clients_that_accept_it_and_read_the_same() {
    let server = Server::start();
    let (buyer, seller, finance) = (user("buyer"), user("seller"), user("finance"));
    closed_orders(&server, &buyer, &seller, 30).await;
    let reads = [
        ("/journal", "application/json"),
        ("/journal", "text/csv"),
        ("/orders?limit=30", "application/json"),
        ("/openapi.json", "application/json"),
    ];
    for (path, accept) in reads {
        let (encoding, plain) = fetch(&server, &finance, path, accept, false).await;
        assert_eq!(encoding, None, "{path} as {accept} unasked");
        assert!(
            plain.len() > usize::from(order_ledger::service::COMPRESSED_ABOVE_BYTES),
            "{path} as {accept}: {} bytes is too short to tell",
            plain.len()
        );
        let (encoding, gzipped) = fetch(&server, &finance, path, accept, true).await;
        assert_eq!(encoding.as_deref(), Some("gzip"), "{path} as {accept}");
        assert!(
            gzipped.len() * 3 < plain.len(),
            "{path} as {accept}: {} bytes",
            gzipped.len()
        );
        assert_eq!(gunzip(&gzipped), plain, "{path} as {accept}");
    }
}

#[tokio::test]
async fn commands_answers_and_event_streams_are_never_gzipped() {
    let server = Server::start();
    let (buyer, seller, service) = (user("buyer"), user("seller"), user("service"));
    let order = server.place(&buyer, &seller, "80.00").await;
    let response = server
        .client()
        .post(server.url(&format!("/orders/{order}/confirm")))
        .bearer_auth(&seller.token)
        .header(ACCEPT_ENCODING, "gzip")
        .json(&json!({}))
        .send()
        .await
        .expect("confirm");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers().get(CONTENT_ENCODING), None);
    let answer: serde_json::Value = response.json().await.expect("a JSON answer");
    assert_eq!(answer["order"]["status"], "InProgress");

    let response = server
        .client()
        .get(server.url("/streams/$all"))
        .bearer_auth(&service.token)
        .header(ACCEPT_ENCODING, "gzip")
        .send()
        .await
        .expect("subscribe");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers().get(CONTENT_ENCODING), None);
    assert_eq!(
        response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
        Some("text/event-stream")
    );
    let mut body = response.bytes_stream();
    let mut text = String::new();
    while !text.contains("event: OrderConfirmed") {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(10), body.next())
            .await
            .expect("the stream's events in time")
            .expect("the stream open")
            .expect("a chunk");
        text.push_str(std::str::from_utf8(&chunk).expect("plain text"));
    }
    assert!(text.contains("event: OrderPlaced"), "{text}");
}
