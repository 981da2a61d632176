//! The embedded node's EventStoreDB protocol under input the official clients never send,
//! and the official client's own paths (`BatchAppend`, subscriptions that drop mid-way):
//! each answered as EventStoreDB would, with nothing lost and nothing written by a refusal.

mod support;

use base64::Engine;
use futures::StreamExt;
use ledger_store::node::proto::event_store::client::streams::{
    append_req, read_req, read_resp, streams_client::StreamsClient, AppendReq, DeleteReq, ReadReq,
    ReadResp,
};
use ledger_store::node::proto::event_store::client::{Empty, StreamIdentifier};
use std::collections::HashMap;
use std::time::Duration;
use support::{start_node, start_node_with, PASSWORD, USER};
use tonic::{Code, Request};

const WAIT: Duration = Duration::from_secs(10);

async fn raw(address: std::net::SocketAddr) -> StreamsClient<tonic::transport::Channel> {
    StreamsClient::connect(format!("http://{address}"))
        .await
        .expect("connect")
}

fn authorized<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    let credentials =
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    let value = format!("Basic {credentials}").parse().expect("header");
    request.metadata_mut().insert("authorization", value);
    request
}

fn official(address: std::net::SocketAddr) -> eventstore::Client {
    let url = format!("esdb://{USER}:{PASSWORD}@{address}?tls=false");
    eventstore::Client::new(url.parse().expect("settings")).expect("client")
}

fn identifier(name: &str) -> Option<StreamIdentifier> {
    Some(StreamIdentifier {
        stream_name: name.as_bytes().to_vec().into(),
    })
}

fn append_options(name: &str) -> AppendReq {
    AppendReq {
        content: Some(append_req::Content::Options(append_req::Options {
            stream_identifier: identifier(name),
            expected_stream_revision: Some(append_req::options::ExpectedStreamRevision::Any(
                Empty {},
            )),
        })),
    }
}

fn proposed(metadata: HashMap<String, String>) -> AppendReq {
    let id = uuid::Uuid::new_v4().to_string();
    AppendReq {
        content: Some(append_req::Content::ProposedMessage(
            append_req::ProposedMessage {
                id: Some(ledger_store::node::proto::event_store::client::Uuid {
                    value: Some(
                        ledger_store::node::proto::event_store::client::uuid::Value::String(id),
                    ),
                }),
                metadata,
                custom_metadata: Default::default(),
                data: b"{}".to_vec().into(),
            },
        )),
    }
}

fn typed() -> HashMap<String, String> {
    HashMap::from([
        ("type".to_owned(), "Tested".to_owned()),
        ("content-type".to_owned(), "application/json".to_owned()),
    ])
}

/// A catch-up subscription to `$all`, after `after` or from the start.
fn subscribe_all(after: Option<u64>) -> Request<ReadReq> {
    use read_req::options::{all_options::AllOption, AllOptions, CountOption, StreamOption};
    let all_option = match after {
        None => AllOption::Start(Empty {}),
        Some(p) => AllOption::Position(read_req::options::Position {
            commit_position: p,
            prepare_position: p,
        }),
    };
    authorized(ReadReq {
        options: Some(read_req::Options {
            stream_option: Some(StreamOption::All(AllOptions {
                all_option: Some(all_option),
            })),
            read_direction: 0,
            resolve_links: false,
            count_option: Some(CountOption::Subscription(
                read_req::options::SubscriptionOptions {},
            )),
            filter_option: Some(read_req::options::FilterOption::NoFilter(Empty {})),
            uuid_option: None,
            control_option: None,
        }),
    })
}

/// Reads replies until `positions` holds `until` events; true if `CaughtUp` came by.
async fn read_events(
    replies: &mut tonic::Streaming<ReadResp>,
    positions: &mut Vec<u64>,
    until: usize,
) -> bool {
    let mut caught_up = false;
    while positions.len() < until {
        let reply = next_reply(replies).await;
        match reply.content {
            Some(read_resp::Content::Event(e)) => {
                positions.push(e.event.expect("event").commit_position)
            }
            Some(read_resp::Content::CaughtUp(_)) => caught_up = true,
            _ => {}
        }
    }
    caught_up
}

/// The next reply of a read or subscription, within `WAIT`.
async fn next_reply(replies: &mut tonic::Streaming<ReadResp>) -> ReadResp {
    tokio::time::timeout(WAIT, replies.next())
        .await
        .expect("in time")
        .expect("open")
        .expect("reply")
}

