//! The behaviour every [`EventStore`] backend must show, written once. A backend's tests run
//! it with `conformance_tests!(async { fresh_empty_store() })`.
//!
//! Positions are compared with the log's own: they must increase in commit order, but only
//! the embedded store numbers them without gaps (EventStoreDB's are byte offsets), so this
//! suite holds on a real EventStoreDB server as well.

use crate::*;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// How long a subscription may take to deliver an event that is already committed.
const DELIVERY_WAIT: Duration = Duration::from_secs(10);

pub fn stream(name: &str) -> StreamName {
    StreamName::new(name).expect("valid test stream name")
}

pub fn event(event_type: &str, n: u64) -> EventData {
    EventData {
        event_id: Uuid::new_v4(),
        event_type: event_type.to_owned(),
        data: format!("{{\"n\":{n}}}").into_bytes(),
        metadata: b"{}".to_vec(),
        recorded_at: None,
    }
}

pub fn events(n: u64) -> Vec<EventData> {
    (0..n).map(|i| event("Tested", i)).collect()
}

async fn next(subscription: &mut Box<dyn Subscription>) -> RecordedEvent {
    tokio::time::timeout(DELIVERY_WAIT, subscription.next())
        .await
        .expect("subscription delivered in time")
        .expect("subscription delivered an event")
}

async fn all_events<S: EventStore>(store: &S) -> Vec<RecordedEvent> {
    store
        .read_all(AllFrom::Start, Direction::Forwards, READ_EVENTS_MAX)
        .await
        .expect("read $all")
}

/// The positions of the whole log, in commit order, checked to increase.
async fn log_positions<S: EventStore>(store: &S) -> Vec<u64> {
    let positions: Vec<u64> = all_events(store).await.iter().map(|e| e.position).collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "positions increase in commit order: {positions:?}"
    );
    positions
}

pub async fn append_to_a_new_stream_numbers_revisions_and_positions_from_zero<S: EventStore>(
    store: S,
) {
    let a = stream("order-a");
    let first = store
        .append(&a, ExpectedRevision::NoStream, events(3))
        .await
        .expect("append");
    let second = store
        .append(&stream("order-b"), ExpectedRevision::Any, events(2))
        .await
        .expect("append");
    let log = log_positions(&store).await;
    assert_eq!(log.len(), 5);
    assert_eq!(
        first,
        AppendResult {
            next_expected_revision: 2,
            position: log[2]
        }
    );
    assert_eq!(
        second,
        AppendResult {
            next_expected_revision: 1,
            position: log[4]
        }
    );
    let read = store
        .read_stream(&a, StreamFrom::Start, Direction::Forwards, 10)
        .await
        .expect("read");
    assert_eq!(
        read.iter().map(|e| e.revision).collect::<Vec<_>>(),
        vec![0, 1, 2]
    );
    assert_eq!(
        read.iter().map(|e| e.position).collect::<Vec<_>>(),
        log[..3]
    );
    assert!(read
        .iter()
        .all(|e| e.stream == a && e.event_type == "Tested"));
    assert_eq!(read[1].data, b"{\"n\":1}".to_vec());
}

