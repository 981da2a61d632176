//! How many durable commands per second the pipeline sustains, next to the ceiling: raw
//! batched SQLite inserts of the same rows into the same schema, with the same durability.
//!
//! Each producer is a client sending commands one after another and waiting for each to be
//! acknowledged durable: place, confirm, deliver, close, then a new order.

use chrono::{Duration, Utc};
use ledger_commands::{encode, stream_for, CommandHandler, CommandRequest};
use ledger_domain::{
    decide, evolve, Actor, Command, Currency, EventMetadata, Money, OrderId, OrderState, Policy,
    Role, UserId, EVENT_SCHEMA_VERSION,
};
use ledger_store::{EventData, EventStore, SqliteStore, StoreError, StreamName, LOG_FILE_NAME};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("a benchmark command failed: {0}")]
    Command(String),
}

#[derive(Clone, Copy, Debug)]
pub struct Throughput {
    pub operations: u64,
    pub seconds: f64,
}

impl Throughput {
    pub fn per_second(&self) -> f64 {
        self.operations as f64 / self.seconds.max(f64::EPSILON)
    }
}

/// The four commands of one order's short life, from its buyer and seller.
fn lifecycle(order: OrderId, step: u64) -> Command {
    let buyer = Actor::new(Role::Buyer, UserId(Uuid::from_u128(order.0.as_u128() ^ 1)));
    let seller = Actor::new(Role::Seller, UserId(Uuid::from_u128(order.0.as_u128() ^ 2)));
    let at = Utc::now();
    match step % 4 {
        0 => Command::Place {
            by: buyer,
            at,
            order_id: order,
            seller: seller.user_id,
            title: "A logo in three colours".into(),
            price: price(),
            delivery_days: 5,
        },
        1 => Command::Confirm { by: seller, at },
        2 => Command::Deliver {
            by: seller,
            at: at + Duration::hours(1),
            message: "Here is the logo.".into(),
        },
        _ => Command::Close {
            by: buyer,
            at: at + Duration::hours(2),
        },
    }
}

fn price() -> Money {
    Currency::from_code("EUR")
        .and_then(|eur| Money::parse("120.00", eur))
        .unwrap_or_else(|_| unreachable!("a literal EUR amount is valid"))
}

