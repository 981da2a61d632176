//! `ledger serve --grpc-listen`: a subscriber written with the official `eventstore` client,
//! not through our trait, reads an order's stream and follows `$all` live.

use crate::support::{log_when, user, Server};
use eventstore::{
    Client, ClientSettings, ReadStreamOptions, StreamPosition, SubscribeToAllOptions,
    SubscriptionFilter,
};
use serde_json::json;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

/// `ledger serve --dev` with the EventStoreDB protocol: `subscriber` reads, `ledger` appends.
pub fn start() -> Server {
    start_configured(
        tempfile::TempDir::new().expect("temp dir"),
        "[[grpc_users]]\nusername = \"subscriber\"\npassword = \"pw\"\n\n\
         [[grpc_users]]\nusername = \"ledger\"\npassword = \"pw\"\nappend = true\n",
        "127.0.0.1:0",
    )
}

/// `ledger serve --dev` in `dir` with `config` as its `ledger.toml`, serving the EventStoreDB
/// protocol on `grpc_listen`.
fn start_configured(dir: tempfile::TempDir, config: &str, grpc_listen: &str) -> Server {
    std::fs::write(dir.path().join("ledger.toml"), config).expect("config");
    Server::start_with(dir, &["--dev", "--grpc-listen", grpc_listen])
}

/// Stops `server` and starts it again on the same data directory and configuration.
pub fn restart(server: Server) -> Server {
    Server::start_with(server.stop(), &["--dev", "--grpc-listen", "127.0.0.1:0"])
}

pub fn client(server: &Server, scheme: &str, credentials: &str) -> Client {
    let url = server.grpc.as_deref().expect("grpc address");
    let url = url.replacen("esdb://", &format!("{scheme}://{credentials}"), 1);
    let settings: ClientSettings = url.parse().expect("connection string");
    Client::new(settings).expect("client")
}

/// The type of the first event of `order`'s stream, read through `client`.
async fn first_event_type(client: &Client, order: uuid::Uuid) -> String {
    let stream = format!("order-{order}");
    let mut read = client
        .read_stream(stream.as_str(), &ReadStreamOptions::default())
        .await
        .expect("read");
    let first = read.next().await.expect("next").expect("an event");
    first.get_original_event().event_type.clone()
}

