//! `Streams.Read`: reads of a stream or `$all` with a count, and catch-up subscriptions, with
//! EventStoreDB's semantics for where each starts.
//!
//! - A stream read starts at its revision, inclusive, in both directions.
//! - `$all` forwards starts at its position, inclusive; backwards, before it (exclusive).
//! - A subscription starts after its revision or position; it sends a confirmation, the events
//!   caught up, `CaughtUp`, then live events. A filtered `$all` subscription also sends a
//!   checkpoint after every `window × multiplier` events looked at, matched or not.

use super::convert::{self, UuidFormat};
use super::proto::event_store::client::streams::{self, read_req, read_resp, ReadResp};
use crate::types::*;
use crate::{EventStore, StoreError};
use fancy_regex::Regex;
use std::sync::Arc;
use tokio::sync::mpsc;
use tonic::Status;

/// Replies buffered per read before the reader waits for the client.
pub(super) const READ_REPLIES_BUFFERED_MAX: usize = 256;
/// Longest filter regex, in bytes; prefixes per filter.
const FILTER_REGEX_BYTES_MAX: usize = 1_024;
const FILTER_PREFIXES_MAX: usize = 256;
/// Events looked at between two checkpoints when the filter names no window.
const CHECKPOINT_INTERVAL_DEFAULT: u64 = 32;

pub(super) type Replies = mpsc::Sender<Result<ReadResp, Status>>;

/// A read request, checked.
pub(super) struct ReadPlan {
    target: Target,
    direction: Direction,
    /// `None` for a subscription.
    count: Option<u64>,
    filter: Option<Filter>,
    uuid_format: UuidFormat,
}

enum Target {
    Stream(
        StreamName,
        read_req::options::stream_options::RevisionOption,
    ),
    All(read_req::options::all_options::AllOption),
}

struct Filter {
    on_stream: bool,
    matcher: Matcher,
    checkpoint_interval: u64,
}

enum Matcher {
    Prefixes(Vec<String>),
    /// With look-around, as EventStoreDB's .NET expressions have: the clients' default filter
    /// that leaves out system events is `^(?!\$)`-shaped.
    Regex(Regex),
}

impl Filter {
    fn matches(&self, event: &RecordedEvent) -> Result<bool, Stop> {
        let subject = if self.on_stream {
            event.stream.as_str()
        } else {
            &event.event_type
        };
        match &self.matcher {
            Matcher::Prefixes(prefixes) => {
                Ok(prefixes.iter().any(|p| subject.starts_with(p.as_str())))
            }
            // Only a pattern that backtracks past fancy-regex's limit fails here; the read
            // ends with the reason rather than pass an event over unseen.
            Matcher::Regex(regex) => regex.is_match(subject).map_err(|e| {
                Stop::Failed(convert::invalid_argument(format!(
                    "the filter regex cannot be matched against {subject:?}: {e}"
                )))
            }),
        }
    }
}

/// A read of a stream whose name starts with `$` (`$$order-…`, a stream's metadata; `$et-…`,
/// `$ce-…`): the store holds none, so a counted read answers `StreamNotFound`, as a
/// KurrentDB node without server projections does (clients read a stream's metadata so, and
/// take not-found as none). A subscription to one could never deliver: it is refused.
pub(super) fn of_a_reserved_stream(
    request: &streams::ReadReq,
) -> Result<Option<read_resp::Content>, Status> {
    use read_req::options::{CountOption, StreamOption};
    let Some(options) = &request.options else {
        return Ok(None);
    };
    let Some(StreamOption::Stream(stream)) = &options.stream_option else {
        return Ok(None);
    };
    let Some(identifier) = &stream.stream_identifier else {
        return Ok(None);
    };
    if !identifier.stream_name.starts_with(b"$") {
        return Ok(None);
    }
    match options.count_option {
        Some(CountOption::Subscription(_)) => Err(convert::invalid_argument(
            "no stream whose name starts with `$` is stored here: system streams come from \
             server projections, which this node does not run; filter `$all` instead",
        )),
        _ => Ok(Some(read_resp::Content::StreamNotFound(
            read_resp::StreamNotFound {
                stream_identifier: Some(identifier.clone()),
            },
        ))),
    }
}

impl ReadPlan {
    pub(super) fn is_subscription(&self) -> bool {
        self.count.is_none()
    }

