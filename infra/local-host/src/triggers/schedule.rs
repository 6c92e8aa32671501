//! A function's `Schedule` (an EventBridge rule with a schedule expression) or `ScheduleV2`
//! (EventBridge Scheduler) event: the function is invoked asynchronously every period, with the
//! event EventBridge sends (or the event's `Input`), and Lambda's asynchronous retries.
//!
//! - SAM: <https://docs.aws.amazon.com/serverless-application-model/latest/developerguide/sam-property-function-schedule.html>
//!   (`Schedule`, `Input`, `Enabled`/`State`) and
//!   <https://docs.aws.amazon.com/serverless-application-model/latest/developerguide/sam-property-function-schedulev2.html>
//!   (`ScheduleExpression`, `Input`, `State`).
//! - The event: <https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-run-lambda-schedule.html>
//!   (`"source": "aws.events"`, `"detail-type": "Scheduled Event"`, the rule in `resources`);
//!   EventBridge Scheduler without `Input` "delivers a default notification"
//!   (<https://docs.aws.amazon.com/scheduler/latest/APIReference/API_Target.html>), the same
//!   shape from `aws.scheduler`.
//! - Only `rate(...)` expressions run locally (`cron(...)` is refused with a clear error), with
//!   the period scaled by the host's [`TimeScale`]: `rate(5 minutes)` runs every 3 s at 0.01. The
//!   first run is one period after start, as a new rule's first run is.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use serde_norway::Value as Yaml;

use super::TimeScale;
use super::rule_to_function::retry_wait;
use crate::Error;
use crate::Invocation;
use crate::activity::Activity;
use crate::functions::InvokeFunction;

/// A schedule of a function, as the template declares it.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleSpec {
    pub name: String,
    /// `aws.events` for `Schedule`, `aws.scheduler` for `ScheduleV2`.
    pub source: &'static str,
    pub every: Duration,
    /// `Input`: sent instead of the scheduled event.
    pub input: Option<Value>,
    pub enabled: bool,
}

impl ScheduleSpec {
    /// `kind` is the event's `Type` (`Schedule` or `ScheduleV2`).
    pub fn parse(name: &str, kind: &str, properties: &Yaml) -> Result<Self, Error> {
        let (key, source) =
            if kind == "ScheduleV2" { ("ScheduleExpression", "aws.scheduler") } else { ("Schedule", "aws.events") };
        let expression = properties
            .get(key)
            .and_then(Yaml::as_str)
            .ok_or_else(|| Error::Setup(format!("a {kind} event without {key}")))?;
        let input = match properties.get("Input").and_then(Yaml::as_str) {
            Some(text) => {
                Some(serde_json::from_str(text).map_err(|e| Error::Setup(format!("{kind} Input is not JSON: {e}")))?)
            }
            None => None,
        };
        let enabled = match (properties.get("Enabled").and_then(Yaml::as_bool), properties.get("State")) {
            (Some(enabled), _) => enabled,
            (None, Some(state)) => state.as_str() != Some("DISABLED"),
            (None, None) => true,
        };
        Ok(Self { name: name.to_owned(), source, every: rate(expression).map_err(Error::Setup)?, input, enabled })
    }

    /// What the function receives on each run.
    pub fn event(&self, rule_arn: &str) -> Value {
        if let Some(input) = &self.input {
            return input.clone();
        }
        json!({
            "version": "0",
            "id": uuid::Uuid::now_v7().to_string(),
            "detail-type": "Scheduled Event",
            "source": self.source,
            "account": crate::resolve::ACCOUNT,
            "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "region": crate::resolve::REGION,
            "resources": [rule_arn],
            "detail": {},
        })
    }
}

/// The period of `rate(value unit)`: a positive whole number and `minute(s)`, `hour(s)` or
/// `day(s)` (singular for 1), as EventBridge accepts them.
/// <https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-scheduled-rule-pattern.html>
pub fn rate(expression: &str) -> Result<Duration, String> {
    let refuse = || format!("the local host runs rate(<n> <unit>) schedules, not {expression:?}");
    let inner = expression.trim().strip_prefix("rate(").and_then(|r| r.strip_suffix(')')).ok_or_else(refuse)?;
    let (value, unit) = inner.trim().split_once(' ').ok_or_else(refuse)?;
    let value: u64 = value.parse().ok().filter(|v| *v > 0).ok_or_else(refuse)?;
    let seconds = match (unit.trim(), value) {
        ("minute", 1) | ("minutes", 2..) => 60,
        ("hour", 1) | ("hours", 2..) => 3600,
        ("day", 1) | ("days", 2..) => 86400,
        _ => return Err(refuse()),
    };
    Ok(Duration::from_secs(value * seconds))
}

