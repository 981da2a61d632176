//! `ledger serve`: the HTTP API over the command pipeline and the views, the projection that
//! keeps the views current, and the timers that act when a deadline passes.
//!
//! Wiring only: rules live in the domain, durability in the store, folding in the views.
//! A command's response waits until the views have folded its events, so a client that reads
//! after writing sees its write.

pub mod auth;
pub mod clock;
pub mod commands;
pub mod config;
mod grpc;
mod http;
#[cfg(target_os = "linux")]
mod idle_class;
mod metered;
mod ops;
pub mod problem;
mod queries;
mod reports;
mod shapes;
mod signals;
mod starting;
mod streams;

use crate::timers::{fire_timers, RefusalWarnings, TimerPages, TIMERS_PER_TICK_MAX};
use anyhow::Context;
use auth::{ApiRole, TokenKeys};
use clock::Clock;
use config::ServiceConfig;
use ledger_commands::CommandHandler;
use ledger_domain::Policy;
use ledger_projections::{ProjectionError, Projector, Saver, Views};
use ledger_store::{EventStore, SubscribeFrom};
use metrics_exporter_prometheus::PrometheusHandle;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tower_http::compression::predicate::{DefaultPredicate, Predicate, SizeAbove};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

/// Longest a command's response waits for the views to fold its events.
const VIEWS_WAIT: Duration = Duration::from_secs(5);
/// How long shutdown waits for the EventStoreDB protocol's connections to close.
const GRPC_DRAIN: Duration = Duration::from_secs(5);
/// How long shutdown waits for HTTP requests in flight: a command's append and its wait for
/// the views (`VIEWS_WAIT`), with room to spare.
const HTTP_DRAIN: Duration = Duration::from_secs(10);
/// How often the views are saved while events keep arriving.
const VIEWS_SAVE_INTERVAL: Duration = Duration::from_secs(2);
/// Events folded after which the views are saved without waiting for the interval. Taking a
/// save's copies pauses the fold, and every command waiting for it, for as long as the
/// copies take, so smaller saves make shorter pauses (at 10,000 commands/s: a median of
/// 1.4 ms, where a save every 2 s paused 8 to 54 ms; docs/performance.md).
const VIEWS_SAVE_EVENTS: usize = 2_000;

/// Everything a request handler may use. Every request gets a clone of it: one reference
/// count, where a clone of the fields cost ten and two allocations (the token keys), 2% of
/// the service's CPU under load.
#[derive(Clone)]
pub struct AppState(Arc<SharedState>);

impl std::ops::Deref for AppState {
    type Target = SharedState;
    fn deref(&self) -> &SharedState {
        &self.0
    }
}

pub struct SharedState {
    pub store: Arc<dyn EventStore>,
    pub handler: Arc<CommandHandler>,
    projector: Arc<Mutex<Projector>>,
    /// The last `$all` position the views have folded.
    folded: watch::Receiver<Option<u64>>,
    projection_failure: Mutex<Option<String>>,
    /// Why the last save of the views failed, until one succeeds: the views keep folding,
    /// and their saves are tried again in order.
    save_failure: Mutex<Option<String>>,
    pub clock: Clock,
    pub keys: TokenKeys,
    pub policy: Policy,
    metrics: Option<PrometheusHandle>,
    shutdown: watch::Receiver<bool>,
    idempotency: commands::KeyFingerprints,
    /// The EventStoreDB protocol's open subscriptions, once it serves.
    grpc_subscriptions: std::sync::OnceLock<ledger_store::node::OpenSubscriptions>,
    /// Runs the timers before their next tick: the dev clock moved past deadlines.
    timers_wake: tokio::sync::Notify,
}

impl SharedState {
    /// Runs `query` on the views as they stand.
    pub fn views<T>(&self, query: impl FnOnce(&Views) -> T) -> Result<T, problem::ApiError> {
        let projector = self
            .projector
            .lock()
            .map_err(|_| problem::ApiError::internal("the views' lock was poisoned"))?;
        Ok(query(projector.views()))
    }

    /// Waits until the views have folded `position`; false if they did not in time.
    async fn views_reach(&self, position: u64) -> bool {
        let mut folded = self.folded.clone();
        tokio::time::timeout(
            VIEWS_WAIT,
            folded.wait_for(|p| p.is_some_and(|p| p >= position)),
        )
        .await
        .is_ok_and(|r| r.is_ok())
    }

