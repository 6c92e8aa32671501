//! The gateway's public routes as an axum router, and the OpenAPI document generated from them:
//! every route is registered through `utoipa_axum::routes!`, so the router and the document
//! cannot disagree about paths and methods.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::extract::{Extension, Path, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde::Serialize;
use serde::de::DeserializeOwned;
use shared::correlation::CORRELATION_HEADER;
use shared::http::{StrictJson, finish_router};
use shared::resilience::{CallError, HttpError, HttpReply};
use shared::{ApiError, CorrelationId};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::{Order, OrderView, Part, Payment, PlaceOrder, Problem, Product, Reservation};
use crate::legacy::Legacy;
use crate::upstream::{Failure, Upstreams};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Shop API",
        description = "The public API of the shop: orders, their fulfilment, and the catalogue. \
            Every error is an RFC 9457 problem document (`application/problem+json`). \
            Every response carries `X-Correlation-Id`: the client's, or a new one. \
            Routes not migrated off the legacy backend yet (`LEGACY_ROUTES`) are proxied to it \
            and are not described here."
    ),
    tags((name = "orders", description = "Placing orders and following their fulfilment"),
         (name = "catalogue", description = "Products and their stock"),
         (name = "meta", description = "This document"))
)]
struct ApiDoc;

/// The documented routes, still waiting for their state.
fn documented() -> OpenApiRouter<Upstreams> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(place_order))
        .routes(routes!(get_order))
        .routes(routes!(get_product))
        .routes(routes!(get_openapi))
}

/// The public API's OpenAPI 3.1 document (checked into `infra/openapi.json`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    static DOCUMENT: OnceLock<utoipa::openapi::OpenApi> = OnceLock::new();
    DOCUMENT.get_or_init(|| documented().into_openapi()).clone()
}

/// The public API. Routes in the legacy route table go to the legacy backend before any of the
/// gateway's own routes is considered.
pub fn router(upstreams: Upstreams, legacy: Option<Legacy>) -> Router {
    let (routes, _) = documented().with_state(upstreams).split_for_parts();
    let app = finish_router(routes);
    match legacy {
        Some(legacy) => app.layer(middleware::from_fn_with_state(Arc::new(legacy), strangle)),
        None => app,
    }
}

/// This document.
#[utoipa::path(get, path = "/api/openapi.json", tag = "meta",
    responses((status = 200, description = "The OpenAPI 3.1 document of this API", body = Object)))]
async fn get_openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(openapi())
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

/// A downstream success decoded into the public contract. An answer that does not fit the
/// contract is the service failing.
fn relay<T: DeserializeOwned + Serialize>(service: &str, reply: HttpReply) -> Response {
    match reply.json::<T>() {
        Ok(value) => (reply.status, Json(value)).into_response(),
        Err(e) => failure(service, bad_answer(e)),
    }
}

const REPLAYED_HEADER: HeaderName = HeaderName::from_static("idempotent-replayed");

fn bad_answer(error: serde_json::Error) -> Failure {
    Failure::Unavailable {
        retry_after: Duration::from_secs(1),
        reason: format!("answer outside the contract: {error}"),
    }
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

/// Place an order.
///
/// The order is `PENDING` until its fulfilment saga reserves the stock, charges the payment
/// method and confirms it (or cancels it); follow it with `GET /api/orders/{id}`. Send an
/// `Idempotency-Key` to retry safely: the same key with the same body returns the first answer.
#[utoipa::path(post, path = "/api/orders", tag = "orders", request_body = PlaceOrder,
    params(("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$",
        description = "1 to 255 visible ASCII characters. Makes the request safe to repeat: the same key and body return the first answer")),
    responses(
        (status = 201, description = "The order, placed (or, with `Idempotent-Replayed: true`, placed earlier with this key)",
            body = Order, headers(("Location" = String, description = "Where to follow the order"),
                ("Idempotent-Replayed" = String, description = "`true` when this answer repeats the first one for this key"))),
        (status = 400, description = "The request (body or Idempotency-Key) does not match this document",
            body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is larger than 64 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The body matches this document but breaks a rule it cannot state: a sku on two lines, or an Idempotency-Key used before with another body",
            body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The orders service is unavailable; try again after `Retry-After` seconds",
            body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u32, description = "Seconds to wait"))),
    ))]
