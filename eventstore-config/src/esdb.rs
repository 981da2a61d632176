//! The EventStoreDB / KurrentDB backend, through the official client (crate `eventstore`). The
//! only module that uses the client, so that moving to its successor `kurrentdb` is a rename.
//!
//! Positions: a `$all` position here is EventStoreDB's commit position. Events written through
//! gRPC have equal commit and prepare positions, so a position is read back as both. They are
//! increasing but not gapless on a real server; on the embedded node they are the embedded
//! store's gapless positions.
//!
//! What `$all` shows: only streams whose name starts with `namespace + stream_prefix`
//! (`order-` by default), never system events. Subscriptions filter on the server; reads,
//! which the client cannot filter, page until they have enough.

use crate::store::{EventStore, Subscription};
use crate::types::*;
use crate::StoreError;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use eventstore as es;
use std::time::Duration;

/// How long start-up waits for the server before saying it cannot be reached.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Re-subscriptions after a dropped connection before a subscription gives up.
pub const SUBSCRIPTION_RETRIES_MAX: u32 = 10;
/// The first wait before re-subscribing; it doubles up to `SUBSCRIPTION_BACKOFF_MAX`.
const SUBSCRIPTION_BACKOFF_FIRST: Duration = Duration::from_millis(100);
const SUBSCRIPTION_BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Where the backend's streams live on the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventStoreDbOptions {
    /// Put before every stream name on the server, and taken off on the way back: several
    /// ledgers (or test runs) can share one cluster.
    pub namespace: String,
    /// Only streams starting with this (after the namespace) are in `$all`.
    pub stream_prefix: String,
}

impl Default for EventStoreDbOptions {
    fn default() -> Self {
        EventStoreDbOptions {
            namespace: String::new(),
            stream_prefix: "order-".to_owned(),
        }
    }
}

/// What the client puts into a URI or a header with `unwrap`: a host that makes no URI, or a
/// `connectionName` that is no header value, would panic at the first call.
fn check_names(settings: &es::ClientSettings) -> Result<(), StoreError> {
    use tonic::codegen::http::Uri;
    for endpoint in settings.hosts() {
        if format!("http://{}:{}", endpoint.host, endpoint.port)
            .parse::<Uri>()
            .is_err()
        {
            return Err(StoreError::Io(format!(
                "the EventStoreDB connection string's host `{}` is not a host name or address",
                endpoint.host.escape_debug()
            )));
        }
    }
    // The client keeps the name to itself; its serialised settings show it.
    let settings = serde_json::to_value(settings).unwrap_or_default();
    if let Some(name) = settings.get("connection_name").and_then(|n| n.as_str()) {
        if tonic::metadata::AsciiMetadataValue::try_from(name).is_err() {
            return Err(StoreError::Io(format!(
                "the EventStoreDB connection string's connectionName `{}` cannot be sent in a \
                 header: visible ASCII only",
                name.escape_debug()
            )));
        }
    }
    Ok(())
}

/// Reads the files a connection string names as the client will: the client unwraps them in
/// a task of its own, where a missing or malformed one would panic and leave only "Connection
/// is closed" to say why.
fn check_tls_files(settings: &es::ClientSettings) -> Result<(), StoreError> {
    use crate::node::tls::{pem_certificates, pem_private_key};
    use std::path::Path;
    use tokio_rustls::rustls::{ClientConfig, RootCertStore};
    let unusable = |parameter: &str, path: &str, reason: String| {
        StoreError::Io(format!(
            "the EventStoreDB connection string's {parameter} `{path}` cannot be used: {reason}"
        ))
    };
    let mut roots = RootCertStore::empty();
    if let Some(path) = settings.tls_ca_file() {
        let certificates =
            pem_certificates(Path::new(path)).map_err(|e| unusable("tlsCaFile", path, e))?;
        for certificate in certificates {
            roots
                .add(certificate)
                .map_err(|e| unusable("tlsCaFile", path, e.to_string()))?;
        }
    }
    if let Some((certificate, key)) = settings.user_certificate() {
        let chain = pem_certificates(Path::new(certificate))
            .map_err(|e| unusable("userCertFile", certificate, e))?;
        let key_der =
            pem_private_key(Path::new(key)).map_err(|e| unusable("userKeyFile", key, e))?;
        let provider = std::sync::Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .and_then(|builder| {
                builder
                    .with_root_certificates(roots)
                    .with_client_auth_cert(chain, key_der)
            })
            .map_err(|e| unusable("userCertFile", certificate, e.to_string()))?;
    }
    Ok(())
}

