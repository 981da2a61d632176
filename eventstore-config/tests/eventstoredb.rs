//! The EventStoreDB backend, through the official client, against the embedded node's
//! EventStoreDB protocol: the conformance suite over real gRPC. With `LEDGER_ESDB_URL` set (a
//! real server, e.g. `esdb://admin:changeit@localhost:2113?tls=false`), the same suite runs
//! against that server instead, each case in a fresh namespace.

mod support;

use ledger_store::*;
use support::{serve_node, start_node, Guard, PASSWORD, USER};

async fn fresh() -> (EventStoreDbStore, Guard) {
    if let Ok(url) = std::env::var("LEDGER_ESDB_URL") {
        let options = EventStoreDbOptions {
            namespace: format!("t{}-", uuid::Uuid::new_v4().simple()),
            ..EventStoreDbOptions::default()
        };
        let store = EventStoreDbStore::connect(&url, options)
            .await
            .expect("connect to LEDGER_ESDB_URL");
        return (store, Guard::none());
    }
    let (address, guard) = start_node().await;
    let url = format!("esdb://{USER}:{PASSWORD}@{address}?tls=false");
    let store = EventStoreDbStore::connect(&url, EventStoreDbOptions::default())
        .await
        .expect("connect to the embedded node");
    (store, guard)
}

ledger_store::conformance_tests!(fresh());

#[tokio::test]
async fn an_unreachable_server_is_a_clear_error_at_start_up() {
    // A port that was free a moment ago: nothing listens there.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address");
    drop(listener);
    let url = format!("esdb://{address}?tls=false");
    match EventStoreDbStore::connect(&url, EventStoreDbOptions::default()).await {
        Err(StoreError::Io(message)) => assert!(message.contains("EventStoreDB"), "{message}"),
        Err(other) => panic!("expected an I/O error, got {other}"),
        Ok(_) => panic!("connected to nothing"),
    }
    match EventStoreDbStore::connect("not a url", EventStoreDbOptions::default()).await {
        Err(StoreError::Io(message)) => assert!(message.contains("does not parse"), "{message}"),
        _ => panic!("a bad connection string was accepted"),
    }
}

#[tokio::test]
async fn wrong_credentials_and_read_only_users_are_refused() {
    let (address, _guard) = start_node().await;
    let wrong = format!("esdb://{USER}:nope@{address}?tls=false");
    assert!(
        EventStoreDbStore::connect(&wrong, EventStoreDbOptions::default())
            .await
            .is_err()
    );
    let reader = format!("esdb://reader:reader-password@{address}?tls=false");
    let store = EventStoreDbStore::connect(&reader, EventStoreDbOptions::default())
        .await
        .expect("a reader may connect");
    let refused = store
        .append(
            &conformance::stream("order-r"),
            ExpectedRevision::Any,
            conformance::events(1),
        )
        .await;
    assert!(
        matches!(refused, Err(StoreError::Io(ref m)) if m.contains("denied")),
        "{refused:?}"
    );
    assert!(store
        .read_all(AllFrom::Start, Direction::Forwards, 10)
        .await
        .expect("read")
        .is_empty());
}

async fn next(subscription: &mut Box<dyn Subscription>) -> RecordedEvent {
    tokio::time::timeout(std::time::Duration::from_secs(20), subscription.next())
        .await
        .expect("in time")
        .expect("event")
}

/// A node restarts under a subscriber: the backend's subscription re-subscribes after the
/// last event it delivered, with backoff, and goes on without a gap or a duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_survives_the_server_restarting() {
    let dir = tempfile::tempdir().expect("temp dir");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let (stop, served, log) = serve_node(dir.path(), listener, |node| node);
    let url = format!("esdb://{USER}:{PASSWORD}@{address}?tls=false");
    let store = EventStoreDbStore::connect(&url, EventStoreDbOptions::default())
        .await
        .expect("connect");
    let a = conformance::stream("order-a");
    store
        .append(&a, ExpectedRevision::NoStream, conformance::events(2))
        .await
        .expect("append");
    let mut subscription = store
        .subscribe_all(SubscribeFrom::Start)
        .await
        .expect("subscribe");
    assert_eq!(next(&mut subscription).await.revision, 0);
    assert_eq!(next(&mut subscription).await.revision, 1);

    // The node goes away, and comes back on the same address over the same log.
    let _ = stop.send(());
    served
        .await
        .expect("node task")
        .expect("node stopped cleanly");
    log.close();
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .expect("rebind");
    let (_stop, _served, _log) = serve_node(dir.path(), listener, |node| node);
    store
        .append(&a, ExpectedRevision::Exact(1), conformance::events(1))
        .await
        .expect("append after the restart");
    let after = next(&mut subscription).await;
    assert_eq!((after.stream.as_str(), after.revision), ("order-a", 2));
}
