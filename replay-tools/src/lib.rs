//! Developer and operator tooling behind the `ledger` CLI: [`bench`] (durable command
//! throughput and its raw-SQLite ceiling, view rebuilds) and [`verify`] (every invariant of
//! DOMAIN.md over the whole log). History, export/import and simulate arrive with the
//! replay-tools issue.

pub mod bench;
pub mod history;
pub mod totals;
pub mod transfer;
pub mod verify;