/// An [`EventStore`] on an EventStoreDB or KurrentDB server or cluster.
#[derive(Clone)]
pub struct EventStoreDbStore {
    client: es::Client,
    options: EventStoreDbOptions,
}

impl EventStoreDbStore {
    /// Connects and proves the server answers; a connection string that does not parse or a
    /// server that does not answer within [`CONNECT_TIMEOUT`] is an error (never printed with
    /// its credentials).
    pub async fn connect(
        url: &str,
        options: EventStoreDbOptions,
    ) -> Result<EventStoreDbStore, StoreError> {
        let settings: es::ClientSettings = url.parse().map_err(|_| {
            StoreError::Io("the EventStoreDB connection string does not parse".to_owned())
        })?;
        check_names(&settings)?;
        check_tls_files(&settings)?;
        let client = es::Client::new(settings)
            .map_err(|e| StoreError::Io(format!("starting the EventStoreDB client: {e}")))?;
        let store = EventStoreDbStore { client, options };
        let probe = es::ReadAllOptions::default()
            .position(es::StreamPosition::End)
            .backwards()
            .max_count(1);
        let reached = async {
            let mut read = store.client.read_all(&probe).await?;
            read.next().await.map(|_| ())
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, reached).await {
            Ok(Ok(())) => Ok(store),
            Ok(Err(e)) => Err(StoreError::Io(format!(
                "EventStoreDB did not answer a first read: {e}"
            ))),
            Err(_) => Err(StoreError::Io(format!(
                "EventStoreDB did not answer within {} s",
                CONNECT_TIMEOUT.as_secs()
            ))),
        }
    }

    fn server_name(&self, stream: &StreamName) -> String {
        format!("{}{}", self.options.namespace, stream.as_str())
    }

    fn all_prefix(&self) -> String {
        format!("{}{}", self.options.namespace, self.options.stream_prefix)
    }

    /// The event as the trait shows it, or `None` if it is a system event or (for `$all`,
    /// `in_all`) not one of this backend's streams.
    fn recorded(
        &self,
        resolved: &es::ResolvedEvent,
        in_all: bool,
    ) -> Result<Option<RecordedEvent>, StoreError> {
        let Some(event) = resolved.event.as_ref() else {
            return Ok(None);
        };
        let prefix = if in_all {
            self.all_prefix()
        } else {
            self.options.namespace.clone()
        };
        if event.event_type.starts_with('$') || !event.stream_id.starts_with(&prefix) {
            return Ok(None);
        }
        let name = &event.stream_id[self.options.namespace.len()..];
        let stream = StreamName::new(name)
            .map_err(|e| StoreError::Corrupt(format!("stream `{name}` on the server: {e}")))?;
        Ok(Some(RecordedEvent {
            stream,
            revision: event.revision,
            position: event.position.commit,
            event_id: event.id,
            event_type: event.event_type.clone(),
            data: event.data.to_vec(),
            metadata: event.custom_metadata.to_vec(),
            recorded_at: created(event).unwrap_or(event.created),
        }))
    }

    /// Reads `$all` pages until `max` events of this backend's are found or the log ends.
    async fn read_all_filtered(
        &self,
        from: es::StreamPosition<es::Position>,
        direction: Direction,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut found = Vec::new();
        let mut from = from;
        // Forwards reads are inclusive: after the first page, skip what was already seen.
        let mut seen: Option<u64> = None;
        while found.len() < max {
            let want = (max - found.len()).min(READ_EVENTS_MAX) + usize::from(seen.is_some());
            let options = es::ReadAllOptions::default().position(from).max_count(want);
            let options = match direction {
                Direction::Forwards => options.forwards(),
                Direction::Backwards => options.backwards(),
            };
            let mut read = self.client.read_all(&options).await.map_err(error)?;
            let mut got = 0;
            let mut last = None;
            while let Some(resolved) = read.next().await.map_err(error)? {
                got += 1;
                let Some(position) = resolved.event.as_ref().map(|e| e.position) else {
                    continue;
                };
                last = Some(position);
                if direction == Direction::Forwards && seen.is_some_and(|s| position.commit <= s) {
                    continue;
                }
                if let Some(event) = self.recorded(&resolved, true)? {
                    found.push(event);
                    if found.len() == max {
                        break;
                    }
                }
            }
            let Some(last) = last else { break };
            if got < want {
                break;
            }
            from = es::StreamPosition::Position(last);
            seen = Some(last.commit);
        }
        Ok(found)
    }
}

