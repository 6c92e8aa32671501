//! In-memory order store for unit tests. Same contract as the DynamoDB store, including the
//! outbox: what it "wrote" can be inspected.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use shared_core::Conditional;
use shared_core::OrderId;

use crate::domain::Order;
use crate::ports::{CreateOutcome, IdempotencyClaim, OrderPage, OrderStore, OutboxEvent, StoreError};

mod saga_starter;
mod sweep;
pub use saga_starter::InMemorySagaStarter;
pub use sweep::InMemoryCompensations;

#[derive(Default)]
struct State {
    orders: HashMap<OrderId, Order>,
    outbox: Vec<OutboxEvent>,
    idempotency: HashMap<String, (String, OrderId)>,
}

#[derive(Default)]
pub struct InMemoryOrderStore {
    state: Mutex<State>,
}

impl InMemoryOrderStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every outbox event written so far, in write order.
    pub fn outbox(&self) -> Vec<OutboxEvent> {
        self.state.lock().unwrap().outbox.clone()
    }
}

#[async_trait]
impl OrderStore for InMemoryOrderStore {
    async fn create(
        &self,
        order: &Order,
        events: &[OutboxEvent],
        idempotency: Option<&IdempotencyClaim>,
    ) -> Result<CreateOutcome, StoreError> {
        let mut state = self.state.lock().unwrap();
        if let Some(claim) = idempotency
            && let Some((request, order_id)) = state.idempotency.get(&claim.scoped_key())
        {
            return if *request == claim.request {
                Ok(CreateOutcome::Replayed(*order_id))
            } else {
                Err(StoreError::IdempotencyMismatch)
            };
        }
        if state.orders.contains_key(&order.id) {
            return Err(StoreError::AlreadyExists(order.id));
        }
        state.orders.insert(order.id, order.clone());
        state.outbox.extend_from_slice(events);
        if let Some(claim) = idempotency {
            state.idempotency.insert(claim.scoped_key(), (claim.request.clone(), order.id));
        }
        Ok(CreateOutcome::Created)
    }

    async fn get(&self, id: OrderId) -> Result<Option<Order>, StoreError> {
        Ok(self.state.lock().unwrap().orders.get(&id).cloned())
    }

    async fn list_by_customer(
        &self,
        customer_id: &str,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<OrderPage, StoreError> {
        let after = match cursor {
            Some(raw) => Some(decode_cursor(raw).ok_or(StoreError::InvalidCursor)?),
            None => None,
        };
        let state = self.state.lock().unwrap();
        let mut orders: Vec<&Order> = state.orders.values().filter(|o| o.customer_id == customer_id).collect();
        orders.sort_by_key(|o| std::cmp::Reverse((o.created_at, o.id)));
        let start = match after {
            Some(id) => orders.iter().position(|o| o.id == id).ok_or(StoreError::InvalidCursor)? + 1,
            None => 0,
        };
        let page: Vec<Order> = orders.iter().skip(start).take(limit).map(|o| (*o).clone()).collect();
        let more = orders.len() > start + page.len();
        let next_cursor = more.then(|| URL_SAFE_NO_PAD.encode(page.last().expect("non-empty page").id.to_string()));
        Ok(OrderPage { orders: page, next_cursor })
    }

    async fn update(&self, order: &Order, events: &[OutboxEvent]) -> Result<Conditional, StoreError> {
        let mut state = self.state.lock().unwrap();
        match state.orders.get(&order.id) {
            Some(stored) if stored.version + 1 == order.version => {}
            _ => return Ok(Conditional::Lost),
        }
        state.orders.insert(order.id, order.clone());
        state.outbox.extend_from_slice(events);
        Ok(Conditional::Applied)
    }
}

fn decode_cursor(raw: &str) -> Option<OrderId> {
    let bytes = URL_SAFE_NO_PAD.decode(raw).ok()?;
    OrderId::parse(std::str::from_utf8(&bytes).ok()?)
}
