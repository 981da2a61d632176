//! `ledger bench`: each benchmark run and its figures printed as a table for
//! docs/performance.md.

use anyhow::Context;
use clap::Subcommand;
use ledger_replay::bench;
use order_ledger::bench_http::{LoadRun, RunningService, Target};
use order_ledger::service::config::ServiceConfig;

#[derive(Subcommand)]
pub(crate) enum BenchCommand {
    /// Durable command throughput of `simulate` with 1, 16 and 256 concurrent simulations,
    /// next to the raw SQLite ceiling for the very rows they wrote.
    Commands {
        /// Concurrent simulations (producers) to measure, comma separated.
        #[arg(long, value_delimiter = ',', default_value = "1,16,256", value_parser = at_least_one::<u64>)]
        producers: Vec<u64>,
        /// Orders each producer runs to their end.
        #[arg(long, default_value_t = 200, value_parser = at_least_one::<u64>)]
        orders_per_producer: u64,
        /// Where the scratch stores live (a fresh temporary directory by default).
        #[arg(long)]
        dir: Option<std::path::PathBuf>,
        /// Times the most producers' run and the raw ceiling are measured, one after the
        /// other: on a noisy machine one pair can be minutes apart in conditions.
        #[arg(long, default_value_t = 3, value_parser = at_least_one::<u64>)]
        rounds: u64,
        /// Orders whose state the pipeline keeps in memory (the service's
        /// `state_cache_orders`): fewer than the orders running shows what a miss costs.
        #[arg(long, default_value_t = ledger_commands::STATE_CACHE_ORDERS_DEFAULT, value_parser = at_least_one::<usize>)]
        state_cache_orders: usize,
    },
    /// HTTP load on a real `ledger serve`: commands/s and latency percentiles per number
    /// of concurrent clients.
    Http {
        /// Concurrent clients to measure, comma separated.
        #[arg(long, value_delimiter = ',', default_value = "1,64,256", value_parser = at_least_one::<usize>)]
        clients: Vec<usize>,
        /// Seconds of load per level, measured.
        #[arg(long, default_value_t = 10, value_parser = at_least_one::<u64>)]
        seconds: u64,
        /// Seconds of load per level before measuring: connections open, the store's first
        /// pages are written.
        #[arg(long, default_value_t = 2)]
        warmup: u64,
        /// Commands a second to offer in all, on a fixed schedule (open loop); latency
        /// then counts from when each command was due. Without it, each client sends as
        /// soon as it is answered.
        #[arg(long)]
        rate: Option<u32>,
        /// Idle SSE subscribers held open throughout, each to a stream of its own (a page
        /// following one order): what they cost the commands.
        #[arg(long, default_value_t = 0)]
        stream_subscribers: usize,
        /// Start the service with HTTPS (a self-signed certificate made for the run, which
        /// the clients trust): what TLS costs each command.
        #[arg(long, conflicts_with = "url")]
        https: bool,
        /// Load the service already running at this `http://host:port` (or `https://`, with
        /// `--ca`) instead of one started here on a scratch store (its orders stay in its log).
        /// Tokens are minted from the configured `jwt_secret`, as `ledger token` does; its CPU
        /// is not measured.
        #[arg(long)]
        url: Option<String>,
        /// For an `https://` URL: the PEM certificate of the authority that issued the
        /// service's, the one the clients trust.
        #[arg(long, requires = "url")]
        ca: Option<std::path::PathBuf>,
        /// Configuration file whose `jwt_secret` mints the tokens for `--url` (default:
        /// `ledger.toml` if present; `LEDGER_*` variables override).
        #[arg(long, requires = "url")]
        config: Option<std::path::PathBuf>,
    },
    /// Appends and a catch-up read through the EventStoreDB protocol (loopback gRPC), next
    /// to the same work on the embedded store in process.
    Grpc {
        /// Concurrent producers to measure, comma separated.
        #[arg(long, value_delimiter = ',', default_value = "1,16,256", value_parser = at_least_one::<usize>)]
        producers: Vec<usize>,
        /// Single-event appends per producer.
        #[arg(long, default_value_t = 200, value_parser = at_least_one::<usize>)]
        appends_per_producer: usize,
    },
    /// Rebuild every view from a simulated history.
    Rebuild {
        /// Events in the simulated history (about).
        #[arg(long, default_value_t = 1_000_000, value_parser = at_least_one::<u64>)]
        events: u64,
        /// Keep the simulated log here and reuse it on the next run.
        #[arg(long)]
        log_dir: Option<std::path::PathBuf>,
        /// Drop the log's pages from the page cache before the rebuild, which then reads it
        /// from the disk as after a reboot; by default the log is read through once first, so
        /// that the figures are the rebuild's and not the disk's.
        #[arg(long)]
        cold_log: bool,
    },
}

