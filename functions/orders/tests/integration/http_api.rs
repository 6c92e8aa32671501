//! The orders HTTP API driven with real API Gateway v2 payloads (the `events/` fixtures), on the
//! in-memory store.

use local_aws::fixtures::ORDER_ID;
use std::sync::Arc;

use axum::body::Body;
use http::{Request, StatusCode};
use orders::adapters::memory::InMemoryOrderStore;
use orders::domain::{Order, OrderStatus, PlaceOrderRequest, RequestedItem};
use orders::http::{OrderView, router};
use orders::service::OrderService;
use serde_json::{Value, json};
use shared_core::CorrelationId;
use shared_core::OrderId;

fn fixture(name: &str) -> String {
    local_aws::fixtures::text("orders-api", name).unwrap()
}

fn lambda_request(name: &str) -> lambda_http::Request {
    local_aws::fixtures::http("orders-api", name).unwrap()
}

struct Api {
    store: Arc<InMemoryOrderStore>,
    service: OrderService,
}

impl Api {
    fn new() -> Self {
        let store = Arc::new(InMemoryOrderStore::new());
        Self { service: OrderService::new(store.clone()), store }
    }

    async fn send<B>(&self, request: Request<B>) -> (StatusCode, http::HeaderMap, Value)
    where
        B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<axum::BoxError>,
    {
        local_aws::fixtures::send(router(self.service.clone()), request).await
    }

    /// `POST /orders` with `body`, as API Gateway (HTTP API, payload v2) delivers it: the
    /// place-order fixture with its body replaced and no idempotency key.
    async fn post_json(&self, body: &str) -> (StatusCode, http::HeaderMap, Value) {
        let mut event: Value = serde_json::from_str(&fixture("place-order.json")).unwrap();
        event["body"] = Value::String(body.to_owned());
        event["headers"].as_object_mut().unwrap().remove("idempotency-key");
        self.send(lambda_http::request::from_str(&event.to_string()).expect("a valid API Gateway v2 event")).await
    }
}

fn assert_problem(status: StatusCode, headers: &http::HeaderMap, body: &Value, expected: StatusCode) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(headers["content-type"], "application/problem+json");
    assert_eq!(body["status"], expected.as_u16());
}

