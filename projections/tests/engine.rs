//! The engine against the real embedded store.

use chrono::{DateTime, Duration, TimeZone, Utc};
use ledger_domain::*;
use ledger_projections::*;
use ledger_store::*;
use std::sync::Arc;
use uuid::Uuid;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0)
        .single()
        .expect("instant")
}

fn eur(a: &str) -> Money {
    Money::parse(a, Currency::from_code("EUR").expect("EUR")).expect("amount")
}

/// A fresh event log and a fresh directory for the views; keep both dirs alive.
fn log_and_views() -> (tempfile::TempDir, tempfile::TempDir, SqliteStore) {
    let log = tempfile::tempdir().expect("dir");
    let views_dir = tempfile::tempdir().expect("dir");
    let store = SqliteStore::open(log.path()).expect("store");
    (log, views_dir, store)
}

/// Appends what `commands` decide for one order, encoded as the pipeline encodes.
async fn run_order(store: &SqliteStore, order: u128, commands: Vec<Command>) {
    let order_id = OrderId(Uuid::from_u128(order));
    let stream = StreamName::new(order_stream_name(order_id)).expect("stream");
    let mut state = OrderState::new();
    for command in commands {
        let events = decide(&state, &command, &Policy::default()).expect("accepted");
        let metadata = EventMetadata {
            schema_version: EVENT_SCHEMA_VERSION,
            command_id: Uuid::new_v4(),
            command_digest: String::new(),
            correlation_id: Uuid::nil(),
            causation_id: Uuid::nil(),
            actor: command.by(),
        };
        let data = events
            .iter()
            .map(|event| {
                let mut data = Vec::new();
                event
                    .serialize_data(&mut serde_json::Serializer::new(&mut data))
                    .expect("data");
                EventData {
                    event_id: Uuid::new_v4(),
                    event_type: event.event_type().into(),
                    data,
                    metadata: serde_json::to_vec(&metadata).expect("metadata"),
                    recorded_at: None,
                }
            })
            .collect();
        store
            .append(&stream, ExpectedRevision::Any, data)
            .await
            .expect("append");
        state = events.iter().fold(state, evolve);
    }
}

/// Orders `1..=orders` closed, appended side by side so that their appends share commits.
async fn closed_orders_at_once(store: &SqliteStore, orders: u128) {
    let appends: Vec<_> = (1..=orders)
        .map(|order| {
            let store = store.clone();
            tokio::spawn(async move {
                run_order(&store, order, closed_order(order, t0())).await;
            })
        })
        .collect();
    for append in appends {
        append.await.expect("orders appended");
    }
}

/// An event of a type no view knows, on order 1's stream.
async fn append_unknown_event(store: &SqliteStore) {
    let stream = StreamName::new(order_stream_name(OrderId(Uuid::from_u128(1)))).expect("stream");
    let strange = EventData {
        event_id: Uuid::new_v4(),
        event_type: "OrderTeleported".into(),
        data: b"{}".to_vec(),
        metadata: br#"{"schema_version":1}"#.to_vec(),
        recorded_at: None,
    };
    store
        .append(&stream, ExpectedRevision::Any, vec![strange])
        .await
        .expect("append");
}

fn closed_order(order: u128, start: DateTime<Utc>) -> Vec<Command> {
    let buyer = Actor::new(Role::Buyer, UserId(Uuid::from_u128(1)));
    let seller = Actor::new(Role::Seller, UserId(Uuid::from_u128(2)));
    vec![
        Command::Place {
            by: buyer,
            at: start,
            order_id: OrderId(Uuid::from_u128(order)),
            seller: seller.user_id,
            title: "logo".into(),
            price: eur("100.00"),
            delivery_days: 3,
        },
        Command::Confirm {
            by: seller,
            at: start + Duration::hours(1),
        },
        Command::Deliver {
            by: seller,
            at: start + Duration::days(1),
            message: String::new(),
        },
        Command::Close {
            by: buyer,
            at: start + Duration::days(2),
        },
    ]
}

