//! Developer and operator tooling behind the `ledger` CLI: [`bench`](mod@bench) (durable command
//! throughput and its raw-SQLite ceiling, view rebuilds), [`bench_grpc`] (the EventStoreDB
//! protocol next to the store in process), [`verify`] (every invariant of DOMAIN.md over the
//! whole log), [`history`], [`inspect`] (what a data directory holds), [`transfer`] (export,
//! import, copy) and [`totals`].

pub mod bench;
pub mod bench_grpc;
pub mod history;
pub mod inspect;
pub mod totals;
pub mod transfer;
pub mod verify;
