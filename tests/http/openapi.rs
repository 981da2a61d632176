//! The OpenAPI document: every route the service answers, the headers its commands read and
//! answer with, and the shapes of what it sends, checked against what it does send.

use crate::support::{command_routes, user, Server};
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

async fn openapi(server: &Server) -> Value {
    server
        .send(server.client().get(server.url("/openapi.json")))
        .await
        .ok()
}

#[tokio::test]
async fn the_openapi_document_lists_the_headers_every_command_reads_and_answers_with() {
    let server = Server::start();
    let document = openapi(&server).await;
    let headers_of = |path: &str| -> Vec<String> {
        document["paths"][path]["post"]["parameters"]
            .as_array()
            .unwrap_or_else(|| panic!("POST {path} has no parameters"))
            .iter()
            .filter(|p| p["in"] == "header")
            .filter_map(|p| p["name"].as_str().map(str::to_owned))
            .collect()
    };
    let answered_with = |path: &str, status: &str| -> Vec<String> {
        let mut response = &document["paths"][path]["post"]["responses"][status];
        if let Some(component) = response["$ref"].as_str() {
            let name = component.trim_start_matches("#/components/responses/");
            response = &document["components"]["responses"][name];
        }
        let mut headers: Vec<String> = response["headers"]
            .as_object()
            .unwrap_or_else(|| panic!("POST {path} answers {status} with no headers"))
            .keys()
            .cloned()
            .collect();
        headers.sort();
        headers
    };
    let on_an_order = ["Idempotency-Key", "If-Match", "X-Correlation-Id"];
    for route in command_routes() {
        let path = format!("/orders/{{id}}/{}", route.action);
        assert_eq!(headers_of(&path), on_an_order, "POST {path}");
        assert_eq!(
            answered_with(&path, "200"),
            ["ETag", "Idempotent-Replayed"],
            "POST {path}"
        );
    }
    // A placement has no revision to match yet.
    assert_eq!(
        headers_of("/orders"),
        ["Idempotency-Key", "X-Correlation-Id"],
        "POST /orders"
    );
    assert_eq!(
        answered_with("/orders", "201"),
        ["ETag", "Idempotent-Replayed", "Location"],
        "POST /orders"
    );
    // A read order gives the revision to match.
    let summary = &document["paths"]["/orders/{id}"]["get"]["responses"]["200"];
    assert!(summary["headers"]["ETag"].is_object(), "{summary}");
    // Every paged read names its next page in `Link`.
    for path in [
        "/orders",
        "/escrow/orders",
        "/wallets/{user_id}",
        "/journal",
        "/review-windows",
        "/disputes",
    ] {
        let page = &document["paths"][path]["get"]["responses"]["200"];
        assert!(page["headers"]["Link"].is_object(), "GET {path}: {page}");
    }
}

#[tokio::test]
async fn the_openapi_document_describes_every_route_the_service_answers() {
    let server = Server::start();
    let document = openapi(&server).await;
    assert!(document["openapi"]
        .as_str()
        .is_some_and(|v| v.starts_with("3.")));
    let paths = document["paths"].as_object().expect("paths");
    let mut expected: Vec<(String, &str)> = vec![
        ("/orders".into(), "post"),
        ("/orders".into(), "get"),
        ("/orders/{id}".into(), "get"),
        ("/orders/{id}/history".into(), "get"),
        ("/orders/{id}/review-window".into(), "get"),
        ("/review-windows".into(), "get"),
        ("/disputes".into(), "get"),
        ("/escrow".into(), "get"),
        ("/escrow/orders".into(), "get"),
        ("/wallets/{user_id}".into(), "get"),
        ("/sellers/{id}/completion-rate".into(), "get"),
        ("/journal".into(), "get"),
        ("/trial-balance".into(), "get"),
        ("/streams/$all".into(), "get"),
        ("/streams/{stream}".into(), "get"),
        ("/healthz".into(), "get"),
        ("/readyz".into(), "get"),
        ("/metrics".into(), "get"),
        ("/dev/clock".into(), "post"),
    ];
    expected.extend(
        command_routes()
            .into_iter()
            .map(|r| (format!("/orders/{{id}}/{}", r.action), "post")),
    );
    for (path, method) in &expected {
        assert!(
            paths.get(path).and_then(|p| p.get(*method)).is_some(),
            "{method} {path} missing from the OpenAPI document"
        );
    }
    // And every documented operation is answered (not 404/405) by the running service.
    let mediator = user("mediator");
    for (path, operations) in paths {
        let concrete = concrete(path);
        for method in operations.as_object().expect("operations").keys() {
            let response = request(&server, method, &concrete)
                .bearer_auth(&mediator.token)
                .send()
                .await
                .expect("request");
            let status = response.status();
            let body: Value = if concrete.starts_with("/streams") {
                Value::Null
            } else {
                response.json().await.unwrap_or(Value::Null)
            };
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            if status == StatusCode::NOT_FOUND {
                assert_ne!(body["detail"], "no such route", "{method} {path}");
            }
        }
    }
}

