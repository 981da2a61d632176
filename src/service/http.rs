//! The accept loop of both HTTP servers (the starting answers and the service proper): what
//! `axum::serve` does, plus the bounds it cannot be given. A client that sends nothing, stops
//! halfway through a request's head, or holds an HTTP/2 connection open with nothing asked
//! would otherwise keep its connection for good, and a graceful stop waits for every
//! connection: such a client kept a start from ever taking over, and a SIGTERM from ever
//! stopping the service.

use axum::body::Body;
use axum::extract::Request;
use axum::serve::Listener;
use axum::Router;
use bytes::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use ledger_store::node::{HandshakeFailed, NodeStream, NodeTls};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower::ServiceExt;

/// How long a client may take to send a request's line and headers (HTTP/1). Clients send
/// them in one write; hyper's default of 30 s would make a stop wait that long for one that
/// never finishes. Between requests it is also how long an idle HTTP/1 connection is kept.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a connection with no request in flight is kept: HTTP/2's counterpart of the
/// head deadline, which hyper applies to HTTP/1 only. A response still streaming (a
/// subscription) counts as in flight, however long it runs.
const IDLE_TIMEOUT: Duration = HEADER_READ_TIMEOUT;

/// How long what the service sent may stay unacknowledged, or unread behind a full window,
/// before the kernel gives up on the connection. Without it an HTTP/1 subscriber whose
/// network vanished held its subscription for TCP's ~15 minutes of retries, and one that
/// stopped reading held it for good. HTTP/2's pings find a vanished one in a similar time.
const UNACKNOWLEDGED_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves `app` on `listener` (over TLS only, with `tls`) until `shutdown` resolves; then
/// stops accepting, lets requests in flight finish, and after `drain` closes the connections
/// still open.
pub async fn serve(
    mut listener: TcpListener,
    app: Router,
    tls: Option<NodeTls>,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    // A subscriber over HTTP/2 whose network went away is found out by its unanswered ping,
    // as on the gRPC node, not minutes later when TCP gives up.
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(ledger_store::node::KEEPALIVE_INTERVAL))
        .keep_alive_timeout(ledger_store::node::KEEPALIVE_TIMEOUT);
    // Dropped to tell every connection to finish what it has in flight and close.
    let (stop, stopping) = watch::channel(());
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            // axum's accept: it retries past a failed accept (EMFILE waits a second).
            accepted = Listener::accept(&mut listener) => accepted,
            () = &mut shutdown => break,
        };
        connections.spawn(serve_connection(
            stream,
            tls.clone(),
            builder.clone(),
            app.clone(),
            stopping.clone(),
        ));
        // Reap the connections that ended, so that the set holds only open ones.
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    drop(stop);
    let drained = tokio::time::timeout(drain, async {
        while connections.join_next().await.is_some() {}
    });
    if drained.await.is_err() {
        tracing::warn!(
            open = connections.len(),
            "HTTP connections still open after the drain; closing them"
        );
    }
    connections.shutdown().await;
}

