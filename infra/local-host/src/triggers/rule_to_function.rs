//! A function's `EventBridgeRule` event: the rule is created on the bus with an SQS queue as its
//! target (moto cannot invoke Lambda), and each event is an asynchronous invocation of the
//! function, with Lambda's retries and on-failure destination.
//!
//! As Lambda does (<https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-error-handling.html>):
//! a failed invocation is retried `MaximumRetryAttempts` times (default 2), one minute after the
//! first try and two minutes after the second (scaled by [`TimeScale`] for tests); events are
//! handled concurrently; once the retries are spent the destination gets Lambda's invocation
//! record (`requestContext`, `requestPayload`, `responseContext`, `responsePayload`), with the
//! condition `RetriesExhausted`, or `EventAgeExceeded` once a retry would come later than
//! `MaximumEventAgeInSeconds` after the event was queued.
//!
//! Before that, EventBridge has to get the event to Lambda: locally the host is Lambda, so an
//! event that waited in the rule's queue longer than the target's
//! `RetryPolicy.MaximumEventAgeInSeconds` (the host was not running, as Lambda was unreachable)
//! goes to the rule's `DeadLetterConfig` queue instead ([`super::rule_dlq`]), measured from the
//! event's `time` (the bus stamps it on receipt unless the producer set it).
//! An event is deleted from its queue only once handled, so a host killed mid-way gets it again
//! after the visibility timeout, as EventBridge's own retries would redeliver it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lambda_events::eventbridge::EventBridgeEvent;
use local_aws::EventTap;
use serde_json::{Value, json};
use shared::aws::saga::TaskReporter;
use tokio::sync::Semaphore;

use super::rule_dlq::{Undelivered, dead_letter};
use super::{TimeScale, function_arn, send_to_destination};
use crate::activity::Activity;
use crate::functions::EventFunction;
use crate::spec::RuleDelivery;
use crate::{Delivery, Invocation};

/// How many events of one function are handled at once (a function's concurrency).
const CONCURRENCY: usize = 16;
/// Lambda's waits before the first and second asynchronous retries.
const AWS_RETRY_WAITS: [Duration; 2] = [Duration::from_secs(60), Duration::from_secs(120)];

pub struct RuleTarget {
    pub tap: EventTap,
    pub function: Arc<dyn EventFunction>,
    pub binary: String,
    /// `EventInvokeConfig.MaximumRetryAttempts`.
    pub retries: u32,
    /// `EventInvokeConfig.MaximumEventAgeInSeconds`.
    pub max_event_age: Duration,
    /// `EventInvokeConfig`'s on-failure destination.
    pub on_failure: Option<String>,
    /// The rule's `RetryPolicy` and `DeadLetterConfig` for this target.
    pub delivery: RuleDelivery,
    pub scale: TimeScale,
}

