//! The ports of the inventory service.

use std::collections::HashMap;

use async_trait::async_trait;
use shared::aws::outbox::OutboxEvent;
use shared_core::Conditional;
use shared_core::{CorrelationId, OrderId};

use crate::domain::{Product, ProductSpec, Reservation, Restock};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestockOutcome {
    Applied(Product),
    /// This `restock_id` was applied before: nothing changed.
    AlreadyApplied(Product),
}

/// What writing a reservation did: its two ways to lose are named (see `shared_core::write`).
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    Applied,
    /// A reservation for this order exists already: nothing changed.
    AlreadyExists,
    /// Stock or price changed since the products were read: nothing changed; read and plan again.
    Stale,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no product with sku {0}")]
    UnknownSku(String),
    /// The store failed. The error it failed with is kept (`source()`), and its chain is in the
    /// message: Lambda reports an error by its message alone.
    #[error("inventory store unavailable: {}", shared_core::error::chain(.0.as_ref()))]
    Backend(#[source] shared_core::error::Cause),
}

#[async_trait]
pub trait InventoryStore: Send + Sync {
    /// Creates the product (with no stock) or updates its name, price and threshold.
    async fn put_product(
        &self,
        sku: &str,
        spec: &ProductSpec,
        correlation_id: &CorrelationId,
    ) -> Result<Product, StoreError>;

    /// Adds stock once per `restock_id`.
    async fn restock(
        &self,
        sku: &str,
        restock: &Restock,
        correlation_id: &CorrelationId,
    ) -> Result<RestockOutcome, StoreError>;

    async fn get_product(&self, sku: &str) -> Result<Option<Product>, StoreError>;

    /// Strongly consistent reads of the given skus; unknown skus are absent from the map.
    async fn get_products(&self, skus: &[String]) -> Result<HashMap<String, Product>, StoreError>;

    async fn get_reservation(&self, order_id: OrderId) -> Result<Option<Reservation>, StoreError>;

    /// Writes a new reservation with its events, atomically. A `Reserved` one also takes its
    /// lines' stock, on condition that each product still has the stock and the price planned.
    async fn create_reservation(
        &self,
        reservation: &Reservation,
        events: &[OutboxEvent],
        correlation_id: &CorrelationId,
    ) -> Result<WriteOutcome, StoreError>;

    /// Moves a `Reserved` reservation to `Committed` or `Released` (then returning its stock),
    /// with its events, atomically. `Lost` (nothing written) when it was no longer `Reserved`.
    async fn finish_reservation(
        &self,
        reservation: &Reservation,
        events: &[OutboxEvent],
        correlation_id: &CorrelationId,
    ) -> Result<Conditional, StoreError>;

    /// True if an event with this id was marked as handled (within the marker's lifetime).
    async fn was_processed(&self, event_id: &str) -> Result<bool, StoreError>;

    /// Marks an event as handled; marking it again changes nothing.
    async fn mark_processed(&self, event_id: &str) -> Result<(), StoreError>;
}
