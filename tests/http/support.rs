//! A `ledger serve --dev` of its own per test: a fresh data directory, port 0, a known token
//! secret, fast timers; and a client that speaks its API.
#![allow(dead_code)]

use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::{EncodingKey, Header};
use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use tempfile::TempDir;
use uuid::Uuid;

pub const SECRET: &str = "test-secret-of-the-http-tests";

pub struct Server {
    child: Option<Child>,
    pub base: String,
    /// `esdb://host:port?tls=false` when started with `--grpc-listen`.
    pub grpc: Option<String>,
    pub dir: TempDir,
    client: reqwest::Client,
}

#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    fn content_type(&self) -> Option<&str> {
        self.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
    }

    pub fn expect(self, status: StatusCode) -> Value {
        assert_eq!(self.status, status, "{}", self.body);
        self.body
    }

    pub fn ok(self) -> Value {
        assert!(self.status.is_success(), "{}: {}", self.status, self.body);
        assert_eq!(
            self.content_type(),
            Some("application/json"),
            "{}",
            self.body
        );
        self.body
    }

    /// The path of the next page, from `Link: <path>; rel="next"`.
    pub fn next_page(&self) -> Option<String> {
        let link = self.headers.get("link")?.to_str().ok()?;
        next_page_of(link)
    }

    /// A problem document with this status and code.
    pub fn problem(&self, status: StatusCode, code: &str) {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(
            self.content_type(),
            Some("application/problem+json"),
            "{}",
            self.body
        );
        assert_eq!(self.body["code"], code, "{}", self.body);
        assert_eq!(self.body["status"], status.as_u16(), "{}", self.body);
        assert!(self.body["type"].is_string() && self.body["title"].is_string());
        assert!(self.body["detail"].is_string());
    }
}

/// Someone holding a token.
#[derive(Clone, Debug)]
pub struct User {
    pub id: Uuid,
    pub role: &'static str,
    pub token: String,
}

/// The path in a `Link: <path>; rel="next"` header value.
pub fn next_page_of(link: &str) -> Option<String> {
    let path = link.strip_prefix('<')?.strip_suffix(">; rel=\"next\"")?;
    Some(path.to_owned())
}

pub fn token(role: &str, sub: Uuid, expires_in: Duration, secret: &str) -> String {
    let now = Utc::now();
    let claims = json!({
        "sub": sub,
        "role": role,
        "iat": now.timestamp(),
        "exp": (now + expires_in).timestamp(),
    });
    jsonwebtoken::encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("token")
}

pub fn user(role: &'static str) -> User {
    let id = Uuid::new_v4();
    User {
        id,
        role,
        token: token(role, id, Duration::hours(1), SECRET),
    }
}

impl Server {
    pub fn start() -> Server {
        Server::start_in(TempDir::new().expect("temp dir"))
    }

    /// Starts the binary on the data directory `dir` (which may hold an earlier run's log).
    pub fn start_in(dir: TempDir) -> Server {
        Server::start_with(dir, &["--dev"])
    }

    /// Starts the binary with these flags besides the address and data directory.
    pub fn start_with(dir: TempDir, flags: &[&str]) -> Server {
        Server::start_with_env(dir, flags, &[])
    }

