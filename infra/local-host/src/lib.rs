//! The local system: the whole shop on one machine, with no AWS account and no Docker.
//!
//! [`Host`] reads `template.yaml` and provisions moto from it: every table (keys, indexes,
//! streams), event bus, queue, secret and state machine (its ASL file with the
//! `DefinitionSubstitutions` resolved). Then it plays Lambda for every function the template
//! declares, calling the handlers in-process through the same `build_*` wiring their `main` uses,
//! with the function's `Environment` resolved to the local resources:
//!
//! - `HttpApi` events: the routes are served on 127.0.0.1 (port 3000 by default);
//! - `EventBridgeRule` events: the rule is created on the bus with an SQS queue as its target
//!   (moto cannot invoke Lambda), and the queue's events are handed to the function with the
//!   retries and on-failure destination its `EventInvokeConfig` declares;
//! - `DynamoDB` events: the table's stream is polled, filtered with the trigger's
//!   `FilterCriteria`, and handed over in batches of `BatchSize`, retrying from the first failed
//!   record and finally sending to the on-failure destination.
//!
//! Nothing about tables, routes or rules is written here: a change in the template is what runs
//! locally. The payment provider is the simulator, started with the key generated into the
//! provider's secret, and `PaymentProviderBaseUrl` points at it.

mod activity;
pub mod auth;
pub mod chaos;
pub mod checkpoint;
pub mod demo;
pub mod filter;
mod functions;
mod host;
mod http;
pub mod metrics;
pub mod provision;
mod resolve;
mod sfn;
pub mod sigv4;
mod spec;
mod triggers;

use std::time::Duration;

pub use filter::matches;
pub use host::{FunctionInfo, Host, HostConfig};
pub use provision::{Provisioned, physical_name};
pub use resolve::{Physical, Resolver};
use shared::aws::saga::TaskOutcome;
pub use triggers::TimeScale;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    LocalAws(#[from] local_aws::Error),
    #[error("{0}")]
    Setup(String),
}

pub(crate) fn setup<E: std::fmt::Display>(context: &str) -> impl FnOnce(E) -> Error + '_ {
    move |e| Error::Setup(format!("{context}: {e}"))
}

/// [`setup`] for an AWS SDK error, with its whole chain of causes (an `SdkError`'s own
/// `Display` is only "service error").
pub(crate) fn sdk_setup<E: std::error::Error>(context: &str) -> impl FnOnce(E) -> Error + '_ {
    move |e| Error::Setup(format!("{context}: {}", aws_sdk_sqs::error::DisplayErrorContext(e)))
}

/// What to do with a saga command instead of simply delivering it (fault injection in tests
/// and in the demo).
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    Handle,
    /// Lost: the worker never sees it, the saga waits until its timeout.
    Drop,
    /// Delivered twice, as EventBridge may.
    Twice,
    /// The worker is bypassed and the saga gets this answer.
    Answer(TaskOutcome),
}

/// One invocation of a function.
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    /// When it started.
    pub at: chrono::DateTime<chrono::Utc>,
    pub binary: String,
    /// `HTTP GET /orders/..`, the event's `detail-type`, or `stream <table> (n records)`.
    pub trigger: String,
    pub order_id: Option<String>,
    pub correlation_id: Option<String>,
    pub duration: Duration,
    /// 1 for the first try, 2.. for retries, 0 for a delivery dropped on purpose.
    pub attempt: u32,
    /// `Ok` (with the saga's answer for commands) or `Err` with the handler's error.
    pub outcome: Result<Option<TaskOutcome>, String>,
}

impl Invocation {
    /// `ok`, `answered <error>`, `ERROR <error>` or `dropped`, with the try number of a retry.
    pub fn outcome_text(&self) -> String {
        let outcome = match &self.outcome {
            Ok(_) if self.attempt == 0 => "dropped".to_owned(),
            Ok(Some(TaskOutcome::Success(_))) | Ok(None) => "ok".to_owned(),
            Ok(Some(TaskOutcome::Failure { error, .. })) => format!("answered {error}"),
            Err(e) => format!("ERROR {e}"),
        };
        if self.attempt > 1 { format!("{outcome} (try {})", self.attempt) } else { outcome }
    }

    /// One line, readable at a glance: time, function, trigger, outcome, duration, correlation.
    pub fn line(&self) -> String {
        format!(
            "{}  {:<24} {:<40} {:>6} ms  {}  corr={}",
            self.at.format("%H:%M:%S%.3f"),
            self.binary,
            self.trigger,
            self.duration.as_millis(),
            self.outcome_text(),
            self.correlation_id.as_deref().unwrap_or("-"),
        )
    }
}
