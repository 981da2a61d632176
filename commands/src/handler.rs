//! load → decide → append, with optimistic concurrency, idempotency by command id, and a
//! bounded cache of recent order states.

use crate::codec::{self, DecodeError};
use crate::turns::OrderTurns;
use ledger_domain::chrono::DateTime;
use ledger_domain::{
    decide, Command, Event, EventMetadata, OrderId, OrderState, Policy, Rejection,
    EVENT_SCHEMA_VERSION,
};
use ledger_store::{
    read_whole_stream, AppendResult, EventData, EventStore, ExpectedRevision, RecordedEvent,
    StoreError, StreamName,
};
use lru::LruCache;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use uuid::Uuid;

/// Orders whose state is kept in memory between commands, ~1.2 KB each. A command on an
/// order not among them reads and folds its stream first, which made commands ~3 times as
/// costly once more orders were active than this (docs/performance.md).
pub const STATE_CACHE_ORDERS_DEFAULT: usize = 250_000;
/// Times a command is re-read and re-decided after losing a race for its order.
pub const CONFLICT_RETRIES_MAX: usize = 16;

/// A command with what the pipeline needs around it.
#[derive(Clone, Debug)]
pub struct CommandRequest {
    /// Identifies the request: handling the same id again returns the first outcome.
    pub command_id: Uuid,
    pub order_id: OrderId,
    pub command: Command,
    pub correlation_id: Option<Uuid>,
    pub causation_id: Option<Uuid>,
    /// `If-Match`: act only if the order is at one of these revisions (RFC 9110 allows a
    /// list); none, at any.
    pub expected_revisions: Vec<u64>,
}

impl CommandRequest {
    pub fn new(command_id: Uuid, order_id: OrderId, command: Command) -> CommandRequest {
        CommandRequest {
            command_id,
            order_id,
            command,
            correlation_id: None,
            causation_id: None,
            expected_revisions: Vec::new(),
        }
    }
}

/// What a handled command did.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    pub order_id: OrderId,
    /// The order stream's revision after the command's events.
    pub revision: u64,
    /// The `$all` position of the command's last event.
    pub position: u64,
    pub events: Vec<Event>,
    /// The order as the command left it.
    pub state: OrderState,
    /// True when this was a retry answered from the log, not a new decision.
    pub replayed: bool,
}

