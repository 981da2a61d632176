//! `ledger bench grpc`: appends and a catch-up read through the embedded node's EventStoreDB
//! protocol (the `eventstore` client over loopback gRPC, the EventStoreDB backend), next to the
//! same work on the embedded store in process, measured in one run so that the ratio means
//! something on a noisy machine.

use crate::bench::{BenchError, Throughput};
use ledger_store::node::{BasicUsers, Node, NodeUser};
use ledger_store::{
    EventData, EventStore, EventStoreDbOptions, EventStoreDbStore, ExpectedRevision, SqliteStore,
    StoreError, StreamName, SubscribeFrom,
};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

/// The data of one benchmark event: about the size of a ledger event.
const EVENT_DATA_BYTES: usize = 600;

#[derive(Clone, Copy, Debug)]
pub struct GrpcFigures {
    pub producers: usize,
    pub append_in_process: Throughput,
    /// Through the official client (the EventStoreDB backend).
    pub append_grpc: Throughput,
    /// Through a plain tonic client with `TCP_NODELAY`: the node without the official
    /// client's connection settings.
    pub append_grpc_nodelay: Throughput,
}

#[derive(Clone, Copy, Debug)]
pub struct CatchUpFigures {
    pub read_in_process: Throughput,
    pub read_grpc: Throughput,
}

fn event(n: usize) -> EventData {
    let padding = "x".repeat(EVENT_DATA_BYTES.saturating_sub(20));
    EventData {
        event_id: uuid::Uuid::new_v4(),
        event_type: "BenchAppended".to_owned(),
        data: format!("{{\"n\":{n},\"p\":\"{padding}\"}}").into_bytes(),
        metadata: b"{}".to_vec(),
        recorded_at: None,
    }
}

/// `producers` tasks each append `appends_per_producer` single events to streams of their own.
async fn appends(
    store: Arc<dyn EventStore>,
    producers: usize,
    appends_per_producer: usize,
) -> Result<Throughput, BenchError> {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for p in 0..producers {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            for i in 0..appends_per_producer {
                let stream = StreamName::new(format!("order-bench-{p}-{}", i % 8))
                    .map_err(StoreError::from)?;
                store
                    .append(&stream, ExpectedRevision::Any, vec![event(i)])
                    .await?;
            }
            Ok::<(), BenchError>(())
        }));
    }
    for task in tasks {
        task.await
            .map_err(|e| BenchError::Command(e.to_string()))??;
    }
    Ok(Throughput {
        operations: (producers * appends_per_producer) as u64,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// As `appends`, with a plain tonic client of the protocol on one `TCP_NODELAY` connection.
async fn appends_nodelay(
    address: std::net::SocketAddr,
    producers: usize,
    appends_per_producer: usize,
) -> Result<Throughput, BenchError> {
    use ledger_store::node::proto::event_store::client as proto;
    use proto::streams::{append_req, streams_client::StreamsClient, AppendReq};
    let failed = |e: &dyn std::fmt::Display| BenchError::Command(e.to_string());
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
        .map_err(|e| failed(&e))?
        .tcp_nodelay(true)
        .connect()
        .await
        .map_err(|e| failed(&e))?;
    let authorization: tonic::metadata::MetadataValue<_> =
        "Basic YmVuY2g6YmVuY2g=".parse().map_err(|e| failed(&e))?;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for p in 0..producers {
        let mut client = StreamsClient::new(channel.clone());
        let authorization = authorization.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..appends_per_producer {
                let options = append_req::Options {
                    stream_identifier: Some(proto::StreamIdentifier {
                        stream_name: format!("order-raw-{p}-{}", i % 8).into_bytes().into(),
                    }),
                    expected_stream_revision: Some(
                        append_req::options::ExpectedStreamRevision::Any(proto::Empty {}),
                    ),
                };
                let data = event(i);
                let message = append_req::ProposedMessage {
                    id: Some(proto::Uuid {
                        value: Some(proto::uuid::Value::String(data.event_id.to_string())),
                    }),
                    metadata: [
                        ("type".to_owned(), data.event_type),
                        ("content-type".to_owned(), "application/json".to_owned()),
                    ]
                    .into(),
                    custom_metadata: data.metadata.into(),
                    data: data.data.into(),
                };
                let messages = futures::stream::iter([
                    AppendReq {
                        content: Some(append_req::Content::Options(options)),
                    },
                    AppendReq {
                        content: Some(append_req::Content::ProposedMessage(message)),
                    },
                ]);
                let mut request = tonic::Request::new(messages);
                request
                    .metadata_mut()
                    .insert("authorization", authorization.clone());
                client
                    .append(request)
                    .await
                    .map_err(|e| BenchError::Command(e.to_string()))?;
            }
            Ok::<(), BenchError>(())
        }));
    }
    for task in tasks {
        task.await.map_err(|e| failed(&e))??;
    }
    Ok(Throughput {
        operations: (producers * appends_per_producer) as u64,
        seconds: started.elapsed().as_secs_f64(),
    })
}

async fn catch_up(store: &dyn EventStore, events: u64) -> Result<Throughput, BenchError> {
    let started = Instant::now();
    let mut subscription = store.subscribe_all(SubscribeFrom::Start).await?;
    for _ in 0..events {
        subscription.next().await?;
    }
    Ok(Throughput {
        operations: events,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// A node over a fresh embedded store in `dir`, and the backend connected to it.
async fn node_and_backend(
    dir: &Path,
) -> Result<
    (
        EventStoreDbStore,
        std::net::SocketAddr,
        tokio::sync::oneshot::Sender<()>,
    ),
    BenchError,
> {
    let store = SqliteStore::open(dir)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| BenchError::Command(e.to_string()))?;
    let address = listener
        .local_addr()
        .map_err(|e| BenchError::Command(e.to_string()))?;
    let users = BasicUsers::new(vec![NodeUser {
        username: "bench".into(),
        password: "bench".into(),
        append: true,
    }]);
    let node = Node::new(Arc::new(store), Arc::new(users), address);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(node.serve(listener, async {
        let _ = stopped.await;
    }));
    let url = format!("esdb://bench:bench@{address}?tls=false");
    let backend = EventStoreDbStore::connect(&url, EventStoreDbOptions::default()).await?;
    Ok((backend, address, stop))
}

/// Appends at each producer count, then a catch-up read of everything appended through gRPC.
pub async fn run(
    dir: &Path,
    producers: &[usize],
    appends_per_producer: usize,
) -> Result<(Vec<GrpcFigures>, CatchUpFigures), BenchError> {
    let local: Arc<dyn EventStore> = Arc::new(SqliteStore::open(&dir.join("in-process"))?);
    let (remote, address, stop) = node_and_backend(&dir.join("grpc")).await?;
    let remote: Arc<dyn EventStore> = Arc::new(remote);
    let mut figures = Vec::new();
    let mut total = 0u64;
    for &n in producers {
        let append_in_process = appends(Arc::clone(&local), n, appends_per_producer).await?;
        let append_grpc = appends(Arc::clone(&remote), n, appends_per_producer).await?;
        let append_grpc_nodelay = appends_nodelay(address, n, appends_per_producer).await?;
        total += 2 * (n * appends_per_producer) as u64;
        figures.push(GrpcFigures {
            producers: n,
            append_in_process,
            append_grpc,
            append_grpc_nodelay,
        });
    }
    // The same number of events on both sides: the in-process log holds half as many.
    let catch_up = CatchUpFigures {
        read_in_process: catch_up(&*local, total / 2).await?,
        read_grpc: catch_up(&*remote, total).await?,
    };
    let _ = stop.send(());
    Ok((figures, catch_up))
}
