//! The payment use cases: charge an order at most once, refund exactly what was captured.
//!
//! At most once rests on three things. The provider sees one idempotency key per order and step,
//! so even two calls that both reach it move money once. A lease on the payment record lets only
//! one caller talk to the provider at a time; the others wait for its answer and return it. And a
//! charge is two provider steps: the provider's payment is created first (`order-<id>-create`;
//! nothing is charged), its id is written on the payment record, and only then is it confirmed
//! (`order-<id>-confirm`). So whatever a confirm's answer was (lost in a timeout, or a `500`
//! that Stripe saves under the key and replays for 24 hours), the payment can always be asked
//! about by id, and settling a payment never needs to send a charge.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use shared_core::money::Money;
use shared_core::{CorrelationId, InvalidParam, OrderId};

use crate::domain::{ChargeRequest, IllegalTransition, Lease, Payment, PaymentStatus, provider_idempotency_key};
use crate::events;
use crate::ports::{
    ChargeOutcome, PaymentProvider, PaymentStore, ProviderCharge, ProviderError, ProviderRefund, RefundOutcome,
    StoreError,
};

#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    /// 400: fields that are not valid, each named.
    #[error("invalid request")]
    Invalid(Vec<InvalidParam>),
    /// 409: the order's payment exists with another amount.
    #[error("order {order_id} was charged {existing} before, not {requested}")]
    AmountMismatch { order_id: OrderId, existing: Money, requested: Money },
    /// 503: the client (the saga) retries.
    #[error("another attempt is still talking to the payment provider for order {0}; try again")]
    InProgress(OrderId),
    /// The provider is still processing the charge (neither captured nor declined yet). 500 over
    /// HTTP, which never charges; the saga worker answers it as transient.
    #[error("the payment provider is still processing the charge of order {0}; ask again later")]
    Processing(OrderId),
    /// The refund is under way at the provider (500 over HTTP; transient to the saga).
    #[error("the refund of order {order_id} ({refund_id}) is still pending at the payment provider")]
    RefundPending { order_id: OrderId, refund_id: String },
    /// The provider failed or canceled the refund: the money is still with the shop. Final
    /// (500 over HTTP).
    #[error("the payment provider did not refund order {order_id} ({refund_id}): {reason}")]
    RefundFailed { order_id: OrderId, refund_id: String, reason: String },
    /// A charge request may have reached the provider, but no provider payment id was recorded
    /// (a record written before ids were recorded first): only a person can settle it (500).
    #[error("the charge of order {0} may have reached the provider but its payment id is unknown: settle it by hand")]
    Unsettleable(OrderId),
    /// 503: the provider did not answer or refused; its cause is the provider's error.
    #[error(transparent)]
    Provider(ProviderError),
    /// 500, its cause logged and never sent.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// 500: a transition the payment's status does not allow (a bug, not a request).
    #[error(transparent)]
    Illegal(#[from] IllegalTransition),
}

impl PaymentError {
    /// Worth trying the same thing again later (the saga retries these).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::InProgress(_)
                | Self::Processing(_)
                | Self::RefundPending { .. }
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

fn no_provider<T>() -> Result<T, ProviderError> {
    Err(ProviderError::NotSent("this function has no payment provider configured".into()))
}

#[async_trait::async_trait]
impl PaymentProvider for NoProvider {
    async fn create_payment(&self, _: &ProviderCharge) -> Result<String, ProviderError> {
        no_provider()
    }

    async fn confirm_payment(&self, _: &str, _: &str) -> Result<ChargeOutcome, ProviderError> {
        no_provider()
    }

    async fn payment_status(&self, _: &str) -> Result<ChargeOutcome, ProviderError> {
        no_provider()
    }

    async fn refund(&self, _: &ProviderRefund) -> Result<RefundOutcome, ProviderError> {
        no_provider()
    }

