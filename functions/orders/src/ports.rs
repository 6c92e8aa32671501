//! The ports of the orders service: what the core needs from the outside world.

use async_trait::async_trait;
pub use shared::aws::outbox::OutboxEvent;
use shared_core::Conditional;
use shared_core::OrderId;

use crate::domain::Order;

/// A client's idempotency key and the request it came with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyClaim {
    /// Whose key it is: keys are scoped per customer, so the same key from two customers makes
    /// two orders (see [`IdempotencyClaim::scoped_key`]).
    pub customer_id: String,
    pub key: String,
    /// The request as canonical JSON: the same key with another request is refused.
    pub request: String,
}

impl IdempotencyClaim {
    /// The key as the store keeps it: the customer's id, length-prefixed so that no customer id
    /// and key can spell another pair's (`a#b` + `c` and `a` + `b#c` stay apart), then the key.
    pub fn scoped_key(&self) -> String {
        format!("{}:{}#{}", self.customer_id.len(), self.customer_id, self.key)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateOutcome {
    Created,
    /// The idempotency key was used before with the same request: this is that order.
    Replayed(OrderId),
}

#[derive(Debug, Clone, PartialEq)]
pub struct OrderPage {
    pub orders: Vec<Order>,
    /// Opaque; pass it back to get the next page. `None` on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("order {0} already exists")]
    AlreadyExists(OrderId),
    #[error("the idempotency key was already used with a different request")]
    IdempotencyMismatch,
    #[error("the cursor is not valid for this query")]
    InvalidCursor,
    /// The store failed. The error it failed with is kept (`source()`), and its chain is in the
    /// message: Lambda reports an error by its message alone.
    #[error("order store unavailable: {}", shared_core::error::chain(.0.as_ref()))]
    Backend(#[source] shared_core::error::Cause),
}

#[async_trait]
pub trait OrderStore: Send + Sync {
    /// Writes a new order and its outbox events atomically; with an idempotency claim, a
    /// second call with the same key changes nothing and says which order the key made.
    async fn create(
        &self,
        order: &Order,
        events: &[OutboxEvent],
        idempotency: Option<&IdempotencyClaim>,
    ) -> Result<CreateOutcome, StoreError>;

    async fn get(&self, id: OrderId) -> Result<Option<Order>, StoreError>;

    /// A customer's orders, newest first.
    async fn list_by_customer(
        &self,
        customer_id: &str,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<OrderPage, StoreError>;

    /// Saves a changed order (whose `version` is one more than the stored one) and its events
    /// atomically; `Lost` (nothing written) if someone else changed it first.
    async fn update(&self, order: &Order, events: &[OutboxEvent]) -> Result<Conditional, StoreError>;
}