/// A documented path with made-up values in its parameters.
fn concrete(path: &str) -> String {
    path.replace("{id}", &Uuid::new_v4().to_string())
        .replace("{user_id}", &Uuid::new_v4().to_string())
        .replace("{stream}", "order-x")
}

/// A request of `method` to `path`, with an empty JSON body if it is a `POST`.
fn request(server: &Server, method: &str, path: &str) -> reqwest::RequestBuilder {
    match method {
        "get" => server.client().get(server.url(path)),
        "post" => server.client().post(server.url(path)).json(&json!({})),
        other => panic!("unexpected method {other}"),
    }
}

/// A client generated from the document is told of every answer it can get: each operation
/// that refuses a request without a token documents its problem answers, as the media type
/// they are sent as (`application/problem+json`).
#[tokio::test]
async fn every_operation_that_refuses_a_missing_token_documents_its_problems() {
    let server = Server::start();
    let document = openapi(&server).await;
    let paths = document["paths"].as_object().expect("paths");
    for (path, operations) in paths {
        for (method, operation) in operations.as_object().expect("operations") {
            let response = request(&server, method, &concrete(path))
                .send()
                .await
                .expect("request");
            if response.status() == StatusCode::UNAUTHORIZED {
                let responses = &operation["responses"];
                let mut documented = responses
                    .get("4XX")
                    .or(responses.get("401"))
                    .unwrap_or_else(|| {
                        panic!("{method} {path} answers 401 but documents only {responses}")
                    });
                if let Some(component) = documented["$ref"].as_str() {
                    let name = component.trim_start_matches("#/components/responses/");
                    documented = &document["components"]["responses"][name];
                }
                let sent = response.headers()["content-type"].to_str().expect("type");
                assert!(
                    documented["content"].get(sent).is_some(),
                    "{method} {path} answers 401 as {sent}, documented as {documented}"
                );
            }
        }
    }
}

/// A generated client reads an object schema that names no properties as one that has none
/// (openapi-typescript: `Record<string, never>`), so an event's data could not be read: every
/// object the document describes names its properties or says what others it takes.
#[tokio::test]
async fn every_object_in_the_document_names_its_properties_or_takes_any() {
    fn closed_and_empty(at: String, schema: &Value, found: &mut Vec<String>) {
        match schema {
            Value::Object(fields) => {
                let object = fields.get("type") == Some(&json!("object"));
                let described = [
                    "properties",
                    "additionalProperties",
                    "$ref",
                    "allOf",
                    "oneOf",
                ]
                .iter()
                .any(|key| fields.contains_key(*key));
                if object && !described {
                    found.push(at.clone());
                }
                for (key, value) in fields {
                    closed_and_empty(format!("{at}/{key}"), value, found);
                }
            }
            Value::Array(items) => {
                for (index, value) in items.iter().enumerate() {
                    closed_and_empty(format!("{at}/{index}"), value, found);
                }
            }
            _ => {}
        }
    }
    let server = Server::start();
    let document = openapi(&server).await;
    let mut found = Vec::new();
    closed_and_empty(String::new(), &document, &mut found);
    assert!(found.is_empty(), "objects without properties: {found:?}");
}

