//! One module per kind of trigger the host plays, as Lambda and EventBridge would.

pub mod rule_dlq;
pub mod rule_router;
pub mod rule_to_function;
pub mod rule_to_machine;
pub mod schedule;
pub mod stream;

use std::time::Duration;

/// Scales AWS's own retry timing for tests: `1.0` waits what AWS waits (a minute before the
/// first asynchronous retry), `0.01` a hundredth of it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimeScale(pub f64);

impl TimeScale {
    pub fn of(self, aws: Duration) -> Duration {
        aws.mul_f64(self.0.max(0.0))
    }
}

impl Default for TimeScale {
    fn default() -> Self {
        Self(1.0)
    }
}

/// Sends a failure record to an on-failure destination queue.
pub(crate) async fn send_to_destination(sqs: &aws_sdk_sqs::Client, url: &str, body: serde_json::Value) {
    if let Err(e) = sqs.send_message().queue_url(url).message_body(body.to_string()).send().await {
        tracing::error!(error = %aws_sdk_sqs::error::DisplayErrorContext(e), "could not write to the on-failure destination");
    }
}

/// The function's ARN as Lambda would name it in a failure record.
pub(crate) fn function_arn(function: &str) -> String {
    format!("arn:aws:lambda:{}:{}:function:{function}", crate::resolve::REGION, crate::resolve::ACCOUNT)
}
