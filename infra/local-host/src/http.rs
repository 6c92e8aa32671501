//! The template's HTTP API routes on one local port: a request is matched against the routes
//! the template declares (method and path, `{param}` and `{proxy+}`), and handed to the router of
//! the function the route belongs to, as API Gateway would invoke it. A path the template does
//! not declare is a 404 even if some function's router knows it.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use tower::ServiceExt;

use crate::Invocation;
use crate::activity::Activity;

#[derive(Clone)]
pub(crate) struct Route {
    pub method: String,
    pub path: String,
    pub binary: String,
    segments: Vec<String>,
    router: axum::Router,
}

impl Route {
    pub fn new(method: String, path: String, binary: String, router: axum::Router) -> Self {
        let segments = path.trim_matches('/').split('/').map(str::to_owned).collect();
        Self { method: method.to_ascii_uppercase(), path, binary, segments, router }
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        if self.method != "ANY" && self.method != method {
            return false;
        }
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        for (i, segment) in self.segments.iter().enumerate() {
            if segment.starts_with('{') && segment.ends_with("+}") {
                return parts.len() > i;
            }
            let Some(part) = parts.get(i) else { return false };
            let is_param = segment.starts_with('{') && segment.ends_with('}');
            if !(is_param && !part.is_empty() || segment == part) {
                return false;
            }
        }
        parts.len() == self.segments.len()
    }
}

#[derive(Clone)]
struct Routes {
    routes: Arc<Vec<Route>>,
    activity: Arc<Activity>,
}

pub(crate) async fn serve(listener: tokio::net::TcpListener, routes: Vec<Route>, activity: Arc<Activity>) {
    let app = axum::Router::new().fallback(dispatch).with_state(Routes { routes: Arc::new(routes), activity });
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!(error = %e, "the local HTTP API stopped");
    }
}

async fn dispatch(State(state): State<Routes>, request: Request) -> Response {
    let method = request.method().as_str().to_owned();
    let path = request.uri().path().to_owned();
    if method == "GET" && path == crate::metrics::PATH {
        return crate::metrics::serve_metrics().await.into_response();
    }
    let Some(route) = state.routes.iter().find(|r| r.matches(&method, &path)) else {
        let body = serde_json::json!({
            "type": "about:blank", "title": "Not Found", "status": 404,
            "detail": format!("no route {method} {path} in template.yaml"),
        });
        return (StatusCode::NOT_FOUND, [(http::header::CONTENT_TYPE, "application/problem+json")], body.to_string())
            .into_response();
    };
    let started = Instant::now();
    let response = route.router.clone().oneshot(request.map(Body::new)).await.into_response();
    let status = response.status();
    state.activity.record(Invocation {
        at: Default::default(),
        binary: route.binary.clone(),
        trigger: format!("HTTP {method} {path}"),
        order_id: None,
        correlation_id: response.headers().get("x-correlation-id").and_then(|v| v.to_str().ok()).map(str::to_owned),
        duration: started.elapsed(),
        attempt: 1,
        outcome: if status.is_server_error() { Err(status.to_string()) } else { Ok(None) },
    });
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(method: &str, path: &str) -> Route {
        Route::new(method.into(), path.into(), "b".into(), axum::Router::new())
    }

    #[test]
    fn routes_match_literals_parameters_and_greedy_proxies() {
        assert!(route("GET", "/orders/{id}").matches("GET", "/orders/42"));
        assert!(!route("GET", "/orders/{id}").matches("POST", "/orders/42"));
        assert!(!route("GET", "/orders/{id}").matches("GET", "/orders/42/items"));
        assert!(!route("GET", "/orders/{id}").matches("GET", "/orders/"));
        assert!(route("POST", "/orders").matches("POST", "/orders"));
        assert!(route("ANY", "/api/customers/{proxy+}").matches("DELETE", "/api/customers/7/addresses"));
        assert!(!route("ANY", "/api/customers/{proxy+}").matches("GET", "/api/customers"));
    }
}
