//! The payments HTTP API (internal, IAM auth in AWS) as an axum router: read-only, for the
//! gateway. Charges and refunds are saga steps, not HTTP calls.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Serialize;
use shared::ApiError;
use shared::http::finish_router;
use shared_core::money::Money;

use crate::domain::{Payment, PaymentStatus, PublicDecline};
use crate::service::{PaymentError, PaymentService};

impl From<PaymentError> for ApiError {
    fn from(err: PaymentError) -> Self {
        match err {
            PaymentError::Invalid(params) => ApiError::Validation(params),
            e @ PaymentError::AmountMismatch { .. } => ApiError::Conflict(e.to_string()),
            e @ PaymentError::InProgress(_) => ApiError::Unavailable(e.to_string()),
            e @ PaymentError::Provider(_) => ApiError::Unavailable(e.to_string()),
            e => ApiError::internal(e),
        }
    }
}

/// What clients see of a payment: not the lease bookkeeping, and a decline only as one of the
/// public reasons (the provider's exact code stays in the table and the logs).
#[derive(Debug, Serialize)]
struct PaymentView {
    order_id: String,
    status: PaymentStatus,
    amount: Money,
    payment_method: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    provider_payment_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    refund_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    decline: Option<PublicDecline>,
    #[serde(with = "shared_core::envelope::rfc3339_millis")]
    created_at: DateTime<Utc>,
    #[serde(with = "shared_core::envelope::rfc3339_millis")]
    updated_at: DateTime<Utc>,
}

impl From<Payment> for PaymentView {
    fn from(p: Payment) -> Self {
        Self {
            order_id: p.order_id,
            status: p.status,
            amount: p.amount,
            payment_method: p.payment_method,
            provider_payment_id: p.provider_payment_id,
            refund_id: p.refund_id,
            decline: p.decline.as_ref().map(|d| d.public()),
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

pub fn router(service: PaymentService) -> Router {
    let routes = Router::new().route("/payments/order/{order_id}", get(get_payment)).with_state(service);
    finish_router(routes)
}

async fn get_payment(
    State(service): State<PaymentService>,
    Path(order_id): Path<String>,
) -> Result<Json<PaymentView>, ApiError> {
    match service.get(&order_id).await? {
        Some(payment) => Ok(Json(payment.into())),
        None => Err(ApiError::NotFound(format!("no payment for order {order_id}"))),
    }
}
