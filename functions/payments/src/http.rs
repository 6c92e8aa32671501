//! The payments HTTP API (internal, IAM auth in AWS) as an axum router: read-only, for the
//! gateway. Charges and refunds are saga steps, not HTTP calls.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Serialize;
use shared::ApiError;
use shared::http::finish_router;
use shared_core::OrderId;
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
    order_id: OrderId,
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
    let order_id = shared::http::parse_order_id("order_id", &order_id)?;
    match service.get(order_id).await? {
        Some(payment) => Ok(Json(payment.into())),
        None => Err(ApiError::NotFound(format!("no payment for order {order_id}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{IllegalTransition, PaymentStatus};
    use crate::ports::{ProviderError, StoreError};
    use http::StatusCode;
    use shared_core::InvalidParam;

    /// Each error answers the status its doc line names.
    #[test]
    fn each_error_answers_the_status_its_doc_names() {
        let eur = |amount| Money::new(amount, "EUR");
        let order_id = OrderId::new;
        let refund_id = || "re_1".to_owned();
        let illegal =
            IllegalTransition { order_id: order_id(), from: PaymentStatus::Refunded, to: PaymentStatus::Captured };
        let cases = [
            (PaymentError::Invalid(vec![InvalidParam::new("order_id", "must not be empty")]), StatusCode::BAD_REQUEST),
            (
                PaymentError::AmountMismatch { order_id: order_id(), existing: eur(1), requested: eur(2) },
                StatusCode::CONFLICT,
            ),
            (PaymentError::InProgress(order_id()), StatusCode::SERVICE_UNAVAILABLE),
            (PaymentError::Processing(order_id()), StatusCode::INTERNAL_SERVER_ERROR),
            (
                PaymentError::RefundPending { order_id: order_id(), refund_id: refund_id() },
                StatusCode::INTERNAL_SERVER_ERROR,
            ),
            (
                PaymentError::RefundFailed { order_id: order_id(), refund_id: refund_id(), reason: "failed".into() },
                StatusCode::INTERNAL_SERVER_ERROR,
            ),
            (PaymentError::Unsettleable(order_id()), StatusCode::INTERNAL_SERVER_ERROR),
            (PaymentError::Provider(ProviderError::Unavailable("timeout".into())), StatusCode::SERVICE_UNAVAILABLE),
            (PaymentError::Store(StoreError::Backend("down".into())), StatusCode::INTERNAL_SERVER_ERROR),
            (PaymentError::Illegal(illegal), StatusCode::INTERNAL_SERVER_ERROR),
        ];
        for (error, status) in cases {
            let name = format!("{error:?}");
            assert_eq!(ApiError::from(error).status(), status, "{name}");
        }
    }
}
