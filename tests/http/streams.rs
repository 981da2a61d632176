//! Server-Sent Events: catch-up then live, `id` = position, resumable with `Last-Event-ID`.

use crate::support::{user, Server, User};
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Delivered {
    pub id: u64,
    pub event_type: String,
    pub data: Value,
}

#[derive(Debug)]
pub enum Sent {
    Event(Delivered),
    /// The handover to live, with what it says.
    CaughtUp(Value),
}

/// A minimal SSE client: enough of the format to read what the service sends.
pub struct Subscriber {
    body: futures::stream::BoxStream<'static, reqwest::Result<axum::body::Bytes>>,
    buffer: String,
}

impl Subscriber {
    pub async fn connect(
        server: &Server,
        who: &User,
        path: &str,
        last_event_id: Option<u64>,
    ) -> Subscriber {
        let mut request = server
            .client()
            .get(server.url(path))
            .bearer_auth(&who.token);
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id.to_string());
        }
        Subscriber::reading(request.send().await.expect("subscribe"))
    }

    /// Reads a subscription's answer, however it was asked for (another client, HTTP/2).
    pub fn reading(response: reqwest::Response) -> Subscriber {
        assert_eq!(response.status(), 200);
        assert_eq!(
            response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("text/event-stream")
        );
        Subscriber {
            body: response.bytes_stream().boxed(),
            buffer: String::new(),
        }
    }

    /// The next event of the log, skipping keep-alive comments and the handover.
    pub async fn next(&mut self) -> Delivered {
        loop {
            if let Sent::Event(event) = self.next_sent().await {
                return event;
            }
        }
    }

    /// The events up to the `caught-up` announcement, and what it says.
    pub async fn catch_up(&mut self) -> (Vec<Delivered>, Value) {
        let mut events = Vec::new();
        loop {
            match self.next_sent().await {
                Sent::Event(event) => events.push(event),
                Sent::CaughtUp(data) => return (events, data),
            }
        }
    }

    /// The next event or announcement, skipping keep-alive comments.
    pub async fn next_sent(&mut self) -> Sent {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let (mut id, mut event_type, mut data) = (None, String::new(), String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = v.trim().parse().ok();
                    } else if let Some(v) = line.strip_prefix("event:") {
                        event_type = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if data.is_empty() {
                    continue; // a comment
                }
                let data: Value = serde_json::from_str(&data).expect("JSON data");
                return match id {
                    Some(id) => Sent::Event(Delivered {
                        id,
                        event_type,
                        data,
                    }),
                    None => {
                        assert_eq!(event_type, "caught-up", "an event without id");
                        Sent::CaughtUp(data)
                    }
                };
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.body.next())
                .await
                .expect("an event in time")
                .expect("the stream is open")
                .expect("a chunk");
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    pub async fn take(&mut self, n: usize) -> Vec<Delivered> {
        let mut events = Vec::new();
        for _ in 0..n {
            events.push(self.next().await);
        }
        events
    }
}

async fn busy_orders(server: &Server, buyer: &User, seller: &User, orders: usize) {
    for _ in 0..orders {
        let order = server.place(buyer, seller, "10.00").await;
        server.act(seller, order, "confirm", json!({})).await;
    }
}