    pub(super) fn new(request: streams::ReadReq) -> Result<ReadPlan, Status> {
        use read_req::options::{CountOption, FilterOption, StreamOption};
        let options = request
            .options
            .ok_or_else(|| convert::invalid_argument("a read needs options"))?;
        let direction = match read_req::options::ReadDirection::try_from(options.read_direction) {
            Ok(read_req::options::ReadDirection::Forwards) => Direction::Forwards,
            Ok(read_req::options::ReadDirection::Backwards) => Direction::Backwards,
            Err(_) => return Err(convert::invalid_argument("unknown read direction")),
        };
        let target = match options.stream_option {
            Some(StreamOption::Stream(stream)) => {
                let name = convert::stream_name(stream.stream_identifier.as_ref())?;
                let from = stream
                    .revision_option
                    .ok_or_else(|| convert::invalid_argument("a stream read needs a revision"))?;
                Target::Stream(name, from)
            }
            Some(StreamOption::All(all)) => Target::All(
                all.all_option
                    .ok_or_else(|| convert::invalid_argument("an $all read needs a position"))?,
            ),
            None => return Err(convert::invalid_argument("a read needs a stream or $all")),
        };
        let count = match options.count_option {
            Some(CountOption::Count(n)) => Some(n),
            Some(CountOption::Subscription(_)) => None,
            None => {
                return Err(convert::invalid_argument(
                    "a read needs a count or a subscription",
                ))
            }
        };
        if count.is_none() && direction == Direction::Backwards {
            return Err(convert::invalid_argument("subscriptions go forwards"));
        }
        let filter = match options.filter_option {
            Some(FilterOption::Filter(filter)) => Some(filter_of(filter)?),
            Some(FilterOption::NoFilter(_)) | None => None,
        };
        if filter.is_some() && matches!(target, Target::Stream(..)) {
            return Err(convert::invalid_argument("filters apply to $all only"));
        }
        let uuid_format = match options.uuid_option.and_then(|o| o.content) {
            Some(read_req::options::uuid_option::Content::Structured(_)) => UuidFormat::Structured,
            _ => UuidFormat::String,
        };
        Ok(ReadPlan {
            target,
            direction,
            count,
            filter,
            uuid_format,
        })
    }

    /// Sends the replies until done or until the client goes away.
    pub(super) async fn run(
        self,
        store: Arc<dyn EventStore>,
        replies: Replies,
        mut closing: tokio::sync::watch::Receiver<bool>,
    ) {
        let work = async {
            match self.count {
                Some(count) => self.read(&*store, count, &replies).await,
                None => self.subscribe(&*store, &replies).await,
            }
        };
        let outcome = tokio::select! {
            outcome = work => outcome,
            _ = closing.wait_for(|closing| *closing) => {
                Err(Stop::Failed(Status::unavailable("the node is shutting down")))
            }
        };
        if let Err(Stop::Failed(status)) = outcome {
            let _ = replies.send(Err(status)).await;
        }
    }

    async fn read(
        &self,
        store: &dyn EventStore,
        count: u64,
        replies: &Replies,
    ) -> Result<(), Stop> {
        let mut remaining = count;
        let mut cursor = match self.first_read(store).await? {
            Some(cursor) => cursor,
            None => return Ok(()),
        };
        while remaining > 0 {
            let max = remaining.min(READ_EVENTS_MAX as u64) as usize;
            let page = match cursor.read(store, self.direction, max).await {
                Err(StoreError::StreamNotFound(stream)) => {
                    let not_found = read_resp::StreamNotFound {
                        stream_identifier: Some(convert::stream_identifier(&stream)),
                    };
                    return send(replies, read_resp::Content::StreamNotFound(not_found)).await;
                }
                other => other.map_err(|e| Stop::Failed(convert::status_of(e)))?,
            };
            let full = page.len() == max;
            for event in &page {
                if let Some(filter) = &self.filter {
                    if !filter.matches(event)? {
                        continue;
                    }
                }
                self.send_event(replies, event).await?;
                remaining -= 1;
                if remaining == 0 {
                    break;
                }
            }
            match page.last() {
                Some(last) if full && cursor.advance(last, self.direction) => {}
                _ => return Ok(()),
            }
        }
        Ok(())
    }

