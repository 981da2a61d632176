//! The EventStoreDB client protocol over any [`EventStore`]: what lets an official
//! EventStoreDB client, in any language, read, append to and subscribe to an embedded ledger,
//! and what the EventStoreDB backend is tested against in CI.
//!
//! Served: `ServerFeatures.GetSupportedMethods`, `Streams.Read` (counted reads of a stream or
//! `$all` in both directions, catch-up subscriptions with server-side filters and
//! checkpoints), `Streams.Append`, `Streams.BatchAppend`, and `Gossip.Read` (this one node, the
//! leader). Everything else answers `UNIMPLEMENTED`, including `Delete` and `Tombstone`: the
//! ledger's log is never rewritten. Calls but the first two need credentials, decided by a
//! [`NodeAuth`].

// `tonic::Status` is the protocol's error, and what the generated services return.
#![allow(clippy::result_large_err)]

mod accept;
mod append;
mod auth;
mod convert;
pub mod proto;
mod read;
pub(crate) mod tls;

pub use accept::{spoke_in_time, FIRST_BYTES_TIMEOUT};
pub use auth::{parse_authorization, Access, BasicUsers, Credentials, Denied, NodeAuth, NodeUser};
pub use tls::{HandshakeFailed, NodeStream, NodeTls, TlsError};

use crate::EventStore;
use proto::event_store::client::gossip::{self, gossip_server};
use proto::event_store::client::server_features::{self, server_features_server};
use proto::event_store::client::streams::{self, streams_server};
use proto::event_store::client::Empty;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

/// The server version this node reports: the protocol it speaks is EventStoreDB 24.10's.
pub const SERVER_VERSION: &str = "24.10.0";
/// Subscriptions open at once on one node; one more answers `RESOURCE_EXHAUSTED`.
pub const SUBSCRIPTIONS_MAX_DEFAULT: usize = 1_024;

/// How long a connection may be silent before the node pings it, and how long the ping may go
/// unanswered before the connection is closed: KurrentDB's defaults (`KeepAliveInterval`,
/// `KeepAliveTimeout`). A subscriber whose network went away without a word is found out in
/// 20 s, instead of when TCP gives up on it, minutes later.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// What a node's owner requires of every event appended through it, beyond the store's own
/// rules: the ledger's, that no event is one no ledger writes. A refusal is the client's error.
pub type AppendCheck =
    Arc<dyn Fn(&crate::StreamName, &[crate::EventData]) -> Result<(), String> + Send + Sync>;

/// The EventStoreDB protocol over `store`.
#[derive(Clone)]
pub struct Node {
    store: Arc<dyn EventStore>,
    auth: Arc<dyn NodeAuth>,
    append_check: Option<AppendCheck>,
    /// What gossip tells a client to connect to when its connection does not say where it
    /// came in.
    advertised: SocketAddr,
    instance_id: uuid::Uuid,
    /// Turns true when the node shuts down: subscriptions end, so that connections close.
    closing: tokio::sync::watch::Receiver<bool>,
    /// One permit per open subscription.
    subscriptions: OpenSubscriptions,
    /// Plaintext without.
    tls: Option<NodeTls>,
}

/// How many subscriptions a node has open, for its owner's metrics.
#[derive(Clone)]
pub struct OpenSubscriptions {
    permits: Arc<tokio::sync::Semaphore>,
    max: usize,
}

impl OpenSubscriptions {
    fn new(max: usize) -> OpenSubscriptions {
        OpenSubscriptions {
            permits: Arc::new(tokio::sync::Semaphore::new(max)),
            max,
        }
    }

    pub fn open(&self) -> usize {
        self.max.saturating_sub(self.permits.available_permits())
    }
}

impl Node {
    pub fn new(
        store: Arc<dyn EventStore>,
        auth: Arc<dyn NodeAuth>,
        advertised: SocketAddr,
    ) -> Node {
        Node {
            store,
            auth,
            append_check: None,
            advertised,
            instance_id: uuid::Uuid::new_v4(),
            closing: tokio::sync::watch::channel(false).1,
            subscriptions: OpenSubscriptions::new(SUBSCRIPTIONS_MAX_DEFAULT),
            tls: None,
        }
    }

    /// Speaks TLS with this certificate, and only TLS.
    pub fn with_tls(mut self, tls: NodeTls) -> Node {
        self.tls = Some(tls);
        self
    }

    /// Appends go through `check` first; a refused one writes nothing.
    pub fn with_append_check(mut self, check: AppendCheck) -> Node {
        self.append_check = Some(check);
        self
    }

    /// At most `max` subscriptions at once instead of [`SUBSCRIPTIONS_MAX_DEFAULT`].
    pub fn with_subscriptions_max(mut self, max: usize) -> Node {
        self.subscriptions = OpenSubscriptions::new(max);
        self
    }

    /// A count of this node's open subscriptions that stays current while it serves.
    pub fn subscriptions(&self) -> OpenSubscriptions {
        self.subscriptions.clone()
    }

    fn authorize<T>(&self, request: &Request<T>, access: Access) -> Result<(), Status> {
        let header =
            match request.metadata().get("authorization") {
                None => None,
                Some(value) => Some(value.to_str().map_err(|_| {
                    Status::unauthenticated("the authorization header cannot be read")
                })?),
            };
        let credentials = parse_authorization(header).map_err(denied)?;
        self.auth
            .authorize(credentials.as_ref(), access)
            .map_err(denied)
    }