impl EventStoreDbStore {
    /// "From the end" pinned to the log's last position now: the client opens a subscription
    /// only when it is first read, and the end must be the one at the time of subscribing.
    async fn end_of_all(&self) -> Result<SubscribeFrom, StoreError> {
        let options = es::ReadAllOptions::default()
            .position(es::StreamPosition::End)
            .backwards()
            .max_count(1);
        let mut read = self.client.read_all(&options).await.map_err(error)?;
        let last = read.next().await.map_err(error)?;
        Ok(last
            .and_then(|resolved| resolved.event.map(|e| e.position.commit))
            .map_or(SubscribeFrom::Start, SubscribeFrom::After))
    }
}

/// EventStoreDB's `created`, in 100-nanosecond ticks since the Unix epoch (the client keeps
/// only whole seconds of it).
fn created(event: &es::RecordedEvent) -> Option<DateTime<Utc>> {
    let ticks: i64 = event.metadata.get("created")?.parse().ok()?;
    DateTime::from_timestamp(
        ticks.div_euclid(10_000_000),
        (ticks.rem_euclid(10_000_000) * 100) as u32,
    )
}

fn position(p: u64) -> es::Position {
    es::Position {
        commit: p,
        prepare: p,
    }
}

fn expected_revision(expected: ExpectedRevision) -> es::ExpectedRevision {
    match expected {
        ExpectedRevision::Any => es::ExpectedRevision::Any,
        ExpectedRevision::NoStream => es::ExpectedRevision::NoStream,
        ExpectedRevision::StreamExists => es::ExpectedRevision::StreamExists,
        ExpectedRevision::Exact(n) => es::ExpectedRevision::Exact(n),
    }
}

fn event_data(event: EventData) -> es::EventData {
    let data = prost::bytes::Bytes::from(event.data);
    // JSON is labelled as such for the server's own tools, if it is JSON to the byte.
    let json = serde_json::from_slice::<Box<serde_json::value::RawValue>>(&data)
        .ok()
        .filter(|raw| raw.get().len() == data.len());
    let proposed = match json {
        Some(raw) => es::EventData::json(&event.event_type, &raw)
            .unwrap_or_else(|_| es::EventData::binary(&event.event_type, data)),
        None => es::EventData::binary(&event.event_type, data),
    };
    proposed
        .id(event.event_id)
        .metadata(prost::bytes::Bytes::from(event.metadata))
}

/// The client's errors as the trait's. A wrong expected revision is mapped by the caller,
/// which knows the stream.
fn error(error: es::Error) -> StoreError {
    match error {
        es::Error::Grpc {
            code: tonic::Code::FailedPrecondition,
            message,
        } => StoreError::Io(format!("EventStoreDB refused the write: {message}")),
        es::Error::Grpc {
            code: tonic::Code::InvalidArgument,
            message,
        } => StoreError::Io(format!("EventStoreDB refused the request: {message}")),
        es::Error::AccessDenied => {
            StoreError::Io("EventStoreDB denied access: check the credentials".to_owned())
        }
        other => StoreError::Io(format!("EventStoreDB: {other}")),
    }
}

fn current_revision(current: es::CurrentRevision) -> Option<u64> {
    match current {
        es::CurrentRevision::Current(r) => Some(r),
        es::CurrentRevision::NoStream => None,
    }
}

#[async_trait]
impl EventStore for EventStoreDbStore {
    async fn append(
        &self,
        stream: &StreamName,
        expected: ExpectedRevision,
        events: Vec<EventData>,
    ) -> Result<AppendResult, StoreError> {
        validate_append(&events)?;
        let options =
            es::AppendToStreamOptions::default().expected_revision(expected_revision(expected));
        let events: Vec<es::EventData> = events.into_iter().map(event_data).collect();
        match self
            .client
            .append_to_stream(self.server_name(stream), &options, events)
            .await
        {
            Ok(result) => Ok(AppendResult {
                next_expected_revision: result.next_expected_version,
                position: result.position.commit,
            }),
            Err(es::Error::WrongExpectedVersion { current, .. }) => {
                Err(StoreError::WrongExpectedRevision {
                    stream: stream.clone(),
                    expected,
                    actual: current_revision(current),
                })
            }
            Err(es::Error::Grpc {
                code: tonic::Code::FailedPrecondition,
                ..
            }) => Err(StoreError::PartialIdempotentAppend(stream.clone())),
            Err(other) => Err(error(other)),
        }
    }