#[tokio::test]
async fn what_the_service_sends_has_the_shape_the_document_describes() {
    let server = Server::start();
    let document = openapi(&server).await;
    let (buyer, seller, finance) = (user("buyer"), user("seller"), user("finance"));
    let order = server.place(&buyer, &seller, "40.00").await;
    server.act(&seller, order, "confirm", json!({})).await;
    let delivered = server
        .act(&seller, order, "deliver", json!({"message": "done"}))
        .await;
    let opened = server
        .act(&buyer, order, "dispute", json!({"reason": "not it"}))
        .await;
    // One order closed (a release to the seller's wallet, a review window), one cancelled
    // (a refund to the buyer's, with its cause).
    let closed = server.place(&buyer, &seller, "25.00").await;
    for (who, action, body) in [
        (&seller, "confirm", json!({})),
        (&seller, "deliver", json!({"message": "done"})),
        (&buyer, "close", json!({})),
    ] {
        server.act(who, closed, action, body).await;
    }
    let cancelled = server.place(&buyer, &seller, "10.00").await;
    server
        .act(
            &buyer,
            cancelled,
            "cancel",
            json!({"reason": "changed my mind"}),
        )
        .await;
    let reminders = user("service");
    let reader = &server;
    let read = |who, path: String| async move { reader.get(who, &path).await.ok() };
    let summary = read(&buyer, format!("/orders/{order}")).await;
    let sent = [
        ("post", "/orders/{id}/deliver", delivered),
        ("post", "/orders/{id}/dispute", opened),
        ("get", "/orders/{id}", summary.clone()),
        ("get", "/orders", read(&buyer, "/orders".into()).await),
        (
            "get",
            "/orders/{id}/history",
            read(&buyer, format!("/orders/{order}/history")).await,
        ),
        ("get", "/disputes", read(&finance, "/disputes".into()).await),
        ("get", "/escrow", read(&finance, "/escrow".into()).await),
        (
            "get",
            "/escrow/orders",
            read(&finance, "/escrow/orders".into()).await,
        ),
        (
            "get",
            "/wallets/{user_id}",
            read(&buyer, format!("/wallets/{}", buyer.id)).await,
        ),
        (
            "get",
            "/wallets/{user_id}",
            read(&seller, format!("/wallets/{}", seller.id)).await,
        ),
        (
            "get",
            "/orders/{id}/review-window",
            read(&buyer, format!("/orders/{closed}/review-window")).await,
        ),
        (
            "get",
            "/review-windows",
            read(&reminders, "/review-windows?closing_within_days=200".into()).await,
        ),
        (
            "get",
            "/sellers/{id}/completion-rate",
            read(&buyer, format!("/sellers/{}/completion-rate", seller.id)).await,
        ),
        ("get", "/journal", read(&finance, "/journal".into()).await),
        (
            "get",
            "/trial-balance",
            read(&finance, "/trial-balance".into()).await,
        ),
    ];
    for (method, path, body) in &sent {
        let mut response = &document["paths"][path][method]["responses"]["200"];
        if let Some(component) = response["$ref"].as_str() {
            response = resolve(&document, component);
        }
        let schema = &response["content"]["application/json"]["schema"];
        if let Err(mismatch) = conforms(&document, schema, body, &format!("{method} {path}")) {
            panic!("{mismatch}\nsent: {body:#}");
        }
    }
    // The order's nullable fields were checked filled, not only null.
    assert!(summary["due_at"].is_string() && summary["dispute_opened_by"] == "buyer");
    assert!(summary["dispute_opened_at"].is_string(), "{summary}");
    assert!(summary["dispute_reason"].is_string(), "{summary}");
    let queue = read(&finance, "/disputes".into()).await;
    assert_eq!(
        queue["disputes"][0]["order_id"],
        order.to_string(),
        "{queue}"
    );
    let closing = read(&reminders, "/review-windows?closing_within_days=200".into()).await;
    assert_eq!(
        closing["windows"][0]["order"],
        closed.to_string(),
        "{closing}"
    );
    let wallet = read(&buyer, format!("/wallets/{}", buyer.id)).await;
    assert!(wallet
        .to_string()
        .contains("cancelled_by_buyer_before_confirmation"));
}

