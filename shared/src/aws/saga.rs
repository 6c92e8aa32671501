//! The worker side of the fulfilment saga.
//!
//! The state machine (`infra/statemachine/fulfilment.asl.json`) sends each step as an EventBridge
//! command (`source: shop.saga`, `detail-type: ReserveInventory`, ...) through
//! `events:putEvents.waitForTaskToken`, then waits. The command's `detail` is the usual event
//! envelope plus the `task_token`. A service's saga worker (a Lambda on a rule for its commands)
//! does the step through its domain and answers with `SendTaskSuccess` or `SendTaskFailure`.
//!
//! Errors a worker answers with are named: business outcomes the saga branches on
//! (`InsufficientStock`, `PaymentDeclined`, ...), [`TRANSIENT`] which the saga retries with
//! backoff, and [`INVALID_COMMAND`] for a command that can never succeed.

use async_trait::async_trait;
use aws_lambda_events::eventbridge::EventBridgeEvent;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use shared_core::OrderId;
use shared_core::correlation::CorrelationId;
use shared_core::envelope::rfc3339_millis;

/// The `source` of saga commands on the bus.
pub const COMMAND_SOURCE: &str = "shop.saga";
/// Worth retrying: the saga's Retry matches it (with `States.Timeout`).
pub const TRANSIENT: &str = "Transient";
/// The command is malformed or names nothing that can be done: retrying will not help.
pub const INVALID_COMMAND: &str = "InvalidCommand";

/// The ARN of the execution named `name` of a state machine: executions are named after the
/// order, so this is where an order's saga is found.
pub fn execution_arn(state_machine_arn: &str, name: &str) -> String {
    format!("{}:{name}", state_machine_arn.replacen(":stateMachine:", ":execution:", 1))
}

/// A command from the saga: the envelope, the step's data, and the token to answer with.
/// Workers are tolerant readers: fields they do not know are ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SagaCommand<T = Value> {
    pub event_id: Uuid,
    pub event_type: String,
    pub aggregate_id: String,
    #[serde(with = "rfc3339_millis")]
    #[cfg_attr(feature = "schema", schemars(with = "DateTime<Utc>"))]
    pub occurred_at: DateTime<Utc>,
    pub correlation_id: CorrelationId,
    pub version: u32,
    /// The saga's `traceparent` (from its input, set by the orders saga starter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    pub task_token: String,
    pub data: T,
}

/// The `detail-type` the saga publishes (no task token: nobody answers it) when a compensation
/// failed for good and the order needs a person.
pub const SAGA_COMPENSATION_FAILED: &str = "SagaCompensationFailed";

/// The data of `SagaCompensationFailed`, as the state machine's `CompensationFailed` state
/// builds it (in the usual envelope, `source: shop.saga`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SagaCompensationFailed {
    pub order_id: OrderId,
    /// The execution, to look at its history.
    pub execution_arn: String,
    /// What the last compensation step failed with (`{"Error": ..., "Cause": ...}`).
    pub compensation_error: Value,
    /// The whole saga state when it gave up.
    pub saga_state: Value,
}

impl SagaCommand<Value> {
    /// The data as the step's own type; a mismatch is an [`INVALID_COMMAND`] failure naming the
    /// field.
    pub fn data_as<T: DeserializeOwned>(&self) -> Result<T, TaskOutcome> {
        serde_path_to_error::deserialize(&self.data).map_err(|e| {
            TaskOutcome::failure(INVALID_COMMAND, format!("{} data at {}: {}", self.event_type, e.path(), e.inner()))
        })
    }
}

/// How a step ended, as the saga will see it.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskOutcome {
    /// The step's result (the task state's output before its `ResultPath`).
    Success(Value),
    Failure {
        error: String,
        cause: String,
    },
}

impl TaskOutcome {
    pub fn failure(error: impl Into<String>, cause: impl Into<String>) -> Self {
        Self::Failure { error: error.into(), cause: cause.into() }
    }

    pub fn transient(cause: impl std::fmt::Display) -> Self {
        Self::failure(TRANSIENT, cause.to_string())
    }

