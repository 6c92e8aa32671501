//! The orders side of the fulfilment saga: the starter (one execution per `OrderCreated`) and
//! the worker for `ConfirmOrder`, `CancelOrder` and `ParkOrder`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::eventbridge::EventBridgeEvent;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use shared::aws::saga::{CommandHandler, INVALID_COMMAND, SagaCommand, TaskOutcome};
use shared_core::DomainEvent;
use shared_core::OrderId;

use crate::domain::OrderLine;
use crate::events::{ORDER_CREATED, OrderCreated, SERVICE};
use crate::service::{OrderService, OrdersError};

pub const CONFIRM_ORDER: &str = "ConfirmOrder";
pub const CANCEL_ORDER: &str = "CancelOrder";
/// A compensation could not finish: park the order `COMPENSATION_PENDING` (see `crate::parking`).
pub const PARK_ORDER: &str = "ParkOrder";
/// The order is not pending any more (cancelled): it cannot be confirmed.
pub const ORDER_NOT_PENDING: &str = "OrderNotPending";
/// The order was confirmed: a compensation must not cancel it silently.
pub const ORDER_ALREADY_CONFIRMED: &str = "OrderAlreadyConfirmed";
pub const ORDER_NOT_FOUND: &str = "OrderNotFound";

/// How long the saga waits for each answer, passed in the execution input (the state machine
/// reads them with `TimeoutSecondsPath`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SagaSettings {
    pub task_timeout_seconds: u64,
    /// Longer: a charge includes the provider's own timeouts and retries.
    pub payment_timeout_seconds: u64,
}

impl Default for SagaSettings {
    fn default() -> Self {
        Self { task_timeout_seconds: 30, payment_timeout_seconds: 75 }
    }
}

impl SagaSettings {
    /// From `SAGA_TASK_TIMEOUT_SECONDS` and `SAGA_PAYMENT_TIMEOUT_SECONDS`, with the defaults.
    pub fn from_lookup(env: shared::config::Lookup<'_>) -> Result<Self, shared::config::ConfigError> {
        let defaults = Self::default();
        Ok(Self {
            task_timeout_seconds: shared::config::parsed_or(
                env,
                "SAGA_TASK_TIMEOUT_SECONDS",
                defaults.task_timeout_seconds,
            )?,
            payment_timeout_seconds: shared::config::parsed_or(
                env,
                "SAGA_PAYMENT_TIMEOUT_SECONDS",
                defaults.payment_timeout_seconds,
            )?,
        })
    }

    pub fn task_timeout(&self) -> Duration {
        Duration::from_secs(self.task_timeout_seconds)
    }
}

/// The input of one fulfilment execution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SagaInput {
    pub order_id: OrderId,
    pub customer_id: String,
    pub payment_method: String,
    pub lines: Vec<OrderLine>,
    pub correlation_id: shared_core::CorrelationId,
    /// The W3C `traceparent` of the starter's span, continuing the `OrderCreated` event's trace.
    /// The state machine copies it into every command, so the workers continue the order's
    /// trace. The starter always sets it (the ASL's `$.traceparent` must exist).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    pub settings: SagaSettings,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartOutcome {
    Started {
        execution_arn: String,
    },
    /// An execution with this name exists already (a redelivered `OrderCreated`): it is the
    /// order's saga, and no second one starts.
    AlreadyStarted {
        execution_arn: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("not an OrderCreated event: {0}")]
    NotOrderCreated(String),
    #[error("could not start the saga: {0}")]
    Unavailable(String),
}

/// Starts named executions of the fulfilment state machine.
#[async_trait]
pub trait SagaStarter: Send + Sync {
    async fn start(&self, name: &str, input: &SagaInput) -> Result<StartOutcome, StartError>;
}

/// Starts the saga for an `OrderCreated` event, named after the order so a duplicate event
/// finds the running (or finished) execution instead of starting a second one.
pub async fn start_for_event(
    event: EventBridgeEvent<Value>,
    starter: &dyn SagaStarter,
    settings: SagaSettings,
) -> Result<StartOutcome, StartError> {
    if event.source != shared_core::envelope::source_for(SERVICE) || event.detail_type != ORDER_CREATED {
        return Err(StartError::NotOrderCreated(format!("{} from {}", event.detail_type, event.source)));
    }
    let created: DomainEvent<OrderCreated> = serde_path_to_error::deserialize(&event.detail)
        .map_err(|e| StartError::NotOrderCreated(format!("at {}: {}", e.path(), e.inner())))?;
    let trace = shared_core::trace::TraceContext::continue_from(created.traceparent.as_deref());
    let input = SagaInput {
        order_id: created.data.order_id,
        customer_id: created.data.customer_id,
        payment_method: created.data.payment_method,
        lines: created.data.lines,
        correlation_id: created.correlation_id,
        traceparent: Some(trace.traceparent()),
        settings,
    };
    let outcome = starter.start(&input.order_id.to_string(), &input).await?;
    match &outcome {
        StartOutcome::Started { execution_arn } => {
            tracing::info!(order_id = %input.order_id, correlation_id = %input.correlation_id, trace_id = %trace.trace_id(), execution_arn, "saga started")
        }
        StartOutcome::AlreadyStarted { execution_arn } => tracing::info!(
            order_id = %input.order_id,
            correlation_id = %input.correlation_id,
            trace_id = %trace.trace_id(),
            execution_arn,
            "saga already started for this order (duplicate event)"
        ),
    }
    Ok(outcome)
}