    async fn refund_status(&self, _: &str) -> Result<RefundOutcome, ProviderError> {
        no_provider()
    }
}

/// Counts every provider call and its outcome in the business metrics
/// ([`shared::metrics::provider_call`]), around the real provider.
struct Metered(Arc<dyn PaymentProvider>);

fn charge_outcome(result: &Result<ChargeOutcome, ProviderError>) -> &'static str {
    match result {
        Ok(ChargeOutcome::Captured { .. }) => "captured",
        Ok(ChargeOutcome::Declined { .. }) => "declined",
        Ok(ChargeOutcome::Processing { .. }) => "processing",
        Ok(ChargeOutcome::NotCharged { .. }) => "not_charged",
        Err(err) => provider_error(err),
    }
}

fn refund_outcome(result: &Result<RefundOutcome, ProviderError>) -> &'static str {
    match result {
        Ok(RefundOutcome::Succeeded { .. }) => "succeeded",
        Ok(RefundOutcome::Pending { .. }) => "pending",
        Ok(RefundOutcome::Failed { .. }) => "failed",
        Err(err) => provider_error(err),
    }
}

fn provider_error(err: &ProviderError) -> &'static str {
    match err {
        ProviderError::NotSent(_) => "not_sent",
        ProviderError::Unavailable(_) => "unavailable",
        ProviderError::Rejected(_) => "rejected",
    }
}

async fn metered<T>(
    operation: &str,
    outcome: fn(&Result<T, ProviderError>) -> &'static str,
    call: impl std::future::Future<Output = Result<T, ProviderError>>,
) -> Result<T, ProviderError> {
    let started = std::time::Instant::now();
    let result = call.await;
    shared::metrics::provider_call(operation, outcome(&result), started.elapsed());
    result
}

#[async_trait::async_trait]
impl PaymentProvider for Metered {
    async fn create_payment(&self, charge: &ProviderCharge) -> Result<String, ProviderError> {
        let outcome = |r: &Result<String, ProviderError>| r.as_ref().map_or_else(provider_error, |_| "created");
        metered("create", outcome, self.0.create_payment(charge)).await
    }

    async fn confirm_payment(&self, id: &str, key: &str) -> Result<ChargeOutcome, ProviderError> {
        metered("confirm", charge_outcome, self.0.confirm_payment(id, key)).await
    }

    async fn payment_status(&self, id: &str) -> Result<ChargeOutcome, ProviderError> {
        metered("payment_status", charge_outcome, self.0.payment_status(id)).await
    }

    async fn refund(&self, refund: &ProviderRefund) -> Result<RefundOutcome, ProviderError> {
        metered("refund", refund_outcome, self.0.refund(refund)).await
    }

