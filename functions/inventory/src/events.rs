//! The events the inventory service publishes: its part of the event catalogue (see README).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shared::aws::outbox::OutboxEvent;
use shared_core::{CorrelationId, DomainEvent, OrderId};

use crate::domain::{Reservation, ReservedLine, Shortage};

pub const SERVICE: &str = "inventory";
pub const INVENTORY_RESERVED: &str = "InventoryReserved";
pub const INVENTORY_RESERVATION_FAILED: &str = "InventoryReservationFailed";
pub const INVENTORY_RELEASED: &str = "InventoryReleased";
pub const STOCK_LOW: &str = "StockLow";

/// Stock is held for every line of an order, at these prices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct InventoryReserved {
    pub order_id: OrderId,
    pub lines: Vec<ReservedLine>,
    pub currency: String,
    pub total_minor: u64,
}

/// Nothing was reserved for the order: these skus were short.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct InventoryReservationFailed {
    pub order_id: OrderId,
    pub shortages: Vec<Shortage>,
}

/// The stock held for an order went back on the shelf.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct InventoryReleased {
    pub order_id: OrderId,
    pub lines: Vec<ReservedLine>,
}

/// A sku's available stock fell below its threshold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct StockLow {
    pub sku: String,
    pub available: u64,
    pub threshold: u64,
}

fn outbox<T: Serialize>(
    event_type: &str,
    reservation: &Reservation,
    correlation_id: &CorrelationId,
    at: DateTime<Utc>,
    data: T,
) -> OutboxEvent {
    let event = DomainEvent::new(event_type, reservation.order_id.to_string(), correlation_id.clone(), at, data);
    OutboxEvent::from_event(&event, SERVICE)
}

pub fn reserved(reservation: &Reservation, correlation_id: &CorrelationId) -> OutboxEvent {
    let data = InventoryReserved {
        order_id: reservation.order_id,
        lines: reservation.lines.clone(),
        currency: reservation.currency.clone(),
        total_minor: reservation.total_minor,
    };
    outbox(INVENTORY_RESERVED, reservation, correlation_id, reservation.created_at, data)
}

pub fn reservation_failed(reservation: &Reservation, correlation_id: &CorrelationId) -> OutboxEvent {
    let data = InventoryReservationFailed { order_id: reservation.order_id, shortages: reservation.shortages.clone() };
    outbox(INVENTORY_RESERVATION_FAILED, reservation, correlation_id, reservation.created_at, data)
}

pub fn released(reservation: &Reservation, correlation_id: &CorrelationId) -> OutboxEvent {
    let data = InventoryReleased { order_id: reservation.order_id, lines: reservation.lines.clone() };
    outbox(INVENTORY_RELEASED, reservation, correlation_id, reservation.updated_at, data)
}