fn same_bytes(a: &Views, b: &Views) -> bool {
    ViewName::ALL
        .iter()
        .all(|v| a.to_json(*v).ok() == b.to_json(*v).ok())
}

/// The views as a running service folds them: page by page through `apply`, then saved.
/// (`catch_up` from no checkpoint is a rebuild.)
async fn folded_incrementally(projector: &mut Projector, store: &SqliteStore) {
    loop {
        let from = projector.checkpoint().map_or(0, |c| c + 1);
        let page = store
            .read_all(AllFrom::Position(from), Direction::Forwards, 7)
            .await
            .expect("read");
        if page.is_empty() {
            break;
        }
        projector.apply(&page).expect("apply");
    }
    projector.save().expect("save");
}

async fn rebuilt_from_zero(store: &SqliteStore) -> Views {
    let dir = tempfile::tempdir().expect("dir");
    let (projector, _) = Projector::rebuild_all(dir.path(), store, |_| {})
        .await
        .expect("rebuild");
    projector.views().clone()
}

/// The four events of one closed order, folded, and the caller told so as it went.
fn assert_one_order_folded(progress: Progress, heard: &[u64]) {
    assert_eq!(
        progress,
        Progress {
            applied: 4,
            checkpoint: Some(3)
        }
    );
    assert_eq!(heard.last(), Some(&4), "told how far it came: {heard:?}");
}

#[tokio::test]
async fn a_restart_resumes_from_the_checkpoint_and_matches_a_rebuild() {
    let (_log, views_dir, store) = log_and_views();
    run_order(&store, 1, closed_order(1, t0())).await;
    {
        let mut projector = Projector::open(views_dir.path()).expect("open");
        let mut heard = Vec::new();
        let progress = projector
            .catch_up(&store, |applied| heard.push(applied))
            .await
            .expect("catch up");
        assert_one_order_folded(progress, &heard);
    }
    run_order(&store, 2, closed_order(2, t0() + Duration::days(3))).await;
    let mut projector = Projector::open(views_dir.path()).expect("reopen");
    assert_eq!(
        projector.checkpoint(),
        Some(3),
        "resumed from the stored checkpoint"
    );
    let mut heard = Vec::new();
    let progress = projector
        .catch_up(&store, |applied| heard.push(applied))
        .await
        .expect("catch up");
    assert_eq!(progress.applied, 4, "only the new events were applied");
    assert_eq!(heard.last(), Some(&4), "told how far it came: {heard:?}");
    assert!(same_bytes(
        projector.views(),
        &rebuilt_from_zero(&store).await
    ));
    let seller = projector.views().wallets.wallet(UserId(Uuid::from_u128(2)));
    assert_eq!(
        seller.values().next().map(|w| w.balance),
        Some(eur("160.00"))
    );
}

#[tokio::test]
async fn a_batch_delivered_twice_is_applied_once() {
    let (_log, views_dir, store) = log_and_views();
    run_order(&store, 1, closed_order(1, t0())).await;
    let batch = store
        .read_all(AllFrom::Start, Direction::Forwards, 100)
        .await
        .expect("read");
    let mut projector = Projector::open(views_dir.path()).expect("open");
    assert_eq!(projector.apply(&batch).expect("apply"), 4);
    let once = projector.views().clone();
    assert_eq!(projector.apply(&batch).expect("apply again"), 0);
    assert!(same_bytes(projector.views(), &once));
}

#[tokio::test]
async fn an_unknown_event_type_stops_the_views_naming_its_position() {
    let (_log, views_dir, store) = log_and_views();
    run_order(&store, 1, closed_order(1, t0())).await;
    append_unknown_event(&store).await;
    let mut projector = Projector::open(views_dir.path()).expect("open");
    let error = projector.catch_up(&store, |_| {}).await.expect_err("stops");
    let message = error.to_string();
    assert!(
        message.contains("position 4") && message.contains("OrderTeleported"),
        "{message}"
    );
    assert_eq!(
        projector.checkpoint(),
        Some(3),
        "nothing past the bad event was applied"
    );
}