#[tokio::test]
async fn a_subscriber_joining_mid_stream_and_resuming_gets_every_event_once_in_order() {
    let server = Server::start();
    let (buyer, seller, service) = (user("buyer"), user("seller"), user("service"));
    busy_orders(&server, &buyer, &seller, 5).await; // positions 0..=9

    // Join mid-stream, from position 4.
    let mut first = Subscriber::connect(&server, &service, "/streams/$all?from=4", None).await;
    let mut received = first.take(6).await; // 4..=9, caught up
    let writer = {
        let (server_url, buyer, seller) = (server.base.clone(), buyer.clone(), seller.clone());
        tokio::spawn(async move { live_writes(&server_url, &buyer, &seller, 10).await })
    };
    received.extend(first.take(5).await); // some live ones
    let last = received.last().map(|e| e.id).expect("events");
    drop(first); // disconnect while the writer goes on

    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut second = Subscriber::connect(&server, &service, "/streams/$all", Some(last)).await;
    writer.await.expect("writer");
    let head = server.log_head().await.expect("events");
    let remaining = (head - last) as usize;
    received.extend(second.take(remaining).await);

    let ids: Vec<u64> = received.iter().map(|e| e.id).collect();
    let expected: Vec<u64> = (4..=head).collect();
    assert_eq!(ids, expected, "every event once, in order");
    for event in &received {
        assert_eq!(event.data["position"], event.id);
        assert_eq!(event.data["type"], event.event_type);
    }
}

/// `pairs` orders placed and confirmed by a second client, while the test reads.
async fn live_writes(base: &str, buyer: &User, seller: &User, pairs: usize) {
    let client = reqwest::Client::new();
    for _ in 0..pairs {
        let placed: Value = client
            .post(format!("{base}/orders"))
            .bearer_auth(&buyer.token)
            .json(&json!({"seller_id": seller.id, "title": "t", "price": "1.00", "currency": "EUR", "delivery_days": 2}))
            .send()
            .await
            .expect("place")
            .json()
            .await
            .expect("json");
        let order = placed["order_id"].as_str().expect("id").to_owned();
        let confirmed = client
            .post(format!("{base}/orders/{order}/confirm"))
            .bearer_auth(&seller.token)
            .send()
            .await
            .expect("confirm");
        assert_eq!(confirmed.status(), 200);
    }
}

#[tokio::test]
async fn one_stream_and_a_type_filter() {
    let server = Server::start();
    let (buyer, seller, mediator) = (user("buyer"), user("seller"), user("mediator"));
    busy_orders(&server, &buyer, &seller, 2).await;
    let order = server.place(&buyer, &seller, "10.00").await;
    server.act(&seller, order, "confirm", json!({})).await;
    busy_orders(&server, &buyer, &seller, 1).await;

    let path = format!("/streams/order-{order}");
    let mut stream = Subscriber::connect(&server, &mediator, &path, None).await;
    let events = stream.take(2).await;
    assert_eq!(events[0].event_type, "OrderPlaced");
    assert_eq!(events[1].event_type, "OrderConfirmed");
    assert_eq!(events[1].data["stream"], format!("order-{order}"));
    assert_eq!(events[1].data["revision"], 1);
    // Resuming one stream by its position goes on after that event.
    server
        .act(&seller, order, "deliver", json!({"message": "x"}))
        .await;
    let mut resumed = Subscriber::connect(&server, &mediator, &path, Some(events[0].id)).await;
    let again = resumed.take(2).await;
    assert_eq!(again[0].id, events[1].id);
    assert_eq!(again[1].event_type, "OrderDelivered");

    let mut confirmations = Subscriber::connect(
        &server,
        &mediator,
        "/streams/$all?type_prefix=OrderConf",
        None,
    )
    .await;
    let only = confirmations.take(4).await;
    assert!(
        only.iter().all(|e| e.event_type == "OrderConfirmed"),
        "{only:?}"
    );
}

/// A client that percent-encodes `$` (JavaScript's `encodeURIComponent` does) reads the same
/// streams as one that does not.
#[tokio::test]
async fn stream_names_with_an_encoded_dollar_read_the_same_streams() {
    let server = Server::start();
    let (buyer, seller, service) = (user("buyer"), user("seller"), user("service"));
    busy_orders(&server, &buyer, &seller, 2).await;
    for (plain, encoded) in [
        ("/streams/$all", "/streams/%24all"),
        ("/streams/$ce-order", "/streams/%24ce-order"),
        (
            "/streams/$et-OrderConfirmed",
            "/streams/%24et-OrderConfirmed",
        ),
    ] {
        let (expected, _) = Subscriber::connect(&server, &service, plain, None)
            .await
            .catch_up()
            .await;
        let (read, caught_up) = Subscriber::connect(&server, &service, encoded, None)
            .await
            .catch_up()
            .await;
        assert!(!expected.is_empty(), "{plain}");
        let ids = |events: &[Delivered]| events.iter().map(|e| e.id).collect::<Vec<_>>();
        assert_eq!(ids(&read), ids(&expected), "{encoded}: {caught_up}");
    }
}

