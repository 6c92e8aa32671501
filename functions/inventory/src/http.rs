//! The inventory HTTP API (internal, IAM auth in AWS) as an axum router.

use axum::extract::{Extension, Path, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use shared::ApiError;
use shared::http::{StrictJson, finish_router};
use shared_core::CorrelationId;

use crate::domain::{Money, Product, ProductSpec, Reservation, Restock};
use crate::ports::RestockOutcome;
use crate::service::{InventoryError, InventoryService};

impl From<InventoryError> for ApiError {
    fn from(err: InventoryError) -> Self {
        match err {
            InventoryError::Invalid(params) => ApiError::Validation(params),
            InventoryError::UnknownSku(sku) => ApiError::NotFound(format!("no product with sku {sku}")),
            InventoryError::Plan(e) => ApiError::Unprocessable(e.to_string()),
            e @ InventoryError::CannotCommit { .. } => ApiError::Conflict(e.to_string()),
            InventoryError::Contended => ApiError::Unavailable("the stock is changing fast; try again".into()),
            InventoryError::Store(e) => ApiError::internal(e),
        }
    }
}

/// What clients see of a product.
#[derive(Debug, Serialize)]
struct ProductView {
    sku: String,
    name: String,
    price: Money,
    available: u64,
    low_stock_threshold: u64,
}

impl From<Product> for ProductView {
    fn from(p: Product) -> Self {
        Self {
            sku: p.sku,
            name: p.name,
            price: p.price,
            available: p.available,
            low_stock_threshold: p.low_stock_threshold,
        }
    }
}

pub fn router(service: InventoryService) -> Router {
    let routes = Router::new()
        .route("/inventory/{sku}", get(get_product).put(put_product))
        .route("/inventory/{sku}/restock", post(restock))
        .route("/reservations/order/{order_id}", get(get_reservation))
        .with_state(service);
    finish_router(routes)
}

async fn get_product(
    State(service): State<InventoryService>,
    Path(sku): Path<String>,
) -> Result<Json<ProductView>, ApiError> {
    Ok(Json(service.get_product(&sku).await?.into()))
}

async fn put_product(
    State(service): State<InventoryService>,
    Extension(correlation_id): Extension<CorrelationId>,
    Path(sku): Path<String>,
    StrictJson(spec): StrictJson<ProductSpec>,
) -> Result<Json<ProductView>, ApiError> {
    Ok(Json(service.put_product(&sku, &spec, &correlation_id).await?.into()))
}

async fn restock(
    State(service): State<InventoryService>,
    Extension(correlation_id): Extension<CorrelationId>,
    Path(sku): Path<String>,
    StrictJson(restock): StrictJson<Restock>,
) -> Result<Response, ApiError> {
    Ok(match service.restock(&sku, &restock, &correlation_id).await? {
        RestockOutcome::Applied(product) => Json(ProductView::from(product)).into_response(),
        RestockOutcome::AlreadyApplied(product) => {
            let mut response = Json(ProductView::from(product)).into_response();
            response.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
            response
        }
    })
}

async fn get_reservation(
    State(service): State<InventoryService>,
    Path(order_id): Path<String>,
) -> Result<(StatusCode, Json<Reservation>), ApiError> {
    let order_id = shared::http::parse_order_id("order_id", &order_id)?;
    match service.get_reservation(order_id).await? {
        Some(reservation) => Ok((StatusCode::OK, Json(reservation))),
        None => Err(ApiError::NotFound(format!("no reservation for order {order_id}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{PlanError, ReservationStatus};
    use http::StatusCode;
    use shared_core::InvalidParam;

    /// Each error answers the status its doc line names.
    #[test]
    fn each_error_answers_the_status_its_doc_names() {
        let committed =
            InventoryError::CannotCommit { order_id: shared_core::OrderId::new(), status: ReservationStatus::Released };
        let cases = [
            (InventoryError::Invalid(vec![InvalidParam::new("sku", "must not be empty")]), StatusCode::BAD_REQUEST),
            (InventoryError::UnknownSku("SKU-X".into()), StatusCode::NOT_FOUND),
            (InventoryError::Plan(PlanError::Overflow), StatusCode::UNPROCESSABLE_ENTITY),
            (committed, StatusCode::CONFLICT),
            (InventoryError::Contended, StatusCode::SERVICE_UNAVAILABLE),
            (
                InventoryError::Store(crate::ports::StoreError::Backend("down".into())),
                StatusCode::INTERNAL_SERVER_ERROR,
            ),
        ];
        for (error, status) in cases {
            let name = format!("{error:?}");
            assert_eq!(ApiError::from(error).status(), status, "{name}");
        }
    }
}
