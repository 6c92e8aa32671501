//! In-memory adapters for unit tests: a payment store with the same conditional semantics as
//! DynamoDB, and a scripted payment provider that counts its calls.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use shared::outbox::OutboxEvent;

use crate::domain::{Lease, Payment, PaymentStatus};
use crate::ports::{
    ChargeOutcome, PaymentProvider, PaymentStore, ProviderCharge, ProviderError, ProviderRefund, StoreError,
};

#[derive(Default)]
struct StoreState {
    payments: HashMap<String, Payment>,
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
    async fn get(&self, order_id: &str) -> Result<Option<Payment>, StoreError> {
        Ok(self.state.lock().unwrap().payments.get(order_id).cloned())
    }

    async fn create(&self, payment: &Payment) -> Result<bool, StoreError> {
        let mut state = self.state.lock().unwrap();
        if state.payments.contains_key(&payment.order_id) {
            return Ok(false);
        }
        state.payments.insert(payment.order_id.clone(), payment.clone());
        Ok(true)
    }

    async fn take_lease(
        &self,
        order_id: &str,
        status: PaymentStatus,
        lease: &Lease,
        now_ms: i64,
        charging: bool,
    ) -> Result<Option<Payment>, StoreError> {
        let mut state = self.state.lock().unwrap();
        let Some(payment) = state.payments.get_mut(order_id) else { return Ok(None) };
        if payment.status != status || !payment.is_free(now_ms) {
            return Ok(None);
        }
        let before = payment.clone();
        payment.lease = Some(lease.clone());
        payment.provider_contacted |= charging;
        Ok(Some(before))
    }

    async fn release_lease(&self, order_id: &str, owner: &str, provider_contacted: bool) -> Result<(), StoreError> {
        let mut state = self.state.lock().unwrap();
        if let Some(payment) = state.payments.get_mut(order_id)
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
    ) -> Result<bool, StoreError> {
        let mut state = self.state.lock().unwrap();
        match state.payments.get(&next.order_id) {
            Some(current) if current.status == from => {
                state.payments.insert(next.order_id.clone(), next.clone());
                state.outbox.extend(events.iter().cloned());
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

/// A provider that answers from a script (one answer per call, then the default) and remembers
/// each idempotency key's first outcome the way Stripe does.
pub struct ScriptedProvider {
    state: Mutex<ProviderState>,
    delay: Duration,
}

#[derive(Default)]
struct ProviderState {
    script: VecDeque<Result<ChargeOutcome, ProviderError>>,
    charge_calls: u32,
    refund_calls: u32,
    charged_keys: HashMap<String, ChargeOutcome>,
    refunds: HashMap<String, String>,
    refund_script: VecDeque<ProviderError>,
}

impl ScriptedProvider {
    /// Every charge is captured unless scripted otherwise.
    pub fn new() -> Self {
        Self { state: Mutex::default(), delay: Duration::ZERO }
    }

    /// Each call takes this long (to make concurrent callers overlap).
    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// The next charge calls answer these, in order.
    pub fn script(&self, answers: impl IntoIterator<Item = Result<ChargeOutcome, ProviderError>>) {
        self.state.lock().unwrap().script.extend(answers);
    }

    /// The next refund calls fail with these, in order.
    pub fn fail_refunds(&self, errors: impl IntoIterator<Item = ProviderError>) {
        self.state.lock().unwrap().refund_script.extend(errors);
    }

    pub fn charge_calls(&self) -> u32 {
        self.state.lock().unwrap().charge_calls
    }

    pub fn refund_calls(&self) -> u32 {
        self.state.lock().unwrap().refund_calls
    }

    /// Distinct charges that moved money.
    pub fn captures(&self) -> usize {
        let state = self.state.lock().unwrap();
        state.charged_keys.values().filter(|o| matches!(o, ChargeOutcome::Captured { .. })).count()
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

#[async_trait]
impl PaymentProvider for ScriptedProvider {
    async fn charge(&self, charge: &ProviderCharge) -> Result<ChargeOutcome, ProviderError> {
        tokio::time::sleep(self.delay).await;
        let mut state = self.state.lock().unwrap();
        state.charge_calls += 1;
        if let Some(first) = state.charged_keys.get(&charge.idempotency_key) {
            return Ok(first.clone());
        }
        let answer = state
            .script
            .pop_front()
            .unwrap_or_else(|| Ok(ChargeOutcome::Captured { provider_payment_id: format!("pi_{}", charge.order_id) }));
        if let Ok(outcome) = &answer {
            state.charged_keys.insert(charge.idempotency_key.clone(), outcome.clone());
        }
        answer
    }

    async fn refund(&self, refund: &ProviderRefund) -> Result<String, ProviderError> {
        tokio::time::sleep(self.delay).await;
        let mut state = self.state.lock().unwrap();
        state.refund_calls += 1;
        if let Some(error) = state.refund_script.pop_front() {
            return Err(error);
        }
        let id = format!("re_{}", refund.order_id);
        Ok(state.refunds.entry(refund.idempotency_key.clone()).or_insert(id).clone())
    }
}
