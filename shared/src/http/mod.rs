//! The HTTP layer, shared by every service's axum router: problem+json errors ([`problem`]), a
//! strict JSON body extractor, the correlation-id middleware, and problem+json answers for unknown
//! routes and methods.

pub mod problem;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Request};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, header};
use serde::de::DeserializeOwned;
use tracing::Instrument;

use problem::ApiError;
use shared_core::correlation::{CORRELATION_HEADER, CorrelationId};
use shared_core::{InvalidParam, OrderId};

/// Largest request body any of our APIs accepts: 128 KiB. It must admit the largest order the
/// public document allows (98 lines of 64-character skus, every character written as a 12-byte
/// JSON escape: about 80 KB, `gateway::api::LARGEST_PLACE_ORDER_BYTES`, which the gateway
/// asserts at compile time), with room for formatting whitespace.
pub const MAX_BODY_BYTES: usize = 128 * 1024;

/// An order id from a request path: a UUID in its hyphenated form (`OrderId::parse`), or a 400
/// that names the path parameter. The three services read order ids in paths this way (the
/// gateway through the same `OrderId::parse`, with its public document's wording), so `o-1` is
/// refused at the edge and never reaches a store key.
pub fn parse_order_id(parameter: &str, raw: &str) -> Result<OrderId, ApiError> {
    OrderId::parse(raw).ok_or_else(|| ApiError::invalid(parameter, "must be an order id (a UUID)"))
}

/// A JSON body, read with a size limit and parsed strictly: a wrong content type is a 415, an
/// oversized body a 413, and a body that does not fit `T` a 400 that names the offending field
/// (`items[1].quantity`) thanks to `serde_path_to_error`.
#[derive(Debug)]
pub struct StrictJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for StrictJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|mime| {
                let mime = mime.trim().to_ascii_lowercase();
                mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
            })
            .unwrap_or(false);
        if !is_json {
            return Err(ApiError::UnsupportedMediaType("send the body as application/json".into()));
        }
        let limited = req.map(|body| Body::new(http_body_util::Limited::new(body, MAX_BODY_BYTES)));
        let bytes = Bytes::from_request(limited, state)
            .await
            .map_err(|_| ApiError::PayloadTooLarge { limit: MAX_BODY_BYTES })?;
        parse_json(&bytes).map(StrictJson)
    }
}

/// Parses `bytes` as `T`, turning any failure into a 400 that names the field at fault.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let deserializer = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(deserializer).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::BadRequest(format!("the body is not valid JSON: {inner}"));
        }
        let reason = strip_position(&inner.to_string());
        // serde reports an unknown field at the path of the object that holds it; name the field itself.
        let parent = if path == "." { None } else { Some(path) };
        let name = match (unknown_field(&reason), parent) {
            (Some(field), Some(path)) if path == field || path.ends_with(&format!(".{field}")) => path,
            (Some(field), Some(parent)) => format!("{parent}.{field}"),
            (Some(field), None) => field.to_owned(),
            (None, Some(parent)) => parent,
            (None, None) => "body".to_owned(),
        };
        ApiError::Validation(vec![InvalidParam::new(name, reason)])
    })
}

/// The field serde names in "unknown field `x`" or "missing field `x`" messages. A missing field
/// is reported at the path of the enclosing object, so the name is appended there.
fn unknown_field(reason: &str) -> Option<&str> {
    reason.strip_prefix("unknown field `").or_else(|| reason.strip_prefix("missing field `"))?.split('`').next()
}

