//! A node over a fresh embedded store, for the protocol's tests.
#![allow(dead_code)]

use ledger_store::node::{BasicUsers, Node, NodeUser};
use ledger_store::SqliteStore;
use std::sync::Arc;

/// What keeps a node alive for one case: its data directory and its shutdown.
pub struct Guard {
    _dir: Option<tempfile::TempDir>,
    _shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Guard {
    pub fn none() -> Guard {
        Guard {
            _dir: None,
            _shutdown: None,
        }
    }
}

pub const USER: &str = "ops";
pub const PASSWORD: &str = "ops-password";

/// A node over a fresh embedded store on a free port, and the address it listens on.
pub async fn start_node() -> (std::net::SocketAddr, Guard) {
    start_node_with(|node| node).await
}

/// As `start_node`, with the node adjusted by `adjust`.
pub async fn start_node_with(adjust: impl FnOnce(Node) -> Node) -> (std::net::SocketAddr, Guard) {
    let dir = tempfile::tempdir().expect("temp dir");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let (shutdown, _served, _log) = serve_node(dir.path(), listener, adjust);
    let guard = Guard {
        _dir: Some(dir),
        _shutdown: Some(shutdown),
    };
    (address, guard)
}

/// A node over the embedded store in `dir` on `listener`, with the test users; it stops when
/// the sender is used or dropped. The store is returned too, for a test to close it: tasks of
/// a stopped node may hold it a moment longer.
pub fn serve_node(
    dir: &std::path::Path,
    listener: tokio::net::TcpListener,
    adjust: impl FnOnce(Node) -> Node,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
    Arc<SqliteStore>,
) {
    let store = Arc::new(SqliteStore::open(dir).expect("open store"));
    let address = listener.local_addr().expect("address");
    let users = BasicUsers::new(vec![
        NodeUser {
            username: USER.into(),
            password: PASSWORD.into(),
            append: true,
        },
        NodeUser {
            username: "reader".into(),
            password: "reader-password".into(),
            append: false,
        },
    ]);
    let node = adjust(Node::new(store.clone(), Arc::new(users), address));
    let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(node.serve(listener, async {
        let _ = stopped.await;
    }));
    (shutdown, served, store)
}
