//! The compensation sweeper: the owner of every order whose saga could not settle it.
//!
//! Run on a schedule (`rate(5 minutes)` in template.yaml), it reads the sparse sweep index
//! ([`crate::parking::sweep_key`]) for two kinds of orders:
//!
//! - **parked** (`COMPENSATION_PENDING`) whose next attempt is due: it claims the attempt (counts
//!   it and moves the next one past its backoff, under optimistic locking, so two sweepers never
//!   start the same attempt) and starts the compensation state machine
//!   (`infra/statemachine/compensate.asl.json`) named `<order id>-<attempt>`, so a start repeated
//!   after a crash finds the execution instead of starting a second one. That machine refunds and
//!   releases what is owed and cancels the order; when a step still fails it re-parks the order
//!   (`ParkOrder` with its attempt) and the order waits for its next attempt.
//! - **pending** for longer than the saga can run (`SAGA_MAX_DURATION_SECONDS`, 2 hours by
//!   default): a saga whose own `ParkOrder` failed (the bus was down), or one that never started.
//!   If the order's fulfilment execution is still running it is left alone; otherwise the order is
//!   parked with every compensation owed (each is idempotent and leaves a tombstone where there
//!   was nothing to undo) and retried at once.
//!
//! Invoked with `{"order_id": "..."}` instead of the schedule's event, it retries that one order
//! now (an operator's retry), whatever its next attempt says.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use shared_core::Conditional;
use shared_core::CorrelationId;
use shared_core::OrderId;

use crate::domain::{Order, OrderStatus};
use crate::parking::{Backoff, Owed, ParkReport, Queue, SHARDS};
use crate::ports::{OrderStore, StoreError};
use crate::saga::{SagaSettings, StartError, StartOutcome};
use crate::service::OrdersError;

/// Orders taken from each shard of each queue per run: a run stays well inside its timeout, and
/// the next run takes the rest.
pub const BATCH: usize = 25;
/// How many times a park or claim reads and writes again after losing a race.
const UPDATE_ATTEMPTS: usize = 3;

/// Reads the sweep index.
#[async_trait]
pub trait SweepIndex: Send + Sync {
    /// Ids of the orders in `queue`'s `shard` whose time is at or before `until`, oldest first.
    /// The index is eventually consistent: callers read each order again before acting.
    async fn due(
        &self,
        queue: Queue,
        shard: u8,
        until: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<OrderId>, StoreError>;
}

/// Where an order's fulfilment execution is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SagaRun {
    Running,
    /// `SUCCEEDED`, `FAILED`, `TIMED_OUT`, `ABORTED`.
    Ended(String),
    /// No execution of that name: the saga never started.
    Missing,
}

/// The Step Functions side: the fulfilment executions and the compensation machine.
#[async_trait]
pub trait Compensations: Send + Sync {
    async fn saga(&self, order_id: OrderId) -> Result<SagaRun, StartError>;
    /// Starts the compensation execution `name`; an existing one is `AlreadyStarted`.
    async fn start(&self, name: &str, input: &CompensationInput) -> Result<StartOutcome, StartError>;
}

/// An error as a state machine's `Catch` records it; the compensation machine's `CancelOrder`
/// reads the reason from it just as the saga's does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct CaughtError {
    #[serde(rename = "Error")]
    pub error: String,
    #[serde(rename = "Cause", default)]
    pub cause: Option<String>,
}

/// The input of one compensation execution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompensationInput {
    pub order_id: OrderId,
    pub correlation_id: CorrelationId,
    pub attempt: u32,
    pub owed: Owed,
    /// Why the order is being cancelled (the saga's error).
    pub error: CaughtError,
    /// A new span of the sweeper's trace (the parked order keeps none): the compensation machine
    /// copies it into its commands, as the saga copies its own (`$.traceparent` must exist).
    pub traceparent: String,
    pub settings: SagaSettings,
}