fn types(events: &[eventstore::ResolvedEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| e.get_original_event().event_type.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_official_client_reads_an_order_and_follows_all_live() {
    let server = start();
    let (buyer, seller) = (user("buyer"), user("seller"));
    let order = server.place(&buyer, &seller, "120.00").await;
    server.act(&seller, order, "confirm", json!({})).await;
    let client = client(&server, "esdb", "subscriber:pw@");
    let stream = format!("order-{order}");

    let mut read = client
        .read_stream(stream.as_str(), &ReadStreamOptions::default())
        .await
        .expect("read");
    let mut events = Vec::new();
    while let Some(event) = read.next().await.expect("next") {
        events.push(event);
    }
    assert_eq!(types(&events), ["OrderPlaced", "OrderConfirmed"]);
    let placed = events[0].get_original_event();
    assert_eq!(placed.stream_id, stream);
    assert_eq!(placed.revision, 0);
    assert!(placed.is_json, "ledger events are JSON");
    let data: serde_json::Value = serde_json::from_slice(&placed.data).expect("JSON data");
    assert_eq!(data["price"]["amount"], "120.00", "{data}");

    let options = SubscribeToAllOptions::default()
        .position(StreamPosition::Start)
        .filter(SubscriptionFilter::on_stream_name().add_prefix(&stream));
    let mut subscription = client.subscribe_to_all(&options).await;
    let mut seen = Vec::new();
    for _ in 0..2 {
        let event = tokio::time::timeout(WAIT, subscription.next())
            .await
            .expect("caught up in time")
            .expect("event");
        seen.push(event);
    }
    assert_eq!(types(&seen), ["OrderPlaced", "OrderConfirmed"]);
    // Live: a command over HTTP reaches the subscriber.
    server
        .act(&seller, order, "deliver", json!({"message": "done"}))
        .await;
    let live = tokio::time::timeout(WAIT, subscription.next())
        .await
        .expect("live event in time")
        .expect("event");
    assert_eq!(live.get_original_event().event_type, "OrderDelivered");
    assert!(live.get_original_event().position > seen[1].get_original_event().position);
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_through_gossip_finds_the_node() {
    let server = start();
    let order = server.place(&user("buyer"), &user("seller"), "10.00").await;
    let client = client(&server, "esdb+discover", "subscriber:pw@");
    assert_eq!(first_event_type(&client, order).await, "OrderPlaced");
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_users_are_refused_and_readers_cannot_append() {
    let server = start();
    let stranger = client(&server, "esdb", "subscriber:wrong@");
    let refused = stranger
        .read_stream("order-x", &ReadStreamOptions::default())
        .await;
    let refused = match refused {
        Err(e) => e,
        Ok(mut read) => read.next().await.expect_err("refused"),
    };
    assert!(
        matches!(refused, eventstore::Error::AccessDenied),
        "{refused}"
    );

    let reader = client(&server, "esdb", "subscriber:pw@");
    let event = eventstore::EventData::binary("Forged", vec![1u8].into());
    let append = reader
        .append_to_stream("order-forged", &Default::default(), event)
        .await;
    assert!(
        matches!(append, Err(eventstore::Error::AccessDenied)),
        "{append:?}"
    );
    assert_eq!(server.log_head().await, None, "nothing was appended");

    // A client that expects TLS, as connection strings do by default, is told nothing but a
    // closed connection: the node's log says why.
    let url = server.grpc.as_deref().expect("grpc address");
    let expecting_tls = format!(
        "{}&maxDiscoverAttempts=2",
        url.replace("tls=false", "tls=true")
    )
    .replacen("esdb://", "esdb://subscriber:pw@", 1);
    refused_read(&Client::new(expecting_tls.parse().expect("connection string")).expect("client"))
        .await;
    let began = "a client began a TLS handshake; this node speaks plaintext";
    let log = log_when(server.dir.path(), |log| log.contains(began)).await;
    assert!(log.contains(began), "{log}");
    server.stop();
}

/// An appender may pass the domain's rules by, but not write what no ledger writes: the log
/// would keep it, and the views (or the order's commands) would stop at it for good. A newer
/// ledger's kind of event, and another application's stream, are appended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_no_ledger_writes_is_refused_and_nothing_is_appended() {
    let server = start();
    let appender = client(&server, "esdb", "ledger:pw@");
    let stream = format!("order-{}", uuid::Uuid::new_v4());
    let id = uuid::Uuid::new_v4();
    // Metadata as the pipeline writes it, so that what is refused is the event itself.
    let metadata = json!({
        "schema_version": 1, "command_id": id, "command_digest": "v2:00",
        "correlation_id": id, "causation_id": id,
        "actor": {"role": "buyer", "user_id": id},
    });
    let event = |event_type: &str, data: serde_json::Value, metadata: &serde_json::Value| {
        eventstore::EventData::json(event_type, &data)
            .and_then(|e| e.metadata_as_json(metadata))
            .expect("json")
    };
    // Readable as it stands (docs/events.md): only its stream or metadata is wrong below.
    let confirmed = json!({
        "due_at": "2026-03-07T10:00:00Z",
        "by": {"role": "seller", "user_id": id},
        "at": "2026-03-02T10:00:00Z",
    });
    let refused = [
        (
            stream.as_str(),
            event("OrderConfirmed", json!({"due_at": "soon"}), &metadata),
            "event 1 of the append (OrderConfirmed): input contains invalid characters",
        ),
        (
            "order-17",
            event("OrderConfirmed", confirmed.clone(), &metadata),
            "`order-17` is named like an order's stream but holds no order id",
        ),
        (
            stream.as_str(),
            event(
                "OrderConfirmed",
                confirmed.clone(),
                &json!({"schema_version": 1}),
            ),
            "metadata: ",
        ),
        (
            stream.as_str(),
            eventstore::EventData::json("OrderConfirmed", &confirmed).expect("json"),
            "metadata: ",
        ),
    ];
    for (stream, event, expected) in refused {
        let append = appender
            .append_to_stream(stream, &Default::default(), event)
            .await;
        let error = append.expect_err("refused").to_string();
        assert!(error.contains(expected), "{error}");
    }
    // Other languages' clients append in batches: the same check.
    let batch = appender
        .batch_append(&Default::default())
        .await
        .expect("batch append");
    let refused = batch
        .append_to_stream(
            stream.as_str(),
            eventstore::ExpectedRevision::Any,
            vec![event(
                "OrderConfirmed",
                json!({"due_at": "soon"}),
                &metadata,
            )],
        )
        .await
        .expect_err("refused")
        .to_string();
    assert!(
        refused.contains("input contains invalid characters"),
        "{refused}"
    );
    assert_eq!(server.log_head().await, None, "nothing was appended");

    // What a ledger writes is appended, and read like the service's own. Placed now: with a
    // confirmation window already past, the service's timers would expire it meanwhile.
    let placed = uuid::Uuid::new_v4();
    let at = chrono::Utc::now();
    let placement = json!({
        "order_id": placed, "buyer": id, "seller": uuid::Uuid::new_v4(), "title": "A logo",
        "price": {"amount": "120.00", "currency": "EUR"}, "delivery_days": 5,
        "commission_rate": "0.20", "confirm_by": at + chrono::Duration::days(3),
        "escrow_after": {"amount": "120.00", "currency": "EUR"},
        "by": {"role": "buyer", "user_id": id}, "at": at,
    });
    appender
        .append_to_stream(
            format!("order-{placed}"),
            &Default::default(),
            event("OrderPlaced", placement, &metadata),
        )
        .await
        .expect("appended");
    // Appended past the pipeline, so nothing waits for the views to fold it: ask until they have.
    let mut summary = server
        .get(&user("mediator"), &format!("/orders/{placed}"))
        .await;
    for _ in 0..200 {
        if summary.status != reqwest::StatusCode::NOT_FOUND {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
        summary = server
            .get(&user("mediator"), &format!("/orders/{placed}"))
            .await;
    }
    let summary = summary.ok();
    assert_eq!(
        (&summary["status"], &summary["price"]["amount"]),
        (&json!("Placed"), &json!("120.00")),
        "{summary}"
    );
    // Another application's stream is its own business, and the views pass it by.
    appender
        .append_to_stream(
            "invoice-1",
            &Default::default(),
            event("InvoiceSent", json!({"n": 1}), &json!({})),
        )
        .await
        .expect("appended");
    let order = server.place(&user("buyer"), &user("seller"), "10.00").await;
    let summary = server.order(&user("mediator"), order).await;
    assert_eq!(summary["status"], "Placed", "{summary}");
    server.stop();
}

/// A production log (here: a running ledger's EventStoreDB protocol) copied to a laptop's
/// embedded store with `ledger copy`, then verified and read there; a second copy resumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledger_copy_brings_an_eventstoredb_log_to_an_embedded_store() {
    let server = start();
    let (buyer, seller) = (user("buyer"), user("seller"));
    let order = server.place(&buyer, &seller, "120.00").await;
    server.act(&seller, order, "confirm", json!({})).await;
    let laptop = tempfile::TempDir::new().expect("temp dir");
    let url = server
        .grpc
        .as_deref()
        .expect("grpc")
        .replacen("esdb://", "esdb://subscriber:pw@", 1);
    let source = laptop.path().join("production.toml");
    std::fs::write(
        &source,
        format!("store = \"eventstoredb\"\neventstoredb_url = \"{url}\"\n"),
    )
    .expect("source config");
    let target = laptop.path().join("laptop.toml");
    let data = laptop.path().join("data");
    std::fs::write(
        &target,
        format!("data_dir = {:?}\n", data.display().to_string()),
    )
    .expect("target config");
    let ledger = |args: &[&std::ffi::OsStr]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_ledger"))
            .args(args)
            .output()
            .expect("ledger runs");
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "{args:?}: {text} {}",
            String::from_utf8_lossy(&output.stderr)
        );
        text
    };
    let copy = [
        "copy".as_ref(),
        "--config".as_ref(),
        source.as_os_str(),
        "--to".as_ref(),
        target.as_os_str(),
    ];
    assert!(ledger(&copy).contains("copied 2 events"));
    server
        .act(&seller, order, "deliver", json!({"message": "done"}))
        .await;
    assert!(
        ledger(&copy).contains("copied 1 event "),
        "the second copy resumes"
    );
    ledger(&["verify".as_ref(), "--data-dir".as_ref(), data.as_os_str()]);
    let history = ledger(&[
        "history".as_ref(),
        order.to_string().as_ref(),
        "--data-dir".as_ref(),
        data.as_os_str(),
    ]);
    assert!(history.contains("OrderDelivered"), "{history}");
    server.stop();
}

/// The production shape: a `ledger serve` whose log is on EventStoreDB (here, another
/// ledger's node). Commands go through the backend, the views follow its subscription, and
/// the events are in the other node's log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_runs_on_an_eventstoredb_log() {
    let log_node = start();
    let url = log_node
        .grpc
        .as_deref()
        .expect("grpc")
        .replacen("esdb://", "esdb://ledger:pw@", 1);
    let dir = tempfile::TempDir::new().expect("temp dir");
    std::fs::write(
        dir.path().join("ledger.toml"),
        format!("store = \"eventstoredb\"\neventstoredb_url = \"{url}\"\n"),
    )
    .expect("config");
    let service = Server::start_with(dir, &["--dev"]);
    let (buyer, seller) = (user("buyer"), user("seller"));
    let order = service.place(&buyer, &seller, "50.00").await;
    service.act(&seller, order, "confirm", json!({})).await;
    let summary = service.order(&buyer, order).await;
    assert_eq!(summary["status"], "InProgress", "{summary}");
    // The log is the other node's: its own views saw the same events.
    let mediator = user("mediator");
    let there = log_node
        .wait_for_order(&mediator, order, |o| o["status"] == "InProgress")
        .await;
    assert_eq!(there["price"]["amount"], "50.00", "{there}");
    service.stop();
    log_node.stop();
}

