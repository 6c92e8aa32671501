//! The events the payments service publishes: its part of the event catalogue (see README).

use serde::{Deserialize, Serialize};
use shared::aws::outbox::OutboxEvent;
use shared_core::money::Money;
use shared_core::{CorrelationId, DomainEvent, OrderId};

use crate::domain::Payment;

pub const SERVICE: &str = "payments";
pub const PAYMENT_COMPLETED: &str = "PaymentCompleted";
pub const PAYMENT_DECLINED: &str = "PaymentDeclined";
pub const PAYMENT_VOIDED: &str = "PaymentVoided";
pub const PAYMENT_REFUNDED: &str = "PaymentRefunded";

/// The provider captured the order's amount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct PaymentCompleted {
    pub order_id: OrderId,
    pub provider_payment_id: String,
    #[serde(deserialize_with = "shared_core::envelope::tolerant_money")]
    #[cfg_attr(feature = "schema", schemars(with = "Money"))]
    pub amount: Money,
}

/// The provider refused the payment method; nothing was charged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct PaymentDeclined {
    pub order_id: OrderId,
    #[serde(deserialize_with = "shared_core::envelope::tolerant_money")]
    #[cfg_attr(feature = "schema", schemars(with = "Money"))]
    pub amount: Money,
    pub reason: String,
    pub message: String,
}

/// The payment was cancelled before the provider was asked to charge; nothing was charged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct PaymentVoided {
    pub order_id: OrderId,
    #[serde(deserialize_with = "shared_core::envelope::tolerant_money")]
    #[cfg_attr(feature = "schema", schemars(with = "Money"))]
    pub amount: Money,
}

/// The captured amount went back to the customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct PaymentRefunded {
    pub order_id: OrderId,
    pub provider_payment_id: String,
    pub refund_id: String,
    #[serde(deserialize_with = "shared_core::envelope::tolerant_money")]
    #[cfg_attr(feature = "schema", schemars(with = "Money"))]
    pub amount: Money,
}

fn outbox<T: Serialize>(event_type: &str, payment: &Payment, correlation_id: &CorrelationId, data: T) -> OutboxEvent {
    let event =
        DomainEvent::new(event_type, payment.order_id.to_string(), correlation_id.clone(), payment.updated_at, data);
    OutboxEvent::from_event(&event, SERVICE)
}

/// The event that announces `payment`'s current (final or captured) status.
pub fn for_payment(payment: &Payment, correlation_id: &CorrelationId) -> Option<OutboxEvent> {
    use crate::domain::PaymentStatus::*;
    let order_id = payment.order_id;
    let amount = payment.amount.clone();
    let provider_payment_id = payment.provider_payment_id.clone().unwrap_or_default();
    Some(match payment.status {
        Pending => return None,
        Captured => outbox(
            PAYMENT_COMPLETED,
            payment,
            correlation_id,
            PaymentCompleted { order_id, provider_payment_id, amount },
        ),
        Declined => {
            let decline = payment
                .decline
                .clone()
                .unwrap_or_else(|| crate::domain::Decline { reason: "declined".into(), message: String::new() });
            let data = PaymentDeclined { order_id, amount, reason: decline.reason, message: decline.message };
            outbox(PAYMENT_DECLINED, payment, correlation_id, data)
        }
        Voided => outbox(PAYMENT_VOIDED, payment, correlation_id, PaymentVoided { order_id, amount }),
        Refunded => {
            let refund_id = payment.refund_id.clone().unwrap_or_default();
            let data = PaymentRefunded { order_id, provider_payment_id, refund_id, amount };
            outbox(PAYMENT_REFUNDED, payment, correlation_id, data)
        }
    })
}
