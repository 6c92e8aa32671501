//! The sweep index and the compensation executions in memory, for unit tests: the index is
//! computed from the stored orders with the same key the DynamoDB store writes.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use shared_core::OrderId;

use super::InMemoryOrderStore;
use crate::parking::{Queue, due_bound, shard_key, sweep_key};
use crate::ports::StoreError;
use crate::saga::{StartError, StartOutcome};
use crate::sweeper::{CompensationInput, Compensations, SagaRun, SweepIndex};

#[async_trait]
impl SweepIndex for InMemoryOrderStore {
    async fn due(
        &self,
        queue: Queue,
        shard: u8,
        until: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<OrderId>, StoreError> {
        let (partition, bound) = (shard_key(queue, shard), due_bound(until));
        let state = self.state.lock().unwrap();
        let mut keyed: Vec<(String, OrderId)> = state
            .orders
            .values()
            .filter_map(|order| sweep_key(order).map(|key| (key, order.id)))
            .filter(|((pk, sk), _)| *pk == partition && *sk <= bound)
            .map(|((_, sk), id)| (sk, id))
            .collect();
        keyed.sort();
        Ok(keyed.into_iter().take(limit).map(|(_, id)| id).collect())
    }
}

/// Fulfilment executions as a test sets them, and the compensation executions started, refusing
/// a second start of a name as Step Functions does.
#[derive(Default)]
pub struct InMemoryCompensations {
    sagas: Mutex<BTreeMap<OrderId, SagaRun>>,
    started: Mutex<Vec<(String, CompensationInput)>>,
}

impl InMemoryCompensations {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn set_saga(&self, order_id: OrderId, run: SagaRun) {
        self.sagas.lock().unwrap().insert(order_id, run);
    }

    pub fn started(&self) -> Vec<(String, CompensationInput)> {
        self.started.lock().unwrap().clone()
    }
}

#[async_trait]
impl Compensations for InMemoryCompensations {
    async fn saga(&self, order_id: OrderId) -> Result<SagaRun, StartError> {
        Ok(self.sagas.lock().unwrap().get(&order_id).cloned().unwrap_or(SagaRun::Missing))
    }

    async fn start(&self, name: &str, input: &CompensationInput) -> Result<StartOutcome, StartError> {
        let mut started = self.started.lock().unwrap();
        let execution_arn = format!("arn:aws:states:local:000000000000:execution:compensation:{name}");
        if started.iter().any(|(n, _)| n == name) {
            return Ok(StartOutcome::AlreadyStarted { execution_arn });
        }
        started.push((name.to_owned(), input.clone()));
        Ok(StartOutcome::Started { execution_arn })
    }
}