    /// Resolves when the service is shutting down.
    pub async fn shutting_down(&self) {
        let mut shutdown = self.shutdown.clone();
        let _ = shutdown.wait_for(|stop| *stop).await;
    }
}

/// How `ledger serve` was asked to run.
pub struct ServeOptions {
    pub config: ServiceConfig,
    /// Where the log is; the views live in its `data_dir` whichever the store.
    pub store: ledger_store::StoreConfig,
    pub dev: bool,
    /// Where to tell the caller the bound address (tests bind port 0).
    pub announce: bool,
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Order Ledger", description = "An event-sourced escrow ledger for a freelance marketplace. See docs/api.md."),
    components(schemas(problem::Problem), responses(commands::CommandResponse, problem::Problem)),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// Any operation that answers a problem may also answer a 5xx one: 503 while the service
/// starts, when the log's disk is full or the store does not answer, 500 for an event it cannot
/// read. A fact of the service, not of each route, so it is added here.
struct ServerProblems;

impl utoipa::Modify for ServerProblems {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{Ref, RefOr};
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.delete,
            ];
            for operation in operations.into_iter().flatten() {
                let responses = &mut operation.responses.responses;
                if responses.contains_key("4XX") {
                    responses.insert(
                        "5XX".to_owned(),
                        RefOr::Ref(Ref::from_response_name("Problem")),
                    );
                }
            }
        }
    }
}

/// The router with every route, and the OpenAPI document describing exactly those routes.
pub fn router(state: AppState, dev: bool, body_limit: usize) -> axum::Router {
    let mut api = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(commands::routes())
        .merge(queries::routes().layer(compression()))
        .merge(streams::routes())
        .merge(ops::routes().layer(compression()));
    if dev {
        api = api.merge(ops::dev_routes());
    }
    let (router, mut openapi) = api.split_for_parts();
    // Modifiers of `ApiDoc` run before the routes are merged in: this one needs them.
    utoipa::Modify::modify(&ServerProblems, &mut openapi);
    let openapi = Arc::new(openapi);
    router
        .route(
            "/openapi.json",
            axum::routing::get(move || {
                let openapi = Arc::clone(&openapi);
                async move { axum::Json(openapi.as_ref().clone()) }
            })
            .layer(compression()),
        )
        .fallback(|| async { problem::ApiError::not_found("no such route") })
        .method_not_allowed_fallback(|| async {
            problem::ApiError::new(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take that method",
            )
        })
        .layer(axum::extract::DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn(ops::record_request))
        // Its own failure line knows no path or cause: `ops::record_request` writes that one.
        .layer(tower_http::trace::TraceLayer::new_for_http().on_failure(()))
        .with_state(state)
}

/// Reads' answers of at least this many bytes go out gzipped to clients that accept it: a
/// page of the journal or of orders shrinks several times over, and one order's summary
/// stays as it is, cheaper to send than to compress.
pub const COMPRESSED_ABOVE_BYTES: u16 = 8 * 1024;

/// For reads only: commands' answers are small and their path is the one that must stay
/// fast, and event streams must not wait in a compressor. gzip at its fastest level costs a
/// report a third of the CPU of the default level for ~15% more bytes (docs/performance.md).
fn compression() -> tower_http::compression::CompressionLayer<impl Predicate> {
    tower_http::compression::CompressionLayer::new()
        .quality(tower_http::CompressionLevel::Fastest)
        .compress_when(DefaultPredicate::new().and(SizeAbove::new(COMPRESSED_ABOVE_BYTES)))
}