/// `the expected revision 3`, or `any of the expected revisions 3, 4`.
fn expected_text(expected: &[u64]) -> String {
    let list: Vec<String> = expected.iter().map(u64::to_string).collect();
    match list.as_slice() {
        [one] => format!("the expected revision {one}"),
        _ => format!("any of the expected revisions {}", list.join(", ")),
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    #[error(transparent)]
    Rejected(#[from] Rejection),
    #[error("the order is at {}, not at {}", actual.map_or("no revision".to_owned(), |r| format!("revision {r}")), expected_text(expected))]
    StaleRevision {
        expected: Vec<u64>,
        actual: Option<u64>,
    },
    #[error("command id {0} was already used for a different command")]
    CommandIdReused(Uuid),
    #[error("the command's order id differs from the order it is sent to")]
    OrderIdMismatch,
    #[error("gave up after {0} conflicting attempts on a busy order")]
    TooMuchContention(usize),
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where one command's events sit in its stream.
#[derive(Clone, Debug)]
struct CommandRecord {
    digest: String,
    first_revision: u64,
    last_revision: u64,
    position: u64,
}

/// Where a loaded state came from: only the log's is beyond doubt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    Log,
    Cache,
    /// A placement's order taken to be new without reading; the append's `NoStream` checks.
    Assumed,
}

/// A command decided against the order as loaded.
enum Decided {
    /// Its id is already in the stream: answer with the first outcome.
    Replay(CommandRecord),
    Append(Append),
}

struct Append {
    stream: StreamName,
    expected: ExpectedRevision,
    data: Vec<EventData>,
    events: Vec<Event>,
    /// The command's digest as its events' metadata carries it, for the cached state.
    digest: String,
}

/// Maps of the per-command path. Randomly seeded: ids are the callers' to choose, and
/// chosen keys must not make the buckets collide.
type FastState = foldhash::fast::RandomState;

/// An order as loaded: its state, its revision, and the commands already in its stream.
#[derive(Clone, Debug, Default)]
struct Loaded {
    state: OrderState,
    revision: Option<u64>,
    commands: HashMap<Uuid, CommandRecord, FastState>,
}

pub struct CommandHandler {
    store: Arc<dyn EventStore>,
    policy: Policy,
    cache: Mutex<LruCache<OrderId, Arc<Loaded>, FastState>>,
    turns: OrderTurns,
    conflicts_retried: AtomicU64,
    orders_loaded: AtomicU64,
}

impl CommandHandler {
    pub fn new(store: Arc<dyn EventStore>, policy: Policy) -> CommandHandler {
        CommandHandler::with_cache(store, policy, STATE_CACHE_ORDERS_DEFAULT)
    }

    pub fn with_cache(store: Arc<dyn EventStore>, policy: Policy, orders: usize) -> CommandHandler {
        let capacity = NonZeroUsize::new(orders).unwrap_or(NonZeroUsize::MIN);
        // The map grows with the orders touched: sized to the bound up front, it held room
        // for 250,000 orders in a service that has ten, and a bound mistyped in ledger.toml
        // aborted the start (a capacity overflow, or the memory of a billion slots).
        let mut cache = LruCache::unbounded_with_hasher(FastState::default());
        cache.resize(capacity);
        CommandHandler {
            store,
            policy,
            cache: Mutex::new(cache),
            turns: OrderTurns::default(),
            conflicts_retried: AtomicU64::new(0),
            orders_loaded: AtomicU64::new(0),
        }
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Appends that lost a race for their order and were re-decided, since start.
    pub fn conflicts_retried(&self) -> u64 {
        self.conflicts_retried.load(Ordering::Relaxed)
    }

    /// Orders read and folded from the log since start: the state cache did not hold them,
    /// or a refusal was checked against the log. Close to the rate of commands, it says the
    /// cache holds fewer orders than are active.
    pub fn orders_loaded(&self) -> u64 {
        self.orders_loaded.load(Ordering::Relaxed)
    }

    pub async fn handle(&self, request: CommandRequest) -> Result<Outcome, CommandError> {
        if let Command::Place { order_id, .. } = &request.command {
            if *order_id != request.order_id {
                return Err(CommandError::OrderIdMismatch);
            }
        }
        let digest = digest(request.order_id, &request.command);
        let _turn = self.turns.take(request.order_id).await;
        // Besides the order's turn (a lock's small future), only the store's own futures are
        // awaited on the common path: each nested `async fn` would be copied whole into this
        // one's state, ~1 KB a level, many times a command.
        for attempt in 0..=CONFLICT_RETRIES_MAX {
            // A placement's order is new unless it is a retry or a clash of ids, both of which
            // the append's `NoStream` catches: assuming so spares reading a stream not there.
            let assume_new = attempt == 0 && matches!(request.command, Command::Place { .. });
            let (loaded, source) = match self.cached(request.order_id, assume_new) {
                Some(found) => found,
                None => (self.load_from_log(request.order_id).await?, Source::Log),
            };
            let result = match self.decision(&request, &digest, &loaded) {
                Ok(Decided::Replay(record)) => self.replay(request.order_id, &record).await,
                Ok(Decided::Append(append)) => {
                    match self
                        .store
                        .append(&append.stream, append.expected, append.data)
                        .await
                    {
                        Ok(appended) => Ok(self.applied(
                            &request,
                            append.digest,
                            loaded,
                            append.events,
                            appended,
                        )),
                        Err(error) => Err(error.into()),
                    }
                }
                Err(error) => Err(error),
            };
            match result {
                Err(CommandError::Store(StoreError::WrongExpectedRevision { .. }))
                    if source == Source::Assumed =>
                {
                    self.forget(request.order_id);
                }
                Err(CommandError::Store(StoreError::WrongExpectedRevision { .. })) => {
                    // Someone else wrote to this order first: forget it, re-read, re-decide,
                    // after a random pause that grows with each loss, so that racers spread out
                    // instead of colliding again in lockstep.
                    self.conflicts_retried.fetch_add(1, Ordering::Relaxed);
                    self.forget(request.order_id);
                    tokio::time::sleep(conflict_backoff(attempt)).await;
                }
                // Another instance may have moved the order on: a refusal based on a cached
                // state is confirmed against the log before it is returned.
                Err(CommandError::Rejected(_) | CommandError::StaleRevision { .. })
                    if source != Source::Log =>
                {
                    self.forget(request.order_id);
                }
                other => return other,
            }
        }
        Err(CommandError::TooMuchContention(CONFLICT_RETRIES_MAX + 1))
    }

    /// What the command does to the order as loaded: nothing new if its id is already in the
    /// stream, else the events to append.
    fn decision(
        &self,
        request: &CommandRequest,
        digest: &str,
        loaded: &Loaded,
    ) -> Result<Decided, CommandError> {
        if let Some(record) = loaded.commands.get(&request.command_id) {
            if !same_command(&record.digest, digest, request.order_id, &request.command) {
                return Err(CommandError::CommandIdReused(request.command_id));
            }
            return Ok(Decided::Replay(record.clone()));
        }
        let command = effective_command(&request.command, &loaded.state);
        let decided = decide(&loaded.state, &command, &self.policy);
        let expected = &request.expected_revisions;
        if !expected.is_empty() {
            let denied = matches!(&decided, Err(rejection) if rejection.denies_access());
            let current = loaded.revision.is_some_and(|r| expected.contains(&r));
            if !current && !denied {
                return Err(CommandError::StaleRevision {
                    expected: expected.clone(),
                    actual: loaded.revision,
                });
            }
        }
        let events = decided?;
        let metadata = EventMetadata {
            schema_version: EVENT_SCHEMA_VERSION,
            command_id: request.command_id,
            command_digest: digest.to_owned(),
            correlation_id: request.correlation_id.unwrap_or(request.command_id),
            causation_id: request.causation_id.unwrap_or(request.command_id),
            actor: request.command.by(),
        };
        let data = events
            .iter()
            .map(|event| codec::encode(event, &metadata))
            .collect();
        Ok(Decided::Append(Append {
            stream: codec::stream_for(request.order_id),
            expected: loaded
                .revision
                .map_or(ExpectedRevision::NoStream, ExpectedRevision::Exact),
            data,
            events,
            digest: metadata.command_digest,
        }))
    }

    /// The outcome of an append, and the cached order moved on by its events.
    fn applied(
        &self,
        request: &CommandRequest,
        digest: String,
        mut loaded: Arc<Loaded>,
        events: Vec<Event>,
        appended: AppendResult,
    ) -> Outcome {
        let first_revision = loaded.revision.map_or(0, |r| r + 1);
        // The cache's copy is this one unless another command moved the order meanwhile:
        // dropping it first lets the state be updated in place, not copied.
        let newer = self.take_cached(request.order_id, appended.next_expected_revision);
        let next = Arc::make_mut(&mut loaded);
        for event in &events {
            next.state.apply(event);
        }
        next.revision = Some(appended.next_expected_revision);
        next.commands.insert(
            request.command_id,
            CommandRecord {
                digest,
                first_revision,
                last_revision: appended.next_expected_revision,
                position: appended.position,
            },
        );
        let state = next.state.clone();
        self.remember(request.order_id, newer.unwrap_or(loaded));
        Outcome {
            order_id: request.order_id,
            revision: appended.next_expected_revision,
            position: appended.position,
            events,
            state,
            replayed: false,
        }
    }

    /// The first outcome of a command already in the log, rebuilt from the log.
    async fn replay(
        &self,
        order: OrderId,
        record: &CommandRecord,
    ) -> Result<Outcome, CommandError> {
        let recorded = self.read_order(order, record.last_revision).await?;
        let mut state = OrderState::new();
        let mut events = Vec::new();
        for event in &recorded {
            let (decoded, _) = codec::decode(event)?;
            state.apply(&decoded);
            if event.revision >= record.first_revision {
                events.push(decoded);
            }
        }
        Ok(Outcome {
            order_id: order,
            revision: record.last_revision,
            position: record.position,
            events,
            state,
            replayed: true,
        })
    }

    /// The order's state from the cache, or taken to be new; `None` when the log must say.
    fn cached(&self, order: OrderId, assume_new: bool) -> Option<(Arc<Loaded>, Source)> {
        if let Some(loaded) = self
            .cache
            .lock()
            .ok()
            .and_then(|mut c| c.get(&order).cloned())
        {
            return Some((loaded, Source::Cache));
        }
        assume_new.then(|| (Arc::new(Loaded::default()), Source::Assumed))
    }

    /// The order's state folded from its stream, which is then cached.
    async fn load_from_log(&self, order: OrderId) -> Result<Arc<Loaded>, CommandError> {
        self.orders_loaded.fetch_add(1, Ordering::Relaxed);
        let mut loaded = Loaded::default();
        for recorded in self.read_order(order, u64::MAX).await? {
            let (event, metadata) = codec::decode(&recorded)?;
            loaded.state.apply(&event);
            loaded.revision = Some(recorded.revision);
            let record = loaded
                .commands
                .entry(metadata.command_id)
                .or_insert_with(|| CommandRecord {
                    digest: metadata.command_digest.clone(),
                    first_revision: recorded.revision,
                    last_revision: recorded.revision,
                    position: recorded.position,
                });
            record.last_revision = recorded.revision;
            record.position = recorded.position;
        }
        let loaded = Arc::new(loaded);
        if let Ok(mut cache) = self.cache.lock() {
            cache.put(order, Arc::clone(&loaded));
        }
        Ok(loaded)
    }

    /// The order's events up to `last_revision`, all pages; none for an order never placed.
    async fn read_order(
        &self,
        order: OrderId,
        last_revision: u64,
    ) -> Result<Vec<RecordedEvent>, CommandError> {
        let mut events = read_whole_stream(&*self.store, &codec::stream_for(order)).await?;
        events.retain(|e| e.revision <= last_revision);
        Ok(events)
    }

    fn remember(&self, order: OrderId, loaded: Arc<Loaded>) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.put(order, loaded);
        }
    }

    /// Takes the order out of the cache, unless what it holds is already past `revision`
    /// (a later command's): that one is returned, to be put back as it is.
    fn take_cached(&self, order: OrderId, revision: u64) -> Option<Arc<Loaded>> {
        let mut cache = self.cache.lock().ok()?;
        let cached = cache.pop(&order)?;
        cached
            .revision
            .is_some_and(|cached| cached > revision)
            .then_some(cached)
    }

    fn forget(&self, order: OrderId) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.pop(&order);
        }
    }
}