pub async fn run(target: RuleTarget, activity: Arc<Activity>, sqs: aws_sdk_sqs::Client) {
    let target = Arc::new(target);
    let slots = Arc::new(Semaphore::new(CONCURRENCY));
    loop {
        let received = match target.tap.receive_unacked(1).await {
            Ok(received) => received,
            Err(e) => {
                tracing::error!(error = %e, binary = target.binary, "polling a rule queue failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        for message in received {
            activity.touch();
            let Ok(slot) = slots.clone().acquire_owned().await else { return };
            let (target, activity, sqs) = (target.clone(), activity.clone(), sqs.clone());
            tokio::spawn(async move {
                match serde_json::from_value::<EventBridgeEvent<Value>>(message.event.clone()) {
                    Ok(event) => deliver(&target, event, &message.receipt, &activity, &sqs).await,
                    Err(e) => tracing::error!(error = %e, binary = target.binary, "not an EventBridge event"),
                }
                if let Err(e) = target.tap.ack(&message.receipt).await {
                    tracing::error!(error = %e, binary = target.binary, "could not delete a handled event");
                }
                drop(slot);
            });
        }
    }
}

/// The wait before retry number `retry` (1-based), as Lambda would wait, scaled.
pub fn retry_wait(scale: TimeScale, retry: u32) -> Duration {
    let aws = AWS_RETRY_WAITS[(retry as usize - 1).min(AWS_RETRY_WAITS.len() - 1)];
    scale.of(aws)
}

async fn deliver(
    target: &RuleTarget,
    event: EventBridgeEvent<Value>,
    receipt: &str,
    activity: &Activity,
    sqs: &aws_sdk_sqs::Client,
) {
    let accepted = Instant::now();
    let trigger = event.detail_type.clone();
    let invocation = |outcome, duration, attempt| Invocation {
        at: Default::default(),
        binary: target.binary.clone(),
        trigger: trigger.clone(),
        order_id: event.detail.get("aggregate_id").and_then(Value::as_str).map(str::to_owned),
        correlation_id: event.detail.get("correlation_id").and_then(Value::as_str).map(str::to_owned),
        duration,
        attempt,
        outcome,
    };
    if let Some(why) = undeliverable(&target.delivery, &event, chrono::Utc::now()) {
        let body = serde_json::to_value(&event).unwrap_or_default();
        dead_letter(sqs, &target.delivery, &function_arn(&target.binary), &body, &why).await;
        return activity.record(invocation(Err(format!("{}: {}", why.code, why.message)), Duration::ZERO, 0));
    }
    let delivery = if event.source == shared::aws::saga::COMMAND_SOURCE {
        activity.delivery_of(&trigger)
    } else {
        Delivery::Handle
    };
    let times = match delivery {
        Delivery::Drop => return activity.record(invocation(Ok(None), Duration::ZERO, 0)),
        Delivery::Answer(outcome) => {
            let token = event.detail.get("task_token").and_then(Value::as_str).unwrap_or_default();
            let result =
                activity.reporter.report(token, &outcome).await.map(|_| Some(outcome)).map_err(|e| e.to_string());
            return activity.record(invocation(result, Duration::ZERO, 1));
        }
        Delivery::Twice => 2,
        Delivery::Handle => 1,
    };
    for _ in 0..times {
        for attempt in 1..=target.retries + 1 {
            let started = Instant::now();
            let result = target.function.invoke(event.clone()).await.map_err(|e| e.to_string());
            activity.record(invocation(result.clone(), started.elapsed(), attempt));
            let Err(error) = result else { break };
            let wait = retry_wait(target.scale, attempt);
            let too_old = accepted.elapsed() + wait > target.scale.of(target.max_event_age);
            if attempt <= target.retries && !too_old {
                // Still ours while it waits: keep it invisible past the wait.
                let _ = target.tap.extend(receipt, wait.as_secs() as i32 + 30).await;
                tokio::time::sleep(wait).await;
                continue;
            }
            if let Some(url) = &target.on_failure {
                let condition = if attempt <= target.retries { "EventAgeExceeded" } else { "RetriesExhausted" };
                let record = failure_record(&target.binary, &event, &error, attempt, condition);
                send_to_destination(sqs, url, record).await;
            }
            break;
        }
    }
}

/// What Lambda sends to an asynchronous invocation's on-failure destination:
/// <https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-retain-records.html>.
pub fn failure_record(
    binary: &str,
    event: &EventBridgeEvent<Value>,
    error: &str,
    invocations: u32,
    condition: &str,
) -> Value {
    json!({
        "version": "1.0",
        "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "requestContext": {
            "requestId": uuid::Uuid::now_v7().to_string(),
            "functionArn": format!("{}:$LATEST", function_arn(binary)),
            "condition": condition,
            "approximateInvokeCount": invocations,
        },
        "requestPayload": event,
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": {"errorType": "FunctionError", "errorMessage": error},
    })
}

/// Whether EventBridge would have given up on getting `event` to the function by `now`: it
/// is older than the target's `MaximumEventAgeInSeconds`.
pub fn undeliverable(
    delivery: &RuleDelivery,
    event: &EventBridgeEvent<Value>,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<Undelivered> {
    // An event without a time is as fresh as can be.
    let age = event.time.map_or(Duration::ZERO, |time| (now - time).to_std().unwrap_or_default());
    (age > delivery.max_age).then(|| Undelivered {
        code: "CONNECTION_FAILURE",
        message: format!(
            "the function was not reachable for {} s, past the target's MaximumEventAgeInSeconds ({} s)",
            age.as_secs(),
            delivery.max_age.as_secs()
        ),
        exhausted: Some("MaximumEventAgeInSeconds"),
        // Locally no attempt was made while the host was away.
        retries: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_older_than_the_rules_maximum_age_is_not_delivered() {
        let delivery = RuleDelivery {
            rule_arn: "arn:r".into(),
            retries: 185,
            max_age: Duration::from_secs(3600),
            dead_letter: None,
        };
        let mut event: EventBridgeEvent<Value> = serde_json::from_value(serde_json::json!({
            "version": "0", "id": "e", "detail-type": "ConfirmOrder", "source": "shop.saga", "account": "1",
            "time": "2026-01-01T00:00:00Z", "region": "us-east-1", "resources": [], "detail": {}
        }))
        .unwrap();
        let within = event.time.unwrap() + chrono::Duration::seconds(3600);
        assert_eq!(undeliverable(&delivery, &event, within), None, "exactly the maximum age is still delivered");
        let why = undeliverable(&delivery, &event, within + chrono::Duration::seconds(1)).expect("too old");
        assert_eq!(why.code, "CONNECTION_FAILURE");
        assert_eq!(why.exhausted, Some("MaximumEventAgeInSeconds"));
        event.time = Some(within);
        assert_eq!(undeliverable(&delivery, &event, within), None, "a fresh event is delivered");
        event.time = None;
        assert_eq!(undeliverable(&delivery, &event, within), None, "no time: nothing to measure");
    }

    #[test]
    fn retries_wait_as_lambda_does_scaled() {
        assert_eq!(retry_wait(TimeScale(1.0), 1), Duration::from_secs(60));
        assert_eq!(retry_wait(TimeScale(1.0), 2), Duration::from_secs(120));
        assert_eq!(retry_wait(TimeScale(0.01), 1), Duration::from_millis(600));
        assert_eq!(retry_wait(TimeScale(0.01), 5), Duration::from_millis(1200), "later retries wait the longest");
    }
}