/// Runs the service until SIGINT or SIGTERM, then drains it.
pub async fn serve(options: ServeOptions) -> anyhow::Result<()> {
    let ServeOptions {
        config,
        store: store_config,
        dev,
        announce,
    } = options;
    let mut stop_signals = signals::StopSignals::listen();
    let data_dir = store_config.data_dir.clone();
    let keys = token_keys(config.jwt_secret.as_deref(), dev)?;
    let grpc_tls = config.grpc_tls()?;
    let https = config.https()?;
    let scheme = if https.is_some() { "https" } else { "http" };
    let store = open_log(&store_config).await?;
    let handler = Arc::new(CommandHandler::with_cache(
        Arc::clone(&store),
        config.policy.clone(),
        config.state_cache_orders,
    ));

    // Bound before the views are brought up to date, which takes a minute on ten million
    // events without stored views: a port in use fails at once, and probes are answered
    // meanwhile (`/healthz` 200, the rest 503 "starting").
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let address = listener.local_addr()?;
    let metrics = ops::install_metrics();
    let progress = starting::StartProgress::new(Arc::clone(&store), metrics.clone());
    let (listener, starting) = starting::serve(listener, https.clone(), progress.clone())?;
    if announce {
        starting::announce(address, scheme)?;
    }

    // A stop while the views catch up ends the start as a kill would (the views are saved
    // only whole, and a crash-safe log loses nothing), but says so and exits 0.
    let projector = tokio::select! {
        projector = views_up_to_date(&data_dir, &*store, &progress) => projector?,
        _ = stop_signals.recv() => {
            tracing::info!("stopped while starting; the views catch up from their last save next time");
            starting.stop().await;
            return Ok(());
        }
    };
    let (folded_tx, folded) = watch::channel(projector.checkpoint());
    let projector = Arc::new(Mutex::new(projector));
    let (shutdown_tx, shutdown) = watch::channel(false);

    let state = AppState(Arc::new(SharedState {
        store: Arc::clone(&store),
        handler: Arc::clone(&handler),
        projector: Arc::clone(&projector),
        folded,
        projection_failure: Mutex::default(),
        save_failure: Mutex::default(),
        clock: clock_after(&*store, dev).await,
        keys: keys.clone(),
        policy: config.policy.clone(),
        metrics,
        shutdown: shutdown.clone(),
        idempotency: commands::KeyFingerprints::default(),
        grpc_subscriptions: std::sync::OnceLock::new(),
        timers_wake: tokio::sync::Notify::new(),
    }));

    let projection = tokio::spawn(project(state.clone(), folded_tx));
    let timers = tokio::spawn(run_timers(
        state.clone(),
        Duration::from_millis(config.timer_interval_ms),
    ));

    starting.stop().await;
    tracing::info!(%address, dev, "listening");
    if announce {
        announce_start(address, scheme, dev, &keys)?;
    }

    let grpc = match config.grpc_listen {
        Some(address) => {
            let node = grpc::start(
                address,
                Arc::clone(&store),
                &keys,
                &config.grpc_users,
                config.grpc_anonymous_read,
                grpc_tls,
                state.clone(),
            )
            .await?;
            if announce {
                grpc::announce(node.0, config.grpc_tls_cert.is_some())?;
            }
            Some(node)
        }
        None => None,
    };

    let app = router(state.clone(), dev, config.body_limit_bytes);
    let graceful = {
        let state = state.clone();
        async move { state.shutting_down().await }
    };
    tokio::spawn(stop_on_signals(stop_signals, shutdown_tx));
    http::serve(listener, app, https, graceful, HTTP_DRAIN).await;

    if let Some((_, node)) = grpc {
        // Subscriptions end at once; a client that keeps its connection open is not waited
        // for past the drain.
        match tokio::time::timeout(GRPC_DRAIN, node).await {
            Ok(served) => served.context("the EventStoreDB protocol task")??,
            Err(_) => tracing::warn!("EventStoreDB protocol clients still connected; closing"),
        }
    }
    timers.await.context("the timers task")?;
    projection.await.context("the projection task")?;
    tracing::info!("stopped");
    Ok(())
}

/// The log, the embedded one in its data directory (which also holds the views) or
/// EventStoreDB, measured for `/metrics`.
async fn open_log(config: &ledger_store::StoreConfig) -> anyhow::Result<Arc<dyn EventStore>> {
    let data_dir = &config.data_dir;
    let log = config
        .open_to_write()
        .await
        .with_context(|| match config.store {
            ledger_store::StoreKind::Embedded => {
                format!("opening the log in {}", data_dir.display())
            }
            ledger_store::StoreKind::EventStoreDb => "connecting to EventStoreDB".to_owned(),
        })?;
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    Ok(Arc::new(metered::MeteredStore::new(log)))
}

/// The first stop signal drains the service; a second ends the process at once.
async fn stop_on_signals(mut stop_signals: signals::StopSignals, shutdown_tx: watch::Sender<bool>) {
    stop_signals.recv().await;
    tracing::info!(
        "shutting down: no new requests; finishing those in flight (a second stop signal ends the process at once)"
    );
    let _ = shutdown_tx.send(true);
    // Whoever sends a second one would rather not wait for the drain's bounds (up to
    // ~15 s) and the views' save: both are safe to skip, the log is crash-safe.
    let second = stop_signals.recv().await;
    tracing::warn!(
        "a second stop signal: exiting now; requests in flight go unanswered and the views unsaved (the log holds every acknowledged event)"
    );
    std::process::exit(second.exit_code());
}