/// Runs one benchmark and prints its table.
pub(crate) fn run(command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Commands {
            producers,
            orders_per_producer,
            dir,
            rounds,
            state_cache_orders,
        } => run_bench(
            &producers,
            orders_per_producer,
            dir,
            rounds,
            state_cache_orders,
        ),
        BenchCommand::Http {
            clients,
            seconds,
            warmup,
            rate,
            stream_subscribers,
            https,
            url,
            ca,
            config,
        } => {
            let target = match url {
                Some(url) => {
                    let keys = ServiceConfig::load(config.as_deref())?.minting_keys()?;
                    println!("against the service at {url}: its CPU is not measured\n");
                    Target::Running(RunningService { url, keys, ca })
                }
                None => Target::Started { https },
            };
            run_http_bench(
                &clients,
                (warmup, seconds),
                rate,
                stream_subscribers,
                target,
            )
        }
        BenchCommand::Grpc {
            producers,
            appends_per_producer,
        } => run_grpc_bench(&producers, appends_per_producer),
        BenchCommand::Rebuild {
            events,
            log_dir,
            cold_log,
        } => run_rebuild_bench(events, log_dir, cold_log),
    }
}

/// A count that must be at least one: a benchmark of nothing prints NaN.
fn at_least_one<T>(text: &str) -> Result<T, String>
where
    T: std::str::FromStr + PartialEq + From<u8>,
    T::Err: std::fmt::Display,
{
    match text.parse::<T>() {
        Ok(count) if count == T::from(0) => Err("must be at least 1".to_owned()),
        Ok(count) => Ok(count),
        Err(error) => Err(error.to_string()),
    }
}

fn run_http_bench(
    clients: &[usize],
    (warmup, seconds): (u64, u64),
    rate: Option<u32>,
    stream_subscribers: usize,
    target: Target,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    let started = matches!(target, Target::Started { .. });
    let LoadRun { url, reports } = runtime.block_on(order_ledger::bench_http::run(
        clients,
        std::time::Duration::from_secs(warmup),
        std::time::Duration::from_secs(seconds),
        rate,
        stream_subscribers,
        target,
    ))?;
    if started {
        println!("a `ledger serve` started here on a scratch store, at {url}\n");
    }
    if stream_subscribers > 0 {
        println!("with {stream_subscribers} idle SSE subscribers, each to a stream of its own\n");
    }
    println!("| clients | offered/s | commands/s | p50 | p90 | p99 | max | failed | service CPU/command | generator CPU/command |");
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for r in &reports {
        println!(
            "| {} | {} | {:.0} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms | {} | {} | {} |",
            r.clients,
            r.rate
                .map_or("as fast as answered".to_owned(), |r| r.to_string()),
            r.per_second(),
            r.p50.as_secs_f64() * 1e3,
            r.p90.as_secs_f64() * 1e3,
            r.p99.as_secs_f64() * 1e3,
            r.max.as_secs_f64() * 1e3,
            r.failures,
            micros_each(r.service_cpu_seconds, r.commands),
            micros_each(r.client_cpu_seconds, r.commands)
        );
    }
    println!(
        "\nInside the service, the same seconds (its /metrics; quantiles interpolated within \
         buckets, as Prometheus's histogram_quantile does): what the clients saw beyond this \
         was spent queued in sockets, in run queues or in the clients.\n"
    );
    println!("| clients | request p50 | request p99 | requests over 10 ms | append p50 | append p99 | views wait p50 | views wait p99 |");
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for r in &reports {
        let Some(inside) = &r.inside else {
            println!(
                "| {} | no timings: the service's /metrics could not be read, or held none | | | | | | |",
                r.clients
            );
            continue;
        };
        let ms = |d: std::time::Duration| format!("{:.2} ms", d.as_secs_f64() * 1e3);
        println!(
            "| {} | {} | {} | {:.2}% | {} | {} | {} | {} |",
            r.clients,
            ms(inside.request.p50),
            ms(inside.request.p99),
            inside.requests_over_10ms * 100.0,
            ms(inside.append.p50),
            ms(inside.append.p99),
            ms(inside.views_wait.p50),
            ms(inside.views_wait.p99),
        );
    }
    Ok(())
}