#[tokio::test]
async fn system_streams_by_category_and_type_and_a_live_only_start() {
    let server = Server::start();
    let (buyer, seller, service) = (user("buyer"), user("seller"), user("service"));
    busy_orders(&server, &buyer, &seller, 2).await; // positions 0..=3
    let delivered = server.place(&buyer, &seller, "10.00").await; // 4
    server.act(&seller, delivered, "confirm", json!({})).await; // 5
    server
        .act(&seller, delivered, "deliver", json!({"message": "x"}))
        .await; // 6

    // `from=end`: nothing of the past, the next commit first.
    let mut live = Subscriber::connect(&server, &service, "/streams/$all?from=end", None).await;
    let mut order_live = Subscriber::connect(
        &server,
        &service,
        &format!("/streams/order-{delivered}?from=end"),
        None,
    )
    .await;
    server.act(&buyer, delivered, "close", json!({})).await; // 7
    assert_eq!(live.next().await.id, 7);
    let closed = order_live.next().await;
    assert_eq!((closed.id, closed.event_type.as_str()), (7, "OrderClosed"));

    // `$et-<type>`: exactly that type, from anywhere in the log.
    let mut confirmations =
        Subscriber::connect(&server, &service, "/streams/$et-OrderConfirmed", None).await;
    let ids: Vec<u64> = confirmations.take(3).await.iter().map(|e| e.id).collect();
    assert_eq!(ids, [1, 3, 5]);
    // `$ce-<category>`: every stream of the category, `from` a position as on `$all`.
    let mut orders =
        Subscriber::connect(&server, &service, "/streams/$ce-order?from=5", None).await;
    let events = orders.take(3).await;
    let ids: Vec<u64> = events.iter().map(|e| e.id).collect();
    assert_eq!(ids, [5, 6, 7]);
    assert_eq!(events[1].event_type, "OrderDelivered");
    // Resumed by `Last-Event-ID` like any other.
    let mut resumed =
        Subscriber::connect(&server, &service, "/streams/$et-OrderConfirmed", Some(3)).await;
    assert_eq!(resumed.next().await.id, 5);

    for path in ["/streams/$ce-", "/streams/$users", "/streams/$et-"] {
        server
            .get(&service, path)
            .await
            .problem(StatusCode::BAD_REQUEST, "invalid_stream");
    }
    for from in ["-1", "later", "1.5"] {
        server
            .get(&service, &format!("/streams/$all?from={from}"))
            .await
            .problem(StatusCode::BAD_REQUEST, "invalid_query");
    }
}

