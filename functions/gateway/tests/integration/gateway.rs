//! The gateway against a wiremock server per downstream: aggregation in parallel, partial
//! failure (failing, slow, breaker open), orders unavailable, pass-through of answers and keys,
//! and bad input.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::body::Body;
use gateway::http::router;
use gateway::upstream::Upstreams;
use http::{Request, StatusCode};
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use local_aws::fixtures::ORDER_ID as ID;

struct Downstreams {
    orders: MockServer,
    inventory: MockServer,
    payments: MockServer,
}

async fn downstreams() -> Downstreams {
    Downstreams {
        orders: MockServer::start().await,
        inventory: MockServer::start().await,
        payments: MockServer::start().await,
    }
}

/// The gateway configured as the Lambda is, with short timeouts and small breaker windows.
fn gateway(d: &Downstreams) -> axum::Router {
    as_customer(unauthenticated(d))
}

/// The gateway as the Lambda is, with nothing in front: no authorizer's claims on any request.
fn unauthenticated(d: &Downstreams) -> axum::Router {
    let mut vars = HashMap::new();
    for (prefix, server) in [("ORDERS", &d.orders), ("INVENTORY", &d.inventory), ("PAYMENTS", &d.payments)] {
        vars.insert(format!("{prefix}_BASE_URL"), server.uri());
        vars.insert(format!("{prefix}_ATTEMPT_TIMEOUT_MS"), "200".to_owned());
        vars.insert(format!("{prefix}_TIMEOUT_MS"), "600".to_owned());
        vars.insert(format!("{prefix}_RETRY_BASE_DELAY_MS"), "5".to_owned());
        vars.insert(format!("{prefix}_BREAKER_WINDOW"), "4".to_owned());
        vars.insert(format!("{prefix}_BREAKER_MINIMUM_CALLS"), "4".to_owned());
        vars.insert(format!("{prefix}_BREAKER_OPEN_MS"), "60000".to_owned());
    }
    router(Upstreams::from_lookup(&move |name: &str| vars.get(name).cloned(), None).unwrap(), None)
}

/// `request` with the claims of a token for `sub` in `groups`, as API Gateway passes them.
fn from(sub: &str, groups: &[&str], request: Request<Body>) -> Request<Body> {
    let mut claims = json!({"sub": sub, "iss": "https://issuer.example", "exp": 4102444800u64});
    if !groups.is_empty() {
        claims["cognito:groups"] = json!(groups);
    }
    gateway::caller::with_claims(request, claims)
}

fn json_request(method: &str, uri: &str, body: Value) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

/// The router as API Gateway's JWT authorizer feeds it: every request carries the claims of a
/// token of customer `c-1` (the customer of the orders below).
fn as_customer(router: axum::Router) -> axum::Router {
    router.layer(axum::middleware::map_request(|request: Request<Body>| async move {
        gateway::caller::with_claims(request, json!({"sub": "c-1"}))
    }))
}

/// An order as the orders service answers it, plus a field outside the public contract (the
/// `version` orders answered before it had a view of its own): the gateway drops what it does not
/// know.
fn order() -> Value {
    json!({
        "id": ID, "customer_id": "c-1", "payment_method": "pm_card_visa",
        "lines": [{"sku": "SKU-MUG", "quantity": 2}], "status": "CONFIRMED",
        "created_at": "2026-11-27T08:00:00.000Z", "updated_at": "2026-11-27T08:00:01.000Z", "version": 2
    })
}

/// The order as the public API shows it: the contract's fields only.
fn public_order() -> Value {
    let mut order = order();
    order.as_object_mut().unwrap().remove("version");
    order
}

fn payment(status: &str) -> Value {
    json!({
        "order_id": ID, "status": status, "amount": {"amount_minor": 2400, "currency": "EUR"},
        "payment_method": "pm_card_visa", "provider_payment_id": "pi_1",
        "created_at": "2026-11-27T08:00:00.500Z", "updated_at": "2026-11-27T08:00:00.900Z"
    })
}

fn reservation(status: &str) -> Value {
    json!({
        "order_id": ID, "status": status, "lines": [{"sku": "SKU-MUG", "quantity": 2, "unit_price_minor": 1200}],
        "currency": "EUR", "total_minor": 2400,
        "created_at": "2026-11-27T08:00:00.200Z", "updated_at": "2026-11-27T08:00:01.000Z"
    })
}

fn product(sku: &str) -> Value {
    json!({
        "sku": sku, "name": "Mug", "price": {"amount_minor": 1200, "currency": "EUR"},
        "available": 3, "low_stock_threshold": 1
    })
}

const PLACE_ORDER: &str = r#"{"payment_method":"pm_card_visa","items":[{"sku":"SKU-MUG","quantity":2}]}"#;

/// How payments and inventory say they have none (yet): a 404 problem document.
fn none_yet() -> ResponseTemplate {
    ResponseTemplate::new(404).set_body_json(json!({
        "type": "https://errors.shop.example/not-found", "title": "Resource not found", "status": 404,
        "detail": "none for this order"
    }))
}

