//! Kill -9 at random moments: every acknowledged append survives, whole, and `$all` positions
//! stay gapless. `LEDGER_CRASH_CYCLES` runs more cycles than the default.

use ledger_store::{AllFrom, Direction, EventStore, SqliteStore, READ_EVENTS_MAX};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CYCLES_DEFAULT: usize = 20;
const EVENTS_PER_APPEND: usize = 3;

struct Ack {
    position: u64,
    stream: String,
    first_event_id: String,
}

fn parse_ack(line: &str) -> Option<Ack> {
    let mut parts = line.split_whitespace();
    if parts.next()? != "ack" {
        return None;
    }
    Some(Ack {
        position: parts.next()?.parse().ok()?,
        stream: parts.next()?.to_owned(),
        first_event_id: parts.next()?.to_owned(),
    })
}

/// Runs the appender until a random moment, kills it with SIGKILL, returns what it acknowledged.
fn run_and_kill(dir: &std::path::Path, rng: &mut fastrand::Rng) -> Vec<Ack> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_append-under-load"))
        .arg(dir)
        .arg(rng.usize(1..=32).to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the appender");
    let stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .filter_map(|line| parse_ack(&line))
            .collect::<Vec<_>>()
    });
    let deadline = Instant::now() + Duration::from_millis(rng.u64(20..=400));
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    reader.join().expect("reader")
}

#[tokio::test]
async fn every_acknowledged_append_survives_sigkill_whole_and_in_order() {
    let cycles = std::env::var("LEDGER_CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(CYCLES_DEFAULT);
    let seed = fastrand::u64(..);
    println!("seed {seed}, {cycles} cycles");
    let mut rng = fastrand::Rng::with_seed(seed);
    let dir = tempfile::tempdir().expect("temp dir");
    let mut acknowledged: Vec<Ack> = Vec::new();
    for cycle in 0..cycles {
        acknowledged.extend(run_and_kill(dir.path(), &mut rng));
        let store = SqliteStore::open(dir.path()).expect("reopens after a crash");
        let mut all = Vec::new();
        loop {
            let from = all
                .last()
                .map_or(0, |e: &ledger_store::RecordedEvent| e.position + 1);
            let page = store
                .read_all(
                    AllFrom::Position(from),
                    Direction::Forwards,
                    READ_EVENTS_MAX,
                )
                .await
                .expect("read");
            if page.is_empty() {
                break;
            }
            all.extend(page);
        }
        store.close();
        for (i, event) in all.iter().enumerate() {
            assert_eq!(
                event.position, i as u64,
                "cycle {cycle}: gap in $all at {i}"
            );
        }
        let by_position: HashMap<u64, &ledger_store::RecordedEvent> =
            all.iter().map(|e| (e.position, e)).collect();
        for ack in &acknowledged {
            let first = ack.position + 1 - EVENTS_PER_APPEND as u64;
            let event = by_position.get(&first).unwrap_or_else(|| {
                panic!("cycle {cycle}: acknowledged position {} lost", ack.position)
            });
            assert_eq!(event.stream.as_str(), ack.stream, "cycle {cycle}");
            assert_eq!(
                event.event_id.to_string(),
                ack.first_event_id,
                "cycle {cycle}"
            );
        }
        // No partial append: each append's events are all there, consecutive, in one stream.
        let mut appends: HashMap<String, Vec<(u64, u64)>> = HashMap::new();
        for event in &all {
            let data = String::from_utf8_lossy(&event.data);
            let append = data.split('"').nth(3).unwrap_or_default().to_owned();
            appends
                .entry(append)
                .or_default()
                .push((event.position, event.revision));
        }
        for (append, events) in appends {
            assert_eq!(
                events.len(),
                EVENTS_PER_APPEND,
                "cycle {cycle}: partial append {append}"
            );
            assert!(
                events
                    .windows(2)
                    .all(|w| w[1].0 == w[0].0 + 1 && w[1].1 == w[0].1 + 1),
                "cycle {cycle}: append {append} split"
            );
        }
    }
    assert!(
        !acknowledged.is_empty(),
        "nothing was ever acknowledged: the test proved nothing"
    );
    println!("{} acknowledged appends checked", acknowledged.len());
}