/// What one run did, for its log line and the invoker.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SweepReport {
    /// Orders found pending after their saga ended, now parked.
    pub adopted: Vec<OrderId>,
    /// Compensation executions started (or found started), as `(order, attempt)`.
    pub started: Vec<(OrderId, u32)>,
    /// Orders whose saga is still running, left alone.
    pub saga_running: Vec<OrderId>,
    /// Orders that needed nothing (already settled, or changed since the index saw them).
    pub untouched: Vec<OrderId>,
    /// Orders that could not be handled this run (tried again next run), with the error.
    pub failed: Vec<(OrderId, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("not a scheduled event or an {{\"order_id\": ...}} retry: {0}")]
    BadInput(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What the sweeper is invoked with.
#[derive(Debug, Clone, PartialEq)]
pub enum SweeperInput {
    /// The schedule's event: sweep everything due.
    Scheduled,
    /// An operator's retry of one order.
    Retry(OrderId),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RetryRequest {
    order_id: OrderId,
}

impl SweeperInput {
    /// An EventBridge `Scheduled Event` (from a rule's or EventBridge Scheduler's schedule), or
    /// exactly `{"order_id": "<id>"}`.
    pub fn parse(payload: &Value) -> Result<Self, SweepError> {
        if payload.get("order_id").is_some() {
            let request: RetryRequest =
                serde_json::from_value(payload.clone()).map_err(|e| SweepError::BadInput(e.to_string()))?;
            return Ok(Self::Retry(request.order_id));
        }
        match (payload["source"].as_str(), payload["detail-type"].as_str()) {
            (Some("aws.events" | "aws.scheduler"), Some("Scheduled Event")) => Ok(Self::Scheduled),
            _ => Err(SweepError::BadInput(format!("{payload}"))),
        }
    }
}

pub struct Sweeper {
    store: Arc<dyn OrderStore>,
    index: Arc<dyn SweepIndex>,
    compensations: Arc<dyn Compensations>,
    pub backoff: Backoff,
    pub settings: SagaSettings,
    /// How long a saga may run before a pending order is looked at.
    pub saga_max_duration: Duration,
}

impl Sweeper {
    pub fn new(store: Arc<dyn OrderStore>, index: Arc<dyn SweepIndex>, compensations: Arc<dyn Compensations>) -> Self {
        Self {
            store,
            index,
            compensations,
            backoff: Backoff::default(),
            settings: SagaSettings::default(),
            saga_max_duration: Duration::from_secs(2 * 3600),
        }
    }

    pub async fn handle(&self, input: SweeperInput, now: DateTime<Utc>) -> Result<SweepReport, SweepError> {
        let report = match input {
            SweeperInput::Scheduled => self.sweep(now).await?,
            SweeperInput::Retry(id) => {
                let mut report = SweepReport::default();
                self.retry_one(id, now, false, &mut report).await;
                report
            }
        };
        if !report.adopted.is_empty() || !report.started.is_empty() || !report.failed.is_empty() {
            tracing::info!(
                adopted = ?report.adopted,
                started = ?report.started,
                failed = ?report.failed,
                saga_running = report.saga_running.len(),
                "compensation sweep"
            );
        }
        Ok(report)
    }

    /// Every due order of every shard: stale pending ones first (so one adopted now is started
    /// in the same run), then parked ones.
    pub async fn sweep(&self, now: DateTime<Utc>) -> Result<SweepReport, SweepError> {
        let mut report = SweepReport::default();
        let stale_before = now - chrono::Duration::from_std(self.saga_max_duration).unwrap_or(chrono::Duration::MAX);
        for shard in 0..SHARDS {
            for id in self.index.due(Queue::Pending, shard, stale_before, BATCH).await? {
                self.retry_one(id, now, true, &mut report).await;
            }
        }
        for shard in 0..SHARDS {
            for id in self.index.due(Queue::Parked, shard, now, BATCH).await? {
                if report.started.iter().any(|(started, _)| *started == id) {
                    continue;
                }
                self.retry_one(id, now, true, &mut report).await;
            }
        }
        Ok(report)
    }

    /// Handles one order; `scheduled` retries only what is due, an operator's retry anything
    /// that is not settled.
    async fn retry_one(&self, id: OrderId, now: DateTime<Utc>, scheduled: bool, report: &mut SweepReport) {
        if let Err(e) = self.try_one(id, now, scheduled, report).await {
            tracing::error!(order_id = %id, error = %e, "compensation sweep of an order failed");
            report.failed.push((id, e));
        }
    }

    async fn try_one(
        &self,
        id: OrderId,
        now: DateTime<Utc>,
        scheduled: bool,
        report: &mut SweepReport,
    ) -> Result<(), String> {
        let Some(order) = self.store.get(id).await.map_err(|e| e.to_string())? else {
            report.untouched.push(id);
            return Ok(());
        };
        match order.status {
            OrderStatus::Pending => {
                let age = (now - order.created_at).to_std().unwrap_or_default();
                if scheduled && age < self.saga_max_duration {
                    report.untouched.push(id);
                    return Ok(());
                }
                let saga = self.compensations.saga(id).await.map_err(|e| e.to_string())?;
                let (error, cause) = match saga {
                    SagaRun::Running => {
                        report.saga_running.push(id);
                        return Ok(());
                    }
                    SagaRun::Ended(status) => {
                        ("SagaEnded", format!("the fulfilment execution ended {status} with the order still PENDING"))
                    }
                    SagaRun::Missing => ("SagaMissing", "no fulfilment execution exists for the order".to_owned()),
                };
                let parking = ParkReport {
                    failed_step: "Saga".into(),
                    error: error.into(),
                    cause: cause.clone(),
                    owed: Owed::ALL,
                    reason: "SagaAbandoned".into(),
                    detail: Some(cause),
                    correlation_id: CorrelationId::generate(),
                    attempt: None,
                };
                park(self.store.as_ref(), id, parking, now, now).await.map_err(|e| e.to_string())?;
                report.adopted.push(id);
                self.start_next(id, now, false, report).await
            }
            OrderStatus::CompensationPending => self.start_next(id, now, scheduled, report).await,
            OrderStatus::Confirmed | OrderStatus::Cancelled => {
                report.untouched.push(id);
                Ok(())
            }
        }
    }

    /// Claims the parked order's next attempt and starts its compensation execution.
    async fn start_next(
        &self,
        id: OrderId,
        now: DateTime<Utc>,
        only_if_due: bool,
        report: &mut SweepReport,
    ) -> Result<(), String> {
        let Some(order) = claim(self.store.as_ref(), id, &self.backoff, now, only_if_due).await? else {
            report.untouched.push(id);
            return Ok(());
        };
        let parking = order.parking.as_ref().expect("a claimed order is parked");
        let input = CompensationInput {
            order_id: id,
            correlation_id: parking.correlation_id.clone(),
            attempt: parking.attempts,
            owed: parking.owed,
            error: CaughtError { error: parking.reason.clone(), cause: parking.detail.clone() },
            traceparent: shared_core::trace::TraceContext::continue_from(
                shared_core::trace::current_traceparent().as_deref(),
            )
            .traceparent(),
            settings: self.settings,
        };
        let name = execution_name(id, parking.attempts);
        self.compensations.start(&name, &input).await.map_err(|e| e.to_string())?;
        report.started.push((id, parking.attempts));
        Ok(())
    }
}

/// The compensation execution of an order's attempt: one per attempt, whoever starts it.
pub fn execution_name(id: OrderId, attempt: u32) -> String {
    format!("{id}-{attempt}")
}

/// Parks an order (or records a later attempt's failure), with its `OrderCompensationPending`
/// event when it is newly parked; reads again when someone wrote in between.
pub async fn park(
    store: &dyn OrderStore,
    id: OrderId,
    report: ParkReport,
    next_attempt_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Order, OrdersError> {
    for _ in 0..UPDATE_ATTEMPTS {
        let mut order = store.get(id).await?.ok_or(OrdersError::NotFound(id))?;
        let was = order.status;
        if !order.park(report.clone(), next_attempt_at, now)? {
            return Ok(order);
        }
        let events: Vec<_> = if was == OrderStatus::CompensationPending {
            Vec::new()
        } else {
            crate::parking::order_compensation_pending(&order).into_iter().collect()
        };
        match store.update(&order, &events).await {
            Ok(Conditional::Applied) => {
                let parking = order.parking.as_ref().expect("parked");
                tracing::warn!(
                    order_id = %id,
                    failed_step = parking.failed_step,
                    error = parking.error,
                    attempts = parking.attempts,
                    next_attempt_at = %parking.next_attempt_at,
                    "order parked COMPENSATION_PENDING"
                );
                return Ok(order);
            }
            Ok(Conditional::Lost) => continue,
            Err(err) => return Err(err.into()),
        }
    }
    Err(OrdersError::Contended(id))
}

/// Claims the next attempt of a parked order (`None`: not parked, or not due when
/// `only_if_due`, or another sweeper claimed it first).
async fn claim(
    store: &dyn OrderStore,
    id: OrderId,
    backoff: &Backoff,
    now: DateTime<Utc>,
    only_if_due: bool,
) -> Result<Option<Order>, String> {
    let Some(mut order) = store.get(id).await.map_err(|e| e.to_string())? else { return Ok(None) };
    let due = order.parking.as_ref().is_some_and(|p| p.next_attempt_at <= now);
    if order.status != OrderStatus::CompensationPending || (only_if_due && !due) {
        return Ok(None);
    }
    order.claim_retry(backoff, now).map_err(|e| e.to_string())?;
    match store.update(&order, &[]).await {
        Ok(Conditional::Applied) => Ok(Some(order)),
        // Someone else changed it (another sweeper claimed it, or it was re-parked): their turn.
        Ok(Conditional::Lost) => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}
