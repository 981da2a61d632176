//! The `ledger` binary: a thin command line over the workspace's libraries. Errors from them
//! get context here and decide the exit code.

use anyhow::Context;
use clap::{Parser, Subcommand};
use ledger_replay::bench;

/// Order Ledger: an event-sourced escrow ledger for a freelance marketplace.
#[derive(Parser)]
#[command(name = "ledger", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Commands>,
}

#[derive(Subcommand)]
enum Commands {
    /// Measure durable command throughput against the raw SQLite ceiling.
    Bench {
        /// Seconds each producer count runs.
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
        /// Concurrent producers to measure, comma separated.
        #[arg(long, value_delimiter = ',', default_value = "1,16,256")]
        producers: Vec<usize>,
        /// Orders (4 events each) inserted for the raw ceiling.
        #[arg(long, default_value_t = 100_000)]
        ceiling_orders: u64,
        /// Where the scratch stores live (a fresh temporary directory by default).
        #[arg(long)]
        dir: Option<std::path::PathBuf>,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        None => {
            println!(
                "ledger {}: run `ledger --help` for commands",
                env!("CARGO_PKG_VERSION")
            );
            Ok(())
        }
        Some(Commands::Bench {
            seconds,
            producers,
            ceiling_orders,
            dir,
        }) => run_bench(seconds, &producers, ceiling_orders, dir),
    }
}

fn run_bench(
    seconds: f64,
    producers: &[usize],
    ceiling_orders: u64,
    dir: Option<std::path::PathBuf>,
) -> anyhow::Result<()> {
    let scratch = match dir {
        Some(dir) => tempfile::tempdir_in(dir),
        None => tempfile::tempdir(),
    }
    .context("creating a scratch directory")?;
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    println!("| producers | commands | seconds | commands/s |");
    println!("| ---: | ---: | ---: | ---: |");
    let mut best: f64 = 0.0;
    for &count in producers {
        let dir = scratch.path().join(format!("producers-{count}"));
        let figures = runtime
            .block_on(bench::command_throughput(&dir, count, seconds))
            .with_context(|| format!("benchmarking {count} producers"))?;
        best = best.max(figures.per_second());
        println!(
            "| {count} | {} | {:.2} | {:.0} |",
            figures.operations,
            figures.seconds,
            figures.per_second()
        );
    }
    let rows = bench::rows_like_the_pipeline(ceiling_orders);
    let ceiling = bench::raw_insert_ceiling(&scratch.path().join("raw"), &rows, 256)
        .context("measuring the raw SQLite ceiling")?;
    println!();
    println!(
        "raw SQLite ceiling: {} rows in {:.2} s = {:.0} rows/s (256 rows per durable transaction)",
        ceiling.operations,
        ceiling.seconds,
        ceiling.per_second()
    );
    println!(
        "best pipeline / ceiling = {:.2} (each command here appends one event)",
        best / ceiling.per_second()
    );
    Ok(())
}