/// Reads replies until `CaughtUp`; an event before it fails the test, with `said`.
async fn caught_up_with_no_more_events(replies: &mut tonic::Streaming<ReadResp>, said: &str) {
    loop {
        let reply = next_reply(replies).await;
        match reply.content {
            Some(read_resp::Content::CaughtUp(_)) => return,
            Some(read_resp::Content::Event(e)) => panic!("{said}: {e:?}"),
            _ => {}
        }
    }
}

/// Appends `n` JSON events of type `Tested` to `stream`, in one append.
async fn append_tested(client: &eventstore::Client, stream: &str, n: usize) {
    let events: Vec<_> = (0..n)
        .map(|i| eventstore::EventData::json("Tested", &serde_json::json!({ "i": i })).expect("e"))
        .collect();
    client
        .append_to_stream(stream, &Default::default(), events)
        .await
        .expect("append");
}

async fn count_all(address: std::net::SocketAddr) -> usize {
    let client = official(address);
    let mut read = client
        .read_all(&eventstore::ReadAllOptions::default())
        .await
        .expect("read $all");
    let mut n = 0;
    while read.next().await.expect("next").is_some() {
        n += 1;
    }
    n
}

#[tokio::test]
async fn malformed_requests_are_invalid_arguments_and_write_nothing() {
    let (address, _guard) = start_node().await;
    let mut client = raw(address).await;

    let no_options = client
        .read(authorized(ReadReq { options: None }))
        .await
        .expect_err("refused");
    assert_eq!(no_options.code(), Code::InvalidArgument);

    // Events before the options.
    let events_first = futures::stream::iter(vec![proposed(typed()), append_options("order-m")]);
    let refused = client
        .append(authorized(events_first))
        .await
        .expect_err("refused");
    assert_eq!(refused.code(), Code::InvalidArgument);

    // An event without its `type`.
    let untyped = futures::stream::iter(vec![append_options("order-m"), proposed(HashMap::new())]);
    let refused = client
        .append(authorized(untyped))
        .await
        .expect_err("refused");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(
        refused
            .metadata()
            .get("exception")
            .and_then(|v| v.to_str().ok()),
        Some("missing-required-metadata-property")
    );

    // A type that would break a line-based subscriber (SSE's `event:` line).
    let mut broken = typed();
    broken.insert("type".to_owned(), "Tested\nevent: forged".to_owned());
    let append = futures::stream::iter(vec![append_options("order-m"), proposed(broken)]);
    let refused = client
        .append(authorized(append))
        .await
        .expect_err("refused");
    assert_eq!(refused.code(), Code::InvalidArgument);

    // A reserved and an empty stream name.
    for name in ["$system", ""] {
        let append = futures::stream::iter(vec![append_options(name), proposed(typed())]);
        let refused = client
            .append(authorized(append))
            .await
            .expect_err("refused");
        assert_eq!(refused.code(), Code::InvalidArgument, "{name:?}");
    }

    // The log is never rewritten.
    let delete = client
        .delete(authorized(DeleteReq { options: None }))
        .await
        .expect_err("refused");
    assert_eq!(delete.code(), Code::Unimplemented);

    assert_eq!(count_all(address).await, 0, "nothing was written");
}

#[tokio::test]
async fn calls_without_credentials_are_unauthenticated() {
    let (address, _guard) = start_node().await;
    let mut client = raw(address).await;
    let append = futures::stream::iter(vec![append_options("order-a"), proposed(typed())]);
    let refused = client
        .append(Request::new(append))
        .await
        .expect_err("refused");
    assert_eq!(refused.code(), Code::Unauthenticated);
    assert_eq!(count_all(address).await, 0);
}

