//! The sweeper's Step Functions side: where an order's fulfilment execution is
//! (`DescribeExecution`), and named starts of the compensation machine (`StartExecution`).

use async_trait::async_trait;
use shared_core::OrderId;

use crate::saga::{StartError, StartOutcome};
use crate::sweeper::{CompensationInput, Compensations, SagaRun};

/// The client is built on first use: most sweeps find nothing parked, and building an SDK
/// client (it parses the SDK's endpoint partition table) is cold-start time (`make
/// bench-coldstart`).
#[derive(Debug, Clone)]
pub struct StepFunctionsCompensations {
    config: aws_sdk_sfn::Config,
    client: std::sync::OnceLock<aws_sdk_sfn::Client>,
    fulfilment_arn: String,
    compensation_arn: String,
}

impl StepFunctionsCompensations {
    /// `config`: `aws_sdk_sfn::Config::new(&sdk_config)`.
    pub fn new(
        config: aws_sdk_sfn::Config,
        fulfilment_arn: impl Into<String>,
        compensation_arn: impl Into<String>,
    ) -> Self {
        Self {
            config,
            client: std::sync::OnceLock::new(),
            fulfilment_arn: fulfilment_arn.into(),
            compensation_arn: compensation_arn.into(),
        }
    }

    fn client(&self) -> &aws_sdk_sfn::Client {
        self.client.get_or_init(|| aws_sdk_sfn::Client::from_conf(self.config.clone()))
    }
}

fn unavailable<E: std::error::Error + 'static, R: std::fmt::Debug>(
    err: aws_sdk_sfn::error::SdkError<E, R>,
) -> StartError {
    StartError::Unavailable(aws_sdk_sfn::error::DisplayErrorContext(err).to_string())
}

#[async_trait]
impl Compensations for StepFunctionsCompensations {
    async fn saga(&self, order_id: OrderId) -> Result<SagaRun, StartError> {
        let arn = shared::aws::saga::execution_arn(&self.fulfilment_arn, &order_id.to_string());
        match self.client().describe_execution().execution_arn(arn).send().await {
            Ok(execution) => Ok(match execution.status.as_str() {
                "RUNNING" | "PENDING_REDRIVE" => SagaRun::Running,
                other => SagaRun::Ended(other.to_owned()),
            }),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_execution_does_not_exist()) => Ok(SagaRun::Missing),
            Err(err) => Err(unavailable(err)),
        }
    }

    async fn start(&self, name: &str, input: &CompensationInput) -> Result<StartOutcome, StartError> {
        let trace_header = shared_core::trace::xray_header_of(Some(&input.traceparent));
        let input = serde_json::to_string(input).map_err(|e| StartError::Unavailable(e.to_string()))?;
        let result = self
            .client()
            .start_execution()
            .state_machine_arn(&self.compensation_arn)
            .name(name)
            .input(input)
            .set_trace_header(trace_header)
            .send()
            .await;
        match result {
            Ok(output) => Ok(StartOutcome::Started { execution_arn: output.execution_arn }),
            // The attempt's execution exists already (a start repeated after a crash): it is this attempt.
            Err(err) if err.as_service_error().is_some_and(|e| e.is_execution_already_exists()) => {
                Ok(StartOutcome::AlreadyStarted {
                    execution_arn: shared::aws::saga::execution_arn(&self.compensation_arn, name),
                })
            }
            Err(err) => Err(unavailable(err)),
        }
    }
}
