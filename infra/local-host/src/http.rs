//! The template's HTTP API routes on one local port: a request is matched against the routes
//! the template declares (method and path, `{param}` and `{proxy+}`), and handed to the router of
//! the function the route belongs to, as API Gateway would invoke it. A path the template does
//! not declare is a 404 even if some function's router knows it. Of several matching routes the
//! most specific wins, as in API Gateway: no greedy `{proxy+}` before one, more literal segments
//! before fewer, a method before `ANY`
//! (<https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-routes.html>).
//!
//! Before a route's function runs, its authorization is enforced as API Gateway enforces it
//! (see [`crate::auth`] and [`crate::sigv4`]): a JWT route refuses a bad token with 401 and hands
//! the token's claims to the function in `requestContext.authorizer.jwt.claims`; an `AWS_IAM`
//! route refuses an unsigned or wrongly signed call with 403. `/_local/...` is the local token
//! issuer.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use tower::ServiceExt;

use crate::Invocation;
use crate::activity::Activity;
use crate::auth::{ISSUER_PATH, LocalIssuer, RouteAuth, TokenRequest};
use crate::sigv4::IamVerifier;

/// API Gateway's largest payload (10 MB), the most an `AWS_IAM` route's body is read for its hash.
const MAX_SIGNED_BODY: usize = 10 * 1024 * 1024;

#[derive(Clone)]
pub(crate) struct Route {
    pub method: String,
    pub path: String,
    pub binary: String,
    pub auth: RouteAuth,
    segments: Vec<String>,
    router: axum::Router,
}

impl Route {
    pub fn new(method: String, path: String, binary: String, router: axum::Router, auth: RouteAuth) -> Self {
        let segments = path.trim_matches('/').split('/').map(str::to_owned).collect();
        Self { method: method.to_ascii_uppercase(), path, binary, auth, segments, router }
    }

    /// How specific the route is: API Gateway prefers the highest.
    fn specificity(&self) -> (bool, usize, bool) {
        let greedy = self.segments.iter().any(|s| s.ends_with("+}"));
        let literals = self.segments.iter().filter(|s| !s.starts_with('{')).count();
        (!greedy, literals, self.method != "ANY")
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
    issuer: Arc<LocalIssuer>,
    iam: IamVerifier,
}

pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    routes: Vec<Route>,
    activity: Arc<Activity>,
    issuer: Arc<LocalIssuer>,
    iam: IamVerifier,
) {
    let state = Routes { routes: Arc::new(routes), activity, issuer, iam };
    let app = axum::Router::new().fallback(dispatch).with_state(state);
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!(error = %e, "the local HTTP API stopped");
    }
}

/// The local token issuer: `POST /_local/token`, its discovery document and its keys.
async fn issue(issuer: &LocalIssuer, request: Request) -> Response {
    let json = |status: StatusCode, body: serde_json::Value| {
        (status, [(http::header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
    };
    let path = request.uri().path().strip_prefix(ISSUER_PATH).unwrap_or_default().to_owned();
    match (request.method().as_str(), path.as_str()) {
        ("GET", "/.well-known/openid-configuration") => json(StatusCode::OK, issuer.openid_configuration()),
        ("GET", "/.well-known/jwks.json") => {
            json(StatusCode::OK, serde_json::to_value(issuer.jwks()).unwrap_or_default())
        }
        ("POST", "/token") => {
            let body = axum::body::to_bytes(request.into_body(), 64 * 1024).await.unwrap_or_default();
            match serde_json::from_slice::<TokenRequest>(&body)
                .map_err(|e| e.to_string())
                .and_then(|r| issuer.token(&r))
            {
                Ok(token) => json(StatusCode::OK, token),
                Err(reason) => json(
                    StatusCode::BAD_REQUEST,
                    serde_json::json!({"error": "invalid_request", "error_description": reason,
                        "expected": {"sub": "c1", "groups": ["admin"], "expires_in": 3600}}),
                ),
            }
        }
        _ => json(
            StatusCode::NOT_FOUND,
            serde_json::json!({"error": "not_found",
            "routes": ["POST /_local/token", "GET /_local/.well-known/openid-configuration", "GET /_local/.well-known/jwks.json"]}),
        ),
    }
}

/// The request as the route's function may see it, or API Gateway's refusal.
async fn authorize(state: &Routes, route: &Route, request: Request) -> Result<Request, Response> {
    match &route.auth {
        RouteAuth::None => Ok(request),
        RouteAuth::Jwt(authorizer) => match authorizer.authorize(request.headers()).await {
            Ok(claims) => Ok(gateway::caller::with_claims(request, serde_json::Value::Object(claims))),
            Err(refusal) => Err(refusal.response()),
        },
        RouteAuth::Iam => {
            let (parts, body) = request.into_parts();
            let body = axum::body::to_bytes(body, MAX_SIGNED_BODY).await.map_err(|_| {
                (StatusCode::PAYLOAD_TOO_LARGE, r#"{"message":"Request Entity Too Large"}"#).into_response()
            })?;
            let path_and_query = parts.uri.path_and_query().map_or("/", |p| p.as_str());
            state
                .iam
                .verify(parts.method.as_str(), path_and_query, &parts.headers, &body, std::time::SystemTime::now())
                .map_err(|refusal| refusal.response())?;
            Ok(Request::from_parts(parts, Body::from(body)))
        }
    }
}

async fn dispatch(State(state): State<Routes>, request: Request) -> Response {
    let method = request.method().as_str().to_owned();
    let path = request.uri().path().to_owned();
    if method == "GET" && path == crate::metrics::PATH {
        return crate::metrics::serve_metrics().await.into_response();
    }
    if path.starts_with(&format!("{ISSUER_PATH}/")) {
        return issue(&state.issuer, request).await;
    }
    let route = state.routes.iter().filter(|r| r.matches(&method, &path)).max_by_key(|r| r.specificity());
    let Some(route) = route else {
        let body = serde_json::json!({
            "type": "about:blank", "title": "Not Found", "status": 404,
            "detail": format!("no route {method} {path} in template.yaml"),
        });
        return (StatusCode::NOT_FOUND, [(http::header::CONTENT_TYPE, "application/problem+json")], body.to_string())
            .into_response();
    };
    let started = Instant::now();
    let request = match authorize(&state, route, request).await {
        Ok(request) => request,
        Err(refusal) => return refusal,
    };
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
        Route::new(method.into(), path.into(), "b".into(), axum::Router::new(), RouteAuth::None)
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

    #[test]
    fn the_most_specific_route_wins() {
        let routes =
            [route("ANY", "/api/{proxy+}"), route("GET", "/api/products/{sku}"), route("GET", "/api/openapi.json")];
        let pick = |method: &str, path: &str| {
            routes.iter().filter(|r| r.matches(method, path)).max_by_key(|r| r.specificity()).map(|r| r.path.clone())
        };
        assert_eq!(pick("GET", "/api/openapi.json").as_deref(), Some("/api/openapi.json"));
        assert_eq!(pick("GET", "/api/products/A").as_deref(), Some("/api/products/{sku}"));
        assert_eq!(pick("PUT", "/api/products/A").as_deref(), Some("/api/{proxy+}"));
        assert_eq!(pick("GET", "/api/orders").as_deref(), Some("/api/{proxy+}"));
    }
}