#[tokio::test]
async fn unknown_streams_and_wrong_expected_revisions_answer_as_eventstoredb() {
    let (address, _guard) = start_node().await;
    let client = official(address);
    let missing = client
        .read_stream("order-missing", &Default::default())
        .await
        .expect("read");
    let mut missing = missing;
    assert!(matches!(
        missing.next().await,
        Err(eventstore::Error::ResourceNotFound)
    ));
    let event = || eventstore::EventData::json("Tested", &serde_json::json!({"n": 1})).expect("e");
    client
        .append_to_stream("order-w", &Default::default(), event())
        .await
        .expect("append");
    let stale = eventstore::AppendToStreamOptions::default()
        .expected_revision(eventstore::ExpectedRevision::NoStream);
    match client.append_to_stream("order-w", &stale, event()).await {
        Err(eventstore::Error::WrongExpectedVersion { current, expected }) => {
            assert_eq!(current, eventstore::CurrentRevision::Current(0));
            assert_eq!(expected, eventstore::ExpectedRevision::NoStream);
        }
        other => panic!("expected WrongExpectedVersion, got {other:?}"),
    }
    // A stream's metadata (`$$…`) and the system streams (`$et-…`) are not stored: reads of
    // them answer not found, as a node without server projections does, and a client takes
    // that as no metadata. A subscription to one could never deliver, and is refused.
    for reserved in ["$$order-w", "$et-Tested", "$ce-order"] {
        let mut read = client
            .read_stream(reserved, &Default::default())
            .await
            .expect("read");
        let answer = read.next().await;
        assert!(
            matches!(answer, Err(eventstore::Error::ResourceNotFound)),
            "{reserved}: {answer:?}"
        );
    }
    let mut subscription = client
        .subscribe_to_stream("$et-Tested", &Default::default())
        .await;
    let refused = tokio::time::timeout(WAIT, subscription.next()).await;
    assert!(
        matches!(refused, Ok(Err(_))),
        "a subscription to a reserved stream: {refused:?}"
    );
    assert_eq!(count_all(address).await, 1);
}

#[tokio::test]
async fn batch_append_as_other_languages_clients_append() {
    let (address, _guard) = start_node().await;
    let client = official(address);
    // The client uses BatchAppend only where the server advertises it.
    let batch = client
        .batch_append(&Default::default())
        .await
        .expect("batch append");
    let events: Vec<_> = (0..3)
        .map(|n| eventstore::EventData::json("Tested", &serde_json::json!({ "n": n })).expect("e"))
        .collect();
    let written = batch
        .append_to_stream("order-b", eventstore::ExpectedRevision::NoStream, events)
        .await
        .expect("batch written");
    assert_eq!(written.current_revision(), Some(2));
    let again = batch
        .append_to_stream(
            "order-b",
            eventstore::ExpectedRevision::NoStream,
            vec![eventstore::EventData::json("Tested", &serde_json::json!({})).expect("e")],
        )
        .await;
    assert!(again.is_err(), "a stale batch is refused: {again:?}");
    assert_eq!(count_all(address).await, 3);
}

#[tokio::test]
async fn a_subscription_dropped_mid_way_resumes_from_its_checkpoint_losing_nothing() {
    let (address, _guard) = start_node().await;
    let mut client = raw(address).await;
    let official = official(address);
    let append = |n: usize| append_tested(&official, "order-s", n);
    append(5).await;
    let mut first = client
        .read(subscribe_all(None))
        .await
        .expect("subscribe")
        .into_inner();
    let mut positions = Vec::new();
    let caught_up = read_events(&mut first, &mut positions, 3).await;
    assert!(!caught_up, "five events were there to catch up on");
    // The connection drops mid-stream; the writers go on.
    drop(first);
    append(4).await;
    let checkpoint = *positions.last().expect("a position");
    let mut resumed = client
        .read(subscribe_all(Some(checkpoint)))
        .await
        .expect("resubscribe")
        .into_inner();
    let mut saw_caught_up = read_events(&mut resumed, &mut positions, 9).await;
    assert_eq!(
        positions,
        (0..9).collect::<Vec<u64>>(),
        "each event once, in order"
    );
    append(1).await;
    saw_caught_up |= read_events(&mut resumed, &mut positions, 10).await;
    let live = positions.last().copied();
    assert!(
        saw_caught_up,
        "the subscriber was told it caught up before going live"
    );
    assert_eq!(live, Some(9));
}

/// On KurrentDB no event sits at commit position 0, so clients resume "after 0" to start from
/// the beginning (Python's `subscribe_to_all(commit_position=0)`). The store's first event is
/// at 0, and such a subscriber gets it too; a subscription after 1 starts after that one.
#[tokio::test]
async fn after_position_0_comes_the_first_event_as_on_kurrentdb() {
    let (address, _guard) = start_node().await;
    append_tested(&official(address), "order-z", 3).await;
    let mut client = raw(address).await;
    for (after, expected) in [(0, vec![0, 1, 2]), (1, vec![2])] {
        let mut subscription = client
            .read(subscribe_all(Some(after)))
            .await
            .expect("subscribe")
            .into_inner();
        let mut positions = Vec::new();
        if !read_events(&mut subscription, &mut positions, expected.len()).await {
            caught_up_with_no_more_events(&mut subscription, &format!("after {after}")).await;
        }
        assert_eq!(positions, expected, "after {after}");
    }
}