/// Bearer tokens of the HTTP API work on the protocol too: `service` reads, a buyer may not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_tokens_read_the_protocol_by_role() {
    let server = start();
    server.place(&user("buyer"), &user("seller"), "10.00").await;
    let mut client = raw_streams(&server).await;
    let read = |token: &str| read_all_request(Some(&format!("Bearer {token}")));
    let mut events = client
        .read(read(&user("service").token))
        .await
        .expect("a service token reads")
        .into_inner();
    let first = events.message().await.expect("reply").expect("an event");
    assert!(first.content.is_some());
    let refused = client
        .read(read(&user("buyer").token))
        .await
        .expect_err("a buyer may not read the log");
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    let forged = client.read(read("not-a-token")).await.expect_err("refused");
    assert_eq!(forged.code(), tonic::Code::Unauthenticated);
    server.stop();
}

type RawStreams =
    ledger_store::node::proto::event_store::client::streams::streams_client::StreamsClient<
        tonic::transport::Channel,
    >;

/// A client of the protocol's own messages, which sends exactly the metadata it is given.
async fn raw_streams(server: &Server) -> RawStreams {
    let address = server
        .grpc
        .as_deref()
        .and_then(|u| u.strip_prefix("esdb://"))
        .and_then(|u| u.split('?').next())
        .expect("address")
        .to_owned();
    RawStreams::connect(format!("http://{address}"))
        .await
        .expect("connect")
}

