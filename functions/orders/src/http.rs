//! The orders HTTP API as an axum router: served by `lambda_http` in Lambda, and in-process by
//! tests and the local system.

use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use shared::ApiError;
use shared::http::{StrictJson, finish_router};
use shared_core::OrderId;
use shared_core::{CorrelationId, InvalidParam};

use crate::domain::{Order, OrderLine, OrderStatus, PlaceOrderRequest};
use crate::parking::Parking;
use crate::service::{OrderService, OrdersError};

/// An order as the orders API answers it: the domain's fields without what only the store needs
/// (`version`, the optimistic lock). A reader ignores fields it does not know.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderView {
    pub id: OrderId,
    pub customer_id: String,
    /// A payment provider token (e.g. `pm_card_visa`), never card data.
    pub payment_method: String,
    pub lines: Vec<OrderLine>,
    pub status: OrderStatus,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub cancellation_reason: Option<String>,
    /// Why and until when a `COMPENSATION_PENDING` order is parked; kept once it is cancelled.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub parking: Option<Parking>,
    #[serde(with = "shared_core::envelope::rfc3339_millis")]
    pub created_at: chrono::DateTime<chrono::Utc>,
    #[serde(with = "shared_core::envelope::rfc3339_millis")]
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

impl From<Order> for OrderView {
    fn from(order: Order) -> Self {
        let Order {
            id,
            customer_id,
            payment_method,
            lines,
            status,
            cancellation_reason,
            parking,
            created_at,
            updated_at,
            version: _,
        } = order;
        Self { id, customer_id, payment_method, lines, status, cancellation_reason, parking, created_at, updated_at }
    }
}

pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";
/// Set on a response that repeats an earlier one for the same idempotency key.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

impl From<OrdersError> for ApiError {
    fn from(err: OrdersError) -> Self {
        match err {
            OrdersError::Invalid(params) => ApiError::Validation(params),
            OrdersError::Unprocessable(params) => ApiError::BrokenRule(params),
            OrdersError::NotFound(id) => ApiError::NotFound(format!("order {id} does not exist")),
            OrdersError::IdempotencyKeyReused => {
                ApiError::Unprocessable("this Idempotency-Key was already used with a different request body".into())
            }
            e @ OrdersError::Illegal(_) => ApiError::Conflict(e.to_string()),
            e @ OrdersError::Contended(_) => ApiError::Unavailable(e.to_string()),
            OrdersError::Store(other) => ApiError::internal(other),
        }
    }
}

pub fn router(service: OrderService) -> Router {
    let routes = Router::new()
        .route("/orders", get(list_orders).post(place_order))
        .route("/orders/{id}", get(get_order))
        .with_state(service);
    finish_router(routes)
}

async fn place_order(
    State(service): State<OrderService>,
    Extension(correlation_id): Extension<CorrelationId>,
    headers: HeaderMap,
    StrictJson(request): StrictJson<PlaceOrderRequest>,
) -> Result<Response, ApiError> {
    let key = match headers.get(IDEMPOTENCY_HEADER) {
        Some(value) => {
            Some(value.to_str().map_err(|_| ApiError::invalid("Idempotency-Key", "must be visible ASCII characters"))?)
        }
        None => None,
    };
    let placed = service.place_order(request, &correlation_id, key).await?;
    let location = HeaderValue::from_str(&format!("/orders/{}", placed.order.id)).expect("ids are header-safe");
    let mut response =
        (StatusCode::CREATED, [(header::LOCATION, location)], Json(OrderView::from(placed.order))).into_response();
    if placed.replayed {
        response.headers_mut().insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// `?customer_id=` scopes the read to that customer: another customer's order is a 404, as one
/// that does not exist. The gateway always sends it for a customer; only an admin reads without.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GetQuery {
    customer_id: Option<String>,
}

async fn get_order(
    State(service): State<OrderService>,
    Path(id): Path<String>,
    query: Result<Query<GetQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<OrderView>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let id = shared::http::parse_order_id("id", &id)?;
    let order = match query.customer_id {
        Some(customer_id) => service.get_customer_order(id, &customer_id).await?,
        None => service.get_order(id).await?,
    };
    Ok(Json(order.into()))
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    customer_id: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

#[derive(Debug, Serialize)]
struct OrderList {
    orders: Vec<OrderView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

async fn list_orders(
    State(service): State<OrderService>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<OrderList>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let customer_id = query.customer_id.ok_or_else(|| ApiError::invalid("customer_id", "is required"))?;
    let limit = query
        .limit
        .map(|raw| {
            raw.parse::<usize>().map_err(|_| ApiError::Validation(vec![InvalidParam::new("limit", "must be a number")]))
        })
        .transpose()?;
    let page = service.list_orders(&customer_id, limit, query.cursor.as_deref()).await?;
    let orders = page.orders.into_iter().map(OrderView::from).collect();
    Ok(Json(OrderList { orders, next_cursor: page.next_cursor }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::IllegalTransition;

    /// Each error answers the status its doc line names.
    #[test]
    fn each_error_answers_the_status_its_doc_names() {
        let id = OrderId::new();
        let illegal = IllegalTransition { from: OrderStatus::Cancelled, to: OrderStatus::Confirmed };
        let cases = [
            (OrdersError::Invalid(vec![InvalidParam::new("items", "must not be empty")]), StatusCode::BAD_REQUEST),
            (OrdersError::Unprocessable(Vec::new()), StatusCode::UNPROCESSABLE_ENTITY),
            (OrdersError::NotFound(id), StatusCode::NOT_FOUND),
            (OrdersError::IdempotencyKeyReused, StatusCode::UNPROCESSABLE_ENTITY),
            (OrdersError::Illegal(illegal), StatusCode::CONFLICT),
            (OrdersError::Contended(id), StatusCode::SERVICE_UNAVAILABLE),
            (OrdersError::Store(crate::ports::StoreError::Backend("down".into())), StatusCode::INTERNAL_SERVER_ERROR),
        ];
        for (error, status) in cases {
            let name = format!("{error:?}");
            assert_eq!(ApiError::from(error).status(), status, "{name}");
        }
    }
}
