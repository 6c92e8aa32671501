//! An `AWS::Events::Rule` whose targets are state machines: each matching event starts an
//! execution with the event as its input, as EventBridge's Step Functions target does. A start
//! that fails is retried with backoff within the target's `RetryPolicy`; one that still fails,
//! or fails in a way no retry fixes (the state machine does not exist, access denied), goes to
//! the target's `DeadLetterConfig` queue ([`super::rule_dlq`]). The event is deleted from the
//! rule's queue once every target has it (started, or existing already, or dead-lettered), so a
//! host killed in between starts it on its next run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use local_aws::EventTap;
use serde_json::Value;
use serde_norway::Value as Yaml;

use super::rule_dlq::{Undelivered, dead_letter};
use crate::Error;
use crate::Invocation;
use crate::activity::Activity;
use crate::resolve::{Physical, Resolver};
use crate::spec::RuleDelivery;

/// EventBridge's backoff between delivery attempts, locally: doubling from one second, at most a minute.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);

pub struct MachineTarget {
    pub rule: String,
    pub tap: EventTap,
    /// Each state machine's ARN with its delivery settings.
    pub machines: Vec<(String, RuleDelivery)>,
}

/// The state machines among the targets of rule `logical_id` (on `bus`), with their delivery
/// settings. A target the host provisions nothing for (an SNS topic, for one) is AWS's alone and
/// left out; any other target that is not a state machine is an error (functions' own
/// `EventBridgeRule` events are their triggers, not rules' targets).
pub fn machines(
    logical_id: &str,
    properties: &Yaml,
    bus: &str,
    resolver: &Resolver,
) -> Result<Vec<(String, RuleDelivery)>, Error> {
    let mut machines = Vec::new();
    let Some(Yaml::Sequence(targets)) = properties.get("Targets") else { return Ok(machines) };
    for target in targets {
        let arn_value = target.get("Arn").unwrap_or(&Yaml::Null);
        if local_aws::referenced(arn_value).is_some_and(|id| !resolver.resources.contains_key(id)) {
            tracing::info!(rule = logical_id, target = ?arn_value, "rule target not delivered locally");
            continue;
        }
        let arn = resolver.resolve(arn_value)?;
        let is_machine =
            resolver.resources.values().any(|p| matches!(p, Physical::StateMachine { arn: a, .. } if *a == arn));
        if !is_machine {
            return Err(Error::Setup(format!(
                "{logical_id}: the local host runs rule targets that are state machines or functions' own EventBridgeRule events, not {arn}"
            )));
        }
        machines.push((arn, RuleDelivery::parse(logical_id, bus, target, resolver)?));
    }
    Ok(machines)
}

pub async fn run(target: MachineTarget, activity: Arc<Activity>, sfn: aws_sdk_sfn::Client, sqs: aws_sdk_sqs::Client) {
    loop {
        let Ok(received) = target.tap.receive_unacked(1).await else {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        };
        for message in received {
            let mut delivered_all = true;
            for (machine, delivery) in &target.machines {
                delivered_all &= deliver(&target, machine, delivery, &message, &activity, &sfn, &sqs).await;
            }
            if delivered_all {
                let _ = target.tap.ack(&message.receipt).await;
            }
        }
    }
}

/// Starts the execution, retrying within the retry policy; false only when the event could be
/// neither started nor dead-lettered (it stays in the rule's queue).
async fn deliver(
    target: &MachineTarget,
    machine: &str,
    delivery: &RuleDelivery,
    message: &local_aws::tap::Received,
    activity: &Activity,
    sfn: &aws_sdk_sfn::Client,
    sqs: &aws_sdk_sqs::Client,
) -> bool {
    let first = Instant::now();
    let mut backoff = FIRST_BACKOFF;
    for attempt in 0.. {
        let Err(failure) = start(&target.rule, machine, &message.event, activity, sfn).await else { return true };
        let exhausted = if attempt >= delivery.retries {
            Some("MaximumRetryAttempts")
        } else if first.elapsed() + backoff > delivery.max_age {
            Some("MaximumEventAgeInSeconds")
        } else {
            None
        };
        if failure.retriable && exhausted.is_none() {
            let _ = target.tap.extend(&message.receipt, backoff.as_secs() as i32 + 30).await;
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
            continue;
        }
        let why = Undelivered {
            code: failure.code,
            message: failure.message,
            exhausted: exhausted.filter(|_| failure.retriable),
            retries: attempt,
        };
        return dead_letter(sqs, delivery, machine, &message.event, &why).await;
    }
    unreachable!("the loop returns")
}

/// A failed StartExecution, as EventBridge classifies it.
#[derive(Debug, PartialEq)]
pub struct StartFailure {
    pub code: &'static str,
    pub message: String,
    pub retriable: bool,
}

/// EventBridge's error code for a StartExecution error; a missing state machine or missing
/// permissions are not retried (<https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-rule-dlq.html>).
pub fn classify(error_code: Option<&str>, message: String) -> StartFailure {
    let (code, retriable) = match error_code.unwrap_or_default() {
        "StateMachineDoesNotExist" | "StateMachineDeleting" | "ResourceNotFoundException" => ("NO_RESOURCE", false),
        "AccessDeniedException" | "AccessDenied" => ("NO_PERMISSIONS", false),
        "InvalidArn" | "InvalidName" | "InvalidExecutionInput" | "ValidationException" => ("INVALID_PARAMETER", false),
        "ThrottlingException" | "ExecutionLimitExceeded" => ("THROTTLING", true),
        _ => ("SDK_CLIENT_ERROR", true),
    };
    StartFailure { code, message, retriable }
}

