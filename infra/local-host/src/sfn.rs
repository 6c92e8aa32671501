//! What tests and the demo ask about the saga's executions (Step Functions queries).

use std::time::{Duration, Instant};

use crate::resolve::Physical;
use crate::{Error, Host, sdk_setup};

/// The template's state machines: the saga, and the retry of a parked order's compensations.
pub const FULFILMENT: &str = "FulfilmentStateMachine";
pub const COMPENSATION: &str = "CompensationStateMachine";

impl Host {
    /// The fulfilment saga's ARN.
    pub fn state_machine_arn(&self) -> Result<String, Error> {
        self.machine_arn(FULFILMENT)
    }

    /// The ARN of the template's state machine `logical_id`.
    pub fn machine_arn(&self, logical_id: &str) -> Result<String, Error> {
        match self.resolver.physical(logical_id)? {
            Physical::StateMachine { arn, .. } => Ok(arn.clone()),
            _ => Err(Error::Setup(format!("{logical_id} is not a state machine"))),
        }
    }

    /// Names and statuses of the compensation machine's executions (`<order id>-<attempt>`).
    pub async fn compensation_executions(&self) -> Result<Vec<(String, String)>, Error> {
        let page = aws_sdk_sfn::Client::new(&self.sdk)
            .list_executions()
            .state_machine_arn(self.machine_arn(COMPENSATION)?)
            .send()
            .await
            .map_err(sdk_setup("ListExecutions"))?;
        Ok(page.executions().iter().map(|e| (e.name().to_owned(), e.status().as_str().to_owned())).collect())
    }

    /// The execution of an order's saga (executions are named after the order).
    pub fn execution_arn(&self, order_id: &str) -> String {
        let machine = self.state_machine_arn().unwrap_or_default();
        shared::aws::saga::execution_arn(&machine, order_id)
    }

    /// Waits until the order's saga has finished and nothing was delivered for a moment.
    /// Returns the execution's status (`SUCCEEDED`, `FAILED`, ...).
    pub async fn wait_for_saga(&self, order_id: &str, timeout: Duration) -> Result<String, Error> {
        let sfn = aws_sdk_sfn::Client::new(&self.sdk);
        let deadline = Instant::now() + timeout;
        let arn = self.execution_arn(order_id);
        loop {
            let status =
                sfn.describe_execution().execution_arn(&arn).send().await.ok().map(|e| e.status.as_str().to_owned());
            if let Some(status) = status.filter(|s| s != "RUNNING") {
                // What the last steps published (OrderConfirmed, ...) still has to reach its consumers.
                if self.activity.quiet_for() > Duration::from_millis(1500) {
                    return Ok(status);
                }
            }
            if Instant::now() > deadline {
                return Err(Error::Setup(format!("the saga of order {order_id} did not finish within {timeout:?}")));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The names of the states the order's execution entered, in order.
    pub async fn states_entered(&self, order_id: &str) -> Result<Vec<String>, Error> {
        Ok(self
            .history(order_id)
            .await?
            .iter()
            .filter_map(|e| e.state_entered_event_details().map(|d| d.name().to_owned()))
            .collect())
    }

    /// The execution history's event types (`TaskScheduled`, `TaskTimedOut`, ...).
    pub async fn history_types(&self, order_id: &str) -> Result<Vec<String>, Error> {
        Ok(self.history(order_id).await?.iter().map(|e| e.r#type().as_str().to_owned()).collect())
    }

    /// The errors of the execution's failed task attempts, in order (`EventBridge.FailedEntry`,
    /// `Transient`, ...): what its Retry and Catch saw.
    pub async fn task_failures(&self, order_id: &str) -> Result<Vec<String>, Error> {
        Ok(self
            .history(order_id)
            .await?
            .iter()
            .filter_map(|e| e.task_failed_event_details().and_then(|d| d.error()).map(str::to_owned))
            .collect())
    }

    async fn history(&self, order_id: &str) -> Result<Vec<aws_sdk_sfn::types::HistoryEvent>, Error> {
        let sfn = aws_sdk_sfn::Client::new(&self.sdk);
        let mut events = Vec::new();
        let mut token = None;
        loop {
            let page = sfn
                .get_execution_history()
                .execution_arn(self.execution_arn(order_id))
                .set_next_token(token)
                .send()
                .await
                .map_err(sdk_setup("GetExecutionHistory"))?;
            events.extend(page.events().iter().cloned());
            token = page.next_token;
            if token.is_none() {
                return Ok(events);
            }
        }
    }

    /// Names of every execution of the state machine.
    pub async fn executions(&self) -> Result<Vec<String>, Error> {
        let page = aws_sdk_sfn::Client::new(&self.sdk)
            .list_executions()
            .state_machine_arn(self.state_machine_arn()?)
            .send()
            .await
            .map_err(sdk_setup("ListExecutions"))?;
        Ok(page.executions().iter().map(|e| e.name().to_owned()).collect())
    }
}