async fn serve_connection(
    stream: TcpStream,
    tls: Option<NodeTls>,
    builder: Builder<TokioExecutor>,
    app: Router,
    mut stopping: watch::Receiver<()>,
) {
    // hyper's protocol sniff waits for the first bytes with no deadline of its own; a stop
    // does not wait for them either.
    let spoke = tokio::select! {
        spoke = ledger_store::node::spoke_in_time(&stream) => spoke,
        _ = stopping.changed() => false,
    };
    if !spoke {
        return;
    }
    if let Err(error) =
        socket2::SockRef::from(&stream).set_tcp_user_timeout(Some(UNACKNOWLEDGED_TIMEOUT))
    {
        tracing::debug!(%error, "no deadline on unacknowledged bytes for this connection");
    }
    let stream = match tls {
        None => NodeStream::Plain(stream),
        Some(tls) => {
            let peer = stream.peer_addr().ok();
            let handshake = tokio::select! {
                done = tls.accept_in_time(stream) => done,
                _ = stopping.changed() => return,
            };
            match handshake {
                Ok(stream) => stream,
                Err(failure) => return handshake_failed(peer, failure),
            }
        }
    };
    let activity = Arc::new(Activity::new());
    let service = {
        let activity = Arc::clone(&activity);
        hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
            let in_flight = activity.begin();
            let answer = app.clone().oneshot(request);
            async move {
                let response = answer.await?;
                Ok::<_, Infallible>(response.map(|body| {
                    Body::new(InFlightBody {
                        body,
                        _in_flight: in_flight,
                    })
                }))
            }
        })
    };
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    tokio::pin!(connection);
    tokio::select! {
        ended = connection.as_mut() => return connection_ended(ended),
        // The sender is never sent on: its drop is the signal.
        _ = stopping.changed() => {}
        () = activity.idle_for(IDLE_TIMEOUT) => {}
    }
    // HTTP/2's GOAWAY, or HTTP/1's last response; either way requests in flight finish.
    connection.as_mut().graceful_shutdown();
    // HTTP/2's graceful close waits for the client to answer a ping: one that never does is
    // not waited for past another idle period.
    tokio::select! {
        ended = connection.as_mut() => connection_ended(ended),
        () = activity.idle_for(IDLE_TIMEOUT) => {
            tracing::debug!("dropping a connection that did not close when asked");
        }
    }
}

/// Said in the log, as a client speaking plain HTTP to an HTTPS port, or one that does not
/// trust the certificate, sees only its connection closed; and counted, so that such clients
/// show on a dashboard too.
fn handshake_failed(peer: Option<std::net::SocketAddr>, failure: HandshakeFailed) {
    let reason = match failure {
        HandshakeFailed::Refused(error) => {
            tracing::info!(
                ?peer,
                %error,
                "an HTTPS client's TLS handshake failed (plain HTTP to this HTTPS port, or a \
                 client that does not trust its certificate?)"
            );
            "refused"
        }
        HandshakeFailed::TimedOut => {
            tracing::info!(
                ?peer,
                "an HTTPS client did not finish its TLS handshake in time"
            );
            "timeout"
        }
    };
    metrics::counter!("ledger_tls_handshakes_failed_total", "reason" => reason).increment(1);
}

fn connection_ended<E: std::fmt::Display>(ended: Result<(), E>) {
    if let Err(error) = ended {
        tracing::trace!(%error, "connection ended");
    }
}

/// A connection's requests in flight, and when the last of them ended. Kept in atomics and
/// looked at only when a deadline passes, so a request costs no timer and no wake-up.
struct Activity {
    opened: Instant,
    in_flight: AtomicUsize,
    last_ended_ms: AtomicU64,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            opened: Instant::now(),
            in_flight: AtomicUsize::new(0),
            last_ended_ms: AtomicU64::new(0),
        }
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(Arc::clone(self))
    }

    /// Since when nothing has been in flight, if nothing is.
    fn quiet_since(&self) -> Option<Instant> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let last_ended = self.last_ended_ms.load(Ordering::Relaxed);
        Some(self.opened + Duration::from_millis(last_ended))
    }

    /// Resolves once nothing has been in flight for `period`, counted from the call at the
    /// earliest.
    async fn idle_for(&self, period: Duration) {
        let from = Instant::now();
        let mut deadline = from + period;
        loop {
            tokio::time::sleep_until(deadline).await;
            deadline = match self.quiet_since() {
                Some(since) if since.max(from) + period <= Instant::now() => return,
                Some(since) => since.max(from) + period,
                None => Instant::now() + period,
            };
        }
    }
}

/// One request, from its head until its response's body has been sent or dropped.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let activity = &self.0;
        let ended_ms = u64::try_from(activity.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        activity
            .last_ended_ms
            .fetch_max(ended_ms, Ordering::Relaxed);
        activity.in_flight.fetch_sub(1, Ordering::Release);
    }
}

/// A response's body that keeps its request counted in flight until it ends.
struct InFlightBody {
    body: Body,
    /// Held for its drop.
    _in_flight: InFlight,
}

impl http_body::Body for InFlightBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(context)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
