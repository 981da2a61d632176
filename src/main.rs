//! The `ledger` binary: a thin command line over the workspace's libraries. Errors from them
//! get context here and decide the exit code.

use anyhow::Context;
use clap::{Parser, Subcommand};
use cli::bench::BenchCommand;

/// The subcommands' runs; the library does the work, these open stores and print.
mod cli {
    pub mod bench;
    pub mod log;
}

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
        /// Also compare the stored views, view by view, with a fold of the log up to their
        /// checkpoint (not beside a running `ledger serve`, which holds them)
        #[arg(long)]
        views: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// An order's timeline: instant, actor, event, state after, money effect, what it said.
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
    /// What the data directory holds: the log's span, events by type, streams, file sizes, and
    /// where the stored views stand; reads only, beside a running `ledger serve` too.
    Inspect {
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
        /// The same seed gives the same events (their ids and recorded instants aside).
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Simulations side by side, with seeds derived from `--seed`: many times faster, and
        /// each order's history is the same for a seed, but not how they interleave in the log.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=1024))]
        concurrency: u64,
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
        order_ledger::service::config::check_file_keys(self.config.as_deref())?;
        self.store_config()
    }

    /// As `any_config`, for a caller whose service configuration checked the file's keys.
    fn store_config(&self) -> anyhow::Result<ledger_store::StoreConfig> {
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

    /// Opens the configured log (created if need be) as its one writer: a `serve` on it makes
    /// this fail, naming the directory.
    fn open_to_write(&self) -> anyhow::Result<ledger_store::SqliteStore> {
        let config = self.config()?;
        ledger_store::SqliteStore::open(&config.data_dir)
            .and_then(ledger_store::SqliteStore::to_write)
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
    let mut config = order_ledger::service::config::ServiceConfig::load(args.config.as_deref())?;
    let store = args.store_config()?;
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

fn run_token(
    role: order_ledger::service::auth::ApiRole,
    sub: uuid::Uuid,
    hours: i64,
    config: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let keys = order_ledger::service::config::ServiceConfig::load(config)?.minting_keys()?;
    let token = keys.mint(
        role,
        sub,
        chrono::Utc::now(),
        chrono::Duration::hours(hours),
    )?;
    println!("{token}");
    Ok(())
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
        Some(Commands::Bench(command)) => cli::bench::run(command),
        Some(Commands::Verify { views, store }) => cli::log::run_verify(views, &store),
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
            cli::log::run_history(ledger_domain::OrderId(order), cutoff, json, &store)
        }
        Some(Commands::Inspect { json, store }) => cli::log::run_inspect(json, &store),
        Some(Commands::Rebuild { view, quiet, store }) => {
            cli::log::run_rebuild(view, quiet, &store)
        }
        Some(Commands::Replay { file, keep }) => cli::log::run_replay(&file, keep),
        Some(Commands::Copy { to, from, store }) => cli::log::run_copy(&to, from, &store),
        Some(Commands::Simulate {
            orders,
            seed,
            concurrency,
            quiet,
            store,
        }) => cli::log::run_simulate(orders, seed, concurrency, quiet, &store),
        Some(Commands::Export {
            from,
            to,
            stream,
            store,
        }) => cli::log::run_export(from, to, stream, &store),
        Some(Commands::Import {
            file,
            append,
            store,
        }) => cli::log::run_import(&file, append, &store),
    }
}
