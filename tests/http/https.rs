//! With a certificate the HTTP API speaks HTTPS only, on the same port, HTTP/2 or HTTP/1.1 as
//! the client offers; the starting answers too.

use crate::eventstoredb::certificates;
use crate::streams::Subscriber;
use crate::support::{log_when, user, Server};
use reqwest::{StatusCode, Version};
use serde_json::{json, Value};

/// A service with `tls_cert` and `tls_key` from a test CA, and that CA's certificate file.
pub fn start_https() -> (Server, std::path::PathBuf) {
    let dir = tempfile::TempDir::new().expect("temp dir");
    certificates(dir.path());
    std::fs::write(
        dir.path().join("ledger.toml"),
        "tls_cert = \"node.pem\"\ntls_key = \"node.key\"\n",
    )
    .expect("config");
    let ca = dir.path().join("ca.pem");
    (Server::start_with(dir, &["--dev"]), ca)
}

#[tokio::test]
async fn with_a_certificate_the_api_speaks_https_only() {
    let (server, ca) = start_https();
    let ca = std::fs::read(ca).expect("ca.pem");
    let health = server.url("/healthz");
    assert!(
        health.starts_with("https://127.0.0.1:"),
        "announced {health}"
    );

    // ALPN gives a client that offers HTTP/2 (curl, browsers) HTTP/2, and one that offers
    // only HTTP/1.1 that; commands, reads and event streams go over either.
    let trusting = |builder: reqwest::ClientBuilder| {
        let authority = reqwest::Certificate::from_pem(&ca).expect("a PEM CA");
        builder
            .add_root_certificate(authority)
            .build()
            .expect("client")
    };
    let clients = [
        (trusting(reqwest::Client::builder()), Version::HTTP_2),
        (
            trusting(reqwest::Client::builder().http1_only()),
            Version::HTTP_11,
        ),
    ];
    let (buyer, seller, service) = (user("buyer"), user("seller"), user("service"));
    for (client, version) in &clients {
        let answer = client.get(&health).send().await.expect("health over TLS");
        assert_eq!(
            (answer.status(), answer.version()),
            (StatusCode::OK, *version)
        );
        let placed = client
            .post(server.url("/orders"))
            .bearer_auth(&buyer.token)
            .json(
                &json!({ "seller_id": seller.id, "title": "A logo", "price": "120.00",
                           "currency": "EUR", "delivery_days": 5 }),
            )
            .send()
            .await
            .expect("a command over TLS");
        assert_eq!(
            (placed.status(), placed.version()),
            (StatusCode::CREATED, *version)
        );
        let placed: Value = placed.json().await.expect("an answer");
        let order = placed["order_id"].as_str().expect("an order id");
        let read: Value = client
            .get(server.url(&format!("/orders/{order}")))
            .bearer_auth(&seller.token)
            .send()
            .await
            .expect("a read over TLS")
            .json()
            .await
            .expect("a summary");
        assert_eq!(read["status"], "Placed", "{read}");

        let stream = client
            .get(server.url(&format!("/streams/order-{order}")))
            .bearer_auth(&service.token)
            .send()
            .await
            .expect("a subscription over TLS");
        assert_eq!(stream.version(), *version);
        let (sent, _) = Subscriber::reading(stream).catch_up().await;
        assert!(
            sent.iter().any(|event| event.event_type == "OrderPlaced"),
            "{sent:?}"
        );
    }

    let plain = health.replacen("https://", "http://", 1);
    assert!(
        reqwest::get(&plain).await.is_err(),
        "plain HTTP on the HTTPS port is refused"
    );
    log_when(server.dir.path(), |log| {
        log.contains("an HTTPS client's TLS handshake failed")
    })
    .await;
    assert!(
        server.client().get(&health).send().await.is_err(),
        "a client that does not trust the certificate is refused"
    );
    // Both show on the metrics, for a dashboard to see clients that cannot get in.
    let (client, _) = &clients[0];
    let refused = || async {
        let metrics = client
            .get(server.url("/metrics"))
            .send()
            .await
            .expect("metrics over TLS")
            .text()
            .await
            .expect("a page");
        metrics
            .lines()
            .find_map(|line| {
                line.strip_prefix(r#"ledger_tls_handshakes_failed_total{reason="refused"} "#)
            })
            .and_then(|count| count.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while refused().await < 2.0 {
        assert!(std::time::Instant::now() < deadline, "two refusals counted");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
