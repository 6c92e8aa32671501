//! The inventory side of the fulfilment saga: the worker for `ReserveInventory` and
//! `ReleaseInventory`. The consumer of the orders' outcome events is [`crate::order_events`].

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::json;
use shared::aws::saga::{CommandHandler, INVALID_COMMAND, SagaCommand, TaskOutcome};
use shared_core::OrderId;

use crate::domain::{RequestedLine, ReservationStatus};
use crate::service::{InventoryError, InventoryService};

pub const RESERVE_INVENTORY: &str = "ReserveInventory";
pub const RELEASE_INVENTORY: &str = "ReleaseInventory";
/// Some line could not be reserved (short or unknown sku). The cause lists the shortages.
pub const INSUFFICIENT_STOCK: &str = "InsufficientStock";
/// The order's reservation was released (or released before it was made: a late or repeated
/// `ReserveInventory`), or cannot be made (mixed currencies): final.
pub const RESERVATION_IMPOSSIBLE: &str = "ReservationImpossible";

#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ReserveData {
    pub order_id: OrderId,
    pub lines: Vec<RequestedLine>,
}

#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ReleaseData {
    pub order_id: OrderId,
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
                match self.service.reserve(data.order_id, &data.lines, &command.correlation_id).await {
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
                match self.service.release(data.order_id, &command.correlation_id).await {
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