fn run_grpc_bench(producers: &[usize], appends_per_producer: usize) -> anyhow::Result<()> {
    let scratch = tempfile::tempdir().context("creating a scratch directory")?;
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    let (appends, catch_up) = runtime
        .block_on(ledger_replay::bench_grpc::run(
            scratch.path(),
            producers,
            appends_per_producer,
        ))
        .context("measuring")?;
    println!("| producers | in process appends/s | gRPC, official client | ratio | gRPC, tonic with TCP_NODELAY | ratio |");
    println!("| ---: | ---: | ---: | ---: | ---: | ---: |");
    for f in appends {
        let local = f.append_in_process.per_second().max(f64::EPSILON);
        let (grpc, nodelay) = (
            f.append_grpc.per_second(),
            f.append_grpc_nodelay.per_second(),
        );
        println!(
            "| {} | {local:.0} | {grpc:.0} | {:.2} | {nodelay:.0} | {:.2} |",
            f.producers,
            grpc / local,
            nodelay / local
        );
    }
    let (local, grpc) = (
        catch_up.read_in_process.per_second(),
        catch_up.read_grpc.per_second(),
    );
    println!(
        "catch-up read of {} events: in process {local:.0} events/s, gRPC {grpc:.0} events/s ({:.2})",
        catch_up.read_grpc.operations,
        grpc / local.max(f64::EPSILON)
    );
    Ok(())
}

/// Runs `orders` orders of `simulate` with `concurrency` simulations into a new store in
/// `dir`; returns the durable commands (appended, timers included) and the seconds taken.
fn simulate_into(
    runtime: &tokio::runtime::Runtime,
    dir: &std::path::Path,
    orders: u64,
    concurrency: u64,
    state_cache_orders: usize,
) -> anyhow::Result<(u64, f64)> {
    let store = std::sync::Arc::new(
        ledger_store::SqliteStore::open(dir)
            .with_context(|| format!("opening {}", dir.display()))?,
    );
    let handler = std::sync::Arc::new(ledger_commands::CommandHandler::with_cache(
        store.clone(),
        ledger_domain::Policy::default(),
        state_cache_orders,
    ));
    let started = std::time::Instant::now();
    let report = runtime.block_on(order_ledger::simulate::simulate_concurrently(
        handler,
        orders,
        1,
        concurrency,
        |_| {},
    ));
    let seconds = started.elapsed().as_secs_f64();
    store.close();
    let report = report.context("simulating")?;
    Ok((
        report.commands - report.refused + report.timers_fired,
        seconds,
    ))
}