    async fn read_stream(
        &self,
        stream: &StreamName,
        from: StreamFrom,
        direction: Direction,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let max = max.min(READ_EVENTS_MAX);
        let position = match from {
            StreamFrom::Start => es::StreamPosition::Start,
            StreamFrom::End => es::StreamPosition::End,
            StreamFrom::Revision(r) => es::StreamPosition::Position(r),
        };
        let options = es::ReadStreamOptions::default()
            .position(position)
            .max_count(max);
        let options = match direction {
            Direction::Forwards => options.forwards(),
            Direction::Backwards => options.backwards(),
        };
        let not_found = |e: es::Error| match e {
            es::Error::ResourceNotFound => StoreError::StreamNotFound(stream.clone()),
            other => error(other),
        };
        let mut read = self
            .client
            .read_stream(self.server_name(stream), &options)
            .await
            .map_err(not_found)?;
        let mut events = Vec::new();
        while let Some(resolved) = read.next().await.map_err(not_found)? {
            if let Some(event) = self.recorded(&resolved, false)? {
                events.push(event);
            }
        }
        Ok(events)
    }

    async fn read_all(
        &self,
        from: AllFrom,
        direction: Direction,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let max = max.min(READ_EVENTS_MAX);
        if max == 0 {
            return Ok(Vec::new());
        }
        match (from, direction) {
            // Backwards from the start is the first event, as the embedded store has it.
            (AllFrom::Start, Direction::Backwards) => {
                self.read_all_filtered(es::StreamPosition::Start, Direction::Forwards, 1)
                    .await
            }
            (AllFrom::End, Direction::Forwards) => Ok(Vec::new()),
            (AllFrom::Start, _) => {
                self.read_all_filtered(es::StreamPosition::Start, direction, max)
                    .await
            }
            (AllFrom::End, _) => {
                self.read_all_filtered(es::StreamPosition::End, direction, max)
                    .await
            }
            (AllFrom::Position(p), Direction::Forwards) => {
                self.read_all_filtered(es::StreamPosition::Position(position(p)), direction, max)
                    .await
            }
            // EventStoreDB reads backwards from *before* a position; the trait's `from` is
            // inclusive, so the event at `p` itself is read first.
            (AllFrom::Position(p), Direction::Backwards) => {
                let at = self
                    .read_all_filtered(
                        es::StreamPosition::Position(position(p)),
                        Direction::Forwards,
                        1,
                    )
                    .await?;
                let mut events: Vec<RecordedEvent> =
                    at.into_iter().filter(|e| e.position == p).collect();
                let rest = max - events.len();
                if rest > 0 {
                    events.extend(
                        self.read_all_filtered(
                            es::StreamPosition::Position(position(p)),
                            Direction::Backwards,
                            rest,
                        )
                        .await?,
                    );
                }
                Ok(events)
            }
        }
    }

    async fn subscribe_all(
        &self,
        from: SubscribeFrom,
    ) -> Result<Box<dyn Subscription>, StoreError> {
        let from = match from {
            SubscribeFrom::End => self.end_of_all().await?,
            other => other,
        };
        Ok(Box::new(
            Resubscribing::start(self.clone(), Target::All, from).await,
        ))
    }

    async fn subscribe_stream(
        &self,
        stream: &StreamName,
        from: SubscribeFrom,
    ) -> Result<Box<dyn Subscription>, StoreError> {
        let from = match from {
            SubscribeFrom::End => match self
                .read_stream(stream, StreamFrom::End, Direction::Backwards, 1)
                .await
            {
                Err(StoreError::StreamNotFound(_)) => SubscribeFrom::Start,
                other => other?
                    .first()
                    .map_or(SubscribeFrom::Start, |e| SubscribeFrom::After(e.revision)),
            },
            other => other,
        };
        Ok(Box::new(
            Resubscribing::start(self.clone(), Target::Stream(stream.clone()), from).await,
        ))
    }
}

enum Target {
    All,
    Stream(StreamName),
}

/// Events a subscription receives ahead of its reader.
const SUBSCRIPTION_AHEAD_EVENTS: usize = 1_024;

/// A catch-up subscription that re-subscribes after the last event it delivered when the
/// connection drops, waiting longer each time, up to [`SUBSCRIPTION_RETRIES_MAX`] times in a row.
///
/// A task of its own receives the events: the client's subscription loses its stream when a
/// `next` in progress is dropped, and a reader that takes what is at hand must not cost a
/// re-subscription every time.
struct Resubscribing {
    events: tokio::sync::mpsc::Receiver<Result<RecordedEvent, StoreError>>,
    receiving: tokio::task::JoinHandle<()>,
}

