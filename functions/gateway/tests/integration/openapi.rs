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

/// `UPDATE_OPENAPI=1 cargo nextest run -p gateway openapi::` rewrites the file.
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
         `UPDATE_OPENAPI=1 cargo nextest run -p gateway openapi::`"
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
        [
            "get /api/openapi.json",
            "get /api/orders",
            "get /api/orders/{id}",
            "get /api/products/{sku}",
            "post /api/orders",
            "post /api/products/{sku}/restock",
            "put /api/products/{sku}",
        ]
    );
}

/// The request limits in the document are the ones the services enforce, so a request that
/// matches the document is not refused for its shape.
#[test]
fn documented_limits_are_the_services_limits() {
    let doc = generated();
    let schemas = &doc["components"]["schemas"];
    let items = &schemas["PlaceOrder"]["properties"]["items"];
    assert_eq!(items["maxItems"], shared_core::validation::MAX_ORDER_LINES);
    assert_eq!(items["minItems"], 1);
    let item = &schemas["OrderItem"]["properties"];
    assert_eq!(item["quantity"]["maximum"], shared_core::validation::MAX_QUANTITY);
    assert_eq!(item["quantity"]["minimum"], 1);
    for identifier in [&item["sku"], &schemas["Restock"]["properties"]["restock_id"]] {
        assert_eq!(identifier["maxLength"], shared_core::validation::MAX_ID_LEN, "{identifier}");
    }
    assert_eq!(schemas["PlaceOrder"]["properties"]["payment_method"]["maxLength"], 255);
    assert_eq!(schemas["PlaceOrder"]["additionalProperties"], false);
    assert!(schemas["PlaceOrder"]["properties"].get("customer_id").is_none(), "the customer is the token's");
    let spec = &schemas["ProductSpec"]["properties"];
    assert_eq!(spec["name"]["maxLength"], inventory::domain::MAX_NAME_LEN);
    assert_eq!(gateway::api::MAX_NAME_LEN, inventory::domain::MAX_NAME_LEN);
    assert_eq!(gateway::api::MAX_PRICE_MINOR, inventory::domain::MAX_PRICE_MINOR);
    assert_eq!(gateway::api::MAX_RESTOCK, inventory::domain::MAX_RESTOCK);
    assert_eq!(spec["low_stock_threshold"]["maximum"], inventory::domain::MAX_RESTOCK);
    assert_eq!(schemas["Price"]["properties"]["amount_minor"]["maximum"], inventory::domain::MAX_PRICE_MINOR);
    let currencies = schemas["Price"]["properties"]["currency"]["enum"].as_array().unwrap();
    assert!(currencies.contains(&"EUR".into()) && currencies.contains(&"JPY".into()), "ISO 4217 codes");
    assert_eq!(schemas["Restock"]["properties"]["quantity"]["maximum"], inventory::domain::MAX_RESTOCK);
    for name in ["ProductSpec", "Price", "Restock"] {
        assert_eq!(schemas[name]["additionalProperties"], false, "{name}");
    }
}