/// First pause after a lost race; it doubles with each further loss, up to the cap.
const CONFLICT_BACKOFF_FIRST: Duration = Duration::from_micros(100);
const CONFLICT_BACKOFF_CAP: Duration = Duration::from_millis(20);

/// A random pause ("full jitter") between none and the attempt's exponential bound.
fn conflict_backoff(attempt: usize) -> Duration {
    let bound = CONFLICT_BACKOFF_FIRST
        .saturating_mul(1 << attempt.min(16))
        .min(CONFLICT_BACKOFF_CAP);
    let nanos = u64::try_from(bound.as_nanos()).unwrap_or(u64::MAX).max(1);
    // Random bits without another dependency: a v4 UUID is 122 random bits.
    let random = Uuid::new_v4().as_u64_pair().0;
    Duration::from_nanos(random % nanos)
}

/// Two commands on one order sent within moments of each other are applied in turn; the
/// second takes effect no earlier than the first's events, so an order's history stays in
/// time order and the later arrival is not refused for a clock it does not control.
fn effective_command(command: &Command, state: &OrderState) -> Command {
    let mut command = command.clone();
    if let Some(order) = state.order() {
        if command.at() < order.last_event_at {
            command.set_at(order.last_event_at);
        }
    }
    command
}

/// A fingerprint of what the command asks, without when: a retry sent later is the same
/// command. Stored in the log, so its bytes must never change; `v2:` marks this form: BLAKE3
/// of the order id and the command as serde writes it (fields in declaration order) with its
/// instant at the epoch. The first form, SHA-256 over keys sorted through a
/// `serde_json::Value`, was 10% of the pipeline's CPU; this one is ~3× cheaper (this CPU has
/// no SHA instructions).
fn digest(order: OrderId, command: &Command) -> String {
    let mut timeless = command.clone();
    timeless.set_at(DateTime::UNIX_EPOCH);
    let mut bytes = Vec::with_capacity(DIGESTED_CAPACITY);
    bytes.extend_from_slice(order.0.as_bytes());
    // Serialising into memory cannot fail. Hashed whole: serde writes a token at a time,
    // and a hash fed each one costs more than the copy.
    let _ = serde_json::to_writer(&mut bytes, &timeless);
    let mut text = String::with_capacity(DIGEST_V2.len() + 32);
    text.push_str(DIGEST_V2);
    push_hex(&mut text, &blake3::hash(&bytes).as_bytes()[..16]);
    text
}