pub async fn expected_revisions_are_enforced<S: EventStore>(store: S) {
    let s = stream("order-x");
    let wrong = |r: Result<AppendResult, StoreError>, want_actual: Option<u64>| match r {
        Err(StoreError::WrongExpectedRevision { actual, .. }) => assert_eq!(actual, want_actual),
        other => panic!("expected WrongExpectedRevision, got {other:?}"),
    };
    wrong(
        store
            .append(&s, ExpectedRevision::StreamExists, events(1))
            .await,
        None,
    );
    wrong(
        store
            .append(&s, ExpectedRevision::Exact(0), events(1))
            .await,
        None,
    );
    store
        .append(&s, ExpectedRevision::NoStream, events(2))
        .await
        .expect("no stream");
    wrong(
        store
            .append(&s, ExpectedRevision::NoStream, events(1))
            .await,
        Some(1),
    );
    wrong(
        store
            .append(&s, ExpectedRevision::Exact(0), events(1))
            .await,
        Some(1),
    );
    wrong(
        store
            .append(&s, ExpectedRevision::Exact(7), events(1))
            .await,
        Some(1),
    );
    let r = store
        .append(&s, ExpectedRevision::Exact(1), events(1))
        .await
        .expect("exact");
    assert_eq!(r.next_expected_revision, 2);
    store
        .append(&s, ExpectedRevision::StreamExists, events(1))
        .await
        .expect("exists");
    store
        .append(&s, ExpectedRevision::Any, events(1))
        .await
        .expect("any");
    assert_eq!(
        all_events(&store).await.len(),
        5,
        "refused appends wrote nothing"
    );
}

pub async fn appending_the_same_event_ids_again_is_idempotent<S: EventStore>(store: S) {
    let s = stream("order-i");
    store
        .append(&s, ExpectedRevision::NoStream, events(1))
        .await
        .expect("first");
    let batch = events(2);
    let first = store
        .append(&s, ExpectedRevision::Exact(0), batch.clone())
        .await
        .expect("append");
    let again = store
        .append(&s, ExpectedRevision::Exact(0), batch.clone())
        .await
        .expect("retry");
    assert_eq!(first, again);
    let any = store
        .append(&s, ExpectedRevision::Any, batch.clone())
        .await
        .expect("retry any");
    assert_eq!(first, any);
    assert_eq!(all_events(&store).await.len(), 3, "retries wrote nothing");
    // Some ids already there, some new: refused, nothing written.
    let mut overlap = vec![batch[1].clone()];
    overlap.extend(events(1));
    match store.append(&s, ExpectedRevision::Any, overlap).await {
        Err(StoreError::PartialIdempotentAppend(_)) => {}
        other => panic!("expected PartialIdempotentAppend, got {other:?}"),
    }
    assert_eq!(all_events(&store).await.len(), 3);
}

/// Retries among appends sent together (on the embedded store, one transaction, whose index
/// entries are still in memory) are recognised as those sent apart are.
pub async fn retries_sent_with_the_appends_they_repeat_are_idempotent<S: EventStore>(store: S) {
    let s = stream("order-t");
    let (first, second) = (events(2), vec![event("Tested", 7)]);
    let append = |expected, events: &Vec<EventData>| Append {
        stream: s.clone(),
        expected,
        events: events.clone(),
    };
    let results = store
        .append_in_order(vec![
            append(ExpectedRevision::NoStream, &first),
            append(ExpectedRevision::NoStream, &first),
            append(ExpectedRevision::Exact(1), &second),
            append(ExpectedRevision::Any, &first),
            append(ExpectedRevision::Exact(1), &second),
            append(ExpectedRevision::StreamExists, &second),
        ])
        .await
        .expect("appends and their retries");
    let made = |revision, position| AppendResult {
        next_expected_revision: revision,
        position,
    };
    let (of_first, of_second) = (made(1, 1), made(2, 2));
    assert_eq!(
        results,
        [of_first, of_first, of_second, of_first, of_second, of_second]
    );
    let log = all_events(&store).await;
    let ids: Vec<Uuid> = log.iter().map(|e| e.event_id).collect();
    let sent: Vec<Uuid> = first.iter().chain(&second).map(|e| e.event_id).collect();
    assert_eq!(ids, sent, "each event once");
    // Some of the ids just appended, some new, in the same call: refused, nothing written.
    let mut overlap = second.clone();
    overlap.extend(events(1));
    let third = vec![event("Tested", 8)];
    match store
        .append_in_order(vec![
            append(ExpectedRevision::Exact(2), &third),
            append(ExpectedRevision::Any, &overlap),
        ])
        .await
    {
        Err(StoreError::PartialIdempotentAppend(refused)) => assert_eq!(refused, s),
        other => panic!("expected PartialIdempotentAppend, got {other:?}"),
    }
    assert_eq!(
        all_events(&store).await.len(),
        4,
        "only the append before it"
    );
}