    async fn refund_status(&self, id: &str) -> Result<RefundOutcome, ProviderError> {
        metered("refund_status", refund_outcome, self.0.refund_status(id)).await
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

const CREATE_STEP: &str = "create";
const CONFIRM_STEP: &str = "confirm";
const REFUND_STEP: &str = "refund";

impl PaymentService {
    pub fn new(store: Arc<dyn PaymentStore>, provider: Arc<dyn PaymentProvider>, lease: LeaseConfig) -> Self {
        Self { store, provider: Arc::new(Metered(provider)), lease }
    }

    /// A service that can only read payments (the HTTP API): it has no provider and no API key.
    pub fn read_only(store: Arc<dyn PaymentStore>) -> Self {
        Self::new(store, Arc::new(NoProvider), LeaseConfig::default())
    }

    /// The order's payment; `None` if it has none (a tombstone is no payment).
    pub async fn get(&self, order_id: OrderId) -> Result<Option<Payment>, PaymentError> {
        Ok(self.store.get(order_id).await?.filter(|p| !p.tombstone))
    }

    fn new_lease(&self) -> Lease {
        let until = Utc::now() + self.lease.duration;
        Lease { owner: uuid::Uuid::now_v7().to_string(), until_ms: until.timestamp_millis() }
    }

    /// Waits a little for the lease holder; `Err` once it has had longer than a lease.
    async fn wait_for_holder(&self, order_id: OrderId, started: tokio::time::Instant) -> Result<(), PaymentError> {
        if started.elapsed() > self.lease.duration + self.lease.poll_interval {
            return Err(PaymentError::InProgress(order_id));
        }
        tokio::time::sleep(self.lease.poll_interval).await;
        Ok(())
    }

    /// Charges the order once. Any later call, concurrent or not, returns the same payment
    /// (`CAPTURED`, `DECLINED`, or whatever it became since) without charging again. An order
    /// already compensated (`VOIDED`, including a refund's tombstone, or `REFUNDED`) is never
    /// charged: its payment is returned as it is.
    pub async fn charge(
        &self,
        request: &ChargeRequest,
        correlation_id: &CorrelationId,
    ) -> Result<Payment, PaymentError> {
        request.validate().map_err(PaymentError::Invalid)?;
        let order_id = request.order_id;
        let started = tokio::time::Instant::now();
        loop {
            let Some(current) = self.store.get(order_id).await? else {
                let lease = self.new_lease();
                let payment = Payment::pending(request, lease.clone(), now());
                if self.store.create(&payment).await?.is_applied() {
                    tracing::info!(%order_id, amount = %payment.amount, "payment created, charging");
                    return self.settle_charge(payment, &lease, correlation_id).await;
                }
                continue; // created concurrently: look at theirs
            };
            if current.is_compensated() {
                tracing::info!(%order_id, status = ?current.status, "the order was compensated: nothing to charge");
                return Ok(current);
            }
            if current.amount != request.amount {
                return Err(PaymentError::AmountMismatch {
                    order_id,
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
                .take_lease(order_id, PaymentStatus::Pending, &lease, Utc::now().timestamp_millis(), false)
                .await?;
            if let Some(before) = taken {
                tracing::info!(%order_id, "resuming an unfinished charge");
                return self.settle_charge(before, &lease, correlation_id).await;
            }
        }
    }

    /// Charges a pending payment this caller holds the lease of, and records the answer: creates
    /// the provider's payment if it has none yet, records its id, then confirms it.
    async fn settle_charge(
        &self,
        payment: Payment,
        lease: &Lease,
        correlation_id: &CorrelationId,
    ) -> Result<Payment, PaymentError> {
        let order_id = payment.order_id;
        let contacted_before = payment.provider_contacted;
        let provider_payment_id = match payment.provider_payment_id.clone() {
            Some(id) => id,
            None => {
                let charge = ProviderCharge {
                    order_id,
                    amount: payment.amount.clone(),
                    payment_method: payment.payment_method.clone(),
                    idempotency_key: provider_idempotency_key(order_id, CREATE_STEP),
                };
                match self.provider.create_payment(&charge).await {
                    Ok(id) => id,
                    Err(err) => {
                        // Creating charges nothing: the payment can still be voided.
                        tracing::warn!(%order_id, error = %err, "provider payment not created");
                        self.store.release_lease(order_id, &lease.owner, contacted_before).await?;
                        return Err(PaymentError::Provider(err));
                    }
                }
            }
        };
        // Before a charge request can leave: the provider's payment id, and that it may be
        // charged from now on, are on the record (a crash after this is settled by asking).
        let payment = if payment.provider_payment_id.as_deref() != Some(provider_payment_id.as_str())
            || !payment.provider_contacted
        {
            let next = Payment {
                provider_payment_id: Some(provider_payment_id.clone()),
                provider_contacted: true,
                updated_at: now(),
                ..payment
            };
            if !self.store.transition(&next, PaymentStatus::Pending, &[]).await?.is_applied() {
                return self.current(order_id).await;
            }
            next
        } else {
            payment
        };
        let confirm_key = provider_idempotency_key(order_id, CONFIRM_STEP);
        match self.provider.confirm_payment(&provider_payment_id, &confirm_key).await {
            Ok(outcome) => self.record_charge(payment, outcome, lease, correlation_id).await,
            Err(err) => {
                // A confirm that never left changes nothing about what the provider may have seen.
                let contacted = contacted_before || !matches!(err, ProviderError::NotSent(_));
                tracing::warn!(%order_id, error = %err, contacted, "charge not settled");
                self.store.release_lease(order_id, &lease.owner, contacted).await?;
                Err(PaymentError::Provider(err))
            }
        }
    }

    /// Records where the provider's payment stands. `Processing` and `NotCharged` leave it
    /// pending (the lease given back): only the first is worth asking again about.
    async fn record_charge(
        &self,
        payment: Payment,
        outcome: ChargeOutcome,
        lease: &Lease,
        correlation_id: &CorrelationId,
    ) -> Result<Payment, PaymentError> {
        let order_id = payment.order_id;
        let next = match outcome {
            ChargeOutcome::Captured { provider_payment_id } => payment.captured(provider_payment_id, now())?,
            ChargeOutcome::Declined { provider_payment_id, decline } => {
                let id = provider_payment_id.or_else(|| payment.provider_payment_id.clone());
                payment.declined(id, decline, now())?
            }
            ChargeOutcome::Processing { .. } => {
                tracing::info!(%order_id, "the provider is still processing the charge");
                self.store.release_lease(order_id, &lease.owner, true).await?;
                return Err(PaymentError::Processing(order_id));
            }
            ChargeOutcome::NotCharged { provider_payment_id } => {
                // Confirmed and yet not charged: the provider canceled it. Nothing moved.
                let decline = crate::domain::Decline {
                    reason: "canceled".into(),
                    message: format!("the provider's payment {provider_payment_id} was canceled"),
                };
                payment.declined(Some(provider_payment_id), decline, now())?
            }
        };
        self.record(next, PaymentStatus::Pending, correlation_id).await
    }

    async fn current(&self, order_id: OrderId) -> Result<Payment, PaymentError> {
        self.store
            .get(order_id)
            .await?
            .ok_or_else(|| StoreError::Backend(format!("payment of order {order_id} vanished").into()).into())
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
        if self.store.transition(&next, from, &events).await?.is_applied() {
            tracing::info!(order_id = %next.order_id, status = ?next.status, "payment {:?}", next.status);
            if let (PaymentStatus::Declined, Some(decline)) = (next.status, &next.decline) {
                shared::metrics::payment_declined(&decline.reason);
            }
            return Ok(next);
        }
        self.current(next.order_id).await
    }

    /// Gives back exactly what was captured, once. A no-op for a declined, voided or already
    /// refunded payment. An order with no payment gets a tombstone (`Ok(None)`), so that a
    /// charge command delivered later charges nothing. A pending payment is voided if no charge
    /// request can have reached the provider; otherwise the provider is asked what became of
    /// its payment (never charged again): what it took is refunded, what it did not is voided.
    pub async fn refund(
        &self,
        order_id: OrderId,
        correlation_id: &CorrelationId,
    ) -> Result<Option<Payment>, PaymentError> {
        let started = tokio::time::Instant::now();
        loop {
            let Some(current) = self.store.get(order_id).await? else {
                if self.store.create(&Payment::tombstone(order_id, now())).await?.is_applied() {
                    tracing::info!(%order_id, "no payment for this order: tombstone left, nothing to refund");
                    return Ok(None);
                }
                continue; // a charge created it meanwhile: settle that
            };
            if current.tombstone {
                return Ok(None);
            }
            if current.status.is_final() {
                return Ok(Some(current));
            }
            if !current.is_free(Utc::now().timestamp_millis()) {
                self.wait_for_holder(order_id, started).await?;
                continue;
            }
            let lease = self.new_lease();
            let now_ms = Utc::now().timestamp_millis();
            let Some(before) = self.store.take_lease(order_id, current.status, &lease, now_ms, false).await? else {
                continue;
            };
            match before.status {
                PaymentStatus::Pending if !before.provider_contacted => {
                    let voided = before.voided(now())?;
                    return self.record(voided, PaymentStatus::Pending, correlation_id).await.map(Some);
                }
                PaymentStatus::Pending => {
                    tracing::info!(%order_id, "asking the provider what became of an unfinished charge");
                    self.settle_unknown_charge(before, &lease, correlation_id).await?;
                }
                PaymentStatus::Captured => return self.settle_refund(before, &lease, correlation_id).await.map(Some),
                _ => self.store.release_lease(order_id, &lease.owner, before.provider_contacted).await?,
            }
        }
    }

    /// Settles a pending payment whose charge may have reached the provider, without ever
    /// charging: asks about the provider's payment by its recorded id.
    async fn settle_unknown_charge(
        &self,
        payment: Payment,
        lease: &Lease,
        correlation_id: &CorrelationId,
    ) -> Result<Payment, PaymentError> {
        let order_id = payment.order_id;
        let Some(provider_payment_id) = payment.provider_payment_id.clone() else {
            self.store.release_lease(order_id, &lease.owner, true).await?;
            return Err(PaymentError::Unsettleable(order_id));
        };
        match self.provider.payment_status(&provider_payment_id).await {
            Ok(ChargeOutcome::NotCharged { .. }) => {
                // Never confirmed (or canceled): nothing was taken, and nothing will be.
                let voided = payment.not_charged(now())?;
                self.record(voided, PaymentStatus::Pending, correlation_id).await
            }
            Ok(outcome) => self.record_charge(payment, outcome, lease, correlation_id).await,
            Err(err) => {
                tracing::warn!(%order_id, error = %err, "could not learn what became of the charge");
                self.store.release_lease(order_id, &lease.owner, true).await?;
                Err(PaymentError::Provider(err))
            }
        }
    }

    /// Refunds a captured payment this caller holds the lease of. A refund already under way
    /// (its id recorded) is asked about, never made again. Only a `succeeded` refund makes the
    /// payment `REFUNDED`.
    async fn settle_refund(
        &self,
        payment: Payment,
        lease: &Lease,
        correlation_id: &CorrelationId,
    ) -> Result<Payment, PaymentError> {
        let order_id = payment.order_id;
        let outcome = match &payment.refund_id {
            Some(refund_id) => self.provider.refund_status(refund_id).await,
            None => {
                let refund = ProviderRefund {
                    order_id,
                    provider_payment_id: payment.provider_payment_id.clone().unwrap_or_default(),
                    amount: payment.amount.clone(),
                    idempotency_key: provider_idempotency_key(order_id, REFUND_STEP),
                };
                self.provider.refund(&refund).await
            }
        };
        let (refund_id, error) = match outcome {
            Ok(RefundOutcome::Succeeded { refund_id }) => {
                let next = payment.refunded(refund_id, now())?;
                return self.record(next, PaymentStatus::Captured, correlation_id).await;
            }
            Ok(RefundOutcome::Pending { refund_id }) => {
                let error = PaymentError::RefundPending { order_id, refund_id: refund_id.clone() };
                (refund_id, error)
            }
            Ok(RefundOutcome::Failed { refund_id, reason }) => {
                let error = PaymentError::RefundFailed { order_id, refund_id: refund_id.clone(), reason };
                (refund_id, error)
            }
            Err(err) => {
                tracing::warn!(%order_id, error = %err, "refund not settled");
                self.store.release_lease(order_id, &lease.owner, payment.provider_contacted).await?;
                return Err(PaymentError::Provider(err));
            }
        };
        // Still captured: remember the refund (and give the lease back) so the next attempt asks
        // about it instead of refunding again.
        tracing::warn!(%order_id, error = %error, "refund not done");
        let next = Payment { refund_id: Some(refund_id), lease: None, updated_at: now(), ..payment };
        // Lost: another attempt moved the payment on meanwhile, and its record stands.
        let _ = self.store.transition(&next, PaymentStatus::Captured, &[]).await?;
        Err(error)
    }
}
