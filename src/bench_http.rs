//! `ledger bench http`: HTTP load on a real `ledger serve`, started from this very binary on
//! a scratch store, from clients in this process. Each client runs orders through their
//! life (place, confirm, deliver, close: four commands), one request at a time, for a fixed
//! time; every command's latency goes into a histogram.
//!
//! Without a rate the clients form a closed loop: each sends as soon as its last answer came,
//! which measures the most the service can take. With a rate (open loop, as `wrk2 -R` or
//! `oha -q`) each client sends on a fixed schedule, and a command's latency counts from when
//! it was due, not from when it was sent: a client held up by a slow answer does not hide
//! the commands it should have sent meanwhile (coordinated omission).

use anyhow::Context;
use bytes::Bytes;
use hdrhistogram::Histogram;
use http::HeaderValue;
use http_body_util::{BodyExt, Full};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use uuid::Uuid;

use crate::service::auth::{ApiRole, TokenKeys};
use ledger_replay::bench::CpuSince;

const SECRET: &str = "ledger-bench-http";

/// One concurrency level's figures.
#[derive(Debug, Clone)]
pub struct LoadReport {
    pub clients: usize,
    /// Commands a second offered in all, if the clients kept a schedule.
    pub rate: Option<u32>,
    pub commands: u64,
    pub failures: u64,
    pub elapsed: Duration,
    pub p50: Duration,
    pub p90: Duration,
    pub p99: Duration,
    pub max: Duration,
    /// CPU time the `ledger serve` child (none for a service elsewhere) and this process (the
    /// clients) spent on the level.
    pub service_cpu_seconds: Option<f64>,
    pub client_cpu_seconds: Option<f64>,
    /// The same seconds as the service timed them, if its `/metrics` could be read.
    pub inside: Option<InsideTheService>,
}

/// A level's latencies from the service's own histograms: what the clients saw beyond them
/// was spent outside the handlers (queued in sockets and run queues, or in the clients).
#[derive(Debug, Clone)]
pub struct InsideTheService {
    /// From the request read to the answer made, commands only.
    pub request: Quantiles,
    /// Share of commands whose handler took longer than 10 ms.
    pub requests_over_10ms: f64,
    /// The store's durable append.
    pub append: Quantiles,
    /// An accepted command's wait for the views after its append.
    pub views_wait: Quantiles,
}

#[derive(Debug, Clone, Copy)]
pub struct Quantiles {
    pub p50: Duration,
    pub p99: Duration,
}

/// What a run loaded, and each concurrency level's figures.
pub struct LoadRun {
    /// `http://host:port` or `https://host:port`.
    pub url: String,
    pub reports: Vec<LoadReport>,
}

impl LoadReport {
    pub fn per_second(&self) -> f64 {
        self.commands as f64 / self.elapsed.as_secs_f64()
    }
}

