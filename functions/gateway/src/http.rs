//! The gateway's public routes as an axum router.

use std::time::Duration;

use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use shared::http::{StrictJson, finish_router};
use shared::resilience::{CallError, HttpError, HttpReply};
use shared::{ApiError, CorrelationId};

use std::sync::Arc;

use axum::extract::Request;
use axum::middleware::{self, Next};
use shared::correlation::CORRELATION_HEADER;

use crate::legacy::Legacy;
use crate::upstream::{Failure, Upstreams};

/// The public API. Routes in the legacy route table go to the legacy backend before any of the
/// gateway's own routes is considered.
pub fn router(upstreams: Upstreams, legacy: Option<Legacy>) -> Router {
    let routes = Router::new()
        .route("/api/orders", post(place_order))
        .route("/api/orders/{id}", get(get_order))
        .route("/api/products/{sku}", get(get_product))
        .with_state(upstreams);
    let app = finish_router(routes);
    match legacy {
        Some(legacy) => app.layer(middleware::from_fn_with_state(Arc::new(legacy), strangle)),
        None => app,
    }
}

async fn strangle(State(legacy): State<Arc<Legacy>>, request: Request, next: Next) -> Response {
    if !legacy.handles(request.uri().path()) {
        return next.run(request).await;
    }
    let correlation_id =
        CorrelationId::from_header_or_new(request.headers().get(CORRELATION_HEADER).and_then(|v| v.to_str().ok()));
    let mut response = legacy.proxy(request, &correlation_id).await;
    if let Ok(value) = HeaderValue::from_str(correlation_id.as_str()) {
        response.headers_mut().insert(CORRELATION_HEADER, value);
    }
    response
}

/// A path segment as it must travel downstream: unreserved characters as they are, the rest
/// percent-encoded, so a client cannot smuggle `/` or `?` into the service's path.
fn segment(raw: &str) -> String {
    raw.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A downstream answer passed to the client as it came.
fn relay(reply: HttpReply) -> Response {
    let mut response = (reply.status, reply.body).into_response();
    for name in [header::CONTENT_TYPE, header::LOCATION, HeaderName::from_static("idempotent-replayed")] {
        if let Some(value) = reply.headers.get(&name) {
            response.headers_mut().insert(name, value.clone());
        }
    }
    response
}

/// What the client gets when `service` failed.
fn failure(service: &str, failure: Failure) -> Response {
    match failure {
        Failure::Answered { status, body } => {
            let content_type = HeaderValue::from_static("application/problem+json");
            (status, [(header::CONTENT_TYPE, content_type)], body).into_response()
        }
        Failure::Unavailable { retry_after, reason } => {
            tracing::warn!(service, reason, "downstream unavailable");
            let mut response =
                ApiError::Unavailable(format!("the {service} service is unavailable; try again")).into_response();
            let seconds = retry_after.as_secs().max(1).to_string();
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_str(&seconds).expect("digits"));
            response
        }
    }
}

async fn place_order(
    State(upstreams): State<Upstreams>,
    Extension(correlation_id): Extension<CorrelationId>,
    headers: HeaderMap,
    StrictJson(body): StrictJson<Value>,
) -> Response {
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok());
    // Retried only with a key: orders then replays instead of placing a second order.
    match upstreams.orders.send(Method::POST, "/orders", Some(&body), key, &correlation_id).await {
        Ok(reply) => relay(reply),
        Err(err) => failure("orders", err.into()),
    }
}

async fn get_product(
    State(upstreams): State<Upstreams>,
    Extension(correlation_id): Extension<CorrelationId>,
    Path(sku): Path<String>,
) -> Response {
    match upstreams.inventory.get(&format!("/inventory/{}", segment(&sku)), &correlation_id).await {
        Ok(reply) => relay(reply),
        Err(err) => failure("inventory", err.into()),
    }
}

/// A part of the order view: present, absent (the service has none: 404), or missing because
/// its service failed.
fn part(
    result: Result<HttpReply, CallError<HttpError>>,
    name: &'static str,
    degraded: &mut Vec<&'static str>,
) -> Value {
    match result {
        Ok(reply) => reply.json().unwrap_or_else(|_| {
            degraded.push(name);
            Value::Null
        }),
        Err(CallError::Inner(HttpError::Status { status: StatusCode::NOT_FOUND, .. })) => Value::Null,
        Err(err) => {
            tracing::warn!(part = name, error = %err, "order view without this part");
            degraded.push(name);
            Value::Null
        }
    }
}

/// The order, its payment and its reservation, fetched in parallel.
async fn get_order(
    State(upstreams): State<Upstreams>,
    Extension(correlation_id): Extension<CorrelationId>,
    Path(id): Path<String>,
) -> Response {
    let id = segment(&id);
    let (order_path, payment_path, reservation_path) =
        (format!("/orders/{id}"), format!("/payments/order/{id}"), format!("/reservations/order/{id}"));
    let saga = async {
        match &upstreams.saga {
            Some(saga) => Some(tokio::time::timeout(Duration::from_secs(2), saga.progress(&id)).await),
            None => None,
        }
    };
    let (order, payment, reservation, saga) = tokio::join!(
        upstreams.orders.get(&order_path, &correlation_id),
        upstreams.payments.get(&payment_path, &correlation_id),
        upstreams.inventory.get(&reservation_path, &correlation_id),
        saga,
    );
    let order: Value = match order.map(|reply| reply.json::<Value>()) {
        Ok(Ok(order)) => order,
        Ok(Err(e)) => {
            return failure(
                "orders",
                Failure::Unavailable { retry_after: Duration::from_secs(1), reason: e.to_string() },
            );
        }
        Err(err) => return failure("orders", err.into()),
    };
    let mut degraded = Vec::new();
    let payment = part(payment, "payment", &mut degraded);
    let reservation = part(reservation, "reservation", &mut degraded);
    let saga = match saga {
        Some(Ok(Ok(progress))) => json!(progress),
        None => Value::Null,
        Some(Ok(Err(error))) => {
            tracing::warn!(part = "saga", error, "order view without this part");
            degraded.push("saga");
            Value::Null
        }
        Some(Err(_)) => {
            tracing::warn!(part = "saga", "saga progress timed out");
            degraded.push("saga");
            Value::Null
        }
    };
    Json(json!({ "order": order, "payment": payment, "reservation": reservation, "saga": saga, "degraded": degraded }))
        .into_response()
}