const DIGEST_V2: &str = "v2:";
/// Bytes hashed for most commands: the order id and a few hundred of JSON.
const DIGESTED_CAPACITY: usize = 512;

/// Whether a command id's stored digest is this command's, in the form it was stored in.
fn same_command(stored: &str, digest: &str, order: OrderId, command: &Command) -> bool {
    if stored.starts_with(DIGEST_V2) {
        stored == digest
    } else {
        stored == digest_v1(order, command)
    }
}

/// The first form, for commands the log holds from before `v2:`: the command as JSON with
/// sorted keys, without its instant.
fn digest_v1(order: OrderId, command: &Command) -> String {
    let mut value = serde_json::to_value(command).unwrap_or_default();
    if let Some(fields) = value.as_object_mut() {
        fields.remove("at");
    }
    let mut hasher = Sha256::new();
    hasher.update(order.0.as_bytes());
    // Serialising a `Value` into memory cannot fail.
    let _ = serde_json::to_writer(HashWriter(&mut hasher), &value);
    let mut hex = String::with_capacity(32);
    push_hex(&mut hex, &hasher.finalize()[..16]);
    hex
}

fn push_hex(text: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for byte in bytes {
        text.push(char::from(HEX[usize::from(byte >> 4)]));
        text.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
}

/// Feeds serialised bytes straight into the hash, with no string in between.
struct HashWriter<'a>(&'a mut Sha256);