    pub fn error(&self) -> Option<&str> {
        match self {
            Self::Failure { error, .. } => Some(error),
            Self::Success(_) => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("could not answer the saga: {0}")]
pub struct ReportError(pub String);

/// Answers a task token.
#[async_trait]
pub trait TaskReporter: Send + Sync {
    /// `Ok` also when the saga no longer waits for this token (answered before, timed out):
    /// a duplicated command's second answer is not an error.
    async fn report(&self, task_token: &str, outcome: &TaskOutcome) -> Result<(), ReportError>;
}

/// Answers through Step Functions' `SendTaskSuccess` / `SendTaskFailure`.
#[derive(Debug, Clone)]
pub struct SfnTaskReporter {
    client: aws_sdk_sfn::Client,
}

impl SfnTaskReporter {
    pub fn new(client: aws_sdk_sfn::Client) -> Self {
        Self { client }
    }
}

/// Step Functions caps an error name at 256 characters and a cause at 32768.
fn clip(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

#[async_trait]
impl TaskReporter for SfnTaskReporter {
    async fn report(&self, task_token: &str, outcome: &TaskOutcome) -> Result<(), ReportError> {
        use aws_sdk_sfn::operation::send_task_failure::SendTaskFailureError as FailureError;
        use aws_sdk_sfn::operation::send_task_success::SendTaskSuccessError as SuccessError;
        let gone = |reason: &str| {
            tracing::warn!(reason, "the saga no longer waits for this task (answered before or timed out)");
            Ok(())
        };
        match outcome {
            TaskOutcome::Success(output) => {
                let result =
                    self.client.send_task_success().task_token(task_token).output(output.to_string()).send().await;
                match result {
                    Ok(_) => Ok(()),
                    Err(err) => match err.as_service_error() {
                        Some(SuccessError::TaskTimedOut(_)) => gone("TaskTimedOut"),
                        Some(SuccessError::InvalidToken(_)) => gone("InvalidToken"),
                        Some(SuccessError::TaskDoesNotExist(_)) => gone("TaskDoesNotExist"),
                        _ => Err(ReportError(aws_sdk_sfn::error::DisplayErrorContext(err).to_string())),
                    },
                }
            }
            TaskOutcome::Failure { error, cause } => {
                let result = self
                    .client
                    .send_task_failure()
                    .task_token(task_token)
                    .error(clip(error, 256))
                    .cause(clip(cause, 32_768))
                    .send()
                    .await;
                match result {
                    Ok(_) => Ok(()),
                    Err(err) => match err.as_service_error() {
                        Some(FailureError::TaskTimedOut(_)) => gone("TaskTimedOut"),
                        Some(FailureError::InvalidToken(_)) => gone("InvalidToken"),
                        Some(FailureError::TaskDoesNotExist(_)) => gone("TaskDoesNotExist"),
                        _ => Err(ReportError(aws_sdk_sfn::error::DisplayErrorContext(err).to_string())),
                    },
                }
            }
        }
    }
}

/// Records answers, for unit tests.
#[derive(Debug, Default)]
pub struct InMemoryTaskReporter {
    answers: std::sync::Mutex<Vec<(String, TaskOutcome)>>,
    /// Answers still to lose (see [`InMemoryTaskReporter::losing_first`]).
    to_lose: std::sync::atomic::AtomicUsize,
}

impl InMemoryTaskReporter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Fails the first `lost` answers (not recorded), as when the worker dies, or cannot reach
    /// Step Functions, after doing the step: the invocation fails, and the saga's retry after its
    /// timeout sends the command again with a new task token.
    pub fn losing_first(lost: usize) -> Self {
        Self { to_lose: lost.into(), ..Self::default() }
    }

    pub fn answers(&self) -> Vec<(String, TaskOutcome)> {
        self.answers.lock().unwrap().clone()
    }
}

#[async_trait]
impl TaskReporter for InMemoryTaskReporter {
    async fn report(&self, task_token: &str, outcome: &TaskOutcome) -> Result<(), ReportError> {
        use std::sync::atomic::Ordering;
        if self.to_lose.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
            return Err(ReportError("injected: the worker died before answering".into()));
        }
        self.answers.lock().unwrap().push((task_token.to_owned(), outcome.clone()));
        Ok(())
    }
}

/// Does one kind of step. `command.event_type` says which (the EventBridge `detail-type`).
#[async_trait]
pub trait CommandHandler: Send + Sync {
    async fn handle(&self, command: &SagaCommand) -> TaskOutcome;
}

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// Not a saga command: nothing to answer, so the event goes to the function's DLQ.
    #[error("not a saga command ({detail_type} from {event_source}): {reason}")]
    NotACommand { event_source: String, detail_type: String, reason: String },
    /// The step was done but the answer did not get through: Lambda retries the event, and the
    /// step (idempotent) answers the same again.
    #[error(transparent)]
    Report(#[from] ReportError),
}

/// Handles one command delivered by EventBridge and answers the saga.
pub async fn dispatch(
    event: EventBridgeEvent<Value>,
    handler: &dyn CommandHandler,
    reporter: &dyn TaskReporter,
) -> Result<TaskOutcome, WorkerError> {
    let not_a_command = |reason: String| WorkerError::NotACommand {
        event_source: event.source.clone(),
        detail_type: event.detail_type.clone(),
        reason,
    };
    if event.source != COMMAND_SOURCE {
        return Err(not_a_command(format!("source must be {COMMAND_SOURCE}")));
    }
    let command: SagaCommand = match serde_path_to_error::deserialize(&event.detail) {
        Ok(command) => command,
        Err(err) => {
            // With a token the saga can at least be told; without one, only the DLQ can.
            if let Some(token) = event.detail.get("task_token").and_then(Value::as_str) {
                let outcome = TaskOutcome::failure(INVALID_COMMAND, format!("at {}: {}", err.path(), err.inner()));
                reporter.report(token, &outcome).await?;
                return Ok(outcome);
            }
            return Err(not_a_command(format!("at {}: {}", err.path(), err.inner())));
        }
    };
    if command.event_type != event.detail_type {
        let outcome = TaskOutcome::failure(
            INVALID_COMMAND,
            format!("detail-type {} does not match event_type {}", event.detail_type, command.event_type),
        );
        reporter.report(&command.task_token, &outcome).await?;
        return Ok(outcome);
    }
    let trace = shared_core::trace::TraceContext::continue_from(command.traceparent.as_deref());
    let span = tracing::info_span!(
        "saga_command",
        command = %command.event_type,
        order_id = %command.aggregate_id,
        correlation_id = %command.correlation_id,
        trace_id = %trace.trace_id(),
        span_id = %trace.span_id(),
        command_id = %command.event_id,
    );
    let outcome = trace.scope(tracing::Instrument::instrument(handler.handle(&command), span.clone())).await;
    let _entered = span.enter();
    match &outcome {
        TaskOutcome::Success(_) => tracing::info!("step done"),
        TaskOutcome::Failure { error, cause } => tracing::warn!(error, cause, "step failed"),
    }
    reporter.report(&command.task_token, &outcome).await?;
    Ok(outcome)
}