    /// Where a counted read starts; `None` when it cannot return anything.
    async fn first_read(&self, store: &dyn EventStore) -> Result<Option<Cursor>, Stop> {
        use read_req::options::all_options::AllOption;
        use read_req::options::stream_options::RevisionOption;
        let backwards = self.direction == Direction::Backwards;
        Ok(match &self.target {
            Target::Stream(stream, from) => {
                let from = match from {
                    RevisionOption::Revision(r) => StreamFrom::Revision(*r),
                    RevisionOption::Start(_) => StreamFrom::Start,
                    RevisionOption::End(_) => StreamFrom::End,
                };
                let cursor = Cursor::Stream(stream.clone(), from);
                // Forwards from the end reads nothing, but a missing stream is still reported.
                if from == StreamFrom::End && !backwards {
                    return match store
                        .read_stream(stream, from, Direction::Backwards, 1)
                        .await
                    {
                        Err(StoreError::StreamNotFound(_)) => Ok(Some(cursor)),
                        Err(e) => Err(Stop::Failed(convert::status_of(e))),
                        Ok(_) => Ok(None),
                    };
                }
                Some(cursor)
            }
            Target::All(from) => match (from, backwards) {
                (AllOption::Start(_), false) => Some(Cursor::All(AllFrom::Start)),
                (AllOption::End(_), false) | (AllOption::Start(_), true) => None,
                (AllOption::End(_), true) => Some(Cursor::All(AllFrom::End)),
                (AllOption::Position(p), false) => {
                    Some(Cursor::All(AllFrom::Position(p.commit_position)))
                }
                (AllOption::Position(p), true) => p
                    .commit_position
                    .checked_sub(1)
                    .map(|before| Cursor::All(AllFrom::Position(before))),
            },
        })
    }

    async fn subscribe(&self, store: &dyn EventStore, replies: &Replies) -> Result<(), Stop> {
        let confirmation = read_resp::SubscriptionConfirmation {
            subscription_id: uuid::Uuid::new_v4().to_string(),
        };
        send(replies, read_resp::Content::Confirmation(confirmation)).await?;
        let mut last = self.subscription_start(store).await?;
        let mut looked_at = 0u64;
        // Catch up by reading, so that the client is told when it has caught up.
        loop {
            let page = self
                .catch_up_page(store, last)
                .await
                .map_err(|e| Stop::Failed(convert::status_of(e)))?;
            let Some(end) = page.last() else { break };
            let next_last = Some(self.key(end));
            for event in &page {
                self.deliver(replies, event, &mut looked_at).await?;
            }
            last = next_last;
            if page.len() < crate::CATCH_UP_PAGE_EVENTS {
                break;
            }
        }
        send(
            replies,
            read_resp::Content::CaughtUp(read_resp::CaughtUp {}),
        )
        .await?;
        let from = last.map_or(SubscribeFrom::Start, SubscribeFrom::After);
        let mut live = match &self.target {
            Target::Stream(stream, _) => store.subscribe_stream(stream, from).await,
            Target::All(_) => store.subscribe_all(from).await,
        }
        .map_err(|e| Stop::Failed(convert::status_of(e)))?;
        loop {
            tokio::select! {
                event = live.next() => {
                    let event = event.map_err(|e| Stop::Failed(convert::status_of(e)))?;
                    self.deliver(replies, &event, &mut looked_at).await?;
                }
                () = replies.closed() => return Err(Stop::ClientGone),
            }
        }
    }

    /// The key (revision or position) after which a subscription starts.
    async fn subscription_start(&self, store: &dyn EventStore) -> Result<Option<u64>, Stop> {
        use read_req::options::all_options::AllOption;
        use read_req::options::stream_options::RevisionOption;
        let failed = |e| Stop::Failed(convert::status_of(e));
        Ok(match &self.target {
            Target::Stream(_, RevisionOption::Start(_)) | Target::All(AllOption::Start(_)) => None,
            Target::Stream(_, RevisionOption::Revision(r)) => Some(*r),
            // On KurrentDB no event of a user's is at commit position 0 (its log starts with
            // records of its own), so clients resume "after 0" to start from the beginning
            // (Python's `subscribe_to_all(commit_position=0)`). The store's first event is at
            // 0: it is sent too, once more to a subscriber that saw it, rather than never to
            // one that did not.
            Target::All(AllOption::Position(p)) if p.commit_position == 0 => None,
            Target::All(AllOption::Position(p)) => {
                let head = store.last_position().await.map_err(failed)?;
                if head.is_none_or(|head| p.commit_position > head) {
                    return Err(Stop::Failed(convert::invalid_position(
                        p.commit_position,
                        head,
                    )));
                }
                Some(p.commit_position)
            }
            Target::Stream(stream, RevisionOption::End(_)) => {
                match store
                    .read_stream(stream, StreamFrom::End, Direction::Backwards, 1)
                    .await
                {
                    Err(StoreError::StreamNotFound(_)) => None,
                    other => other.map_err(failed)?.first().map(|e| e.revision),
                }
            }
            Target::All(AllOption::End(_)) => store.last_position().await.map_err(failed)?,
        })
    }