fn run_bench(
    producers: &[u64],
    orders_per_producer: u64,
    dir: Option<std::path::PathBuf>,
    rounds: u64,
    state_cache_orders: usize,
) -> anyhow::Result<()> {
    if state_cache_orders == 0 {
        anyhow::bail!("--state-cache-orders must be at least 1");
    }
    let scratch = match dir {
        Some(dir) => tempfile::tempdir_in(dir),
        None => tempfile::tempdir(),
    }
    .context("creating a scratch directory")?;
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    println!("| producers | orders | durable commands | seconds | commands/s | CPU per command |");
    println!("| ---: | ---: | ---: | ---: | ---: | ---: |");
    let run = |count: u64, dir: &std::path::Path| -> anyhow::Result<(u64, f64, Option<f64>)> {
        let cpu = bench::CpuSince::start(None);
        let orders = count * orders_per_producer;
        let (commands, seconds) = simulate_into(&runtime, dir, orders, count, state_cache_orders)?;
        Ok((commands, seconds, cpu.spent()))
    };
    // The ceiling is measured on the rows of the most producers' run: the aim compares them.
    let mut most: Option<(u64, f64, Option<f64>, std::path::PathBuf, u64)> = None;
    for &count in producers {
        let dir = scratch.path().join(format!("producers-{count}"));
        let (commands, seconds, cpu) = run(count, &dir)?;
        let rate = commands as f64 / seconds.max(f64::EPSILON);
        if most.as_ref().is_none_or(|(most, ..)| count >= *most) {
            most = Some((count, rate, cpu, dir, commands));
        }
        println!(
            "| {count} | {} | {commands} | {seconds:.2} | {rate:.0} | {} |",
            count * orders_per_producer,
            micros_each(cpu, commands)
        );
    }
    let Some((count, mut rate, mut cpu, dir, commands)) = most else {
        return Ok(());
    };
    let rows = runtime
        .block_on(bench::rows_of(&dir))
        .context("reading the rows back")?;
    println!();
    println!(
        "{count} producers against the raw SQLite ceiling for their rows ({} rows, {:.2} events per command; 256 rows per durable transaction), measured in turn:",
        rows.len(),
        rows.len() as f64 / commands.max(1) as f64
    );
    println!();
    println!("| round | commands/s | CPU per command | ceiling rows/s | CPU per row | ratio |");
    println!("| ---: | ---: | ---: | ---: | ---: | ---: |");
    let mut ratios = Vec::new();
    for round in 1..=rounds.max(1) {
        if round > 1 {
            let dir = scratch.path().join(format!("round-{round}"));
            let (commands, seconds, spent) = run(count, &dir)?;
            std::fs::remove_dir_all(&dir).context("removing a round's store")?;
            (rate, cpu) = (commands as f64 / seconds.max(f64::EPSILON), spent);
        }
        let raw = scratch.path().join(format!("raw-{round}"));
        let ceiling_cpu = bench::CpuSince::start(None);
        let ceiling = bench::raw_insert_ceiling(&raw, &rows, 256)
            .context("measuring the raw SQLite ceiling")?;
        let ceiling_cpu = ceiling_cpu.spent();
        std::fs::remove_dir_all(&raw).context("removing the ceiling's store")?;
        let ratio = rate / ceiling.per_second();
        ratios.push(ratio);
        println!(
            "| {round} | {rate:.0} | {} | {:.0} | {} | {ratio:.2} |",
            micros_each(cpu, commands),
            ceiling.per_second(),
            micros_each(ceiling_cpu, ceiling.operations)
        );
    }
    ratios.sort_by(f64::total_cmp);
    let middle = ratios.len() / 2;
    let median = if ratios.len() % 2 == 0 {
        (ratios[middle - 1] + ratios[middle]) / 2.0
    } else {
        ratios[middle]
    };
    println!();
    println!(
        "{count} producers / ceiling: median {median:.2} of {} rounds (from {:.2} to {:.2})",
        ratios.len(),
        ratios[0],
        ratios[ratios.len() - 1]
    );
    Ok(())
}

