//! What the gateway settles at the edge, before any downstream call: one spelling of an order
//! id, an idempotency key on every order it forwards, and problem+json for every request it
//! refuses.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use gateway::http::router;
use gateway::upstream::Upstreams;
use http::{HeaderMap, Request, StatusCode};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use local_aws::fixtures::ORDER_ID as ID;
const PLACE_ORDER: &str = r#"{"payment_method":"pm_card_visa","items":[{"sku":"SKU-MUG","quantity":2}]}"#;

/// The router as API Gateway's JWT authorizer feeds it: every request carries the claims of a
/// token of customer `c-1` (the customer of the orders below).
fn as_customer(router: axum::Router) -> axum::Router {
    router.layer(axum::middleware::map_request(|request: Request<Body>| async move {
        gateway::caller::with_claims(request, json!({"sub": "c-1"}))
    }))
}

struct Downstreams {
    orders: MockServer,
    inventory: MockServer,
    payments: MockServer,
}

impl Downstreams {
    async fn start() -> Self {
        Self {
            orders: MockServer::start().await,
            inventory: MockServer::start().await,
            payments: MockServer::start().await,
        }
    }

    fn vars(&self) -> HashMap<String, String> {
        let mut vars = HashMap::new();
        for (prefix, server) in [("ORDERS", &self.orders), ("INVENTORY", &self.inventory), ("PAYMENTS", &self.payments)]
        {
            vars.insert(format!("{prefix}_BASE_URL"), server.uri());
            vars.insert(format!("{prefix}_ATTEMPT_TIMEOUT_MS"), "200".to_owned());
            vars.insert(format!("{prefix}_TIMEOUT_MS"), "1500".to_owned());
            vars.insert(format!("{prefix}_RETRY_BASE_DELAY_MS"), "5".to_owned());
        }
        vars
    }

    fn gateway(&self) -> axum::Router {
        let vars = self.vars();
        as_customer(router(Upstreams::from_lookup(&move |name: &str| vars.get(name).cloned(), None).unwrap(), None))
    }

    fn gateway_with_saga(&self, saga: Arc<RecordingSaga>) -> axum::Router {
        let vars = self.vars();
        as_customer(router(
            Upstreams::from_lookup(&move |name: &str| vars.get(name).cloned(), None).unwrap().with_saga(saga),
            None,
        ))
    }

    async fn received(&self) -> usize {
        let mut n = 0;
        for server in [&self.orders, &self.inventory, &self.payments] {
            n += server.received_requests().await.unwrap().len();
        }
        n
    }
}

fn order() -> Value {
    json!({
        "id": ID, "customer_id": "c-1", "payment_method": "pm_card_visa",
        "lines": [{"sku": "SKU-MUG", "quantity": 2}], "status": "CONFIRMED",
        "created_at": "2026-11-27T08:00:00.000Z", "updated_at": "2026-11-27T08:00:01.000Z", "version": 2
    })
}

fn payment() -> Value {
    json!({
        "order_id": ID, "status": "CAPTURED", "amount": {"amount_minor": 2400, "currency": "EUR"},
        "payment_method": "pm_card_visa", "provider_payment_id": "pi_1",
        "created_at": "2026-11-27T08:00:00.500Z", "updated_at": "2026-11-27T08:00:00.900Z"
    })
}

fn reservation() -> Value {
    json!({
        "order_id": ID, "status": "COMMITTED", "lines": [{"sku": "SKU-MUG", "quantity": 2, "unit_price_minor": 1200}],
        "currency": "EUR", "total_minor": 2400,
        "created_at": "2026-11-27T08:00:00.200Z", "updated_at": "2026-11-27T08:00:01.000Z"
    })
}