/// A subscriber's client is generated from the document too: each event a subscription sends
/// is a StreamEvent, an order's as an OrderStreamEvent (its data typed by its type, the
/// ledger's metadata) and another application's as an OtherStreamEvent; the `caught-up`
/// announcement is a CaughtUp, on `$all` as on one stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_subscription_sends_has_the_shape_the_document_describes() {
    let server = crate::eventstoredb::start();
    let document = openapi(&server).await;
    let (buyer, seller, mediator) = (user("buyer"), user("seller"), user("mediator"));
    let order = server.place(&buyer, &seller, "40.00").await;
    for (who, action, body) in [
        (&seller, "confirm", json!({})),
        (&seller, "deliver", json!({"message": "done"})),
        (&buyer, "dispute", json!({"reason": "not it"})),
        (
            &mediator,
            "dispute/resolve",
            json!({"outcome": "split", "refund": "10.00", "note": "half done"}),
        ),
    ] {
        server.act(who, order, action, body).await;
    }
    let appender = crate::eventstoredb::client(&server, "esdb", "ledger:pw@");
    let invoice = eventstore::EventData::json("InvoiceSent", &json!({"n": 1}))
        .and_then(|e| e.metadata_as_json(&json!({"by": "billing"})))
        .expect("json");
    appender
        .append_to_stream("invoice-1", &Default::default(), invoice)
        .await
        .expect("appended");
    let binary = eventstore::EventData::binary("Blob", vec![0xff, 0x00].into());
    let text = eventstore::EventData::binary("Note", b"\"quoted\" text".to_vec().into());
    appender
        .append_to_stream("invoice-1", &Default::default(), vec![binary, text])
        .await
        .expect("appended");

    let mut subscriber =
        crate::streams::Subscriber::connect(&server, &user("service"), "/streams/$all", None).await;
    let (events, caught_up) = subscriber.catch_up().await;
    let (sse_event, schema) = subscription_schemas(&document, "/streams/$all");
    let announcement = json!({"$ref": "#/components/schemas/CaughtUp"});
    let stream_event = json!({"$ref": "#/components/schemas/StreamEvent"});
    let at = "caught-up on $all";
    let fields = sse_fields(None, "caught-up", &caught_up);
    conforms(&document, sse_event, &fields, at)
        .and(conforms(&document, schema, &caught_up, at))
        .and(conforms(&document, &announcement, &caught_up, at))
        .unwrap_or_else(|mismatch| panic!("{mismatch}\nsent: {caught_up:#}"));
    let as_the_ledger_writes = json!({"$ref": "#/components/schemas/OrderStreamEvent"});
    let as_appended = json!({"$ref": "#/components/schemas/OtherStreamEvent"});
    let mut others = 0;
    for event in &events {
        let at = format!("event {} ({})", event.id, event.event_type);
        let fields = sse_fields(Some(event.id), &event.event_type, &event.data);
        let described = conforms(&document, sse_event, &fields, &at)
            .and(conforms(&document, schema, &event.data, &at))
            .and(conforms(&document, &stream_event, &event.data, &at));
        assert!(
            conforms(&document, &announcement, &event.data, &at).is_err(),
            "{at} is not a CaughtUp"
        );
        let as_its_stream = if event.data["stream"] == "invoice-1" {
            others += 1;
            conforms(&document, &as_appended, &event.data, &at)
        } else {
            conforms(&document, &as_the_ledger_writes, &event.data, &at)
        };
        if let Err(mismatch) = described.and(as_its_stream) {
            panic!("{mismatch}\nsent: {:#}", event.data);
        }
    }
    assert_eq!((events.len(), others), (10, 3), "{events:?}");
    assert_eq!(caught_up, json!({"position": events[9].id}));
    // One stream's announcement counts by revision; a stream with no events yet names none.
    let stream = format!("/streams/order-{order}");
    for (path, said) in [
        (
            stream.as_str(),
            json!({"revision": events.len() - others - 1}),
        ),
        (
            "/streams/order-00000000-0000-0000-0000-000000000001",
            json!({"revision": null}),
        ),
    ] {
        let mut subscriber =
            crate::streams::Subscriber::connect(&server, &user("service"), path, None).await;
        let (_, caught_up) = subscriber.catch_up().await;
        assert_eq!(caught_up, said, "{path}");
        let (sse_event, schema) = subscription_schemas(&document, "/streams/{stream}");
        let fields = sse_fields(None, "caught-up", &caught_up);
        conforms(&document, sse_event, &fields, path)
            .and(conforms(&document, schema, &caught_up, path))
            .and(conforms(&document, &announcement, &caught_up, path))
            .unwrap_or_else(|mismatch| panic!("{mismatch}\nsent: {caught_up:#}"));
    }
    // Bytes that are not JSON arrive as they were appended, in base64, and say so: text too,
    // which as a string could not be told from JSON's.
    for (event_type, base64) in [("Blob", "/wA="), ("Note", "InF1b3RlZCIgdGV4dA==")] {
        let sent = events
            .iter()
            .find(|event| event.event_type == event_type)
            .expect(event_type);
        assert_eq!(
            (&sent.data["data"], &sent.data["data_encoding"]),
            (&json!(base64), &json!("base64")),
            "{:#}",
            sent.data
        );
    }
    server.stop();
}

