//! The EventStoreDB client protocol beside the HTTP API (`--grpc-listen`): the same log, the
//! same tokens. Bearer tokens of the `service` and `mediator` roles may read and subscribe,
//! and, with `grpc_anonymous_read`, calls without credentials; appending is for configured
//! basic users with `append = true` only, because events appended there do not pass the
//! domain's rules.

use super::auth::{ApiRole, TokenKeys};
use super::AppState;
use anyhow::Context;
use ledger_store::node::{
    Access, BasicUsers, Credentials, Denied, Node, NodeAuth, NodeTls, NodeUser,
};
use ledger_store::{EventData, EventStore, StreamName};
use std::net::SocketAddr;
use std::sync::Arc;

struct LedgerNodeAuth {
    keys: TokenKeys,
    users: BasicUsers,
    anonymous_read: bool,
    tls: bool,
}

impl NodeAuth for LedgerNodeAuth {
    fn authorize(&self, credentials: Option<&Credentials>, access: Access) -> Result<(), Denied> {
        match credentials {
            Some(Credentials::Bearer(token)) => {
                let principal = self
                    .keys
                    .verify(token)
                    .map_err(|e| Denied::Unauthenticated(format!("the token was refused: {e}")))?;
                match (access, principal.role) {
                    (Access::Read, ApiRole::Service | ApiRole::Mediator) => Ok(()),
                    (Access::Read, role) => Err(Denied::Forbidden(format!(
                        "the {} role may not read the log",
                        role.as_str()
                    ))),
                    (Access::Append, _) => Err(Denied::Forbidden(
                        "commands go through the HTTP API; tokens cannot append here".to_owned(),
                    )),
                }
            }
            None if self.anonymous_read && matches!(access, Access::Read) => Ok(()),
            None if self.tls => Err(Denied::Unauthenticated(
                "credentials required: a [[grpc_users]] user's or a bearer token".to_owned(),
            )),
            // Some clients (Python's kurrentdbclient) send credentials only over TLS, and so
            // send none here though they were given some: say why they are refused.
            None => Err(Denied::Unauthenticated(
                "credentials required: a [[grpc_users]] user's or a bearer token; a client \
                 that sends credentials only over TLS sends none to this plaintext node \
                 (give it grpc_tls_cert and grpc_tls_key, or `grpc_anonymous_read = true` to \
                 let calls without credentials read)"
                    .to_owned(),
            )),
            other => self.users.authorize(other, access),
        }
    }
}

/// Binds `address` and serves the protocol until the service shuts down.
pub(super) async fn start(
    address: SocketAddr,
    store: Arc<dyn EventStore>,
    keys: &TokenKeys,
    users: &[NodeUser],
    anonymous_read: bool,
    tls: Option<NodeTls>,
    state: AppState,
) -> anyhow::Result<(
    SocketAddr,
    tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
)> {
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("binding {address} for the EventStoreDB protocol"))?;
    let bound = listener.local_addr()?;
    let speaks_tls = tls.is_some();
    let auth = LedgerNodeAuth {
        keys: keys.clone(),
        users: BasicUsers::new(users.to_vec()),
        anonymous_read,
        tls: speaks_tls,
    };
    let mut node = Node::new(store, Arc::new(auth), advertised(bound))
        .with_append_check(Arc::new(written_by_a_ledger));
    if let Some(tls) = tls {
        node = node.with_tls(tls);
    }
    let _ = state.grpc_subscriptions.set(node.subscriptions());
    tracing::info!(address = %bound, tls = speaks_tls, "serving the EventStoreDB protocol");
    if anonymous_read {
        tracing::warn!(
            address = %bound,
            "calls without credentials may read the log there (grpc_anonymous_read)"
        );
    }
    let task = tokio::spawn(node.serve(listener, async move { state.shutting_down().await }));
    Ok((bound, task))
}