impl std::io::Write for HashWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.update(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger_domain::chrono::{TimeZone, Utc};
    use ledger_domain::{Actor, Role, UserId};

    /// Digests are stored in the log: one computed today must equal one written before, or a
    /// retry across an upgrade would be refused as a reused command id. This is how they were
    /// first computed.
    fn digest_as_first_written(order: OrderId, command: &Command) -> String {
        let mut value = serde_json::to_value(command).unwrap_or_default();
        if let Some(fields) = value.as_object_mut() {
            fields.remove("at");
        }
        let mut hasher = Sha256::new();
        hasher.update(order.0.as_bytes());
        hasher.update(value.to_string().as_bytes());
        hasher
            .finalize()
            .iter()
            .take(16)
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    fn refusal(at: (u32, u32)) -> Command {
        let at = Utc.with_ymd_and_hms(2026, 3, at.0, at.1, 0, 0).single();
        Command::RefuseRevision {
            by: Actor::new(Role::Seller, UserId(Uuid::from_u128(2))),
            at: at.unwrap_or_default(),
            reason: "out of \"scope\" \u{e9}".into(),
        }
    }

    #[test]
    fn the_first_digest_is_the_one_written_before() {
        let order = OrderId(Uuid::from_u128(7));
        let command = refusal((2, 9));
        let digest = digest_v1(order, &command);
        assert_eq!(digest, digest_as_first_written(order, &command));
        assert_eq!(digest.len(), 32);
    }

    /// The second form's bytes, pinned: if this fails, a field of `Command` (or of what it
    /// holds) was renamed, moved or retyped, and retries across the upgrade would be refused.
    /// Add a third form instead of changing this one. The value was checked apart from this
    /// code: BLAKE3 (Python's `blake3` package) of the order id's 16 bytes and the text
    /// `{"command":"refuse_revision","by":{"role":"seller","user_id":"00000000-0000-0000-0000-000000000002"},"at":"1970-01-01T00:00:00Z","reason":"out of \"scope\" é"}`.
    #[test]
    fn the_second_digest_is_the_one_written_before() {
        let order = OrderId(Uuid::from_u128(7));
        assert_eq!(
            digest(order, &refusal((2, 9))),
            "v2:0330d846c1959559d691b7c253ae3630"
        );
    }

    #[test]
    fn a_retry_sent_later_has_the_same_digest_and_another_command_not() {
        let order = OrderId(Uuid::from_u128(7));
        let first = digest(order, &refusal((2, 9)));
        assert_eq!(first, digest(order, &refusal((5, 17))));
        assert_ne!(first, digest(OrderId(Uuid::from_u128(8)), &refusal((2, 9))));
        let Command::RefuseRevision { by, at, .. } = refusal((2, 9)) else {
            unreachable!()
        };
        let other = Command::RefuseRevision {
            by,
            at,
            reason: "another reason".into(),
        };
        assert_ne!(first, digest(order, &other));
    }

    #[test]
    fn a_command_stored_with_either_digest_is_recognised_and_another_is_not() {
        let order = OrderId(Uuid::from_u128(7));
        let command = refusal((2, 9));
        let retried = refusal((4, 12));
        let now = digest(order, &retried);
        assert!(same_command(
            &digest(order, &command),
            &now,
            order,
            &retried
        ));
        assert!(same_command(
            &digest_v1(order, &command),
            &now,
            order,
            &retried
        ));
        let other = Command::Close {
            by: Actor::new(Role::Buyer, UserId(Uuid::from_u128(3))),
            at: retried.at(),
        };
        let other_now = digest(order, &other);
        assert!(!same_command(
            &digest(order, &command),
            &other_now,
            order,
            &other
        ));
        assert!(!same_command(
            &digest_v1(order, &command),
            &other_now,
            order,
            &other
        ));
    }
}
