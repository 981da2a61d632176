//! Catch-up-then-live subscriptions over any store that can read and publish its commits.
//!
//! The live feed is joined *before* the first read, so every event committed after that is in
//! the feed and every event before it is in the reads; overlap is dropped by key (position or
//! revision). A gap in the feed (a lagging receiver) falls back to reading, so delivery is
//! always gapless, duplicate-free and in commit order.

use crate::error::StoreError;
use crate::store::{EventStore, Subscription};
use crate::types::*;
use async_trait::async_trait;
use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

/// Events read per catch-up page.
pub const CATCH_UP_PAGE_EVENTS: usize = 1_000;

/// One committed group of appends, in commit order.
pub type CommittedBatch = Arc<[RecordedEvent]>;

/// Where a store publishes its commits: whole to `$all`'s subscribers, and to a stream's
/// subscribers only its own events, so that a commit wakes only the subscribers it concerns.
pub(crate) struct LiveFeed {
    all: broadcast::Sender<CommittedBatch>,
    streams: Mutex<StreamFeeds>,
    capacity: usize,
}

#[derive(Default)]
struct StreamFeeds {
    senders: HashMap<StreamName, broadcast::Sender<CommittedBatch>>,
    /// How many senders the last sweep of abandoned ones left: the next sweep waits until
    /// there are twice as many, so that sweeping costs each subscription O(1).
    swept_to: usize,
}

impl LiveFeed {
    /// Each subscriber may fall `capacity` commits behind before it re-reads from the store.
    pub(crate) fn new(capacity: usize) -> LiveFeed {
        let capacity = capacity.max(1);
        LiveFeed {
            all: broadcast::channel(capacity).0,
            streams: Mutex::default(),
            capacity,
        }
    }

    pub(crate) fn subscribe_all(&self) -> broadcast::Receiver<CommittedBatch> {
        self.all.subscribe()
    }

    pub(crate) fn subscribe_stream(
        &self,
        stream: &StreamName,
    ) -> Result<broadcast::Receiver<CommittedBatch>, StoreError> {
        let mut feeds = self.streams.lock().map_err(|_| StoreError::Closed)?;
        // Streams whose subscribers all left, and that no commit has touched since.
        if feeds.senders.len() >= (2 * feeds.swept_to).max(64) {
            feeds
                .senders
                .retain(|_, sender| sender.receiver_count() > 0);
            feeds.swept_to = feeds.senders.len();
        }
        let sender = feeds
            .senders
            .entry(stream.clone())
            .or_insert_with(|| broadcast::channel(self.capacity).0);
        Ok(sender.subscribe())
    }

    /// Called once a commit is durable and readable, before its appends are acknowledged.
    pub(crate) fn publish(&self, committed: Vec<RecordedEvent>) {
        let committed: CommittedBatch = committed.into();
        if let Ok(mut feeds) = self.streams.lock() {
            if !feeds.senders.is_empty() {
                let mut own: HashMap<&StreamName, Vec<RecordedEvent>> = HashMap::new();
                for event in committed.iter() {
                    if feeds.senders.contains_key(&event.stream) {
                        own.entry(&event.stream).or_default().push(event.clone());
                    }
                }
                for (stream, events) in own {
                    let abandoned = feeds
                        .senders
                        .get(stream)
                        .is_some_and(|sender| sender.send(events.into()).is_err());
                    if abandoned {
                        feeds.senders.remove(stream);
                    }
                }
            }
        }
        // No subscriber is not an error.
        let _ = self.all.send(committed);
    }
}

#[derive(Clone, Debug)]
pub(crate) enum Target {
    All,
    Stream(StreamName),
}

pub(crate) struct CatchUp<S> {
    store: S,
    target: Target,
    live: broadcast::Receiver<CommittedBatch>,
    buffer: VecDeque<RecordedEvent>,
    /// Key (position or revision) of the last event delivered or skipped by the checkpoint.
    last: Option<u64>,
    caught_up: bool,
}

impl<S: EventStore + Clone> CatchUp<S> {
    pub(crate) async fn start(
        store: S,
        target: Target,
        live: broadcast::Receiver<CommittedBatch>,
        from: SubscribeFrom,
    ) -> Result<CatchUp<S>, StoreError> {
        let last = match from {
            SubscribeFrom::Start => None,
            SubscribeFrom::After(key) => Some(key),
            SubscribeFrom::End => current_end(&store, &target).await?,
        };
        Ok(CatchUp {
            store,
            target,
            live,
            buffer: VecDeque::new(),
            last,
            caught_up: false,
        })
    }

    fn key(&self, event: &RecordedEvent) -> Option<u64> {
        match &self.target {
            Target::All => Some(event.position),
            Target::Stream(stream) if *stream == event.stream => Some(event.revision),
            Target::Stream(_) => None,
        }
    }

    fn next_key(&self) -> u64 {
        self.last.map_or(0, |k| k + 1)
    }