/// The configured secret, or with `--dev` a random one; a service that anyone could mint
/// tokens for is refused.
fn token_keys(configured: Option<&str>, dev: bool) -> anyhow::Result<TokenKeys> {
    let secret = match (configured, dev) {
        (Some(secret), _) => secret.to_owned(),
        (None, true) => random_secret(),
        (None, false) => anyhow::bail!(
            "no token secret: set jwt_secret in ledger.toml or LEDGER_JWT_SECRET, or run with --dev"
        ),
    };
    Ok(TokenKeys::new(&secret)?)
}

/// Opens the stored views and folds what the log gained since their checkpoint (all of it,
/// the first time). Views that cannot be opened stop the start, naming the way out.
async fn views_up_to_date(
    data_dir: &std::path::Path,
    store: &dyn EventStore,
    progress: &starting::StartProgress,
) -> anyhow::Result<Projector> {
    let mut projector = match Projector::open(data_dir) {
        Ok(projector) => projector,
        Err(error @ ProjectionError::InUse(_)) => {
            return Err(anyhow::Error::new(error).context("opening the views"))
        }
        Err(error) => {
            return Err(anyhow::Error::new(error).context(format!(
                "the views cannot be opened (they hold nothing the log does not: \
                 `ledger rebuild --data-dir {}` folds them again)",
                data_dir.display()
            )))
        }
    };
    progress.views_opened_at(projector.checkpoint());
    match projector.catch_up(store, progress.reporter()).await {
        Ok(progress) => {
            tracing::info!(
                applied = progress.applied,
                checkpoint = progress.checkpoint,
                "views caught up"
            );
        }
        // The views stop just before an event they cannot read, at a start as while running:
        // commands are still answered, and the follower meets the event again and reports it.
        Err(ProjectionError::Fact(error)) => {
            tracing::error!(%error, checkpoint = projector.checkpoint(), "the views stopped");
        }
        Err(error) => return Err(error).context("bringing the views up to date"),
    }
    Ok(projector)
}

fn announce_start(
    address: SocketAddr,
    scheme: &str,
    dev: bool,
    keys: &TokenKeys,
) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    writeln!(out, "ledger: listening on {scheme}://{address}")?;
    if dev {
        writeln!(
            out,
            "# dev mode: POST /dev/clock moves the clock. Tokens for each role, valid {} h:",
            auth::TOKEN_TTL_HOURS_DEFAULT
        )?;
        let now = chrono::Utc::now();
        for role in ApiRole::ALL {
            let sub = uuid::Uuid::new_v4();
            let token = keys.mint(
                role,
                sub,
                now,
                chrono::Duration::hours(auth::TOKEN_TTL_HOURS_DEFAULT),
            )?;
            let name = role.as_str().to_uppercase();
            writeln!(out, "export {name}_ID={sub} {name}_TOKEN={token}")?;
        }
    }
    out.flush()?;
    Ok(())
}

