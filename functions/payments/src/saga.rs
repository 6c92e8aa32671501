//! The payments side of the fulfilment saga: the worker for `ProcessPayment` and
//! `RefundPayment`.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::json;
use shared::aws::saga::{CommandHandler, INVALID_COMMAND, SagaCommand, TaskOutcome};
use shared_core::OrderId;
use shared_core::money::Money;

use crate::domain::{ChargeRequest, PaymentStatus};
use crate::service::{PaymentError, PaymentService};

pub const PROCESS_PAYMENT: &str = "ProcessPayment";
pub const REFUND_PAYMENT: &str = "RefundPayment";
/// The provider refused the payment method. The cause is its decline code.
pub const PAYMENT_DECLINED: &str = "PaymentDeclined";
/// The order's payment was voided or refunded before this charge command arrived.
pub const PAYMENT_CANCELLED: &str = "PaymentCancelled";
/// The charge cannot succeed as asked (another amount for the order, provider refused the request).
pub const PAYMENT_FAILED: &str = "PaymentFailed";
pub const REFUND_FAILED: &str = "RefundFailed";

#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ProcessData {
    pub order_id: OrderId,
    /// `Money` itself is strict (it is in HTTP bodies too); a command reads it tolerantly.
    #[cfg_attr(feature = "schema", schemars(with = "Money"))]
    #[serde(deserialize_with = "shared_core::envelope::tolerant_money")]
    pub amount: Money,
    pub payment_method: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RefundData {
    pub order_id: OrderId,
}

fn failure_of(err: PaymentError, final_error: &str) -> TaskOutcome {
    match err {
        e if e.is_transient() => TaskOutcome::transient(e),
        e @ PaymentError::Invalid(_) => TaskOutcome::failure(INVALID_COMMAND, e.to_string()),
        e => TaskOutcome::failure(final_error, e.to_string()),
    }
}

/// Answers `ProcessPayment` and `RefundPayment`.
#[derive(Clone)]
pub struct PaymentsSagaWorker {
    service: PaymentService,
}

impl PaymentsSagaWorker {
    pub fn new(service: PaymentService) -> Self {
        Self { service }
    }
}

impl PaymentsSagaWorker {
    /// The step; `Err` carries the answer to a command that cannot be done as sent.
    async fn step(&self, command: &SagaCommand) -> Result<TaskOutcome, TaskOutcome> {
        Ok(match command.event_type.as_str() {
            PROCESS_PAYMENT => {
                let data: ProcessData = command.data_as()?;
                let request =
                    ChargeRequest { order_id: data.order_id, amount: data.amount, payment_method: data.payment_method };
                match self.service.charge(&request, &command.correlation_id).await {
                    Ok(p) if p.status == PaymentStatus::Captured => TaskOutcome::Success(json!({
                        "status": p.status,
                        "provider_payment_id": p.provider_payment_id,
                    })),
                    Ok(p) if p.status == PaymentStatus::Declined => {
                        let decline = p.decline.unwrap_or_else(|| crate::domain::Decline {
                            reason: "declined".into(),
                            message: String::new(),
                        });
                        TaskOutcome::failure(PAYMENT_DECLINED, format!("{}: {}", decline.reason, decline.message))
                    }
                    Ok(p) => TaskOutcome::failure(
                        PAYMENT_CANCELLED,
                        format!("the payment of order {} is {:?}", p.order_id, p.status),
                    ),
                    Err(err) => failure_of(err, PAYMENT_FAILED),
                }
            }
            REFUND_PAYMENT => {
                let data: RefundData = command.data_as()?;
                match self.service.refund(data.order_id, &command.correlation_id).await {
                    Ok(Some(p)) => TaskOutcome::Success(json!({ "status": p.status, "refund_id": p.refund_id })),
                    Ok(None) => TaskOutcome::Success(json!({ "status": "NONE" })),
                    Err(err) => failure_of(err, REFUND_FAILED),
                }
            }
            other => TaskOutcome::failure(INVALID_COMMAND, format!("the payments worker does not handle {other}")),
        })
    }
}

#[async_trait]
impl CommandHandler for PaymentsSagaWorker {
    async fn handle(&self, command: &SagaCommand) -> TaskOutcome {
        self.step(command).await.unwrap_or_else(|outcome| outcome)
    }
}