pub struct ScheduleTarget {
    pub spec: ScheduleSpec,
    pub function: Arc<dyn InvokeFunction>,
    pub binary: String,
    pub logical_id: String,
    /// `EventInvokeConfig.MaximumRetryAttempts`.
    pub retries: u32,
    pub scale: TimeScale,
}

pub async fn run(target: ScheduleTarget, activity: Arc<Activity>) {
    if !target.spec.enabled {
        return;
    }
    // Never a busy loop, whatever the scale.
    let period = target.scale.of(target.spec.every).max(Duration::from_millis(100));
    let rule_arn = format!(
        "arn:aws:events:{}:{}:rule/{}{}",
        crate::resolve::REGION,
        crate::resolve::ACCOUNT,
        target.logical_id,
        target.spec.name
    );
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    // A run longer than the period delays the next, as overlapping local runs would only contend.
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        invoke(&target, target.spec.event(&rule_arn), &activity).await;
    }
}

async fn invoke(target: &ScheduleTarget, event: Value, activity: &Activity) {
    for attempt in 1..=target.retries + 1 {
        let started = Instant::now();
        let result = target.function.invoke(event.clone()).await.map_err(|e| e.to_string());
        activity.record(Invocation {
            at: Default::default(),
            binary: target.binary.clone(),
            trigger: format!("schedule {}", target.spec.name),
            order_id: event.get("order_id").and_then(Value::as_str).map(str::to_owned),
            correlation_id: None,
            duration: started.elapsed(),
            attempt,
            outcome: result.as_ref().map(|_| None).map_err(Clone::clone),
        });
        if result.is_ok() {
            return;
        }
        if attempt <= target.retries {
            tokio::time::sleep(retry_wait(target.scale, attempt)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_read_as_eventbridge_writes_them_and_others_are_refused() {
        assert_eq!(rate("rate(5 minutes)"), Ok(Duration::from_secs(300)));
        assert_eq!(rate("rate(1 minute)"), Ok(Duration::from_secs(60)));
        assert_eq!(rate("rate(2 hours)"), Ok(Duration::from_secs(7200)));
        assert_eq!(rate("rate(1 day)"), Ok(Duration::from_secs(86400)));
        for refused in ["rate(1 minutes)", "rate(5 minute)", "rate(0 minutes)", "rate(5 weeks)", "cron(0 12 * * ? *)"] {
            assert!(rate(refused).is_err(), "{refused}");
        }
        assert_eq!(TimeScale(0.01).of(rate("rate(5 minutes)").unwrap()), Duration::from_secs(3));
    }

    #[test]
    fn the_event_is_the_scheduled_event_unless_the_template_gives_an_input() {
        let yaml = |text: &str| serde_norway::from_str::<Yaml>(text).unwrap();
        let spec = ScheduleSpec::parse("Sweep", "Schedule", &yaml("Schedule: rate(5 minutes)")).unwrap();
        assert!(spec.enabled);
        let event = spec.event("arn:aws:events:us-east-1:123456789012:rule/FSweep");
        assert_eq!(
            (event["source"].as_str(), event["detail-type"].as_str()),
            (Some("aws.events"), Some("Scheduled Event"))
        );
        assert_eq!(event["resources"][0], "arn:aws:events:us-east-1:123456789012:rule/FSweep");
        assert_eq!(event["detail"], json!({}));

        let v2 = ScheduleSpec::parse(
            "Sweep",
            "ScheduleV2",
            &yaml("ScheduleExpression: rate(1 hour)\nInput: '{\"order_id\": \"x\"}'\nState: DISABLED"),
        )
        .unwrap();
        assert_eq!((v2.every, v2.enabled, v2.source), (Duration::from_secs(3600), false, "aws.scheduler"));
        assert_eq!(v2.event("arn"), json!({"order_id": "x"}));
        assert!(ScheduleSpec::parse("S", "Schedule", &yaml("Schedule: cron(0 12 * * ? *)")).is_err());
    }
}
