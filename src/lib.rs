//! The `ledger` application: what wires the libraries together. Today: the timer process
//! manager; the HTTP service and the CLI's subcommands come with their issues.

pub mod timers;