/// Serves the order, its payment and its reservation under the canonical (lower-case) id only,
/// as the services store them.
async fn serve_canonical(d: &Downstreams) {
    for (server, route, body) in [
        (&d.orders, format!("/orders/{ID}"), order()),
        (&d.payments, format!("/payments/order/{ID}"), payment()),
        (&d.inventory, format!("/reservations/order/{ID}"), reservation()),
    ] {
        Mock::given(method("GET"))
            .and(path(route))
            .respond_with(ResponseTemplate::new(200).set_body_json(body))
            .mount(server)
            .await;
    }
}

/// A saga that is found only under the canonical id, and records what it was asked.
#[derive(Default)]
struct RecordingSaga(Mutex<Vec<String>>);

#[async_trait::async_trait]
impl gateway::saga::SagaProgress for RecordingSaga {
    async fn progress(&self, order_id: &str) -> Result<Option<gateway::saga::Progress>, String> {
        self.0.lock().unwrap().push(order_id.to_owned());
        Ok((order_id == ID)
            .then(|| gateway::saga::Progress { status: "SUCCEEDED".into(), step: Some("ConfirmOrder".into()) }))
    }
}

async fn send(router: &axum::Router, request: Request<Body>) -> (StatusCode, HeaderMap, Value) {
    local_aws::fixtures::send(router.clone(), request).await
}

async fn get(router: &axum::Router, uri: &str) -> (StatusCode, HeaderMap, Value) {
    send(router, Request::get(uri).body(Body::empty()).unwrap()).await
}

fn post_order(key: Option<&str>) -> Request<Body> {
    let mut request = Request::post("/api/orders").header("content-type", "application/json");
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    request.body(Body::from(PLACE_ORDER)).unwrap()
}

fn assert_problem(status: StatusCode, headers: &HeaderMap, body: &Value, expected: StatusCode, what: &str) {
    assert_eq!(status, expected, "{what}: {body}");
    assert_eq!(headers.get("content-type").map(|v| v.to_str().unwrap()), Some("application/problem+json"), "{what}");
    assert_eq!(body["status"], expected.as_u16(), "{what}: {body}");
    assert!(headers.contains_key("x-correlation-id"), "{what}: every answer carries X-Correlation-Id");
}

/// Regression: an upper-case id reached orders (which lower-cases it) but went raw to payments,
/// inventory and Step Functions, and the answer was a 200 with every part null and nothing
/// degraded: a wrong answer presented as whole.
#[tokio::test]
async fn an_order_id_in_upper_case_is_the_same_order_everywhere() {
    let d = Downstreams::start().await;
    serve_canonical(&d).await;
    // Orders, like the real one, takes the id in either case; the others look it up as stored.
    Mock::given(method("GET"))
        .and(wiremock::matchers::path_regex(format!("(?i)^/orders/{ID}$")))
        .respond_with(ResponseTemplate::new(200).set_body_json(order()))
        .mount(&d.orders)
        .await;
    let saga = Arc::new(RecordingSaga::default());
    let gateway = d.gateway_with_saga(saga.clone());
    let (status, _, body) = get(&gateway, &format!("/api/orders/{}", ID.to_ascii_uppercase())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["order"]["id"], ID);
    assert_eq!(body["payment"]["status"], "CAPTURED", "{body}");
    assert_eq!(body["reservation"]["status"], "COMMITTED", "{body}");
    assert_eq!(body["saga"]["status"], "SUCCEEDED", "{body}");
    assert_eq!(body["degraded"], json!([]));
    assert_eq!(*saga.0.lock().unwrap(), [ID]);
    for server in [&d.orders, &d.payments, &d.inventory] {
        for request in server.received_requests().await.unwrap() {
            assert!(request.url.path().ends_with(ID), "{} got {}", server.uri(), request.url.path());
        }
    }
}