pub async fn appends_in_order_keep_their_order_and_stop_at_the_first_refused<S: EventStore>(
    store: S,
) {
    let append = |name: &str, expected, n| Append {
        stream: stream(name),
        expected,
        events: events(n),
    };
    // Interleaved streams, as a log being loaded has them: one event a stream at a time.
    let appends: Vec<Append> = (0..60u64)
        .map(|i| {
            let expected = match i / 3 {
                0 => ExpectedRevision::NoStream,
                n => ExpectedRevision::Exact(n - 1),
            };
            append(&format!("order-o{}", i % 3), expected, 1)
        })
        .collect();
    let results = store
        .append_in_order(appends.clone())
        .await
        .expect("appends in order");
    assert_eq!(results.len(), 60);
    let log = all_events(&store).await;
    let ids: Vec<Uuid> = log.iter().map(|e| e.event_id).collect();
    let sent: Vec<Uuid> = appends.iter().map(|a| a.events[0].event_id).collect();
    assert_eq!(ids, sent, "$all holds them in the order given");
    let positions: Vec<u64> = results.iter().map(|r| r.position).collect();
    assert_eq!(positions, log_positions(&store).await);

    // The third refused: the two before it are made, nothing after it, on any stream.
    let batch = vec![
        append("order-o0", ExpectedRevision::Exact(19), 2),
        append("order-o9", ExpectedRevision::NoStream, 1),
        append("order-o1", ExpectedRevision::Exact(3), 1),
        append("order-o8", ExpectedRevision::NoStream, 1),
        append("order-o0", ExpectedRevision::Exact(21), 1),
    ];
    match store.append_in_order(batch).await {
        Err(StoreError::WrongExpectedRevision { stream: s, .. }) => {
            assert_eq!(s, stream("order-o1"));
        }
        other => panic!("expected the third append refused, got {other:?}"),
    }
    let log = all_events(&store).await;
    assert_eq!(log.len(), 63, "the two appends before the refused one");
    assert_eq!(log[62].stream, stream("order-o9"));
    assert!(!log.iter().any(|e| e.stream == stream("order-o8")));
    assert_eq!(
        log.iter()
            .filter(|e| e.stream == stream("order-o0"))
            .count(),
        22,
        "the last append, which would have held, was not made"
    );
}

pub async fn streams_read_in_both_directions_from_any_revision<S: EventStore>(store: S) {
    let s = stream("order-r");
    store
        .append(&s, ExpectedRevision::NoStream, events(5))
        .await
        .expect("append");
    store
        .append(&stream("order-other"), ExpectedRevision::Any, events(2))
        .await
        .expect("append");
    let revisions =
        |events: Vec<RecordedEvent>| events.iter().map(|e| e.revision).collect::<Vec<_>>();
    let read = |from, direction, max| store.read_stream(&s, from, direction, max);
    assert_eq!(
        revisions(
            read(StreamFrom::Start, Direction::Forwards, 100)
                .await
                .expect("r")
        ),
        vec![0, 1, 2, 3, 4]
    );
    assert_eq!(
        revisions(
            read(StreamFrom::Revision(3), Direction::Forwards, 100)
                .await
                .expect("r")
        ),
        vec![3, 4]
    );
    assert_eq!(
        revisions(
            read(StreamFrom::Revision(1), Direction::Forwards, 2)
                .await
                .expect("r")
        ),
        vec![1, 2]
    );
    assert_eq!(
        revisions(
            read(StreamFrom::End, Direction::Backwards, 2)
                .await
                .expect("r")
        ),
        vec![4, 3]
    );
    assert_eq!(
        revisions(
            read(StreamFrom::Revision(2), Direction::Backwards, 100)
                .await
                .expect("r")
        ),
        vec![2, 1, 0]
    );
    assert_eq!(
        revisions(
            read(StreamFrom::Start, Direction::Backwards, 100)
                .await
                .expect("r")
        ),
        vec![0]
    );
    assert_eq!(
        revisions(
            read(StreamFrom::Revision(9), Direction::Forwards, 100)
                .await
                .expect("r")
        ),
        Vec::<u64>::new()
    );
    match store
        .read_stream(
            &stream("order-missing"),
            StreamFrom::Start,
            Direction::Forwards,
            10,
        )
        .await
    {
        Err(StoreError::StreamNotFound(name)) => assert_eq!(name.as_str(), "order-missing"),
        other => panic!("expected StreamNotFound, got {other:?}"),
    }
}

