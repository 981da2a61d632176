use crate::error::StoreError;
use crate::types::*;
use async_trait::async_trait;

/// An event store in EventStoreDB's terms. It stores opaque events and knows nothing of orders.
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Appends atomically if `expected` holds. Appending event ids that are already in the
    /// stream at the revisions this append would give them returns the first result and
    /// writes nothing; a partial overlap is an error.
    async fn append(
        &self,
        stream: &StreamName,
        expected: ExpectedRevision,
        events: Vec<EventData>,
    ) -> Result<AppendResult, StoreError>;

    /// Appends one after another, in this order, each as `append` would, and stops at the
    /// first that fails: the appends before it are durable and none after it is made. A
    /// backend may commit several together (the embedded store does), so that loading a log,
    /// where consecutive events seldom share a stream, runs at the pace of its group commits
    /// rather than one durable commit an append.
    async fn append_in_order(&self, appends: Vec<Append>) -> Result<Vec<AppendResult>, StoreError> {
        let mut results = Vec::with_capacity(appends.len());
        for Append {
            stream,
            expected,
            events,
        } in appends
        {
            results.push(self.append(&stream, expected, events).await?);
        }
        Ok(results)
    }

    /// Up to `max` events of one stream from `from` (inclusive). A stream with no events is
    /// `StreamNotFound`.
    async fn read_stream(
        &self,
        stream: &StreamName,
        from: StreamFrom,
        direction: Direction,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Up to `max` events of `$all` from `from` (inclusive), in commit order.
    async fn read_all(
        &self,
        from: AllFrom,
        direction: Direction,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// The position of `$all`'s last event; none for an empty log.
    async fn last_position(&self) -> Result<Option<u64>, StoreError> {
        Ok(self
            .read_all(AllFrom::End, Direction::Backwards, 1)
            .await?
            .first()
            .map(|event| event.position))
    }

    /// Every event of `$all` after `from`: first the stored ones, then live ones as they
    /// commit, with no gap and no duplicate.
    async fn subscribe_all(&self, from: SubscribeFrom)
        -> Result<Box<dyn Subscription>, StoreError>;

    /// As `subscribe_all`, for one stream; `SubscribeFrom::After` takes a stream revision.
    async fn subscribe_stream(
        &self,
        stream: &StreamName,
        from: SubscribeFrom,
    ) -> Result<Box<dyn Subscription>, StoreError>;
}

/// The page of `$all` that starts at `position`: a forward scan's step.
pub async fn read_all_page(
    store: &dyn EventStore,
    position: u64,
) -> Result<Vec<RecordedEvent>, StoreError> {
    store
        .read_all(
            AllFrom::Position(position),
            Direction::Forwards,
            READ_EVENTS_MAX,
        )
        .await
}

/// `$all` read forwards a page at a time: the cursor of a scan of the whole log.
pub struct AllPages<'a> {
    store: &'a dyn EventStore,
    next: u64,
}