/// Only the hyphenated form (RFC 4122's, which JSON Schema's `uuid` format names) is an order
/// id; other spellings a UUID parser would take are refused before any call.
#[tokio::test]
async fn an_id_that_is_not_a_hyphenated_uuid_is_refused_at_the_edge() {
    let d = Downstreams::start().await;
    serve_canonical(&d).await;
    let gateway = d.gateway();
    for id in [
        "not-an-id",
        "0193a3c2%205f00-7000-8000-00000000c0de",
        "0193a3c25f007000800000000000c0de",
        "%7B0193a3c2-5f00-7000-8000-00000000c0de%7D",
        "urn:uuid:0193a3c2-5f00-7000-8000-00000000c0de",
        "0193a3c2-5f00-7000-8000-0000-0000c0de",
        "0193a3c2-5f00-7000-8000-00000000c0dg",
        "0193a3c2-5f00-7000-8000-00000000c0de0",
    ] {
        let (status, headers, body) = get(&gateway, &format!("/api/orders/{id}")).await;
        assert_problem(status, &headers, &body, StatusCode::BAD_REQUEST, id);
        assert_eq!(body["invalid-params"][0]["name"], "id", "{id}: {body}");
    }
    assert_eq!(d.received().await, 0, "nothing reached a service");
}

fn keys(requests: &[wiremock::Request]) -> Vec<Option<String>> {
    requests.iter().map(|r| r.headers.get("idempotency-key").map(|v| v.to_str().unwrap().to_owned())).collect()
}

/// Regression: without a client key, a POST was sent once without a key, so the gateway could
/// not retry it and a timeout could not be told apart from a lost order. Now the gateway makes a
/// key per client request: its retries of that request are replays, never a second order, and a
/// 503 tells the client the key to retry with.
#[tokio::test]
async fn an_order_without_a_key_is_forwarded_with_one_the_gateway_made() {
    let d = Downstreams::start().await;
    Mock::given(method("POST")).and(path("/orders")).respond_with(ResponseTemplate::new(500)).mount(&d.orders).await;
    let gateway = d.gateway();
    let (status, headers, body) = send(&gateway, post_order(None)).await;
    assert_problem(status, &headers, &body, StatusCode::SERVICE_UNAVAILABLE, "orders failing");
    let first = keys(&d.orders.received_requests().await.unwrap());
    assert!(first.len() > 1, "the gateway retries its keyed POST: {first:?}");
    let key = first[0].clone().expect("every POST carries a key");
    assert!(first.iter().all(|k| k.as_deref() == Some(key.as_str())), "one key for all retries: {first:?}");
    assert!(uuid::Uuid::try_parse(&key).is_ok(), "a fresh UUID: {key}");
    assert_eq!(headers["idempotency-key"], key.as_str(), "the 503 names the key to retry with");

    // Another client request is another order: another key.
    send(&gateway, post_order(None)).await;
    let all = keys(&d.orders.received_requests().await.unwrap());
    let second = all[first.len()].clone().expect("a key");
    assert_ne!(second, key);

    // The client's own key is the one used, and the one named.
    let before = all.len();
    let (_, headers, _) = send(&gateway, post_order(Some("client-key-1"))).await;
    let all = keys(&d.orders.received_requests().await.unwrap());
    assert!(all[before..].iter().all(|k| k.as_deref() == Some("client-key-1")), "{all:?}");
    assert_eq!(headers["idempotency-key"], "client-key-1");
}

/// The first attempt times out after orders placed the order; the retry, with the same key, is
/// orders' replay of it: one order, and the client (which sent no key) is not told about a
/// replay of a request it made once.
#[tokio::test]
async fn a_retry_after_a_timeout_gets_the_order_placed_by_the_first_attempt() {
    let d = Downstreams::start().await;
    let placed = ResponseTemplate::new(201).set_body_json(order());
    Mock::given(method("POST"))
        .and(path("/orders"))
        .respond_with(placed.clone().set_delay(Duration::from_millis(400)))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&d.orders)
        .await;
    Mock::given(method("POST"))
        .and(path("/orders"))
        .respond_with(placed.insert_header("idempotent-replayed", "true"))
        .with_priority(2)
        .mount(&d.orders)
        .await;
    let (status, headers, body) = send(&d.gateway(), post_order(None)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["id"], ID);
    assert!(!headers.contains_key("idempotent-replayed"), "the client made one request and got one answer");
    let keys = keys(&d.orders.received_requests().await.unwrap());
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(keys[0].is_some() && keys[0] == keys[1], "{keys:?}");
}

