//! `Streams.Append` (one append per call: options, then the events) and `Streams.BatchAppend`
//! (many appends per call, each in chunks under a correlation id, answered as each completes).

use super::convert;
use super::proto::event_store::client::streams::{
    append_req, append_resp, batch_append_req, batch_append_resp, AppendReq, AppendResp,
    BatchAppendReq, BatchAppendResp,
};
use super::proto::event_store::client::{self as shared};
use super::proto::google::rpc;
use crate::types::*;
use crate::{EventStore, StoreError};
use futures::StreamExt;
use prost::Message;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::{mpsc, Semaphore};
use tonic::{Status, Streaming};

/// Appends of one `BatchAppend` call being stored at once; more wait for a place.
pub(super) const BATCH_APPENDS_IN_FLIGHT_MAX: usize = 64;
/// Appends of one `BatchAppend` call still receiving chunks at once.
const BATCH_APPENDS_OPEN_MAX: usize = 64;
/// Replies buffered per `BatchAppend` call before appends wait for the client.
const BATCH_REPLIES_BUFFERED_MAX: usize = 256;

fn expected_of_append(
    option: Option<append_req::options::ExpectedStreamRevision>,
) -> Result<ExpectedRevision, Status> {
    use append_req::options::ExpectedStreamRevision as E;
    match option {
        Some(E::Revision(n)) => Ok(ExpectedRevision::Exact(n)),
        Some(E::NoStream(_)) => Ok(ExpectedRevision::NoStream),
        Some(E::Any(_)) => Ok(ExpectedRevision::Any),
        Some(E::StreamExists(_)) => Ok(ExpectedRevision::StreamExists),
        None => Err(convert::invalid_argument(
            "an append needs an expected revision",
        )),
    }
}

/// Reads one `Append` call whole (bounded), appends, answers as EventStoreDB does: a wrong
/// expected revision inside the response, other failures as a status.
pub(super) async fn append(
    store: &dyn EventStore,
    check: Option<&super::AppendCheck>,
    mut requests: Streaming<AppendReq>,
) -> Result<AppendResp, Status> {
    let first = requests
        .message()
        .await?
        .and_then(|r| r.content)
        .ok_or_else(|| convert::invalid_argument("an append starts with its options"))?;
    let append_req::Content::Options(options) = first else {
        return Err(convert::invalid_argument(
            "an append starts with its options",
        ));
    };
    let stream = convert::stream_name(options.stream_identifier.as_ref())?;
    let expected = expected_of_append(options.expected_stream_revision)?;
    let mut events = Vec::new();
    while let Some(request) = requests.message().await? {
        match request.content {
            Some(append_req::Content::ProposedMessage(m)) => {
                if events.len() == APPEND_EVENTS_MAX {
                    return Err(convert::status_of(StoreError::InvalidInput(
                        InvalidInput::TooManyEvents(events.len() + 1),
                    )));
                }
                events.push(convert::proposed_event(
                    m.id,
                    &m.metadata,
                    m.custom_metadata,
                    m.data,
                )?);
            }
            Some(append_req::Content::Options(_)) => {
                return Err(convert::invalid_argument(
                    "an append has one options message",
                ))
            }
            None => return Err(convert::invalid_argument("an empty append message")),
        }
    }
    checked(check, &stream, &events)?;
    match store.append(&stream, expected, events).await {
        Ok(result) => Ok(success(result)),
        Err(StoreError::WrongExpectedRevision {
            expected, actual, ..
        }) => Ok(wrong_expected_version(expected, actual)),
        Err(error) => Err(convert::status_of(error)),
    }
}

fn checked(
    check: Option<&super::AppendCheck>,
    stream: &StreamName,
    events: &[EventData],
) -> Result<(), Status> {
    match check {
        Some(check) => check(stream, events).map_err(convert::invalid_argument),
        None => Ok(()),
    }
}

fn success(result: AppendResult) -> AppendResp {
    use append_resp::success::{CurrentRevisionOption, PositionOption};
    AppendResp {
        result: Some(append_resp::Result::Success(append_resp::Success {
            current_revision_option: Some(CurrentRevisionOption::CurrentRevision(
                result.next_expected_revision,
            )),
            position_option: Some(PositionOption::Position(append_resp::Position {
                commit_position: result.position,
                prepare_position: result.position,
            })),
        })),
    }
}