pub async fn all_reads_in_commit_order_in_both_directions<S: EventStore>(store: S) {
    for (i, name) in ["order-1", "order-2", "order-1", "order-3"]
        .iter()
        .enumerate()
    {
        store
            .append(&stream(name), ExpectedRevision::Any, events(i as u64 + 1))
            .await
            .expect("append");
    }
    let positions =
        |events: Vec<RecordedEvent>| events.iter().map(|e| e.position).collect::<Vec<_>>();
    let forwards = store
        .read_all(AllFrom::Start, Direction::Forwards, 100)
        .await
        .expect("read");
    let log = log_positions(&store).await;
    assert_eq!(positions(forwards.clone()), log);
    assert_eq!(log.len(), 10);
    let streams: Vec<&str> = forwards.iter().map(|e| e.stream.as_str()).collect();
    assert_eq!(streams[..3], ["order-1", "order-2", "order-2"]);
    assert_eq!(
        positions(
            store
                .read_all(AllFrom::Position(log[7]), Direction::Forwards, 100)
                .await
                .expect("r")
        ),
        log[7..]
    );
    assert_eq!(
        positions(
            store
                .read_all(AllFrom::End, Direction::Backwards, 3)
                .await
                .expect("r")
        ),
        vec![log[9], log[8], log[7]]
    );
    assert_eq!(
        positions(
            store
                .read_all(AllFrom::Position(log[2]), Direction::Backwards, 100)
                .await
                .expect("r")
        ),
        vec![log[2], log[1], log[0]]
    );
    assert!(store
        .read_all(AllFrom::End, Direction::Forwards, 100)
        .await
        .expect("r")
        .is_empty());
    // Backwards from the start is the first event alone.
    assert_eq!(
        positions(
            store
                .read_all(AllFrom::Start, Direction::Backwards, 100)
                .await
                .expect("r")
        ),
        vec![log[0]]
    );
}

/// Every event read from `$all` carries its own stream's name, also when its stream was first
/// written after earlier reads.
pub async fn all_reads_name_each_events_stream<S: EventStore>(store: S) {
    let mut written = std::collections::HashMap::new();
    for round in 0..3u64 {
        // 20, then 40, then 60 names: each round writes streams that did not exist before.
        let names = 20 * (round + 1);
        for i in 0..40u64 {
            let name = format!("order-{}", (i * 7 + round * 13) % names);
            let event = event("Named", i);
            written.insert(event.event_id, name.clone());
            store
                .append(&stream(&name), ExpectedRevision::Any, vec![event])
                .await
                .expect("append");
        }
        let forwards = all_events(&store).await;
        let backwards = store
            .read_all(AllFrom::End, Direction::Backwards, 25)
            .await
            .expect("read $all backwards");
        assert_eq!(forwards.len(), written.len());
        for read in forwards.iter().chain(&backwards) {
            assert_eq!(
                Some(read.stream.as_str()),
                written.get(&read.event_id).map(String::as_str),
                "the stream of the event at {}",
                read.position
            );
        }
    }
}

