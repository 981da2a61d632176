//! Developer and operator tooling behind the `ledger` CLI. Today: [`bench`], the durable
//! command throughput benchmark and its raw-SQLite ceiling. History, export/import, rebuild,
//! verify and simulate arrive with the replay-tools issue.

pub mod bench;