#[tokio::test]
async fn a_newer_schema_version_stops_the_views_naming_its_position() {
    let (_log, views_dir, store) = log_and_views();
    run_order(&store, 1, closed_order(1, t0())[..1].to_vec()).await;
    let mut recorded = store
        .read_all(AllFrom::Start, Direction::Forwards, 10)
        .await
        .expect("read");
    let mut metadata: serde_json::Value =
        serde_json::from_slice(&recorded[0].metadata).expect("json");
    metadata["schema_version"] = serde_json::json!(EVENT_SCHEMA_VERSION + 1);
    recorded[0].metadata = serde_json::to_vec(&metadata).expect("json");
    let mut projector = Projector::open(views_dir.path()).expect("open");
    let error = projector.apply(&recorded).expect_err("stops");
    assert!(
        matches!(
            error,
            ProjectionError::Fact(FactError::NewerSchema { position: 0, .. })
        ),
        "{error}"
    );
    assert_eq!(projector.checkpoint(), None);
}

#[tokio::test]
async fn rebuilding_one_view_gives_what_the_others_agree_with() {
    let (_log, views_dir, store) = log_and_views();
    run_order(&store, 1, closed_order(1, t0())).await;
    let mut projector = Projector::open(views_dir.path()).expect("open");
    projector.catch_up(&store, |_| {}).await.expect("catch up");
    run_order(&store, 2, closed_order(2, t0() + Duration::days(3))).await;
    let progress = projector
        .rebuild_view(&store, ViewName::Journal, |_| {})
        .await
        .expect("rebuild");
    assert_eq!(progress.checkpoint, Some(7));
    assert!(same_bytes(
        projector.views(),
        &rebuilt_from_zero(&store).await
    ));
}

#[tokio::test]
async fn rebuilding_one_view_over_nothing_stored_folds_and_stores_every_view() {
    let (_log, views_dir, store) = log_and_views();
    run_order(&store, 1, closed_order(1, t0())).await;
    let mut projector = Projector::open(views_dir.path()).expect("open");
    let mut heard = Vec::new();
    let progress = projector
        .rebuild_view(&store, ViewName::Journal, |applied| heard.push(applied))
        .await
        .expect("rebuild");
    assert_one_order_folded(progress, &heard);
    drop(projector);
    let reopened = Projector::open(views_dir.path()).expect("reopen");
    assert_eq!(reopened.checkpoint(), Some(3), "stored");
    assert!(same_bytes(
        reopened.views(),
        &rebuilt_from_zero(&store).await
    ));
}

#[tokio::test]
async fn following_live_applies_new_events_as_they_commit() {
    let log = tempfile::tempdir().expect("dir");
    let views_dir = tempfile::tempdir().expect("dir");
    let store = Arc::new(SqliteStore::open(log.path()).expect("store"));
    let mut projector = Projector::open(views_dir.path()).expect("open");
    let (seen_tx, mut seen_rx) = tokio::sync::watch::channel(None);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let follower_store = store.clone();
    let follower = tokio::spawn(async move {
        projector
            .follow(
                &*follower_store,
                |_, checkpoint| {
                    let _ = seen_tx.send(checkpoint);
                },
                async {
                    let _ = stop_rx.await;
                },
            )
            .await
            .expect("follow");
        projector
    });
    run_order(&store, 1, closed_order(1, t0())).await;
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        seen_rx.wait_for(|c| *c == Some(3)),
    )
    .await
    .expect("caught up in time")
    .expect("watch");
    let _ = stop_tx.send(());
    let projector = follower.await.expect("follower");
    assert!(
        projector.views().escrow.totals().is_empty(),
        "closed order holds nothing"
    );
    assert_eq!(projector.views().orders.len(), 1);
    drop(projector);
    // It saved when it stopped.
    assert_eq!(
        Projector::open(views_dir.path())
            .expect("reopen")
            .checkpoint(),
        Some(3)
    );
}

