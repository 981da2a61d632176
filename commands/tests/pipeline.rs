//! The command pipeline against the real embedded store.

use chrono::{DateTime, Duration, TimeZone, Utc};
use ledger_commands::*;
use ledger_domain::*;
use ledger_store::*;
use std::sync::Arc;
use uuid::Uuid;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0)
        .single()
        .expect("instant")
}

fn user(n: u128) -> UserId {
    UserId(Uuid::from_u128(n))
}

fn eur(amount: &str) -> Money {
    Money::parse(amount, Currency::from_code("EUR").expect("EUR")).expect("amount")
}

struct Market {
    store: Arc<SqliteStore>,
    handler: CommandHandler,
    _dir: tempfile::TempDir,
}

impl Market {
    fn open() -> Market {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Arc::new(SqliteStore::open(dir.path()).expect("store"));
        let handler = CommandHandler::new(store.clone(), Policy::default());
        Market {
            store,
            handler,
            _dir: dir,
        }
    }

    /// An order placed by user 1 with seller 2 at `t0`.
    async fn placed_order(&self) -> OrderId {
        let order = OrderId(Uuid::new_v4());
        self.handler
            .handle(request(order, place(order, user(1), user(2), t0())))
            .await
            .expect("placed");
        order
    }

    async fn event_count(&self) -> usize {
        self.store
            .read_all(AllFrom::Start, Direction::Forwards, READ_EVENTS_MAX)
            .await
            .expect("read")
            .len()
    }
}

fn place(order: OrderId, buyer: UserId, seller: UserId, at: DateTime<Utc>) -> Command {
    Command::Place {
        by: Actor::new(Role::Buyer, buyer),
        at,
        order_id: order,
        seller,
        title: "A logo".into(),
        price: eur("100.00"),
        delivery_days: 5,
    }
}

/// The seller of `place` confirms, an hour after `t0`.
fn confirm() -> Command {
    Command::Confirm {
        by: Actor::new(Role::Seller, user(2)),
        at: t0() + Duration::hours(1),
    }
}

fn request(order: OrderId, command: Command) -> CommandRequest {
    CommandRequest::new(Uuid::new_v4(), order, command)
}

#[tokio::test]
async fn a_command_appends_its_events_with_who_and_which_command_in_the_metadata() {
    let market = Market::open();
    let order = OrderId(Uuid::new_v4());
    let mut req = request(order, place(order, user(1), user(2), t0()));
    req.correlation_id = Some(Uuid::from_u128(77));
    let outcome = market.handler.handle(req.clone()).await.expect("placed");
    assert_eq!((outcome.revision, outcome.position), (0, 0));
    assert_eq!(outcome.state.status(), Some(Status::Placed));
    let stored = market
        .store
        .read_stream(
            &stream_for(order),
            StreamFrom::Start,
            Direction::Forwards,
            10,
        )
        .await
        .expect("read");
    let (event, metadata) = decode(&stored[0]).expect("decodes");
    assert_eq!(event, outcome.events[0]);
    assert_eq!(stored[0].event_type, "OrderPlaced");
    assert_eq!(metadata.command_id, req.command_id);
    assert_eq!(metadata.correlation_id, Uuid::from_u128(77));
    assert_eq!(metadata.causation_id, req.command_id);
    assert_eq!(metadata.actor, Actor::new(Role::Buyer, user(1)));
    assert_eq!(order_of(&stored[0].stream).expect("order stream"), order);
}

/// The bound is an upper limit, not memory taken at once: any bound starts, and the cache
/// still keeps each order it is given.
#[tokio::test]
async fn a_state_cache_of_any_bound_starts_and_serves_commands() {
    let market = Market::open();
    let handler = CommandHandler::with_cache(market.store.clone(), Policy::default(), usize::MAX);
    let order = OrderId(Uuid::new_v4());
    handler
        .handle(request(order, place(order, user(1), user(2), t0())))
        .await
        .expect("placed");
    let confirm = confirm();
    let outcome = handler
        .handle(request(order, confirm))
        .await
        .expect("confirmed");
    assert_eq!(outcome.revision, 1);
    assert_eq!(
        handler.orders_loaded(),
        0,
        "the placed order was kept in the cache"
    );
}

#[tokio::test]
async fn the_same_command_id_twice_returns_the_first_outcome_and_appends_nothing() {
    let market = Market::open();
    let order = market.placed_order().await;
    let confirm = confirm();
    let req = request(order, confirm);
    let first = market.handler.handle(req.clone()).await.expect("confirmed");
    // The retry arrives later: its instant differs, its payload does not.
    let mut retry = req.clone();
    retry.command = Command::Confirm {
        by: Actor::new(Role::Seller, user(2)),
        at: t0() + Duration::hours(2),
    };
    let again = market.handler.handle(retry).await.expect("retry");
    assert!(again.replayed);
    assert_eq!(
        (again.revision, again.position, &again.events, &again.state),
        (first.revision, first.position, &first.events, &first.state)
    );
    assert_eq!(market.event_count().await, 2);
}