pub async fn bad_input_is_refused_and_writes_nothing<S: EventStore>(store: S) {
    let s = stream("order-bad");
    let invalid = |r: Result<AppendResult, StoreError>| {
        assert!(matches!(r, Err(StoreError::InvalidInput(_))), "{r:?}");
    };
    invalid(store.append(&s, ExpectedRevision::Any, vec![]).await);
    invalid(
        store
            .append(
                &s,
                ExpectedRevision::Any,
                events(APPEND_EVENTS_MAX as u64 + 1),
            )
            .await,
    );
    let mut e = event("x", 0);
    e.event_type = "t".repeat(EVENT_TYPE_BYTES_MAX + 1);
    invalid(store.append(&s, ExpectedRevision::Any, vec![e]).await);
    let mut e = event("", 0);
    e.event_type.clear();
    invalid(store.append(&s, ExpectedRevision::Any, vec![e]).await);
    for control in ["Order\nPlaced", "Order\rPlaced", "Order\u{0}Placed"] {
        invalid(
            store
                .append(&s, ExpectedRevision::Any, vec![event(control, 0)])
                .await,
        );
    }
    let mut e = event("x", 0);
    e.data = vec![b'x'; EVENT_DATA_BYTES_MAX + 1];
    invalid(store.append(&s, ExpectedRevision::Any, vec![e]).await);
    let mut e = event("x", 0);
    e.metadata = vec![b'x'; EVENT_METADATA_BYTES_MAX + 1];
    invalid(store.append(&s, ExpectedRevision::Any, vec![e]).await);
    let e = event("x", 0);
    invalid(
        store
            .append(&s, ExpectedRevision::Any, vec![e.clone(), e])
            .await,
    );
    assert!(all_events(&store).await.is_empty());
    assert!(StreamName::new("").is_err());
    assert!(StreamName::new("$all").is_err());
    assert!(StreamName::new("a\nb").is_err());
    assert!(StreamName::new("s".repeat(STREAM_NAME_BYTES_MAX + 1)).is_err());
    assert!("sometimes".parse::<ExpectedRevision>().is_err());
    assert_eq!(
        "7".parse::<ExpectedRevision>().ok(),
        Some(ExpectedRevision::Exact(7))
    );
}

pub async fn one_refused_append_fails_alone_among_concurrent_ones<S: EventStore>(store: S) {
    let store = Arc::new(store);
    let mut tasks = Vec::new();
    for i in 0..64u64 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            // Every fourth append expects a stream that does not exist to exist.
            let expected = if i % 4 == 0 {
                ExpectedRevision::Exact(5)
            } else {
                ExpectedRevision::NoStream
            };
            store
                .append(&stream(&format!("order-{i}")), expected, events(2))
                .await
        }));
    }
    let mut ok = 0;
    for (i, task) in tasks.into_iter().enumerate() {
        match task.await.expect("task") {
            Ok(_) => ok += 1,
            Err(StoreError::WrongExpectedRevision { .. }) => assert_eq!(i % 4, 0),
            Err(other) => panic!("unexpected {other}"),
        }
    }
    assert_eq!(ok, 48);
    assert_eq!(log_positions(&*store).await.len(), 96);
}