/// A log of `orders` closed orders, a day apart, and a projector caught up with it.
/// A log of its own holding `orders`, each placed and closed.
async fn log_of_closed_orders(
    orders: impl IntoIterator<Item = u128>,
) -> (tempfile::TempDir, SqliteStore) {
    let (log, _views_dir, store) = log_and_views();
    for order in orders {
        run_order(&store, order, closed_order(order, t0())).await;
    }
    (log, store)
}

async fn closed_orders_caught_up(
    orders: u128,
) -> (tempfile::TempDir, tempfile::TempDir, SqliteStore, Projector) {
    let (log, views_dir, store) = log_and_views();
    for order in 1..=orders {
        run_order(
            &store,
            order,
            closed_order(order, t0() + Duration::days(order as i64)),
        )
        .await;
    }
    let mut projector = Projector::open(views_dir.path()).expect("open");
    projector.catch_up(&store, |_| {}).await.expect("catch up");
    (log, views_dir, store, projector)
}

#[tokio::test]
async fn stored_views_come_back_whole_after_a_restart() {
    let (_log, views_dir, _store, projector) = closed_orders_caught_up(5).await;
    let before = projector.views().clone();
    drop(projector);
    let reopened = Projector::open(views_dir.path()).expect("reopen");
    assert!(same_bytes(reopened.views(), &before));
    assert_eq!(reopened.checkpoint(), Some(19));
    // The derived indexes came back too: lists per seller work after a restart.
    let page = reopened.views().orders.list(
        &OrderFilter {
            seller: Some(UserId(Uuid::from_u128(2))),
            ..OrderFilter::default()
        },
        None,
        10,
        t0(),
    );
    assert_eq!(page.orders.len(), 5);
}

#[tokio::test]
async fn views_stored_by_an_older_layout_are_dropped_and_folded_again_on_open() {
    let (_log, views_dir, store, projector) = closed_orders_caught_up(3).await;
    drop(projector);
    // What an earlier binary left: JSON rows under an older schema number.
    let db = rusqlite::Connection::open(views_dir.path().join("views.sqlite")).expect("db");
    let version: i64 = db
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .expect("version");
    db.execute(
        "UPDATE rows SET value = CAST('{\"held\":\"1.00\"}' AS BLOB)",
        [],
    )
    .expect("old rows");
    // Old rows of some size, whose pages an upgrade should give back.
    db.execute(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300)
         INSERT INTO rows (view, tbl, key, value) SELECT 'old', 'old', i, zeroblob(10000) FROM n",
        [],
    )
    .expect("old rows of some size");
    // The layout just before this one: orders without when their dispute was opened.
    db.pragma_update(None, "user_version", version - 1)
        .expect("older schema");
    drop(db);

    let mut reopened = Projector::open(views_dir.path()).expect("an older layout opens");
    assert_eq!(reopened.checkpoint(), None, "nothing kept of the old views");
    assert_eq!(reopened.views().orders.len(), 0);
    let db = rusqlite::Connection::open(views_dir.path().join("views.sqlite")).expect("db");
    let pages: i64 = db
        .query_row("PRAGMA page_count", [], |row| row.get(0))
        .expect("pages");
    assert!(
        pages < 50,
        "the old rows' 3 MB are given back: {pages} pages"
    );
    drop(db);
    let progress = reopened.catch_up(&store, |_| {}).await.expect("catch up");
    assert_eq!(progress.applied, 12, "the whole log folded again");
    assert!(same_bytes(
        reopened.views(),
        &rebuilt_from_zero(&store).await
    ));
}

