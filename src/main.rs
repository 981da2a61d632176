//! The `ledger` binary: a thin command line over the workspace's libraries. Errors from them
//! get context here and decide the exit code.

use anyhow::Context;
use clap::{Parser, Subcommand};
use ledger_replay::bench;

/// mimalloc rather than glibc's malloc: the service, the pipeline and a rebuild allocate small
/// objects on several threads, and it cut their CPU per command or event by 12–29%
/// (docs/performance.md). Built without transparent huge pages (`no_thp`): zeroing a fresh
/// 2 MiB page on first touch was a tenth of a command's CPU and put 120 ms stalls in the tail.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Order Ledger: an event-sourced escrow ledger for a freelance marketplace.
#[derive(Parser)]
#[command(name = "ledger", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Commands>,
}

#[derive(Subcommand)]
enum Commands {
    /// Run the HTTP service (docs/api.md) on the configured store, with its timers.
    Serve {
        /// Development mode: a random token secret unless one is configured, a ready token
        /// per role printed at start, and `POST /dev/clock`.
        #[arg(long)]
        dev: bool,
        /// Listen here instead of the configured address (port 0 picks a free one).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Also serve the EventStoreDB client protocol here (docs/eventstoredb.md).
        #[arg(long)]
        grpc_listen: Option<std::net::SocketAddr>,
        /// Log lines as text or as JSON objects.
        #[arg(long, value_enum, default_value_t = LogFormat::Text)]
        log_format: LogFormat,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Mint a bearer token from the configured secret (jwt_secret or LEDGER_JWT_SECRET).
    Token {
        #[arg(long, value_enum)]
        role: order_ledger::service::auth::ApiRole,
        /// The user id the token speaks for (a UUID).
        #[arg(long)]
        sub: uuid::Uuid,
        /// Hours until it expires, at most ten years' worth.
        #[arg(long, default_value_t = order_ledger::service::auth::TOKEN_TTL_HOURS_DEFAULT,
              value_parser = clap::value_parser!(i64)
                  .range(1..=order_ledger::service::auth::TOKEN_TTL_HOURS_MAX))]
        hours: i64,
        /// The configuration file (default: ./ledger.toml, if present).
        #[arg(long)]
        config: Option<std::path::PathBuf>,
    },
    /// Measure performance; see docs/performance.md.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Replay the whole log checking every invariant; exits non-zero on any violation.
    Verify {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// An order's timeline: instant, actor, event, money effect, state after.
    History {
        /// The order's id (a UUID).
        order: uuid::Uuid,
        /// The order as it stood at this instant (RFC 3339).
        #[arg(long, conflicts_with = "revision")]
        at: Option<chrono::DateTime<chrono::Utc>>,
        /// The order as it stood at this revision of its stream.
        #[arg(long)]
        revision: Option<u64>,
        /// Print JSON for machines.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Write the log as JSON lines to standard output, with a checksum trailer.
    Export {
        /// First `$all` position to export.
        #[arg(long)]
        from: Option<u64>,
        /// Last `$all` position to export.
        #[arg(long)]
        to: Option<u64>,
        /// Only this stream.
        #[arg(long)]
        stream: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Load an export into the store (created if need be), after checking it whole.
    Import {
        /// The export, or `-` for standard input (`ledger export | ledger import -`).
        file: std::path::PathBuf,
        /// Import into a store that already holds events.
        #[arg(long)]
        append: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Load an export into a scratch store, rebuild the views, print the totals and any
    /// verification failure.
    Replay {
        /// The export, or `-` for standard input.
        file: std::path::PathBuf,
        /// Keep the store here (to serve or inspect it afterwards) instead of a temporary one.
        #[arg(long)]
        keep: Option<std::path::PathBuf>,
    },
    /// Run a simulated marketplace through the real command pipeline into an empty store.
    Simulate {
        /// Orders to run to their end.
        #[arg(long, default_value_t = 1_000)]
        orders: u64,
        /// The same seed gives the same log.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Copy the whole log into another store, resuming where that store ends.
    Copy {
        /// The target's configuration file (store and data_dir).
        #[arg(long)]
        to: std::path::PathBuf,
        /// Start from this source position instead of where the target ends.
        #[arg(long)]
        from: Option<u64>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Rebuild the views from the first event (into views.sqlite beside the log).
    Rebuild {
        /// Only this view (escrow, wallets, completion, reviews, orders, journal, timers).
        #[arg(long)]
        view: Option<ledger_projections::ViewName>,
        /// No progress bar; one line at the end.
        #[arg(long)]
        quiet: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// Which event log to use: `ledger.toml` and `LEDGER_*` variables, or these flags.
#[derive(clap::Args)]
struct StoreArgs {
    /// The configuration file (default: ./ledger.toml, if present).
    #[arg(long)]
    config: Option<std::path::PathBuf>,
    /// The embedded store's data directory, overriding the configuration.
    #[arg(long)]
    data_dir: Option<std::path::PathBuf>,
}

impl StoreArgs {
    /// The configuration, with the flags applied: either store.
    fn any_config(&self) -> anyhow::Result<ledger_store::StoreConfig> {
        let mut config = ledger_store::StoreConfig::load(self.config.as_deref())
            .context("reading the configuration")?;
        if let Some(dir) = &self.data_dir {
            config.data_dir = dir.clone();
        }
        Ok(config)
    }

    /// The configuration of a command that works on the embedded store only.
    fn config(&self) -> anyhow::Result<ledger_store::StoreConfig> {
        let config = self.any_config()?;
        if config.store != ledger_store::StoreKind::Embedded {
            anyhow::bail!(
                "this command works on the embedded store; `ledger copy` brings an EventStoreDB log into one"
            );
        }
        Ok(config)
    }

    /// Opens the configured log, which must already exist: a typo must not create an empty one.
    fn open_existing(&self) -> anyhow::Result<ledger_store::SqliteStore> {
        let config = self.config()?;
        let log = config.data_dir.join(ledger_store::LOG_FILE_NAME);
        if !log.exists() {
            anyhow::bail!("there is no event log at {}", log.display());
        }
        ledger_store::SqliteStore::open(&config.data_dir)
            .with_context(|| format!("opening the event log in {}", config.data_dir.display()))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Logs go to standard error; standard output carries what `serve` announces.
fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn run_serve(
    dev: bool,
    listen: Option<std::net::SocketAddr>,
    grpc_listen: Option<std::net::SocketAddr>,
    log_format: LogFormat,
    args: &StoreArgs,
) -> anyhow::Result<()> {
    init_logs(log_format);
    let store = args.any_config()?;
    let mut config = order_ledger::service::config::ServiceConfig::load(args.config.as_deref())?;
    if let Some(listen) = listen {
        config.listen = listen;
    }
    if grpc_listen.is_some() {
        config.grpc_listen = grpc_listen;
    }
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(order_ledger::service::serve(
        order_ledger::service::ServeOptions {
            config,
            store,
            dev,
            announce: true,
        },
    ))
}

fn run_http_bench(
    clients: &[usize],
    (warmup, seconds): (u64, u64),
    rate: Option<u32>,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    let reports = runtime.block_on(order_ledger::bench_http::run(
        clients,
        std::time::Duration::from_secs(warmup),
        std::time::Duration::from_secs(seconds),
        rate,
    ))?;
    println!("| clients | offered/s | commands/s | p50 | p90 | p99 | max | failed | service CPU/command | generator CPU/command |");
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for r in reports {
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

fn run_token(
    role: order_ledger::service::auth::ApiRole,
    sub: uuid::Uuid,
    hours: i64,
    config: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let config = order_ledger::service::config::ServiceConfig::load(config)?;
    let secret = config
        .jwt_secret
        .context("no token secret: set jwt_secret in ledger.toml or LEDGER_JWT_SECRET")?;
    let keys = order_ledger::service::auth::TokenKeys::new(&secret)?;
    let token = keys.mint(
        role,
        sub,
        chrono::Utc::now(),
        chrono::Duration::hours(hours),
    )?;
    println!("{token}");
    Ok(())
}

#[derive(Subcommand)]
enum BenchCommand {
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
    },
}

fn main() -> std::process::ExitCode {
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // Output cut short by its reader (`ledger export | head`): quiet, with the status a
        // shell gives a tool that SIGPIPE ended.
        Err(error) if is_broken_pipe(&error) => std::process::ExitCode::from(141),
        Err(error) => {
            // The chain of causes, one line; no backtrace for a user's mistake.
            eprintln!("error: {}", causes_in_one_line(&error));
            std::process::ExitCode::FAILURE
        }
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

/// "1 event", "2 events": what the tools report is read by people.
fn counted(count: u64, noun: &str) -> String {
    match count {
        1 => format!("1 {noun}"),
        _ => format!("{count} {noun}s"),
    }
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Some library errors name their cause in their own message too; it is said once.
fn causes_in_one_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain().map(|cause| cause.to_string()) {
        if line.ends_with(&cause) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&cause);
    }
    line
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        None => {
            println!(
                "ledger {}: run `ledger --help` for commands",
                env!("CARGO_PKG_VERSION")
            );
            Ok(())
        }
        Some(Commands::Serve {
            dev,
            listen,
            grpc_listen,
            log_format,
            store,
        }) => run_serve(dev, listen, grpc_listen, log_format, &store),
        Some(Commands::Token {
            role,
            sub,
            hours,
            config,
        }) => run_token(role, sub, hours, config.as_deref()),
        Some(Commands::Bench(BenchCommand::Commands {
            producers,
            orders_per_producer,
            dir,
            rounds,
            state_cache_orders,
        })) => run_bench(
            &producers,
            orders_per_producer,
            dir,
            rounds,
            state_cache_orders,
        ),
        Some(Commands::Bench(BenchCommand::Http {
            clients,
            seconds,
            warmup,
            rate,
        })) => run_http_bench(&clients, (warmup, seconds), rate),
        Some(Commands::Bench(BenchCommand::Grpc {
            producers,
            appends_per_producer,
        })) => run_grpc_bench(&producers, appends_per_producer),
        Some(Commands::Bench(BenchCommand::Rebuild { events, log_dir })) => {
            run_rebuild_bench(events, log_dir)
        }
        Some(Commands::Verify { store }) => run_verify(&store),
        Some(Commands::History {
            order,
            at,
            revision,
            json,
            store,
        }) => {
            let cutoff = match (at, revision) {
                (Some(at), _) => ledger_replay::history::Cutoff::At(at),
                (None, Some(revision)) => ledger_replay::history::Cutoff::Revision(revision),
                (None, None) => ledger_replay::history::Cutoff::Now,
            };
            run_history(ledger_domain::OrderId(order), cutoff, json, &store)
        }
        Some(Commands::Rebuild { view, quiet, store }) => run_rebuild(view, quiet, &store),
        Some(Commands::Replay { file, keep }) => run_replay(&file, keep),
        Some(Commands::Copy { to, from, store }) => run_copy(&to, from, &store),
        Some(Commands::Simulate {
            orders,
            seed,
            quiet,
            store,
        }) => run_simulate(orders, seed, quiet, &store),
        Some(Commands::Export {
            from,
            to,
            stream,
            store,
        }) => run_export(from, to, stream, &store),
        Some(Commands::Import {
            file,
            append,
            store,
        }) => run_import(&file, append, &store),
    }
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

fn run_rebuild_bench(events: u64, log_dir: Option<std::path::PathBuf>) -> anyhow::Result<()> {
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

/// CPU time per operation, for the benches' tables ("n/a" where `/proc` is not there).
fn micros_each(cpu_seconds: Option<f64>, operations: u64) -> String {
    cpu_seconds.map_or("n/a".to_owned(), |cpu| {
        format!("{:.1} µs", cpu * 1e6 / operations.max(1) as f64)
    })
}

fn run_verify(args: &StoreArgs) -> anyhow::Result<()> {
    let store = args.open_existing()?;
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    let report = runtime
        .block_on(ledger_replay::verify::verify(&store))
        .context("reading the event log")?;
    store.close();
    for violation in &report.violations {
        println!("{violation}");
    }
    if report.violations_unlisted > 0 {
        println!("… and {} more", report.violations_unlisted);
    }
    let found = report.violations.len() as u64 + report.violations_unlisted;
    if found > 0 {
        anyhow::bail!(
            "{} in {} of {}",
            counted(found, "violation"),
            counted(report.events, "event"),
            counted(report.orders as u64, "stream")
        );
    }
    println!(
        "verified {} of {}: every invariant holds",
        counted(report.events, "event"),
        counted(report.orders as u64, "order")
    );
    Ok(())
}

fn run_history(
    order: ledger_domain::OrderId,
    cutoff: ledger_replay::history::Cutoff,
    json: bool,
    args: &StoreArgs,
) -> anyhow::Result<()> {
    let store = args.open_existing()?;
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    let history = runtime.block_on(ledger_replay::history::history(&store, order, cutoff));
    store.close();
    let history = history.context("reading the order's history")?;
    if json {
        println!("{}", serde_json::to_string_pretty(&history)?);
    } else {
        print!("{}", ledger_replay::history::render(&history));
    }
    Ok(())
}

fn run_rebuild(
    view: Option<ledger_projections::ViewName>,
    quiet: bool,
    args: &StoreArgs,
) -> anyhow::Result<()> {
    use ledger_store::EventStore;
    let store = args.open_existing()?;
    let data_dir = args.config()?.data_dir;
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    let last = runtime
        .block_on(store.read_all(
            ledger_store::AllFrom::End,
            ledger_store::Direction::Backwards,
            1,
        ))
        .context("reading the log")?;
    let total = last.first().map_or(0, |e| e.position + 1);
    let bar = if quiet {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(total).with_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} events  {per_sec}  eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        )
    };
    let started = std::time::Instant::now();
    let on_progress = |applied| bar.set_position(applied);
    let progress = runtime
        .block_on(async {
            match view {
                // The stored views are not read: they may be the very reason for the rebuild.
                None => ledger_projections::Projector::rebuild_all(&data_dir, &store, on_progress)
                    .await
                    .map(|(_, progress)| progress),
                Some(view) => {
                    ledger_projections::Projector::open(&data_dir)?
                        .rebuild_view(&store, view, on_progress)
                        .await
                }
            }
        })
        .context("rebuilding the views")?;
    bar.finish_and_clear();
    store.close();
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "rebuilt {} from {} events in {:.2} s ({:.0} events/s); checkpoint {}",
        view.map_or("every view".to_owned(), |v| format!(
            "the {} view",
            v.as_str()
        )),
        progress.applied,
        seconds,
        progress.applied as f64 / seconds.max(f64::EPSILON),
        progress
            .checkpoint
            .map_or("none".to_owned(), |c| c.to_string()),
    );
    Ok(())
}

fn run_export(
    from: Option<u64>,
    to: Option<u64>,
    stream: Option<String>,
    args: &StoreArgs,
) -> anyhow::Result<()> {
    let stream = stream
        .map(ledger_store::StreamName::new)
        .transpose()
        .context("--stream")?;
    if let (Some(from), Some(to)) = (from, to) {
        anyhow::ensure!(
            from <= to,
            "--to {to} is before --from {from}: no position is in that range"
        );
    }
    let store = args.open_existing()?;
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    let whole_log = stream.is_none();
    let selection = ledger_replay::transfer::Selection { from, to, stream };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let exported = runtime.block_on(ledger_replay::transfer::export(
        &store, &selection, &mut out,
    ));
    store.close();
    let exported = exported.context("exporting")?;
    let count = exported.events;
    if whole_log {
        // What an incremental backup needs to know for the next one.
        let next = exported
            .last_position
            .map_or(from.unwrap_or(0), |last| last + 1);
        eprintln!(
            "exported {}; the next increment: --from {next}",
            counted(count, "event")
        );
    } else {
        eprintln!("exported {}", counted(count, "event"));
    }
    Ok(())
}

fn run_import(file: &std::path::Path, append: bool, args: &StoreArgs) -> anyhow::Result<()> {
    let export = ExportFile::open(file)?;
    let count = ledger_replay::transfer::check(export.reader()?)
        .with_context(|| format!("{export} is not a sound export; nothing was imported"))?;
    let config = args.config()?;
    let store = ledger_store::SqliteStore::open(&config.data_dir)
        .and_then(ledger_store::SqliteStore::to_write)
        .with_context(|| format!("opening the event log in {}", config.data_dir.display()))?;
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    let imported = runtime.block_on(async {
        if append {
            ledger_replay::transfer::fits(&store, export.reader()?)
                .await
                .context("nothing was imported")?;
        }
        ledger_replay::transfer::import(&store, export.reader()?, append)
            .await
            .context("importing")
    });
    store.close();
    let new = imported?;
    match count - new.min(count) {
        0 => println!("imported {} from {export}", counted(new, "event")),
        present => println!(
            "imported {} from {export}; the store held the other {present} already",
            counted(new, "event")
        ),
    }
    Ok(())
}

/// An export to read twice, checked whole and then loaded: a file, or standard input (`-`)
/// kept in a temporary file meanwhile, so that `ledger export | ledger import -` works.
struct ExportFile {
    path: std::path::PathBuf,
    spooled: Option<tempfile::TempPath>,
}

impl ExportFile {
    fn open(file: &std::path::Path) -> anyhow::Result<ExportFile> {
        if file != std::path::Path::new("-") {
            return Ok(ExportFile {
                path: file.to_path_buf(),
                spooled: None,
            });
        }
        let mut spool = tempfile::NamedTempFile::new().context("creating a temporary file")?;
        std::io::copy(&mut std::io::stdin().lock(), &mut spool)
            .context("reading the export from standard input")?;
        let spooled = spool.into_temp_path();
        Ok(ExportFile {
            path: spooled.to_path_buf(),
            spooled: Some(spooled),
        })
    }

    fn reader(&self) -> anyhow::Result<std::io::BufReader<std::fs::File>> {
        std::fs::File::open(&self.path)
            .map(std::io::BufReader::new)
            .with_context(|| format!("opening {self}"))
    }
}

impl std::fmt::Display for ExportFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.spooled {
            Some(_) => f.write_str("standard input"),
            None => write!(f, "{}", self.path.display()),
        }
    }
}

fn run_replay(file: &std::path::Path, keep: Option<std::path::PathBuf>) -> anyhow::Result<()> {
    let export = ExportFile::open(file)?;
    let count = ledger_replay::transfer::check(export.reader()?)
        .with_context(|| format!("{export} is not a sound export"))?;
    let scratch = tempfile::tempdir().context("creating a scratch directory")?;
    let dir = keep.unwrap_or_else(|| scratch.path().to_path_buf());
    if dir.join(ledger_store::LOG_FILE_NAME).exists() {
        anyhow::bail!(
            "{} already holds a log; replay into a fresh directory",
            dir.display()
        );
    }
    let store = ledger_store::SqliteStore::open(&dir)
        .with_context(|| format!("creating a store in {}", dir.display()))?;
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    let replayed = runtime.block_on(async {
        ledger_replay::transfer::import(&store, export.reader()?, false).await?;
        let (projector, _) =
            ledger_projections::Projector::rebuild_all(&dir, &store, |_| {}).await?;
        let report = ledger_replay::verify::verify(&store).await?;
        anyhow::Ok((projector, report))
    });
    store.close();
    let (projector, report) = replayed.context("replaying")?;
    println!(
        "replayed {} into {}",
        counted(count, "event"),
        dir.display()
    );
    print!("{}", ledger_replay::totals::render(projector.views()));
    for violation in &report.violations {
        println!("violation: {violation}");
    }
    let found = report.violations.len() as u64 + report.violations_unlisted;
    if found > 0 {
        anyhow::bail!("{}", counted(found, "violation"));
    }
    println!("every invariant holds");
    Ok(())
}

fn run_simulate(orders: u64, seed: u64, quiet: bool, args: &StoreArgs) -> anyhow::Result<()> {
    use ledger_store::EventStore;
    let config = args.config()?;
    let store = std::sync::Arc::new(
        ledger_store::SqliteStore::open(&config.data_dir)
            .and_then(ledger_store::SqliteStore::to_write)
            .with_context(|| format!("opening the event log in {}", config.data_dir.display()))?,
    );
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    let existing = runtime
        .block_on(store.read_all(
            ledger_store::AllFrom::Start,
            ledger_store::Direction::Forwards,
            1,
        ))
        .context("reading the log")?;
    if !existing.is_empty() {
        anyhow::bail!(
            "{} already holds events; simulate into an empty data directory",
            config.data_dir.display()
        );
    }
    let handler = std::sync::Arc::new(ledger_commands::CommandHandler::new(
        store.clone(),
        ledger_domain::Policy::default(),
    ));
    let bar = if quiet {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(orders).with_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} orders  eta {eta}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        )
    };
    let started = std::time::Instant::now();
    let simulation = order_ledger::simulate::Simulation::new(handler, seed);
    let report = runtime
        .block_on(simulation.run(orders, |done| bar.inc(done)))
        .context("simulating");
    bar.finish_and_clear();
    store.close();
    let report = report?;
    println!(
        "simulated {} orders with seed {seed}: {} commands ({} refused by the rules), {} timers fired, in {:.1} s",
        report.orders,
        report.commands,
        report.refused,
        report.timers_fired,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn run_copy(to: &std::path::Path, from: Option<u64>, args: &StoreArgs) -> anyhow::Result<()> {
    if !to.exists() {
        anyhow::bail!("there is no configuration file at {}", to.display());
    }
    let target_config = ledger_store::StoreConfig::load(Some(to))
        .with_context(|| format!("reading {}", to.display()))?;
    let source_config = args.any_config()?;
    if source_config.store == ledger_store::StoreKind::Embedded {
        let log = source_config.data_dir.join(ledger_store::LOG_FILE_NAME);
        if !log.exists() {
            anyhow::bail!("there is no event log at {}", log.display());
        }
        // Else the target's lock, held by this very process, would be blamed on another.
        let same = |a: &std::path::Path, b: &std::path::Path| matches!((a.canonicalize(), b.canonicalize()), (Ok(a), Ok(b)) if a == b);
        if target_config.store == ledger_store::StoreKind::Embedded
            && same(&source_config.data_dir, &target_config.data_dir)
        {
            anyhow::bail!(
                "the target is the source ({}): a log cannot be copied into itself",
                source_config.data_dir.display()
            );
        }
    }
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    let copied = runtime.block_on(async {
        let source = source_config
            .open()
            .await
            .context("opening the source log")?;
        let target = target_config
            .open_to_write()
            .await
            .context("opening the target log")?;
        ledger_replay::transfer::copy(&*source, &*target, from)
            .await
            .context("copying")
    })?;
    let into = match target_config.store {
        ledger_store::StoreKind::Embedded => target_config.data_dir.display().to_string(),
        ledger_store::StoreKind::EventStoreDb => "EventStoreDB".to_owned(),
    };
    println!(
        "copied {} from position {} into {into}",
        counted(copied.events, "event"),
        copied.from
    );
    Ok(())
}