/// Durable commands per second with `producers` concurrent clients for `seconds`.
pub async fn command_throughput(
    data_dir: &Path,
    producers: usize,
    seconds: f64,
) -> Result<Throughput, BenchError> {
    let store = Arc::new(SqliteStore::open(data_dir)?);
    let handler = Arc::new(CommandHandler::new(store.clone(), Policy::default()));
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..producers {
        let (handler, done, stop) = (handler.clone(), done.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut order = OrderId(Uuid::new_v4());
            let mut step = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let request = CommandRequest::new(Uuid::new_v4(), order, lifecycle(order, step));
                handler
                    .handle(request)
                    .await
                    .map_err(|e| BenchError::Command(e.to_string()))?;
                done.fetch_add(1, Ordering::Relaxed);
                step += 1;
                if step % 4 == 0 {
                    order = OrderId(Uuid::new_v4());
                }
            }
            Ok::<(), BenchError>(())
        }));
    }
    tokio::time::sleep(std::time::Duration::from_secs_f64(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let operations = done.load(Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    for task in tasks {
        task.await
            .map_err(|e| BenchError::Command(e.to_string()))??;
    }
    store.close();
    Ok(Throughput {
        operations,
        seconds: elapsed,
    })
}

/// What the pipeline would append for these commands of one order: decided by the real rules,
/// encoded as it encodes them.
fn decided_and_encoded(
    commands: Vec<Command>,
    policy: &Policy,
) -> Result<Vec<EventData>, BenchError> {
    let mut state = OrderState::new();
    let mut data = Vec::new();
    for command in commands {
        let metadata = EventMetadata {
            schema_version: EVENT_SCHEMA_VERSION,
            command_id: Uuid::new_v4(),
            command_digest: "0".repeat(32),
            correlation_id: Uuid::new_v4(),
            causation_id: Uuid::new_v4(),
            actor: command.by(),
        };
        let events = decide(&state, &command, policy)
            .map_err(|e| BenchError::Command(format!("a generated command was refused: {e}")))?;
        for event in &events {
            data.push(encode(event, &metadata));
            state = evolve(state, event);
        }
    }
    Ok(data)
}

/// The rows the pipeline would write for `orders` orders of the benchmark's lifecycle.
pub fn rows_like_the_pipeline(
    orders: u64,
) -> Result<Vec<(StreamName, u64, EventData)>, BenchError> {
    let policy = Policy::default();
    let mut rows = Vec::new();
    for _ in 0..orders {
        let order = OrderId(Uuid::new_v4());
        let commands = (0..4).map(|step| lifecycle(order, step)).collect();
        for (revision, event) in decided_and_encoded(commands, &policy)?
            .into_iter()
            .enumerate()
        {
            rows.push((stream_for(order), revision as u64, event));
        }
    }
    Ok(rows)
}

/// Rows per second inserted straight into the store's schema, `batch` rows per durable
/// transaction: what SQLite alone can do on this disk.
pub fn raw_insert_ceiling(
    data_dir: &Path,
    rows: &[(StreamName, u64, EventData)],
    batch: usize,
) -> Result<Throughput, BenchError> {
    SqliteStore::open(data_dir)?.close();
    let mut db = rusqlite::Connection::open(data_dir.join(LOG_FILE_NAME))?;
    db.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
    db.pragma_update(None, "synchronous", "FULL")?;
    db.pragma_update(None, "cache_size", "-65536")?;
    let started = Instant::now();
    let recorded_at = Utc::now().timestamp_micros();
    let mut stream_ids: std::collections::HashMap<&str, i64> = std::collections::HashMap::new();
    for (chunk_index, chunk) in rows.chunks(batch.max(1)).enumerate() {
        let tx = db.transaction()?;
        {
            let mut new_stream =
                tx.prepare_cached("INSERT INTO streams (id, name) VALUES (?1, ?2)")?;
            let mut insert = tx.prepare_cached(
                "INSERT INTO events (position, stream_id, revision, event_id, event_type, data, metadata, recorded_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            for (i, (stream, revision, event)) in chunk.iter().enumerate() {
                let position = (chunk_index * batch + i) as i64;
                let next_id = stream_ids.len() as i64;
                let stream_id = match stream_ids.get(stream.as_str()) {
                    Some(id) => *id,
                    None => {
                        new_stream.execute(rusqlite::params![next_id, stream.as_str()])?;
                        stream_ids.insert(stream.as_str(), next_id);
                        next_id
                    }
                };
                insert.execute(rusqlite::params![
                    position,
                    stream_id,
                    *revision as i64,
                    event.event_id.as_bytes(),
                    event.event_type,
                    event.data,
                    event.metadata,
                    recorded_at,
                ])?;
            }
        }
        tx.commit()?;
    }
    Ok(Throughput {
        operations: rows.len() as u64,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The commands of one generated order: five shapes of history, cycling, so the rebuild
/// folds every kind of money movement, revisions, disputes and reviews.
fn generated_order(order: OrderId, shape: u64) -> Vec<Command> {
    let buyer = Actor::new(
        Role::Buyer,
        UserId(Uuid::from_u128(order.0.as_u128() % 5_000 + 1)),
    );
    let seller = Actor::new(
        Role::Seller,
        UserId(Uuid::from_u128(order.0.as_u128() % 1_000 + 100_000)),
    );
    let start = chrono::DateTime::<Utc>::from_timestamp(1_767_225_600, 0).unwrap_or_default()
        + Duration::minutes((order.0.as_u128() % 500_000) as i64);
    let at = |hours: i64| start + Duration::hours(hours);
    let eur = |amount: &str| {
        Currency::from_code("EUR")
            .and_then(|c| Money::parse(amount, c))
            .unwrap_or_else(|_| unreachable!("literal EUR amounts are valid"))
    };
    let reason = || "a reason".to_owned();
    let mut commands = vec![Command::Place {
        by: buyer,
        at: at(0),
        order_id: order,
        seller: seller.user_id,
        title: "A logo in three colours".into(),
        price: eur("120.00"),
        delivery_days: 5,
    }];
    if shape == 2 {
        commands.push(Command::Decline {
            by: seller,
            at: at(1),
            reason: reason(),
        });
        return commands;
    }
    commands.push(Command::Confirm {
        by: seller,
        at: at(1),
    });
    match shape {
        1 => commands.extend([
            Command::BuyExtra {
                by: buyer,
                at: at(2),
                kind: ledger_domain::ExtraKind::Option,
                description: "express".into(),
                price: eur("30.00"),
                extra_days: 1,
            },
            Command::Deliver {
                by: seller,
                at: at(30),
                message: "v1".into(),
            },
            Command::RequestRevision {
                by: buyer,
                at: at(40),
                reason: reason(),
            },
            Command::AcceptRevision {
                by: seller,
                at: at(41),
                delivery_days: 2,
            },
            Command::Deliver {
                by: seller,
                at: at(60),
                message: "v2".into(),
            },
            Command::Close {
                by: buyer,
                at: at(70),
            },
        ]),
        3 => commands.extend([
            Command::PartialRefund {
                by: seller,
                at: at(5),
                amount: eur("10.00"),
                reason: reason(),
            },
            Command::Deliver {
                by: seller,
                at: at(30),
                message: "v1".into(),
            },
            Command::OpenDispute {
                by: buyer,
                at: at(40),
                reason: reason(),
            },
            Command::ResolveDispute {
                by: Actor::new(Role::Mediator, UserId(Uuid::from_u128(7))),
                at: at(60),
                resolution: ledger_domain::Resolution::Split {
                    refund: eur("50.00"),
                },
                note: "half".into(),
            },
        ]),
        _ => {
            commands.push(Command::Deliver {
                by: seller,
                at: at(30),
                message: "v1".into(),
            });
            commands.push(Command::Close {
                by: buyer,
                at: at(40),
            });
            if shape == 4 {
                commands.push(Command::LeaveReview {
                    by: buyer,
                    at: at(50),
                    rating: 5,
                    comment: None,
                });
            }
        }
    }
    commands
}

/// Writes a generated history of at least `events_min` events into the store at `data_dir`
/// (each order's events decided by the real rules, encoded as the pipeline encodes them).
/// Returns the number of events and orders.
pub async fn generate_history(data_dir: &Path, events_min: u64) -> Result<(u64, u64), BenchError> {
    const CONCURRENT_APPENDS: usize = 256;
    let store = Arc::new(SqliteStore::open(data_dir)?);
    let policy = Policy::default();
    let mut events = 0u64;
    let mut orders = 0u64;
    let mut pending = tokio::task::JoinSet::new();
    while events < events_min {
        let order = OrderId(Uuid::from_u128(u128::from(orders) + 1));
        let data = decided_and_encoded(generated_order(order, orders % 5), &policy)?;
        events += data.len() as u64;
        orders += 1;
        let store = store.clone();
        pending.spawn(async move {
            store
                .append(
                    &stream_for(order),
                    ledger_store::ExpectedRevision::NoStream,
                    data,
                )
                .await
        });
        if pending.len() >= CONCURRENT_APPENDS {
            if let Some(done) = pending.join_next().await {
                done.map_err(|e| BenchError::Command(e.to_string()))??;
            }
        }
    }
    while let Some(done) = pending.join_next().await {
        done.map_err(|e| BenchError::Command(e.to_string()))??;
    }
    store.close();
    Ok((events, orders))
}

/// What a rebuild of every view cost.
#[derive(Clone, Copy, Debug)]
pub struct RebuildFigures {
    pub events: u64,
    pub seconds: f64,
    /// Peak resident memory of the process during the rebuild, in bytes (Linux only).
    pub peak_rss_bytes: Option<u64>,
    /// Resident memory the rebuilt views added, in bytes (Linux only).
    pub views_rss_bytes: Option<u64>,
    pub orders: usize,
    /// Of `seconds`, what storing the rebuilt views took: the time after the last page was folded.
    pub save_seconds: f64,
}

/// Rebuilds every view from the log in `log_dir` into a fresh read-model database.
pub async fn rebuild_throughput(
    log_dir: &Path,
    views_dir: &Path,
) -> Result<RebuildFigures, BenchError> {
    let store = SqliteStore::open(log_dir)?;
    let mut projector = ledger_projections::Projector::open(views_dir)
        .map_err(|e| BenchError::Command(e.to_string()))?;
    reset_peak_rss();
    let before = rss_bytes("VmRSS:");
    let started = Instant::now();
    let mut folded_at = started;
    let progress = projector
        .rebuild(&store, None, |_| folded_at = Instant::now())
        .await
        .map_err(|e| BenchError::Command(e.to_string()))?;
    let seconds = started.elapsed().as_secs_f64();
    let save_seconds = folded_at.elapsed().as_secs_f64();
    let after = rss_bytes("VmRSS:");
    let figures = RebuildFigures {
        events: progress.applied,
        seconds,
        peak_rss_bytes: rss_bytes("VmHWM:"),
        views_rss_bytes: after.zip(before).map(|(a, b)| a.saturating_sub(b)),
        orders: projector.views().orders.len(),
        save_seconds,
    };
    drop(projector);
    store.close();
    Ok(figures)
}

/// Resets the kernel's peak-RSS mark so the next reading covers only what follows.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn rss_bytes(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