fn wrong_expected_version(expected: ExpectedRevision, actual: Option<u64>) -> AppendResp {
    use append_resp::wrong_expected_version::{
        CurrentRevisionOption, CurrentRevisionOption2060, ExpectedRevisionOption,
        ExpectedRevisionOption2060,
    };
    let empty = shared::Empty {};
    let current = match actual {
        Some(r) => CurrentRevisionOption::CurrentRevision(r),
        None => CurrentRevisionOption::CurrentNoStream(empty),
    };
    let current_20_6_0 = match actual {
        Some(r) => CurrentRevisionOption2060::CurrentRevision2060(r),
        None => CurrentRevisionOption2060::NoStream2060(empty),
    };
    let expected_now = match expected {
        ExpectedRevision::Exact(r) => ExpectedRevisionOption::ExpectedRevision(r),
        ExpectedRevision::Any => ExpectedRevisionOption::ExpectedAny(empty),
        ExpectedRevision::StreamExists => ExpectedRevisionOption::ExpectedStreamExists(empty),
        ExpectedRevision::NoStream => ExpectedRevisionOption::ExpectedNoStream(empty),
    };
    let expected_20_6_0 = match expected {
        ExpectedRevision::Exact(r) => Some(ExpectedRevisionOption2060::ExpectedRevision2060(r)),
        ExpectedRevision::Any => Some(ExpectedRevisionOption2060::Any2060(empty)),
        ExpectedRevision::StreamExists => Some(ExpectedRevisionOption2060::StreamExists2060(empty)),
        ExpectedRevision::NoStream => None,
    };
    AppendResp {
        result: Some(append_resp::Result::WrongExpectedVersion(
            append_resp::WrongExpectedVersion {
                current_revision_option_20_6_0: Some(current_20_6_0),
                expected_revision_option_20_6_0: expected_20_6_0,
                current_revision_option: Some(current),
                expected_revision_option: Some(expected_now),
            },
        )),
    }
}

/// One append of a `BatchAppend` call, gathered from its chunks.
struct PendingBatch {
    correlation_id: Option<shared::Uuid>,
    options: Option<batch_append_req::Options>,
    events: Vec<EventData>,
    /// The first problem with a chunk: answered once the batch is final.
    refused: Option<Status>,
}

pub(super) type BatchReplies = mpsc::Receiver<Result<BatchAppendResp, Status>>;

/// Starts answering a `BatchAppend` call: chunks are gathered per correlation id, and each
/// final batch is appended on its own task, so that concurrent batches share group commits.
pub(super) fn batch_append(
    store: Arc<dyn EventStore>,
    check: Option<super::AppendCheck>,
    requests: Streaming<BatchAppendReq>,
    mut closing: tokio::sync::watch::Receiver<bool>,
) -> BatchReplies {
    let (replies, receiver) = mpsc::channel(BATCH_REPLIES_BUFFERED_MAX);
    tokio::spawn(async move {
        // On shutdown, appends under way finish and answer; no new ones are taken.
        tokio::select! {
            () = gather_batches(store, check, requests, replies) => {}
            _ = closing.wait_for(|closing| *closing) => {}
        }
    });
    receiver
}

async fn gather_batches(
    store: Arc<dyn EventStore>,
    check: Option<super::AppendCheck>,
    mut requests: Streaming<BatchAppendReq>,
    replies: mpsc::Sender<Result<BatchAppendResp, Status>>,
) {
    let in_flight = Arc::new(Semaphore::new(BATCH_APPENDS_IN_FLIGHT_MAX));
    let mut open: HashMap<uuid::Uuid, PendingBatch> = HashMap::new();
    while let Some(request) = requests.next().await {
        let request = match request {
            Ok(request) => request,
            // The client went away or sent garbage: appends under way still finish.
            Err(_) => return,
        };
        let key = match convert::uuid_from_proto(request.correlation_id.clone()) {
            Ok(key) => key,
            Err(status) => {
                let _ = replies.send(Err(status)).await;
                return;
            }
        };
        if !open.contains_key(&key) && open.len() == BATCH_APPENDS_OPEN_MAX {
            let status = convert::invalid_argument(format!(
                "at most {BATCH_APPENDS_OPEN_MAX} batches may be open at once"
            ));
            let _ = replies.send(Err(status)).await;
            return;
        }
        let batch = open.entry(key).or_insert_with(|| PendingBatch {
            correlation_id: request.correlation_id.clone(),
            options: None,
            events: Vec::new(),
            refused: None,
        });
        take_chunk(batch, request.options, request.proposed_messages);
        if !request.is_final {
            continue;
        }
        let Some(batch) = open.remove(&key) else {
            continue;
        };
        let Ok(permit) = Arc::clone(&in_flight).acquire_owned().await else {
            return;
        };
        let store = Arc::clone(&store);
        let check = check.clone();
        let replies = replies.clone();
        tokio::spawn(async move {
            let reply = complete(&*store, check.as_ref(), batch).await;
            drop(permit);
            let _ = replies.send(Ok(reply)).await;
        });
    }
}

fn take_chunk(
    batch: &mut PendingBatch,
    options: Option<batch_append_req::Options>,
    messages: Vec<batch_append_req::ProposedMessage>,
) {
    if batch.options.is_none() {
        batch.options = options;
    }
    if batch.refused.is_some() {
        return;
    }
    if batch.events.len() + messages.len() > APPEND_EVENTS_MAX {
        batch.refused = Some(convert::status_of(StoreError::InvalidInput(
            InvalidInput::TooManyEvents(batch.events.len() + messages.len()),
        )));
        batch.events.clear();
        return;
    }
    for m in messages {
        match convert::proposed_event(m.id, &m.metadata, m.custom_metadata, m.data) {
            Ok(event) => batch.events.push(event),
            Err(status) => {
                batch.refused = Some(status);
                batch.events.clear();
                return;
            }
        }
    }
}

