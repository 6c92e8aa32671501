//! The payment use cases: charge an order at most once, refund exactly what was captured.
//!
//! At most once rests on two things. The provider sees one idempotency key per order and step,
//! so even two calls that both reach it move money once. And a lease on the payment record lets
//! only one caller talk to the provider at a time; the others wait for its answer and return it.
//! A caller that crashes mid-call leaves a lease that expires, and the next caller asks the
//! provider again with the same key, which returns what happened.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use shared::money::Money;
use shared::validation::check_identifier;
use shared::{CorrelationId, InvalidParam};

use crate::domain::{ChargeRequest, IllegalTransition, Lease, Payment, PaymentStatus, provider_idempotency_key};
use crate::events;
use crate::ports::{
    ChargeOutcome, PaymentProvider, PaymentStore, ProviderCharge, ProviderError, ProviderRefund, StoreError,
};

#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    #[error("invalid request")]
    Invalid(Vec<InvalidParam>),
    #[error("order {order_id} was charged {existing} before, not {requested}")]
    AmountMismatch { order_id: String, existing: Money, requested: Money },
    #[error("another attempt is still talking to the payment provider for order {0}; try again")]
    InProgress(String),
    #[error(transparent)]
    Provider(ProviderError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Illegal(#[from] IllegalTransition),
}

impl PaymentError {
    /// Worth trying the same thing again later (the saga retries these).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::InProgress(_)
                | Self::Store(_)
                | Self::Provider(ProviderError::NotSent(_) | ProviderError::Unavailable(_))
        )
    }
}

/// How long a caller may hold a payment while it talks to the provider, and how often the others
/// look whether it is done.
#[derive(Debug, Clone, Copy)]
pub struct LeaseConfig {
    /// Longer than the provider client's overall timeout, so a live holder never loses its lease.
    pub duration: Duration,
    pub poll_interval: Duration,
}

impl Default for LeaseConfig {
    fn default() -> Self {
        Self { duration: Duration::from_secs(30), poll_interval: Duration::from_millis(100) }
    }
}

/// The provider of a read-only service: refuses every call without sending anything.
struct NoProvider;

#[async_trait::async_trait]
impl PaymentProvider for NoProvider {
    async fn charge(&self, _: &ProviderCharge) -> Result<ChargeOutcome, ProviderError> {
        Err(ProviderError::NotSent("this function has no payment provider configured".into()))
    }

    async fn refund(&self, _: &ProviderRefund) -> Result<String, ProviderError> {
        Err(ProviderError::NotSent("this function has no payment provider configured".into()))
    }
}

#[derive(Clone)]
pub struct PaymentService {
    store: Arc<dyn PaymentStore>,
    provider: Arc<dyn PaymentProvider>,
    lease: LeaseConfig,
}

fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(3)
}

fn check_order_id(order_id: &str) -> Result<(), PaymentError> {
    let mut violations = Vec::new();
    check_identifier("order_id", order_id, &mut violations);
    if violations.is_empty() { Ok(()) } else { Err(PaymentError::Invalid(violations)) }
}

const CHARGE_STEP: &str = "charge";
const REFUND_STEP: &str = "refund";

impl PaymentService {
    pub fn new(store: Arc<dyn PaymentStore>, provider: Arc<dyn PaymentProvider>, lease: LeaseConfig) -> Self {
        Self { store, provider, lease }
    }

    /// A service that can only read payments (the HTTP API): it has no provider and no API key.
    pub fn read_only(store: Arc<dyn PaymentStore>) -> Self {
        Self::new(store, Arc::new(NoProvider), LeaseConfig::default())
    }

    pub async fn get(&self, order_id: &str) -> Result<Option<Payment>, PaymentError> {
        check_order_id(order_id)?;
        Ok(self.store.get(order_id).await?)
    }

    fn new_lease(&self) -> Lease {
        let until = Utc::now() + self.lease.duration;
        Lease { owner: uuid::Uuid::now_v7().to_string(), until_ms: until.timestamp_millis() }
    }

    /// Waits a little for the lease holder; `Err` once it has had longer than a lease.
    async fn wait_for_holder(&self, order_id: &str, started: tokio::time::Instant) -> Result<(), PaymentError> {
        if started.elapsed() > self.lease.duration + self.lease.poll_interval {
            return Err(PaymentError::InProgress(order_id.to_owned()));
        }
        tokio::time::sleep(self.lease.poll_interval).await;
        Ok(())
    }

    /// Charges the order once. Any later call, concurrent or not, returns the same payment
    /// (`CAPTURED`, `DECLINED`, or whatever it became since) without charging again.
    pub async fn charge(
        &self,
        request: &ChargeRequest,
        correlation_id: &CorrelationId,
    ) -> Result<Payment, PaymentError> {
        request.validate().map_err(PaymentError::Invalid)?;
        let order_id = request.order_id.as_str();
        let started = tokio::time::Instant::now();
        loop {
            let Some(current) = self.store.get(order_id).await? else {
                let lease = self.new_lease();
                let payment = Payment::pending(request, lease.clone(), now());
                if self.store.create(&payment).await? {
                    tracing::info!(order_id, amount = %payment.amount, "payment created, charging");
                    return self.settle_charge(payment, &lease, false, correlation_id).await;
                }
                continue; // created concurrently: look at theirs
            };
            if current.amount != request.amount {
                return Err(PaymentError::AmountMismatch {
                    order_id: order_id.to_owned(),
                    existing: current.amount,
                    requested: request.amount.clone(),
                });
            }
            if current.status != PaymentStatus::Pending {
                return Ok(current);
            }
            if !current.is_free(Utc::now().timestamp_millis()) {
                self.wait_for_holder(order_id, started).await?;
                continue;
            }
            let lease = self.new_lease();
            let taken = self
                .store
                .take_lease(order_id, PaymentStatus::Pending, &lease, Utc::now().timestamp_millis(), true)
                .await?;
            if let Some(before) = taken {
                tracing::info!(order_id, "resuming an unfinished charge");
                let contacted = before.provider_contacted;
                return self.settle_charge(before, &lease, contacted, correlation_id).await;
            }
        }
    }