/// A `ledger serve` child on a scratch store.
struct Child {
    process: std::process::Child,
    _dir: tempfile::TempDir,
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// The service under load, and the child running it if this run started one: only a
/// child's CPU time can be read.
struct Service {
    endpoint: Endpoint,
    /// What the clients load, as `scheme://host:port`.
    url: String,
    child: Option<Child>,
}

/// Where the clients connect, and how: TCP, or TLS that trusts the service's issuer.
#[derive(Clone)]
struct Endpoint {
    /// `host:port`.
    address: String,
    tls: Option<ClientTls>,
}

/// TLS trusting only the given issuer, as the client of a private service would.
#[derive(Clone)]
struct ClientTls {
    connector: tokio_rustls::TlsConnector,
    server_name: ServerName<'static>,
}

impl ClientTls {
    /// Trusts the certificates in `authority` (PEM) and checks the service's against `host`.
    fn trusting(authority: &[u8], host: &str) -> anyhow::Result<ClientTls> {
        let mut roots = RootCertStore::empty();
        for certificate in CertificateDer::pem_slice_iter(authority) {
            roots.add(certificate.context("reading the issuer's certificates")?)?;
        }
        anyhow::ensure!(!roots.is_empty(), "the issuer's PEM holds no certificate");
        // Named, not the process's default, as for the service's own TLS.
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        // One request at a time on each connection, over TLS as over TCP.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let host = host.trim_start_matches('[').trim_end_matches(']');
        Ok(ClientTls {
            connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
            server_name: ServerName::try_from(host.to_owned())?,
        })
    }
}

/// The service a run loads.
pub enum Target {
    /// A `ledger serve` started from this binary on a scratch store; with `https`, serving a
    /// self-signed certificate made for the run, which the clients trust.
    Started { https: bool },
    /// One already running elsewhere.
    Running(RunningService),
}

/// A service already running, to load instead of a child of this process: on a machine of its
/// own, the clients no longer take its cores.
pub struct RunningService {
    /// `http://host:port` or `https://host:port`.
    pub url: String,
    /// Minted with the service's own secret.
    pub keys: TokenKeys,
    /// For an `https://` URL: the PEM certificate of the authority that issued the service's.
    pub ca: Option<PathBuf>,
}

impl RunningService {
    /// Where an `http[s]://host[:port][/]` URL points.
    fn endpoint(&self) -> anyhow::Result<Endpoint> {
        let uri: http::Uri = self.url.parse()?;
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => anyhow::bail!("{}: only http:// and https:// URLs can be loaded", self.url),
        };
        anyhow::ensure!(
            matches!(uri.path(), "" | "/") && uri.query().is_none(),
            "{}: give the service's root, without a path",
            self.url
        );
        let authority = uri
            .authority()
            .ok_or_else(|| anyhow::anyhow!("{}: no host", self.url))?;
        let host = authority.host();
        let tls = match (https, &self.ca) {
            (true, Some(ca)) => {
                let issuer =
                    std::fs::read(ca).with_context(|| format!("reading {}", ca.display()))?;
                Some(ClientTls::trusting(&issuer, host).with_context(|| ca.display().to_string())?)
            }
            (true, None) => anyhow::bail!(
                "{}: name the authority that issued its certificate with --ca (PEM)",
                self.url
            ),
            (false, Some(_)) => anyhow::bail!("{}: --ca is for an https:// URL", self.url),
            (false, None) => None,
        };
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        Ok(Endpoint {
            address: format!("{host}:{port}"),
            tls,
        })
    }
}

fn start_server(https: bool) -> anyhow::Result<Service> {
    let dir = tempfile::tempdir()?;
    let mut command = Command::new(std::env::current_exe()?);
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        // Where no `ledger.toml` of the caller's is read, and none of its TLS settings.
        .current_dir(dir.path())
        .env_remove("LEDGER_TLS_CERT")
        .env_remove("LEDGER_TLS_KEY")
        .env("LEDGER_JWT_SECRET", SECRET)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let authority = if https {
        Some(scratch_certificate(dir.path(), &mut command)?)
    } else {
        None
    };
    let mut process = command.spawn()?;
    let stdout = process
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let mut lines = BufReader::new(stdout).lines();
    let url = loop {
        match lines.next() {
            Some(line) => {
                if let Some(url) = line?.strip_prefix("ledger: listening on ") {
                    break url.trim().to_owned();
                }
            }
            None => anyhow::bail!("ledger serve exited before listening"),
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let child = Some(Child { process, _dir: dir });
    let address = match url.split_once("://") {
        Some((scheme, address)) if scheme == if https { "https" } else { "http" } => address,
        _ => anyhow::bail!("ledger serve announced {url}"),
    };
    let tls = match authority {
        Some(authority) => Some(ClientTls::trusting(authority.as_bytes(), "127.0.0.1")?),
        None => None,
    };
    let endpoint = Endpoint {
        address: address.to_owned(),
        tls,
    };
    Ok(Service {
        endpoint,
        url,
        child,
    })
}

/// A self-signed certificate for 127.0.0.1, written into `dir` and given to the `service` to
/// serve; its PEM, which the clients trust.
fn scratch_certificate(dir: &Path, service: &mut Command) -> anyhow::Result<String> {
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])?;
    let (certificate_path, key_path) = (dir.join("bench-cert.pem"), dir.join("bench-key.pem"));
    std::fs::write(&certificate_path, cert.pem())?;
    std::fs::write(&key_path, signing_key.serialize_pem())?;
    service
        .env("LEDGER_TLS_CERT", &certificate_path)
        .env("LEDGER_TLS_KEY", &key_path);
    Ok(cert.pem())
}