pub async fn subscriptions_catch_up_then_go_live<S: EventStore>(store: S) {
    let a = stream("order-a");
    let b = stream("order-b");
    store
        .append(&a, ExpectedRevision::Any, events(2))
        .await
        .expect("append");
    store
        .append(&b, ExpectedRevision::Any, events(1))
        .await
        .expect("append");
    let mut all = store
        .subscribe_all(SubscribeFrom::Start)
        .await
        .expect("subscribe");
    let log = log_positions(&store).await;
    let mut after = store
        .subscribe_all(SubscribeFrom::After(log[1]))
        .await
        .expect("subscribe");
    let mut end = store
        .subscribe_all(SubscribeFrom::End)
        .await
        .expect("subscribe");
    let mut only_a = store
        .subscribe_stream(&a, SubscribeFrom::Start)
        .await
        .expect("subscribe");
    let mut a_after = store
        .subscribe_stream(&a, SubscribeFrom::After(0))
        .await
        .expect("subscribe");
    let mut not_yet = store
        .subscribe_stream(&stream("order-later"), SubscribeFrom::Start)
        .await
        .expect("subscribe");
    for expected in &log {
        assert_eq!(next(&mut all).await.position, *expected);
    }
    assert_eq!(next(&mut after).await.position, log[2]);
    store
        .append(&b, ExpectedRevision::Any, events(1))
        .await
        .expect("append");
    store
        .append(&a, ExpectedRevision::Any, events(1))
        .await
        .expect("append");
    store
        .append(&stream("order-later"), ExpectedRevision::Any, events(1))
        .await
        .expect("append");
    let log = log_positions(&store).await;
    assert_eq!(next(&mut all).await.position, log[3]);
    assert_eq!(next(&mut all).await.position, log[4]);
    assert_eq!(next(&mut after).await.position, log[3]);
    assert_eq!(next(&mut end).await.position, log[3]);
    let revisions: Vec<u64> = [
        next(&mut only_a).await,
        next(&mut only_a).await,
        next(&mut only_a).await,
    ]
    .iter()
    .map(|e| e.revision)
    .collect();
    assert_eq!(revisions, vec![0, 1, 2]);
    assert_eq!(next(&mut a_after).await.revision, 1);
    let later = next(&mut not_yet).await;
    assert_eq!((later.stream.as_str(), later.revision), ("order-later", 0));
}

/// The next event, taken at hand where one is, waited for otherwise.
async fn next_at_hand_or_waited(subscription: &mut Box<dyn Subscription>) -> RecordedEvent {
    match subscription.next_ready() {
        Some(event) => event.expect("an event at hand"),
        None => next(subscription).await,
    }
}

