//! The strangler fig: routes not migrated yet go to the legacy backend, unchanged.
//!
//! The route table is configuration (`LEGACY_ROUTES`, comma-separated patterns such as
//! `/api/customers/*` or `/api/orders/{id}/invoice`), checked before the gateway's own routes:
//! moving a route off the legacy backend is removing its pattern, and moving it back is adding
//! it. The request keeps its method, path, query, headers (minus hop-by-hop ones) and body; both
//! bodies are streamed, never buffered. The legacy backend has its own timeout and breaker
//! (`LEGACY_*` variables); proxied calls are never retried (the body is consumed once).

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use shared::ApiError;
use shared::config::Lookup;
use shared::resilience::{CallError, Idempotency, Policy, ServiceClientConfig, Verdict};
use shared_core::CorrelationId;

/// Headers that describe one connection, not the message: never forwarded (RFC 9110 7.6.1).
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// A route pattern: literal segments, `{param}` for one segment, `*` at the end for the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutePattern(Vec<String>);

impl RoutePattern {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if !raw.starts_with('/') {
            return Err(format!("route pattern `{raw}` must start with /"));
        }
        let segments: Vec<String> = raw.trim_matches('/').split('/').map(str::to_owned).collect();
        if segments.iter().rev().skip(1).any(|s| s == "*") {
            return Err(format!("route pattern `{raw}`: * may only end a pattern"));
        }
        Ok(Self(segments))
    }

    pub fn matches(&self, path: &str) -> bool {
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        for (i, segment) in self.0.iter().enumerate() {
            if segment == "*" {
                return parts.len() > i;
            }
            let Some(part) = parts.get(i) else { return false };
            let param = segment.starts_with('{') && segment.ends_with('}');
            if !(param && !part.is_empty() || segment == part) {
                return false;
            }
        }
        parts.len() == self.0.len()
    }
}

#[derive(Clone)]
pub struct Legacy {
    base_url: String,
    routes: Vec<RoutePattern>,
    policy: Policy,
}

/// The legacy backend did not answer, or answered 5xx.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct ProxyError(String);

impl Legacy {
    /// `LEGACY_ROUTES` and `LEGACY_BASE_URL` (+ `LEGACY_*` policy variables); `None` when no
    /// route goes to the legacy backend.
    pub fn from_lookup(env: Lookup<'_>) -> Result<Option<Self>, String> {
        let routes: Vec<RoutePattern> = env("LEGACY_ROUTES")
            .unwrap_or_default()
            .split(',')
            .filter(|r| !r.trim().is_empty())
            .map(RoutePattern::parse)
            .collect::<Result<_, _>>()
            .map_err(|e| format!("LEGACY_ROUTES: {e}"))?;
        if routes.is_empty() {
            return Ok(None);
        }
        let config = ServiceClientConfig::from_lookup("LEGACY", env).map_err(|e| e.to_string())?;
        let policy = config.policy().map_err(|e| e.to_string())?;
        // The process's one HTTP client (`shared::resilience::http_client`), built on first use.
        Ok(Some(Self { base_url: config.base_url, routes, policy }))
    }

    pub fn handles(&self, path: &str) -> bool {
        self.routes.iter().any(|r| r.matches(path))
    }

    /// Forwards the request and streams the answer back.
    pub async fn proxy(&self, request: Request, correlation_id: &CorrelationId) -> Response {
        let (parts, body) = request.into_parts();
        let path_and_query = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let url = format!("{}{path_and_query}", self.base_url);
        let mut headers = forwardable(&parts.headers);
        headers.remove(header::HOST);
        if let Ok(value) = HeaderValue::from_str(correlation_id.as_str()) {
            headers.insert(HeaderName::from_static(shared_core::correlation::CORRELATION_HEADER), value);
        }
        let mut body = Some(reqwest::Body::wrap_stream(body.into_data_stream()));
        let result = self
            .policy
            .call(
                Idempotency::NotIdempotent,
                |_: &ProxyError| Verdict::TRANSIENT,
                || {
                    let request =
                        shared::resilience::http_client().request(parts.method.clone(), &url).headers(headers.clone());
                    let request = match body.take() {
                        Some(body) => request.body(body),
                        None => request,
                    };
                    async move {
                        let response = request.send().await.map_err(|e| ProxyError(e.to_string()))?;
                        if response.status().is_server_error() {
                            return Err(ProxyError(format!("HTTP {}", response.status())));
                        }
                        Ok(response)
                    }
                },
            )
            .await;
        match result {
            Ok(response) => {
                let status = StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
                let headers = forwardable(response.headers());
                let mut answer = Response::new(Body::from_stream(response.bytes_stream()));
                *answer.status_mut() = status;
                *answer.headers_mut() = headers;
                answer
            }
            Err(err) => {
                let retry_after = match &err {
                    CallError::CircuitOpen { remaining, .. } => remaining.as_secs().max(1),
                    _ => 1,
                };
                tracing::warn!(error = %err, "legacy backend unavailable");
                let mut response =
                    ApiError::Unavailable("the legacy backend is unavailable; try again".into()).into_response();
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
                response
            }
        }
    }
}

fn forwardable(headers: &HeaderMap) -> HeaderMap {
    let mut out = headers.clone();
    // Headers named by Connection are hop-by-hop too.
    let named: Vec<String> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|s| s.trim().to_ascii_lowercase()).collect::<Vec<_>>())
        .collect();
    for name in HOP_BY_HOP.iter().map(|s| s.to_string()).chain(named) {
        out.remove(name.as_str());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_literals_params_and_a_trailing_wildcard() {
        let customers = RoutePattern::parse("/api/customers/*").unwrap();
        assert!(customers.matches("/api/customers/7"));
        assert!(customers.matches("/api/customers/7/addresses"));
        assert!(!customers.matches("/api/customers"));
        assert!(!customers.matches("/api/orders/7"));
        let invoice = RoutePattern::parse("/api/orders/{id}/invoice").unwrap();
        assert!(invoice.matches("/api/orders/42/invoice"));
        assert!(!invoice.matches("/api/orders/42"));
        assert!(RoutePattern::parse("api/x").is_err());
        assert!(RoutePattern::parse("/api/*/x").is_err());
    }

    #[test]
    fn hop_by_hop_headers_and_those_named_by_connection_are_dropped() {
        let mut headers = HeaderMap::new();
        headers.insert("connection", HeaderValue::from_static("keep-alive, x-private"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert("x-private", HeaderValue::from_static("1"));
        headers.insert("authorization", HeaderValue::from_static("Bearer t"));
        let out = forwardable(&headers);
        assert_eq!(out.keys().map(|k| k.as_str()).collect::<Vec<_>>(), ["authorization"]);
    }
}