fn invalid_names(body: &Value) -> Vec<String> {
    body["invalid-params"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn place_order_fixture_creates_a_pending_order_with_location() {
    let api = Api::new();
    let (status, headers, body) = api.send(lambda_request("place-order.json")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["id"].as_str().unwrap();
    assert_eq!(headers["location"], format!("/orders/{id}"));
    assert_eq!(headers["x-correlation-id"], "demo-correlation-1");
    assert_eq!(body["status"], "PENDING");
    assert_eq!(body["lines"], json!([{"sku": "SKU-RED-MUG", "quantity": 2}, {"sku": "SKU-BLUE-TEE", "quantity": 1}]));
    assert!(body["created_at"].as_str().unwrap().ends_with('Z'));
    let outbox = api.store.outbox();
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0].entry.detail_type, "OrderCreated");
    let detail: Value = serde_json::from_str(&outbox[0].entry.detail).unwrap();
    assert_eq!(detail["aggregate_id"], id);
    assert_eq!(detail["correlation_id"], "demo-correlation-1");
}

#[tokio::test]
async fn the_same_idempotency_key_and_body_returns_the_first_order_once() {
    let api = Api::new();
    let (_, _, first) = api.send(lambda_request("place-order.json")).await;
    let (status, headers, second) = api.send(lambda_request("place-order.json")).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(headers["idempotent-replayed"], "true");
    assert_eq!(first, second);
    assert_eq!(api.store.outbox().len(), 1, "a replay writes no second event");

    let mut other: Value = serde_json::from_str(&fixture("place-order.json")).unwrap();
    other["body"] =
        json!(r#"{"customer_id":"cust-42","payment_method":"pm_card_visa","items":[{"sku":"OTHER","quantity":1}]}"#);
    let (status, headers, body) = api.send(lambda_http::request::from_str(&other.to_string()).unwrap()).await;
    assert_problem(status, &headers, &body, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn get_order_fixture_finds_the_order_and_unknown_ids_are_404() {
    let api = Api::new();
    let (status, headers, body) = api.send(lambda_request("get-order.json")).await;
    assert_problem(status, &headers, &body, StatusCode::NOT_FOUND);

    // Store an order under the fixture's id, through the service's port.
    let request = PlaceOrderRequest {
        customer_id: "cust-42".into(),
        payment_method: "pm_card_visa".into(),
        items: vec![RequestedItem { sku: "SKU-RED-MUG".into(), quantity: 2 }],
    };
    let mut order = Order::place(request.validate().unwrap(), chrono::Utc::now());
    order.id = OrderId::parse(ORDER_ID).unwrap();
    orders::ports::OrderStore::create(api.store.as_ref(), &order, &[], None).await.unwrap();
    let (status, _, body) = api.send(lambda_request("get-order.json")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["id"], ORDER_ID);
    assert_eq!(body["status"], "PENDING");
}

/// `POST /orders` with an idempotency key and this body, as the place-order fixture.
fn keyed_order(body: &Value, key: &str) -> lambda_http::Request {
    let mut event: Value = serde_json::from_str(&fixture("place-order.json")).unwrap();
    event["body"] = Value::String(body.to_string());
    event["headers"]["idempotency-key"] = Value::String(key.to_owned());
    lambda_http::request::from_str(&event.to_string()).unwrap()
}

#[tokio::test]
async fn idempotency_keys_are_per_customer_the_same_key_from_two_customers_makes_two_orders() {
    let api = Api::new();
    let order = |customer: &str| {
        json!({"customer_id": customer, "payment_method": "pm_card_visa",
        "items": [{"sku": "SKU-RED-MUG", "quantity": 1}]})
    };
    let (status, _, first) = api.send(keyed_order(&order("alice"), "shared-key")).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let (status, headers, second) = api.send(keyed_order(&order("bob"), "shared-key")).await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    assert!(headers.get("idempotent-replayed").is_none(), "bob's key is not alice's");
    assert_ne!(first["id"], second["id"]);
    assert_eq!((first["customer_id"].as_str(), second["customer_id"].as_str()), (Some("alice"), Some("bob")));
    // Each customer's own repeat is still a replay of their own order.
    let (_, headers, again) = api.send(keyed_order(&order("bob"), "shared-key")).await;
    assert_eq!((headers["idempotent-replayed"].to_str().unwrap(), &again["id"]), ("true", &second["id"]));
    // A customer id and key cannot be spelled as another pair's.
    let (_, headers, third) = api.send(keyed_order(&order("a#b"), "c")).await;
    let (_, headers2, fourth) = api.send(keyed_order(&order("a"), "b#c")).await;
    assert!(headers.get("idempotent-replayed").is_none() && headers2.get("idempotent-replayed").is_none());
    assert_ne!(third["id"], fourth["id"]);
    assert_eq!(api.store.outbox().len(), 4);
}

#[tokio::test]
async fn a_read_scoped_to_a_customer_is_404_for_another_customers_order() {
    let api = Api::new();
    let body = json!({"customer_id": "alice", "payment_method": "pm_card_visa",
        "items": [{"sku": "SKU-RED-MUG", "quantity": 1}]});
    let (_, _, placed) = api.send(keyed_order(&body, "k1")).await;
    let id = placed["id"].as_str().unwrap();
    let get = |query: &str| Request::get(format!("/orders/{id}{query}")).body(Body::empty()).unwrap();
    let (status, _, own) = api.send(get("?customer_id=alice")).await;
    assert_eq!((status, &own["id"]), (StatusCode::OK, &placed["id"]));
    let (status, headers, other) = api.send(get("?customer_id=bob")).await;
    assert_problem(status, &headers, &other, StatusCode::NOT_FOUND);
    let missing = OrderId::new();
    let (_, _, unknown) =
        api.send(Request::get(format!("/orders/{missing}?customer_id=bob")).body(Body::empty()).unwrap()).await;
    // Not one word tells "someone else's" from "no such order" apart but the id itself.
    assert_eq!(other["title"], unknown["title"]);
    assert_eq!(
        other["detail"].as_str().unwrap().replace(id, "ID"),
        unknown["detail"].as_str().unwrap().replace(&missing.to_string(), "ID")
    );
    let (status, _, unscoped) = api.send(get("")).await;
    assert_eq!((status, &unscoped["id"]), (StatusCode::OK, &placed["id"]), "an unscoped (admin) read finds it");
    let (status, headers, body) = api.send(get("?customer=alice")).await;
    assert_problem(status, &headers, &body, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn malformed_order_ids_are_400() {
    let api = Api::new();
    for bad in ["not-a-uuid", "0193a3c25f00700080000000000c0de0", "%20"] {
        let (status, headers, body) =
            api.send(Request::get(format!("/orders/{bad}")).body(Body::empty()).unwrap()).await;
        assert_problem(status, &headers, &body, StatusCode::BAD_REQUEST);
        assert_eq!(invalid_names(&body), ["id"]);
    }
}

#[tokio::test]
async fn list_orders_fixture_pages_newest_first_with_an_opaque_cursor() {
    let api = Api::new();
    let correlation = CorrelationId::generate();
    let mut ids = Vec::new();
    for i in 0..25 {
        let request = PlaceOrderRequest {
            customer_id: "cust-42".into(),
            payment_method: "pm_card_visa".into(),
            items: vec![RequestedItem { sku: format!("SKU-{i}"), quantity: 1 }],
        };
        ids.push(api.service.place_order(request, &correlation, None).await.unwrap().order.id.to_string());
    }
    ids.reverse();
    let (status, _, page1) = api.send(lambda_request("list-orders.json")).await;
    assert_eq!(status, StatusCode::OK, "{page1}");
    let page_ids = |page: &Value| -> Vec<String> {
        page["orders"].as_array().unwrap().iter().map(|o| o["id"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(page_ids(&page1), ids[..10]);
    let mut seen = page_ids(&page1);
    let mut cursor = page1["next_cursor"].as_str().unwrap().to_owned();
    loop {
        let (status, _, page) = api
            .send(
                Request::get(format!("/orders?customer_id=cust-42&limit=10&cursor={cursor}"))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        seen.extend(page_ids(&page));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => break,
        }
    }
    assert_eq!(seen, ids, "every order exactly once, newest first");
}

#[tokio::test]
async fn list_orders_rejects_missing_customer_bad_limit_and_forged_cursor() {
    let api = Api::new();
    for (uri, field) in [
        ("/orders", "customer_id"),
        ("/orders?customer_id=c&limit=0", "limit"),
        ("/orders?customer_id=c&limit=101", "limit"),
        ("/orders?customer_id=c&limit=ten", "limit"),
        ("/orders?customer_id=c&cursor=Zm9yZ2Vk", "cursor"),
    ] {
        let (status, headers, body) = api.send(Request::get(uri).body(Body::empty()).unwrap()).await;
        assert_problem(status, &headers, &body, StatusCode::BAD_REQUEST);
        assert_eq!(invalid_names(&body), [field], "{uri}");
    }
}

#[tokio::test]
async fn invalid_bodies_are_400_naming_the_field_and_write_nothing() {
    let api = Api::new();
    let cases = [
        (r#"{"customer_id":"c","payment_method":"pm_card_visa","items":[]}"#, vec!["items"]),
        (
            r#"{"customer_id":"c","payment_method":"pm_card_visa","items":[{"sku":"a","quantity":0}]}"#,
            vec!["items[0].quantity"],
        ),
        (
            r#"{"customer_id":"c","payment_method":"pm_card_visa","items":[{"sku":"a","quantity":-1}]}"#,
            vec!["items[0].quantity"],
        ),
        (
            r#"{"customer_id":"c","payment_method":"pm_card_visa","items":[{"sku":"a","quantity":"2"}]}"#,
            vec!["items[0].quantity"],
        ),
        (
            r#"{"customer_id":"c","payment_method":"4111111111111111","items":[{"sku":"a","quantity":1}]}"#,
            vec!["payment_method"],
        ),
        (
            r#"{"customer_id":"c","payment_method":"pm_card_visa","items":[{"sku":"a","quantity":1,"price":100}]}"#,
            vec!["items[0].price"],
        ),
        (
            r#"{"customer_id":"c","payment_method":"pm_card_visa","total":5,"items":[{"sku":"a","quantity":1}]}"#,
            vec!["total"],
        ),
        (r#"{"payment_method":"pm_card_visa","items":[{"sku":"a","quantity":1}]}"#, vec!["customer_id"]),
        (
            r#"{"customer_id":"","payment_method":"pm_x","items":[{"sku":"a","quantity":1},{"sku":"a","quantity":1}]}"#,
            vec!["customer_id"],
        ),
    ];
    for (body, fields) in cases {
        let (status, headers, problem) = api.post_json(body).await;
        assert_problem(status, &headers, &problem, StatusCode::BAD_REQUEST);
        assert_eq!(invalid_names(&problem), fields, "{body}");
    }
    assert!(api.store.outbox().is_empty());
}

/// 400 is a field breaking its own rule (what the public OpenAPI schema states); a sku on two
/// lines is well-formed but breaks a rule across lines, so it is 422 and names the line.
#[tokio::test]
async fn a_sku_on_two_lines_is_422_naming_the_line_and_writes_nothing() {
    let api = Api::new();
    let body = r#"{"customer_id":"c","payment_method":"pm_card_visa","items":[{"sku":"a","quantity":1},{"sku":"a","quantity":2}]}"#;
    let (status, headers, problem) = api.post_json(body).await;
    assert_problem(status, &headers, &problem, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["type"], "https://errors.shop.example/broken-rule");
    assert_eq!(invalid_names(&problem), ["items[1].sku"]);
    assert!(api.store.outbox().is_empty());
}

#[tokio::test]
async fn broken_json_wrong_type_oversized_body_unknown_route_and_method() {
    let api = Api::new();
    let (status, headers, body) = api.post_json("{\"customer_id\":").await;
    assert_problem(status, &headers, &body, StatusCode::BAD_REQUEST);

    let (status, headers, body) =
        api.send(Request::post("/orders").header("content-type", "text/plain").body(Body::from("hi")).unwrap()).await;
    assert_problem(status, &headers, &body, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let huge = format!(
        r#"{{"customer_id":"{}","payment_method":"pm_card_visa","items":[]}}"#,
        "x".repeat(shared::http::MAX_BODY_BYTES)
    );
    let (status, headers, body) = api.post_json(&huge).await;
    assert_problem(status, &headers, &body, StatusCode::PAYLOAD_TOO_LARGE);

    let (status, headers, body) = api.send(Request::get("/nowhere").body(Body::empty()).unwrap()).await;
    assert_problem(status, &headers, &body, StatusCode::NOT_FOUND);

    let (status, headers, body) = api.send(Request::delete("/orders").body(Body::empty()).unwrap()).await;
    assert_problem(status, &headers, &body, StatusCode::METHOD_NOT_ALLOWED);
    assert!(headers["allow"].to_str().unwrap().contains("POST"), "{headers:?}");
}

#[tokio::test]
async fn every_api_fixture_is_routed_and_answered_without_a_server_error() {
    let dir = format!("{}/../../events/orders-api", env!("CARGO_MANIFEST_DIR"));
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        let (status, headers, body) = Api::new().send(lambda_request(&name)).await;
        assert!(status.is_success() || status == StatusCode::NOT_FOUND, "{name}: {status} {body}");
        if status == StatusCode::NOT_FOUND {
            assert_eq!(body["type"], "https://errors.shop.example/not-found", "{name} must hit a route");
        }
        assert_eq!(headers["x-correlation-id"], "demo-correlation-1", "{name}");
        count += 1;
    }
    assert!(count >= 3, "one fixture per route");
}

#[tokio::test]
async fn a_status_read_back_matches_the_domain() {
    let api = Api::new();
    let (_, _, body) = api.send(lambda_request("place-order.json")).await;
    let order: OrderView = serde_json::from_value(body).unwrap();
    assert_eq!(order.status, OrderStatus::Pending);
}

/// The API answers a view, not the stored order: the optimistic lock's `version` stays inside.
#[tokio::test]
async fn answers_carry_the_order_but_not_its_storage() {
    let api = Api::new();
    let (_, _, placed) = api.send(lambda_request("place-order.json")).await;
    let mut stored: Order = Order::place(
        PlaceOrderRequest {
            customer_id: "cust-42".into(),
            payment_method: "pm_card_visa".into(),
            items: vec![RequestedItem { sku: "SKU-RED-MUG".into(), quantity: 2 }],
        }
        .validate()
        .unwrap(),
        chrono::Utc::now(),
    );
    stored.id = OrderId::parse(ORDER_ID).unwrap();
    orders::ports::OrderStore::create(api.store.as_ref(), &stored, &[], None).await.unwrap();
    let (status, _, read) = api.send(lambda_request("get-order.json")).await;
    assert_eq!(status, StatusCode::OK, "{read}");
    for body in [&placed, &read] {
        let fields: Vec<&str> = body.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            fields,
            ["created_at", "customer_id", "id", "lines", "payment_method", "status", "updated_at"],
            "{body}"
        );
    }
}
