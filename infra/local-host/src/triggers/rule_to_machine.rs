//! An `AWS::Events::Rule` whose targets are state machines: each matching event starts an
//! execution with the event as its input, as EventBridge's Step Functions target does. The
//! event is deleted from the rule's queue once every execution was started (or exists already),
//! so a host killed in between starts it on its next run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use local_aws::EventTap;
use serde_json::Value;

use crate::Invocation;
use crate::activity::Activity;

pub struct MachineTarget {
    pub rule: String,
    pub tap: EventTap,
    pub machines: Vec<String>,
}

pub async fn run(target: MachineTarget, activity: Arc<Activity>, sfn: aws_sdk_sfn::Client) {
    loop {
        let Ok(received) = target.tap.receive_unacked(1).await else {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        };
        for message in received {
            let mut started_all = true;
            for machine in &target.machines {
                started_all &= start(&target.rule, machine, &message.event, &activity, &sfn).await;
            }
            if started_all {
                let _ = target.tap.ack(&message.receipt).await;
            }
        }
    }
}

async fn start(rule: &str, machine: &str, event: &Value, activity: &Activity, sfn: &aws_sdk_sfn::Client) -> bool {
    let started = Instant::now();
    // EventBridge names each execution itself; the event's id keeps a redelivered event from
    // starting a second one.
    let name = event["id"]
        .as_str()
        .map(|id| id.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').take(80).collect::<String>());
    let result = sfn.start_execution().state_machine_arn(machine).set_name(name).input(event.to_string()).send().await;
    let outcome = match result {
        Ok(_) => Ok(None),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_execution_already_exists()) => Ok(None),
        Err(e) => Err(aws_sdk_sfn::error::DisplayErrorContext(e).to_string()),
    };
    let ok = outcome.is_ok();
    activity.record(Invocation {
        at: Default::default(),
        binary: format!("rule {rule}"),
        trigger: format!("{} -> StartExecution", event["detail-type"].as_str().unwrap_or("?")),
        order_id: None,
        correlation_id: event["detail"]["correlation_id"].as_str().map(str::to_owned),
        duration: started.elapsed(),
        attempt: 1,
        outcome,
    });
    ok
}
