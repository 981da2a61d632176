//! Appends to the embedded store under concurrent load and prints one line per acknowledged
//! append, so that a test can kill it at any moment and check what survived:
//! `ack <position of last event> <stream> <first event id> <events>`.
//!
//! Usage: `append-under-load <data dir> <producers>`.

use ledger_store::{EventData, EventStore, ExpectedRevision, SqliteStore, StreamName};
use std::io::Write;
use std::sync::Arc;
use uuid::Uuid;

/// Events per append: an append is whole after a crash or absent, never partial.
pub const EVENTS_PER_APPEND: usize = 3;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(producers)) = (args.next(), args.next()) else {
        eprintln!("usage: append-under-load <data dir> <producers>");
        std::process::exit(2);
    };
    let producers: usize = producers.parse().unwrap_or(8);
    let store = match SqliteStore::open(std::path::Path::new(&dir)) {
        Ok(store) => Arc::new(store),
        Err(error) => {
            eprintln!("cannot open the store: {error}");
            std::process::exit(1);
        }
    };
    let mut tasks = Vec::new();
    for producer in 0..producers {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            for n in 0u64.. {
                let stream = format!("order-{producer}-{}", n % 17);
                let Ok(stream) = StreamName::new(&stream) else {
                    return;
                };
                let append = Uuid::new_v4();
                let events: Vec<EventData> = (0..EVENTS_PER_APPEND)
                    .map(|i| EventData {
                        event_id: Uuid::new_v4(),
                        event_type: "Probe".into(),
                        data: format!("{{\"append\":\"{append}\",\"i\":{i}}}").into_bytes(),
                        metadata: b"{}".to_vec(),
                        recorded_at: None,
                    })
                    .collect();
                let first = events[0].event_id;
                match store.append(&stream, ExpectedRevision::Any, events).await {
                    Ok(result) => {
                        let mut out = std::io::stdout().lock();
                        // The line is written only after the append is acknowledged durable.
                        let _ = writeln!(
                            out,
                            "ack {} {stream} {first} {EVENTS_PER_APPEND}",
                            result.position
                        );
                        let _ = out.flush();
                    }
                    Err(error) => {
                        eprintln!("append failed: {error}");
                        return;
                    }
                }
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
}