/// serde_json appends " at line 1 column 42"; the field name already says where.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// Reads or creates the correlation id, runs the request inside a span that carries it (so every
/// log line of the request has it), stores it in the request extensions for handlers, and
/// echoes it on the response. The W3C `traceparent` header is continued the same way: the
/// request runs as a new span of the caller's trace (or of a new one), its `trace_id` on every
/// log line, and [`shared_core::trace::current_traceparent`] answers with it for the calls and
/// events the request makes.
pub async fn correlation_layer(mut req: Request, next: Next) -> Response {
    let correlation_id =
        CorrelationId::from_header_or_new(req.headers().get(CORRELATION_HEADER).and_then(|v| v.to_str().ok()));
    req.extensions_mut().insert(correlation_id.clone());
    let trace = shared_core::trace::TraceContext::continue_from(
        req.headers().get(shared_core::trace::TRACEPARENT_HEADER).and_then(|v| v.to_str().ok()),
    );
    req.extensions_mut().insert(trace);
    let span = tracing::info_span!(
        "http",
        correlation_id = %correlation_id,
        trace_id = %trace.trace_id(),
        span_id = %trace.span_id(),
        method = %req.method(),
        path = %req.uri().path(),
    );
    let traced = async move {
        let started = std::time::Instant::now();
        let mut response = next.run(req).await;
        tracing::info!(
            status = response.status().as_u16(),
            duration_ms = started.elapsed().as_millis() as u64,
            "request handled"
        );
        if let Ok(value) = HeaderValue::from_str(correlation_id.as_str()) {
            response.headers_mut().insert(CORRELATION_HEADER, value);
        }
        response
    }
    .instrument(span);
    trace.scope(traced).await
}

/// Adds what every service router needs: problem+json for unknown routes (404) and unsupported
/// methods (405, with axum's `Allow` header kept), and the correlation-id middleware.
pub fn finish_router(router: Router) -> Router {
    router
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(correlation_layer))
}

async fn method_not_allowed() -> impl IntoResponse {
    ApiError::MethodNotAllowed
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        items: Vec<Item>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Item {
        quantity: u32,
    }

    fn invalid_names(err: ApiError) -> Vec<String> {
        match err {
            ApiError::Validation(params) => params.into_iter().map(|p| p.name).collect(),
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn type_errors_name_the_nested_field() {
        let err = parse_json::<Body>(br#"{"name":"a","items":[{"quantity":1},{"quantity":-3}]}"#).unwrap_err();
        assert_eq!(invalid_names(err), ["items[1].quantity"]);
    }

    #[test]
    fn unknown_and_missing_fields_are_named() {
        let err = parse_json::<Body>(br#"{"name":"a","items":[],"price":3}"#).unwrap_err();
        assert_eq!(invalid_names(err), ["price"]);
        let err = parse_json::<Body>(br#"{"name":"a","items":[{"quantity":1,"price":3}]}"#).unwrap_err();
        let ApiError::Validation(params) = err else { panic!() };
        assert_eq!(params[0].name, "items[0].price");
        assert!(params[0].reason.contains("unknown field `price`"), "{}", params[0].reason);
        let err = parse_json::<Body>(br#"{"items":[]}"#).unwrap_err();
        let ApiError::Validation(params) = err else { panic!() };
        assert!(params[0].reason.contains("missing field `name`"), "{}", params[0].reason);
        assert_eq!(params[0].name, "name");
    }

    #[derive(Clone, Default)]
    struct Lines(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_request_continues_the_callers_trace_and_its_log_lines_carry_trace_and_correlation_ids() {
        use tower::ServiceExt;
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_span_list(true)
            .with_writer(move || writer.clone())
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let router = finish_router(Router::new().route(
            "/t",
            axum::routing::get(|| async { shared_core::trace::current_traceparent().unwrap_or_default() }),
        ));
        let request = Request::get("/t")
            .header("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
            .header(CORRELATION_HEADER, "corr-7")
            .body(axum::body::Body::empty())
            .unwrap();
        let response = router.oneshot(request).await.unwrap();
        let body = axum::body::to_bytes(response.into_body(), 1024).await.unwrap();
        let seen = shared_core::trace::TraceContext::parse(std::str::from_utf8(&body).unwrap()).unwrap();
        assert_eq!(seen.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736", "calls made by the handler continue the trace");
        assert_ne!(seen.span_id(), "00f067aa0ba902b7");
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        let line: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
        assert_eq!(line["message"], "request handled");
        assert_eq!(line["spans"][0]["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(line["spans"][0]["correlation_id"], "corr-7");
        assert_eq!(line["spans"][0]["span_id"], seen.span_id());
    }

    #[test]
    fn broken_json_is_a_bad_request() {
        assert!(matches!(parse_json::<Body>(b"{\"name\":"), Err(ApiError::BadRequest(_))));
        assert!(matches!(parse_json::<Body>(b""), Err(ApiError::BadRequest(_))));
    }
}