impl<'a> AllPages<'a> {
    pub fn from(store: &'a dyn EventStore, position: u64) -> AllPages<'a> {
        AllPages {
            store,
            next: position,
        }
    }

    /// The next page; none once the log has no more.
    pub async fn next(&mut self) -> Result<Option<Vec<RecordedEvent>>, StoreError> {
        let page = read_all_page(self.store, self.next).await?;
        let Some(last) = page.last() else {
            return Ok(None);
        };
        self.next = last.position + 1;
        Ok(Some(page))
    }
}

/// Pages a stage of [`fold_all`] may run ahead of the next one.
const STAGE_QUEUE_PAGES: usize = 4;

/// Folds `$all` from its start (up to `until`) into `state` in three stages that run at
/// once, each on a thread of its own: reading pages, `decode`-ing each, and `fold`-ing them
/// in order. Folding must stay sequential; the stages hand pages on through short queues,
/// so each goes on as soon as it can: in lockstep (every stage waiting at each page for the
/// slowest) a third of a core stayed idle. `on_progress` is told the events folded so far,
/// a page at a time. Returns `state` and the position and id of the last event folded.
pub async fn fold_all<S, D, E>(
    store: &dyn EventStore,
    until: Option<u64>,
    state: S,
    decode: fn(Vec<RecordedEvent>) -> Result<D, E>,
    fold: fn(&mut S, D),
    on_progress: &mut impl FnMut(u64),
) -> Result<(S, Option<(u64, uuid::Uuid)>), E>
where
    S: Send + 'static,
    D: Send + 'static,
    E: From<StoreError> + Send + 'static,
{
    let (pages_out, mut pages_in) =
        tokio::sync::mpsc::channel::<Vec<RecordedEvent>>(STAGE_QUEUE_PAGES);
    let (decoded_out, mut decoded_in) = tokio::sync::mpsc::channel::<(D, u64)>(STAGE_QUEUE_PAGES);
    let reading = async move {
        let mut last = None;
        let mut pages = AllPages::from(store, 0);
        while let Some(mut page) = pages.next().await? {
            if let Some(u) = until {
                page.retain(|e| e.position <= u);
            }
            let Some(end) = page.last().map(|e| (e.position, e.event_id)) else {
                break;
            };
            last = Some(end);
            if pages_out.send(page).await.is_err() || until.is_some_and(|u| end.0 >= u) {
                break;
            }
        }
        Ok::<_, StoreError>(last)
    };
    let decoding = async move {
        while let Some(page) = pages_in.recv().await {
            let events = page.len() as u64;
            let decoded = off_the_runtime(move || decode(page)).await??;
            if decoded_out.send((decoded, events)).await.is_err() {
                break;
            }
        }
        Ok::<_, E>(())
    };
    let folding = async {
        let (mut state, mut folded) = (state, 0);
        while let Some((decoded, events)) = decoded_in.recv().await {
            state = off_the_runtime(move || {
                fold(&mut state, decoded);
                state
            })
            .await?;
            folded += events;
            on_progress(folded);
        }
        Ok::<_, StoreError>(state)
    };
    let (last, decoded, folded) = tokio::join!(reading, decoding, folding);
    decoded?;
    let last = last?;
    Ok((folded?, last))
}

async fn off_the_runtime<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| StoreError::Io(format!("a stage folding the log stopped: {e}")))
}

/// Every event of `stream`, reading page after page; empty for a stream with no events.
pub async fn read_whole_stream(
    store: &dyn EventStore,
    stream: &StreamName,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let mut events: Vec<RecordedEvent> = Vec::new();
    loop {
        let from = events.last().map_or(0, |e| e.revision + 1);
        let page = match store
            .read_stream(
                stream,
                StreamFrom::Revision(from),
                Direction::Forwards,
                READ_EVENTS_MAX,
            )
            .await
        {
            Err(StoreError::StreamNotFound(_)) => Vec::new(),
            other => other?,
        };
        let full = page.len() == READ_EVENTS_MAX;
        events.extend(page);
        if !full {
            return Ok(events);
        }
    }
}

#[async_trait]
pub trait Subscription: Send {
    /// The next event, waiting for one to be appended if the subscription has caught up.
    async fn next(&mut self) -> Result<RecordedEvent, StoreError>;

    /// The next event if it is already at hand, without waiting or starting a read: how a
    /// consumer fills a batch after the event it waited for. `None` says only that nothing is
    /// at hand now; the events it hands out and `next`'s are one sequence.
    fn next_ready(&mut self) -> Option<Result<RecordedEvent, StoreError>>;

    /// Adds to `batch`, up to `max` events in all, what is at hand. On a failure the events
    /// taken before it stay in `batch`.
    fn take_ready(&mut self, batch: &mut Vec<RecordedEvent>, max: usize) -> Result<(), StoreError> {
        while batch.len() < max {
            match self.next_ready() {
                Some(event) => batch.push(event?),
                None => break,
            }
        }
        Ok(())
    }
}