/// Each event type's fields are in the document by name, as the catalogue shows them: a
/// generated client reads an event's data by its type, not as a bag of anything.
#[tokio::test]
async fn every_event_type_has_its_fields_described_as_the_catalogue_shows_them() {
    let server = Server::start();
    let document = openapi(&server).await;
    let choices: Vec<&str> = document["components"]["schemas"]["Event"]["oneOf"]
        .as_array()
        .expect("an event is one of its types")
        .iter()
        .filter_map(|choice| choice["properties"]["type"]["enum"][0].as_str())
        .collect();
    assert_eq!(choices, ledger_domain::EVENT_TYPES);
    let catalogue = include_str!("../../docs/events.md");
    let examples: Vec<Value> = catalogue
        .split("```json\n")
        .skip(1)
        .filter_map(|block| block.split("```").next())
        .map(|block| serde_json::from_str(block).expect("an example is JSON"))
        .collect();
    assert_eq!(examples.len(), choices.len(), "one example per type");
    let event = json!({"$ref": "#/components/schemas/Event"});
    for example in &examples {
        if let Err(mismatch) = conforms(&document, &event, example, "event") {
            panic!("{mismatch}\nthe catalogue: {example:#}");
        }
    }
}

fn resolve<'a>(document: &'a Value, reference: &str) -> &'a Value {
    reference
        .trim_start_matches("#/")
        .split('/')
        .fold(document, |node, key| &node[key])
}

/// The schema of each SSE event on `path` (a SubscriptionEvent), and of its `data`, JSON text
/// whose shape is a SubscriptionData.
fn subscription_schemas<'a>(document: &'a Value, path: &str) -> (&'a Value, &'a Value) {
    let mut answer = &document["paths"][path]["get"]["responses"]["200"];
    if let Some(component) = answer["$ref"].as_str() {
        answer = resolve(document, component);
    }
    let event = &answer["content"]["text/event-stream"]["schema"];
    assert_eq!(event["$ref"], "#/components/schemas/SubscriptionEvent");
    let data = &resolve(document, "#/components/schemas/SubscriptionEvent")["properties"]["data"];
    assert_eq!(data["contentMediaType"], "application/json", "{data:#}");
    assert_eq!(
        data["contentSchema"]["$ref"],
        "#/components/schemas/SubscriptionData"
    );
    (event, &data["contentSchema"])
}

/// An SSE event as its fields: `data` the text that was sent.
fn sse_fields(id: Option<u64>, event_type: &str, data: &Value) -> Value {
    let mut fields = json!({"event": event_type, "data": data.to_string()});
    if let Some(id) = id {
        fields["id"] = json!(id.to_string());
    }
    fields
}