/// An Idempotency-Key is 1 to 255 visible ASCII characters, once; anything else is a 400 before
/// any call (a key dropped or mangled would make a retry a second order).
#[tokio::test]
async fn a_key_that_is_not_1_to_255_visible_ascii_characters_is_refused() {
    let d = Downstreams::start().await;
    let gateway = d.gateway();
    let long = "k".repeat(256);
    for key in ["", " ", "two words", "tab\there", long.as_str()] {
        let (status, headers, body) = send(&gateway, post_order(Some(key))).await;
        assert_problem(status, &headers, &body, StatusCode::BAD_REQUEST, &format!("key {key:?}"));
        assert_eq!(body["invalid-params"][0]["name"], "Idempotency-Key", "{body}");
    }
    let twice = Request::post("/api/orders")
        .header("content-type", "application/json")
        .header("idempotency-key", "a")
        .header("idempotency-key", "b")
        .body(Body::from(PLACE_ORDER))
        .unwrap();
    let (status, headers, body) = send(&gateway, twice).await;
    assert_problem(status, &headers, &body, StatusCode::BAD_REQUEST, "two keys");
    assert_eq!(d.received().await, 0, "nothing reached a service");

    // The longest key and the literal `null` are keys like any other.
    Mock::given(method("POST"))
        .and(path("/orders"))
        .respond_with(ResponseTemplate::new(201).set_body_json(order()))
        .mount(&d.orders)
        .await;
    for key in ["k".repeat(255), "null".to_owned(), "!~".to_owned()] {
        let (status, _, body) = send(&gateway, post_order(Some(&key))).await;
        assert_eq!(status, StatusCode::CREATED, "{key}: {body}");
    }
}