/// The first ten events of `$all`, with this `authorization` metadata, or none.
fn read_all_request(
    authorization: Option<&str>,
) -> tonic::Request<ledger_store::node::proto::event_store::client::streams::ReadReq> {
    use ledger_store::node::proto::event_store::client::streams::{read_req, ReadReq};
    use ledger_store::node::proto::event_store::client::Empty;
    use read_req::options::{all_options::AllOption, AllOptions, CountOption, StreamOption};
    let mut request = tonic::Request::new(ReadReq {
        options: Some(read_req::Options {
            stream_option: Some(StreamOption::All(AllOptions {
                all_option: Some(AllOption::Start(Empty {})),
            })),
            read_direction: 0,
            resolve_links: false,
            count_option: Some(CountOption::Count(10)),
            filter_option: None,
            uuid_option: None,
            control_option: None,
        }),
    });
    if let Some(value) = authorization {
        let value = value.parse().expect("header");
        request.metadata_mut().insert("authorization", value);
    }
    request
}

/// Some clients (Python's kurrentdbclient) send credentials only over TLS, so none reach the
/// plaintext node: the refusal says so, and `grpc_anonymous_read` lets such calls read, never
/// append.
#[tokio::test]
async fn calls_without_credentials_read_only_where_the_configuration_allows() {
    let server = start();
    server.place(&user("buyer"), &user("seller"), "10.00").await;
    let refused = raw_streams(&server)
        .await
        .read(read_all_request(None))
        .await
        .expect_err("no credentials");
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    assert!(
        refused.message().contains("grpc_anonymous_read"),
        "{}",
        refused.message()
    );
    server.stop();

    let server = start_configured(
        tempfile::TempDir::new().expect("temp dir"),
        "grpc_anonymous_read = true\n",
        "127.0.0.1:0",
    );
    server.place(&user("buyer"), &user("seller"), "10.00").await;
    let mut events = raw_streams(&server)
        .await
        .read(read_all_request(None))
        .await
        .expect("reads without credentials")
        .into_inner();
    let first = events.message().await.expect("reply").expect("an event");
    assert!(first.content.is_some());
    let anonymous = client(&server, "esdb", "");
    let event = eventstore::EventData::binary("Forged", vec![1u8].into());
    let append = anonymous
        .append_to_stream("other-stream", &Default::default(), event)
        .await;
    assert!(append.is_err(), "{append:?}");
    assert_eq!(server.log_head().await, Some(0), "nothing was appended");
    let log = crate::support::log_of(server.dir.path());
    assert!(
        log.contains("calls without credentials may read the log there"),
        "the operator is told: {log}"
    );
    server.stop();
}

