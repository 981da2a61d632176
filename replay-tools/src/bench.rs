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
use ledger_store::{EventData, SqliteStore, StoreError, StreamName, LOG_FILE_NAME};
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

/// The rows the pipeline would write for `orders` orders, encoded as it encodes them.
pub fn rows_like_the_pipeline(orders: u64) -> Vec<(StreamName, u64, EventData)> {
    let policy = Policy::default();
    let mut rows = Vec::new();
    for _ in 0..orders {
        let order = OrderId(Uuid::new_v4());
        let mut state = OrderState::new();
        for step in 0..4 {
            let command = lifecycle(order, step);
            let metadata = EventMetadata {
                schema_version: EVENT_SCHEMA_VERSION,
                command_id: Uuid::new_v4(),
                command_digest: "0".repeat(32),
                correlation_id: Uuid::new_v4(),
                causation_id: Uuid::new_v4(),
                actor: command.by(),
            };
            for (index, event) in decide(&state, &command, &policy)
                .unwrap_or_default()
                .iter()
                .enumerate()
            {
                rows.push((stream_for(order), step, encode(event, index, &metadata)));
                state = evolve(state, event);
            }
        }
    }
    rows
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