    async fn catch_up_page(
        &self,
        store: &dyn EventStore,
        last: Option<u64>,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let next = last.map_or(0, |k| k + 1);
        let max = crate::CATCH_UP_PAGE_EVENTS;
        match &self.target {
            Target::Stream(stream, _) => {
                match store
                    .read_stream(stream, StreamFrom::Revision(next), Direction::Forwards, max)
                    .await
                {
                    Err(StoreError::StreamNotFound(_)) => Ok(Vec::new()),
                    other => other,
                }
            }
            Target::All(_) => {
                store
                    .read_all(AllFrom::Position(next), Direction::Forwards, max)
                    .await
            }
        }
    }

    fn key(&self, event: &RecordedEvent) -> u64 {
        match self.target {
            Target::Stream(..) => event.revision,
            Target::All(_) => event.position,
        }
    }

    /// Sends `event` if the filter takes it, and a checkpoint when one is due.
    async fn deliver(
        &self,
        replies: &Replies,
        event: &RecordedEvent,
        looked_at: &mut u64,
    ) -> Result<(), Stop> {
        let Some(filter) = &self.filter else {
            return self.send_event(replies, event).await;
        };
        if filter.matches(event)? {
            self.send_event(replies, event).await?;
        }
        *looked_at += 1;
        if looked_at.is_multiple_of(filter.checkpoint_interval) {
            let checkpoint = read_resp::Checkpoint {
                commit_position: event.position,
                prepare_position: event.position,
            };
            send(replies, read_resp::Content::Checkpoint(checkpoint)).await?;
        }
        Ok(())
    }

    async fn send_event(&self, replies: &Replies, event: &RecordedEvent) -> Result<(), Stop> {
        let event = convert::read_event(event, self.uuid_format);
        send(replies, read_resp::Content::Event(event)).await
    }
}

/// Where the next page of a counted read starts.
enum Cursor {
    Stream(StreamName, StreamFrom),
    All(AllFrom),
}

impl Cursor {
    async fn read(
        &self,
        store: &dyn EventStore,
        direction: Direction,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        match self {
            Cursor::Stream(stream, from) => store.read_stream(stream, *from, direction, max).await,
            Cursor::All(from) => store.read_all(*from, direction, max).await,
        }
    }

    /// Moves past `last`; false when there is nothing beyond it.
    fn advance(&mut self, last: &RecordedEvent, direction: Direction) -> bool {
        let step = |key: u64| match direction {
            Direction::Forwards => key.checked_add(1),
            Direction::Backwards => key.checked_sub(1),
        };
        match self {
            Cursor::Stream(_, from) => step(last.revision).map(|r| *from = StreamFrom::Revision(r)),
            Cursor::All(from) => step(last.position).map(|p| *from = AllFrom::Position(p)),
        }
        .is_some()
    }
}

/// Why a read stopped early.
enum Stop {
    ClientGone,
    Failed(Status),
}

async fn send(replies: &Replies, content: read_resp::Content) -> Result<(), Stop> {
    replies
        .send(Ok(ReadResp {
            content: Some(content),
        }))
        .await
        .map_err(|_| Stop::ClientGone)
}

fn filter_of(options: read_req::options::FilterOptions) -> Result<Filter, Status> {
    use read_req::options::filter_options::{Filter as Kind, Window};
    let (on_stream, expression) = match options.filter {
        Some(Kind::StreamIdentifier(e)) => (true, e),
        Some(Kind::EventType(e)) => (false, e),
        None => return Err(convert::invalid_argument("a filter needs an expression")),
    };
    let matcher = if !expression.prefix.is_empty() {
        if expression.prefix.len() > FILTER_PREFIXES_MAX {
            return Err(convert::invalid_argument(format!(
                "a filter takes at most {FILTER_PREFIXES_MAX} prefixes"
            )));
        }
        Matcher::Prefixes(expression.prefix)
    } else if !expression.regex.is_empty() {
        if expression.regex.len() > FILTER_REGEX_BYTES_MAX {
            return Err(convert::invalid_argument(format!(
                "a filter regex is at most {FILTER_REGEX_BYTES_MAX} bytes"
            )));
        }
        let regex = Regex::new(&expression.regex)
            .map_err(|e| convert::invalid_argument(format!("bad filter regex: {e}")))?;
        Matcher::Regex(regex)
    } else {
        return Err(convert::invalid_argument(
            "a filter needs a prefix or a regex",
        ));
    };
    let window = match options.window {
        Some(Window::Max(max)) if max > 0 => u64::from(max),
        _ => CHECKPOINT_INTERVAL_DEFAULT,
    };
    let multiplier = u64::from(options.checkpoint_interval_multiplier.max(1));
    Ok(Filter {
        on_stream,
        matcher,
        checkpoint_interval: window.saturating_mul(multiplier),
    })
}
