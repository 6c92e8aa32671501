//! In-memory adapters for unit tests: a payment store with the same conditional semantics as
//! DynamoDB, and a scripted payment provider that counts its calls.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use shared::aws::outbox::OutboxEvent;

use crate::domain::{Lease, Payment, PaymentStatus};
use crate::ports::{
    ChargeOutcome, PaymentProvider, PaymentStore, ProviderCharge, ProviderError, ProviderRefund, RefundOutcome,
    StoreError,
};
use shared_core::{Conditional, OrderId};

#[derive(Default)]
struct StoreState {
    payments: HashMap<OrderId, Payment>,
    outbox: Vec<OutboxEvent>,
}

#[derive(Default)]
pub struct InMemoryPaymentStore {
    state: Mutex<StoreState>,
}

impl InMemoryPaymentStore {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn outbox(&self) -> Vec<OutboxEvent> {
        self.state.lock().unwrap().outbox.clone()
    }
}

#[async_trait]
impl PaymentStore for InMemoryPaymentStore {
    async fn get(&self, order_id: OrderId) -> Result<Option<Payment>, StoreError> {
        Ok(self.state.lock().unwrap().payments.get(&order_id).cloned())
    }

    async fn create(&self, payment: &Payment) -> Result<Conditional, StoreError> {
        let mut state = self.state.lock().unwrap();
        if state.payments.contains_key(&payment.order_id) {
            return Ok(Conditional::Lost);
        }
        state.payments.insert(payment.order_id, payment.clone());
        Ok(Conditional::Applied)
    }

    async fn take_lease(
        &self,
        order_id: OrderId,
        status: PaymentStatus,
        lease: &Lease,
        now_ms: i64,
        charging: bool,
    ) -> Result<Option<Payment>, StoreError> {
        let mut state = self.state.lock().unwrap();
        let Some(payment) = state.payments.get_mut(&order_id) else { return Ok(None) };
        if payment.status != status || !payment.is_free(now_ms) {
            return Ok(None);
        }
        let before = payment.clone();
        payment.lease = Some(lease.clone());
        payment.provider_contacted |= charging;
        Ok(Some(before))
    }

    async fn release_lease(&self, order_id: OrderId, owner: &str, provider_contacted: bool) -> Result<(), StoreError> {
        let mut state = self.state.lock().unwrap();
        if let Some(payment) = state.payments.get_mut(&order_id)
            && payment.lease.as_ref().is_some_and(|l| l.owner == owner)
        {
            payment.lease = None;
            payment.provider_contacted = provider_contacted;
        }
        Ok(())
    }

    async fn transition(
        &self,
        next: &Payment,
        from: PaymentStatus,
        events: &[OutboxEvent],
    ) -> Result<Conditional, StoreError> {
        let mut state = self.state.lock().unwrap();
        match state.payments.get(&next.order_id) {
            Some(current) if current.status == from => {
                state.payments.insert(next.order_id, next.clone());
                state.outbox.extend(events.iter().cloned());
                Ok(Conditional::Applied)
            }
            _ => Ok(Conditional::Lost),
        }
    }
}

/// A provider that keeps payments the way Stripe does (created unconfirmed, confirmed once per
/// key, asked about by id) and answers confirmations from a script (one answer per confirmation
/// that reaches a payment not confirmed yet, then `Captured`). Counts its calls.
pub struct ScriptedProvider {
    state: Mutex<ProviderState>,
    delay: Duration,
}

#[derive(Default)]
struct ProviderState {
    script: VecDeque<Result<ChargeOutcome, ProviderError>>,
    create_errors: VecDeque<ProviderError>,
    lost_answers: u32,
    refund_script: VecDeque<Result<RefundOutcome, ProviderError>>,
    create_calls: u32,
    confirm_calls: u32,
    status_calls: u32,
    refund_calls: u32,
    refund_status_calls: u32,
    /// Create key to payment id.
    created: HashMap<String, String>,
    /// Payment id to where it stands (`NotCharged` until confirmed).
    payments: HashMap<String, ChargeOutcome>,
    /// Confirm keys used, with their first answer.
    confirmed_keys: HashMap<String, ChargeOutcome>,
    /// Refund key to refund id; refund id to where it stands.
    refund_keys: HashMap<String, String>,
    refunds: HashMap<String, RefundOutcome>,
}

