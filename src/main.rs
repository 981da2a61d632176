//! The `ledger` binary. For now it only names itself; the service and tools arrive with later
//! issues.

use clap::Parser;

/// Order Ledger: an event-sourced escrow ledger for a freelance marketplace.
#[derive(Parser)]
#[command(name = "ledger", version, about)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
    println!(
        "ledger {}: the order aggregate is ready; run `ledger --help` for commands",
        env!("CARGO_PKG_VERSION")
    );
}