#[tokio::test]
async fn filtered_subscriptions_send_only_matches_and_checkpoints() {
    let (address, _guard) = start_node().await;
    let official = official(address);
    for (stream, kind) in [
        ("order-a", "Kept"),
        ("order-b", "Dropped"),
        ("order-a", "Kept"),
    ] {
        for _ in 0..4 {
            let event = eventstore::EventData::json(kind, &serde_json::json!({})).expect("e");
            official
                .append_to_stream(stream, &Default::default(), event)
                .await
                .expect("append");
        }
    }
    let filter = eventstore::SubscriptionFilter::on_event_type()
        .add_prefix("Kept")
        .max(2);
    let mut subscription = official
        .subscribe_to_all(&eventstore::SubscribeToAllOptions::default().filter(filter))
        .await;
    let (mut kept, mut checkpoints) = (0, 0);
    while kept < 8 {
        match tokio::time::timeout(WAIT, subscription.next_subscription_event())
            .await
            .expect("in time")
            .expect("event")
        {
            eventstore::SubscriptionEvent::EventAppeared(e) => {
                assert_eq!(e.get_original_event().event_type, "Kept");
                kept += 1;
            }
            eventstore::SubscriptionEvent::Checkpoint(_) => checkpoints += 1,
            _ => {}
        }
    }
    assert!(
        checkpoints >= 3,
        "a checkpoint every two events looked at: {checkpoints}"
    );
}

/// The KurrentDB clients (Python's `kurrentdbclient` reads `$all` with it by default) leave
/// system events out with a negative look-ahead, which EventStoreDB's .NET expressions have.
#[tokio::test]
async fn a_filter_regex_may_look_ahead_as_the_clients_default_one_does() {
    let (address, _guard) = start_node().await;
    let official = official(address);
    for kind in ["Kept", "$Metadata", "Result", "PersistentConfig1", "Kept"] {
        let event = eventstore::EventData::json(kind, &serde_json::json!({})).expect("e");
        official
            .append_to_stream("order-a", &Default::default(), event)
            .await
            .expect("append");
    }
    let filter = eventstore::SubscriptionFilter::on_event_type()
        .regex(r"^(?!(\$.+$|PersistentConfig\d+$|Result$))")
        .max(1);
    let mut subscription = official
        .subscribe_to_all(&eventstore::SubscribeToAllOptions::default().filter(filter))
        .await;
    let mut kept = Vec::new();
    while kept.len() < 2 {
        let event = tokio::time::timeout(WAIT, subscription.next_subscription_event())
            .await
            .expect("in time")
            .expect("event");
        if let eventstore::SubscriptionEvent::EventAppeared(e) = event {
            let recorded = e.get_original_event();
            kept.push((recorded.event_type.clone(), recorded.position.commit));
        }
    }
    assert_eq!(
        kept,
        [("Kept".to_owned(), 0), ("Kept".to_owned(), 4)],
        "system-looking types left out, in order"
    );
}

