//! The event store: the ledger's ground state.
//!
//! [`EventStore`] is one trait in EventStoreDB's terms (streams with revisions, `$all` with
//! positions, expected revisions, idempotent appends by event id, catch-up subscriptions). It
//! stores opaque events and knows nothing of orders. [`SqliteStore`] is the embedded default;
//! [`EventStoreDbStore`] keeps the log in an EventStoreDB / KurrentDB cluster; [`node::Node`]
//! serves the EventStoreDB client protocol over any backend; [`StoreConfig`] says which store
//! to use. With the `conformance` feature, `conformance`
//! holds the behaviour every backend must show.

mod config;
mod error;
mod esdb;
pub mod node;
mod sqlite;
mod store;
mod subscription;
mod types;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use config::{ConfigError, StoreConfig, StoreKind, CONFIG_FILE_DEFAULT, ENV_PREFIX};
pub use error::StoreError;
pub use esdb::{EventStoreDbOptions, EventStoreDbStore, CONNECT_TIMEOUT, SUBSCRIPTION_RETRIES_MAX};
pub use sqlite::{
    configure_log_writer, SqliteOptions, SqliteStore, INDEX_FLUSH_ENTRIES_DEFAULT,
    INDEX_SLICE_ENTRIES_DEFAULT, LIVE_FEED_BATCHES_DEFAULT, LOG_FILE_NAME,
};
pub use sqlite::{try_lock_file, LOG_LOCK_FILE_NAME};
pub use store::{fold_all, read_all_page, read_whole_stream, AllPages, EventStore, Subscription};
pub use subscription::CATCH_UP_PAGE_EVENTS;
pub use types::*;