async fn serve(server: &MockServer, route: &str, response: ResponseTemplate) {
    Mock::given(method("GET")).and(path(route)).respond_with(response).mount(server).await;
}

async fn get(router: &axum::Router, uri: &str) -> (StatusCode, http::HeaderMap, Value) {
    local_aws::fixtures::send(router.clone(), Request::get(uri).body(Body::empty()).unwrap()).await
}

#[tokio::test]
async fn an_order_view_gathers_order_payment_and_reservation_in_parallel() {
    let d = downstreams().await;
    let slow = Duration::from_millis(150);
    serve(&d.orders, &format!("/orders/{ID}"), ResponseTemplate::new(200).set_body_json(order()).set_delay(slow)).await;
    serve(
        &d.payments,
        &format!("/payments/order/{ID}"),
        ResponseTemplate::new(200).set_body_json(payment("CAPTURED")).set_delay(slow),
    )
    .await;
    serve(
        &d.inventory,
        &format!("/reservations/order/{ID}"),
        ResponseTemplate::new(200).set_body_json(reservation("COMMITTED")).set_delay(slow),
    )
    .await;
    let started = Instant::now();
    let (status, headers, body) = get(&gateway(&d), &format!("/api/orders/{ID}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({
            "order": public_order(), "payment": payment("CAPTURED"), "reservation": reservation("COMMITTED"),
            "saga": null, "degraded": []
        })
    );
    assert!(started.elapsed() < Duration::from_millis(400), "three 150 ms calls at once, not one after another");
    assert!(headers.contains_key("x-correlation-id"));
}