#[tokio::test]
async fn a_damaged_stored_row_is_an_error_naming_it_not_a_hang_or_a_panic() {
    let (_log, views_dir, _store, projector) = closed_orders_caught_up(3).await;
    drop(projector);
    let path = views_dir.path().join("views.sqlite");
    let db = rusqlite::Connection::open(&path).expect("db");
    let key: Vec<u8> = db
        .query_row(
            "SELECT key FROM rows WHERE view = 'orders' ORDER BY key LIMIT 1",
            [],
            |row| row.get(0),
        )
        .expect("an order row");
    db.execute(
        "UPDATE rows SET value = x'c1' WHERE view = 'orders' AND key = ?1",
        [&key],
    )
    .expect("damage");
    drop(db);
    match Projector::open(views_dir.path()) {
        Err(ProjectionError::Row(row)) => {
            let order = uuid::Uuid::from_slice(&key).expect("an order's key is its id");
            assert_eq!(
                (row.table.as_str(), row.key.as_str()),
                ("orders", order.hyphenated().to_string().as_str())
            );
        }
        Err(other) => panic!("expected the damaged row, got {other}"),
        Ok(_) => panic!("a damaged row was loaded"),
    }

    let db = rusqlite::Connection::open(&path).expect("db");
    db.execute("UPDATE rows SET view = 'nonsense' WHERE key = ?1", [&key])
        .expect("rename");
    drop(db);
    assert!(matches!(
        Projector::open(views_dir.path()),
        Err(ProjectionError::CorruptView { .. })
    ));
}

/// A full rebuild is how damaged views are replaced: it never reads what is stored.
#[tokio::test]
async fn a_full_rebuild_replaces_views_it_cannot_read() {
    let (_log, views_dir, store, projector) = closed_orders_caught_up(3).await;
    drop(projector);
    let path = views_dir.path().join("views.sqlite");
    let expected = rebuilt_from_zero(&store).await;
    type Damage = fn(&std::path::Path);
    let damages: [(&str, Damage); 3] = [
        ("a damaged row", |path| {
            let db = rusqlite::Connection::open(path).expect("db");
            db.execute("UPDATE rows SET value = x'c1' WHERE view = 'orders'", [])
                .expect("damage");
        }),
        ("a newer layout", |path| {
            let db = rusqlite::Connection::open(path).expect("db");
            db.pragma_update(None, "user_version", 1_000)
                .expect("newer");
        }),
        ("not a database", |path| {
            std::fs::write(path, b"not a database").expect("garbage");
        }),
    ];
    for (damage, inflict) in damages {
        inflict(&path);
        assert!(Projector::open(views_dir.path()).is_err(), "{damage}");
        let (projector, progress) = Projector::rebuild_all(views_dir.path(), &store, |_| {})
            .await
            .unwrap_or_else(|e| panic!("rebuilt over {damage}: {e}"));
        assert_eq!(progress.checkpoint, Some(11), "{damage}");
        drop(projector);
        let reopened = Projector::open(views_dir.path())
            .unwrap_or_else(|e| panic!("reopened after {damage}: {e}"));
        assert!(same_bytes(reopened.views(), &expected), "{damage}");
    }
}