fn run_rebuild_bench(
    events: u64,
    log_dir: Option<std::path::PathBuf>,
    cold_log: bool,
) -> anyhow::Result<()> {
    let scratch = tempfile::tempdir().context("creating a scratch directory")?;
    let log_dir = log_dir.unwrap_or_else(|| scratch.path().join("log"));
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    let log_file = log_dir.join(ledger_store::LOG_FILE_NAME);
    if log_file.exists() {
        println!("reusing the log in {}", log_dir.display());
    } else {
        let started = std::time::Instant::now();
        // A simulated order appends about five events.
        let orders = events.div_ceil(5);
        let (commands, _) = simulate_into(
            &runtime,
            &log_dir,
            orders,
            256,
            ledger_commands::STATE_CACHE_ORDERS_DEFAULT,
        )?;
        println!(
            "simulated {orders} orders ({commands} durable commands) in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    let log_files = ledger_replay::inspect::DATA_FILE_SUFFIXES
        .map(|suffix| log_dir.join(format!("{}{suffix}", ledger_store::LOG_FILE_NAME)));
    let log_bytes: u64 = log_files
        .iter()
        .map(|file| std::fs::metadata(file).map_or(0, |m| m.len()))
        .sum();
    let log_mib = log_bytes as f64 / 1_048_576.0;
    if cold_log {
        for file in &log_files {
            drop_from_page_cache(file)?;
        }
        println!("the log's {log_mib:.0} MiB dropped from the page cache: the rebuild reads them from the disk");
    } else {
        let started = std::time::Instant::now();
        for file in &log_files {
            read_through(file)?;
        }
        println!(
            "the log's {log_mib:.0} MiB read through once in {:.2} s: the rebuild reads them from the page cache",
            started.elapsed().as_secs_f64()
        );
    }
    let figures = runtime
        .block_on(bench::rebuild_throughput(
            &log_dir,
            &scratch.path().join("views"),
        ))
        .context("rebuilding the views")?;
    let mib = |bytes: Option<u64>| {
        bytes.map_or("n/a".to_owned(), |b| {
            format!("{:.0} MiB", b as f64 / 1_048_576.0)
        })
    };
    println!(
        "rebuilt every view from {} events in {:.2} s = {:.0} events/s",
        figures.events,
        figures.seconds,
        figures.events as f64 / figures.seconds.max(f64::EPSILON)
    );
    let fold_seconds = (figures.seconds - figures.save_seconds).max(f64::EPSILON);
    println!(
        "of which reading, decoding and folding {:.2} s = {:.0} events/s; storing the views {:.2} s",
        fold_seconds,
        figures.events as f64 / fold_seconds,
        figures.save_seconds
    );
    println!(
        "CPU per event: {} reading, decoding and folding; {} in all",
        micros_each(figures.fold_cpu_seconds, figures.events),
        micros_each(figures.cpu_seconds, figures.events)
    );
    println!(
        "peak RSS during the rebuild {}, views resident {} for {} orders ({} bytes per order)",
        mib(figures.peak_rss_bytes),
        mib(figures.views_rss_bytes),
        figures.orders,
        figures
            .views_rss_bytes
            .map_or("n/a".to_owned(), |b| (b / figures.orders.max(1) as u64)
                .to_string())
    );
    Ok(())
}

/// Reads `file` to its end, if there is one, so that its pages are in the page cache. On this
/// machine's virtual disk a page read from the disk costs ~2 µs of kernel CPU: a log a tenth
/// evicted (as a large build beside it does) made a rebuild a fifth slower.
fn read_through(file: &std::path::Path) -> anyhow::Result<()> {
    if let Some(mut opened) = open_if_present(file)? {
        std::io::copy(&mut opened, &mut std::io::sink())
            .with_context(|| format!("reading {}", file.display()))?;
    }
    Ok(())
}

/// Asks the kernel to drop `file`'s pages from the page cache (`POSIX_FADV_DONTNEED`, which
/// keeps dirty pages: hence the sync first).
fn drop_from_page_cache(file: &std::path::Path) -> anyhow::Result<()> {
    let Some(opened) = open_if_present(file)? else {
        return Ok(());
    };
    opened
        .sync_all()
        .with_context(|| format!("syncing {}", file.display()))?;
    rustix::fs::fadvise(&opened, 0, None, rustix::fs::Advice::DontNeed)
        .with_context(|| format!("dropping {} from the page cache", file.display()))
}

/// The log's write-ahead file is there only while a store has it open or after a crash.
fn open_if_present(file: &std::path::Path) -> anyhow::Result<Option<std::fs::File>> {
    match std::fs::File::open(file) {
        Ok(opened) => Ok(Some(opened)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("opening {}", file.display())),
    }
}

/// CPU time per operation, for the benches' tables ("n/a" where `/proc` is not there).
fn micros_each(cpu_seconds: Option<f64>, operations: u64) -> String {
    cpu_seconds.map_or("n/a".to_owned(), |cpu| {
        format!("{:.1} µs", cpu * 1e6 / operations.max(1) as f64)
    })
}