/// Whether `value` has the shape `schema` gives it: each field sent is described and each
/// required one sent, a map's values each as described; an object described without
/// properties is not looked into.
fn conforms(document: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    if let Some(reference) = schema["$ref"].as_str() {
        return conforms(document, resolve(document, reference), value, at);
    }
    if let Some(parts) = schema["allOf"].as_array() {
        return all_of(document, parts, value, at);
    }
    if let Some(choices) = schema["anyOf"].as_array() {
        return any_of(document, choices.iter(), value, at);
    }
    if let Some(choices) = schema["oneOf"].as_array() {
        // A choice tagged otherwise (an event's `type`) is no candidate: its mismatch is noise.
        let tagged_so = |choice: &&Value| {
            choice["properties"].as_object().is_none_or(|properties| {
                properties.iter().all(|(name, property)| {
                    match property["enum"].as_array().map(Vec::as_slice) {
                        Some([tag]) => value.get(name).is_none_or(|sent| sent == tag),
                        _ => true,
                    }
                })
            })
        };
        let candidates: Vec<&Value> = choices.iter().filter(tagged_so).collect();
        if candidates.is_empty() {
            return Err(format!("{at}: tagged as none of the choices described"));
        }
        return any_of(document, candidates, value, at);
    }
    let json_type = match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_u64() || n.is_i64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    let types: Vec<&str> = match &schema["type"] {
        Value::String(one) => vec![one.as_str()],
        Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
        // `{}`: any JSON at all (what another application appended).
        _ if schema
            .as_object()
            .is_some_and(|s| s.keys().all(|k| k == "description")) =>
        {
            return Ok(())
        }
        _ => return Err(format!("{at}: the document gives no type")),
    };
    if !types.contains(&json_type) {
        return Err(format!("{at}: {json_type} sent, {types:?} described"));
    }
    if let Some(allowed) = schema["enum"].as_array() {
        if !allowed.contains(value) {
            return Err(format!("{at}: {value} is not among {allowed:?}"));
        }
    }
    match value {
        Value::Array(items) => items.iter().enumerate().try_for_each(|(i, item)| {
            conforms(document, &schema["items"], item, &format!("{at}[{i}]"))
        }),
        Value::Object(fields) => {
            if schema["additionalProperties"].is_object() {
                return fields.iter().try_for_each(|(name, field)| {
                    let each = &schema["additionalProperties"];
                    conforms(document, each, field, &format!("{at}.{name}"))
                });
            }
            let Some(properties) = schema["properties"].as_object() else {
                return Ok(());
            };
            if let Some(extra) = fields.keys().find(|name| !properties.contains_key(*name)) {
                return Err(format!("{at}.{extra}: sent, not described"));
            }
            let required = schema["required"].as_array().into_iter().flatten();
            if let Some(missing) = required
                .filter_map(Value::as_str)
                .find(|name| !fields.contains_key(*name))
            {
                return Err(format!("{at}.{missing}: required, not sent"));
            }
            fields.iter().try_for_each(|(name, field)| {
                conforms(document, &properties[name], field, &format!("{at}.{name}"))
            })
        }
        _ => Ok(()),
    }
}

/// Whether `value` has one of the shapes `choices` give it; if none, why not for each.
fn any_of<'a>(
    document: &Value,
    choices: impl IntoIterator<Item = &'a Value>,
    value: &Value,
    at: &str,
) -> Result<(), String> {
    let mut mismatches = Vec::new();
    for choice in choices {
        match conforms(document, choice, value, at) {
            Ok(()) => return Ok(()),
            Err(mismatch) => mismatches.push(mismatch),
        }
    }
    Err(mismatches.join("; "))
}

/// `allOf`: each field sent is described by some part, and each part holds for the fields it
/// describes (so that one part's fields are not "not described" to another).
fn all_of(document: &Value, parts: &[Value], value: &Value, at: &str) -> Result<(), String> {
    let Value::Object(fields) = value else {
        return parts
            .iter()
            .try_for_each(|part| conforms(document, part, value, at));
    };
    let named: Vec<Vec<String>> = parts.iter().map(|p| names(document, p)).collect();
    if let Some(extra) = fields
        .keys()
        .find(|f| !named.iter().flatten().any(|n| n == *f))
    {
        return Err(format!("{at}.{extra}: sent, not described"));
    }
    parts.iter().zip(&named).try_for_each(|(part, names)| {
        let own: serde_json::Map<String, Value> = fields
            .iter()
            .filter(|(name, _)| names.contains(name))
            .map(|(name, field)| (name.clone(), field.clone()))
            .collect();
        conforms(document, part, &Value::Object(own), at)
    })
}

