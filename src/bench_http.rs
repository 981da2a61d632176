//! `ledger bench http`: HTTP load on a real `ledger serve`, started from this very binary on
//! a scratch store, from clients in this process. Each client runs orders through their
//! life (place, confirm, deliver, close: four commands), one request at a time, for a fixed
//! time; every command's latency goes into a histogram.

use hdrhistogram::Histogram;
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use uuid::Uuid;

use crate::service::auth::{ApiRole, TokenKeys};
use ledger_replay::bench::cpu_seconds;

const SECRET: &str = "ledger-bench-http";

/// One concurrency level's figures.
#[derive(Debug, Clone)]
pub struct LoadReport {
    pub clients: usize,
    pub commands: u64,
    pub failures: u64,
    pub elapsed: Duration,
    pub p50: Duration,
    pub p90: Duration,
    pub p99: Duration,
    pub max: Duration,
    /// CPU time the `ledger serve` child and this process (the clients) spent on the level.
    pub service_cpu_seconds: Option<f64>,
    pub client_cpu_seconds: Option<f64>,
}

impl LoadReport {
    pub fn per_second(&self) -> f64 {
        self.commands as f64 / self.elapsed.as_secs_f64()
    }
}

/// A `ledger serve` child on a scratch store.
struct Child {
    process: std::process::Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

fn start_server() -> anyhow::Result<Child> {
    let dir = tempfile::tempdir()?;
    let mut process = Command::new(std::env::current_exe()?)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("LEDGER_JWT_SECRET", SECRET)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let stdout = process
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let mut lines = BufReader::new(stdout).lines();
    let base = loop {
        match lines.next() {
            Some(line) => {
                if let Some(address) = line?.strip_prefix("ledger: listening on ") {
                    break address.trim().to_owned();
                }
            }
            None => anyhow::bail!("ledger serve exited before listening"),
        }
    };
    std::thread::spawn(move || for _ in lines {});
    Ok(Child {
        process,
        base,
        _dir: dir,
    })
}

/// Runs each concurrency level for `duration` against one fresh server.
pub async fn run(levels: &[usize], duration: Duration) -> anyhow::Result<Vec<LoadReport>> {
    let server = start_server()?;
    let keys = TokenKeys::new(SECRET)?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .build()?;
    let mut reports = Vec::new();
    for &clients in levels {
        let deadline = Instant::now() + duration;
        let started = Instant::now();
        let service_pid = Some(server.process.id());
        let cpu = || (cpu_seconds(service_pid), cpu_seconds(None));
        let cpu_before = cpu();
        let mut tasks = Vec::new();
        for _ in 0..clients {
            let (client, base) = (client.clone(), server.base.clone());
            let buyer = Uuid::new_v4();
            let seller = Uuid::new_v4();
            let now = chrono::Utc::now();
            let hour = chrono::Duration::hours(1);
            let buyer_token = keys.mint(ApiRole::Buyer, buyer, now, hour)?;
            let seller_token = keys.mint(ApiRole::Seller, seller, now, hour)?;
            let histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
            tasks.push(tokio::spawn(async move {
                let tokens = (buyer_token, seller_token);
                client_loop(client, base, seller, tokens, deadline, histogram).await
            }));
        }
        let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
        let (mut commands, mut failures) = (0, 0);
        for task in tasks {
            let (h, ok, failed) = task.await?;
            histogram.add(h)?;
            commands += ok;
            failures += failed;
        }
        let cpu_after = cpu();
        let spent = |after: Option<f64>, before: Option<f64>| after.zip(before).map(|(a, b)| a - b);
        let micros = |q: f64| Duration::from_micros(histogram.value_at_quantile(q));
        reports.push(LoadReport {
            clients,
            commands,
            failures,
            elapsed: started.elapsed(),
            p50: micros(0.50),
            p90: micros(0.90),
            p99: micros(0.99),
            max: Duration::from_micros(histogram.max()),
            service_cpu_seconds: spent(cpu_after.0, cpu_before.0),
            client_cpu_seconds: spent(cpu_after.1, cpu_before.1),
        });
    }
    Ok(reports)
}

async fn client_loop(
    client: reqwest::Client,
    base: String,
    seller: Uuid,
    (buyer_token, seller_token): (String, String),
    deadline: Instant,
    mut histogram: Histogram<u64>,
) -> (Histogram<u64>, u64, u64) {
    let (mut ok, mut failed) = (0, 0);
    let mut timed = |started: Instant, success: bool| {
        histogram.saturating_record((started.elapsed().as_micros() as u64).max(1));
        if success {
            ok += 1;
        } else {
            failed += 1;
        }
    };
    while Instant::now() < deadline {
        let started = Instant::now();
        let placed = client
            .post(format!("{base}/orders"))
            .bearer_auth(&buyer_token)
            .json(&json!({"seller_id": seller, "title": "bench", "price": "25.00", "currency": "EUR", "delivery_days": 3}))
            .send()
            .await;
        let order = match placed {
            Ok(response) if response.status().is_success() => response
                .json::<serde_json::Value>()
                .await
                .ok()
                .and_then(|v| v["order_id"].as_str().map(str::to_owned)),
            _ => None,
        };
        timed(started, order.is_some());
        let Some(order) = order else { continue };
        for (action, token, body) in [
            ("confirm", &seller_token, json!({})),
            ("deliver", &seller_token, json!({"message": "done"})),
            ("close", &buyer_token, json!({})),
        ] {
            let started = Instant::now();
            let response = client
                .post(format!("{base}/orders/{order}/{action}"))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await;
            let success = match response {
                Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                Err(_) => false,
            };
            timed(started, success);
        }
    }
    (histogram, ok, failed)
}
