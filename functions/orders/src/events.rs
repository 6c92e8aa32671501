//! The events the orders service publishes: its part of the event catalogue (see README).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shared_core::OrderId;
use shared_core::{CorrelationId, DomainEvent};

use crate::domain::{Order, OrderLine};
use crate::ports::OutboxEvent;

pub const SERVICE: &str = "orders";
pub const ORDER_CREATED: &str = "OrderCreated";
pub const ORDER_CONFIRMED: &str = "OrderConfirmed";
pub const ORDER_CANCELLED: &str = "OrderCancelled";

/// A customer placed an order. Starts the fulfilment saga.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct OrderCreated {
    pub order_id: OrderId,
    pub customer_id: String,
    pub payment_method: String,
    pub lines: Vec<OrderLine>,
}

/// The order is fulfilled: stock committed, payment captured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct OrderConfirmed {
    pub order_id: OrderId,
    pub customer_id: String,
}

/// The order will not be fulfilled; nothing stays reserved or charged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct OrderCancelled {
    pub order_id: OrderId,
    pub customer_id: String,
    pub reason: String,
}

fn outbox<T: Serialize>(
    event_type: &str,
    order: &Order,
    correlation_id: &CorrelationId,
    now: DateTime<Utc>,
    data: T,
) -> OutboxEvent {
    let event = DomainEvent::new(event_type, order.id.to_string(), correlation_id.clone(), now, data);
    OutboxEvent::from_event(&event, SERVICE)
}

pub fn order_created(order: &Order, correlation_id: &CorrelationId) -> OutboxEvent {
    let data = OrderCreated {
        order_id: order.id,
        customer_id: order.customer_id.clone(),
        payment_method: order.payment_method.clone(),
        lines: order.lines.clone(),
    };
    outbox(ORDER_CREATED, order, correlation_id, order.created_at, data)
}

pub fn order_confirmed(order: &Order, correlation_id: &CorrelationId) -> OutboxEvent {
    let data = OrderConfirmed { order_id: order.id, customer_id: order.customer_id.clone() };
    outbox(ORDER_CONFIRMED, order, correlation_id, order.updated_at, data)
}

pub fn order_cancelled(order: &Order, correlation_id: &CorrelationId) -> OutboxEvent {
    let data = OrderCancelled {
        order_id: order.id,
        customer_id: order.customer_id.clone(),
        reason: order.cancellation_reason.clone().unwrap_or_default(),
    };
    outbox(ORDER_CANCELLED, order, correlation_id, order.updated_at, data)
}