/// Runs each concurrency level against the `target` (a server started fresh, or one running), offering
/// `rate` commands a second in all if given, else as many as the clients can send. The clients run `warmup`
/// unmeasured first (connecting, the store's first pages), then `duration` measured.
/// `stream_subscribers` SSE subscriptions, each to a stream of its own that no command
/// touches, stay open throughout: what per-order subscribers cost the commands.
pub async fn run(
    levels: &[usize],
    warmup: Duration,
    duration: Duration,
    rate: Option<u32>,
    stream_subscribers: usize,
    target: Target,
) -> anyhow::Result<LoadRun> {
    if rate == Some(0) {
        anyhow::bail!("a rate must be at least one command a second");
    }
    let (server, keys) = match target {
        Target::Running(running) => {
            let endpoint = running.endpoint()?;
            accepts_tokens(&endpoint, &running.keys)
                .await
                .with_context(|| format!("loading {}", running.url))?;
            let (url, child) = (running.url, None);
            let service = Service {
                endpoint,
                url,
                child,
            };
            (service, running.keys)
        }
        Target::Started { https } => (start_server(https)?, TokenKeys::new(SECRET)?),
    };
    // Held, unread, until every level is measured.
    let mut subscriptions = Vec::with_capacity(stream_subscribers);
    let token = bearer(&keys, ApiRole::Service, Uuid::new_v4())?;
    for _ in 0..stream_subscribers {
        let mut connection = Connection::open(&server.endpoint).await?;
        let stream = format!("/streams/order-{}", Uuid::new_v4());
        subscriptions.push(connection.get(stream, Some(&token)).await?);
    }
    let mut reports = Vec::new();
    for &clients in levels {
        let measured_from = Instant::now() + warmup;
        let deadline = measured_from + duration;
        let service_pid = server.child.as_ref().map(|child| child.process.id());
        let mut tasks = Vec::new();
        // Each client's share of the rate, its first slot staggered so that the clients'
        // sends spread evenly over time.
        let interval = rate.map(|r| Duration::from_secs_f64(clients as f64 / f64::from(r)));
        let first_slot = tokio::time::Instant::now();
        for client_index in 0..clients {
            let schedule = interval.map(|interval| Schedule {
                next: first_slot + interval.mul_f64(client_index as f64 / clients as f64),
                interval,
            });
            let connection = Connection::open(&server.endpoint).await?;
            let buyer = Uuid::new_v4();
            let seller = Uuid::new_v4();
            let buyer_token = bearer(&keys, ApiRole::Buyer, buyer)?;
            let seller_token = bearer(&keys, ApiRole::Seller, seller)?;
            let histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
            tasks.push(tokio::spawn(async move {
                let tokens = (buyer_token, seller_token);
                let window = (measured_from, deadline);
                client_loop(connection, seller, tokens, window, schedule, histogram).await
            }));
        }
        tokio::time::sleep_until(measured_from.into()).await;
        // `CpuSince` reads this process for `None`: a service elsewhere is not timed.
        let service_cpu = service_pid.map(|pid| CpuSince::start(Some(pid)));
        let client_cpu = CpuSince::start(None);
        let metrics_before = scrape_metrics(&server.endpoint).await;
        let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
        let (mut commands, mut failures) = (0, 0);
        for task in tasks {
            let (h, ok, failed) = task.await?;
            histogram.add(h)?;
            commands += ok;
            failures += failed;
        }
        let service_cpu_seconds = service_cpu.and_then(|cpu| cpu.spent());
        let client_cpu_seconds = client_cpu.spent();
        let inside = match (metrics_before, scrape_metrics(&server.endpoint).await) {
            (Ok(before), Ok(after)) => InsideTheService::between(&before, &after),
            _ => None,
        };
        let micros = |q: f64| Duration::from_micros(histogram.value_at_quantile(q));
        reports.push(LoadReport {
            clients,
            rate,
            commands,
            failures,
            elapsed: measured_from.elapsed(),
            p50: micros(0.50),
            p90: micros(0.90),
            p99: micros(0.99),
            max: Duration::from_micros(histogram.max()),
            service_cpu_seconds,
            client_cpu_seconds,
            inside,
        });
    }
    Ok(LoadRun {
        url: server.url,
        reports,
    })
}

/// Refuses early, with the reason, a service that would refuse every command: one that does
/// not answer, or whose secret is not the one the tokens are minted from.
async fn accepts_tokens(endpoint: &Endpoint, keys: &TokenKeys) -> anyhow::Result<()> {
    let mut connection = Connection::open(endpoint)
        .await
        .context("connecting to the service")?;
    let token = bearer(keys, ApiRole::Buyer, Uuid::new_v4())?;
    let path = format!("/sellers/{}/completion-rate", Uuid::new_v4());
    let answer = connection.get(path, Some(&token)).await;
    if let Err(error) = answer {
        anyhow::bail!(
            "a token minted from the configured jwt_secret was not accepted ({error}): is this \
             a ledger, and is that its secret?"
        );
    }
    Ok(())
}