/// A CA, and a node certificate it signed for `localhost` and `127.0.0.1`, written into `dir`
/// as `ca.pem`, `node.pem` and `node.key`.
pub fn certificates(dir: &std::path::Path) {
    let mut authority = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA");
    authority.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    authority
        .distinguished_name
        .push(rcgen::DnType::CommonName, "ledger test CA");
    let authority_key = rcgen::KeyPair::generate().expect("CA key");
    let authority =
        rcgen::CertifiedIssuer::self_signed(authority, authority_key).expect("CA certificate");
    let node_key = rcgen::KeyPair::generate().expect("node key");
    let node = rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .expect("node")
        .signed_by(&node_key, &authority)
        .expect("node certificate");
    std::fs::write(dir.join("ca.pem"), authority.pem()).expect("ca.pem");
    std::fs::write(dir.join("node.pem"), node.pem()).expect("node.pem");
    std::fs::write(dir.join("node.key"), node_key.serialize_pem()).expect("node.key");
}

/// The first read of `client`, which must fail (within `WAIT`).
async fn refused_read(client: &Client) -> eventstore::Error {
    let options = eventstore::ReadAllOptions::default();
    let read = async {
        match client.read_all(&options).await {
            Err(error) => error,
            Ok(mut read) => read.next().await.expect_err("refused"),
        }
    };
    tokio::time::timeout(WAIT, read).await.expect("in time")
}