#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ConfirmData {
    pub order_id: OrderId,
}

#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct CancelData {
    pub order_id: OrderId,
    /// The saga's error name (`InsufficientStock`, `PaymentDeclined`, `States.Timeout`, ...).
    pub reason: String,
    #[serde(default)]
    pub detail: Option<String>,
}

/// `ParkOrder`: which compensation failed and how, what is still owed, and why the order is
/// being compensated at all (`$.error` of the saga, or of the compensation's input). `attempt` is
/// the compensation machine's; the saga's own first attempt sends none.
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ParkData {
    pub order_id: OrderId,
    pub failed_step: String,
    pub compensation_error: crate::sweeper::CaughtError,
    pub owed: crate::parking::Owed,
    pub error: crate::sweeper::CaughtError,
    #[serde(default)]
    pub attempt: Option<u32>,
}

/// Answers `ConfirmOrder`, `CancelOrder` and `ParkOrder`.
#[derive(Clone)]
pub struct OrdersSagaWorker {
    service: Arc<OrderService>,
    backoff: crate::parking::Backoff,
}

impl OrdersSagaWorker {
    pub fn new(service: OrderService) -> Self {
        Self { service: Arc::new(service), backoff: crate::parking::Backoff::default() }
    }

    /// How long a parked order waits for its first retry (`COMPENSATION_RETRY_*`).
    pub fn with_backoff(mut self, backoff: crate::parking::Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    async fn park(&self, command: &SagaCommand, data: ParkData, id: OrderId) -> TaskOutcome {
        let report = crate::parking::ParkReport {
            failed_step: data.failed_step,
            error: data.compensation_error.error,
            cause: data.compensation_error.cause.unwrap_or_default(),
            owed: data.owed,
            reason: data.error.error,
            detail: data.error.cause,
            correlation_id: command.correlation_id.clone(),
            attempt: data.attempt,
        };
        let now = chrono::Utc::now();
        let next = crate::parking::first_retry_at(&self.backoff, now);
        let store = self.service.store();
        let result = crate::sweeper::park(store.as_ref(), id, report, next, now).await;
        outcome_of(result, ORDER_ALREADY_CONFIRMED)
    }
}

fn outcome_of(result: Result<crate::domain::Order, OrdersError>, illegal: &str) -> TaskOutcome {
    match result {
        Ok(order) => TaskOutcome::Success(json!({ "status": order.status })),
        Err(OrdersError::NotFound(id)) => TaskOutcome::failure(ORDER_NOT_FOUND, format!("order {id} does not exist")),
        Err(e @ OrdersError::Illegal(_)) => TaskOutcome::failure(illegal, e.to_string()),
        Err(e @ (OrdersError::Invalid(_) | OrdersError::Unprocessable(_))) => {
            TaskOutcome::failure(INVALID_COMMAND, e.to_string())
        }
        Err(e) => TaskOutcome::transient(e),
    }
}

impl OrdersSagaWorker {
    /// The step; `Err` carries the answer to a command that cannot be done as sent.
    async fn step(&self, command: &SagaCommand) -> Result<TaskOutcome, TaskOutcome> {
        let correlation_id = &command.correlation_id;
        Ok(match command.event_type.as_str() {
            CONFIRM_ORDER => {
                let data: ConfirmData = command.data_as()?;
                let id = data.order_id;
                outcome_of(self.service.confirm(id, correlation_id).await, ORDER_NOT_PENDING)
            }
            CANCEL_ORDER => {
                let data: CancelData = command.data_as()?;
                let id = data.order_id;
                tracing::info!(order_id = %id, reason = data.reason, detail = data.detail, "cancelling the order");
                outcome_of(self.service.cancel(id, &data.reason, correlation_id).await, ORDER_ALREADY_CONFIRMED)
            }
            PARK_ORDER => {
                let data: ParkData = command.data_as()?;
                let id = data.order_id;
                self.park(command, data, id).await
            }
            other => TaskOutcome::failure(INVALID_COMMAND, format!("the orders worker does not handle {other}")),
        })
    }
}

#[async_trait]
impl CommandHandler for OrdersSagaWorker {
    async fn handle(&self, command: &SagaCommand) -> TaskOutcome {
        self.step(command).await.unwrap_or_else(|outcome| outcome)
    }
}
