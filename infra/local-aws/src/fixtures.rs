//! The test events under `events/<binary>/`, loaded as the payloads Lambda hands each function,
//! so every test that runs a fixture through a handler reads it the same way.

use std::path::PathBuf;

use aws_lambda_events::eventbridge::EventBridgeEvent;
use serde::de::DeserializeOwned;
use serde_json::Value;
use shared_core::OrderId;

use crate::{Error, project_root};

/// The order every fixture under `events/` is about.
pub const ORDER_ID: &str = "0193a3c2-5f00-7000-8000-00000000c0de";

/// Test order `n`: a valid order id that ends in its number (`order_id(7)` is
/// `0193a3c2-5f00-7000-8000-000000000007`), for tests that need several distinct orders.
pub fn order_id(n: u32) -> OrderId {
    OrderId::parse(&format!("0193a3c2-5f00-7000-8000-{n:012}")).expect("twelve decimal digits are hex digits")
}

/// `events/<binary>/<name>`.
pub fn path(binary: &str, name: &str) -> PathBuf {
    project_root().join("events").join(binary).join(name)
}

/// The fixture as text.
pub fn text(binary: &str, name: &str) -> Result<String, Error> {
    let path = path(binary, name);
    std::fs::read_to_string(&path).map_err(|e| Error::Template(format!("reading {}: {e}", path.display())))
}

/// The fixture parsed as `T` (a Lambda event type).
pub fn load<T: DeserializeOwned>(binary: &str, name: &str) -> Result<T, Error> {
    serde_json::from_str(&text(binary, name)?)
        .map_err(|e| Error::Template(format!("events/{binary}/{name} is not the expected event: {e}")))
}

/// An EventBridge event (what a rule delivers to a function).
pub fn eventbridge(binary: &str, name: &str) -> Result<EventBridgeEvent<Value>, Error> {
    load(binary, name)
}

/// An API Gateway HTTP API (payload v2) request, as `lambda_http` hands it to a function.
pub fn http(binary: &str, name: &str) -> Result<lambda_http::Request, Error> {
    lambda_http::request::from_str(&text(binary, name)?)
        .map_err(|e| Error::Template(format!("events/{binary}/{name} is not an API Gateway v2 request: {e}")))
}

/// Sends `request` through `router` as the Lambda would, and reads the answer: status, headers,
/// and the body as JSON (`Null` when empty).
pub async fn send<B>(router: axum::Router, request: http::Request<B>) -> (http::StatusCode, http::HeaderMap, Value)
where
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let response = router.oneshot(request.map(axum::body::Body::new)).await.expect("routers are infallible");
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.expect("a response body").to_bytes();
    let value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    (parts.status, parts.headers, value)
}
