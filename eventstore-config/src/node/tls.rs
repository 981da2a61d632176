//! TLS for the node. EventStoreDB's connection strings default to TLS, and some clients
//! (Python's `kurrentdbclient`) send credentials only over it.

use super::accept::FIRST_BYTES_TIMEOUT;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::pem::{Error, PemObject};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tonic::transport::server::{Connected, TcpConnectInfo};

/// What gRPC over TLS negotiates (RFC 7540 §3.3).
const ALPN_HTTP2: &[u8] = b"h2";
const ALPN_HTTP1: &[u8] = b"http/1.1";

/// Why a node's certificate or key cannot be used; named so that the operator knows which file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("the certificate file {}: {reason}", path.display())]
    Certificate { path: PathBuf, reason: String },
    #[error("the key file {}: {reason}", path.display())]
    Key { path: PathBuf, reason: String },
    #[error("the certificate and the key cannot serve TLS together: {0}")]
    Pair(String),
}

/// Why a client's TLS handshake gave no connection: the client sees only its connection
/// closed, so the server says which in its log.
#[derive(Debug)]
pub enum HandshakeFailed {
    /// Plaintext to a TLS port, or a client that does not trust the certificate.
    Refused(io::Error),
    /// Not finished within `FIRST_BYTES_TIMEOUT`.
    TimedOut,
}

/// The node's certificate chain and key, ready to accept TLS connections.
#[derive(Clone)]
pub struct NodeTls {
    acceptor: TlsAcceptor,
}

impl std::fmt::Debug for NodeTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NodeTls")
    }
}

impl NodeTls {
    /// Reads a PEM certificate chain (the node's first, then its issuers) and a PEM private key.
    pub fn from_pem_files(certificate: &Path, key: &Path) -> Result<NodeTls, TlsError> {
        NodeTls::serving(certificate, key, &[ALPN_HTTP2])
    }

    /// The same for an HTTP server that speaks both versions: ALPN offers HTTP/2, then
    /// HTTP/1.1 (gRPC is HTTP/2 only).
    pub fn https_from_pem_files(certificate: &Path, key: &Path) -> Result<NodeTls, TlsError> {
        NodeTls::serving(certificate, key, &[ALPN_HTTP2, ALPN_HTTP1])
    }

    fn serving(certificate: &Path, key: &Path, alpn: &[&[u8]]) -> Result<NodeTls, TlsError> {
        let chain = pem_certificates(certificate).map_err(|reason| TlsError::Certificate {
            path: certificate.to_owned(),
            reason,
        })?;
        let key = pem_private_key(key).map_err(|reason| TlsError::Key {
            path: key.to_owned(),
            reason,
        })?;
        // Named, not the process's default: the EventStoreDB client installs its own default
        // provider and fails if one is already there.
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Pair(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| TlsError::Pair(e.to_string()))?;
        config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
        Ok(NodeTls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }

    /// The server's side of a client's handshake, within `FIRST_BYTES_TIMEOUT`: a client that
    /// connects and stops halfway through it does not hold its connection.
    pub async fn accept_in_time(&self, stream: TcpStream) -> Result<NodeStream, HandshakeFailed> {
        match tokio::time::timeout(FIRST_BYTES_TIMEOUT, self.acceptor.accept(stream)).await {
            Ok(Ok(tls)) => Ok(NodeStream::Tls(Box::new(tls))),
            Ok(Err(error)) => Err(HandshakeFailed::Refused(error)),
            Err(_) => Err(HandshakeFailed::TimedOut),
        }
    }
}

/// The certificates of a PEM file, at least one, or why not.
pub(crate) fn pem_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(|e| e.to_string())?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    if chain.is_empty() {
        return Err("it holds no PEM certificate".to_owned());
    }
    Ok(chain)
}

/// The private key of a PEM file, or why not.
pub(crate) fn pem_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| match e {
        Error::NoItemsFound => "it holds no PEM private key".to_owned(),
        other => other.to_string(),
    })
}

/// A client's connection, in plaintext or TLS as the node is configured.
pub enum NodeStream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for NodeStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            NodeStream::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            NodeStream::Tls(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for NodeStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            NodeStream::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
            NodeStream::Tls(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            NodeStream::Plain(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
            NodeStream::Tls(stream) => Pin::new(stream.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            NodeStream::Plain(stream) => stream.is_write_vectored(),
            NodeStream::Tls(stream) => stream.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            NodeStream::Plain(stream) => Pin::new(stream).poll_flush(cx),
            NodeStream::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            NodeStream::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            NodeStream::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
        }
    }
}

impl Connected for NodeStream {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        match self {
            NodeStream::Plain(stream) => stream.connect_info(),
            NodeStream::Tls(stream) => stream.get_ref().0.connect_info(),
        }
    }
}