/// The document declares the bearer scheme and which operations need it, and they are the ones
/// the template puts behind the JWT authorizer: every operation but those whose route the
/// template declares with `Authorizer: NONE`. A protected operation documents API Gateway's
/// 401; an admin operation documents 403.
#[test]
fn the_security_scheme_is_declared_and_matches_the_template() {
    let doc = generated();
    let scheme = &doc["components"]["securitySchemes"][gateway::http::BEARER];
    assert_eq!((scheme["type"].as_str(), scheme["scheme"].as_str()), (Some("http"), Some("bearer")), "{scheme}");
    assert_eq!(scheme["bearerFormat"], "JWT");

    let template = local_aws::Template::load_project().unwrap();
    let events = template.resource("GatewayApiFunction").unwrap().properties["Events"].as_mapping().unwrap().clone();
    let mut open_routes: Vec<String> = events
        .values()
        .filter(|event| event["Properties"]["Auth"]["Authorizer"].as_str() == Some("NONE"))
        .map(|event| {
            let properties = &event["Properties"];
            format!(
                "{} {}",
                properties["Method"].as_str().unwrap().to_lowercase(),
                properties["Path"].as_str().unwrap()
            )
        })
        .collect();
    open_routes.sort();
    assert_eq!(open_routes, ["get /api/openapi.json", "get /api/products/{sku}"]);
    let api = &template.resource("GatewayHttpApi").unwrap().properties["Auth"];
    assert!(api["DefaultAuthorizer"].as_str().is_some(), "every other route is behind the authorizer: {api:?}");

    let mut unprotected = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let route = format!("{method} {path}");
            match operation.get("security") {
                Some(security) => {
                    assert_eq!(security, &serde_json::json!([{ gateway::http::BEARER: [] }]), "{route}");
                    let unauthorized = &operation["responses"]["401"];
                    assert_eq!(
                        unauthorized["content"]["application/json"]["schema"]["$ref"],
                        "#/components/schemas/GatewayMessage",
                        "{route}: {unauthorized}"
                    );
                }
                None => unprotected.push(route),
            }
        }
    }
    unprotected.sort();
    assert_eq!(unprotected, open_routes);
    for (method, path) in [("put", "/api/products/{sku}"), ("post", "/api/products/{sku}/restock")] {
        assert!(operation(&doc, method, path)["responses"]["403"].is_object(), "{method} {path}");
    }
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

/// The router serves exactly the documented operations: it is built from each handler's path and
/// methods without the document ([`gateway::http::router`]), so this checks the two agree. Every
/// documented method and path (parameters filled in) reaches a handler, whatever it answers
/// without a token or downstreams; an undocumented one reaches the fallback.
#[tokio::test]
async fn every_documented_operation_is_served_and_nothing_else() {
    let doc = generated();
    let upstreams = || {
        gateway::upstream::Upstreams::from_lookup(
            &|name: &str| name.ends_with("_BASE_URL").then(|| "http://127.0.0.1:9".into()),
            None,
        )
        .expect("configured")
    };
    let unrouted = |status: StatusCode, body: &Value| {
        status == StatusCode::METHOD_NOT_ALLOWED || body["detail"].as_str() == Some("no such route")
    };
    let mut served = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        let uri = path.replace("{id}", "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b").replace("{sku}", "SKU-1");
        assert!(!uri.contains('{'), "a path parameter this test does not fill: {path}");
        for method in
            item.as_object().unwrap().keys().filter(|k| ["get", "put", "post", "delete", "patch"].contains(&k.as_str()))
        {
            let request = Request::builder()
                .method(method.to_uppercase().as_str())
                .uri(&uri)
                .header("content-type", "application/json")
                .body(Body::from("{}"))
                .unwrap();
            let (status, _, body) = local_aws::fixtures::send(gateway::http::router(upstreams(), None), request).await;
            assert!(!unrouted(status, &body), "{method} {path} is documented but not served: {status} {body}");
            served += 1;
        }
    }
    assert!(served >= 7, "{served} operations");
    for (method, uri) in [("DELETE", "/api/orders"), ("GET", "/api/undocumented"), ("PATCH", "/api/products/SKU-1")] {
        let request = Request::builder().method(method).uri(uri).body(Body::empty()).unwrap();
        let (status, _, body) = local_aws::fixtures::send(gateway::http::router(upstreams(), None), request).await;
        assert!(unrouted(status, &body), "{method} {uri} is served but not documented: {status} {body}");
    }
}

fn operation<'a>(doc: &'a Value, method: &str, path: &str) -> &'a Value {
    let operation = &doc["paths"][path][method];
    assert!(operation.is_object(), "no {method} {path}");
    operation
}