async fn place_order(
    State(upstreams): State<Upstreams>,
    Extension(correlation_id): Extension<CorrelationId>,
    headers: HeaderMap,
    StrictJson(order): StrictJson<PlaceOrder>,
) -> Response {
    let key = match headers.get("idempotency-key").map(|v| v.to_str()) {
        None => None,
        Some(Ok(key)) => Some(key),
        Some(Err(_)) => {
            return ApiError::invalid("Idempotency-Key", "must be visible ASCII characters").into_response();
        }
    };
    // Retried only with a key: orders then replays instead of placing a second order.
    let body = serde_json::to_value(&order).expect("a request of plain fields serialises");
    let reply = match upstreams.orders.send(Method::POST, "/orders", Some(&body), key, &correlation_id).await {
        Ok(reply) => reply,
        Err(err) => return failure("orders", err.into()),
    };
    let order: Order = match reply.json() {
        Ok(order) => order,
        Err(e) => return failure("orders", bad_answer(e)),
    };
    // The order's public address, not the service's internal one.
    let location = format!("/api/orders/{}", segment(&order.id));
    let mut response = (reply.status, [(header::LOCATION, location)], Json(order)).into_response();
    if let Some(value) = reply.headers.get(REPLAYED_HEADER) {
        response.headers_mut().insert(REPLAYED_HEADER, value.clone());
    }
    response
}

/// A product of the catalogue with its stock.
#[utoipa::path(get, path = "/api/products/{sku}", tag = "catalogue",
    params(("sku" = String, Path, description = "The product's sku", example = "SKU-RED-MUG")),
    responses(
        (status = 200, description = "The product", body = Product),
        (status = 404, description = "No such product", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The inventory service is unavailable; try again after `Retry-After` seconds",
            body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u32, description = "Seconds to wait"))),
    ))]
async fn get_product(
    State(upstreams): State<Upstreams>,
    Extension(correlation_id): Extension<CorrelationId>,
    Path(sku): Path<String>,
) -> Response {
    match upstreams.inventory.get(&format!("/inventory/{}", segment(&sku)), &correlation_id).await {
        Ok(reply) => relay::<Product>("inventory", reply),
        Err(err) => failure("inventory", err.into()),
    }
}

/// A part of the order view: present, absent (the service has none: 404), or missing because
/// its service failed or answered outside the contract.
fn part<T: DeserializeOwned>(
    result: Result<HttpReply, CallError<HttpError>>,
    name: Part,
    degraded: &mut Vec<Part>,
) -> Option<T> {
    let error = match result {
        Ok(reply) => match reply.json() {
            Ok(value) => return Some(value),
            Err(e) => e.to_string(),
        },
        Err(CallError::Inner(HttpError::Status { status: StatusCode::NOT_FOUND, .. })) => return None,
        Err(err) => err.to_string(),
    };
    tracing::warn!(part = ?name, error, "order view without this part");
    degraded.push(name);
    None
}

/// An order with its payment, its reservation and its saga's progress.
///
/// The parts are fetched in parallel. If payments, inventory or the saga's history fail, time
/// out or are behind an open breaker, the answer is still 200: the missing parts are `null` and
/// named in `degraded`. Only the order itself is essential.
#[utoipa::path(get, path = "/api/orders/{id}", tag = "orders",
    params(("id" = uuid::Uuid, Path, description = "The order's id")),
    responses(
        (status = 200, description = "The order and what is known of its fulfilment", body = OrderView),
        (status = 400, description = "The id is not an order id", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such order", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The orders service is unavailable; try again after `Retry-After` seconds",
            body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u32, description = "Seconds to wait"))),
    ))]
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
    let order: Order = match order.map(|reply| reply.json()) {
        Ok(Ok(order)) => order,
        Ok(Err(e)) => return failure("orders", bad_answer(e)),
        Err(err) => return failure("orders", err.into()),
    };
    let mut degraded = Vec::new();
    let payment = part::<Payment>(payment, Part::Payment, &mut degraded);
    let reservation = part::<Reservation>(reservation, Part::Reservation, &mut degraded);
    let saga = match saga {
        Some(Ok(Ok(progress))) => progress,
        None => None,
        Some(Ok(Err(error))) => {
            tracing::warn!(part = "saga", error, "order view without this part");
            degraded.push(Part::Saga);
            None
        }
        Some(Err(_)) => {
            tracing::warn!(part = "saga", "saga progress timed out");
            degraded.push(Part::Saga);
            None
        }
    };
    Json(OrderView { order, payment, reservation, saga, degraded }).into_response()
}