/// The property names `schema` may describe, through references and choices.
fn names(document: &Value, schema: &Value) -> Vec<String> {
    if let Some(reference) = schema["$ref"].as_str() {
        return names(document, resolve(document, reference));
    }
    let mut found: Vec<String> = schema["properties"]
        .as_object()
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default();
    for combined in ["allOf", "anyOf", "oneOf"] {
        for part in schema[combined].as_array().into_iter().flatten() {
            found.extend(names(document, part));
        }
    }
    found
}

/// A client that validates against the document refuses what the service would refuse, and
/// only that: the document's limits are the domain's constants, and a place at each limit is
/// taken while one past it is refused.
#[tokio::test]
async fn the_documents_limits_are_the_services() {
    use ledger_domain::*;
    let server = Server::start();
    let document = openapi(&server).await;
    let schemas = &document["components"]["schemas"];
    let text =
        |chars: usize| -> Value { json!({ "minLength": 1, "maxLength": chars, "pattern": "\\S" }) };
    let amount = json!({ "maxLength": AMOUNT_TEXT_CHARS_MAX, "pattern": "^[0-9]+(\\.[0-9]+)?$" });
    let days = |min: u32, max: u32| json!({ "minimum": min, "maximum": max });
    let expected = [
        ("PlaceBody", "title", text(TITLE_CHARS_MAX)),
        ("PlaceBody", "price", amount.clone()),
        ("PlaceBody", "currency", json!({ "pattern": "^[A-Z]{3}$" })),
        ("PlaceBody", "delivery_days", days(1, DELIVERY_DAYS_MAX)),
        ("ReasonBody", "reason", text(REASON_CHARS_MAX)),
        (
            "DeliverBody",
            "message",
            json!({ "maxLength": REASON_CHARS_MAX }),
        ),
        (
            "AcceptRevisionBody",
            "delivery_days",
            days(1, DELIVERY_DAYS_MAX),
        ),
        (
            "ExtraBody",
            "description",
            text(EXTRA_DESCRIPTION_CHARS_MAX),
        ),
        ("ExtraBody", "price", amount.clone()),
        ("ExtraBody", "extra_days", days(0, EXTRA_DAYS_MAX)),
        ("RefundBody", "amount", amount.clone()),
        ("RefundBody", "reason", text(REASON_CHARS_MAX)),
        ("ResolveBody", "refund", amount),
        ("ResolveBody", "note", text(REASON_CHARS_MAX)),
        (
            "ReviewBody",
            "rating",
            json!({ "minimum": RATING_MIN, "maximum": RATING_MAX }),
        ),
        (
            "ReviewBody",
            "comment",
            json!({ "maxLength": REVIEW_COMMENT_CHARS_MAX }),
        ),
    ];
    for (schema, property, keywords) in expected {
        let documented = &schemas[schema]["properties"][property];
        for (keyword, value) in keywords.as_object().expect("keywords") {
            assert_eq!(
                &documented[keyword], value,
                "{schema}.{property}.{keyword}: {documented}"
            );
        }
    }
    let command_paths = command_routes()
        .into_iter()
        .map(|route| format!("/orders/{{id}}/{}", route.action))
        .chain(["/orders".to_owned()]);
    for path in command_paths {
        let parameters = document["paths"][&path]["post"]["parameters"]
            .as_array()
            .unwrap_or_else(|| panic!("{path} has no parameters"));
        let key = parameters
            .iter()
            .find(|p| p["name"] == "Idempotency-Key")
            .expect("Idempotency-Key");
        assert_eq!(key["schema"]["maxLength"], 255, "{path}");
        assert_eq!(key["schema"]["minLength"], 1, "{path}");
        for header in parameters.iter().filter(|p| p["in"] == "header") {
            assert_eq!(
                header["schema"]["type"], "string",
                "a header is never null: {path} {header}"
            );
        }
    }
    assert_eq!(
        schemas["ExtraBody"]["properties"]["kind"]["enum"],
        json!(["option", "custom_offer"])
    );

    let (buyer, seller) = (user("buyer"), user("seller"));
    let place = |title: String, days: u32| {
        json!({ "seller_id": seller.id, "title": title, "price": "10.00",
                "currency": "EUR", "delivery_days": days })
    };
    for (body, taken) in [
        (place("t".repeat(TITLE_CHARS_MAX), DELIVERY_DAYS_MAX), true),
        (place("t".repeat(TITLE_CHARS_MAX + 1), 1), false),
        (place("t".to_owned(), DELIVERY_DAYS_MAX + 1), false),
        (place("t".to_owned(), 0), false),
        (place(" ".to_owned(), 1), false),
    ] {
        let reply = server.post(&buyer, "/orders", body.clone()).await;
        assert_eq!(reply.status.is_success(), taken, "{body}: {}", reply.body);
    }
    let states = document["paths"]["/orders"]["get"]["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .find(|p| p["name"] == "state")
        .and_then(|p| p["schema"]["enum"].as_array().cloned())
        .expect("the states listed");
    assert_eq!(states.len(), 8, "{states:?}");
    for state in states {
        let state = state.as_str().expect("a name");
        let reply = server.get(&buyer, &format!("/orders?state={state}")).await;
        assert_eq!(reply.status, StatusCode::OK, "{state}: {}", reply.body);
    }
    let key = "k".repeat(256);
    let reply = server
        .send(
            server
                .client()
                .post(server.url("/orders"))
                .bearer_auth(&buyer.token)
                .header("Idempotency-Key", key)
                .json(&place("t".to_owned(), 1)),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
}

/// A generated client checks a query's integers against their documented format; the
/// service must take every number the format allows and refuse those past it.
#[tokio::test]
async fn a_querys_positions_and_page_sizes_are_bounded_as_documented() {
    let server = Server::start();
    let document = openapi(&server).await;
    let finance = user("finance");
    let wallet = format!("/wallets/{}", finance.id);
    let documented = |path: &str, name: &str| -> Value {
        let template = if path == wallet {
            "/wallets/{user_id}"
        } else {
            path
        };
        document["paths"][template]["get"]["parameters"]
            .as_array()
            .and_then(|parameters| parameters.iter().find(|p| p["name"] == name))
            .map(|p| p["schema"].clone())
            .unwrap_or_else(|| panic!("{path} documents no {name}"))
    };
    let bounds = [
        (
            "from",
            "int64",
            0,
            u64::try_from(i64::MAX).expect("positive"),
        ),
        // A page of at most none would have to be empty: the smallest is 1.
        (
            "limit",
            "int32",
            1,
            u64::try_from(i32::MAX).expect("positive"),
        ),
    ];
    let reads = [
        ("/journal", &["from", "limit"][..]),
        (&wallet, &["from", "limit"][..]),
        ("/orders", &["limit"][..]),
        ("/disputes", &["limit"][..]),
        ("/escrow/orders", &["limit"][..]),
    ];
    for (path, names) in reads {
        for name in names {
            let (_, format, smallest, largest) = bounds
                .iter()
                .find(|(bounded, ..)| bounded == name)
                .expect("a bound");
            let schema = documented(path, name);
            assert_eq!(schema["format"], *format, "{path} {name}: {schema}");
            assert_eq!(schema["minimum"], *smallest, "{path} {name}: {schema}");
            for taken in [smallest, largest] {
                let reply = server
                    .get(&finance, &format!("{path}?{name}={taken}"))
                    .await;
                assert_eq!(
                    reply.status,
                    StatusCode::OK,
                    "{path} {name}={taken}: {}",
                    reply.body
                );
            }
            let past = [smallest.checked_sub(1), largest.checked_add(1)];
            for refused in past.into_iter().flatten() {
                server
                    .get(&finance, &format!("{path}?{name}={refused}"))
                    .await
                    .problem(StatusCode::BAD_REQUEST, "invalid_query");
            }
        }
    }
}