    /// As `start_with`, with these variables set too (they win over the tests' defaults).
    pub fn start_with_env(dir: TempDir, flags: &[&str], env: &[(&str, &str)]) -> Server {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.path().join("serve.log"))
            .expect("log file");
        let mut child = Command::new(env!("CARGO_BIN_EXE_ledger"))
            .arg("serve")
            .args(flags)
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path().join("data"))
            .env("LEDGER_JWT_SECRET", SECRET)
            .env("LEDGER_TIMER_INTERVAL_MS", "50")
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .current_dir(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("ledger serve starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let base = loop {
            let line = match lines.next() {
                Some(Ok(line)) => line,
                _ => panic!(
                    "ledger serve exited before listening: {}",
                    log_of(dir.path())
                ),
            };
            if let Some(address) = line.strip_prefix("ledger: listening on ") {
                break address.trim().to_owned();
            }
        };
        let grpc = flags.contains(&"--grpc-listen").then(|| loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(url) = line.strip_prefix("ledger: EventStoreDB protocol on ") {
                        break url.trim().to_owned();
                    }
                }
                _ => panic!("ledger serve did not serve gRPC: {}", log_of(dir.path())),
            }
        });
        // Keep reading so that the pipe never fills.
        std::thread::spawn(move || for _ in lines {});
        Server {
            child: Some(child),
            base,
            grpc,
            dir,
            client: reqwest::Client::new(),
        }
    }

    /// SIGTERM, and wait for a clean exit; gives back the data directory.
    pub fn stop(mut self) -> TempDir {
        let mut child = self.child.take().expect("running");
        signal(&child, "-TERM");
        let status = child.wait().expect("wait");
        assert!(
            status.success(),
            "serve exited with {status}: {}",
            log_of(self.dir.path())
        );
        self.take_dir()
    }

    /// Sends `signal` (`-TERM`, `-INT`) and leaves the service to it.
    pub fn signal(&self, signal_name: &str) {
        signal(self.child.as_ref().expect("running"), signal_name);
    }

    /// Waits for the service to end on its own; gives back how, and the data directory.
    pub fn wait(mut self) -> (std::process::ExitStatus, TempDir) {
        let mut child = self.child.take().expect("running");
        let status = child.wait().expect("wait");
        (status, self.take_dir())
    }

    /// SIGKILL: no chance to save anything.
    pub fn kill(mut self) -> TempDir {
        let mut child = self.child.take().expect("running");
        signal(&child, "-KILL");
        let _ = child.wait();
        self.take_dir()
    }

    fn take_dir(&mut self) -> TempDir {
        std::mem::replace(&mut self.dir, TempDir::new().expect("temp dir"))
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    pub async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        self.reply(request.send().await.expect("request")).await
    }

    /// A response read whole.
    pub async fn reply(&self, response: reqwest::Response) -> Reply {
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    pub async fn post(&self, who: &User, path: &str, body: Value) -> Reply {
        self.send(
            self.client
                .post(self.url(path))
                .bearer_auth(&who.token)
                .json(&body),
        )
        .await
    }

    pub async fn get(&self, who: &User, path: &str) -> Reply {
        self.send(self.client.get(self.url(path)).bearer_auth(&who.token))
            .await
    }

    /// The last `$all` position, from `/readyz`; none for an empty log.
    pub async fn log_head(&self) -> Option<u64> {
        let ready = self.send(self.client.get(self.url("/readyz"))).await.ok();
        ready["log_at"].as_u64()
    }

    pub async fn now(&self) -> DateTime<Utc> {
        let reply = self.get(&user("mediator"), "/dev/clock").await.ok();
        parse_instant(&reply["now"])
    }

    pub async fn advance(&self, to: DateTime<Utc>) {
        let probe = user("mediator");
        self.post(&probe, "/dev/clock", json!({ "now": to }))
            .await
            .expect(StatusCode::OK);
    }

    /// Places an order of `price` EUR and returns its id.
    pub async fn place(&self, buyer: &User, seller: &User, price: &str) -> Uuid {
        let body = self
            .post(
                buyer,
                "/orders",
                json!({
                    "seller_id": seller.id,
                    "title": "A logo",
                    "price": price,
                    "currency": "EUR",
                    "delivery_days": 3,
                }),
            )
            .await
            .expect(StatusCode::CREATED);
        body["order_id"]
            .as_str()
            .expect("order id")
            .parse()
            .expect("uuid")
    }

    pub async fn act(&self, who: &User, order: Uuid, action: &str, body: Value) -> Value {
        self.post(who, &format!("/orders/{order}/{action}"), body)
            .await
            .ok()
    }

    pub async fn order(&self, who: &User, order: Uuid) -> Value {
        self.get(who, &format!("/orders/{order}")).await.ok()
    }

    /// Polls the order until `done` holds (timers act on their own schedule).
    pub async fn wait_for_order(
        &self,
        who: &User,
        order: Uuid,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        for _ in 0..200 {
            let summary = self.order(who, order).await;
            if done(&summary) {
                return summary;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!(
            "order {order} never got there: {}",
            self.order(who, order).await
        );
    }

    /// The wallet balance of `user` in EUR, none if they have no wallet line.
    pub async fn wallet_eur(&self, who: &User, user: Uuid) -> Option<String> {
        let wallet = self.get(who, &format!("/wallets/{user}")).await.ok();
        wallet["currencies"]["EUR"]["balance"]["amount"]
            .as_str()
            .map(str::to_owned)
    }

    pub async fn assert_books_balance(&self) {
        let finance = user("finance");
        let trial = self.get(&finance, "/trial-balance").await.ok();
        assert_eq!(trial["balanced"], true, "{trial}");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Sends `signal` (`-TERM`, `-KILL`) to `child`, which must still be there.
pub fn signal(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .arg(signal)
        .arg(child.id().to_string())
        .status()
        .expect("kill");
    assert!(status.success());
}

/// What a `ledger` run printed, standard output then standard error, for assertions and
/// their messages.
pub fn printed(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The service's log once `wanted` holds of it (it is written as the service goes on, so a
/// line may follow the reply it explains), or the log as it is after 10 s.
pub async fn log_when(dir: &Path, wanted: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let log = log_of(dir);
        if wanted(&log) || std::time::Instant::now() > deadline {
            return log;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

pub fn log_of(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("serve.log")).unwrap_or_default()
}

pub fn parse_instant(value: &Value) -> DateTime<Utc> {
    value
        .as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| panic!("not an instant: {value}"))
}

/// Who the table lets send a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sender {
    Buyer,
    Seller,
    EitherParty,
    Mediator,
}

/// A command route with a body that would be valid for it.
pub struct CommandRoute {
    pub action: &'static str,
    pub body: Value,
    pub sender: Sender,
    /// The field holding an amount, if the body has one.
    pub amount_field: Option<&'static str>,
}

/// Every command route on an order (placing is `POST /orders`).
pub fn command_routes() -> Vec<CommandRoute> {
    use Sender::*;
    let route = |action, body, sender, amount_field| CommandRoute {
        action,
        body,
        sender,
        amount_field,
    };
    vec![
        route("confirm", json!({}), Seller, None),
        route("decline", json!({"reason": "busy"}), Seller, None),
        route("deliver", json!({"message": "done"}), Seller, None),
        route("revision/request", json!({"reason": "x"}), Buyer, None),
        route("revision/accept", json!({"delivery_days": 2}), Seller, None),
        route("revision/refuse", json!({"reason": "x"}), Seller, None),
        route(
            "extras",
            json!({"kind": "option", "description": "fast", "price": "5.00", "extra_days": 0}),
            Buyer,
            Some("price"),
        ),
        route(
            "deadline",
            json!({"due_at": "2099-01-01T00:00:00Z"}),
            Buyer,
            None,
        ),
        route("cancel", json!({"reason": "x"}), EitherParty, None),
        route(
            "cancellation/request",
            json!({"reason": "x"}),
            EitherParty,
            None,
        ),
        route("cancellation/accept", json!({}), EitherParty, None),
        route(
            "refunds",
            json!({"amount": "1.00", "reason": "x"}),
            Seller,
            Some("amount"),
        ),
        route("dispute", json!({"reason": "x"}), EitherParty, None),
        route(
            "dispute/resolve",
            json!({"outcome": "split", "refund": "1.00", "note": "x"}),
            Mediator,
            Some("refund"),
        ),
        route("close", json!({}), Buyer, None),
        route("review", json!({"rating": 5}), Buyer, None),
    ]
}
