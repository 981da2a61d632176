//! What operators see: metrics, tokens from the CLI, the dev-only clock, start-up errors.

use crate::eventstoredb;
use crate::support::{log_of, log_when, printed, user, Server, User, SECRET};
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::json;
use std::process::Command;
use tempfile::TempDir;

async fn metrics(server: &Server) -> String {
    let reply = server.client().get(server.url("/metrics")).send().await;
    reply.expect("metrics").text().await.expect("text")
}

fn metric(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines()
        .find(|line| line.starts_with(name_and_labels))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

/// An operator sees how many subscribers each protocol serves, and that those who left are
/// let go: a count that only grows is subscriptions leaking.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_the_subscribers_of_each_protocol_while_they_stay() {
    let server = eventstoredb::start();
    let (buyer, seller, service) = (user("buyer"), user("seller"), user("service"));
    server.place(&buyer, &seller, "10.00").await;
    let open = |text: &str, protocol: &str| {
        metric(
            text,
            &format!("ledger_subscribers{{protocol=\"{protocol}\"}}"),
        )
    };
    let text = metrics(&server).await;
    assert_eq!(
        (open(&text, "sse"), open(&text, "grpc")),
        (Some(0.0), Some(0.0)),
        "{text}"
    );

    let mut first =
        crate::streams::Subscriber::connect(&server, &service, "/streams/$all", None).await;
    first.catch_up().await;
    let mut second =
        crate::streams::Subscriber::connect(&server, &service, "/streams/$ce-order", None).await;
    second.catch_up().await;
    let client = eventstoredb::client(&server, "esdb", "subscriber:pw@");
    let mut grpc = client
        .subscribe_to_all(&eventstore::SubscribeToAllOptions::default())
        .await;
    tokio::time::timeout(std::time::Duration::from_secs(10), grpc.next())
        .await
        .expect("an event in time")
        .expect("an event");
    let text = metrics(&server).await;
    assert_eq!(
        (open(&text, "sse"), open(&text, "grpc")),
        (Some(2.0), Some(1.0)),
        "{text}"
    );

    drop((first, grpc));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let text = loop {
        let text = metrics(&server).await;
        if (open(&text, "sse"), open(&text, "grpc")) == (Some(1.0), Some(0.0)) {
            break text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still counted: {text}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(text.contains("# TYPE ledger_subscribers gauge"), "{text}");
    drop(second);
    server.stop();
}

/// A subscriber over HTTP/1 that stops reading (or whose network vanished) is let go once
/// what was sent to it has waited 30 s, not kept for good: each holds a subscription.
#[tokio::test]
async fn an_http1_subscriber_that_stops_reading_is_let_go() {
    let dir = TempDir::new().expect("dir");
    // Enough events to fill the service's send buffer (at most 4 MiB) and the client's.
    let output = Command::new(env!("CARGO_BIN_EXE_ledger"))
        .args([
            "simulate",
            "--orders",
            "2000",
            "--concurrency",
            "16",
            "--quiet",
            "--data-dir",
        ])
        .arg(dir.path().join("data"))
        .output()
        .expect("ledger simulate");
    assert!(output.status.success(), "{}", printed(&output));
    let server = Server::start_in(dir);
    let address: std::net::SocketAddr = server
        .base
        .trim_start_matches("http://")
        .parse()
        .expect("address");
    let stuck =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    stuck.set_recv_buffer_size(4096).expect("small window");
    stuck.connect(&address.into()).expect("connect");
    let request = format!(
        "GET /streams/$all HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {}\r\n\r\n",
        user("service").token
    );
    std::io::Write::write_all(&mut &stuck, request.as_bytes()).expect("request sent");

    let subscribers = || async {
        metric(
            &metrics(&server).await,
            "ledger_subscribers{protocol=\"sse\"}",
        )
    };
    let waited = std::time::Instant::now();
    while subscribers().await != Some(1.0) {
        assert!(
            waited.elapsed().as_secs() < 10,
            "the subscriber never counted"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    while subscribers().await != Some(0.0) {
        assert!(
            waited.elapsed().as_secs() < 90,
            "a subscriber that reads nothing is still held after 90 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    assert!(
        waited.elapsed().as_secs() >= 20,
        "let go after {:?}: too soon for a deadline of 30 s",
        waited.elapsed()
    );
    // Everyone else is served as before.
    let (buyer, seller) = (user("buyer"), user("seller"));
    server.place(&buyer, &seller, "10.00").await;
    drop(stuck);
}

#[tokio::test]
async fn metrics_count_commands_by_type_and_outcome_and_time_appends() {
    let server = Server::start();
    let (buyer, seller) = (user("buyer"), user("seller"));
    let order = server.place(&buyer, &seller, "10.00").await;
    server.act(&seller, order, "confirm", json!({})).await;
    server
        .post(&seller, &format!("/orders/{order}/confirm"), json!({}))
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY, "wrong_state");
    let text = metrics(&server).await;
    let count = |labels: &str| metric(&text, &format!("ledger_commands_total{{{labels}}}"));
    assert_eq!(
        count(r#"command="Place",outcome="accepted""#),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        count(r#"command="Confirm",outcome="accepted""#),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        count(r#"command="Confirm",outcome="wrong_state""#),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, r#"ledger_append_seconds_count{outcome="ok"}"#),
        Some(2.0),
        "{text}"
    );
    // Each accepted command waited for the views to fold it before its answer.
    assert_eq!(
        metric(&text, "ledger_views_wait_seconds_count"),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, "ledger_projection_lag_events"),
        Some(0.0),
        "{text}"
    );
    assert_eq!(metric(&text, "ledger_views_stopped"), Some(0.0), "{text}");
    // Counters are counters, named as Prometheus expects, and each says what it counts.
    assert_eq!(
        metric(&text, "ledger_conflicts_retried_total"),
        Some(0.0),
        "{text}"
    );
    // The confirmation came from the state cache; only its refusal was checked in the log.
    assert_eq!(
        metric(&text, "ledger_order_loads_total"),
        Some(1.0),
        "{text}"
    );
    for (name, kind) in [
        ("ledger_commands_total", "counter"),
        ("ledger_conflicts_retried_total", "counter"),
        ("ledger_order_loads_total", "counter"),
        ("ledger_http_requests_total", "counter"),
        ("ledger_append_seconds", "histogram"),
        ("ledger_http_request_seconds", "histogram"),
        ("ledger_views_wait_seconds", "histogram"),
        ("ledger_projection_lag_events", "gauge"),
        ("ledger_starting", "gauge"),
    ] {
        assert!(
            text.contains(&format!("# TYPE {name} {kind}\n")),
            "{name}: {text}"
        );
        assert!(
            text.contains(&format!("# HELP {name} ")),
            "{name} has no help: {text}"
        );
    }
}

#[tokio::test]
async fn a_token_minted_by_the_cli_is_accepted() {
    let server = Server::start();
    let sub = uuid::Uuid::new_v4();
    let output = Command::new(env!("CARGO_BIN_EXE_ledger"))
        .args(["token", "--role", "finance", "--sub", &sub.to_string()])
        .env("LEDGER_JWT_SECRET", SECRET)
        .current_dir(server.dir.path())
        .output()
        .expect("ledger token");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let finance = User {
        id: sub,
        role: "finance",
        token: String::from_utf8(output.stdout)
            .expect("utf-8")
            .trim()
            .to_owned(),
    };
    let trial = server.get(&finance, "/trial-balance").await.ok();
    assert_eq!(trial["balanced"], true);
    // A finance token still may not act as a buyer.
    server
        .post(&finance, "/orders", json!({"seller_id": sub, "title": "t", "price": "1.00", "currency": "EUR", "delivery_days": 1}))
        .await
        .problem(StatusCode::FORBIDDEN, "role_not_allowed");
}

#[test]
fn the_cli_mints_tokens_for_at_most_ten_years_and_says_so() {
    let sub = uuid::Uuid::new_v4().to_string();
    let mint = |hours: &str| {
        Command::new(env!("CARGO_BIN_EXE_ledger"))
            .args([
                "token", "--role", "service", "--sub", &sub, "--hours", hours,
            ])
            .env("LEDGER_JWT_SECRET", SECRET)
            .output()
            .expect("ledger token")
    };
    assert!(mint("87840").status.success(), "ten years of hours");
    // Far past it, chrono's hours overflowed and the CLI panicked.
    for refused in ["87841", "9999999999999", "0"] {
        let output = mint(refused);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{refused}: {stderr}");
        assert!(
            stderr.contains("--hours") && !stderr.contains("panicked"),
            "{stderr}"
        );
    }
}

#[tokio::test]
async fn without_dev_the_clock_route_does_not_exist() {
    let server = Server::start_with(TempDir::new().expect("dir"), &[]);
    let mediator = user("mediator");
    server
        .post(
            &mediator,
            "/dev/clock",
            json!({"now": "2099-01-01T00:00:00Z"}),
        )
        .await
        .problem(StatusCode::NOT_FOUND, "not_found");
    let document = server
        .send(server.client().get(server.url("/openapi.json")))
        .await
        .ok();
    assert!(document["paths"].get("/dev/clock").is_none());
}

/// Downtime can leave more deadlines passed than the timers take in one page. Every one is
/// acted on at once, not a page a tick, and moving the dev clock acts on them without waiting
/// for the tick: here the next is an hour away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadlines_passed_by_more_than_a_page_of_timers_are_all_acted_on_at_once() {
    let an_hour = [("LEDGER_TIMER_INTERVAL_MS", "3600000")];
    let server = Server::start_with_env(TempDir::new().expect("temp dir"), &["--dev"], &an_hour);
    let (buyer, seller, mediator) = (user("buyer"), user("seller"), user("mediator"));
    let orders = order_ledger::timers::TIMERS_PER_TICK_MAX + 200;
    let placed: Vec<uuid::Uuid> = futures::stream::iter(0..orders)
        .map(|_| server.place(&buyer, &seller, "10.00"))
        .buffer_unordered(16)
        .collect()
        .await;
    assert_eq!(
        count_in_state(&server, &mediator, seller.id, "Placed").await,
        orders
    );

    server
        .advance(server.now().await + chrono::Duration::days(30))
        .await;
    let mut cancelled = 0;
    for _ in 0..600 {
        cancelled = count_in_state(&server, &mediator, seller.id, "Cancelled").await;
        if cancelled == orders {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(cancelled, orders, "orders expired of {orders} placed");
    let last = placed.last().expect("orders were placed");
    let summary = server.order(&mediator, *last).await;
    assert_eq!(summary["status"], json!("Cancelled"), "{summary}");
    assert_eq!(summary["refunded"], summary["price"], "{summary}");
}

/// An operator sees the timers' work: the deadlines passed and not yet acted on (a backlog,
/// or, if it stays, a timer whose command keeps being refused), and what became of each
/// timer fired.
#[tokio::test]
async fn metrics_count_the_timers_due_and_what_became_of_those_fired() {
    let an_hour = [("LEDGER_TIMER_INTERVAL_MS", "3600000")];
    let server = Server::start_with_env(TempDir::new().expect("temp dir"), &["--dev"], &an_hour);
    let (buyer, seller) = (user("buyer"), user("seller"));
    for _ in 0..3 {
        server.place(&buyer, &seller, "10.00").await;
    }
    let fired = |text: &str| metric(text, "ledger_timers_total{outcome=\"fired\"}");
    let text = metrics(&server).await;
    // Three deadlines pending, none passed.
    assert_eq!(metric(&text, "ledger_timers_due"), Some(0.0), "{text}");
    assert_eq!(fired(&text), Some(0.0), "{text}");

    server
        .advance(server.now().await + chrono::Duration::days(30))
        .await;
    // The count follows the commands' answers, the gauge the views that fold them.
    let done =
        |text: &str| fired(text) == Some(3.0) && metric(text, "ledger_timers_due") == Some(0.0);
    let mut text = metrics(&server).await;
    for _ in 0..200 {
        if done(&text) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        text = metrics(&server).await;
    }
    assert_eq!(fired(&text), Some(3.0), "{text}");
    assert_eq!(metric(&text, "ledger_timers_due"), Some(0.0), "{text}");
    let refused = metric(&text, "ledger_timers_total{outcome=\"refused\"}");
    assert_eq!(refused, Some(0.0), "{text}");
}

/// Whoever leads the mediators sees how many disputes wait and how long the longest has
/// waited, and can alert on it.
#[tokio::test]
async fn metrics_count_the_disputes_open_and_the_longest_wait() {
    let server = Server::start();
    let (buyer, seller, mediator) = (user("buyer"), user("seller"), user("mediator"));
    let text = metrics(&server).await;
    assert_eq!(metric(&text, "ledger_disputes_open "), Some(0.0), "{text}");
    let waited = |text: &str| metric(text, "ledger_dispute_longest_wait_seconds ");
    assert_eq!(waited(&text), Some(0.0), "{text}");

    let start = server.now().await;
    let mut opened_at = Vec::new();
    for day in 1..=2 {
        let order = server.place(&buyer, &seller, "10.00").await;
        server.act(&seller, order, "confirm", json!({})).await;
        server.advance(start + chrono::Duration::days(day)).await;
        let reason = json!({ "reason": "nothing delivered" });
        let disputed = server.act(&buyer, order, "dispute", reason).await;
        let at = disputed["events"][0]["data"]["at"].as_str().expect("at");
        opened_at.push((order, crate::support::parse_instant(&json!(at))));
    }
    server.advance(start + chrono::Duration::days(4)).await;
    // The longest wait is the first dispute's, as of the scrape.
    let text = longest_wait(&server, opened_at[0].1).await;
    assert_eq!(metric(&text, "ledger_disputes_open "), Some(2.0), "{text}");

    let release = json!({ "outcome": "release", "note": "delivered as agreed" });
    server
        .act(&mediator, opened_at[0].0, "dispute/resolve", release)
        .await;
    let text = longest_wait(&server, opened_at[1].1).await;
    assert_eq!(metric(&text, "ledger_disputes_open "), Some(1.0), "{text}");
}

/// `/metrics`, checking that the longest wait it gives is since `opened`, as of the scrape.
async fn longest_wait(server: &Server, opened: chrono::DateTime<chrono::Utc>) -> String {
    let before = server.now().await;
    let text = metrics(server).await;
    let after = server.now().await;
    let seconds = |at: chrono::DateTime<chrono::Utc>| (at - opened).num_milliseconds() as f64 / 1e3;
    let waited = metric(&text, "ledger_dispute_longest_wait_seconds ").unwrap_or(-1.0);
    assert!(
        seconds(before) - 0.001 <= waited && waited <= seconds(after) + 0.001,
        "{waited} s, not between {} and {} s:\n{text}",
        seconds(before),
        seconds(after)
    );
    text
}

/// The alerting rules shipped in docs/alerts.yml name only metrics the service serves: a
/// rule on a renamed metric would never fire, and say nothing.
#[tokio::test]
async fn the_alert_rules_name_only_metrics_the_service_serves() {
    let server = Server::start();
    // Commands and appends are listed once one happened.
    server.place(&user("buyer"), &user("seller"), "10.00").await;
    let text = metrics(&server).await;
    let rules_path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/alerts.yml");
    let rules = std::fs::read_to_string(rules_path).expect("docs/alerts.yml");
    let named: std::collections::BTreeSet<&str> = rules
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| word.starts_with("ledger_"))
        .collect();
    assert!(named.len() >= 5, "rules name {named:?}");
    for name in named {
        let served = text
            .lines()
            .filter(|line| !line.starts_with('#'))
            .any(|line| {
                line.starts_with(&format!("{name}{{")) || line.starts_with(&format!("{name} "))
            });
        assert!(
            served,
            "{name} is in docs/alerts.yml but not in /metrics:\n{text}"
        );
    }
}

/// How many of `seller`'s orders are in `state`, over every page.
async fn count_in_state(server: &Server, who: &User, seller: uuid::Uuid, state: &str) -> usize {
    let path = format!("/orders?seller={seller}&state={state}&limit=500");
    crate::lists::follow(server, who, &path).await.0.len()
}

#[tokio::test]
async fn the_dev_clock_reads_what_it_was_set_to_and_stops_at_the_last_rfc_3339_year() {
    let server = Server::start();
    let mediator = user("mediator");
    let target = "2031-06-01T00:00:00Z";
    let set = server
        .post(&mediator, "/dev/clock", json!({ "now": target }))
        .await
        .ok();
    let target = chrono::DateTime::parse_from_rfc3339(target).expect("instant");
    for now in [
        set["now"].clone(),
        server.get(&mediator, "/dev/clock").await.ok()["now"].clone(),
    ] {
        let now = chrono::DateTime::parse_from_rfc3339(now.as_str().expect("now")).expect("now");
        assert!(now >= target, "the clock reads {now}, set to {target}");
    }

    // Near chrono's end the clock overflowed as it ticked, and every command panicked.
    server
        .post(
            &mediator,
            "/dev/clock",
            json!({"now": "+262142-12-31T23:59:59.999Z"}),
        )
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY, "clock_too_late");
    let (buyer, seller) = (user("buyer"), user("seller"));
    let order = server.place(&buyer, &seller, "10.00").await;
    server.act(&seller, order, "confirm", json!({})).await;
}

#[tokio::test]
async fn orders_the_state_cache_cannot_hold_are_read_from_the_log_and_counted() {
    let dir = TempDir::new().expect("dir");
    std::fs::write(dir.path().join("ledger.toml"), "state_cache_orders = 1\n").expect("config");
    let server = Server::start_with(dir, &["--dev"]);
    let (buyer, seller) = (user("buyer"), user("seller"));
    let first = server.place(&buyer, &seller, "10.00").await;
    let second = server.place(&buyer, &seller, "20.00").await;
    // Each command finds the other order in the one-order cache, so it reads its own.
    for (action, body) in [
        ("confirm", json!({})),
        ("deliver", json!({ "message": "done" })),
    ] {
        for order in [first, second] {
            server.act(&seller, order, action, body.clone()).await;
        }
    }
    for order in [first, second] {
        let closed = server.act(&buyer, order, "close", json!({})).await;
        assert_eq!(closed["revision"], 3, "{closed}");
        assert_eq!(closed["order"]["status"], "Closed", "{closed}");
    }
    assert_eq!(
        server.wallet_eur(&seller, seller.id).await.as_deref(),
        Some("24.00")
    );
    let text = metrics(&server).await;
    assert_eq!(
        metric(&text, "ledger_order_loads_total"),
        Some(6.0),
        "{text}"
    );
}

#[test]
fn settings_that_cannot_work_are_refused_at_start() {
    for (variable, value, says) in [
        (
            "LEDGER_STATE_CACHE_ORDERS",
            "0",
            "state_cache_orders must be at least 1",
        ),
        (
            "LEDGER_BODY_LIMIT_BYTES",
            "0",
            "body_limit_bytes must be at least 4096 (got 0)",
        ),
        (
            "LEDGER_TIMER_INTERVAL_MS",
            "0",
            "timer_interval_ms must be at least 1",
        ),
    ] {
        let dir = TempDir::new().expect("dir");
        let output = Command::new(env!("CARGO_BIN_EXE_ledger"))
            .args(["serve", "--dev", "--listen", "127.0.0.1:0"])
            .env(variable, value)
            .current_dir(dir.path())
            .output()
            .expect("ledger serve");
        assert!(!output.status.success(), "{variable}={value}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(says), "{variable}={value}: {stderr}");
        assert!(!dir.path().join("data").exists(), "nothing is created");
    }
}

#[test]
fn without_dev_and_without_a_secret_the_service_refuses_to_start() {
    let dir = TempDir::new().expect("dir");
    let output = Command::new(env!("CARGO_BIN_EXE_ledger"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env_remove("LEDGER_JWT_SECRET")
        .current_dir(dir.path())
        .output()
        .expect("ledger serve");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no token secret"), "{stderr}");
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problem_documents_too() {
    let server = Server::start();
    let mediator = user("mediator");
    server
        .get(&mediator, "/no/such/route")
        .await
        .problem(StatusCode::NOT_FOUND, "not_found");
    server
        .send(
            server
                .client()
                .delete(server.url("/orders"))
                .bearer_auth(&mediator.token),
        )
        .await
        .problem(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
}

/// What `docs/operations.md` says an operator sees when a newer node appended a kind of
/// event this binary does not know: the views stop just before it, `/readyz` names it, and
/// commands still go through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_the_views_cannot_read_stops_them_before_it_and_readyz_names_it() {
    let server = eventstoredb::start();
    let (buyer, seller) = (user("buyer"), user("seller"));
    let order = server.place(&buyer, &seller, "120.00").await;
    let newer_node = eventstoredb::client(&server, "esdb", "ledger:pw@");
    let teleported = eventstore::EventData::json("OrderTeleported", &json!({"to": "the moon"}))
        .and_then(|event| event.metadata_as_json(&json!({"schema_version": 1})))
        .expect("event");
    newer_node
        .append_to_stream(format!("order-{order}"), &Default::default(), teleported)
        .await
        .expect("append");

    stopped_at_the_teleport(&server, 1).await;

    // Commands are still decided, appended and answered; reads stay where the views stopped.
    let later = server.place(&buyer, &seller, "5.00").await;
    server
        .get(&buyer, &format!("/orders/{later}"))
        .await
        .problem(StatusCode::NOT_FOUND, "order_not_found");
    let (_, body) = readiness(&server).await;
    assert_eq!(
        (body["views_at"].as_u64(), body["log_at"].as_u64()),
        (Some(0), Some(2)),
        "{body}"
    );
    let text = metrics(&server).await;
    assert_eq!(
        metric(&text, "ledger_projection_lag_events"),
        Some(2.0),
        "{text}"
    );
    assert_eq!(metric(&text, "ledger_views_stopped"), Some(1.0), "{text}");

    // A command on that order cannot be decided: the failure is logged once, with the path,
    // the caller's correlation id and the cause.
    let correlation = uuid::Uuid::new_v4();
    let confirm = server
        .client()
        .post(server.url(&format!("/orders/{order}/confirm")))
        .bearer_auth(&seller.token)
        .header("X-Correlation-Id", correlation.to_string())
        .json(&json!({}));
    let reply = server.send(confirm).await;
    assert!(reply.status.is_server_error(), "{}", reply.body);
    let log = crate::support::log_of(server.dir.path());
    let failed: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("request failed"))
        .collect();
    assert_eq!(failed.len(), 1, "{log}");
    assert!(
        failed[0].contains(&format!("path=\"/orders/{order}/confirm\""))
            && failed[0].contains(&format!("correlation_id=\"{correlation}\""))
            && failed[0].contains("cause=\"event at position 1 has unreadable metadata"),
        "{}",
        failed[0]
    );

    // A restart with the same binary starts, and stops its views at the same event.
    let server = eventstoredb::restart(server);
    stopped_at_the_teleport(&server, 2).await;
    server.place(&buyer, &seller, "7.00").await;
    let summary = server.get(&buyer, &format!("/orders/{order}")).await.ok();
    assert_eq!(summary["price"]["amount"], "120.00", "{summary}");
    server.stop();
}

/// `/readyz` says the views stopped just before the event at position 1, the log being at
/// `log_at`.
async fn stopped_at_the_teleport(server: &Server, log_at: u64) {
    let (status, body) = readiness_until(server, |body| body["problem"].is_string()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["ready"], false, "{body}");
    assert_eq!(
        (body["views_at"].as_u64(), body["log_at"].as_u64()),
        (Some(0), Some(log_at)),
        "{body}"
    );
    let problem = body["problem"].as_str().expect("a problem");
    assert!(
        problem.contains("position 1") && problem.contains("OrderTeleported"),
        "{problem}"
    );
}

async fn readiness(server: &Server) -> (StatusCode, serde_json::Value) {
    let reply = server
        .client()
        .get(server.url("/readyz"))
        .send()
        .await
        .expect("readyz");
    let status = reply.status();
    (status, reply.json().await.expect("json"))
}

/// A save of the views that cannot be written (here another process holds their database
/// locked; in production, a full disk) does not stop them: reads stay current, `/readyz`
/// says why, and once the save goes through, what it held is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_whose_save_fails_keep_folding_and_store_it_once_it_can_be_written() {
    let server = Server::start();
    let (buyer, seller) = (user("buyer"), user("seller"));
    let before = server.place(&buyer, &seller, "10.00").await;
    let views_db = server.dir.path().join("data").join("views.sqlite");
    let locker = rusqlite::Connection::open(&views_db).expect("the views' database");
    locker.execute_batch("BEGIN EXCLUSIVE").expect("locked");

    let during = server.place(&buyer, &seller, "20.00").await;
    let (status, body) = readiness_until(&server, |body| body["problem"].is_string()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let problem = body["problem"].as_str().unwrap_or_default();
    assert!(problem.contains("saving the views"), "{problem}");
    let text = metrics(&server).await;
    assert_eq!(
        metric(&text, "ledger_views_save_failing"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(metric(&text, "ledger_views_stopped"), Some(0.0), "{text}");
    let later = server.place(&buyer, &seller, "30.00").await;
    for order in [during, later] {
        server.order(&buyer, order).await;
    }

    locker.execute_batch("COMMIT").expect("unlocked");
    drop(locker);
    let (status, body) = readiness_until(&server, |body| body["ready"] == true).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let text = metrics(&server).await;
    assert_eq!(
        metric(&text, "ledger_views_save_failing"),
        Some(0.0),
        "{text}"
    );

    // Restarted from what was stored, with no log to fold past it: the saves landed whole.
    let server = Server::start_in(server.kill());
    let (_, body) = readiness(&server).await;
    assert_eq!(body["views_at"], body["log_at"], "{body}");
    for (order, price) in [(before, "10.00"), (during, "20.00"), (later, "30.00")] {
        let summary = server.order(&buyer, order).await;
        assert_eq!(summary["price"]["amount"], price, "{summary}");
    }
    server.stop();
}

/// `/readyz` once `done` holds of its body, or after 20 s.
async fn readiness_until(
    server: &Server,
    done: impl Fn(&serde_json::Value) -> bool,
) -> (StatusCode, serde_json::Value) {
    let mut answer = readiness(server).await;
    for _ in 0..200 {
        if done(&answer.1) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        answer = readiness(server).await;
    }
    answer
}

/// One process writes a log: the service's writer keeps the next position and the streams'
/// revisions in memory, so another process's appends would make it fail and its live
/// subscribers miss them. Beside a running service, `export` reads; `import --append` and a
/// second `serve` are refused, naming why, and change nothing.
#[tokio::test]
async fn beside_a_running_service_other_processes_read_the_log_but_may_not_write_it() {
    let server = Server::start();
    let (buyer, seller) = (user("buyer"), user("seller"));
    let order = server.place(&buyer, &seller, "10.00").await;
    let data_dir = server.dir.path().join("data");
    let ledger = |args: &[&std::ffi::OsStr]| {
        let output = Command::new(env!("CARGO_BIN_EXE_ledger"))
            .args(args)
            .env("LEDGER_JWT_SECRET", SECRET)
            .env_remove("LEDGER_DATA_DIR")
            .output()
            .expect("ledger");
        let text = printed(&output);
        (output.status.success(), output.stdout, text)
    };
    let export = |dir: &std::path::Path| {
        let (ok, stdout, text) =
            ledger(&["export".as_ref(), "--data-dir".as_ref(), dir.as_os_str()]);
        assert!(ok, "{text}");
        stdout
    };
    let before = export(&data_dir);

    let other = TempDir::new().expect("dir");
    let (ok, _, text) = ledger(&[
        "simulate".as_ref(),
        "--orders".as_ref(),
        "3".as_ref(),
        "--quiet".as_ref(),
        "--data-dir".as_ref(),
        other.path().as_os_str(),
    ]);
    assert!(ok, "{text}");
    let file = other.path().join("other.jsonl");
    std::fs::write(&file, export(other.path())).expect("export written");
    let (ok, _, text) = ledger(&[
        "import".as_ref(),
        file.as_os_str(),
        "--append".as_ref(),
        "--data-dir".as_ref(),
        data_dir.as_os_str(),
    ]);
    assert!(!ok, "{text}");
    assert!(text.contains("written by another process"), "{text}");
    let (ok, _, text) = ledger(&[
        "serve".as_ref(),
        "--listen".as_ref(),
        "127.0.0.1:0".as_ref(),
        "--data-dir".as_ref(),
        data_dir.as_os_str(),
    ]);
    assert!(!ok, "{text}");
    assert!(text.contains("written by another process"), "{text}");

    // Copied from, it is read; copied into, it is refused.
    let copy = |from: &std::path::Path, into: &std::path::Path| {
        let config = other.path().join("target.toml");
        let toml = format!(
            "store = \"embedded\"\ndata_dir = {:?}\n",
            into.to_string_lossy()
        );
        std::fs::write(&config, toml).expect("config");
        ledger(&[
            "copy".as_ref(),
            "--to".as_ref(),
            config.as_os_str(),
            "--data-dir".as_ref(),
            from.as_os_str(),
        ])
    };
    let copied = other.path().join("copied");
    let (ok, _, text) = copy(&data_dir, &copied);
    assert!(ok, "{text}");
    assert_eq!(export(&copied), before, "a copy of the running log");
    let (ok, _, text) = copy(other.path(), &data_dir);
    assert!(!ok, "{text}");
    assert!(text.contains("written by another process"), "{text}");

    assert_eq!(export(&data_dir), before, "the log is as it was");
    server.act(&seller, order, "confirm", json!({})).await;
    let dir = server.stop();
    // Once the service has stopped, the log is free to write.
    let (ok, _, text) = ledger(&[
        "import".as_ref(),
        file.as_os_str(),
        "--append".as_ref(),
        "--data-dir".as_ref(),
        dir.path().join("data").as_os_str(),
    ]);
    assert!(ok, "{text}");
}

/// `ledger serve` on a data directory, caught while it starts: its address from the first
/// line it prints, before it is ready.
struct Starting {
    child: std::process::Child,
    lines: std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
    base: String,
    client: reqwest::Client,
}

impl Starting {
    fn spawn(data_dir: &std::path::Path) -> Starting {
        use std::io::BufRead;
        let mut child = Command::new(env!("CARGO_BIN_EXE_ledger"))
            .args(["serve", "--dev", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .env("LEDGER_JWT_SECRET", SECRET)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("ledger serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = std::io::BufReader::new(stdout).lines();
        let line = lines.next().and_then(Result::ok).unwrap_or_default();
        let base = line
            .strip_prefix("ledger: starting on ")
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("announced its address first: {line}"))
            .to_owned();
        Starting {
            child,
            lines,
            base,
            client: reqwest::Client::new(),
        }
    }

    async fn get(&self, path: &str, caller: &User) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.base))
            .bearer_auth(&caller.token)
            .send()
            .await
            .expect(path)
    }

    async fn metrics(&self, caller: &User) -> String {
        let reply = self.get("/metrics", caller).await;
        assert_eq!(reply.status(), StatusCode::OK);
        reply.text().await.expect("text")
    }

    /// Waits for the service proper to take over the address.
    fn listening(&mut self) {
        let line = self.lines.next().and_then(Result::ok).unwrap_or_default();
        assert_eq!(
            line.strip_prefix("ledger: listening on "),
            Some(self.base.as_str()),
            "{line}"
        );
    }

    fn stop(self) {
        self.terminate();
        self.stopped();
    }

    fn terminate(&self) {
        crate::support::signal(&self.child, "-TERM");
    }

    /// Waits for the service to exit, as it does when it was stopped and not killed.
    fn stopped(mut self) {
        let status = self.child.wait().expect("exit");
        assert!(status.success(), "the service stopped with {status}");
    }
}

/// A data directory holding one order of `buyer`'s, its service stopped.
/// An operator asks what a live data directory holds without stopping its service: the log,
/// and the views as far as the service has stored them, catching up as it saves.
#[tokio::test]
async fn inspect_beside_a_running_service_sees_its_log_and_its_stored_views_catch_up() {
    let server = Server::start();
    let (buyer, seller) = (user("buyer"), user("seller"));
    let order = server.place(&buyer, &seller, "10.00").await;
    server.act(&seller, order, "confirm", json!({})).await;
    let head = server.log_head().await.expect("two events");
    let data_dir = server.dir.path().join("data");
    let inspect = || {
        let output = Command::new(env!("CARGO_BIN_EXE_ledger"))
            .args([
                "inspect".as_ref(),
                "--json".as_ref(),
                "--data-dir".as_ref(),
                data_dir.as_os_str(),
            ])
            .env_remove("LEDGER_DATA_DIR")
            .output()
            .expect("ledger inspect");
        assert!(output.status.success(), "{}", printed(&output));
        serde_json::from_slice::<serde_json::Value>(&output.stdout).expect("JSON")
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let seen = inspect();
        assert_eq!(seen["log"]["events"], head + 1, "{seen}");
        assert_eq!(seen["log"]["events_by_type"]["OrderConfirmed"], 1, "{seen}");
        if seen["views"]["checkpoint"] == head && seen["views_behind"] == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the service's views were never seen stored up to {head}: {seen}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    // Read only: the service goes on as before.
    server
        .act(&seller, order, "deliver", json!({"message": "done"}))
        .await;
}

async fn stopped_with_an_order(buyer: &User) -> (TempDir, std::path::PathBuf, uuid::Uuid) {
    let server = Server::start();
    let order = server.place(buyer, &user("seller"), "10.00").await;
    let dir = server.stop();
    let data_dir = dir.path().join("data");
    (dir, data_dir, order)
}

/// Another process holding the views' database: the views cannot be stored, and a start
/// waits, until it is dropped or commits.
fn views_held(data_dir: &std::path::Path) -> rusqlite::Connection {
    let locker = rusqlite::Connection::open(data_dir.join("views.sqlite")).expect("views");
    locker.execute_batch("BEGIN IMMEDIATE").expect("locked");
    locker
}

/// Starts the service on `data_dir`, reads `order` as its buyer, and stops it.
async fn serves_the_order(data_dir: &std::path::Path, order: uuid::Uuid, buyer: &User) {
    let mut starting = Starting::spawn(data_dir);
    starting.listening();
    let reply = starting.get(&format!("/orders/{order}"), buyer).await;
    assert_eq!(reply.status(), StatusCode::OK);
    starting.stop();
}

/// Until its views are up to date (a minute on ten million events with none stored) the
/// service answers on its address: `/healthz` 200 for a liveness probe, `/metrics` with
/// `ledger_starting` at 1, `/readyz` and every other route 503 "starting"; then the service
/// proper, on the same address.
#[tokio::test]
async fn while_it_starts_the_service_answers_probes_on_its_address() {
    let buyer = user("buyer");
    let (_dir, data_dir, order) = stopped_with_an_order(&buyer).await;
    // Another process holds the views' database: opening them waits (SQLite's busy timeout
    // is 5 s), and the start with it.
    let locker = rusqlite::Connection::open(data_dir.join("views.sqlite")).expect("views");
    locker.execute_batch("BEGIN EXCLUSIVE").expect("locked");
    let mut starting = Starting::spawn(&data_dir);

    let reply = starting.get("/healthz", &buyer).await;
    assert_eq!(reply.status(), StatusCode::OK);
    let reply = starting.get("/readyz", &buyer).await;
    assert_eq!(reply.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: serde_json::Value = reply.json().await.expect("json");
    // How far it has to go: the placement is the log's only event, none is folded yet.
    assert_eq!(body["log_at"], 0, "{body}");
    assert!(
        body["problem"]
            .as_str()
            .is_some_and(|p| p.contains("starting") && p.contains("(0 events folded so far)")),
        "{body}"
    );
    let reply = starting.get(&format!("/orders/{order}"), &buyer).await;
    assert_eq!(reply.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: serde_json::Value = reply.json().await.expect("problem");
    assert_eq!(body["code"], "starting", "{body}");
    let text = starting.metrics(&buyer).await;
    assert_eq!(metric(&text, "ledger_starting"), Some(1.0), "{text}");

    locker.execute_batch("COMMIT").expect("unlocked");
    drop(locker);
    starting.listening();
    let reply = starting.get(&format!("/orders/{order}"), &buyer).await;
    assert_eq!(reply.status(), StatusCode::OK);
    let reply = starting.get("/readyz", &buyer).await;
    assert_eq!(reply.status(), StatusCode::OK);
    let text = starting.metrics(&buyer).await;
    assert_eq!(metric(&text, "ledger_starting"), Some(0.0), "{text}");
    assert_eq!(
        metric(&text, "ledger_projection_lag_events"),
        Some(0.0),
        "{text}"
    );
    starting.stop();
}

/// Once every event is folded, a start still writes the views out (ten seconds on ten
/// million events): `/readyz` says that is what it is doing, and `/metrics` that no event
/// is left to fold, instead of a count of events folded that no longer moves.
#[tokio::test]
async fn a_start_that_has_folded_every_event_says_it_is_storing_the_views() {
    let server = Server::start();
    let (buyer, seller) = (user("buyer"), user("seller"));
    server.place(&buyer, &seller, "10.00").await;
    server.place(&buyer, &seller, "12.00").await;
    let dir = server.stop();
    let data_dir = dir.path().join("data");
    // The views can be read but not written: the start opens and folds them, then waits
    // to store them (SQLite's busy timeout is 5 s).
    let locker = rusqlite::Connection::open(data_dir.join("views.sqlite")).expect("views");
    locker.execute_batch("BEGIN IMMEDIATE").expect("locked");
    let mut starting = Starting::spawn(&data_dir);

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    let storing = loop {
        let reply = starting.get("/readyz", &buyer).await;
        assert_eq!(reply.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body: serde_json::Value = reply.json().await.expect("json");
        let problem = body["problem"].as_str().unwrap_or_default().to_owned();
        if problem.contains("the views are being stored") || std::time::Instant::now() > deadline {
            break body;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(storing["log_at"], 1, "{storing}");
    assert!(
        storing["problem"].as_str().is_some_and(|p| p.contains(
            "starting: it is bringing the views up to date (every event is folded; the views are being stored)"
        )),
        "{storing}"
    );
    let text = starting.metrics(&buyer).await;
    assert_eq!(metric(&text, "ledger_starting"), Some(1.0), "{text}");
    assert_eq!(
        metric(&text, "ledger_projection_lag_events"),
        Some(0.0),
        "{text}"
    );

    locker.execute_batch("COMMIT").expect("unlocked");
    drop(locker);
    starting.listening();
    let reply = starting.get("/readyz", &buyer).await;
    assert_eq!(reply.status(), StatusCode::OK);
    starting.stop();
}

/// A client that connects to `base`, sends half a request's head and waits for the rest of
/// the conversation; its thread ends true if the service closed the connection, false if the
/// client gave up first (after longer than any bound the service sets).
fn stuck_client(base: &str) -> std::thread::JoinHandle<bool> {
    stuck_after(base, b"GET /healthz HTTP/1.1\r\nHost: ledger\r\n")
}

/// A client that sends `sent` and waits: whether the service closed its connection.
fn stuck_after(base: &str, sent: &[u8]) -> std::thread::JoinHandle<bool> {
    stuck_after_for(base, sent, std::time::Duration::from_secs(40))
}

/// As `stuck_after`, the client giving up after `patience`.
fn stuck_after_for(
    base: &str,
    sent: &[u8],
    patience: std::time::Duration,
) -> std::thread::JoinHandle<bool> {
    use std::io::{Read, Write};
    let address = base.trim_start_matches("http://").to_owned();
    let mut stream = std::net::TcpStream::connect(&address).expect("connect");
    stream.write_all(sent).expect("what the client sends");
    stream.set_read_timeout(Some(patience)).expect("timeout");
    std::thread::spawn(move || {
        // Closed, or reset: either way by the service; a timeout is the client's own.
        match stream.read_to_end(&mut Vec::new()) {
            Ok(_) => true,
            Err(error) => error.kind() == std::io::ErrorKind::ConnectionReset,
        }
    })
}

/// A client that stops halfway through a request is cut off, so a SIGTERM stops the service
/// instead of waiting for that client to go away; nor does it wait for one that has sent
/// nothing yet.
#[tokio::test]
async fn a_client_stuck_halfway_through_a_request_does_not_hold_back_a_stop() {
    let server = Server::start();
    // One that has said nothing is let go at once, not at the first-bytes deadline (10 s).
    let silent = stuck_after_for(&server.base, b"", std::time::Duration::from_secs(5));
    let (buyer, seller) = (user("buyer"), user("seller"));
    // Answered on a later connection, so the silent one was accepted before it.
    server.place(&buyer, &seller, "10.00").await;
    let client = stuck_client(&server.base);
    server.stop();
    assert!(
        client.join().expect("client"),
        "the service waited for the client"
    );
    assert!(
        silent.join().expect("client"),
        "the stop kept the silent client past 5 s"
    );
}

/// A second stop signal ends the process at once, as an impatient operator's second Ctrl-C
/// asks: here the first stop waits on the views' save, which another process holds up. The
/// log loses nothing; the next start serves the order.
#[tokio::test]
async fn a_second_stop_signal_ends_the_stop_at_once() {
    let buyer = user("buyer");
    let server = Server::start();
    let order = server.place(&buyer, &user("seller"), "10.00").await;
    let data_dir = server.dir.path().join("data");
    let locker = views_held(&data_dir);
    server.signal("-TERM");
    let log = log_when(server.dir.path(), |log| log.contains("shutting down")).await;
    assert!(log.contains("shutting down"), "{log}");
    server.signal("-INT");
    let (status, dir) = server.wait();
    assert_eq!(status.code(), Some(130), "{}", log_of(dir.path()));
    assert!(
        log_of(dir.path()).contains("a second stop signal: exiting now"),
        "{}",
        log_of(dir.path())
    );
    drop(locker);
    serves_the_order(&dir.path().join("data"), order, &buyer).await;
}

/// A stop sent the moment the service says it listens drains it, as any later one does: the
/// signals are caught from the start, not from a task that might not have run yet (the
/// service was killed outright, exit 143, in most of such stops).
#[tokio::test]
async fn a_stop_sent_as_soon_as_the_service_listens_is_a_clean_stop() {
    let buyer = user("buyer");
    let (_dir, data_dir, order) = stopped_with_an_order(&buyer).await;
    for _ in 0..3 {
        let mut starting = Starting::spawn(&data_dir);
        starting.listening();
        starting.stop();
    }
    serves_the_order(&data_dir, order, &buyer).await;
}

/// A stop while the views are brought up to date ends the start, as a clean stop; the next
/// start takes up where the stored views are.
#[tokio::test]
async fn a_stop_while_the_service_starts_ends_the_start_cleanly() {
    let buyer = user("buyer");
    let (_dir, data_dir, order) = stopped_with_an_order(&buyer).await;
    let locker = views_held(&data_dir);
    let starting = Starting::spawn(&data_dir);
    let reply = starting.get("/readyz", &buyer).await;
    assert_eq!(reply.status(), StatusCode::SERVICE_UNAVAILABLE);
    starting.terminate();
    locker.execute_batch("COMMIT").expect("unlocked");
    drop(locker);
    starting.stopped();

    serves_the_order(&data_dir, order, &buyer).await;
}

/// Nor does such a client, connected while the views are brought up to date, keep the
/// service proper from taking over the address once they are.
#[tokio::test]
async fn a_client_stuck_halfway_through_a_request_does_not_hold_back_a_start() {
    let buyer = user("buyer");
    let (_dir, data_dir, order) = stopped_with_an_order(&buyer).await;
    let locker = views_held(&data_dir);
    let mut starting = Starting::spawn(&data_dir);
    let client = stuck_client(&starting.base);
    let reply = starting.get("/readyz", &buyer).await;
    assert_eq!(reply.status(), StatusCode::SERVICE_UNAVAILABLE);

    locker.execute_batch("COMMIT").expect("unlocked");
    drop(locker);
    starting.listening();
    let reply = starting.get(&format!("/orders/{order}"), &buyer).await;
    assert_eq!(reply.status(), StatusCode::OK);
    assert!(
        client.join().expect("client"),
        "the start waited for the client"
    );
    starting.stop();
}

/// A client that connects and sends nothing, or stops inside HTTP/2's preface, is let go
/// while the service runs, as one stuck inside a request's head is: each would otherwise
/// hold a connection for as long as it liked.
#[tokio::test]
async fn a_client_that_connects_and_sends_nothing_is_let_go() {
    let server = Server::start();
    let silent = stuck_after(&server.base, b"");
    let preface = stuck_after(&server.base, b"PRI * HTTP/2.0\r\n");
    // The whole preface and an empty SETTINGS frame, then no request.
    let settled = stuck_after(
        &server.base,
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0",
    );
    assert!(silent.join().expect("client"), "a silent client was kept");
    assert!(
        preface.join().expect("client"),
        "a client stuck in the preface was kept"
    );
    assert!(
        settled.join().expect("client"),
        "an HTTP/2 client that asked nothing was kept"
    );
    let (buyer, seller) = (user("buyer"), user("seller"));
    server.place(&buyer, &seller, "10.00").await;
}

/// An HTTP/2 connection is kept while a response is still streaming (a subscription), however
/// long; once nothing is in flight, it is closed after the same idle time as HTTP/1's.
#[tokio::test]
async fn an_http2_connection_is_kept_while_a_subscription_streams_and_closed_once_idle() {
    let server = Server::start();
    let service = user("service");
    let address = server.base.trim_start_matches("http://").to_owned();
    let (mut sender, connection) = http2_connection(&address).await;
    let get = |path: &str| http2_get(&server, &service, path);

    let subscription = sender
        .send_request(get("/streams/$all"))
        .await
        .expect("subscribe");
    assert_eq!(subscription.status(), StatusCode::OK);
    // Longer than the service keeps a connection with nothing in flight.
    tokio::time::sleep(std::time::Duration::from_secs(13)).await;
    let health = sender
        .send_request(get("/healthz"))
        .await
        .expect("the connection was closed under an open subscription");
    assert_eq!(health.status(), StatusCode::OK);

    drop(subscription);
    let closed = tokio::time::timeout(std::time::Duration::from_secs(40), connection).await;
    assert!(
        matches!(closed, Ok(Ok(Ok(())))),
        "the idle connection was kept: {closed:?}"
    );
}

/// A subscriber over HTTP/2 whose network goes quiet (nothing arrives from it, its socket
/// still open) is pinged, and let go when the ping goes unanswered: its subscription does not
/// stay until TCP gives up, minutes later.
#[tokio::test]
async fn an_http2_subscriber_that_stops_answering_is_let_go() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = Server::start();
    let service = user("service");
    let address = server.base.trim_start_matches("http://").to_owned();

    // Between the client and the service: passes bytes both ways until `quiet` is set; then
    // passes nothing on, and reports when the service closes its side.
    let proxy = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let proxy_address = proxy.local_addr().expect("address");
    let (quiet, quieted) = tokio::sync::watch::channel(false);
    let service_closed = tokio::spawn(async move {
        let (client, _) = proxy.accept().await.expect("accept");
        let upstream = tokio::net::TcpStream::connect(&address)
            .await
            .expect("connect");
        let (mut from_client, mut to_client) = client.into_split();
        let (mut from_service, mut to_service) = upstream.into_split();
        let outbound_quieted = quieted.clone();
        tokio::spawn(async move {
            let mut buffer = [0; 16 * 1024];
            while let Ok(read @ 1..) = from_client.read(&mut buffer).await {
                if *outbound_quieted.borrow() {
                    continue;
                }
                if to_service.write_all(&buffer[..read]).await.is_err() {
                    break;
                }
            }
            // Keep the service's side open: a network gone quiet, not a client gone.
            std::future::pending::<()>().await;
        });
        let mut buffer = [0; 16 * 1024];
        while let Ok(read @ 1..) = from_service.read(&mut buffer).await {
            if !*quieted.borrow() {
                let _ = to_client.write_all(&buffer[..read]).await;
            }
        }
    });

    let (mut sender, _connection) = http2_connection(&proxy_address.to_string()).await;
    let subscription = sender
        .send_request(http2_get(&server, &service, "/streams/$all"))
        .await
        .expect("subscribe");
    assert_eq!(subscription.status(), StatusCode::OK);

    quiet.send(true).expect("quiet");
    // The service pings after 10 s without a frame and waits 10 s for the answer.
    let closed = tokio::time::timeout(std::time::Duration::from_secs(40), service_closed).await;
    assert!(
        matches!(closed, Ok(Ok(()))),
        "the service kept a subscriber that answered nothing"
    );
    drop(subscription);
}

/// An HTTP/2 connection (prior knowledge) to `address`, and its task, which ends when the
/// connection does.
async fn http2_connection(
    address: &str,
) -> (
    hyper::client::conn::http2::SendRequest<http_body_util::Empty<bytes::Bytes>>,
    tokio::task::JoinHandle<hyper::Result<()>>,
) {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    let (sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("HTTP/2 handshake");
    (sender, tokio::spawn(connection))
}

fn http2_get(
    server: &Server,
    who: &User,
    path: &str,
) -> http::Request<http_body_util::Empty<bytes::Bytes>> {
    http::Request::get(server.url(path))
        .header("authorization", format!("Bearer {}", who.token))
        .body(http_body_util::Empty::new())
        .expect("request")
}

/// With `--log-format json` a tick's counts are fields of their own, so that a log store can
/// sum and filter on them.
#[tokio::test]
async fn the_timers_log_what_they_did_as_fields_of_json() {
    let dir = TempDir::new().expect("temp dir");
    let server = Server::start_with(dir, &["--dev", "--log-format", "json"]);
    let (buyer, seller) = (user("buyer"), user("seller"));
    let order = server.place(&buyer, &seller, "10.00").await;
    server
        .advance(server.now().await + chrono::Duration::days(4))
        .await;
    server
        .wait_for_order(&buyer, order, |o| o["status"] == "Cancelled")
        .await;
    let tick = |log: &str| {
        log.lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .find(|line| line["fields"]["message"] == "timers fired")
    };
    let log = crate::support::log_when(server.dir.path(), |log| tick(log).is_some()).await;
    let fired = match tick(&log) {
        Some(tick) => tick["fields"].clone(),
        None => panic!("no tick logged: {log}"),
    };
    assert_eq!(
        (fired["fired"].as_u64(), fired["already_fired"].as_u64()),
        (Some(1), Some(0)),
        "{fired}"
    );
    assert_eq!(fired["moved_on"].as_u64(), Some(0), "{fired}");
    assert_eq!(fired["refused"].as_u64(), Some(0), "{fired}");
}