    /// Serves on `listener` until `shutdown` resolves. Then subscriptions end with
    /// `UNAVAILABLE` (clients re-subscribe elsewhere or later) and other calls finish.
    pub async fn serve(
        mut self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), tonic::transport::Error> {
        let (closing, closed) = tokio::sync::watch::channel(false);
        self.closing = closed;
        let shutdown = async move {
            shutdown.await;
            let _ = closing.send(true);
        };
        let (incoming, accepting) = accept::spoken_connections(listener, self.tls.clone());
        let served = tonic::transport::Server::builder()
            .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
            .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
            .add_service(streams_server::StreamsServer::new(self.clone()))
            .add_service(server_features_server::ServerFeaturesServer::new(
                self.clone(),
            ))
            .add_service(gossip_server::GossipServer::new(self))
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await;
        // Awaited, so that the listener is closed when this returns: the address can be
        // bound again at once.
        accepting.abort();
        let _ = accepting.await;
        served
    }
}

fn denied(denied: Denied) -> Status {
    let mut status = match &denied {
        Denied::Unauthenticated(message) => Status::unauthenticated(message.clone()),
        Denied::Forbidden(message) => Status::permission_denied(message.clone()),
    };
    convert::insert(&mut status, "exception", "access-denied");
    status
}

type ReplyStream<T> = Pin<Box<dyn tokio_stream::Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl streams_server::Streams for Node {
    type ReadStream = ReplyStream<streams::ReadResp>;

    async fn read(
        &self,
        request: Request<streams::ReadReq>,
    ) -> Result<Response<Self::ReadStream>, Status> {
        self.authorize(&request, Access::Read)?;
        if let Some(not_found) = read::of_a_reserved_stream(request.get_ref())? {
            let reply = Ok(streams::ReadResp {
                content: Some(not_found),
            });
            return Ok(Response::new(Box::pin(tokio_stream::iter([reply]))));
        }
        let plan = read::ReadPlan::new(request.into_inner())?;
        let permit = if plan.is_subscription() {
            let permit = Arc::clone(&self.subscriptions.permits)
                .try_acquire_owned()
                .map_err(|_| Status::resource_exhausted("too many subscriptions are open"))?;
            Some(permit)
        } else {
            None
        };
        let (replies, receiver) = tokio::sync::mpsc::channel(read::READ_REPLIES_BUFFERED_MAX);
        let (store, closing) = (Arc::clone(&self.store), self.closing.clone());
        tokio::spawn(async move {
            plan.run(store, replies, closing).await;
            drop(permit);
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }

    async fn append(
        &self,
        request: Request<Streaming<streams::AppendReq>>,
    ) -> Result<Response<streams::AppendResp>, Status> {
        self.authorize(&request, Access::Append)?;
        append::append(
            &*self.store,
            self.append_check.as_ref(),
            request.into_inner(),
        )
        .await
        .map(Response::new)
    }

    async fn delete(
        &self,
        _request: Request<streams::DeleteReq>,
    ) -> Result<Response<streams::DeleteResp>, Status> {
        Err(Status::unimplemented("the ledger's log is never rewritten"))
    }

    async fn tombstone(
        &self,
        _request: Request<streams::TombstoneReq>,
    ) -> Result<Response<streams::TombstoneResp>, Status> {
        Err(Status::unimplemented("the ledger's log is never rewritten"))
    }

    type BatchAppendStream = ReplyStream<streams::BatchAppendResp>;

    async fn batch_append(
        &self,
        request: Request<Streaming<streams::BatchAppendReq>>,
    ) -> Result<Response<Self::BatchAppendStream>, Status> {
        self.authorize(&request, Access::Append)?;
        let replies = append::batch_append(
            Arc::clone(&self.store),
            self.append_check.clone(),
            request.into_inner(),
            self.closing.clone(),
        );
        Ok(Response::new(Box::pin(ReceiverStream::new(replies))))
    }
}

#[tonic::async_trait]
impl server_features_server::ServerFeatures for Node {
    async fn get_supported_methods(
        &self,
        _request: Request<Empty>,
    ) -> Result<Response<server_features::SupportedMethods>, Status> {
        let method =
            |service: &str, method: &str, features: &[&str]| server_features::SupportedMethod {
                method_name: method.to_owned(),
                service_name: service.to_owned(),
                features: features.iter().map(|f| (*f).to_owned()).collect(),
            };
        let streams = "event_store.client.streams.streams";
        Ok(Response::new(server_features::SupportedMethods {
            methods: vec![
                method(streams, "read", &["position", "events"]),
                method(streams, "append", &[]),
                method(streams, "batchappend", &[]),
                method("event_store.client.gossip.gossip", "read", &[]),
                method(
                    "event_store.client.server_features.serverfeatures",
                    "getsupportedmethods",
                    &[],
                ),
            ],
            event_store_server_version: SERVER_VERSION.to_owned(),
        }))
    }
}

#[tonic::async_trait]
impl gossip_server::Gossip for Node {
    /// The node is where the client reached it: a node bound to every interface answers
    /// each client with the address of the one it came in on, which other clients on that
    /// network can reach too, where `advertised` would be loopback.
    async fn read(&self, request: Request<Empty>) -> Result<Response<gossip::ClusterInfo>, Status> {
        let reached = request.local_addr().unwrap_or(self.advertised);
        let member = gossip::MemberInfo {
            instance_id: Some(convert::uuid_to_proto(
                self.instance_id,
                convert::UuidFormat::String,
            )),
            time_stamp: chrono::Utc::now().timestamp_micros() * 10,
            state: gossip::member_info::VNodeState::Leader as i32,
            is_alive: true,
            http_end_point: Some(gossip::EndPoint {
                address: reached.ip().to_string(),
                port: u32::from(reached.port()),
            }),
        };
        Ok(Response::new(gossip::ClusterInfo {
            members: vec![member],
        }))
    }
}