/// Appends here pass no domain rule, by design, and may come from a newer ledger sharing the
/// log: an event type or schema version this binary does not know is taken, and its views
/// stop before it until it is upgraded (docs/operations.md). What no ledger writes is refused,
/// because the log would keep it for good and the views, or the order's commands, stop at it:
/// an event of a type and version this binary reads whose data or metadata it cannot decode,
/// or a stream named like an order's that holds no order id. Other streams are another
/// application's, and the views pass them by.
fn written_by_a_ledger(stream: &StreamName, events: &[EventData]) -> Result<(), String> {
    use ledger_projections::FactError;
    use ledger_replay::transfer::{readable, recorded, Unreadable};
    // `readable` passes them by too, but only after each event is copied for it.
    if !ledger_domain::is_order_stream(stream.as_str()) {
        return Ok(());
    }
    for (index, event) in events.iter().enumerate() {
        // Where and when the store will record it is no part of the check.
        let why = match readable(&recorded(stream.clone(), 0, 0, event.clone())) {
            Ok(())
            | Err(Unreadable::Views(
                FactError::UnknownType { .. } | FactError::NewerSchema { .. },
            )) => continue,
            Err(Unreadable::Views(FactError::NotAnOrderStream { stream, .. })) => {
                format!("`{stream}` is named like an order's stream but holds no order id")
            }
            Err(Unreadable::Views(FactError::Unreadable { detail, .. })) => detail,
            Err(Unreadable::Pipeline(ledger_commands::DecodeError::Metadata {
                detail, ..
            })) => {
                format!("metadata: {detail}")
            }
            Err(other) => other.to_string(),
        };
        return Err(format!(
            "event {} of the append ({}): {why}; nothing was appended",
            index + 1,
            event.event_type
        ));
    }
    Ok(())
}

/// Where the service says the node is, at its start and to a gossip call whose connection does
/// not say where it came in: the bound address, or loopback for a wildcard.
fn advertised(bound: SocketAddr) -> SocketAddr {
    if bound.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], bound.port()))
    } else {
        bound
    }
}

/// The connection string's TLS is the client's default, so only plaintext is named.
pub(super) fn announce(address: SocketAddr, tls: bool) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let plaintext = if tls { "" } else { "?tls=false" };
    writeln!(
        out,
        "ledger: EventStoreDB protocol on esdb://{}{plaintext}",
        advertised(address)
    )?;
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> (LedgerNodeAuth, TokenKeys) {
        let keys = TokenKeys::new("grpc-test-secret").expect("keys");
        let users = BasicUsers::new(vec![NodeUser {
            username: "ops".into(),
            password: "pw".into(),
            append: true,
        }]);
        (
            LedgerNodeAuth {
                keys: keys.clone(),
                users,
                anonymous_read: false,
                tls: false,
            },
            keys,
        )
    }

    fn bearer(keys: &TokenKeys, role: ApiRole) -> Credentials {
        let token = keys
            .mint(
                role,
                uuid::Uuid::new_v4(),
                chrono::Utc::now(),
                chrono::Duration::hours(1),
            )
            .expect("token");
        Credentials::Bearer(token)
    }

    #[test]
    fn tokens_of_service_and_mediator_read_and_nobody_appends_with_a_token() {
        let (auth, keys) = auth();
        for role in [ApiRole::Service, ApiRole::Mediator] {
            assert_eq!(
                auth.authorize(Some(&bearer(&keys, role)), Access::Read),
                Ok(())
            );
            assert!(matches!(
                auth.authorize(Some(&bearer(&keys, role)), Access::Append),
                Err(Denied::Forbidden(_))
            ));
        }
        for role in [ApiRole::Buyer, ApiRole::Seller, ApiRole::Finance] {
            assert!(matches!(
                auth.authorize(Some(&bearer(&keys, role)), Access::Read),
                Err(Denied::Forbidden(_))
            ));
        }
        let other = TokenKeys::new("another-secret").expect("keys");
        assert!(matches!(
            auth.authorize(Some(&bearer(&other, ApiRole::Service)), Access::Read),
            Err(Denied::Unauthenticated(_))
        ));
        let ops = Credentials::Basic {
            username: "ops".into(),
            password: "pw".into(),
        };
        assert_eq!(auth.authorize(Some(&ops), Access::Append), Ok(()));
        assert!(auth.authorize(None, Access::Read).is_err());
    }
}
