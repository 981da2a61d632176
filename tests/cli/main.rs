//! The `ledger` binary, run as a user runs it: arguments in, exit code and output out.

mod bench;
mod config;
mod history;
mod inspect;
mod rebuild;
mod simulate;
mod support;
mod transfer;
mod verify;
