//! The saga starter on Step Functions: `StartExecution` named after the order.

use async_trait::async_trait;

use crate::saga::{SagaInput, SagaStarter, StartError, StartOutcome};

#[derive(Debug, Clone)]
pub struct StepFunctionsSagaStarter {
    client: aws_sdk_sfn::Client,
    state_machine_arn: String,
}

impl StepFunctionsSagaStarter {
    pub fn new(client: aws_sdk_sfn::Client, state_machine_arn: impl Into<String>) -> Self {
        Self { client, state_machine_arn: state_machine_arn.into() }
    }

    /// `arn:...:stateMachine:M` and `N` give `arn:...:execution:M:N`.
    fn execution_arn(&self, name: &str) -> String {
        shared::aws::saga::execution_arn(&self.state_machine_arn, name)
    }
}

#[async_trait]
impl SagaStarter for StepFunctionsSagaStarter {
    async fn start(&self, name: &str, input: &SagaInput) -> Result<StartOutcome, StartError> {
        // The execution joins the saga input's trace in X-Ray as well as in the logs.
        let trace_header = shared_core::trace::xray_header_of(input.traceparent.as_deref());
        let input = serde_json::to_string(input).map_err(|e| StartError::Unavailable(e.to_string()))?;
        let result = self
            .client
            .start_execution()
            .state_machine_arn(&self.state_machine_arn)
            .name(name)
            .input(input)
            .set_trace_header(trace_header)
            .send()
            .await;
        match result {
            Ok(output) => Ok(StartOutcome::Started { execution_arn: output.execution_arn }),
            // Standard workflows keep names unique (for 90 days after the execution closes): a
            // second start for the same order is refused, and that is the point.
            Err(err) if err.as_service_error().is_some_and(|e| e.is_execution_already_exists()) => {
                Ok(StartOutcome::AlreadyStarted { execution_arn: self.execution_arn(name) })
            }
            Err(err) => Err(StartError::Unavailable(aws_sdk_sfn::error::DisplayErrorContext(err).to_string())),
        }
    }
}
