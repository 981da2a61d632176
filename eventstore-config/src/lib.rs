//! The event store: the ledger's ground state.
//!
//! [`EventStore`] is one trait in EventStoreDB's terms (streams with revisions, `$all` with
//! positions, expected revisions, idempotent appends by event id, catch-up subscriptions). It
//! stores opaque events and knows nothing of orders. [`SqliteStore`] is the embedded default;
//! [`StoreConfig`] says which store to use. With the `conformance` feature, [`conformance`]
//! holds the behaviour every backend must show.

mod config;
mod error;
mod sqlite;
mod store;
mod subscription;
mod types;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use config::{ConfigError, StoreConfig, StoreKind, CONFIG_FILE_DEFAULT, ENV_PREFIX};
pub use error::StoreError;
pub use sqlite::{SqliteOptions, SqliteStore, LIVE_FEED_BATCHES_DEFAULT, LOG_FILE_NAME};
pub use store::{read_whole_stream, EventStore, Subscription};
pub use subscription::CATCH_UP_PAGE_EVENTS;
pub use types::*;
