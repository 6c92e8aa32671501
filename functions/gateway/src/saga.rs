//! Where an order's fulfilment saga is: the execution named after the order.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// Where an order's fulfilment saga is, as the order view shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = SagaProgress)]
pub struct Progress {
    /// `RUNNING`, `SUCCEEDED`, `FAILED`, `TIMED_OUT` or `ABORTED`.
    pub status: String,
    /// The last step the execution entered (`ReserveStock`, `ProcessPayment`, `CancelOrder`, ...).
    pub step: Option<String>,
}

#[async_trait]
pub trait SagaProgress: Send + Sync {
    /// `Ok(None)` when the order has no saga (yet).
    async fn progress(&self, order_id: &str) -> Result<Option<Progress>, String>;
}

/// Reads executions of the fulfilment state machine (`STATE_MACHINE_ARN`).
///
/// The client is built on the first order view, not at cold start: building an SDK client parses
/// the SDK's endpoint partition table, and most of the gateway's requests (placing orders, the
/// catalogue) never read a saga (`make bench-coldstart`).
pub struct StepFunctionsProgress {
    config: aws_sdk_sfn::Config,
    client: std::sync::OnceLock<aws_sdk_sfn::Client>,
    state_machine_arn: String,
}

impl StepFunctionsProgress {
    /// `config`: `aws_sdk_sfn::Config::new(&sdk_config)`.
    pub fn new(config: aws_sdk_sfn::Config, state_machine_arn: impl Into<String>) -> Self {
        Self { config, client: std::sync::OnceLock::new(), state_machine_arn: state_machine_arn.into() }
    }

    fn client(&self) -> &aws_sdk_sfn::Client {
        self.client.get_or_init(|| aws_sdk_sfn::Client::from_conf(self.config.clone()))
    }
}

#[async_trait]
impl SagaProgress for StepFunctionsProgress {
    async fn progress(&self, order_id: &str) -> Result<Option<Progress>, String> {
        let arn = shared::aws::saga::execution_arn(&self.state_machine_arn, order_id);
        let execution = match self.client().describe_execution().execution_arn(&arn).send().await {
            Ok(execution) => execution,
            Err(err) if err.as_service_error().is_some_and(|e| e.is_execution_does_not_exist()) => return Ok(None),
            Err(err) => return Err(aws_sdk_sfn::error::DisplayErrorContext(err).to_string()),
        };
        let history = self
            .client()
            .get_execution_history()
            .execution_arn(&arn)
            .reverse_order(true)
            .max_results(100)
            .send()
            .await
            .map_err(|e| aws_sdk_sfn::error::DisplayErrorContext(e).to_string())?;
        // The newest state entered by event id, not by position: moto ignores reverseOrder.
        let step = history
            .events()
            .iter()
            .filter_map(|e| e.state_entered_event_details().map(|d| (e.id(), d.name().to_owned())))
            .max_by_key(|(id, _)| *id)
            .map(|(_, name)| name);
        Ok(Some(Progress { status: execution.status.as_str().to_owned(), step }))
    }
}