/// A save cut short leaves a hot journal beside the views. Played back into the rebuilt
/// file, it would put the old file's pages into the new one.
#[tokio::test]
async fn a_full_rebuild_is_not_undone_by_the_journal_of_a_save_cut_short() {
    let (_log, views_dir, store, projector) = closed_orders_caught_up(3).await;
    drop(projector);
    let path = views_dir.path().join("views.sqlite");
    let journal = views_dir.path().join("views.sqlite-journal");
    // A write transaction that spills pages into the file before it commits, copied in
    // the middle: the state a crash of the service in the middle of a save leaves.
    let crashed = tempfile::tempdir().expect("dir");
    {
        let db = rusqlite::Connection::open(&path).expect("db");
        db.execute_batch(
            "PRAGMA cache_size = 1; BEGIN;
             UPDATE rows SET value = zeroblob(20000);
             INSERT INTO rows (view, tbl, key, value)
             SELECT 'orders', 'orders', 'spill-' || id, zeroblob(20000) FROM rows;",
        )
        .expect("a save in the middle");
        assert!(journal.exists(), "the save has a journal");
        std::fs::copy(&path, crashed.path().join("views.sqlite")).expect("copy");
        std::fs::copy(&journal, crashed.path().join("views.sqlite-journal")).expect("copy");
    }
    let (projector, _) = Projector::rebuild_all(crashed.path(), &store, |_| {})
        .await
        .expect("rebuild");
    drop(projector);
    let reopened = Projector::open(crashed.path()).expect("the rebuilt views open");
    assert_eq!(reopened.checkpoint(), Some(11));
    assert!(same_bytes(
        reopened.views(),
        &rebuilt_from_zero(&store).await
    ));
}

/// With nothing stored, a catch-up folds as a rebuild does: the same views as a fold event by
/// event, stored, and built on by the saves that follow.
#[tokio::test]
async fn a_catch_up_from_nothing_stored_equals_an_incremental_fold_and_is_stored() {
    let (_log, views_dir, store) = log_and_views();
    for order in 1..=3 {
        run_order(&store, order, closed_order(order, t0())).await;
    }
    let mut unconfirmed = closed_order(4, t0());
    unconfirmed.truncate(1);
    run_order(&store, 4, unconfirmed).await;
    let incremental_dir = tempfile::tempdir().expect("dir");
    let mut incremental = Projector::open(incremental_dir.path()).expect("open");
    folded_incrementally(&mut incremental, &store).await;

    let mut projector = Projector::open(views_dir.path()).expect("open");
    let progress = projector.catch_up(&store, |_| {}).await.expect("catch up");
    assert_eq!(
        progress,
        Progress {
            applied: 13,
            checkpoint: Some(12)
        }
    );
    assert!(same_bytes(projector.views(), incremental.views()));
    let later = t0() + Duration::days(60);
    assert_eq!(
        projector.views().timers.due(later, 100),
        incremental.views().timers.due(later, 100)
    );
    drop(projector);
    let mut reopened = Projector::open(views_dir.path()).expect("reopen");
    assert_eq!(reopened.checkpoint(), Some(12), "stored whole");
    assert!(same_bytes(reopened.views(), incremental.views()));

    run_order(&store, 5, closed_order(5, t0())).await;
    reopened.catch_up(&store, |_| {}).await.expect("catch up");
    drop(reopened);
    let reopened = Projector::open(views_dir.path()).expect("reopen");
    assert_eq!(reopened.checkpoint(), Some(16));
    assert!(same_bytes(
        reopened.views(),
        &rebuilt_from_zero(&store).await
    ));
}

#[tokio::test]
async fn a_rebuild_is_stored_whole_and_later_saves_build_on_it() {
    let (_log, views_dir, store, projector) = closed_orders_caught_up(3).await;
    drop(projector);
    let (mut projector, progress) = Projector::rebuild_all(views_dir.path(), &store, |_| {})
        .await
        .expect("rebuild");
    assert_eq!(progress.applied, 12);
    // The stored file was replaced; the rebuilt projector's next save goes to the new one.
    run_order(&store, 4, closed_order(4, t0() + Duration::days(4))).await;
    projector.catch_up(&store, |_| {}).await.expect("catch up");
    drop(projector);
    let names: Vec<String> = std::fs::read_dir(views_dir.path())
        .expect("list")
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.contains(&"views.sqlite".to_owned())
            && !names.iter().any(|n| n.contains("rebuilding")),
        "the rebuilt file in place, no scratch file left: {names:?}"
    );
    let reopened = Projector::open(views_dir.path()).expect("reopen");
    assert_eq!(reopened.checkpoint(), Some(15));
    assert!(same_bytes(
        reopened.views(),
        &rebuilt_from_zero(&store).await
    ));
}

