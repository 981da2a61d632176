//! The store, with each append timed for `/metrics`.

use async_trait::async_trait;
use ledger_store::{
    AllFrom, AppendResult, Direction, EventData, EventStore, ExpectedRevision, RecordedEvent,
    StoreError, StreamFrom, StreamName, SubscribeFrom, Subscription,
};

pub struct MeteredStore {
    inner: std::sync::Arc<dyn EventStore>,
}

impl MeteredStore {
    pub fn new(inner: std::sync::Arc<dyn EventStore>) -> MeteredStore {
        MeteredStore { inner }
    }
}

#[async_trait]
impl EventStore for MeteredStore {
    async fn append(
        &self,
        stream: &StreamName,
        expected: ExpectedRevision,
        events: Vec<EventData>,
    ) -> Result<AppendResult, StoreError> {
        let started = std::time::Instant::now();
        let result = self.inner.append(stream, expected, events).await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(StoreError::WrongExpectedRevision { .. }) => "conflict",
            Err(_) => "error",
        };
        metrics::histogram!("ledger_append_seconds", "outcome" => outcome)
            .record(started.elapsed().as_secs_f64());
        result
    }

    async fn read_stream(
        &self,
        stream: &StreamName,
        from: StreamFrom,
        direction: Direction,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_stream(stream, from, direction, max).await
    }

    async fn read_all(
        &self,
        from: AllFrom,
        direction: Direction,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_all(from, direction, max).await
    }

    async fn subscribe_all(
        &self,
        from: SubscribeFrom,
    ) -> Result<Box<dyn Subscription>, StoreError> {
        self.inner.subscribe_all(from).await
    }

    async fn subscribe_stream(
        &self,
        stream: &StreamName,
        from: SubscribeFrom,
    ) -> Result<Box<dyn Subscription>, StoreError> {
        self.inner.subscribe_stream(stream, from).await
    }
}