/// With a certificate the node speaks TLS, as EventStoreDB's connection strings expect by
/// default, and credentials travel over it; a plaintext client, or one that does not trust the
/// certificate, is refused, and the log says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_certificate_the_node_speaks_tls_and_takes_credentials_over_it() {
    let dir = tempfile::TempDir::new().expect("temp dir");
    certificates(dir.path());
    let ca = dir.path().join("ca.pem");
    let server = start_configured(
        dir,
        "grpc_tls_cert = \"node.pem\"\ngrpc_tls_key = \"node.key\"\n\n\
         [[grpc_users]]\nusername = \"subscriber\"\npassword = \"pw\"\n",
        "127.0.0.1:0",
    );
    let announced = server.grpc.clone().expect("grpc address");
    assert!(!announced.contains("tls=false"), "{announced}");
    let order = server.place(&user("buyer"), &user("seller"), "10.00").await;
    let trusting = |scheme: &str, credentials: &str| {
        let url = format!("{announced}?tlsCaFile={}", ca.display());
        let url = url.replacen("esdb://", &format!("{scheme}://{credentials}"), 1);
        Client::new(url.parse().expect("connection string")).expect("client")
    };

    for scheme in ["esdb", "esdb+discover"] {
        let reader = trusting(scheme, "subscriber:pw@");
        assert_eq!(first_event_type(&reader, order).await, "OrderPlaced");
    }
    let refused = refused_read(&trusting("esdb", "subscriber:wrong@")).await;
    assert!(
        matches!(refused, eventstore::Error::AccessDenied),
        "credentials are checked over TLS: {refused}"
    );

    let plaintext = format!("{announced}?tls=false&maxDiscoverAttempts=2").replacen(
        "esdb://",
        "esdb://subscriber:pw@",
        1,
    );
    let plaintext = Client::new(plaintext.parse().expect("connection string")).expect("client");
    refused_read(&plaintext).await;
    let distrusting = format!("{announced}?maxDiscoverAttempts=2").replacen(
        "esdb://",
        "esdb://subscriber:pw@",
        1,
    );
    let distrusting = Client::new(distrusting.parse().expect("connection string")).expect("client");
    refused_read(&distrusting).await;
    let failed = |log: &str| log.matches("a client's TLS handshake failed").count() >= 2;
    let log = log_when(server.dir.path(), failed).await;
    assert!(failed(&log), "the operator is told: {log}");
    server.stop();
}

/// Gossip names the node where the client reached it: bound to every interface, it must not
/// send a client on another network to loopback (its own machine).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gossip_names_the_address_each_client_reached() {
    use ledger_store::node::proto::event_store::client::gossip::gossip_client::GossipClient;
    let server = start_configured(
        tempfile::TempDir::new().expect("temp dir"),
        "[[grpc_users]]\nusername = \"subscriber\"\npassword = \"pw\"\n",
        "0.0.0.0:0",
    );
    let announced = server.grpc.clone().expect("grpc address");
    let port = announced
        .trim_end_matches("?tls=false")
        .rsplit(':')
        .next()
        .expect("port")
        .to_owned();
    // Another address of this machine, as a client elsewhere would reach another interface.
    let reached = format!("127.0.0.2:{port}");
    let mut gossip = GossipClient::connect(format!("http://{reached}"))
        .await
        .expect("connect");
    let members = gossip
        .read(ledger_store::node::proto::event_store::client::Empty {})
        .await
        .expect("gossip")
        .into_inner()
        .members;
    let endpoint = members[0].http_end_point.as_ref().expect("an endpoint");
    assert_eq!(
        format!("{}:{}", endpoint.address, endpoint.port),
        reached,
        "{members:?}"
    );

    let order = server.place(&user("buyer"), &user("seller"), "10.00").await;
    let url = format!("esdb+discover://subscriber:pw@{reached}?tls=false");
    let client = Client::new(url.parse().expect("connection string")).expect("client");
    assert_eq!(first_event_type(&client, order).await, "OrderPlaced");
    server.stop();
}