#[tokio::test]
async fn methods_the_node_does_not_serve_answer_unimplemented() {
    let (address, _guard) = start_node().await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.expect("ready");
    // Persistent subscriptions are EventStoreDB's, not the ledger's.
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(
        "/event_store.client.persistent_subscriptions.PersistentSubscriptions/List",
    );
    let codec = tonic::codec::ProstCodec::<Empty, Empty>::default();
    let refused = grpc
        .unary(authorized(Empty {}), path, codec)
        .await
        .expect_err("not served");
    assert_eq!(refused.code(), Code::Unimplemented);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_past_the_limit_are_refused_until_one_ends() {
    let (address, _guard) = start_node_with(|node| node.with_subscriptions_max(2)).await;
    let mut client = raw(address).await;
    let first = client
        .read(subscribe_all(None))
        .await
        .expect("first")
        .into_inner();
    let _second = client.read(subscribe_all(None)).await.expect("second");
    let third = client
        .read(subscribe_all(None))
        .await
        .expect_err("over the limit");
    assert_eq!(third.code(), Code::ResourceExhausted);
    drop(first);
    // The first one's task ends when it notices its client is gone.
    let mut again = None;
    for _ in 0..100 {
        match client.read(subscribe_all(None)).await {
            Ok(subscription) => {
                again = Some(subscription);
                break;
            }
            Err(status) => assert_eq!(status.code(), Code::ResourceExhausted),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(again.is_some(), "a place freed up");
}

/// A checkpoint past the end of `$all` comes from another log, or from before a restore:
/// KurrentDB refuses it as an invalid position, and so does the node, saying where the log
/// ends. From the last position itself, the subscription is caught up at once.
#[tokio::test]
async fn a_subscription_from_past_the_end_of_the_log_is_refused() {
    let (address, _guard) = start_node().await;
    let mut client = raw(address).await;
    append_tested(&official(address), "order-p", 3).await;

    let mut at_the_end = client
        .read(subscribe_all(Some(2)))
        .await
        .expect("subscribe")
        .into_inner();
    caught_up_with_no_more_events(&mut at_the_end, "nothing after 2").await;

    let mut past_the_end = client
        .read(subscribe_all(Some(3)))
        .await
        .expect("subscribe")
        .into_inner();
    let refusal = loop {
        match tokio::time::timeout(WAIT, past_the_end.next())
            .await
            .expect("in time")
            .expect("an answer")
        {
            Ok(reply) => match reply.content {
                Some(read_resp::Content::Event(e)) => panic!("an event past the end: {e:?}"),
                Some(read_resp::Content::CaughtUp(_)) => panic!("told it caught up"),
                _ => {}
            },
            Err(status) => break status,
        }
    };
    assert_eq!(refusal.code(), tonic::Code::Unknown, "{refusal:?}");
    assert!(
        refusal.message().contains("invalid position")
            && refusal.message().contains("last position is 2"),
        "{refusal:?}"
    );
}

/// A client that connects and sends nothing, or stops inside HTTP/2's preface, is let go
/// after `FIRST_BYTES_TIMEOUT`: the gRPC server would wait for its preface for good. The node
/// goes on serving others meanwhile.
#[tokio::test]
async fn a_client_that_connects_and_sends_nothing_is_let_go() {
    use tokio::io::AsyncReadExt;
    let (address, _guard) = start_node().await;
    let silent = async {
        let mut stream = client_that_sent(address, b"").await;
        stream.read(&mut [0; 64]).await
    };
    let in_the_preface = async {
        let mut stream = client_that_sent(address, b"PRI * HTTP/2.0\r\n").await;
        stream.read(&mut [0; 64]).await
    };
    let meanwhile = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        count_all(address).await
    };
    let limit = ledger_store::node::FIRST_BYTES_TIMEOUT + WAIT;
    let (silent, in_the_preface, served) = tokio::time::timeout(
        limit,
        futures::future::join3(silent, in_the_preface, meanwhile),
    )
    .await
    .expect("the node let the clients go");
    // Closed (0 bytes), or reset: either way by the node, and before it said anything.
    assert!(silent.is_err() || silent.is_ok_and(|read| read == 0));
    assert!(in_the_preface.is_err() || in_the_preface.is_ok_and(|read| read == 0));
    assert_eq!(served, 0, "an empty log, read while the two waited");
}

/// A client that stops answering after the preface (its network gone, say) is pinged, and
/// let go when the ping goes unanswered, as KurrentDB does: its connection, and any
/// subscription on it, does not stay until TCP gives up.
#[tokio::test]
async fn a_client_that_stops_answering_is_let_go() {
    use tokio::io::AsyncReadExt;
    let (address, _guard) = start_node().await;
    // The preface and an empty SETTINGS frame; then nothing, not even an acknowledgement.
    let mut stream = client_that_sent(
        address,
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0",
    )
    .await;
    let limit =
        ledger_store::node::KEEPALIVE_INTERVAL + ledger_store::node::KEEPALIVE_TIMEOUT + WAIT;
    let closed = tokio::time::timeout(limit, stream.read_to_end(&mut Vec::new())).await;
    // Closed, or reset: either way by the node.
    assert!(
        closed.is_ok(),
        "the node kept a client that answered nothing"
    );
}

/// A raw connection to `address` that has sent `sent`, and no more.
async fn client_that_sent(address: std::net::SocketAddr, sent: &[u8]) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    stream.write_all(sent).await.expect("what the client sends");
    stream
}