async fn start(
    rule: &str,
    machine: &str,
    event: &Value,
    activity: &Activity,
    sfn: &aws_sdk_sfn::Client,
) -> Result<(), StartFailure> {
    let started = Instant::now();
    // EventBridge names each execution itself; the event's id keeps a redelivered event from
    // starting a second one.
    let name = event["id"]
        .as_str()
        .map(|id| id.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').take(80).collect::<String>());
    let result = sfn.start_execution().state_machine_arn(machine).set_name(name).input(event.to_string()).send().await;
    let outcome = match result {
        Ok(_) => Ok(()),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_execution_already_exists()) => Ok(()),
        Err(e) => {
            let code = e.as_service_error().and_then(aws_sdk_sfn::error::ProvideErrorMetadata::code).map(str::to_owned);
            Err(classify(code.as_deref(), aws_sdk_sfn::error::DisplayErrorContext(e).to_string()))
        }
    };
    activity.record(Invocation {
        at: Default::default(),
        binary: format!("rule {rule}"),
        trigger: format!("{} -> StartExecution", event["detail-type"].as_str().unwrap_or("?")),
        order_id: None,
        correlation_id: event["detail"]["correlation_id"].as_str().map(str::to_owned),
        duration: started.elapsed(),
        attempt: 1,
        outcome: outcome.as_ref().map(|_| None).map_err(|f| format!("{}: {}", f.code, f.message)),
    });
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_machine_or_permission_is_dead_lettered_at_once_and_throttling_retried() {
        let failure = |code: &str| classify(Some(code), String::new());
        assert_eq!(
            (failure("StateMachineDoesNotExist").code, failure("StateMachineDoesNotExist").retriable),
            ("NO_RESOURCE", false)
        );
        assert_eq!(
            (failure("AccessDeniedException").code, failure("AccessDeniedException").retriable),
            ("NO_PERMISSIONS", false)
        );
        assert_eq!(
            (failure("ThrottlingException").code, failure("ThrottlingException").retriable),
            ("THROTTLING", true)
        );
        assert!(classify(None, "connection reset".into()).retriable, "an unknown error is retried");
    }

    // A target that no longer exists is not retried: the event goes to the DLQ at once, with
    // EventBridge's attributes (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-rule-dlq.html).
    #[tokio::test]
    async fn an_event_for_a_state_machine_that_does_not_exist_lands_in_the_dlq_at_once() {
        let moto = local_aws::Moto::start().await.expect("moto (make setup)");
        let sdk = moto.sdk_config();
        moto.create_bus("bus").await.unwrap();
        let tap = EventTap::create(&moto, "bus", "rule-queue", &serde_json::json!({"source": ["shop.orders"]}))
            .await
            .unwrap();
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let dlq = sqs.create_queue().queue_name("dlq").send().await.unwrap().queue_url.unwrap();
        let machine = "arn:aws:states:us-east-1:123456789012:stateMachine:gone";
        let delivery = RuleDelivery {
            rule_arn: "arn:aws:events:us-east-1:123456789012:rule/bus/stack-R".into(),
            retries: 185,
            max_age: Duration::from_secs(86400),
            dead_letter: Some(dlq.clone()),
        };
        let target = MachineTarget { rule: "R".into(), tap, machines: vec![(machine.into(), delivery)] };
        let sfn = aws_sdk_sfn::Client::new(&sdk);
        let activity = Arc::new(Activity::new(false, shared::aws::saga::SfnTaskReporter::new(sfn.clone())));
        let entry = aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
            .event_bus_name("bus")
            .source("shop.orders")
            .detail_type("OrderCreated")
            .detail(r#"{"order_id": "o-1"}"#)
            .build();
        aws_sdk_eventbridge::Client::new(&sdk).put_events().entries(entry).send().await.unwrap();
        let running = tokio::spawn(run(target, activity, sfn, sqs.clone()));

        let deadline = Instant::now() + Duration::from_secs(20);
        let message = loop {
            let received = sqs
                .receive_message()
                .queue_url(&dlq)
                .message_attribute_names("All")
                .wait_time_seconds(1)
                .send()
                .await
                .unwrap();
            if let Some(message) = received.messages().first() {
                break message.clone();
            }
            assert!(Instant::now() < deadline, "nothing reached the DLQ");
        };
        running.abort();
        let event: Value = serde_json::from_str(message.body().unwrap()).unwrap();
        assert_eq!(event["detail-type"], "OrderCreated", "the event itself: {event}");
        let attribute = |name: &str| {
            message.message_attributes().unwrap().get(name).and_then(|a| a.string_value().map(str::to_owned))
        };
        assert_eq!(attribute("ERROR_CODE").as_deref(), Some("NO_RESOURCE"));
        assert_eq!(attribute("TARGET_ARN").as_deref(), Some(machine));
        assert_eq!(attribute("RULE_ARN").as_deref(), Some("arn:aws:events:us-east-1:123456789012:rule/bus/stack-R"));
        assert_eq!(attribute("RETRY_ATTEMPTS").as_deref(), Some("0"), "not retried");
        assert_eq!(attribute("EXHAUSTED_RETRY_CONDITION"), None, "sent without retrying");
        assert!(attribute("ERROR_MESSAGE").is_some_and(|m| !m.is_empty()));
    }
}
