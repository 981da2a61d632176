//! Black-box tests of `ledger serve`: each starts the real binary on port 0 with a fresh data
//! directory and talks HTTP to it.

mod authorization;
mod bad_input;
mod bench;
mod compression;
mod escrow;
mod eventstoredb;
mod history;
mod https;
mod lists;
mod openapi;
mod operations;
mod reports;
mod restart;
mod retries;
mod stories;
mod streams;
mod support;
