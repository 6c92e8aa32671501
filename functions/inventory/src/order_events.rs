//! The consumer of the orders' outcome events (`inventory-order-events`: choreography beside the
//! saga's orchestration): `OrderConfirmed` commits the reservation, `OrderCancelled` releases
//! whatever is still held (a safety net for a saga that died half way).

use aws_lambda_events::eventbridge::EventBridgeEvent;
use serde::Deserialize;
use serde_json::Value;
use shared_core::{CorrelationId, DomainEvent, OrderId};

use crate::domain::ReservationStatus;
use crate::service::{InventoryError, InventoryService};

pub const ORDER_CONFIRMED: &str = "OrderConfirmed";
pub const ORDER_CANCELLED: &str = "OrderCancelled";
const ORDERS_SOURCE: &str = "shop.orders";

#[derive(Debug, Deserialize)]
struct OrderOutcome {
    order_id: OrderId,
}

#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    #[error("not an order outcome event ({0}): {1}")]
    Unreadable(String, String),
    #[error(transparent)]
    Inventory(#[from] InventoryError),
}

/// What the consumer did with an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Consumed {
    Committed,
    Released,
    /// Nothing to do (it was already finished), or nothing was held (a release left a tombstone).
    NothingHeld,
    /// This `event_id` was handled before.
    Duplicate,
}

/// Handles `OrderConfirmed` (commit) and `OrderCancelled` (release), once per `event_id`. An
/// error leaves the event unmarked: Lambda retries it, then sends it to the function's DLQ.
///
/// It runs as a new span of the event's trace (its `traceparent`), with `trace_id` and
/// `correlation_id` on every log line.
pub async fn consume_order_event(
    event: EventBridgeEvent<Value>,
    service: &InventoryService,
) -> Result<Consumed, ConsumerError> {
    let text = |field: &str| event.detail.get(field).and_then(Value::as_str).map(str::to_owned);
    let trace = shared_core::trace::TraceContext::continue_from(text("traceparent").as_deref());
    let span = tracing::info_span!(
        "order_event",
        correlation_id = text("correlation_id").unwrap_or_default(),
        trace_id = %trace.trace_id(),
        span_id = %trace.span_id(),
    );
    trace.scope(tracing::Instrument::instrument(consume(event, service), span)).await
}

async fn consume(event: EventBridgeEvent<Value>, service: &InventoryService) -> Result<Consumed, ConsumerError> {
    let kind = format!("{} from {}", event.detail_type, event.source);
    if event.source != ORDERS_SOURCE || ![ORDER_CONFIRMED, ORDER_CANCELLED].contains(&event.detail_type.as_str()) {
        return Err(ConsumerError::Unreadable(kind, "unexpected event type".into()));
    }
    let envelope: DomainEvent<OrderOutcome> = serde_path_to_error::deserialize(&event.detail)
        .map_err(|e| ConsumerError::Unreadable(kind.clone(), format!("at {}: {}", e.path(), e.inner())))?;
    let event_id = envelope.event_id.to_string();
    if service.was_processed(&event_id).await? {
        tracing::info!(event_id, kind, "already handled, skipping");
        return Ok(Consumed::Duplicate);
    }
    let correlation_id: &CorrelationId = &envelope.correlation_id;
    let order_id = envelope.data.order_id;
    let consumed = if event.detail_type == ORDER_CONFIRMED {
        match service.commit(order_id, correlation_id).await? {
            Some(r) if r.status == ReservationStatus::Committed => Consumed::Committed,
            _ => Consumed::NothingHeld,
        }
    } else {
        match service.release(order_id, correlation_id).await? {
            Some(r) if r.status == ReservationStatus::Released && !r.tombstone => Consumed::Released,
            _ => Consumed::NothingHeld,
        }
    };
    // Marked after the work: a crash in between repeats an idempotent commit or release.
    service.mark_processed(&event_id).await?;
    tracing::info!(event_id, kind, %order_id, outcome = ?consumed, "order outcome handled");
    Ok(consumed)
}