impl Resubscribing {
    async fn start(store: EventStoreDbStore, target: Target, from: SubscribeFrom) -> Resubscribing {
        let mut following = Following::start(store, target, from).await;
        let (sender, events) = tokio::sync::mpsc::channel(SUBSCRIPTION_AHEAD_EVENTS);
        let receiving = tokio::spawn(async move {
            loop {
                let received = following.next().await;
                let failed = received.is_err();
                if sender.send(received).await.is_err() || failed {
                    return;
                }
            }
        });
        Resubscribing { events, receiving }
    }
}

impl Drop for Resubscribing {
    fn drop(&mut self) {
        self.receiving.abort();
    }
}

#[async_trait]
impl Subscription for Resubscribing {
    async fn next(&mut self) -> Result<RecordedEvent, StoreError> {
        self.events.recv().await.unwrap_or(Err(StoreError::Closed))
    }

    fn next_ready(&mut self) -> Option<Result<RecordedEvent, StoreError>> {
        use tokio::sync::mpsc::error::TryRecvError;
        match self.events.try_recv() {
            Ok(received) => Some(received),
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Disconnected) => Some(Err(StoreError::Closed)),
        }
    }
}

/// The subscription itself, driven by [`Resubscribing`]'s task.
struct Following {
    store: EventStoreDbStore,
    target: Target,
    /// Where the next (re)subscription starts: after the last event delivered.
    from: SubscribeFrom,
    current: Option<es::Subscription>,
    failures: u32,
}

impl Following {
    async fn start(store: EventStoreDbStore, target: Target, from: SubscribeFrom) -> Following {
        let mut subscription = Following {
            store,
            target,
            from,
            current: None,
            failures: 0,
        };
        subscription.open().await;
        subscription
    }

    async fn open(&mut self) {
        let client = &self.store.client;
        let subscription = match &self.target {
            Target::All => {
                let position = match self.from {
                    SubscribeFrom::Start => es::StreamPosition::Start,
                    SubscribeFrom::End => es::StreamPosition::End,
                    SubscribeFrom::After(p) => es::StreamPosition::Position(position(p)),
                };
                let filter =
                    es::SubscriptionFilter::on_stream_name().add_prefix(self.store.all_prefix());
                client
                    .subscribe_to_all(
                        &es::SubscribeToAllOptions::default()
                            .position(position)
                            .filter(filter),
                    )
                    .await
            }
            Target::Stream(stream) => {
                let position = match self.from {
                    SubscribeFrom::Start => es::StreamPosition::Start,
                    SubscribeFrom::End => es::StreamPosition::End,
                    SubscribeFrom::After(r) => es::StreamPosition::Position(r),
                };
                client
                    .subscribe_to_stream(
                        self.store.server_name(stream),
                        &es::SubscribeToStreamOptions::default().start_from(position),
                    )
                    .await
            }
        };
        self.current = Some(subscription);
    }

    async fn next(&mut self) -> Result<RecordedEvent, StoreError> {
        loop {
            let Some(current) = self.current.as_mut() else {
                self.open().await;
                continue;
            };
            match current.next().await {
                Ok(resolved) => {
                    self.failures = 0;
                    let in_all = matches!(self.target, Target::All);
                    let Some(event) = self.store.recorded(&resolved, in_all)? else {
                        continue;
                    };
                    self.from = SubscribeFrom::After(match self.target {
                        Target::All => event.position,
                        Target::Stream(_) => event.revision,
                    });
                    return Ok(event);
                }
                Err(es::Error::AccessDenied) => return Err(error(es::Error::AccessDenied)),
                Err(e) => {
                    self.current = None;
                    self.failures += 1;
                    if self.failures > SUBSCRIPTION_RETRIES_MAX {
                        return Err(StoreError::Io(format!(
                            "the subscription dropped {SUBSCRIPTION_RETRIES_MAX} times in a row: {e}"
                        )));
                    }
                    let backoff = SUBSCRIPTION_BACKOFF_FIRST
                        .saturating_mul(1 << (self.failures - 1).min(16))
                        .min(SUBSCRIPTION_BACKOFF_MAX);
                    tracing::warn!(error = %e, ?backoff, "EventStoreDB subscription dropped; re-subscribing");
                    tokio::time::sleep(backoff).await;
                }
            }
        }
    }
}
