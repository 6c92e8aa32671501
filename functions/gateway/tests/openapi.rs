//! The OpenAPI document: generated from the code, checked into `infra/openapi.json`, served at
//! `/api/openapi.json`, and in step with the rules the services enforce.

use std::path::PathBuf;

use axum::body::Body;
use http::{Request, StatusCode};
use serde_json::Value;

fn checked_in() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../infra/openapi.json")
}

fn generated() -> Value {
    serde_json::to_value(gateway::http::openapi()).unwrap()
}

/// `UPDATE_OPENAPI=1 cargo nextest run -p gateway --test openapi` rewrites the file.
#[test]
fn the_checked_in_document_is_the_generated_one() {
    let text = serde_json::to_string_pretty(&generated()).unwrap() + "\n";
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(checked_in(), &text).unwrap();
    }
    let on_disk = std::fs::read_to_string(checked_in()).unwrap_or_default();
    assert!(
        on_disk == text,
        "infra/openapi.json is not the document the code generates; review the change and run \
         `UPDATE_OPENAPI=1 cargo nextest run -p gateway --test openapi`"
    );
}

#[test]
fn the_document_is_openapi_3_1_with_every_public_route() {
    let doc = generated();
    assert_eq!(doc["openapi"], "3.1.0");
    let mut routes: Vec<String> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| item.as_object().unwrap().keys().map(move |method| format!("{method} {path}")))
        .collect();
    routes.sort();
    assert_eq!(
        routes,
        ["get /api/openapi.json", "get /api/orders/{id}", "get /api/products/{sku}", "post /api/orders"]
    );
}

/// The request limits in the document are the ones the services enforce, so a request that
/// matches the document is not refused for its shape.
#[test]
fn documented_limits_are_the_services_limits() {
    let doc = generated();
    let schemas = &doc["components"]["schemas"];
    let items = &schemas["PlaceOrder"]["properties"]["items"];
    assert_eq!(items["maxItems"], shared::validation::MAX_ORDER_LINES);
    assert_eq!(items["minItems"], 1);
    let item = &schemas["OrderItem"]["properties"];
    assert_eq!(item["quantity"]["maximum"], shared::validation::MAX_QUANTITY);
    assert_eq!(item["quantity"]["minimum"], 1);
    for identifier in [&item["sku"], &schemas["PlaceOrder"]["properties"]["customer_id"]] {
        assert_eq!(identifier["maxLength"], shared::validation::MAX_ID_LEN, "{identifier}");
    }
    assert_eq!(schemas["PlaceOrder"]["properties"]["payment_method"]["maxLength"], 255);
    assert_eq!(schemas["PlaceOrder"]["additionalProperties"], false);
}

#[tokio::test]
async fn the_gateway_serves_its_document() {
    let upstreams = gateway::upstream::Upstreams::from_lookup(
        &|name: &str| name.ends_with("_BASE_URL").then(|| "http://127.0.0.1:9".into()),
        None,
    )
    .expect("configured");
    let request = Request::get("/api/openapi.json").body(Body::empty()).unwrap();
    let (status, _, body) = local_aws::fixtures::send(gateway::http::router(upstreams, None), request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, generated());
}