#[tokio::test]
async fn a_subscriber_is_told_once_when_it_has_caught_up() {
    let server = Server::start();
    let (buyer, seller, service) = (user("buyer"), user("seller"), user("service"));
    let mut early = Subscriber::connect(&server, &service, "/streams/$all", None).await;
    let (none, on_empty) = early.catch_up().await;
    assert!(none.is_empty());
    assert_eq!(on_empty, json!({"position": null}));
    busy_orders(&server, &buyer, &seller, 3).await; // positions 0..=5

    // Catch-up, the announcement after the last event there was, then live without another.
    let mut all = Subscriber::connect(&server, &service, "/streams/$all", None).await;
    let (past, announced) = all.catch_up().await;
    assert_eq!(
        past.iter().map(|e| e.id).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4, 5]
    );
    assert_eq!(announced, json!({"position": 5}));
    let order = server.place(&buyer, &seller, "10.00").await; // 6
    match all.next_sent().await {
        Sent::Event(event) => assert_eq!(event.id, 6),
        other => panic!("live after one announcement, got {other:?}"),
    }
    // The early subscriber was live all along: no second announcement.
    let live: Vec<u64> = early.take(7).await.iter().map(|e| e.id).collect();
    assert_eq!(live, [0, 1, 2, 3, 4, 5, 6]);

    // Filtered: announced at the head even when the head's event is filtered out.
    let mut placed =
        Subscriber::connect(&server, &service, "/streams/$et-OrderConfirmed", None).await;
    let (confirmations, announced) = placed.catch_up().await;
    assert_eq!(confirmations.len(), 3);
    assert_eq!(announced, json!({"position": 6}));
    // One stream counts by revision; resumed at its end, it is caught up at once.
    let path = format!("/streams/order-{order}");
    let mut one = Subscriber::connect(&server, &service, &path, Some(6)).await;
    let (nothing, announced) = one.catch_up().await;
    assert!(nothing.is_empty());
    assert_eq!(announced, json!({"revision": 0}));
    let mut later = Subscriber::connect(&server, &service, "/streams/$all?from=end", None).await;
    let (nothing, announced) = later.catch_up().await;
    assert!(nothing.is_empty());
    assert_eq!(announced, json!({"position": 6}));
}

/// A checkpoint past the log's end comes from another log, or from before a restore: going
/// on from there would skip the events that take those places, so it is refused, as KurrentDB
/// refuses an invalid position. Up to the end, or from the next position, is a live start.
#[tokio::test]
async fn a_subscriber_cannot_resume_past_the_end_of_the_log() {
    let server = Server::start();
    let (buyer, seller, service) = (user("buyer"), user("seller"), user("service"));
    let order = server.place(&buyer, &seller, "10.00").await;
    server.place(&buyer, &seller, "12.00").await;

    let mut after_the_last = Subscriber::connect(&server, &service, "/streams/$all", Some(1)).await;
    let (events, said) = after_the_last.catch_up().await;
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(said, json!({"position": 1}));
    let mut from_the_next =
        Subscriber::connect(&server, &service, "/streams/$all?from=2", None).await;
    assert!(from_the_next.catch_up().await.0.is_empty());

    let order_stream = format!("/streams/order-{order}");
    let past_the_end = [
        ("/streams/$all".to_owned(), Some(2), "position_not_found"),
        (
            "/streams/$all?from=3".to_owned(),
            None,
            "position_not_found",
        ),
        (
            "/streams/$et-OrderPlaced?from=3".to_owned(),
            None,
            "position_not_found",
        ),
        (format!("{order_stream}?from=2"), None, "revision_not_found"),
        (order_stream.clone(), Some(2), "position_not_found"),
    ];
    for (path, last_event_id, code) in past_the_end {
        let mut request = server
            .client()
            .get(server.url(&path))
            .bearer_auth(&service.token);
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id.to_string());
        }
        // Not read whole unless refused: a stream, if answered, never ends.
        let response = request.send().await.expect("request");
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        let reply = server.reply(response).await;
        let detail = reply.body["detail"].as_str().unwrap_or_default().to_owned();
        reply.problem(StatusCode::NOT_FOUND, code);
        let last = if code == "revision_not_found" {
            "the stream's last revision is 0"
        } else {
            "the log's last position is 1"
        };
        assert!(detail.contains(last), "{path}: {detail}");
    }
    // The stream's next revision is a live start too.
    Subscriber::connect(&server, &service, &format!("{order_stream}?from=1"), None).await;

    // Those that started at the end get what comes next.
    server.place(&buyer, &seller, "14.00").await;
    assert_eq!(after_the_last.next().await.id, 2);
    assert_eq!(from_the_next.next().await.id, 2);
}
