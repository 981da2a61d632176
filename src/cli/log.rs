//! The log's tools: verify, history, inspect, rebuild, export, import, replay, simulate and
//! copy, each over the embedded store the configuration names.

use crate::{counted, StoreArgs};
use anyhow::Context;
use ledger_projections::StoredViews;

pub(crate) fn run_verify(check_views: bool, args: &StoreArgs) -> anyhow::Result<()> {
    let store = args.open_existing()?;
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    let progress = events_progress(events_in(&runtime, &store)?, false);
    progress.set_message("verifying");
    let report = runtime
        .block_on(ledger_replay::verify::verify(&store, |checked| {
            progress.set_position(checked)
        }))
        .context("reading the event log");
    progress.finish_and_clear();
    let report = report?;
    let views = if check_views {
        let data_dir = args.config()?.data_dir;
        let check = runtime.block_on(ledger_projections::Projector::check_stored(
            &data_dir, &store,
        ));
        Some(check.context("comparing the stored views with the log")?)
    } else {
        None
    };
    store.close();
    for violation in &report.violations {
        println!("{violation}");
    }
    if report.violations_unlisted > 0 {
        println!("… and {} more", report.violations_unlisted);
    }
    let views_sound = views.as_ref().is_none_or(say_how_the_views_stand);
    let found = report.violations.len() as u64 + report.violations_unlisted;
    if found > 0 {
        anyhow::bail!(
            "{} in {} of {}",
            counted(found, "violation"),
            counted(report.events, "event"),
            counted(report.orders as u64, "stream")
        );
    }
    anyhow::ensure!(
        views_sound,
        "the stored views are not what the log folds to: `ledger rebuild` folds them again"
    );
    let others = match report.others {
        0 => String::new(),
        others => format!(
            " (and {} of other applications' streams, passed by)",
            counted(others, "event")
        ),
    };
    println!(
        "verified {} of {}{others}: every invariant holds",
        counted(report.events - report.others, "event"),
        counted(report.orders as u64, "order")
    );
    Ok(())
}

/// Prints how the stored views compare with the log; whether they are what it folds to.
fn say_how_the_views_stand(check: &ledger_projections::ViewsCheck) -> bool {
    use ledger_projections::ViewsCheck;
    match check {
        ViewsCheck::NotCompared(standing) => {
            println!("views: {}", standing_in_words(standing, None));
            matches!(standing, StoredViews::Nothing)
        }
        ViewsCheck::Compared { checkpoint, unlike } => {
            for view in unlike {
                println!(
                    "the stored {} view differs from a fold of the log up to position {checkpoint}",
                    view.as_str()
                );
            }
            if unlike.is_empty() {
                println!(
                    "the stored views are what the log folds to, up to their checkpoint {checkpoint}"
                );
            }
            unlike.is_empty()
        }
    }
}

/// Where stored views stand and what comes of it, as `inspect` and `verify --views` say it.
fn standing_in_words(standing: &StoredViews, behind: Option<u64>) -> String {
    match standing {
        StoredViews::FoldedUpTo { checkpoint } => match behind {
            Some(behind) => format!(
                "folded up to position {checkpoint}, {} behind the log",
                crate::counted(behind, "event")
            ),
            None => format!("folded up to position {checkpoint}"),
        },
        StoredViews::Nothing => {
            "none stored: `ledger serve` folds them at its start, `ledger rebuild` at once".to_owned()
        }
        StoredViews::OlderLayout { schema } => format!(
            "an older layout (schema {schema}): the next `ledger serve` folds them again"
        ),
        StoredViews::NewerLayout { schema } => format!(
            "written by a newer binary (schema {schema}): this one cannot read them; `ledger rebuild` replaces them"
        ),
        StoredViews::AnotherLog { checkpoint } => format!(
            "folded from another log (this one holds another event at their checkpoint {checkpoint}, or none): the next `ledger serve` folds them again"
        ),
    }
}

pub(crate) fn run_history(
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

pub(crate) fn run_inspect(json: bool, args: &StoreArgs) -> anyhow::Result<()> {
    let data_dir = args.config()?.data_dir;
    let store = args.open_existing()?;
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    let inspection = runtime.block_on(ledger_replay::inspect::inspect(&data_dir, &store));
    store.close();
    let inspection = inspection.with_context(|| format!("inspecting {}", data_dir.display()))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&inspection)?);
    } else {
        print!("{}", render_inspection(&inspection));
    }
    Ok(())
}