impl ScriptedProvider {
    /// Every confirmation is captured unless scripted otherwise.
    pub fn new() -> Self {
        Self { state: Mutex::default(), delay: Duration::ZERO }
    }

    /// Each call takes this long (to make concurrent callers overlap).
    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// The configured delay. None by default: even `sleep(Duration::ZERO)` waits for the timer's
    /// next tick (a millisecond), which made every charge through this fake take 2 ms.
    async fn pause(&self) {
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
    }

    /// The next confirmations answer these, in order. An `Err` did nothing (the charge did not
    /// happen); see [`Self::lose_answers`] for charges whose answer is lost.
    pub fn script(&self, answers: impl IntoIterator<Item = Result<ChargeOutcome, ProviderError>>) {
        self.state.lock().unwrap().script.extend(answers);
    }

    /// The next creations of a provider payment fail with these, in order.
    pub fn fail_creates(&self, errors: impl IntoIterator<Item = ProviderError>) {
        self.state.lock().unwrap().create_errors.extend(errors);
    }

    /// The next `n` confirmations charge (as scripted) but their answer is lost: the caller gets
    /// `Unavailable` (a timeout, a saved 500).
    pub fn lose_answers(&self, n: u32) {
        self.state.lock().unwrap().lost_answers += n;
    }

    /// Moves a payment that is `Processing` to `outcome` (the provider finished).
    pub fn finish(&self, provider_payment_id: &str, outcome: ChargeOutcome) {
        self.state.lock().unwrap().payments.insert(provider_payment_id.to_owned(), outcome);
    }

    /// The next refunds answer these, in order (then `Succeeded`).
    pub fn script_refunds(&self, answers: impl IntoIterator<Item = Result<RefundOutcome, ProviderError>>) {
        self.state.lock().unwrap().refund_script.extend(answers);
    }

    /// The next refund calls fail with these, in order.
    pub fn fail_refunds(&self, errors: impl IntoIterator<Item = ProviderError>) {
        self.state.lock().unwrap().refund_script.extend(errors.into_iter().map(Err));
    }

    /// Moves a refund to `outcome` (a pending refund settled).
    pub fn finish_refund(&self, refund_id: &str, outcome: RefundOutcome) {
        self.state.lock().unwrap().refunds.insert(refund_id.to_owned(), outcome);
    }

    /// Confirmation requests: the requests that can charge.
    pub fn charge_calls(&self) -> u32 {
        self.state.lock().unwrap().confirm_calls
    }

    pub fn create_calls(&self) -> u32 {
        self.state.lock().unwrap().create_calls
    }

    /// Questions about a payment (`payment_status`).
    pub fn status_calls(&self) -> u32 {
        self.state.lock().unwrap().status_calls
    }

    pub fn refund_calls(&self) -> u32 {
        self.state.lock().unwrap().refund_calls
    }

    pub fn refund_status_calls(&self) -> u32 {
        self.state.lock().unwrap().refund_status_calls
    }

    /// Distinct payments that moved money.
    pub fn captures(&self) -> usize {
        let state = self.state.lock().unwrap();
        state.payments.values().filter(|o| matches!(o, ChargeOutcome::Captured { .. })).count()
    }

    /// Distinct refunds made.
    pub fn refunds(&self) -> usize {
        self.state.lock().unwrap().refunds.len()
    }
}

impl Default for ScriptedProvider {
    fn default() -> Self {
        Self::new()
    }
}

fn unknown<T>(what: &str, id: &str) -> Result<T, ProviderError> {
    Err(ProviderError::Rejected(format!("no such {what}: {id}")))
}

#[async_trait]
impl PaymentProvider for ScriptedProvider {
    async fn create_payment(&self, charge: &ProviderCharge) -> Result<String, ProviderError> {
        self.pause().await;
        let mut state = self.state.lock().unwrap();
        state.create_calls += 1;
        if let Some(error) = state.create_errors.pop_front() {
            return Err(error);
        }
        let id = format!("pi_{}", charge.order_id);
        state.created.insert(charge.idempotency_key.clone(), id.clone());
        state.payments.entry(id.clone()).or_insert(ChargeOutcome::NotCharged { provider_payment_id: id.clone() });
        Ok(id)
    }

