//! The inventory HTTP API driven with the `events/inventory-api` fixtures (API Gateway v2) on the
//! in-memory store.

use local_aws::fixtures::ORDER_ID;
use std::sync::Arc;

use axum::body::Body;
use http::{Request, StatusCode};
use inventory::adapters::memory::InMemoryInventoryStore;
use inventory::domain::RequestedLine;
use inventory::http::router;
use inventory::service::InventoryService;
use serde_json::{Value, json};
use shared_core::CorrelationId;

fn fixture(name: &str) -> lambda_http::Request {
    local_aws::fixtures::http("inventory-api", name).unwrap()
}

async fn send<B>(service: &InventoryService, request: Request<B>) -> (StatusCode, http::HeaderMap, Value)
where
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    local_aws::fixtures::send(router(service.clone()), request).await
}

fn service() -> InventoryService {
    InventoryService::new(Arc::new(InMemoryInventoryStore::new()))
}

#[tokio::test]
async fn the_admin_fixtures_create_restock_and_show_a_product() {
    let service = service();
    let (status, _, body) = send(&service, fixture("get-product.json")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    let (status, headers, body) = send(&service, fixture("put-product.json")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(headers["x-correlation-id"], "demo-correlation-2");
    assert_eq!(body["available"], 0, "a new product has no stock until restocked");

    let (status, headers, body) = send(&service, fixture("restock.json")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(headers.get("idempotent-replayed").is_none());
    assert_eq!(body["available"], 40);
    let (_, headers, body) = send(&service, fixture("restock.json")).await;
    assert_eq!(headers["idempotent-replayed"], "true");
    assert_eq!(body["available"], 40, "the same restock id counts once");

    let (status, _, body) = send(&service, fixture("get-product.json")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"sku": "SKU-RED-MUG", "name": "Red mug", "price": {"amount_minor": 1250, "currency": "EUR"},
               "available": 40, "low_stock_threshold": 5})
    );
}

#[tokio::test]
async fn the_reservation_fixture_shows_what_an_order_holds() {
    let service = service();
    send(&service, fixture("put-product.json")).await;
    send(&service, fixture("restock.json")).await;
    let (status, _, _) = send(&service, fixture("get-reservation.json")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let lines = [RequestedLine { sku: "SKU-RED-MUG".into(), quantity: 2 }];
    service.reserve(fixture_order(), &lines, &CorrelationId::generate()).await.unwrap();
    let (status, _, body) = send(&service, fixture("get-reservation.json")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "RESERVED");
    assert_eq!(body["total_minor"], 2500);
    assert_eq!(body["lines"], json!([{"sku": "SKU-RED-MUG", "quantity": 2, "unit_price_minor": 1250}]));
}

#[tokio::test]
async fn bad_admin_input_is_400_naming_the_field() {
    let service = service();
    let put = |body: &str| {
        Request::put("/inventory/SKU-1")
            .header("content-type", "application/json")
            .body(Body::from(body.to_owned()))
            .unwrap()
    };
    for (body, field) in [
        (r#"{"name":"Mug","price":{"amount_minor":100,"currency":"euro"}}"#, "price.currency"),
        (r#"{"name":"Mug","price":{"amount_minor":-1,"currency":"EUR"}}"#, "price.amount_minor"),
        (r#"{"name":"","price":{"amount_minor":1,"currency":"EUR"}}"#, "name"),
        (r#"{"name":"Mug","price":{"amount_minor":1,"currency":"EUR"},"available":5}"#, "available"),
    ] {
        let (status, headers, problem) = send(&service, put(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {problem}");
        assert_eq!(headers["content-type"], "application/problem+json");
        assert_eq!(problem["invalid-params"][0]["name"], field, "{body}");
    }
    let restock = |sku: &str, body: &str| {
        Request::post(format!("/inventory/{sku}/restock"))
            .header("content-type", "application/json")
            .body(Body::from(body.to_owned()))
            .unwrap()
    };
    let (status, _, problem) = send(&service, restock("SKU-1", r#"{"restock_id":"r","quantity":0}"#)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(problem["invalid-params"][0]["name"], "quantity");
    let (status, _, _) = send(&service, restock("UNKNOWN", r#"{"restock_id":"r","quantity":1}"#)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, headers, _) = send(&service, Request::delete("/inventory/SKU-1").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(headers["allow"].to_str().unwrap().contains("PUT"));
}

#[tokio::test]
async fn a_reservation_path_that_is_no_order_id_is_a_400() {
    let service = service();
    for bad in ["o-1".to_owned(), ORDER_ID.replace('-', ""), ORDER_ID.to_owned() + "0", "x".repeat(65)] {
        let request = Request::get(format!("/reservations/order/{bad}")).body(Body::empty()).unwrap();
        let (status, _, problem) = send(&service, request).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {problem}");
        assert_eq!(problem["invalid-params"][0]["name"], "order_id", "{bad}");
    }
}

/// The order every fixture under `events/` is about.
fn fixture_order() -> shared_core::OrderId {
    shared_core::OrderId::parse(ORDER_ID).unwrap()
}
