//! The inventory use cases over the ports.

use std::sync::Arc;

use chrono::Utc;
use shared_core::{CorrelationId, InvalidParam, OrderId};

use crate::domain::{
    CannotCommit, PlanError, Product, ProductSpec, RequestedLine, Reservation, ReservationStatus, Restock,
    validate_lines,
};
use crate::events;
use crate::ports::{InventoryStore, RestockOutcome, StoreError, WriteOutcome};

/// How often a reservation is planned again when stock or prices moved under it.
const PLAN_ATTEMPTS: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// 400: fields that are not valid, each named.
    #[error("invalid request")]
    Invalid(Vec<InvalidParam>),
    /// 404.
    #[error("no product with sku {0}")]
    UnknownSku(String),
    /// 422: the lines cannot be planned (products in two currencies, a total past 64 bits).
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// 409: the stock was released or never held.
    #[error("reservation of order {order_id} is {status:?} and cannot be committed")]
    CannotCommit { order_id: OrderId, status: ReservationStatus },
    /// 503: every attempt lost its race; the client retries.
    #[error("the reservation kept changing under concurrent writes; try again")]
    Contended,
    /// 500, its cause logged and never sent.
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for InventoryError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::UnknownSku(sku) => Self::UnknownSku(sku),
            other => Self::Store(other),
        }
    }
}

#[derive(Clone)]
pub struct InventoryService {
    store: Arc<dyn InventoryStore>,
}

impl InventoryService {
    pub fn new(store: Arc<dyn InventoryStore>) -> Self {
        Self { store }
    }

    pub async fn put_product(
        &self,
        sku: &str,
        spec: &ProductSpec,
        correlation_id: &CorrelationId,
    ) -> Result<Product, InventoryError> {
        spec.validate(sku).map_err(InventoryError::Invalid)?;
        Ok(self.store.put_product(sku, spec, correlation_id).await?)
    }

    pub async fn restock(
        &self,
        sku: &str,
        restock: &Restock,
        correlation_id: &CorrelationId,
    ) -> Result<RestockOutcome, InventoryError> {
        restock.validate().map_err(InventoryError::Invalid)?;
        Ok(self.store.restock(sku, restock, correlation_id).await?)
    }

    pub async fn get_product(&self, sku: &str) -> Result<Product, InventoryError> {
        self.store.get_product(sku).await?.ok_or_else(|| InventoryError::UnknownSku(sku.to_owned()))
    }

    pub async fn get_reservation(&self, order_id: OrderId) -> Result<Option<Reservation>, InventoryError> {
        Ok(self.store.get_reservation(order_id).await?)
    }

    /// Reserves every line or none. The answer is the order's reservation: `Reserved` with unit
    /// prices and total from the catalogue, or `Rejected` with the shortages. Asking again for
    /// the same order returns the same reservation and changes nothing; so does asking after the
    /// order's release (the release's tombstone is the answer: nothing is reserved).
    pub async fn reserve(
        &self,
        order_id: OrderId,
        lines: &[RequestedLine],
        correlation_id: &CorrelationId,
    ) -> Result<Reservation, InventoryError> {
        validate_lines(lines).map_err(InventoryError::Invalid)?;
        let skus: Vec<String> = lines.iter().map(|l| l.sku.clone()).collect();
        for _ in 0..PLAN_ATTEMPTS {
            if let Some(existing) = self.store.get_reservation(order_id).await? {
                return Ok(existing);
            }
            let products = self.store.get_products(&skus).await?;
            let reservation = Reservation::plan(order_id, lines, &products, Utc::now())?;
            let event = match reservation.status {
                ReservationStatus::Reserved => events::reserved(&reservation, correlation_id),
                _ => events::reservation_failed(&reservation, correlation_id),
            };
            match self.store.create_reservation(&reservation, &[event], correlation_id).await? {
                WriteOutcome::Applied => {
                    tracing::info!(
                        %order_id,
                        status = ?reservation.status,
                        total_minor = reservation.total_minor,
                        shortages = reservation.shortages.len(),
                        "reservation written"
                    );
                    return Ok(reservation);
                }
                // Someone reserved for this order at the same time: theirs is the answer.
                WriteOutcome::AlreadyExists => continue,
                WriteOutcome::Stale => {
                    tracing::info!(%order_id, "stock or price moved during the reservation, planning again");
                    continue;
                }
            }
        }
        Err(InventoryError::Contended)
    }

    /// Puts the order's held stock back. A no-op for a reservation that holds nothing (already
    /// released, rejected or committed). For an order with no reservation yet it leaves a
    /// tombstone (`Released`, no lines): a `ReserveInventory` that arrives after its release,
    /// late or repeated, finds it and reserves nothing.
    pub async fn release(
        &self,
        order_id: OrderId,
        correlation_id: &CorrelationId,
    ) -> Result<Option<Reservation>, InventoryError> {
        self.finish(order_id, ReservationStatus::Released, correlation_id).await
    }

    /// Turns the order's held stock into a sale. A no-op for an unknown order or one already
    /// committed; an error for a released or rejected reservation (nothing is held to sell).
    pub async fn commit(
        &self,
        order_id: OrderId,
        correlation_id: &CorrelationId,
    ) -> Result<Option<Reservation>, InventoryError> {
        self.finish(order_id, ReservationStatus::Committed, correlation_id).await
    }

    async fn finish(
        &self,
        order_id: OrderId,
        to: ReservationStatus,
        correlation_id: &CorrelationId,
    ) -> Result<Option<Reservation>, InventoryError> {
        for _ in 0..PLAN_ATTEMPTS {
            let Some(current) = self.store.get_reservation(order_id).await? else {
                if to != ReservationStatus::Released {
                    tracing::info!(%order_id, ?to, "no reservation for this order, nothing to do");
                    return Ok(None);
                }
                // Released before reserved: the tombstone is written on the same condition as a
                // reservation (none for this order yet), so of a release and a reservation
                // racing, exactly one writes and the other finds it.
                let tombstone = Reservation::tombstone(order_id, Utc::now());
                match self.store.create_reservation(&tombstone, &[], correlation_id).await? {
                    WriteOutcome::Applied => {
                        tracing::info!(%order_id, "released before any reservation: tombstone written");
                        return Ok(Some(tombstone));
                    }
                    WriteOutcome::AlreadyExists | WriteOutcome::Stale => continue,
                }
            };
            let next = match current.finish(to, Utc::now()) {
                Ok(Some(next)) => next,
                Ok(None) => return Ok(Some(current)),
                Err(CannotCommit(status)) => {
                    return Err(InventoryError::CannotCommit { order_id, status });
                }
            };
            let events = match to {
                ReservationStatus::Released => vec![events::released(&next, correlation_id)],
                _ => Vec::new(),
            };
            if self.store.finish_reservation(&next, &events, correlation_id).await?.is_applied() {
                tracing::info!(%order_id, status = ?to, "reservation finished");
                return Ok(Some(next));
            }
        }
        Err(InventoryError::Contended)
    }

    /// True if the consumed event with this id was handled before.
    pub async fn was_processed(&self, event_id: &str) -> Result<bool, InventoryError> {
        Ok(self.store.was_processed(event_id).await?)
    }

    pub async fn mark_processed(&self, event_id: &str) -> Result<(), InventoryError> {
        Ok(self.store.mark_processed(event_id).await?)
    }
}