fn random_secret() -> String {
    use rand::Rng;
    let bytes: [u8; 32] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Folds every new event of `$all` into the views, saving them now and then and on shutdown.
/// A failure (an event the views cannot read) stops the views and makes `/readyz` say why; a
/// save that fails to be written (a full disk) does not: it is tried again with the next.
async fn project(state: AppState, folded: watch::Sender<Option<u64>>) {
    let (outcome, saver) = follow_log(&state, &folded).await;
    if let Err(error) = &outcome {
        tracing::error!(%error, "the views stopped");
        if let Ok(mut failure) = state.projection_failure.lock() {
            *failure = Some(error.to_string());
        }
    }
    // After a save was lost the stored views lack what it held: keep the last good ones.
    let Some(mut saver) = saver else {
        return;
    };
    let last = lock(&state.projector).map(|mut p| p.take_save());
    let saved = match last {
        Ok(last) => saver.write(last).map_err(anyhow::Error::from),
        Err(error) => Err(error),
    };
    if let Err(error) = saved {
        tracing::error!(%error, "saving the views on the way out");
    }
}

#[derive(Debug, thiserror::Error)]
#[error("saving the views: {0}")]
struct SaveFailed(ProjectionError);

/// A save being written on a blocking thread; it hands its `Saver` back when done.
struct SaveInFlight {
    task: tokio::task::JoinHandle<(Saver, Result<(), ProjectionError>)>,
    started: std::time::Instant,
}

/// Follows the log into the views until shutdown or a failure; gives back the saver, unless
/// a save was lost.
async fn follow_log(
    state: &AppState,
    folded: &watch::Sender<Option<u64>>,
) -> (anyhow::Result<()>, Option<Saver>) {
    let mut saver = None;
    let mut in_flight: Option<SaveInFlight> = None;
    let outcome = fold_live(state, folded, &mut saver, &mut in_flight).await;
    // Whatever happened, the save in flight lands before any later one is taken.
    if let Some(save) = in_flight {
        match finish_save(state, save).await {
            Ok(landed) => saver = Some(landed),
            Err(error) => return (outcome.and(Err(error)), None),
        }
    }
    (outcome, saver)
}

async fn fold_live(
    state: &AppState,
    folded: &watch::Sender<Option<u64>>,
    saver: &mut Option<Saver>,
    in_flight: &mut Option<SaveInFlight>,
) -> anyhow::Result<()> {
    let from = (*folded.borrow()).map_or(SubscribeFrom::Start, SubscribeFrom::After);
    let mut subscription = state.store.subscribe_all(from).await?;
    *saver = Some(lock(&state.projector)?.saver()?);
    let mut save_tick = tokio::time::interval(VIEWS_SAVE_INTERVAL);
    save_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut unsaved = 0;
    let mut saves_behind = false;
    loop {
        let first = tokio::select! {
            event = subscription.next() => event?,
            _ = save_tick.tick() => {
                // A save that has landed says how it went even when nothing new waits.
                land_finished_save(state, saver, in_flight).await?;
                let behind = saver.as_ref().is_some_and(|s| s.backlog() > 0);
                let due = unsaved > 0 || behind;
                if due && start_save(state, saver, in_flight, &mut saves_behind).await? {
                    unsaved = 0;
                }
                continue;
            }
            () = state.shutting_down() => return Ok(()),
        };
        let mut batch = vec![first];
        // What was taken before a failure is folded first.
        let failed = subscription
            .take_ready(&mut batch, ledger_store::READ_EVENTS_MAX)
            .err();
        let (applied, checkpoint) = {
            let mut projector = lock(&state.projector)?;
            let applied = projector.apply(&batch);
            (applied, projector.checkpoint())
        };
        unsaved += batch.len();
        folded.send_replace(checkpoint);
        applied?;
        if let Some(error) = failed {
            return Err(error.into());
        }
        // While the last save is still being written, the next batch tries again.
        if unsaved >= VIEWS_SAVE_EVENTS
            && start_save(state, saver, in_flight, &mut saves_behind).await?
        {
            unsaved = 0;
            save_tick.reset();
        }
    }
}

/// Takes what changed in the views and writes it on a blocking thread, unless the last save
/// is still being written; says whether it started one. Folding goes on meanwhile: commands
/// wait for the views, so writing on this task would stall every one of them. The thread is
/// in the idle scheduling class while it writes (`idle_class.rs`), unless `behind`: a save
/// was due while the last had been written for longer than the interval between saves, so
/// that a machine kept busy cannot hold saves back for long.
async fn start_save(
    state: &AppState,
    saver: &mut Option<Saver>,
    in_flight: &mut Option<SaveInFlight>,
    behind: &mut bool,
) -> anyhow::Result<bool> {
    land_finished_save(state, saver, in_flight).await?;
    let Some(mut idle) = saver.take() else {
        *behind |= in_flight
            .as_ref()
            .is_some_and(|save| save.started.elapsed() >= VIEWS_SAVE_INTERVAL);
        return Ok(false);
    };
    let pending = lock(&state.projector)?.take_save();
    let in_idle_class = !std::mem::take(behind);
    let task = tokio::task::spawn_blocking(move || {
        #[cfg(target_os = "linux")]
        let _class = in_idle_class.then(idle_class::IdleClass::enter);
        #[cfg(not(target_os = "linux"))]
        let _ = in_idle_class;
        let written = idle.write(pending);
        (idle, written)
    });
    *in_flight = Some(SaveInFlight {
        task,
        started: std::time::Instant::now(),
    });
    Ok(true)
}

/// Takes the saver back from a save in flight that has finished.
async fn land_finished_save(
    state: &AppState,
    saver: &mut Option<Saver>,
    in_flight: &mut Option<SaveInFlight>,
) -> anyhow::Result<()> {
    if let Some(done) = in_flight.take_if(|save| save.task.is_finished()) {
        *saver = Some(finish_save(state, done).await?);
    }
    Ok(())
}

/// Waits for a save and gives its saver back. A save that could not be written stays in
/// the saver's backlog and `/readyz` says why until one is; a save that could not be
/// serialised is lost, and stops the views.
async fn finish_save(state: &AppState, save: SaveInFlight) -> anyhow::Result<Saver> {
    let (saver, written) = save
        .task
        .await
        .map_err(|e| anyhow::anyhow!("the views' save task failed: {e}"))?;
    let failure = match written {
        Ok(()) => None,
        Err(error @ ProjectionError::CorruptView { .. }) => return Err(SaveFailed(error).into()),
        Err(error) => {
            tracing::error!(%error, behind = saver.backlog(), "saving the views failed; trying again");
            Some(SaveFailed(error).to_string())
        }
    };
    if let Ok(mut last) = state.save_failure.lock() {
        if last.is_some() && failure.is_none() {
            tracing::info!("the views are saved again");
        }
        *last = failure;
    }
    Ok(saver)
}

/// The service's clock, never before the last event the log holds: its instant came from
/// the clock of the process before, which may have run ahead (`--dev`'s, moved forward) or
/// the machine's may have been stepped back since. `--dev` resumes ticking from there;
/// otherwise the clock holds there until the machine's catches up.
async fn clock_after(store: &dyn EventStore, dev: bool) -> Clock {
    let clock = Clock::default();
    let Some(at) = ops::last_event(store)
        .await
        .ok()
        .flatten()
        .and_then(|event| ledger_commands::decode(&event).ok())
        .map(|(event, _)| event.at())
    else {
        return clock;
    };
    if dev {
        // Earlier than now is refused, and then the machine's clock is ahead anyway.
        let _ = clock.advance_to(at);
    } else {
        let behind = at - chrono::Utc::now();
        if behind > chrono::Duration::seconds(1) {
            tracing::warn!(
                last_event_at = %at,
                behind_ms = behind.num_milliseconds(),
                "the machine's clock is behind the log's last event: commands are dated from that event until it catches up (is NTP running?)"
            );
        }
        clock.not_before(at);
    }
    clock
}

fn lock<T>(mutex: &Mutex<T>) -> anyhow::Result<std::sync::MutexGuard<'_, T>> {
    mutex
        .lock()
        .map_err(|_| anyhow::anyhow!("a lock was poisoned by a panic"))
}