/// The service's `/metrics` page.
async fn scrape_metrics(endpoint: &Endpoint) -> anyhow::Result<String> {
    let mut connection = Connection::open(endpoint).await?;
    let response = connection.get("/metrics".to_owned(), None).await?;
    let body = response.into_body().collect().await?.to_bytes();
    Ok(String::from_utf8(body.to_vec())?)
}

impl InsideTheService {
    /// What the service's histograms gained between two scrapes; None if it timed nothing.
    fn between(before: &str, after: &str) -> Option<InsideTheService> {
        let gained = |name: &str, series: &dyn Fn(&str) -> bool| {
            Buckets::sum(after, name, series).minus(&Buckets::sum(before, name, series))
        };
        let commands = |labels: &str| labels.contains(r#"method="POST""#);
        let accepted = |labels: &str| labels.contains(r#"outcome="ok""#);
        let request = gained("ledger_http_request_seconds", &commands);
        let append = gained("ledger_append_seconds", &accepted);
        let views_wait = gained("ledger_views_wait_seconds", &|_| true);
        Some(InsideTheService {
            request: request.quantiles()?,
            requests_over_10ms: request.share_above(0.01)?,
            append: append.quantiles()?,
            views_wait: views_wait.quantiles()?,
        })
    }
}

/// A Prometheus histogram's cumulative buckets (`le` bound in seconds, count), summed over the
/// series chosen, the `+Inf` bucket last.
#[derive(Debug, Default, PartialEq)]
struct Buckets(Vec<(f64, f64)>);

impl Buckets {
    /// Parses the text exposition format's `NAME_bucket{…,le="…"} COUNT` lines; label values
    /// may hold braces (`route="/orders/{id}/close"`).
    fn sum(page: &str, name: &str, series: &dyn Fn(&str) -> bool) -> Buckets {
        let prefix = format!("{name}_bucket{{");
        let mut buckets: Vec<(f64, f64)> = Vec::new();
        for line in page.lines() {
            let Some(rest) = line.strip_prefix(&prefix) else {
                continue;
            };
            let Some((labels, count)) = rest.rsplit_once("} ") else {
                continue;
            };
            let bound = labels
                .split_once(r#"le=""#)
                .and_then(|(_, bound)| bound.split_once('"'))
                .and_then(|(bound, _)| match bound {
                    "+Inf" => Some(f64::INFINITY),
                    bound => bound.parse().ok(),
                });
            let (Some(bound), Ok(count), true) =
                (bound, count.trim().parse::<f64>(), series(labels))
            else {
                continue;
            };
            match buckets.iter_mut().find(|(b, _)| *b == bound) {
                Some((_, total)) => *total += count,
                None => buckets.push((bound, count)),
            }
        }
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        Buckets(buckets)
    }

    fn minus(&self, earlier: &Buckets) -> Buckets {
        let count_at = |bound: f64| {
            earlier
                .0
                .iter()
                .find(|(b, _)| *b == bound)
                .map_or(0.0, |(_, c)| *c)
        };
        Buckets(self.0.iter().map(|&(b, c)| (b, c - count_at(b))).collect())
    }

    fn total(&self) -> Option<f64> {
        self.0.last().map(|(_, c)| *c).filter(|c| *c > 0.0)
    }

    /// The `q` quantile as Prometheus's `histogram_quantile` estimates it: linear within the
    /// bucket it falls in; in the `+Inf` bucket, the highest finite bound.
    fn quantile(&self, q: f64) -> Option<Duration> {
        let rank = q * self.total()?;
        let (mut lower, mut below) = (0.0, 0.0);
        for &(bound, count) in &self.0 {
            if count >= rank {
                if bound.is_infinite() {
                    return Some(Duration::from_secs_f64(lower));
                }
                let within = if count > below {
                    (rank - below) / (count - below)
                } else {
                    1.0
                };
                return Some(Duration::from_secs_f64(lower + (bound - lower) * within));
            }
            (lower, below) = (bound, count);
        }
        None
    }

    fn quantiles(&self) -> Option<Quantiles> {
        Some(Quantiles {
            p50: self.quantile(0.50)?,
            p99: self.quantile(0.99)?,
        })
    }

    /// Share of the observations above `bound`, which must be one of the buckets' bounds.
    fn share_above(&self, bound: f64) -> Option<f64> {
        let total = self.total()?;
        let (_, at_most) = self.0.iter().find(|(b, _)| *b == bound)?;
        Some(1.0 - at_most / total)
    }
}

/// An `Authorization` value for `user` in `role`, valid for the hour a run lasts at most.
fn bearer(keys: &TokenKeys, role: ApiRole, user: Uuid) -> anyhow::Result<HeaderValue> {
    let token = keys.mint(role, user, chrono::Utc::now(), chrono::Duration::hours(1))?;
    Ok(HeaderValue::from_str(&format!("Bearer {token}"))?)
}

/// When an open-loop client's next command is due.
struct Schedule {
    next: tokio::time::Instant,
    interval: Duration,
}

impl Schedule {
    /// Waits for the next slot and gives the instant it was due: the start of the command's
    /// latency, however late the client is.
    async fn next_slot(&mut self) -> Instant {
        let due = self.next;
        self.next += self.interval;
        tokio::time::sleep_until(due).await;
        due.into_std()
    }
}

/// When a command's latency starts: its slot in an open loop, now in a closed one; None
/// once that is past the deadline.
async fn command_start(schedule: &mut Option<Schedule>, deadline: Instant) -> Option<Instant> {
    let start = match schedule {
        Some(schedule) if schedule.next.into_std() >= deadline => return None,
        Some(schedule) => schedule.next_slot().await,
        None => Instant::now(),
    };
    (start < deadline).then_some(start)
}

/// One client's connection: HTTP/1.1 kept alive, requests one at a time, as a browser tab
/// or a service's client would send them. Built on hyper's connection API rather than a
/// pooled client so that the generator spends as little of the machine as it can: the
/// service shares these two cores with it, and every microsecond here is taken from there.
struct Connection {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    host: HeaderValue,
}

impl Connection {
    async fn open(endpoint: &Endpoint) -> anyhow::Result<Connection> {
        let stream = tokio::net::TcpStream::connect(&endpoint.address).await?;
        stream.set_nodelay(true)?;
        let sender = match &endpoint.tls {
            None => Connection::handshake(stream).await?,
            Some(tls) => {
                let server_name = tls.server_name.clone();
                let stream = tls.connector.connect(server_name, stream).await?;
                Connection::handshake(stream).await?
            }
        };
        Ok(Connection {
            sender,
            host: HeaderValue::from_str(&endpoint.address)?,
        })
    }

    async fn handshake(
        stream: impl AsyncRead + AsyncWrite + Send + Unpin + 'static,
    ) -> anyhow::Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>> {
        let (sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        Ok(sender)
    }

    /// A GET whose answer must succeed; its body is left to the caller, to read or to hold
    /// open unread (an SSE subscription).
    async fn get(
        &mut self,
        path: String,
        token: Option<&HeaderValue>,
    ) -> anyhow::Result<hyper::Response<hyper::body::Incoming>> {
        let mut request = http::Request::get(&path).header(http::header::HOST, self.host.clone());
        if let Some(token) = token {
            request = request.header(http::header::AUTHORIZATION, token.clone());
        }
        let request = request.body(Full::new(Bytes::new()))?;
        self.sender.ready().await?;
        let response = self.sender.send_request(request).await?;
        anyhow::ensure!(
            response.status().is_success(),
            "GET {path}: {}",
            response.status()
        );
        Ok(response)
    }

    /// Sends a command and reads its whole answer; whether it succeeded.
    async fn command(&mut self, path: String, token: &HeaderValue, body: Bytes) -> bool {
        let request = http::Request::post(path)
            .header(http::header::HOST, self.host.clone())
            .header(http::header::AUTHORIZATION, token.clone())
            .header(http::header::CONTENT_TYPE, JSON.clone())
            .body(Full::new(body));
        let Ok(request) = request else { return false };
        if self.sender.ready().await.is_err() {
            return false;
        }
        match self.sender.send_request(request).await {
            Ok(response) => {
                let success = response.status().is_success();
                success && response.into_body().collect().await.is_ok()
            }
            Err(_) => false,
        }
    }
}

static JSON: HeaderValue = HeaderValue::from_static("application/json");

async fn client_loop(
    mut connection: Connection,
    seller: Uuid,
    (buyer_token, seller_token): (HeaderValue, HeaderValue),
    (measured_from, deadline): (Instant, Instant),
    mut schedule: Option<Schedule>,
    mut histogram: Histogram<u64>,
) -> (Histogram<u64>, u64, u64) {
    let (mut ok, mut failed) = (0, 0);
    let mut timed = |started: Instant, success: bool| {
        if started < measured_from {
            return;
        }
        histogram.saturating_record((started.elapsed().as_micros() as u64).max(1));
        if success {
            ok += 1;
        } else {
            failed += 1;
        }
    };
    let empty = Bytes::from_static(b"{}");
    let delivered = Bytes::from_static(br#"{"message":"done"}"#);
    while let Some(started) = command_start(&mut schedule, deadline).await {
        // The client names the order (a time-ordered id, as the service would make), so it
        // need not read the placement's answer to go on.
        let order = Uuid::now_v7();
        let place = format!(
            r#"{{"order_id":"{order}","seller_id":"{seller}","title":"bench","price":"25.00","currency":"EUR","delivery_days":3}}"#
        );
        let placed = connection
            .command("/orders".to_owned(), &buyer_token, Bytes::from(place))
            .await;
        timed(started, placed);
        if !placed {
            continue;
        }
        for (action, token, body) in [
            ("confirm", &seller_token, &empty),
            ("deliver", &seller_token, &delivered),
            ("close", &buyer_token, &empty),
        ] {
            let Some(started) = command_start(&mut schedule, deadline).await else {
                break;
            };
            let path = format!("/orders/{order}/{action}");
            let success = connection.command(path, token, body.clone()).await;
            timed(started, success);
        }
    }
    (histogram, ok, failed)
}

#[cfg(test)]
mod tests {
    use super::{Buckets, InsideTheService};
    use std::time::Duration;

    /// A series' three buckets (1 ms, 10 ms, +Inf) in the exposition format.
    fn series(labels: &str, [fast, slow, all]: [u32; 3]) -> String {
        let name = "ledger_http_request_seconds_bucket";
        format!(
            "{name}{{{labels},le=\"0.001\"}} {fast}\n{name}{{{labels},le=\"0.01\"}} {slow}\n{name}{{{labels},le=\"+Inf\"}} {all}\n"
        )
    }

    const CLOSE: &str = r#"method="POST",route="/orders/{id}/close""#;
    const PLACE: &str = r#"method="POST",route="/orders""#;
    const METRICS: &str = r#"method="GET",route="/metrics""#;

    fn before() -> String {
        series(CLOSE, [10, 10, 10]) + &series(METRICS, [0, 0, 0])
    }

    fn after() -> String {
        series(CLOSE, [40, 90, 100])
            + &series(PLACE, [20, 20, 20])
            + &series(METRICS, [0, 0, 1000])
            + "ledger_http_request_seconds_sum{method=\"POST\",route=\"/orders\"} 0.01\n"
    }

    fn commands(page: &str) -> Buckets {
        Buckets::sum(page, "ledger_http_request_seconds", &|labels: &str| {
            labels.contains(r#"method="POST""#)
        })
    }

    #[test]
    fn buckets_add_up_over_the_series_chosen_whatever_braces_their_labels_hold() {
        let gained = commands(&after()).minus(&commands(&before()));
        assert_eq!(
            gained,
            Buckets(vec![(0.001, 50.0), (0.01, 100.0), (f64::INFINITY, 110.0)])
        );
    }

    #[test]
    fn quantiles_interpolate_within_their_bucket_as_prometheus_does() {
        let gained = commands(&after()).minus(&commands(&before()));
        let near = |d: Duration, seconds: f64| (d.as_secs_f64() - seconds).abs() < 1e-9;
        // Rank 55 of 110 is the 5th of the 50 between 1 and 10 ms.
        assert!(near(gained.quantile(0.5).unwrap_or_default(), 0.0019));
        // Rank 22 of 110 falls in the first bucket, from zero.
        assert!(near(gained.quantile(0.2).unwrap_or_default(), 0.00044));
        // Past the last finite bound: that bound, as histogram_quantile gives.
        assert!(near(gained.quantile(0.99).unwrap_or_default(), 0.01));
        let share = gained.share_above(0.01).unwrap_or_default();
        assert!((share - 10.0 / 110.0).abs() < 1e-12, "{share}");
        assert_eq!(gained.share_above(0.02), None);
        assert_eq!(Buckets::default().quantile(0.5), None);
    }

    #[test]
    fn nothing_timed_gives_no_figures() {
        assert!(InsideTheService::between(&after(), &after()).is_none());
    }
}