fn render_inspection(inspection: &ledger_replay::inspect::Inspection) -> String {
    use ledger_replay::inspect::ViewsSeen;
    use std::fmt::Write;
    let log = &inspection.log;
    let instant =
        |at: chrono::DateTime<chrono::Utc>| at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut out = String::new();
    let _ = match (log.first, log.last) {
        (Some(first), Some(last)) => writeln!(
            out,
            "log       {} at positions {} to {}, recorded {} to {}",
            crate::counted(log.events, "event"),
            first.position,
            last.position,
            instant(first.recorded_at),
            instant(last.recorded_at)
        ),
        _ => writeln!(out, "log       empty"),
    };
    let categories: Vec<String> = log
        .streams_by_category
        .iter()
        .map(|(category, count)| format!("{category} {count}"))
        .collect();
    let _ = writeln!(
        out,
        "streams   {}{}",
        log.streams,
        if categories.is_empty() {
            String::new()
        } else {
            format!(" ({})", categories.join(", "))
        }
    );
    if let (Some(data), Some(metadata)) = (
        log.data_bytes.checked_div(log.events),
        log.metadata_bytes.checked_div(log.events),
    ) {
        let _ = writeln!(
            out,
            "payload   {} of data and {} of metadata an event on average",
            indicatif::HumanBytes(data),
            indicatif::HumanBytes(metadata)
        );
    }
    let views = match &inspection.views {
        ViewsSeen::Unreadable(unreadable) => format!(
            "cannot be read ({}): `ledger rebuild` folds them again from the log",
            unreadable.detail
        ),
        ViewsSeen::Read(standing) => {
            standing_in_words(standing, Some(inspection.views_behind.unwrap_or(0)))
        }
    };
    let _ = writeln!(out, "views     {views}");
    let files: Vec<String> = inspection
        .files
        .iter()
        .map(|file| format!("{} {}", file.name, indicatif::HumanBytes(file.bytes)))
        .collect();
    let _ = writeln!(out, "files     {}", files.join(", "));
    if !log.events_by_type.is_empty() {
        let _ = writeln!(out, "events by type");
        let mut types: Vec<(&String, &u64)> = log.events_by_type.iter().collect();
        types.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
        let width = types.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
        for (name, count) in types {
            let _ = writeln!(out, "  {name:<width$}  {count:>10}");
        }
    }
    out
}

