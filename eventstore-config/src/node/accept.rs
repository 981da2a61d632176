//! Connections are handed to a server once their client has spoken. An HTTP/2 server (the
//! node's gRPC) waits for the client's preface, and hyper's protocol sniff (the binary's HTTP)
//! for the first bytes, with no deadline of their own: a client that connects and sends
//! nothing would hold its connection for as long as it liked.

use super::tls::{HandshakeFailed, NodeStream, NodeTls};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;

/// How long a client may take, once connected, to say which protocol it speaks.
pub const FIRST_BYTES_TIMEOUT: Duration = Duration::from_secs(10);

/// What an HTTP/2 client sends first.
const HTTP2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Connections that have spoken, waiting for the server to take them.
const SPOKEN_QUEUE_CONNECTIONS: usize = 64;

/// Whether the client sent, within `FIRST_BYTES_TIMEOUT`, HTTP/2's preface whole, or a byte
/// that leaves it (HTTP/1), or hung up: enough for a server to go on without waiting on it.
pub async fn spoke_in_time(stream: &TcpStream) -> bool {
    let sniff = async {
        let mut first = [0; HTTP2_PREFACE.len()];
        loop {
            let sent = stream.peek(&mut first).await?;
            if sent == 0 || sent == first.len() || !HTTP2_PREFACE.starts_with(&first[..sent]) {
                return Ok::<(), std::io::Error>(());
            }
            // Part of the preface: peeking again at once would see the same bytes.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    matches!(
        tokio::time::timeout(FIRST_BYTES_TIMEOUT, sniff).await,
        Ok(Ok(()))
    )
}

/// The first byte of a TLS handshake record: what a client sends that expects TLS.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// Accepts on `listener` and yields each connection once its client has spoken in time (and,
/// with `tls`, finished its handshake in time), with Nagle off: small frames (an append's
/// options, then its events) must not wait. The task accepts until it is aborted.
pub(super) fn spoken_connections(
    listener: TcpListener,
    tls: Option<NodeTls>,
) -> (ReceiverStream<std::io::Result<NodeStream>>, JoinHandle<()>) {
    let (spoken, incoming) = mpsc::channel(SPOKEN_QUEUE_CONNECTIONS);
    let accepting = tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of file descriptors, most likely: wait for some to be closed.
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            let spoken = spoken.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                if !spoke_in_time(&stream).await {
                    return;
                }
                if let Err(error) = stream.set_nodelay(true) {
                    tracing::warn!(%error, "cannot set TCP_NODELAY");
                }
                if let Some(stream) = secured(stream, tls.as_ref()).await {
                    let _ = spoken.send(Ok(stream)).await;
                }
            });
        }
    });
    (ReceiverStream::new(incoming), accepting)
}

/// The connection as the node speaks it, or `None` (said in the log) when the client and the
/// node disagree on TLS: the client only sees its connection closed.
async fn secured(stream: TcpStream, tls: Option<&NodeTls>) -> Option<NodeStream> {
    let peer = stream.peer_addr().ok();
    let Some(tls) = tls else {
        let mut first = [0; 1];
        if matches!(stream.peek(&mut first).await, Ok(1)) && first[0] == TLS_HANDSHAKE_RECORD {
            tracing::info!(
                ?peer,
                "a client began a TLS handshake; this node speaks plaintext \
                 (give it a certificate, or connect with tls=false)"
            );
            return None;
        }
        return Some(NodeStream::Plain(stream));
    };
    match tls.accept_in_time(stream).await {
        Ok(stream) => Some(stream),
        Err(HandshakeFailed::Refused(error)) => {
            tracing::info!(
                ?peer,
                %error,
                "a client's TLS handshake failed (a client with tls=false, or one that does \
                 not trust the node's certificate?)"
            );
            None
        }
        Err(HandshakeFailed::TimedOut) => {
            tracing::info!(?peer, "a client did not finish its TLS handshake in time");
            None
        }
    }
}