    async fn read_page(&mut self) -> Result<(), StoreError> {
        let from = self.next_key();
        let page = match &self.target {
            Target::All => {
                self.store
                    .read_all(
                        AllFrom::Position(from),
                        Direction::Forwards,
                        CATCH_UP_PAGE_EVENTS,
                    )
                    .await?
            }
            Target::Stream(stream) => match self
                .store
                .read_stream(
                    stream,
                    StreamFrom::Revision(from),
                    Direction::Forwards,
                    CATCH_UP_PAGE_EVENTS,
                )
                .await
            {
                Err(StoreError::StreamNotFound(_)) => Vec::new(),
                other => other?,
            },
        };
        if page.is_empty() {
            self.caught_up = true;
        }
        for event in page {
            self.accept(Cow::Owned(event));
        }
        Ok(())
    }

    /// Queues `event` if it is the next one; false on a gap. It is copied only if queued:
    /// every subscriber sees every commit of the live feed, and a stream's keeps few events.
    fn accept(&mut self, event: Cow<'_, RecordedEvent>) -> bool {
        let Some(key) = self.key(&event) else {
            return true;
        };
        if self.last.is_some_and(|last| key <= last) {
            return true;
        }
        if key != self.next_key() {
            return false;
        }
        self.last = Some(key);
        self.buffer.push_back(event.into_owned());
        true
    }

    async fn receive_live(&mut self) -> Result<(), StoreError> {
        match self.live.recv().await {
            Ok(batch) => self.accept_live(&batch),
            Err(broadcast::error::RecvError::Lagged(_)) => self.caught_up = false,
            Err(broadcast::error::RecvError::Closed) => return Err(StoreError::Closed),
        }
        Ok(())
    }

    /// Queues a commit from the live feed; a gap sends the subscription back to reading.
    fn accept_live(&mut self, batch: &CommittedBatch) {
        for event in batch.iter() {
            if !self.accept(Cow::Borrowed(event)) {
                self.caught_up = false;
                break;
            }
        }
    }
}

async fn current_end<S: EventStore>(store: &S, target: &Target) -> Result<Option<u64>, StoreError> {
    let last = match target {
        Target::All => {
            store
                .read_all(AllFrom::End, Direction::Backwards, 1)
                .await?
        }
        Target::Stream(stream) => match store
            .read_stream(stream, StreamFrom::End, Direction::Backwards, 1)
            .await
        {
            Err(StoreError::StreamNotFound(_)) => Vec::new(),
            other => other?,
        },
    };
    Ok(last.first().map(|e| match target {
        Target::All => e.position,
        Target::Stream(_) => e.revision,
    }))
}

#[async_trait]
impl<S: EventStore + Clone> Subscription for CatchUp<S> {
    async fn next(&mut self) -> Result<RecordedEvent, StoreError> {
        loop {
            if let Some(event) = self.buffer.pop_front() {
                return Ok(event);
            }
            if self.caught_up {
                self.receive_live().await?;
            } else {
                self.read_page().await?;
            }
        }
    }

    fn next_ready(&mut self) -> Option<Result<RecordedEvent, StoreError>> {
        use broadcast::error::TryRecvError;
        loop {
            if let Some(event) = self.buffer.pop_front() {
                return Some(Ok(event));
            }
            if !self.caught_up {
                return None;
            }
            match self.live.try_recv() {
                Ok(batch) => self.accept_live(&batch),
                Err(TryRecvError::Lagged(_)) => self.caught_up = false,
                Err(TryRecvError::Empty) => return None,
                Err(TryRecvError::Closed) => return Some(Err(StoreError::Closed)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(name: &str) -> StreamName {
        StreamName::new(name).expect("stream name")
    }

    /// A service whose pages follow one order each, for a while, then leave.
    #[test]
    fn streams_whose_subscribers_left_are_forgotten() {
        let feed = LiveFeed::new(4);
        for i in 0..1_000 {
            drop(feed.subscribe_stream(&stream(&format!("order-{i}"))));
        }
        let kept = feed
            .subscribe_stream(&stream("order-kept"))
            .expect("subscribe");
        let held = |feed: &LiveFeed| feed.streams.lock().map(|f| f.senders.len()).unwrap_or(0);
        assert!(held(&feed) < 130, "{} senders held", held(&feed));
        for i in 0..1_000 {
            drop(feed.subscribe_stream(&stream(&format!("order-again-{i}"))));
        }
        assert!(held(&feed) < 130, "{} senders held", held(&feed));
        assert_eq!(kept.len(), 0, "the live one is still subscribed");
        let event = RecordedEvent {
            stream: stream("order-kept"),
            revision: 0,
            position: 0,
            event_id: uuid::Uuid::nil(),
            event_type: "Tested".into(),
            data: b"{}".to_vec(),
            metadata: b"{}".to_vec(),
            recorded_at: chrono::DateTime::UNIX_EPOCH,
        };
        feed.publish(vec![event]);
        assert_eq!(kept.len(), 1, "its stream's commit reached it");
    }
}
