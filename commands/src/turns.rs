//! Commands on one order take turns within this process.
//!
//! Decided optimistically, a burst on one order (a tool and both parties at once) raced to
//! the same revision: each loser re-read and re-decided, and past 16 lost races a command
//! gave up with `TooMuchContention` (a 503 over HTTP). In turn, each is decided on the state
//! the one before it left. Other processes writing the same log still meet the
//! expected-revision check and its retries.

use ledger_domain::OrderId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

type Queue = Arc<tokio::sync::Mutex<()>>;

/// The orders with a command under way, each with the queue of those waiting for it.
#[derive(Default)]
pub(crate) struct OrderTurns {
    queues: Mutex<HashMap<OrderId, Queue, foldhash::fast::RandomState>>,
}

/// An order's turn: held until dropped, then passed to the next command waiting, if any.
pub(crate) struct Turn<'a> {
    turns: &'a OrderTurns,
    order: OrderId,
    held: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl OrderTurns {
    pub(crate) async fn take(&self, order: OrderId) -> Turn<'_> {
        let queue = Arc::clone(
            self.queues
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(order)
                .or_default(),
        );
        // Created before the wait, so that a command dropped while waiting (its client gone)
        // still tidies the order's queue away.
        let mut turn = Turn {
            turns: self,
            order,
            held: None,
        };
        turn.held = Some(queue.lock_owned().await);
        turn
    }

    #[cfg(test)]
    fn queued_orders(&self) -> usize {
        self.queues
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let mut queues = self
            .turns
            .queues
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.held = None;
        // Clones are taken under this lock, so a count of one (the map's) means that no
        // command holds or awaits this order's turn.
        if queues
            .get(&self.order)
            .is_some_and(|queue| Arc::strong_count(queue) == 1)
        {
            queues.remove(&self.order);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use uuid::Uuid;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_command_at_a_time_per_order_and_nothing_kept_after() {
        let turns = Arc::new(OrderTurns::default());
        let busy = Arc::new(AtomicUsize::new(0));
        let order = OrderId(Uuid::from_u128(7));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..32 {
            let (turns, busy) = (Arc::clone(&turns), Arc::clone(&busy));
            tasks.spawn(async move {
                let _turn = turns.take(order).await;
                assert_eq!(busy.fetch_add(1, Ordering::SeqCst), 0, "two at once");
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                busy.fetch_sub(1, Ordering::SeqCst);
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.expect("a turn");
        }
        assert_eq!(turns.queued_orders(), 0);

        // Another order's turn does not wait for this one's.
        let _held = turns.take(order).await;
        let other = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            turns.take(OrderId(Uuid::from_u128(8))),
        )
        .await;
        assert!(other.is_ok(), "another order waited");
        drop(other);
        // A command dropped while waiting leaves nothing behind once the holder is done.
        let waiting =
            tokio::time::timeout(std::time::Duration::from_millis(20), turns.take(order)).await;
        assert!(waiting.is_err(), "the order's turn is held");
        drop(_held);
        assert_eq!(turns.queued_orders(), 0);
    }
}