#[tokio::test]
async fn a_retried_command_is_recognised_after_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let order = OrderId(Uuid::new_v4());
    let req = request(order, place(order, user(1), user(2), t0()));
    let first = {
        let store = Arc::new(SqliteStore::open(dir.path()).expect("store"));
        let handler = CommandHandler::new(store.clone(), Policy::default());
        let outcome = handler.handle(req.clone()).await.expect("placed");
        store.close();
        outcome
    };
    let store = Arc::new(SqliteStore::open(dir.path()).expect("reopen"));
    let handler = CommandHandler::new(store.clone(), Policy::default());
    let again = handler.handle(req).await.expect("retry after restart");
    assert!(again.replayed);
    assert_eq!(again.events, first.events);
    let all = store
        .read_all(AllFrom::Start, Direction::Forwards, 10)
        .await
        .expect("read");
    assert_eq!(all.len(), 1);
}

#[tokio::test]
async fn a_command_id_reused_for_another_command_is_refused() {
    let market = Market::open();
    let order = OrderId(Uuid::new_v4());
    let req = request(order, place(order, user(1), user(2), t0()));
    market.handler.handle(req.clone()).await.expect("placed");
    let mut other = req.clone();
    other.command = Command::Cancel {
        by: Actor::new(Role::Buyer, user(1)),
        at: t0(),
        reason: "changed my mind".into(),
    };
    assert!(
        matches!(market.handler.handle(other).await, Err(CommandError::CommandIdReused(id)) if id == req.command_id)
    );
    assert_eq!(market.event_count().await, 1);
}

#[tokio::test]
async fn a_rejected_command_appends_nothing() {
    let market = Market::open();
    let order = OrderId(Uuid::new_v4());
    let deliver = Command::Deliver {
        by: Actor::new(Role::Seller, user(2)),
        at: t0(),
        message: String::new(),
    };
    let result = market.handler.handle(request(order, deliver)).await;
    assert!(matches!(
        result,
        Err(CommandError::Rejected(Rejection::OrderNotFound))
    ));
    market
        .handler
        .handle(request(order, place(order, user(1), user(2), t0())))
        .await
        .expect("placed");
    let close = Command::Close {
        by: Actor::new(Role::Buyer, user(1)),
        at: t0(),
    };
    assert!(matches!(
        market.handler.handle(request(order, close)).await,
        Err(CommandError::Rejected(_))
    ));
    assert_eq!(market.event_count().await, 1);
}

#[tokio::test]
async fn placing_an_order_another_instance_placed_is_refused_and_appends_nothing() {
    let market = Market::open();
    let order = market.placed_order().await;
    // A second instance has never seen the order: it takes the placement to be new, and the
    // log must set it right.
    let second = CommandHandler::new(market.store.clone(), Policy::default());
    let again = second
        .handle(request(order, place(order, user(3), user(4), t0())))
        .await;
    assert!(
        matches!(again, Err(CommandError::Rejected(Rejection::AlreadyPlaced))),
        "{again:?}"
    );
    assert_eq!(market.event_count().await, 1);
    assert_eq!(second.conflicts_retried(), 0, "a known order is not a race");
}

#[tokio::test]
async fn if_match_makes_a_command_conditional_on_the_orders_revision() {
    let market = Market::open();
    let order = market.placed_order().await;
    let confirm = || Command::Confirm {
        by: Actor::new(Role::Seller, user(2)),
        at: t0(),
    };
    let mut stale = request(order, confirm());
    stale.expected_revisions = vec![3];
    let refused = market.handler.handle(stale).await;
    assert!(
        matches!(&refused, Err(CommandError::StaleRevision { expected, actual: Some(0) }) if expected == &[3]),
        "{refused:?}"
    );
    let mut none_current = request(order, confirm());
    none_current.expected_revisions = vec![2, 1];
    let refused = market.handler.handle(none_current).await;
    assert_eq!(
        refused.map(|o| o.revision).map_err(|e| e.to_string()),
        Err("the order is at revision 0, not at any of the expected revisions 2, 1".to_owned())
    );
    // One of a list is enough (RFC 9110 §13.1.1).
    let mut current = request(order, confirm());
    current.expected_revisions = vec![4, 0];
    assert_eq!(
        market
            .handler
            .handle(current)
            .await
            .expect("confirmed")
            .revision,
        1
    );
}