#[tokio::test]
async fn a_second_writer_of_the_same_views_is_refused_until_the_first_is_gone() {
    let views_dir = tempfile::tempdir().expect("dir");
    let first = Projector::open(views_dir.path()).expect("open");
    let refused = Projector::open(views_dir.path())
        .err()
        .expect("a second writer");
    assert!(
        matches!(refused, ledger_projections::ProjectionError::InUse(_)),
        "{refused}"
    );
    drop(first);
    Projector::open(views_dir.path()).expect("free again");
}

/// A rebuild leaves the timers' schedule stale while it folds and builds it once at the end:
/// the timers due afterwards are those an incremental fold finds.
#[tokio::test]
async fn a_rebuild_schedules_the_same_timers_as_an_incremental_fold() {
    let (_log, views_dir, store) = log_and_views();
    run_order(&store, 1, closed_order(1, t0())).await;
    let mut unconfirmed = closed_order(2, t0());
    unconfirmed.truncate(1);
    run_order(&store, 2, unconfirmed).await;
    let mut delivered = closed_order(3, t0());
    delivered.truncate(3);
    run_order(&store, 3, delivered).await;
    let mut projector = Projector::open(views_dir.path()).expect("open");
    folded_incrementally(&mut projector, &store).await;
    let later = t0() + Duration::days(60);
    let incremental = projector.views().timers.due(later, 100);
    let rebuilt_views = rebuilt_from_zero(&store).await;
    let rebuilt = rebuilt_views.timers.due(later, 100);
    // The unconfirmed order's expiry and the delivered one's auto-close; the closed has none.
    assert_eq!(rebuilt_views.timers.due_count(later), 2);
    assert_eq!(rebuilt.len(), 2);
    assert_eq!(
        rebuilt_views.timers.due_count(t0()),
        0,
        "none is due at the start"
    );
    let orders: Vec<OrderId> = rebuilt.iter().map(|t| t.order).collect();
    assert_eq!(
        orders,
        [2, 3].map(|n| OrderId(Uuid::from_u128(n))),
        "the unconfirmed order expires before the delivered one closes"
    );
    assert_eq!(rebuilt, incremental);
}

/// A rebuild hands its rows to the inserter in chunks while it still makes them: a view of
/// more rows than a chunk comes back whole, and equal to the views folded incrementally.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_of_more_rows_than_a_chunk_comes_back_whole() {
    const ORDERS: u128 = 1_500;
    let (_log, views_dir, store) = log_and_views();
    closed_orders_at_once(&store, ORDERS).await;
    let mut projector = Projector::open(views_dir.path()).expect("open");
    folded_incrementally(&mut projector, &store).await;
    let incremental = projector.views().clone();
    drop(projector);
    Projector::rebuild_all(views_dir.path(), &store, |_| {})
        .await
        .expect("rebuild");
    let reopened = Projector::open(views_dir.path()).expect("reopen");
    assert_eq!(reopened.views().orders.len(), ORDERS as usize);
    assert!(same_bytes(reopened.views(), &incremental));
}