/// Regression: `/api/orders/%FF` was axum's `text/plain` 400. Every way axum can refuse a
/// request is a problem document with the correlation id.
#[tokio::test]
async fn every_refusal_is_problem_json() {
    let d = Downstreams::start().await;
    let gateway = d.gateway();
    for uri in ["/api/orders/%FF", "/api/orders/%C3%28", "/api/products/%FF", "/api/products/a%80b"] {
        let (status, headers, body) = get(&gateway, uri).await;
        assert_problem(status, &headers, &body, StatusCode::BAD_REQUEST, uri);
    }
    let json = |body: &'static [u8]| {
        Request::post("/api/orders").header("content-type", "application/json").body(Body::from(body)).unwrap()
    };
    for (what, request, expected) in [
        ("broken JSON", json(b"{oops"), StatusCode::BAD_REQUEST),
        ("invalid UTF-8 in the body", json(b"{\"customer_id\":\"\xff\"}"), StatusCode::BAD_REQUEST),
        ("a wrong type", json(br#"{"customer_id":1,"payment_method":"pm_x","items":[]}"#), StatusCode::BAD_REQUEST),
        ("a JSON array", json(b"[]"), StatusCode::BAD_REQUEST),
        ("an empty body", json(b""), StatusCode::BAD_REQUEST),
        (
            "no content type",
            Request::post("/api/orders").body(Body::from(PLACE_ORDER)).unwrap(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "a content type that is not UTF-8",
            Request::post("/api/orders")
                .header("content-type", http::HeaderValue::from_bytes(b"application/\xffjson").unwrap())
                .body(Body::from(PLACE_ORDER))
                .unwrap(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "a body past the limit",
            Request::post("/api/orders")
                .header("content-type", "application/json")
                .body(Body::from(" ".repeat(shared::http::MAX_BODY_BYTES + 1)))
                .unwrap(),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            "an undeclared method",
            Request::put("/api/orders").body(Body::empty()).unwrap(),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            "an unknown method",
            Request::builder().method("BREW").uri(format!("/api/orders/{ID}")).body(Body::empty()).unwrap(),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        ("an unknown route", Request::get("/api/orders/a/b").body(Body::empty()).unwrap(), StatusCode::NOT_FOUND),
        ("an empty id", Request::get("/api/orders/").body(Body::empty()).unwrap(), StatusCode::NOT_FOUND),
    ] {
        let (status, headers, body) = send(&gateway, request).await;
        assert_problem(status, &headers, &body, expected, what);
        if expected == StatusCode::METHOD_NOT_ALLOWED {
            assert!(headers.contains_key("allow"), "{what}");
        }
    }
    assert_eq!(d.received().await, 0, "nothing reached a service");

    // The routes read no query: one that does not decode changes nothing.
    serve_canonical(&d).await;
    let (status, _, body) = get(&gateway, &format!("/api/orders/{ID}?x=%FF&%FF")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// A downstream 4xx is the client's answer only when it is a problem document with a status
/// this route documents; anything else is that service failing (API Gateway's own
/// `{"message":"Forbidden"}` for a bad signature is the gateway's fault, not the client's).
#[tokio::test]
async fn a_downstream_refusal_outside_the_contract_is_the_service_failing() {
    let d = Downstreams::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/orders/{ID}")))
        .respond_with(ResponseTemplate::new(403).set_body_json(json!({"message": "Forbidden"})))
        .mount(&d.orders)
        .await;
    Mock::given(method("POST"))
        .and(path("/orders"))
        .respond_with(ResponseTemplate::new(409).set_body_json(json!({
            "type": "https://errors.shop.example/conflict", "title": "Conflict", "status": 409, "detail": "x"
        })))
        .mount(&d.orders)
        .await;
    Mock::given(method("GET"))
        .and(path("/inventory/SKU-MUG"))
        .respond_with(ResponseTemplate::new(404).set_body_string("Not Found"))
        .mount(&d.inventory)
        .await;
    let gateway = d.gateway();
    let (status, headers, body) = get(&gateway, &format!("/api/orders/{ID}")).await;
    assert_problem(status, &headers, &body, StatusCode::SERVICE_UNAVAILABLE, "a 403 without a problem");
    let (status, headers, body) = send(&gateway, post_order(Some("k"))).await;
    assert_problem(status, &headers, &body, StatusCode::SERVICE_UNAVAILABLE, "an undocumented 409");
    let (status, headers, body) = get(&gateway, "/api/products/SKU-MUG").await;
    assert_problem(status, &headers, &body, StatusCode::SERVICE_UNAVAILABLE, "a 404 that is not a problem");
}

/// A part is "none yet" only when its service says so: a 404 problem document. A bare 404 (API
/// Gateway's `{"message":"Not Found"}` for a route it does not have) is the service failing, so
/// the part is named in `degraded` instead of passing for an order with no payment.
#[tokio::test]
async fn a_404_that_is_not_the_services_problem_degrades_the_part() {
    let d = Downstreams::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/orders/{ID}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(order()))
        .mount(&d.orders)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/payments/order/{ID}")))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({"message": "Not Found"})))
        .mount(&d.payments)
        .await;
    let none_yet = json!({
        "type": "https://errors.shop.example/not-found", "title": "Resource not found", "status": 404,
        "detail": format!("no reservation for order {ID}")
    });
    Mock::given(method("GET"))
        .and(path(format!("/reservations/order/{ID}")))
        .respond_with(ResponseTemplate::new(404).set_body_json(none_yet))
        .mount(&d.inventory)
        .await;
    let (status, _, body) = get(&d.gateway(), &format!("/api/orders/{ID}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["degraded"], json!(["payment"]), "{body}");
    assert_eq!((body["payment"].clone(), body["reservation"].clone()), (Value::Null, Value::Null));
}