/// A stale `If-Match` is news only to a caller who may act on the order: anyone else, or a
/// command on an order that does not exist, hears that instead, and nothing of a revision.
#[tokio::test]
async fn who_may_act_and_on_what_is_answered_before_a_stale_if_match() {
    let market = Market::open();
    let order = market.placed_order().await;
    let conditional = |order, command, expected| {
        let mut request = request(order, command);
        request.expected_revisions = vec![expected];
        market.handler.handle(request)
    };
    let confirm_as = |role, who| Command::Confirm {
        by: Actor::new(role, who),
        at: t0(),
    };
    for (order, command, said) in [
        (order, confirm_as(Role::Seller, user(9)), "not_a_party"),
        (
            order,
            confirm_as(Role::Finance, user(8)),
            "role_not_allowed",
        ),
        (OrderId(Uuid::new_v4()), confirm(), "order_not_found"),
    ] {
        match conditional(order, command, 3).await {
            Err(CommandError::Rejected(rejection)) => assert_eq!(rejection.code(), said),
            other => panic!("{said}: {other:?}"),
        }
    }
    // The party hears that the order moved on, even where its state would refuse the
    // command too: what they read is out of date, whatever they asked.
    let buyer_closes = Command::Close {
        by: Actor::new(Role::Buyer, user(1)),
        at: t0(),
    };
    let refused = conditional(order, buyer_closes, 3).await;
    assert!(
        matches!(
            &refused,
            Err(CommandError::StaleRevision { expected, actual: Some(0) }) if expected == &[3]
        ),
        "{refused:?}"
    );
    assert_eq!(market.event_count().await, 1);
}

#[tokio::test]
async fn a_place_whose_order_id_differs_from_its_target_is_refused() {
    let market = Market::open();
    let order = OrderId(Uuid::new_v4());
    let other = OrderId(Uuid::new_v4());
    let result = market
        .handler
        .handle(request(order, place(other, user(1), user(2), t0())))
        .await;
    assert!(matches!(result, Err(CommandError::OrderIdMismatch)));
}

#[tokio::test]
async fn a_handler_with_a_stale_cache_rereads_and_redecides() {
    let market = Market::open();
    let second = CommandHandler::new(market.store.clone(), Policy::default());
    let order = market.placed_order().await;
    // `second` caches the order at revision 0…
    let extend = Command::Confirm {
        by: Actor::new(Role::Seller, user(2)),
        at: t0() + Duration::hours(1),
    };
    second
        .handle(request(order, extend))
        .await
        .expect("confirmed by the second instance");
    // …while the first still holds revision 0: its append conflicts, it re-reads and decides again.
    let deliver = Command::Deliver {
        by: Actor::new(Role::Seller, user(2)),
        at: t0() + Duration::hours(2),
        message: "done".into(),
    };
    let outcome = market
        .handler
        .handle(request(order, deliver))
        .await
        .expect("delivered after re-read");
    assert_eq!(outcome.revision, 2);
    assert_eq!(outcome.state.status(), Some(Status::Delivered));
}

#[tokio::test]
async fn an_order_commanded_in_turn_through_one_handler_never_races_itself() {
    let market = Market::open();
    let order = OrderId(Uuid::new_v4());
    let seller = Actor::new(Role::Seller, user(2));
    let placed = market
        .handler
        .handle(request(order, place(order, user(1), user(2), t0())))
        .await
        .expect("placed");
    let confirm = request(
        order,
        Command::Confirm {
            by: seller,
            at: t0() + Duration::hours(1),
        },
    );
    let confirmed = market
        .handler
        .handle(confirm.clone())
        .await
        .expect("confirmed");
    let delivered = market
        .handler
        .handle(request(
            order,
            Command::Deliver {
                by: seller,
                at: t0() + Duration::hours(2),
                message: "done".into(),
            },
        ))
        .await
        .expect("delivered");
    assert_eq!(
        (placed.revision, confirmed.revision, delivered.revision),
        (0, 1, 2)
    );
    // Each command found the order where the previous one left it, with no lost race.
    assert_eq!(market.handler.conflicts_retried(), 0);
    // What an outcome reported is not changed by the commands after it.
    assert_eq!(placed.state.status(), Some(Status::Placed));
    assert_eq!(confirmed.state.status(), Some(Status::InProgress));
    assert_eq!(delivered.state.status(), Some(Status::Delivered));
    // The order's remembered commands include the latest: a retry of the confirmation is
    // answered as it was, after the order moved on.
    let again = market.handler.handle(confirm).await.expect("retry");
    assert!(again.replayed);
    assert_eq!((again.revision, &again.state), (1, &confirmed.state));
    assert_eq!(market.event_count().await, 3);
}
