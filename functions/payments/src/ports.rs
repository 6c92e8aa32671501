//! The ports of the payments service: where payments are kept, and who moves the money.

use async_trait::async_trait;
use shared::aws::outbox::OutboxEvent;
use shared_core::money::Money;
use shared_core::{Conditional, OrderId};

use crate::domain::{Decline, Lease, Payment, PaymentStatus};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store failed. The error it failed with is kept (`source()`), and its chain is in the
    /// message: Lambda reports an error by its message alone.
    #[error("payments store unavailable: {}", shared_core::error::chain(.0.as_ref()))]
    Backend(#[source] shared_core::error::Cause),
}

#[async_trait]
pub trait PaymentStore: Send + Sync {
    async fn get(&self, order_id: OrderId) -> Result<Option<Payment>, StoreError>;

    /// Creates the payment unless the order has one already (`Lost`, nothing written).
    async fn create(&self, payment: &Payment) -> Result<Conditional, StoreError>;

    /// Takes `lease` on the order's payment if it is in `status` and nobody holds it at
    /// `now_ms`. With `charging`, also records that the provider may be contacted from now on.
    /// Returns the payment as it was just before (`None`: not taken, nothing written).
    async fn take_lease(
        &self,
        order_id: OrderId,
        status: PaymentStatus,
        lease: &Lease,
        now_ms: i64,
        charging: bool,
    ) -> Result<Option<Payment>, StoreError>;

    /// Gives the lease back (if `owner` still holds it), recording whether the provider may have
    /// been contacted.
    async fn release_lease(&self, order_id: OrderId, owner: &str, provider_contacted: bool) -> Result<(), StoreError>;

    /// Replaces the payment with `next` if it is still in `from`, with `events`, atomically.
    /// `Lost` when it had moved on (nothing written).
    async fn transition(
        &self,
        next: &Payment,
        from: PaymentStatus,
        events: &[OutboxEvent],
    ) -> Result<Conditional, StoreError>;
}

/// What the provider is asked to charge. `idempotency_key` is the key of creating the
/// provider's payment (`order-<id>-create`); confirming it has its own (`order-<id>-confirm`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderCharge {
    pub order_id: OrderId,
    pub amount: Money,
    pub payment_method: String,
    pub idempotency_key: String,
}

/// What the provider is asked to refund.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderRefund {
    pub order_id: OrderId,
    pub provider_payment_id: String,
    pub amount: Money,
    pub idempotency_key: String,
}

/// Where the provider's payment stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChargeOutcome {
    /// The money was taken.
    Captured { provider_payment_id: String },
    /// The payment method was refused (or needs the customer, as 3-D Secure does). Nothing taken.
    Declined { provider_payment_id: Option<String>, decline: Decline },
    /// Neither yet: the provider is still processing it (Stripe `processing`). Ask again later.
    Processing { provider_payment_id: String },
    /// Never charged and not being charged: it was never confirmed, or it was canceled.
    NotCharged { provider_payment_id: String },
}

/// Where a refund stands. Only `Succeeded` means the money went back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundOutcome {
    Succeeded {
        refund_id: String,
    },
    /// Under way (Stripe `pending`): ask again later.
    Pending {
        refund_id: String,
    },
    /// The provider failed or canceled it (Stripe `failed`, `canceled`): the money is still with
    /// the shop.
    Failed {
        refund_id: String,
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// The request never left (breaker open, bulkhead full): nothing can have happened.
    #[error("payment provider not called: {0}")]
    NotSent(String),
    /// Failed or timed out after the request may have reached the provider: the outcome is
    /// unknown until the provider is asked about the payment.
    #[error("payment provider unavailable: {0}")]
    Unavailable(String),
    /// The provider refused the request itself (bad parameters, bad API key): retrying the same
    /// request will not help.
    #[error("payment provider refused the request: {0}")]
    Rejected(String),
}

/// The payment provider, in the steps that make a charge safe to retry and to settle: the
/// provider's payment is created first (nothing is charged, so it can be remembered before any
/// money can move), then confirmed; what became of it can always be asked without changing it.
#[async_trait]
pub trait PaymentProvider: Send + Sync {
    /// Creates the provider's payment for `charge`, unconfirmed: nothing is charged. The same key
    /// returns the same payment. Returns its id.
    async fn create_payment(&self, charge: &ProviderCharge) -> Result<String, ProviderError>;

    /// Confirms (charges) the payment, once per key: asking again with the key answers what the
    /// first confirmation did.
    async fn confirm_payment(
        &self,
        provider_payment_id: &str,
        idempotency_key: &str,
    ) -> Result<ChargeOutcome, ProviderError>;

    /// What became of the payment, without changing anything (never charges).
    async fn payment_status(&self, provider_payment_id: &str) -> Result<ChargeOutcome, ProviderError>;

    /// Refunds once per idempotency key.
    async fn refund(&self, refund: &ProviderRefund) -> Result<RefundOutcome, ProviderError>;

    /// What became of a refund, without changing anything.
    async fn refund_status(&self, refund_id: &str) -> Result<RefundOutcome, ProviderError>;
}