pub(crate) fn run_rebuild(
    view: Option<ledger_projections::ViewName>,
    quiet: bool,
    args: &StoreArgs,
) -> anyhow::Result<()> {
    let store = args.open_existing()?;
    let data_dir = args.config()?.data_dir;
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    let bar = events_progress(events_in(&runtime, &store)?, quiet);
    bar.set_message("rebuilding");
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

pub(crate) fn run_export(
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
    // The bytes written so far, on a terminal, when the export goes elsewhere: ten million
    // events are 8 GB and a minute's work.
    let progress = if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new_spinner().with_style(
            indicatif::ProgressStyle::with_template(
                "exporting {spinner} {bytes} written  {bytes_per_sec}  {elapsed}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        )
    };
    let mut out = std::io::BufWriter::new(progress.wrap_write(std::io::stdout().lock()));
    let exported = runtime.block_on(ledger_replay::transfer::export(
        &store, &selection, &mut out,
    ));
    progress.finish_and_clear();
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

pub(crate) fn run_import(
    file: &std::path::Path,
    append: bool,
    args: &StoreArgs,
) -> anyhow::Result<()> {
    let export = ExportFile::open(file)?;
    let progress = file_progress();
    let count = ledger_replay::transfer::check(export.reader(&progress, "checking")?)
        .with_context(|| format!("{export} is not a sound export; nothing was imported"))?;
    let store = args.open_to_write()?;
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    let imported = runtime.block_on(async {
        let fit = if append {
            let fit = ledger_replay::transfer::fits(&store, export.reader(&progress, "comparing")?)
                .await
                .context("nothing was imported")?;
            Some(fit)
        } else {
            None
        };
        ledger_replay::transfer::import(&store, export.reader(&progress, "importing")?, fit)
            .await
            .context("importing")
    });
    progress.finish_and_clear();
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

    /// The file from its start, each byte read moving `progress` on under `stage`: a file
    /// of ten million events takes minutes to check and as long again to import.
    fn reader(
        &self,
        progress: &indicatif::ProgressBar,
        stage: &'static str,
    ) -> anyhow::Result<std::io::BufReader<indicatif::ProgressBarIter<std::fs::File>>> {
        let file = std::fs::File::open(&self.path).with_context(|| format!("opening {self}"))?;
        let length = file.metadata().map(|m| m.len()).unwrap_or(0);
        progress.reset();
        progress.set_length(length);
        progress.set_message(stage);
        Ok(std::io::BufReader::new(progress.wrap_read(file)))
    }
}

/// How many events the log holds: the length of a bar that goes through it.
fn events_in(
    runtime: &tokio::runtime::Runtime,
    store: &ledger_store::SqliteStore,
) -> anyhow::Result<u64> {
    use ledger_store::EventStore;
    Ok(runtime
        .block_on(store.last_position())
        .context("reading the log")?
        .map_or(0, |last| last + 1))
}

/// A bar of the events of the log gone through; like indicatif's others, drawn only on a
/// terminal.
fn events_progress(total: u64, quiet: bool) -> indicatif::ProgressBar {
    if quiet {
        return indicatif::ProgressBar::hidden();
    }
    indicatif::ProgressBar::new(total).with_style(
        indicatif::ProgressStyle::with_template(
            "{msg:9} {bar:40} {pos}/{len} events  {per_sec}  eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    )
}

/// A bar of the bytes of an export read, shown on a terminal only (as indicatif's are).
fn file_progress() -> indicatif::ProgressBar {
    indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template(
            "{msg:9} {bar:40} {bytes}/{total_bytes}  {bytes_per_sec}  eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    )
}

impl std::fmt::Display for ExportFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.spooled {
            Some(_) => f.write_str("standard input"),
            None => write!(f, "{}", self.path.display()),
        }
    }
}

pub(crate) fn run_replay(
    file: &std::path::Path,
    keep: Option<std::path::PathBuf>,
) -> anyhow::Result<()> {
    let export = ExportFile::open(file)?;
    let progress = file_progress();
    let count = ledger_replay::transfer::check(export.reader(&progress, "checking")?)
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
        ledger_replay::transfer::import(&store, export.reader(&progress, "importing")?, None)
            .await?;
        progress.finish_and_clear();
        let events = events_progress(count, false);
        events.set_message("rebuilding");
        let (projector, _) = ledger_projections::Projector::rebuild_all(&dir, &store, |folded| {
            events.set_position(folded)
        })
        .await?;
        events.reset();
        events.set_message("verifying");
        let report =
            ledger_replay::verify::verify(&store, |checked| events.set_position(checked)).await?;
        events.finish_and_clear();
        anyhow::Ok((projector, report))
    });
    progress.finish_and_clear();
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

pub(crate) fn run_simulate(
    orders: u64,
    seed: u64,
    concurrency: u64,
    quiet: bool,
    args: &StoreArgs,
) -> anyhow::Result<()> {
    use ledger_store::EventStore;
    let config = args.config()?;
    let store = std::sync::Arc::new(args.open_to_write()?);
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    let existing = runtime
        .block_on(store.last_position())
        .context("reading the log")?;
    if existing.is_some() {
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
    let report = if concurrency == 1 {
        let simulation = order_ledger::simulate::Simulation::new(handler, seed);
        runtime.block_on(simulation.run(orders, |done| bar.inc(done)))
    } else {
        let progress = bar.clone();
        runtime.block_on(order_ledger::simulate::simulate_concurrently(
            handler,
            orders,
            seed,
            concurrency,
            move |done| progress.inc(done),
        ))
    }
    .context("simulating");
    bar.finish_and_clear();
    store.close();
    let report = report?;
    println!(
        "simulated {} orders with seed {seed}: {} commands ({} refused by the rules), {} timers fired, {} timer commands refused, in {:.1} s",
        report.orders,
        report.commands,
        report.refused,
        report.timers_fired,
        report.timers_refused,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

pub(crate) fn run_copy(
    to: &std::path::Path,
    from: Option<u64>,
    args: &StoreArgs,
) -> anyhow::Result<()> {
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
