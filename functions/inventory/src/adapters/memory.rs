//! In-memory inventory store for unit tests, with the same all-or-nothing semantics as DynamoDB.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{SubsecRound, Utc};
use shared::aws::outbox::OutboxEvent;
use shared_core::Conditional;
use shared_core::{CorrelationId, OrderId};

use crate::domain::{Product, ProductSpec, Reservation, ReservationStatus, Restock};
use crate::ports::{InventoryStore, RestockOutcome, StoreError, WriteOutcome};

#[derive(Default)]
struct State {
    products: HashMap<String, Product>,
    reservations: HashMap<OrderId, Reservation>,
    restocks: HashSet<(String, String)>,
    processed: HashSet<String>,
    outbox: Vec<OutboxEvent>,
}

#[derive(Default)]
pub struct InMemoryInventoryStore {
    state: Mutex<State>,
}

impl InMemoryInventoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn outbox(&self) -> Vec<OutboxEvent> {
        self.state.lock().unwrap().outbox.clone()
    }

    /// Changes a product behind the service's back, as a concurrent writer would.
    pub fn tamper(&self, sku: &str, change: impl FnOnce(&mut Product)) {
        change(self.state.lock().unwrap().products.get_mut(sku).expect("known sku"));
    }
}

#[async_trait]
impl InventoryStore for InMemoryInventoryStore {
    async fn put_product(&self, sku: &str, spec: &ProductSpec, _: &CorrelationId) -> Result<Product, StoreError> {
        let mut state = self.state.lock().unwrap();
        let now = Utc::now().trunc_subsecs(3);
        let product = state.products.entry(sku.to_owned()).or_insert_with(|| Product {
            sku: sku.to_owned(),
            name: String::new(),
            price: spec.price.clone(),
            available: 0,
            low_stock_threshold: 0,
            updated_at: now,
        });
        product.name = spec.name.clone();
        product.price = spec.price.clone();
        product.low_stock_threshold = spec.low_stock_threshold;
        product.updated_at = now;
        Ok(product.clone())
    }

    async fn restock(&self, sku: &str, restock: &Restock, _: &CorrelationId) -> Result<RestockOutcome, StoreError> {
        let mut state = self.state.lock().unwrap();
        let first_time = !state.restocks.contains(&(sku.to_owned(), restock.restock_id.clone()));
        let product = state.products.get_mut(sku).ok_or_else(|| StoreError::UnknownSku(sku.to_owned()))?;
        if !first_time {
            return Ok(RestockOutcome::AlreadyApplied(product.clone()));
        }
        product.available += u64::from(restock.quantity);
        let product = product.clone();
        state.restocks.insert((sku.to_owned(), restock.restock_id.clone()));
        Ok(RestockOutcome::Applied(product))
    }

    async fn get_product(&self, sku: &str) -> Result<Option<Product>, StoreError> {
        Ok(self.state.lock().unwrap().products.get(sku).cloned())
    }

    async fn get_products(&self, skus: &[String]) -> Result<HashMap<String, Product>, StoreError> {
        let state = self.state.lock().unwrap();
        Ok(skus.iter().filter_map(|s| state.products.get(s).map(|p| (s.clone(), p.clone()))).collect())
    }

    async fn get_reservation(&self, order_id: OrderId) -> Result<Option<Reservation>, StoreError> {
        Ok(self.state.lock().unwrap().reservations.get(&order_id).cloned())
    }

    async fn create_reservation(
        &self,
        reservation: &Reservation,
        events: &[OutboxEvent],
        _: &CorrelationId,
    ) -> Result<WriteOutcome, StoreError> {
        let mut state = self.state.lock().unwrap();
        if state.reservations.contains_key(&reservation.order_id) {
            return Ok(WriteOutcome::AlreadyExists);
        }
        if reservation.status == ReservationStatus::Reserved {
            let still_valid = reservation.lines.iter().all(|line| {
                state.products.get(&line.sku).is_some_and(|p| {
                    p.available >= u64::from(line.quantity)
                        && p.price.amount_minor == line.unit_price_minor
                        && p.price.currency == reservation.currency
                })
            });
            if !still_valid {
                return Ok(WriteOutcome::Stale);
            }
            for line in &reservation.lines {
                state.products.get_mut(&line.sku).expect("checked above").available -= u64::from(line.quantity);
            }
        }
        state.reservations.insert(reservation.order_id, reservation.clone());
        state.outbox.extend_from_slice(events);
        Ok(WriteOutcome::Applied)
    }

    async fn finish_reservation(
        &self,
        reservation: &Reservation,
        events: &[OutboxEvent],
        _: &CorrelationId,
    ) -> Result<Conditional, StoreError> {
        let mut state = self.state.lock().unwrap();
        match state.reservations.get(&reservation.order_id) {
            Some(current) if current.status == ReservationStatus::Reserved => {}
            _ => return Ok(Conditional::Lost),
        }
        if reservation.status == ReservationStatus::Released {
            for line in &reservation.lines {
                if let Some(product) = state.products.get_mut(&line.sku) {
                    product.available += u64::from(line.quantity);
                }
            }
        }
        state.reservations.insert(reservation.order_id, reservation.clone());
        state.outbox.extend_from_slice(events);
        Ok(Conditional::Applied)
    }

    async fn was_processed(&self, event_id: &str) -> Result<bool, StoreError> {
        Ok(self.state.lock().unwrap().processed.contains(event_id))
    }

    async fn mark_processed(&self, event_id: &str) -> Result<(), StoreError> {
        self.state.lock().unwrap().processed.insert(event_id.to_owned());
        Ok(())
    }
}
