//! The inventory side of the fulfilment saga: the worker for `ReserveInventory` and
//! `ReleaseInventory`, and the consumer of the orders' outcome events (choreography beside the
//! orchestration): `OrderConfirmed` commits the reservation, `OrderCancelled` releases whatever
//! is still held (a safety net for a saga that died half way).

use async_trait::async_trait;
use aws_lambda_events::eventbridge::EventBridgeEvent;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use shared::saga::{CommandHandler, INVALID_COMMAND, SagaCommand, TaskOutcome};
use shared::{CorrelationId, DomainEvent};

use crate::domain::{RequestedLine, ReservationStatus};
use crate::service::{InventoryError, InventoryService};

pub const RESERVE_INVENTORY: &str = "ReserveInventory";
pub const RELEASE_INVENTORY: &str = "ReleaseInventory";
/// Some line could not be reserved (short or unknown sku). The cause lists the shortages.
pub const INSUFFICIENT_STOCK: &str = "InsufficientStock";
/// The order's reservation was released (or released before it was made: a late or repeated
/// `ReserveInventory`), or cannot be made (mixed currencies): final.
pub const RESERVATION_IMPOSSIBLE: &str = "ReservationImpossible";

pub const ORDER_CONFIRMED: &str = "OrderConfirmed";
pub const ORDER_CANCELLED: &str = "OrderCancelled";
const ORDERS_SOURCE: &str = "shop.orders";

#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ReserveData {
    pub order_id: String,
    pub lines: Vec<RequestedLine>,
}

#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ReleaseData {
    pub order_id: String,
}

fn failure_of(err: InventoryError) -> TaskOutcome {
    match err {
        e @ InventoryError::Invalid(_) => TaskOutcome::failure(INVALID_COMMAND, e.to_string()),
        e @ (InventoryError::Plan(_) | InventoryError::CannotCommit { .. }) => {
            TaskOutcome::failure(RESERVATION_IMPOSSIBLE, e.to_string())
        }
        e @ InventoryError::UnknownSku(_) => TaskOutcome::failure(INSUFFICIENT_STOCK, e.to_string()),
        e @ (InventoryError::Contended | InventoryError::Store(_)) => TaskOutcome::transient(e),
    }
}

/// Answers `ReserveInventory` and `ReleaseInventory`.
#[derive(Clone)]
pub struct InventorySagaWorker {
    service: InventoryService,
}

impl InventorySagaWorker {
    pub fn new(service: InventoryService) -> Self {
        Self { service }
    }
}

impl InventorySagaWorker {
    /// The step; `Err` carries the answer to a command that cannot be done as sent.
    async fn step(&self, command: &SagaCommand) -> Result<TaskOutcome, TaskOutcome> {
        Ok(match command.event_type.as_str() {
            RESERVE_INVENTORY => {
                let data: ReserveData = command.data_as()?;
                match self.service.reserve(&data.order_id, &data.lines, &command.correlation_id).await {
                    Ok(r) if matches!(r.status, ReservationStatus::Reserved | ReservationStatus::Committed) => {
                        TaskOutcome::Success(json!({
                            "status": r.status,
                            "total": { "amount_minor": r.total_minor, "currency": r.currency },
                        }))
                    }
                    Ok(r) if r.status == ReservationStatus::Rejected => TaskOutcome::failure(
                        INSUFFICIENT_STOCK,
                        serde_json::to_string(&r.shortages).unwrap_or_default(),
                    ),
                    Ok(r) if r.tombstone => TaskOutcome::failure(
                        RESERVATION_IMPOSSIBLE,
                        format!(
                            "order {} was released before its stock was reserved (a late or repeated \
                             ReserveInventory): nothing reserved",
                            r.order_id
                        ),
                    ),
                    Ok(r) => TaskOutcome::failure(
                        RESERVATION_IMPOSSIBLE,
                        format!("the reservation of order {} was {:?} before", r.order_id, r.status),
                    ),
                    Err(err) => failure_of(err),
                }
            }
            RELEASE_INVENTORY => {
                let data: ReleaseData = command.data_as()?;
                match self.service.release(&data.order_id, &command.correlation_id).await {
                    Ok(Some(r)) => TaskOutcome::Success(json!({ "status": r.status })),
                    Ok(None) => TaskOutcome::Success(json!({ "status": "NONE" })),
                    Err(err) => failure_of(err),
                }
            }
            other => TaskOutcome::failure(INVALID_COMMAND, format!("the inventory worker does not handle {other}")),
        })
    }
}

#[async_trait]
impl CommandHandler for InventorySagaWorker {
    async fn handle(&self, command: &SagaCommand) -> TaskOutcome {
        self.step(command).await.unwrap_or_else(|outcome| outcome)
    }
}

#[derive(Debug, Deserialize)]
struct OrderOutcome {
    order_id: String,
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
    let trace = shared::observability::TraceContext::continue_from(text("traceparent").as_deref());
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
    let order_id = &envelope.data.order_id;
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
    tracing::info!(event_id, kind, order_id, outcome = ?consumed, "order outcome handled");
    Ok(consumed)
}