    /// Asks the provider to charge a pending payment this caller holds the lease of, and records
    /// the answer. `contacted_before`: whether an earlier attempt may have reached the provider.
    async fn settle_charge(
        &self,
        payment: Payment,
        lease: &Lease,
        contacted_before: bool,
        correlation_id: &CorrelationId,
    ) -> Result<Payment, PaymentError> {
        let order_id = payment.order_id.clone();
        let charge = ProviderCharge {
            order_id: order_id.clone(),
            amount: payment.amount.clone(),
            payment_method: payment.payment_method.clone(),
            idempotency_key: provider_idempotency_key(&order_id, CHARGE_STEP),
        };
        let next = match self.provider.charge(&charge).await {
            Ok(ChargeOutcome::Captured { provider_payment_id }) => payment.captured(provider_payment_id, now())?,
            Ok(ChargeOutcome::Declined { provider_payment_id, decline }) => {
                payment.declined(provider_payment_id, decline, now())?
            }
            Err(err) => {
                // The provider did not answer: give the payment back. A request that never left
                // changes nothing about what the provider may have seen.
                let contacted = contacted_before || !matches!(err, ProviderError::NotSent(_));
                tracing::warn!(order_id, error = %err, contacted, "charge not settled");
                self.store.release_lease(&order_id, &lease.owner, contacted).await?;
                return Err(PaymentError::Provider(err));
            }
        };
        self.record(next, PaymentStatus::Pending, correlation_id).await
    }

    /// Writes `next` with its event if the payment is still in `from`; otherwise someone settled
    /// it first and their result is the answer.
    async fn record(
        &self,
        next: Payment,
        from: PaymentStatus,
        correlation_id: &CorrelationId,
    ) -> Result<Payment, PaymentError> {
        let events: Vec<_> = events::for_payment(&next, correlation_id).into_iter().collect();
        if self.store.transition(&next, from, &events).await? {
            tracing::info!(order_id = next.order_id, status = ?next.status, "payment {:?}", next.status);
            return Ok(next);
        }
        self.store
            .get(&next.order_id)
            .await?
            .ok_or_else(|| StoreError::Backend(format!("payment of order {} vanished", next.order_id)).into())
    }

    /// Gives back exactly what was captured, once. A no-op for an unknown, declined, voided or
    /// already refunded payment. A pending payment is voided if no charge request can have
    /// reached the provider; otherwise the charge is settled with the provider first (same
    /// idempotency key: it answers what happened) and refunded if it was captured.
    pub async fn refund(
        &self,
        order_id: &str,
        correlation_id: &CorrelationId,
    ) -> Result<Option<Payment>, PaymentError> {
        check_order_id(order_id)?;
        let started = tokio::time::Instant::now();
        loop {
            let Some(current) = self.store.get(order_id).await? else {
                tracing::info!(order_id, "no payment for this order, nothing to refund");
                return Ok(None);
            };
            if current.status.is_final() {
                return Ok(Some(current));
            }
            if !current.is_free(Utc::now().timestamp_millis()) {
                self.wait_for_holder(order_id, started).await?;
                continue;
            }
            let lease = self.new_lease();
            let now_ms = Utc::now().timestamp_millis();
            let charging = current.status == PaymentStatus::Pending && current.provider_contacted;
            let Some(before) = self.store.take_lease(order_id, current.status, &lease, now_ms, charging).await? else {
                continue;
            };
            match before.status {
                PaymentStatus::Pending if !before.provider_contacted => {
                    let voided = before.voided(now())?;
                    return self.record(voided, PaymentStatus::Pending, correlation_id).await.map(Some);
                }
                PaymentStatus::Pending if !charging => {
                    // Contacted since we looked: settle it on the next turn.
                    self.store.release_lease(order_id, &lease.owner, true).await?;
                }
                PaymentStatus::Pending => {
                    tracing::info!(order_id, "settling an unfinished charge before refunding it");
                    self.settle_charge(before, &lease, true, correlation_id).await?;
                }
                PaymentStatus::Captured => return self.settle_refund(before, &lease, correlation_id).await.map(Some),
                _ => self.store.release_lease(order_id, &lease.owner, before.provider_contacted).await?,
            }
        }
    }

    async fn settle_refund(
        &self,
        payment: Payment,
        lease: &Lease,
        correlation_id: &CorrelationId,
    ) -> Result<Payment, PaymentError> {
        let order_id = payment.order_id.clone();
        let refund = ProviderRefund {
            order_id: order_id.clone(),
            provider_payment_id: payment.provider_payment_id.clone().unwrap_or_default(),
            amount: payment.amount.clone(),
            idempotency_key: provider_idempotency_key(&order_id, REFUND_STEP),
        };
        match self.provider.refund(&refund).await {
            Ok(refund_id) => {
                let next = payment.refunded(refund_id, now())?;
                self.record(next, PaymentStatus::Captured, correlation_id).await
            }
            Err(err) => {
                tracing::warn!(order_id, error = %err, "refund not settled");
                self.store.release_lease(&order_id, &lease.owner, payment.provider_contacted).await?;
                Err(PaymentError::Provider(err))
            }
        }
    }
}
