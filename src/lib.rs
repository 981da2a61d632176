//! The `ledger` application: what wires the libraries together: the HTTP service, the timer
//! process manager, and the marketplace simulation that drives benchmarks.

pub mod bench_http;
pub mod log_throttle;
pub mod service;
pub mod simulate;
pub mod timers;