async fn complete(
    store: &dyn EventStore,
    check: Option<&super::AppendCheck>,
    batch: PendingBatch,
) -> BatchAppendResp {
    use batch_append_req::options::ExpectedStreamPosition as E;
    let stream_identifier = batch
        .options
        .as_ref()
        .and_then(|o| o.stream_identifier.clone());
    let echo = batch
        .options
        .as_ref()
        .and_then(|o| o.expected_stream_position);
    let result = async {
        if let Some(status) = batch.refused {
            return Err(status);
        }
        let options = batch
            .options
            .as_ref()
            .ok_or_else(|| convert::invalid_argument("a batch needs its options"))?;
        let stream = convert::stream_name(options.stream_identifier.as_ref())?;
        let expected = match &options.expected_stream_position {
            Some(E::StreamPosition(n)) => ExpectedRevision::Exact(*n),
            Some(E::NoStream(_)) => ExpectedRevision::NoStream,
            Some(E::Any(_)) => ExpectedRevision::Any,
            Some(E::StreamExists(_)) => ExpectedRevision::StreamExists,
            None => {
                return Err(convert::invalid_argument(
                    "a batch needs an expected revision",
                ))
            }
        };
        checked(check, &stream, &batch.events)?;
        store
            .append(&stream, expected, batch.events)
            .await
            .map_err(batch_status)
    }
    .await;
    let result = match result {
        Ok(result) => batch_append_resp::Result::Success(batch_success(result)),
        Err(status) => batch_append_resp::Result::Error(rpc_status(&status)),
    };
    BatchAppendResp {
        correlation_id: batch.correlation_id,
        result: Some(result),
        stream_identifier: Some(stream_identifier.unwrap_or_default()),
        expected_stream_position: echo.map(|e| match e {
            E::StreamPosition(n) => batch_append_resp::ExpectedStreamPosition::StreamPosition(n),
            E::NoStream(x) => batch_append_resp::ExpectedStreamPosition::NoStream(x),
            E::Any(x) => batch_append_resp::ExpectedStreamPosition::Any(x),
            E::StreamExists(x) => batch_append_resp::ExpectedStreamPosition::StreamExists(x),
        }),
    }
}

/// A batch's failure as a status; a wrong expected revision carries EventStoreDB's
/// `WrongExpectedVersion` detail.
fn batch_status(error: StoreError) -> Status {
    if let StoreError::WrongExpectedRevision {
        expected, actual, ..
    } = &error
    {
        let detail = wrong_expected_detail(*expected, *actual);
        let status = convert::status_of(error);
        return Status::with_details(status.code(), status.message(), detail.into());
    }
    convert::status_of(error)
}

fn wrong_expected_detail(expected: ExpectedRevision, actual: Option<u64>) -> Vec<u8> {
    use shared::wrong_expected_version::{
        CurrentStreamRevisionOption, ExpectedStreamPositionOption,
    };
    let detail = shared::WrongExpectedVersion {
        current_stream_revision_option: Some(match actual {
            Some(r) => CurrentStreamRevisionOption::CurrentStreamRevision(r),
            None => CurrentStreamRevisionOption::CurrentNoStream(()),
        }),
        expected_stream_position_option: Some(match expected {
            ExpectedRevision::Exact(r) => ExpectedStreamPositionOption::ExpectedStreamPosition(r),
            ExpectedRevision::Any => ExpectedStreamPositionOption::ExpectedAny(()),
            ExpectedRevision::StreamExists => {
                ExpectedStreamPositionOption::ExpectedStreamExists(())
            }
            ExpectedRevision::NoStream => ExpectedStreamPositionOption::ExpectedNoStream(()),
        }),
    };
    let any = prost_types::Any {
        type_url: "type.googleapis.com/event_store.client.WrongExpectedVersion".to_owned(),
        value: detail.encode_to_vec(),
    };
    any.encode_to_vec()
}

fn rpc_status(status: &Status) -> rpc::Status {
    let details = Some(status.details())
        .filter(|d| !d.is_empty())
        .and_then(|d| prost_types::Any::decode(d).ok());
    rpc::Status {
        code: status.code() as i32,
        message: status.message().to_owned(),
        details,
    }
}

fn batch_success(result: AppendResult) -> batch_append_resp::Success {
    use batch_append_resp::success::{CurrentRevisionOption, PositionOption};
    batch_append_resp::Success {
        current_revision_option: Some(CurrentRevisionOption::CurrentRevision(
            result.next_expected_revision,
        )),
        position_option: Some(PositionOption::Position(shared::AllStreamPosition {
            commit_position: result.position,
            prepare_position: result.position,
        })),
    }
}