    async fn confirm_payment(
        &self,
        provider_payment_id: &str,
        idempotency_key: &str,
    ) -> Result<ChargeOutcome, ProviderError> {
        self.pause().await;
        let mut state = self.state.lock().unwrap();
        state.confirm_calls += 1;
        if state.confirmed_keys.contains_key(idempotency_key) {
            // Stripe replays the first answer; the adapter asks again when it said `processing`:
            // either way, where the payment stands now.
            return Ok(state.payments[provider_payment_id].clone());
        }
        let Some(current) = state.payments.get(provider_payment_id).cloned() else {
            return unknown("payment", provider_payment_id);
        };
        if !matches!(current, ChargeOutcome::NotCharged { .. }) {
            return Ok(current); // confirmed before: where it stands
        }
        let id = provider_payment_id.to_owned();
        let answer = state.script.pop_front().unwrap_or(Ok(ChargeOutcome::Captured { provider_payment_id: id }));
        let outcome = answer?;
        state.payments.insert(provider_payment_id.to_owned(), outcome.clone());
        state.confirmed_keys.insert(idempotency_key.to_owned(), outcome.clone());
        if state.lost_answers > 0 {
            state.lost_answers -= 1;
            return Err(ProviderError::Unavailable("the answer was lost".into()));
        }
        Ok(outcome)
    }

    async fn payment_status(&self, provider_payment_id: &str) -> Result<ChargeOutcome, ProviderError> {
        self.pause().await;
        let mut state = self.state.lock().unwrap();
        state.status_calls += 1;
        match state.payments.get(provider_payment_id) {
            Some(outcome) => Ok(outcome.clone()),
            None => unknown("payment", provider_payment_id),
        }
    }

    async fn refund(&self, refund: &ProviderRefund) -> Result<RefundOutcome, ProviderError> {
        self.pause().await;
        let mut state = self.state.lock().unwrap();
        state.refund_calls += 1;
        if let Some(id) = state.refund_keys.get(&refund.idempotency_key).cloned() {
            return Ok(state.refunds[&id].clone());
        }
        let id = format!("re_{}", refund.order_id);
        let outcome = match state.refund_script.pop_front() {
            Some(answer) => answer?,
            None => RefundOutcome::Succeeded { refund_id: id.clone() },
        };
        let id = match &outcome {
            RefundOutcome::Succeeded { refund_id }
            | RefundOutcome::Pending { refund_id }
            | RefundOutcome::Failed { refund_id, .. } => refund_id.clone(),
        };
        state.refund_keys.insert(refund.idempotency_key.clone(), id.clone());
        state.refunds.insert(id, outcome.clone());
        Ok(outcome)
    }

    async fn refund_status(&self, refund_id: &str) -> Result<RefundOutcome, ProviderError> {
        self.pause().await;
        let mut state = self.state.lock().unwrap();
        state.refund_status_calls += 1;
        match state.refunds.get(refund_id) {
            Some(outcome) => Ok(outcome.clone()),
            None => unknown("refund", refund_id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: every call slept, even with no delay, and a zero sleep waits for the timer's
    /// next tick. On a runtime without a timer a sleep panics, so this fails if any call sleeps.
    #[test]
    fn without_a_delay_no_call_waits_for_the_timer() {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(async {
            let provider = ScriptedProvider::new();
            let charge = ProviderCharge {
                order_id: OrderId::new(),
                amount: shared_core::money::Money::new(2500, "EUR"),
                payment_method: "pm_card_visa".into(),
                idempotency_key: "key-1".into(),
            };
            let id = provider.create_payment(&charge).await.unwrap();
            let outcome = provider.confirm_payment(&id, "confirm-1").await.unwrap();
            assert_eq!(outcome, ChargeOutcome::Captured { provider_payment_id: id.clone() });
            assert_eq!(provider.payment_status(&id).await.unwrap(), outcome);
        });
    }
}
