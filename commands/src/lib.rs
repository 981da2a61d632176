//! The command pipeline: [`CommandHandler::handle`] loads an order's stream (or its cached
//! state), calls `decide`, and appends the events with the loaded revision as the expected
//! revision, re-reading and re-deciding when another writer got there first. Each
//! [`CommandRequest`] carries a command id; handling the same id again returns the first
//! [`Outcome`] from the log and appends nothing. [`codec`] maps domain events to the store's.

pub mod codec;
mod handler;
mod turns;

pub use codec::{decode, encode, order_of, stream_for, DecodeError};
pub use handler::{
    CommandError, CommandHandler, CommandRequest, Outcome, CONFLICT_RETRIES_MAX,
    STATE_CACHE_ORDERS_DEFAULT,
};
pub use ledger_domain::ORDER_STREAM_PREFIX;
