//! The `ledger` application: what wires the libraries together. Today: the timer process
//! manager, and the marketplace simulation that drives it; the HTTP service comes with its
//! issue.

pub mod simulate;
pub mod timers;