#[tokio::test]
async fn a_failing_payments_service_degrades_the_view_instead_of_failing_it() {
    let d = downstreams().await;
    serve(&d.orders, &format!("/orders/{ID}"), ResponseTemplate::new(200).set_body_json(order())).await;
    serve(&d.payments, &format!("/payments/order/{ID}"), ResponseTemplate::new(500)).await;
    serve(
        &d.inventory,
        &format!("/reservations/order/{ID}"),
        ResponseTemplate::new(200).set_body_json(reservation("RESERVED")),
    )
    .await;
    let (status, _, body) = get(&gateway(&d), &format!("/api/orders/{ID}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["degraded"], json!(["payment"]));
    assert_eq!(body["payment"], Value::Null);
    assert_eq!(body["reservation"]["status"], "RESERVED");
}

/// The public contract is decoded, not hoped for: a service answering outside it is a service
/// failing, and fields outside the contract (an internal `version`) never reach clients.
#[tokio::test]
async fn an_answer_outside_the_contract_is_a_failure_and_internal_fields_stay_inside() {
    let d = downstreams().await;
    serve(&d.orders, &format!("/orders/{ID}"), ResponseTemplate::new(200).set_body_json(order())).await;
    let unknown_status = json!({"status": "TELEPORTED"});
    serve(&d.payments, &format!("/payments/order/{ID}"), ResponseTemplate::new(200).set_body_json(unknown_status))
        .await;
    serve(&d.inventory, &format!("/reservations/order/{ID}"), none_yet()).await;
    let (status, _, body) = get(&gateway(&d), &format!("/api/orders/{ID}")).await;
    assert_eq!((status, body["degraded"].clone()), (StatusCode::OK, json!(["payment"])));
    assert_eq!(body["order"], public_order());

    let d = downstreams().await;
    serve(&d.orders, &format!("/orders/{ID}"), ResponseTemplate::new(200).set_body_json(json!({"id": ID}))).await;
    serve(&d.inventory, "/inventory/SKU-MUG", ResponseTemplate::new(200).set_body_string("<html>")).await;
    let gateway = gateway(&d);
    let (status, headers, _) = get(&gateway, &format!("/api/orders/{ID}")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(headers.contains_key("retry-after"));
    let (status, _, _) = get(&gateway, "/api/products/SKU-MUG").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn a_slow_inventory_service_times_out_and_is_named_as_missing() {
    let d = downstreams().await;
    serve(&d.orders, &format!("/orders/{ID}"), ResponseTemplate::new(200).set_body_json(order())).await;
    serve(&d.payments, &format!("/payments/order/{ID}"), none_yet()).await;
    serve(
        &d.inventory,
        &format!("/reservations/order/{ID}"),
        ResponseTemplate::new(200).set_delay(Duration::from_secs(3)),
    )
    .await;
    let started = Instant::now();
    let (status, _, body) = get(&gateway(&d), &format!("/api/orders/{ID}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["degraded"], json!(["reservation"]));
    assert_eq!(body["payment"], Value::Null, "no payment yet is not a failure");
    assert!(started.elapsed() < Duration::from_secs(1), "bounded by the overall timeout");
}

#[tokio::test]
async fn an_open_breaker_degrades_at_once_without_calling_the_service() {
    let d = downstreams().await;
    serve(&d.orders, &format!("/orders/{ID}"), ResponseTemplate::new(200).set_body_json(order())).await;
    serve(&d.payments, &format!("/payments/order/{ID}"), ResponseTemplate::new(503)).await;
    serve(&d.inventory, &format!("/reservations/order/{ID}"), none_yet()).await;
    let gateway = gateway(&d);
    for _ in 0..2 {
        get(&gateway, &format!("/api/orders/{ID}")).await;
    }
    let calls = d.payments.received_requests().await.unwrap().len();
    let (status, _, body) = get(&gateway, &format!("/api/orders/{ID}")).await;
    assert_eq!((status, body["degraded"].clone()), (StatusCode::OK, json!(["payment"])));
    assert_eq!(d.payments.received_requests().await.unwrap().len(), calls, "the open breaker spared payments");
}

#[tokio::test]
async fn without_the_orders_service_the_answer_is_503_with_retry_after() {
    let d = downstreams().await;
    serve(&d.orders, &format!("/orders/{ID}"), ResponseTemplate::new(503)).await;
    serve(&d.payments, &format!("/payments/order/{ID}"), none_yet()).await;
    serve(&d.inventory, &format!("/reservations/order/{ID}"), none_yet()).await;
    let (status, headers, body) = get(&gateway(&d), &format!("/api/orders/{ID}")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(headers["content-type"], "application/problem+json");
    assert!(headers["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
}

#[tokio::test]
async fn an_unknown_order_is_the_services_404_and_a_product_passes_through() {
    let d = downstreams().await;
    let problem = json!({
        "type": "https://errors.shop.example/not-found", "title": "Resource not found", "status": 404,
        "detail": format!("order {ID} does not exist")
    });
    serve(&d.orders, &format!("/orders/{ID}"), ResponseTemplate::new(404).set_body_json(problem.clone())).await;
    serve(&d.payments, &format!("/payments/order/{ID}"), none_yet()).await;
    serve(&d.inventory, &format!("/reservations/order/{ID}"), none_yet()).await;
    serve(&d.inventory, "/inventory/SKU-MUG", ResponseTemplate::new(200).set_body_json(product("SKU-MUG"))).await;
    let gateway = gateway(&d);
    let (status, headers, body) = get(&gateway, &format!("/api/orders/{ID}")).await;
    assert_eq!((status, body), (StatusCode::NOT_FOUND, problem));
    assert_eq!(headers["content-type"], "application/problem+json");
    let (status, _, body) = get(&gateway, "/api/products/SKU-MUG").await;
    assert_eq!((status, body["available"].clone()), (StatusCode::OK, json!(3)));
    // A path segment cannot reach another downstream route.
    let no_product = json!({
        "type": "https://errors.shop.example/not-found", "title": "Resource not found", "status": 404,
        "detail": "no such product"
    });
    Mock::given(method("GET"))
        .and(wiremock::matchers::path_regex("^/inventory/"))
        .respond_with(ResponseTemplate::new(404).set_body_json(no_product))
        .with_priority(10)
        .mount(&d.inventory)
        .await;
    let (status, _, _) = get(&gateway, "/api/products/..%2Forders").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let smuggled = d.inventory.received_requests().await.unwrap();
    assert!(
        smuggled.iter().all(|r| r.url.path().starts_with("/inventory/") || r.url.path().starts_with("/reservations/"))
    );
}

#[tokio::test]
async fn placing_an_order_forwards_the_idempotency_key_and_relays_the_replay() {
    let d = downstreams().await;
    Mock::given(method("POST"))
        .and(path("/orders"))
        .and(header("idempotency-key", "key-1"))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(order())
                .insert_header("idempotent-replayed", "true")
                .insert_header("location", format!("/orders/{ID}")),
        )
        .expect(1)
        .mount(&d.orders)
        .await;
    let request = Request::post("/api/orders")
        .header("content-type", "application/json")
        .header("idempotency-key", "key-1")
        .body(Body::from(PLACE_ORDER))
        .unwrap();
    let (status, headers, body) = local_aws::fixtures::send(gateway(&d), request).await;
    assert_eq!((status, body), (StatusCode::CREATED, public_order()));
    assert_eq!(headers["idempotent-replayed"], "true");
    assert_eq!(headers["location"], format!("/api/orders/{ID}").as_str(), "the public address, not the service's");
}

/// A 422 from orders (the key used before with another body) is the client's answer.
#[tokio::test]
async fn a_422_from_orders_passes_through() {
    let d = downstreams().await;
    let mismatch = json!({
        "type": "https://errors.shop.example/unprocessable", "title": "Request cannot be processed", "status": 422,
        "detail": "this Idempotency-Key was already used with a different request body"
    });
    Mock::given(method("POST"))
        .and(path("/orders"))
        .respond_with(ResponseTemplate::new(422).set_body_json(mismatch.clone()))
        .expect(1)
        .mount(&d.orders)
        .await;
    let request = Request::post("/api/orders")
        .header("content-type", "application/json")
        .header("idempotency-key", "reused")
        .body(Body::from(PLACE_ORDER))
        .unwrap();
    let (status, headers, body) = local_aws::fixtures::send(gateway(&d), request).await;
    assert_eq!((status, body), (StatusCode::UNPROCESSABLE_ENTITY, mismatch));
    assert_eq!(headers["content-type"], "application/problem+json");
}

#[tokio::test]
async fn bad_input_is_refused_before_any_downstream_call() {
    let d = downstreams().await;
    let gateway = gateway(&d);
    let send = |request| local_aws::fixtures::send(gateway.clone(), request);
    let (status, _, body) = send(
        Request::post("/api/orders").header("content-type", "application/json").body(Body::from("{oops")).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(shared::http::MAX_BODY_BYTES));
    let (status, _, _) =
        send(Request::post("/api/orders").header("content-type", "application/json").body(Body::from(big)).unwrap())
            .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let (status, _, _) =
        send(Request::post("/api/orders").header("content-type", "text/plain").body(Body::from("{}")).unwrap()).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // A key that is not visible ASCII is refused, not silently dropped (which would make a
    // retry place a second order).
    let request = Request::post("/api/orders")
        .header("content-type", "application/json")
        .header("idempotency-key", http::HeaderValue::from_bytes("clé".as_bytes()).unwrap())
        .body(Body::from(PLACE_ORDER))
        .unwrap();
    let (status, _, body) = send(request).await;
    assert_eq!(
        (status, body["invalid-params"][0]["name"].clone()),
        (StatusCode::BAD_REQUEST, json!("Idempotency-Key"))
    );
    let (status, headers, _) = send(Request::delete("/api/orders").body(Body::empty()).unwrap()).await;
    assert_eq!((status, headers["allow"].to_str().unwrap()), (StatusCode::METHOD_NOT_ALLOWED, "POST,GET,HEAD"));
    let (status, headers, _) = send(Request::get("/api/nothing").body(Body::empty()).unwrap()).await;
    assert_eq!(
        (status, headers["content-type"].to_str().unwrap()),
        (StatusCode::NOT_FOUND, "application/problem+json")
    );
    for server in [&d.orders, &d.inventory, &d.payments] {
        assert!(server.received_requests().await.unwrap().is_empty());
    }
}

/// The gateway with a legacy backend taking the routes in `legacy_routes`.
fn strangled(d: &Downstreams, legacy: &MockServer, legacy_routes: &str) -> axum::Router {
    let mut vars: HashMap<String, String> = HashMap::new();
    for (prefix, server) in
        [("ORDERS", &d.orders), ("INVENTORY", &d.inventory), ("PAYMENTS", &d.payments), ("LEGACY", legacy)]
    {
        vars.insert(format!("{prefix}_BASE_URL"), server.uri());
    }
    vars.insert("LEGACY_ROUTES".into(), legacy_routes.into());
    vars.insert("LEGACY_ATTEMPT_TIMEOUT_MS".into(), "300".into());
    let env = move |name: &str| vars.get(name).cloned();
    let legacy = gateway::legacy::Legacy::from_lookup(&env).unwrap();
    router(Upstreams::from_lookup(&env, None).unwrap(), legacy)
}

#[tokio::test]
async fn routes_not_migrated_go_to_legacy_unchanged_and_moving_one_is_configuration() {
    let d = downstreams().await;
    let legacy = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(path("/api/customers/7/address"))
        .and(wiremock::matchers::query_param("verify", "true"))
        .and(header("authorization", "Bearer client-token"))
        .and(wiremock::matchers::body_string("{\"city\":\"Lyon\"}"))
        .respond_with(ResponseTemplate::new(202).set_body_string("queued").insert_header("x-legacy", "1"))
        .mount(&legacy)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/products/SKU-MUG"))
        .respond_with(ResponseTemplate::new(200).set_body_string("legacy catalogue"))
        .mount(&legacy)
        .await;
    serve(&d.inventory, "/inventory/SKU-MUG", ResponseTemplate::new(200).set_body_json(product("SKU-MUG"))).await;

    // Customers and products still on the legacy backend.
    let gateway = strangled(&d, &legacy, "/api/customers/*, /api/products/*");
    let request = Request::put("/api/customers/7/address?verify=true")
        .header("authorization", "Bearer client-token")
        .header("connection", "keep-alive")
        .header("keep-alive", "timeout=5")
        .header("x-correlation-id", "corr-legacy")
        .body(Body::from("{\"city\":\"Lyon\"}"))
        .unwrap();
    let (status, headers, body) = local_aws::fixtures::send(gateway.clone(), request).await;
    assert_eq!((status, body), (StatusCode::ACCEPTED, json!("queued")));
    assert_eq!(headers["x-legacy"], "1");
    assert_eq!(headers["x-correlation-id"], "corr-legacy");
    let forwarded = &legacy.received_requests().await.unwrap()[0];
    assert!(forwarded.headers.get("keep-alive").is_none(), "hop-by-hop headers stay behind");
    assert_eq!(forwarded.headers["x-correlation-id"], "corr-legacy");
    let (_, _, body) = get(&gateway, "/api/products/SKU-MUG").await;
    assert_eq!(body, json!("legacy catalogue"));

    // Products migrated: the same request now reaches inventory; customers stay on legacy.
    let gateway = strangled(&d, &legacy, "/api/customers/*");
    let (_, _, body) = get(&gateway, "/api/products/SKU-MUG").await;
    assert_eq!(body, product("SKU-MUG"));
    // And moving it back is configuration too.
    let gateway = strangled(&d, &legacy, "/api/customers/*,/api/products/*");
    let (_, _, body) = get(&gateway, "/api/products/SKU-MUG").await;
    assert_eq!(body, json!("legacy catalogue"));
    // Without a legacy route, an unknown path is the gateway's own 404.
    let gateway = strangled(&d, &legacy, "");
    let (status, _, _) = get(&gateway, "/api/customers/7").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_large_body_streams_through_and_a_dead_legacy_backend_is_a_503() {
    let d = downstreams().await;
    let legacy = MockServer::start().await;
    let big = "x".repeat(5 * 1024 * 1024);
    Mock::given(method("POST"))
        .and(path("/api/customers/import"))
        .and(wiremock::matchers::body_string(big.clone()))
        .respond_with(ResponseTemplate::new(200).set_body_string(big.clone()))
        .mount(&legacy)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/customers/slow"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(5)))
        .mount(&legacy)
        .await;
    let gateway = strangled(&d, &legacy, "/api/customers/*");
    let request = Request::post("/api/customers/import").body(Body::from(big.clone())).unwrap();
    let (status, _, body) = local_aws::fixtures::send(gateway.clone(), request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.as_str().map(str::len), Some(big.len()), "5 MiB each way, past the 64 KiB JSON limit");
    let (status, headers, _) = get(&gateway, "/api/customers/slow").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(headers.contains_key("retry-after"));
}

#[tokio::test]
async fn the_events_fixtures_run_through_the_gateway() {
    let d = downstreams().await;
    // The fixtures carry the claims of a Cognito token of cust-42, as API Gateway passes them.
    let mut order = order();
    order["customer_id"] = json!("cust-42");
    Mock::given(method("POST"))
        .and(path("/orders"))
        .and(header("idempotency-key", "demo-key-0001"))
        .and(header("x-correlation-id", "demo-correlation-1"))
        .and(wiremock::matchers::body_partial_json(json!({"customer_id": "cust-42"})))
        .respond_with(ResponseTemplate::new(201).set_body_json(order.clone()))
        .mount(&d.orders)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/orders/{ID}")))
        .and(wiremock::matchers::query_param("customer_id", "cust-42"))
        .respond_with(ResponseTemplate::new(200).set_body_json(order.clone()))
        .mount(&d.orders)
        .await;
    serve(&d.payments, &format!("/payments/order/{ID}"), none_yet()).await;
    serve(
        &d.inventory,
        &format!("/reservations/order/{ID}"),
        ResponseTemplate::new(200).set_body_json(reservation("RESERVED")),
    )
    .await;
    serve(&d.inventory, "/inventory/SKU-RED-MUG", ResponseTemplate::new(200).set_body_json(product("SKU-RED-MUG")))
        .await;
    let gateway = unauthenticated(&d);
    let fixture = |name| local_aws::fixtures::http("gateway-api", name).unwrap();
    let (status, _, body) = local_aws::fixtures::send(gateway.clone(), fixture("place-order.json")).await;
    order.as_object_mut().unwrap().remove("version");
    assert_eq!((status, body), (StatusCode::CREATED, order));
    let (status, _, body) = local_aws::fixtures::send(gateway.clone(), fixture("get-order.json")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((body["reservation"]["status"].clone(), body["degraded"].clone()), (json!("RESERVED"), json!([])));
    let (status, _, body) = local_aws::fixtures::send(gateway, fixture("get-product.json")).await;
    assert_eq!((status, body["sku"].clone()), (StatusCode::OK, json!("SKU-RED-MUG")));
}

#[tokio::test]
async fn calls_to_the_internal_apis_are_signed_with_sigv4_for_execute_api() {
    let d = downstreams().await;
    Mock::given(method("GET"))
        .and(path("/inventory/SKU-MUG"))
        .and(wiremock::matchers::header_regex(
            "authorization",
            r"^AWS4-HMAC-SHA256 Credential=AKIDGATEWAY/\d{8}/eu-west-1/execute-api/aws4_request, SignedHeaders=[a-z0-9;-]*host[a-z0-9;-]*, Signature=[0-9a-f]{64}$",
        ))
        .and(wiremock::matchers::header_exists("x-amz-date"))
        .and(header("x-amz-security-token", "session-token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(product("SKU-MUG")))
        .expect(1)
        .mount(&d.inventory)
        .await;
    let sdk = aws_config::SdkConfig::builder()
        .region(aws_config::Region::new("eu-west-1"))
        .credentials_provider(aws_credential_types::provider::SharedCredentialsProvider::new(
            aws_credential_types::Credentials::new("AKIDGATEWAY", "secret", Some("session-token".into()), None, "test"),
        ))
        .behavior_version(aws_config::BehaviorVersion::latest())
        .build();
    let signer = shared::resilience::SigV4::execute_api(&sdk).unwrap();
    let uri = d.inventory.uri();
    let env = move |name: &str| name.ends_with("_BASE_URL").then(|| uri.clone());
    let gateway = router(Upstreams::from_lookup(&env, Some(signer)).unwrap(), None);
    let (status, _, body) = get(&gateway, "/api/products/SKU-MUG").await;
    assert_eq!((status, body["sku"].clone()), (StatusCode::OK, json!("SKU-MUG")), "the signed request matched");
}

struct FixedSaga(Result<Option<gateway::saga::Progress>, String>);

#[async_trait::async_trait]
impl gateway::saga::SagaProgress for FixedSaga {
    async fn progress(&self, _: &str) -> Result<Option<gateway::saga::Progress>, String> {
        self.0.clone()
    }
}

#[tokio::test]
async fn the_order_view_shows_the_sagas_progress_or_names_it_missing() {
    let d = downstreams().await;
    serve(&d.orders, &format!("/orders/{ID}"), ResponseTemplate::new(200).set_body_json(order())).await;
    serve(&d.payments, &format!("/payments/order/{ID}"), none_yet()).await;
    serve(&d.inventory, &format!("/reservations/order/{ID}"), none_yet()).await;
    let with_saga = |saga: FixedSaga| {
        let uri = (d.orders.uri(), d.payments.uri(), d.inventory.uri());
        let env = move |name: &str| match name {
            "ORDERS_BASE_URL" => Some(uri.0.clone()),
            "PAYMENTS_BASE_URL" => Some(uri.1.clone()),
            "INVENTORY_BASE_URL" => Some(uri.2.clone()),
            _ => None,
        };
        as_customer(router(Upstreams::from_lookup(&env, None).unwrap().with_saga(std::sync::Arc::new(saga)), None))
    };
    let running = gateway::saga::Progress { status: "RUNNING".into(), step: Some("ProcessPayment".into()) };
    let (_, _, body) = get(&with_saga(FixedSaga(Ok(Some(running)))), &format!("/api/orders/{ID}")).await;
    assert_eq!(body["saga"], json!({"status": "RUNNING", "step": "ProcessPayment"}));
    assert_eq!(body["degraded"], json!([]));
    let (status, _, body) = get(&with_saga(FixedSaga(Err("throttled".into()))), &format!("/api/orders/{ID}")).await;
    assert_eq!(
        (status, body["saga"].clone(), body["degraded"].clone()),
        (StatusCode::OK, Value::Null, json!(["saga"]))
    );
}

// ---------------------------------------------------------------- who is calling (#16)

/// API Gateway refuses a request without a valid token before the gateway runs; a route that
/// reaches the gateway without the authorizer's claims (deployed without it) is refused too,
/// with a 401 problem, and calls nothing. The catalogue's reads and the document need none.
#[tokio::test]
async fn without_the_authorizers_claims_every_protected_route_is_401_and_calls_nothing() {
    let d = downstreams().await;
    serve(&d.inventory, "/inventory/SKU-MUG", ResponseTemplate::new(200).set_body_json(product("SKU-MUG"))).await;
    let gateway = unauthenticated(&d);
    let place = json!({"payment_method": "pm_card_visa", "items": [{"sku": "SKU-MUG", "quantity": 1}]});
    let requests = [
        json_request("POST", "/api/orders", place),
        Request::get("/api/orders").body(Body::empty()).unwrap(),
        Request::get(format!("/api/orders/{ID}")).body(Body::empty()).unwrap(),
        json_request(
            "PUT",
            "/api/products/SKU-MUG",
            json!({"name": "Mug", "price": {"amount_minor": 1, "currency": "EUR"}}),
        ),
        json_request("POST", "/api/products/SKU-MUG/restock", json!({"restock_id": "r1", "quantity": 1})),
    ];
    for request in requests {
        let what = format!("{} {}", request.method(), request.uri());
        let (status, headers, body) = local_aws::fixtures::send(gateway.clone(), request).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {body}");
        assert_eq!(headers["content-type"], "application/problem+json", "{what}");
        assert_eq!(headers["www-authenticate"], "Bearer", "{what}");
    }
    let (status, _, body) = get(&gateway, "/api/products/SKU-MUG").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, _) = get(&gateway, "/api/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(d.orders.received_requests().await.unwrap().len(), 0);
    assert_eq!(d.inventory.received_requests().await.unwrap().len(), 1, "only the product read");
}

/// The customer is the token's `sub`: a body naming `customer_id` is a 400 naming the field,
/// and the order is forwarded with the caller's id.
#[tokio::test]
async fn the_customer_is_the_tokens_subject_and_a_body_naming_one_is_400() {
    let d = downstreams().await;
    Mock::given(method("POST"))
        .and(path("/orders"))
        .and(wiremock::matchers::body_json(json!({
            "customer_id": "alice", "payment_method": "pm_card_visa", "items": [{"sku": "SKU-MUG", "quantity": 2}]
        })))
        .respond_with(ResponseTemplate::new(201).set_body_json({
            let mut order = order();
            order["customer_id"] = json!("alice");
            order
        }))
        .expect(1)
        .mount(&d.orders)
        .await;
    let gateway = unauthenticated(&d);
    let forged =
        json!({"customer_id": "bob", "payment_method": "pm_card_visa", "items": [{"sku": "SKU-MUG", "quantity": 2}]});
    let (status, headers, body) =
        local_aws::fixtures::send(gateway.clone(), from("alice", &[], json_request("POST", "/api/orders", forged)))
            .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(headers["content-type"], "application/problem+json");
    assert_eq!(body["invalid-params"][0]["name"], "customer_id", "{body}");
    assert!(body["invalid-params"][0]["reason"].as_str().unwrap().contains("token"), "{body}");
    let own = json!({"payment_method": "pm_card_visa", "items": [{"sku": "SKU-MUG", "quantity": 2}]});
    let (status, _, body) =
        local_aws::fixtures::send(gateway, from("alice", &[], json_request("POST", "/api/orders", own))).await;
    assert_eq!((status, &body["customer_id"]), (StatusCode::CREATED, &json!("alice")), "{body}");
}

/// Another customer's order is a 404, word for word the answer for an order that does not
/// exist: the read is scoped in orders (`?customer_id=`), and checked again here.
#[tokio::test]
async fn another_customers_order_is_404_and_an_admin_reads_any_order() {
    let d = downstreams().await;
    serve(&d.payments, &format!("/payments/order/{ID}"), ResponseTemplate::new(200).set_body_json(payment("CAPTURED")))
        .await;
    serve(&d.inventory, &format!("/reservations/order/{ID}"), none_yet()).await;
    let not_found = json!({
        "type": "https://errors.shop.example/not-found", "title": "Resource not found", "status": 404,
        "detail": format!("order {ID} does not exist")
    });
    // orders scopes the read: c-1's order for c-1 and for an unscoped (admin) read, 404 otherwise.
    Mock::given(method("GET"))
        .and(path(format!("/orders/{ID}")))
        .and(wiremock::matchers::query_param("customer_id", "c-1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(order()))
        .mount(&d.orders)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/orders/{ID}")))
        .and(wiremock::matchers::query_param_is_missing("customer_id"))
        .respond_with(ResponseTemplate::new(200).set_body_json(order()))
        .mount(&d.orders)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/orders/{ID}")))
        .respond_with(ResponseTemplate::new(404).set_body_json(not_found.clone()))
        .with_priority(10)
        .mount(&d.orders)
        .await;
    let gateway = unauthenticated(&d);
    let read = |sub: &str, groups: &[&str]| {
        from(sub, groups, Request::get(format!("/api/orders/{ID}")).body(Body::empty()).unwrap())
    };
    let (status, _, body) = local_aws::fixtures::send(gateway.clone(), read("c-1", &[])).await;
    assert_eq!((status, &body["order"]["id"]), (StatusCode::OK, &json!(ID)), "{body}");
    let (status, _, body) = local_aws::fixtures::send(gateway.clone(), read("mallory", &[])).await;
    assert_eq!((status, body), (StatusCode::NOT_FOUND, not_found.clone()), "not 403: nothing says the order exists");
    let (status, _, body) = local_aws::fixtures::send(gateway.clone(), read("mallory", &["staff"])).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, _, body) = local_aws::fixtures::send(gateway.clone(), read("ops-1", &["admin"])).await;
    assert_eq!((status, &body["order"]["customer_id"]), (StatusCode::OK, &json!("c-1")), "{body}");
    assert_eq!(body["payment"]["status"], "CAPTURED");
}

/// Should orders ever answer another customer's order to a scoped read, the gateway still
/// answers 404 and shows nothing of it.
#[tokio::test]
async fn an_order_of_another_customer_from_orders_is_still_404() {
    let d = downstreams().await;
    serve(&d.orders, &format!("/orders/{ID}"), ResponseTemplate::new(200).set_body_json(order())).await;
    serve(&d.payments, &format!("/payments/order/{ID}"), none_yet()).await;
    serve(&d.inventory, &format!("/reservations/order/{ID}"), none_yet()).await;
    let request = from("mallory", &[], Request::get(format!("/api/orders/{ID}")).body(Body::empty()).unwrap());
    let (status, _, body) = local_aws::fixtures::send(unauthenticated(&d), request).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(!body.to_string().contains("pm_card_visa") && !body.to_string().contains("c-1"), "{body}");
}

/// `GET /api/orders` asks orders for the caller's own orders only, with the page size and
/// cursor passed on, and answers the page as the contract describes it.
#[tokio::test]
async fn the_order_list_is_the_callers_own() {
    let d = downstreams().await;
    Mock::given(method("GET"))
        .and(path("/orders"))
        .and(wiremock::matchers::query_param("customer_id", "c-1"))
        .and(wiremock::matchers::query_param("limit", "2"))
        .and(wiremock::matchers::query_param("cursor", "abc/+="))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"orders": [order()], "next_cursor": "xyz"})))
        .expect(1)
        .mount(&d.orders)
        .await;
    let request =
        from("c-1", &[], Request::get("/api/orders?limit=2&cursor=abc%2F%2B%3D").body(Body::empty()).unwrap());
    let (status, _, body) = local_aws::fixtures::send(unauthenticated(&d), request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"orders": [public_order()], "next_cursor": "xyz"}));
    let request = from("c-1", &[], Request::get("/api/orders?limit=lots").body(Body::empty()).unwrap());
    let (status, headers, _) = local_aws::fixtures::send(unauthenticated(&d), request).await;
    assert_eq!(
        (status, headers["content-type"].to_str().unwrap()),
        (StatusCode::BAD_REQUEST, "application/problem+json")
    );
}

/// Creating, changing and restocking products is for admins: a customer's token gets 403 and
/// inventory hears nothing; an admin's is forwarded, the restock with its id as the key.
#[tokio::test]
async fn admin_operations_are_refused_to_a_customer_and_forwarded_for_an_admin() {
    let d = downstreams().await;
    let spec = json!({"name": "Mug", "price": {"amount_minor": 1200, "currency": "EUR"}, "low_stock_threshold": 1});
    Mock::given(method("PUT"))
        .and(path("/inventory/SKU-MUG"))
        .and(wiremock::matchers::body_json(spec.clone()))
        .respond_with(ResponseTemplate::new(200).set_body_json(product("SKU-MUG")))
        .expect(1)
        .mount(&d.inventory)
        .await;
    let restock = json!({"restock_id": "delivery-7", "quantity": 3});
    Mock::given(method("POST"))
        .and(path("/inventory/SKU-MUG/restock"))
        .and(wiremock::matchers::body_json(restock.clone()))
        .and(header("idempotency-key", "delivery-7"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(product("SKU-MUG")).insert_header("idempotent-replayed", "true"),
        )
        .expect(1)
        .mount(&d.inventory)
        .await;
    let gateway = unauthenticated(&d);
    let put = || json_request("PUT", "/api/products/SKU-MUG", spec.clone());
    let post = || json_request("POST", "/api/products/SKU-MUG/restock", restock.clone());
    for request in [from("c-1", &[], put()), from("c-1", &["staff"], post())] {
        let (status, headers, body) = local_aws::fixtures::send(gateway.clone(), request).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert_eq!(headers["content-type"], "application/problem+json");
    }
    assert_eq!(d.inventory.received_requests().await.unwrap().len(), 0);
    let (status, _, body) = local_aws::fixtures::send(gateway.clone(), from("ops-1", &["admin"], put())).await;
    assert_eq!((status, &body["sku"]), (StatusCode::OK, &json!("SKU-MUG")), "{body}");
    let (status, headers, body) =
        local_aws::fixtures::send(gateway.clone(), from("ops-1", &["staff", "admin"], post())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(headers["idempotent-replayed"], "true");
    let bad = json_request(
        "PUT",
        "/api/products/SKU-MUG",
        json!({"name": "Mug", "price": {"amount_minor": 1, "currency": "EUR"}, "colour": "red"}),
    );
    let (status, _, body) = local_aws::fixtures::send(gateway, from("ops-1", &["admin"], bad)).await;
    assert_eq!((status, &body["invalid-params"][0]["name"]), (StatusCode::BAD_REQUEST, &json!("colour")), "{body}");
}

/// A parked order (its compensation is being retried) is shown as it is, alone and in a list:
/// not a 503 for an answer the gateway did not expect.
#[tokio::test]
async fn a_parked_order_is_shown_compensation_pending() {
    let d = downstreams().await;
    let mut parked = order();
    parked["status"] = json!("COMPENSATION_PENDING");
    parked["parking"] = json!({"failed_step": "RefundPayment", "attempts": 1});
    serve(&d.orders, &format!("/orders/{ID}"), ResponseTemplate::new(200).set_body_json(parked.clone())).await;
    serve(&d.orders, "/orders", ResponseTemplate::new(200).set_body_json(json!({"orders": [parked]}))).await;
    serve(&d.payments, &format!("/payments/order/{ID}"), ResponseTemplate::new(200).set_body_json(payment("CAPTURED")))
        .await;
    serve(&d.inventory, &format!("/reservations/order/{ID}"), none_yet()).await;
    let (status, _, body) = get(&gateway(&d), &format!("/api/orders/{ID}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["order"]["status"], "COMPENSATION_PENDING");
    let (status, _, body) = get(&gateway(&d), "/api/orders").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["orders"][0]["status"], "COMPENSATION_PENDING");
}