/// Every `interval`, and whenever the dev clock moves, sends the system's commands for the
/// deadlines that have passed. A full page of them may have more behind it (a backlog after
/// downtime): the next page follows at once, read once the views hold what this one appended,
/// or they would offer the same timers again.
async fn run_timers(state: AppState, interval: Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pages = TimerPages::new(TIMERS_PER_TICK_MAX);
    let mut warnings = RefusalWarnings::default();
    loop {
        if !pages.more() {
            tokio::select! {
                _ = tick.tick() => {}
                () = state.timers_wake.notified() => {}
                () = state.shutting_down() => return,
            }
        } else if *state.shutdown.borrow() {
            return;
        }
        let now = state.clock.now();
        let due = match state.views(|v| pages.next_page(&v.timers, now)) {
            Ok(due) => due,
            Err(error) => {
                tracing::error!(detail = %error.detail, "reading the due timers");
                pages.restart();
                continue;
            }
        };
        if due.is_empty() {
            continue;
        }
        let mut changed = Vec::new();
        match fire_timers(&state.handler, due, now, &mut changed, &mut warnings).await {
            // Fields of their own, so that a JSON log can be summed and filtered on them.
            Ok(report) => {
                ops::count_timers(&report);
                tracing::info!(
                    fired = report.fired,
                    already_fired = report.already_fired,
                    moved_on = report.moved_on,
                    refused = report.refused,
                    "timers fired"
                )
            }
            Err(error) => {
                tracing::error!(%error, "firing timers");
                pages.restart();
            }
        }
        // The next page follows at once, once the views hold this one's changes: they keep
        // up with a backlog rather than fall behind it.
        if let (true, Some(last)) = (
            pages.more(),
            changed.iter().map(|outcome| outcome.position).max(),
        ) {
            tokio::select! {
                _ = state.views_reach(last) => {}
                () = state.shutting_down() => return,
            }
        }
    }
}