/// Regression: the key was `["string", "null"]`, so schemathesis sent the literal `null` and
/// it became a stored key. A header has no null: absent, or 1 to 255 visible ASCII characters.
#[test]
fn the_idempotency_key_is_an_optional_string_never_null() {
    let doc = generated();
    let params = operation(&doc, "post", "/api/orders")["parameters"].as_array().unwrap();
    let key = params.iter().find(|p| p["name"] == "Idempotency-Key").expect("the key is documented");
    assert_eq!(key["in"], "header");
    assert_eq!(key["required"], false);
    assert_eq!(key["schema"]["type"], "string", "{key}");
    assert_eq!(key["schema"]["pattern"], "^[!-~]{1,255}$");
}

/// A placed order's `id` is how to follow it: a link from the 201 to `GET /api/orders/{id}`
/// (what schemathesis' stateful phase follows), and `Location` is that route.
#[test]
fn a_placed_order_links_to_where_it_is_followed() {
    let doc = generated();
    let created = &operation(&doc, "post", "/api/orders")["responses"]["201"];
    let links = created["links"].as_object().expect("the 201 declares links");
    let link = links.values().next().unwrap();
    assert_eq!(link["operationId"], operation(&doc, "get", "/api/orders/{id}")["operationId"], "{link}");
    assert_eq!(link["parameters"]["id"], "$response.body#/id");
    let location = &created["headers"]["Location"];
    assert_eq!(location["required"], true, "{location}");
    assert!(location["schema"]["pattern"].as_str().unwrap().starts_with("^/api/orders/"), "{location}");
}

/// The id is parsed at the edge: the hyphenated UUID in either case (the document's pattern),
/// and the answer spells it in lower case.
#[test]
fn the_order_id_is_a_hyphenated_uuid_in_either_case() {
    let doc = generated();
    let params = operation(&doc, "get", "/api/orders/{id}")["parameters"].as_array().unwrap();
    let id = params.iter().find(|p| p["name"] == "id").unwrap();
    assert_eq!(id["schema"]["format"], "uuid");
    assert_eq!(
        id["schema"]["pattern"],
        "^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$"
    );
    assert!(id["description"].as_str().unwrap().contains("lower case"), "{id}");
}

/// Every answer the gateway gives carries `X-Correlation-Id`, so the document says so on every
/// response of every operation, except the 401 API Gateway gives before the gateway runs.
#[test]
fn every_response_declares_the_correlation_id() {
    let doc = generated();
    let mut seen = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            for (status, response) in operation["responses"].as_object().unwrap() {
                let header = &response["headers"]["X-Correlation-Id"];
                if status == "401" {
                    // API Gateway's JWT authorizer answers it; the gateway never sees the request.
                    assert!(header.is_null(), "{method} {path} 401: {response}");
                    continue;
                }
                assert_eq!(header["required"], true, "{method} {path} {status}: {response}");
                assert_eq!(header["schema"]["pattern"], "^[!-~]{1,128}$", "{method} {path} {status}");
                seen += 1;
            }
        }
    }
    assert!(seen >= 14, "{seen} responses");
}

/// A client that sent no key learns that a 503 may hide a placed order, and gets the key the
/// gateway used so that repeating the request is safe.
#[test]
fn a_503_on_placing_an_order_says_how_to_find_out_whether_it_was_placed() {
    let doc = generated();
    let unavailable = &operation(&doc, "post", "/api/orders")["responses"]["503"];
    let description = unavailable["description"].as_str().unwrap();
    assert!(description.contains("may have been placed"), "{description}");
    let key = &unavailable["headers"]["Idempotency-Key"];
    assert_eq!(key["required"], true, "{unavailable}");
    assert_eq!(key["schema"]["pattern"], "^[!-~]{1,255}$");
}

/// The documented body limit is the one enforced, and it admits the largest valid order.
#[test]
fn the_documented_body_limit_is_the_enforced_one() {
    let doc = generated();
    let too_large = operation(&doc, "post", "/api/orders")["responses"]["413"]["description"].as_str().unwrap();
    let limit = shared::http::MAX_BODY_BYTES;
    assert!(too_large.contains(&format!("{} KiB", limit / 1024)), "{too_large}");
    assert!(too_large.contains(&format!("{limit} bytes")), "{too_large}");
    assert!(gateway::api::LARGEST_PLACE_ORDER_BYTES <= limit);
}