/// Waits, without `next`, until `next_ready` hands out a committed event.
async fn at_hand(subscription: &mut Box<dyn Subscription>) -> RecordedEvent {
    let waited = tokio::time::timeout(DELIVERY_WAIT, async {
        loop {
            if let Some(event) = subscription.next_ready() {
                return event;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    waited
        .await
        .expect("the committed event came to hand in time")
        .expect("an event at hand")
}

/// What a subscription has at hand comes without waiting, in the one sequence `next` keeps:
/// a consumer that batches takes it after each event it waited for.
pub async fn events_at_hand_come_in_the_sequence_of_next<S: EventStore>(store: S) {
    let a = stream("order-a");
    let b = stream("order-b");
    store
        .append(&a, ExpectedRevision::Any, events(3))
        .await
        .expect("append");
    let mut all = store
        .subscribe_all(SubscribeFrom::Start)
        .await
        .expect("subscribe");
    let mut only_a = store
        .subscribe_stream(&a, SubscribeFrom::Start)
        .await
        .expect("subscribe");
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(next_at_hand_or_waited(&mut all).await.position);
    }
    assert_eq!(seen, log_positions(&store).await, "caught up, in order");
    assert!(all.next_ready().is_none(), "nothing more is at hand");
    for (stream, count) in [(&b, 3), (&a, 2), (&b, 1)] {
        store
            .append(stream, ExpectedRevision::Any, events(count))
            .await
            .expect("append");
    }
    let log = log_positions(&store).await;
    // The rest of a commit comes to hand without `next`.
    assert_eq!(next(&mut all).await.position, log[3]);
    assert_eq!(at_hand(&mut all).await.position, log[4]);
    for expected in &log[5..] {
        assert_eq!(next_at_hand_or_waited(&mut all).await.position, *expected);
    }
    assert!(all.next_ready().is_none(), "every event came once");
    let mut revisions = Vec::new();
    for _ in 0..5 {
        let event = next_at_hand_or_waited(&mut only_a).await;
        assert_eq!(event.stream, a, "the stream's own events only");
        revisions.push(event.revision);
    }
    assert_eq!(revisions, vec![0, 1, 2, 3, 4]);
    assert!(only_a.next_ready().is_none(), "every event came once");
}

/// Subscribers join while writers append; each sees every event once, in order, from its start.
pub async fn catch_up_to_live_handover_under_concurrent_writers<S: EventStore>(store: S) {
    const WRITERS: u64 = 8;
    const APPENDS_PER_WRITER: u64 = 150;
    let store = Arc::new(store);
    store
        .append(&stream("order-seed"), ExpectedRevision::Any, events(500))
        .await
        .expect("seed");
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let store = Arc::clone(&store);
        writers.push(tokio::spawn(async move {
            for i in 0..APPENDS_PER_WRITER {
                let name = stream(&format!("order-{w}-{}", i % 5));
                store
                    .append(&name, ExpectedRevision::Any, events(1 + i % 3))
                    .await
                    .expect("append");
            }
        }));
    }
    let total = 500 + (0..APPENDS_PER_WRITER).map(|i| 1 + i % 3).sum::<u64>() * WRITERS;
    let seed = log_positions(&*store).await;
    let mut readers = Vec::new();
    for (start, skipped) in [
        (SubscribeFrom::Start, 0),
        (SubscribeFrom::After(seed[249]), 250),
    ] {
        tokio::task::yield_now().await;
        let mut subscription = store.subscribe_all(start).await.expect("subscribe");
        readers.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut ids = HashSet::new();
            while (seen.len() as u64) < total - skipped {
                let event = next(&mut subscription).await;
                assert!(ids.insert(event.event_id), "event delivered twice");
                seen.push(event.position);
            }
            (skipped, seen)
        }));
    }
    // A stream's subscriber, joining as the writers go, gets that stream alone.
    let one = stream("order-3-2");
    let per_stream: u64 = (0..APPENDS_PER_WRITER)
        .filter(|i| i % 5 == 2)
        .map(|i| 1 + i % 3)
        .sum();
    let mut only_one = store
        .subscribe_stream(&one, SubscribeFrom::Start)
        .await
        .expect("subscribe");
    let stream_reader = tokio::spawn(async move {
        let mut revisions = Vec::new();
        while (revisions.len() as u64) < per_stream {
            let event = next(&mut only_one).await;
            assert_eq!(event.stream.as_str(), "order-3-2");
            revisions.push(event.revision);
        }
        revisions
    });
    for writer in writers {
        writer.await.expect("writer");
    }
    let revisions = stream_reader.await.expect("stream reader");
    assert_eq!(revisions, (0..per_stream).collect::<Vec<u64>>());
    let log = log_positions(&*store).await;
    assert_eq!(log.len() as u64, total);
    for reader in readers {
        let (skipped, seen) = reader.await.expect("reader");
        assert_eq!(
            seen,
            log[skipped as usize..],
            "every event once, in commit order"
        );
    }
}

/// One `#[tokio::test]` per conformance case, each on a fresh store from `$factory`.
#[macro_export]
macro_rules! conformance_tests {
    ($factory:expr) => {
        $crate::conformance_tests!(@cases $factory;
            append_to_a_new_stream_numbers_revisions_and_positions_from_zero,
            expected_revisions_are_enforced,
            appending_the_same_event_ids_again_is_idempotent,
            appends_in_order_keep_their_order_and_stop_at_the_first_refused,
            retries_sent_with_the_appends_they_repeat_are_idempotent,
            streams_read_in_both_directions_from_any_revision,
            all_reads_in_commit_order_in_both_directions,
            all_reads_name_each_events_stream,
            bad_input_is_refused_and_writes_nothing,
            one_refused_append_fails_alone_among_concurrent_ones,
            subscriptions_catch_up_then_go_live,
            events_at_hand_come_in_the_sequence_of_next,
            catch_up_to_live_handover_under_concurrent_writers,
        );
    };
    (@cases $factory:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let (store, _guard) = $factory.await;
                $crate::conformance::$case(store).await;
            }
        )*
    };
}
