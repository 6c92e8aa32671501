//! The ports of the payments service: where payments are kept, and who moves the money.

use async_trait::async_trait;
use shared::money::Money;
use shared::outbox::OutboxEvent;

use crate::domain::{Decline, Lease, Payment, PaymentStatus};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("payments store unavailable: {0}")]
    Backend(String),
}

#[async_trait]
pub trait PaymentStore: Send + Sync {
    async fn get(&self, order_id: &str) -> Result<Option<Payment>, StoreError>;

    /// Creates the payment unless the order has one already (`Ok(false)`, nothing written).
    async fn create(&self, payment: &Payment) -> Result<bool, StoreError>;

    /// Takes `lease` on the order's payment if it is in `status` and nobody holds it at
    /// `now_ms`. With `charging`, also records that the provider may be contacted from now on.
    /// Returns the payment as it was just before (`None`: not taken, nothing written).
    async fn take_lease(
        &self,
        order_id: &str,
        status: PaymentStatus,
        lease: &Lease,
        now_ms: i64,
        charging: bool,
    ) -> Result<Option<Payment>, StoreError>;

    /// Gives the lease back (if `owner` still holds it), recording whether the provider may have
    /// been contacted.
    async fn release_lease(&self, order_id: &str, owner: &str, provider_contacted: bool) -> Result<(), StoreError>;

    /// Replaces the payment with `next` if it is still in `from`, with `events`, atomically.
    /// `Ok(false)` when it had moved on (nothing written).
    async fn transition(&self, next: &Payment, from: PaymentStatus, events: &[OutboxEvent])
    -> Result<bool, StoreError>;
}

/// What the provider is asked to charge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderCharge {
    pub order_id: String,
    pub amount: Money,
    pub payment_method: String,
    pub idempotency_key: String,
}

/// What the provider is asked to refund.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderRefund {
    pub order_id: String,
    pub provider_payment_id: String,
    pub amount: Money,
    pub idempotency_key: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChargeOutcome {
    Captured { provider_payment_id: String },
    Declined { provider_payment_id: Option<String>, decline: Decline },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// The request never left (breaker open, bulkhead full): nothing can have happened.
    #[error("payment provider not called: {0}")]
    NotSent(String),
    /// Failed or timed out after the request may have reached the provider: the outcome is
    /// unknown until the same request (same idempotency key) is answered.
    #[error("payment provider unavailable: {0}")]
    Unavailable(String),
    /// The provider refused the request itself (bad parameters, bad API key): retrying the same
    /// request will not help.
    #[error("payment provider refused the request: {0}")]
    Rejected(String),
}

#[async_trait]
pub trait PaymentProvider: Send + Sync {
    /// Charges once per idempotency key: the same key returns the first outcome.
    async fn charge(&self, charge: &ProviderCharge) -> Result<ChargeOutcome, ProviderError>;

    /// Refunds once per idempotency key; returns the provider's refund id.
    async fn refund(&self, refund: &ProviderRefund) -> Result<String, ProviderError>;
}
