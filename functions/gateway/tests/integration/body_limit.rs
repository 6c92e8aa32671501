//! The body limit admits every order the document allows, all along the path: the largest one
//! goes through the gateway to the real orders router (in-memory store, served on 127.0.0.1),
//! and straight to the orders router, and is placed both ways.
//!
//! Regression: a schema-valid order of 98 lines with 64-character skus was about 79 KB and got
//! 413 from a 64 KiB limit.

use std::sync::Arc;

use axum::body::Body;
use gateway::api::{LARGEST_PLACE_ORDER_BYTES, MAX_PAYMENT_METHOD_LEN};
use http::{Request, StatusCode};
use serde_json::Value;
use shared_core::validation::{MAX_ID_LEN, MAX_ORDER_LINES, MAX_QUANTITY};

/// `c` as JSON writes it at its longest: a non-BMP character as an escaped surrogate pair.
fn escaped(c: char) -> String {
    let mut units = [0u16; 2];
    c.encode_utf16(&mut units).iter().map(|u| format!("\\u{u:04X}")).collect()
}

fn longest_string(chars: impl Iterator<Item = char>) -> String {
    format!("\"{}\"", chars.map(escaped).collect::<String>())
}

/// An identifier of `MAX_ID_LEN` characters, each outside the BMP; `n` makes it unique.
fn identifier(n: u32) -> String {
    let base = 0x1F600;
    let last = char::from_u32(base + n).unwrap();
    longest_string(std::iter::repeat_n(char::from_u32(base).unwrap(), MAX_ID_LEN - 1).chain([last]))
}

/// The largest body the document allows: every limit at its maximum and every character
/// written as its longest escape; compact (no insignificant whitespace), or pretty-printed with
/// two-space indents as many clients send it. The public API's has no `customer_id` (the
/// customer is the token's); the one the gateway forwards to orders has one, at its longest.
fn largest_order(pretty: bool, internal: bool) -> String {
    let (nl, i1, i2, i3, sp) = if pretty { ("\n", "  ", "    ", "      ", " ") } else { ("", "", "", "", "") };
    let payment_method = "pm_".chars().chain(std::iter::repeat_n('a', MAX_PAYMENT_METHOD_LEN - 3));
    let lines: Vec<String> = (0..MAX_ORDER_LINES as u32)
        .map(|i| {
            let sku = identifier(i);
            format!("{i2}{{{nl}{i3}\"sku\":{sp}{sku},{nl}{i3}\"quantity\":{sp}{MAX_QUANTITY}{nl}{i2}}}")
        })
        .collect();
    let customer = if internal { format!("{i1}\"customer_id\":{sp}{},{nl}", identifier(999)) } else { String::new() };
    format!(
        "{{{nl}{customer}{i1}\"payment_method\":{sp}{},{nl}{i1}\"items\":{sp}[{nl}{}{nl}{i1}]{nl}}}",
        longest_string(payment_method),
        lines.join(&format!(",{nl}"))
    )
}

fn post(body: String) -> Request<Body> {
    Request::post("/orders").header("content-type", "application/json").body(Body::from(body)).unwrap()
}

/// `request` to the public API, from a customer whose `sub` is as long as an id may be.
fn public(request: Request<Body>) -> Request<Body> {
    let (mut parts, body) = request.into_parts();
    parts.uri = "/api/orders".parse().unwrap();
    let sub: String = std::iter::repeat_n('\u{1F600}', MAX_ID_LEN).collect();
    gateway::caller::with_claims(Request::from_parts(parts, body), serde_json::json!({ "sub": sub }))
}

fn orders_router() -> axum::Router {
    let store = Arc::new(orders::adapters::memory::InMemoryOrderStore::new());
    orders::http::router(orders::service::OrderService::new(store))
}

#[test]
fn the_largest_order_is_what_the_limits_say() {
    let body = largest_order(false, false);
    assert_eq!(body.len(), LARGEST_PLACE_ORDER_BYTES);
    assert!(body.len() > 64 * 1024, "larger than the old limit: {}", body.len());
    let pretty = largest_order(true, false);
    assert!(pretty.len() <= shared::http::MAX_BODY_BYTES, "{}", pretty.len());
    let value: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(value["items"].as_array().unwrap().len(), MAX_ORDER_LINES);
    assert_eq!(value["items"][97]["sku"].as_str().unwrap().chars().count(), MAX_ID_LEN);
    assert_eq!(value["payment_method"].as_str().unwrap().len(), MAX_PAYMENT_METHOD_LEN);
    assert_eq!(MAX_PAYMENT_METHOD_LEN, orders::domain::MAX_PAYMENT_METHOD_LEN);
    assert_eq!(serde_json::from_str::<Value>(&pretty).unwrap(), value);
}

#[tokio::test]
async fn the_largest_order_is_placed_through_the_orders_router() {
    for body in [largest_order(false, true), largest_order(true, true)] {
        let (status, _, answer) = local_aws::fixtures::send(orders_router(), post(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
        assert_eq!(answer["lines"].as_array().map(Vec::len), Some(MAX_ORDER_LINES));
    }
    let (status, _, _) =
        local_aws::fixtures::send(orders_router(), post(" ".repeat(shared::http::MAX_BODY_BYTES + 1))).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn the_largest_order_is_placed_through_the_gateway() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a free port on 127.0.0.1");
    let orders = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(axum::serve(listener, orders_router()).into_future());
    let env = move |name: &str| match name {
        "ORDERS_BASE_URL" => Some(orders.clone()),
        _ => name.ends_with("_BASE_URL").then(|| "http://127.0.0.1:9".to_owned()),
    };
    let gateway = gateway::http::router(gateway::upstream::Upstreams::from_lookup(&env, None).unwrap(), None);
    for body in [largest_order(false, false), largest_order(true, false)] {
        let (status, headers, answer) = local_aws::fixtures::send(gateway.clone(), public(post(body))).await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
        assert_eq!(answer["lines"].as_array().map(Vec::len), Some(MAX_ORDER_LINES));
        assert_eq!(headers["location"], format!("/api/orders/{}", answer["id"].as_str().unwrap()).as_str());
    }
}