/// A rebuild reads, decodes and folds pages at once, each stage running ahead of the next:
/// over several pages it must still fold every event once, in order, and stop at a bad event
/// in a later page.
#[tokio::test]
async fn a_rebuild_over_several_pages_folds_each_event_once_and_stops_at_a_bad_one() {
    const ORDERS: u128 = 5_500;
    let events = 4 * ORDERS as u64;
    assert!(events > 2 * READ_EVENTS_MAX as u64, "three pages or more");
    let (_log, views_dir, store) = log_and_views();
    closed_orders_at_once(&store, ORDERS).await;
    let incremental_dir = tempfile::tempdir().expect("dir");
    let mut incremental = Projector::open(incremental_dir.path()).expect("open");
    folded_incrementally(&mut incremental, &store).await;

    let mut heard = Vec::new();
    let (rebuilt, progress) = Projector::rebuild_all(views_dir.path(), &store, |n| heard.push(n))
        .await
        .expect("rebuild");
    assert_eq!(
        progress,
        Progress {
            applied: events,
            checkpoint: Some(events - 1)
        }
    );
    assert!(heard.len() >= 3 && heard.is_sorted(), "{heard:?}");
    assert!(same_bytes(rebuilt.views(), incremental.views()));
    drop(rebuilt);
    let reopened = Projector::open(views_dir.path()).expect("reopen");
    assert_eq!(reopened.checkpoint(), Some(events - 1));
    assert!(
        same_bytes(reopened.views(), incremental.views()),
        "stored whole"
    );
    drop(reopened);

    append_unknown_event(&store).await;
    let fresh_dir = tempfile::tempdir().expect("dir");
    let mut projector = Projector::open(fresh_dir.path()).expect("open");
    let error = projector.catch_up(&store, |_| {}).await.expect_err("stops");
    let message = error.to_string();
    assert!(
        message.contains(&format!("position {events}")) && message.contains("OrderTeleported"),
        "{message}"
    );
    assert_eq!(projector.checkpoint(), Some(events - 1));
    assert!(same_bytes(projector.views(), incremental.views()));
}

/// Views stored from a longer log (another one, or this one before a restore from an older
/// backup) hold orders the log does not, and going on from their checkpoint would pass over
/// the events that take those positions: they are folded again from the log, and stored so.
#[tokio::test]
async fn views_past_the_end_of_the_log_are_folded_again_from_it() {
    let (_longer_log, views_dir, _longer, projector) = closed_orders_caught_up(5).await;
    assert_eq!(projector.checkpoint(), Some(19));
    drop(projector);
    // The restored log: two other orders, eight events.
    let (_log, store) = log_of_closed_orders([41, 42]).await;

    let mut projector = Projector::open(views_dir.path()).expect("open");
    let progress = projector.catch_up(&store, |_| {}).await.expect("catch up");
    assert_eq!(progress.checkpoint, Some(7));
    let expected = rebuilt_from_zero(&store).await;
    assert!(same_bytes(projector.views(), &expected));
    drop(projector);
    let reopened = Projector::open(views_dir.path()).expect("reopen");
    assert_eq!(reopened.checkpoint(), Some(7));
    assert!(same_bytes(reopened.views(), &expected));

    // New events at positions the old views had folded are folded, not passed over.
    run_order(&store, 43, closed_order(43, t0())).await;
    let mut projector = reopened;
    let progress = projector.catch_up(&store, |_| {}).await.expect("catch up");
    assert_eq!(progress.checkpoint, Some(11));
    assert!(same_bytes(
        projector.views(),
        &rebuilt_from_zero(&store).await
    ));
}

#[tokio::test]
async fn views_of_another_log_as_long_or_longer_are_folded_again_from_it() {
    for other_orders in [2, 3] {
        let (_first_log, views_dir, _first, projector) = closed_orders_caught_up(2).await;
        assert_eq!(projector.checkpoint(), Some(7));
        drop(projector);
        // Another log, with an event at the views' checkpoint: other orders.
        let (_log, store) = log_of_closed_orders(41..41 + other_orders).await;

        let mut projector = Projector::open(views_dir.path()).expect("open");
        let progress = projector.catch_up(&store, |_| {}).await.expect("catch up");
        assert_eq!(
            progress.applied,
            4 * other_orders as u64,
            "the whole log folded"
        );
        let expected = rebuilt_from_zero(&store).await;
        assert!(same_bytes(projector.views(), &expected));
        drop(projector);
        let reopened = Projector::open(views_dir.path()).expect("reopen");
        assert!(same_bytes(reopened.views(), &expected));
    }
}
