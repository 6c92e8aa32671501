//! A function of the template as the host runs it, parsed once: its binary, its environment
//! resolved to the local resources, its asynchronous-invocation settings and its triggers.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use serde_norway::Value as Yaml;

use crate::resolve::{Physical, Resolver};
use crate::{Error, setup};

/// Lambda's default for asynchronous invocations without `EventInvokeConfig`: two retries.
/// <https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-error-handling.html>
const DEFAULT_ASYNC_RETRIES: u32 = 2;
/// And its default maximum age of an event: six hours (same page).
const DEFAULT_ASYNC_MAX_AGE: Duration = Duration::from_secs(6 * 3600);
/// EventBridge's defaults for a rule target without `RetryPolicy`: 185 retries within 24 hours.
/// <https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-rule-dlq.html>
const DEFAULT_RULE_RETRIES: u32 = 185;
const DEFAULT_RULE_MAX_AGE: Duration = Duration::from_secs(86400);
/// A stream trigger without `MaximumRetryAttempts` retries until the records expire (24 h);
/// locally that many times.
const DEFAULT_STREAM_RETRIES: u32 = 10;

#[derive(Debug, Clone)]
pub struct FunctionSpec {
    pub logical_id: String,
    pub binary: String,
    pub env: BTreeMap<String, String>,
    /// `EventInvokeConfig.MaximumRetryAttempts`.
    pub async_retries: u32,
    /// `EventInvokeConfig.MaximumEventAgeInSeconds`.
    pub async_max_age: Duration,
    /// `EventInvokeConfig.DestinationConfig.OnFailure.Destination` (a queue's URL locally).
    pub async_on_failure: Option<String>,
    pub triggers: Vec<Trigger>,
}

#[derive(Debug, Clone)]
pub enum Trigger {
    /// A route of `api` (the `ApiId`'s logical id); `authorizer` is the event's `Auth.Authorizer`
    /// (`NONE`, `AWS_IAM` or an authorizer's name), else the API's `DefaultAuthorizer` applies.
    Http {
        method: String,
        path: String,
        api: Option<String>,
        authorizer: Option<String>,
    },
    Rule {
        name: String,
        bus: String,
        pattern: Value,
        delivery: RuleDelivery,
    },
    Stream(StreamSpec),
    /// A `Schedule` or `ScheduleV2` event (see [`crate::triggers::schedule`]).
    Schedule(crate::triggers::schedule::ScheduleSpec),
}

/// How EventBridge delivers a rule's events to one target: its `RetryPolicy` and
/// `DeadLetterConfig`, the same keys on a SAM `EventBridgeRule` event and on an
/// `AWS::Events::Rule` target.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleDelivery {
    /// The rule's ARN, as EventBridge names it in a dead letter's `RULE_ARN`.
    pub rule_arn: String,
    /// `RetryPolicy.MaximumRetryAttempts`.
    pub retries: u32,
    /// `RetryPolicy.MaximumEventAgeInSeconds`.
    pub max_age: Duration,
    /// `DeadLetterConfig.Arn`'s queue URL locally; `None` drops what could not be delivered.
    pub dead_letter: Option<String>,
}

impl RuleDelivery {
    /// `rule` is the rule's logical id (SAM names a function's rule `<Function><Event>`).
    pub fn parse(rule: &str, bus: &str, properties: &Yaml, resolver: &Resolver) -> Result<Self, Error> {
        let seconds = |key: &str| path(properties, &["RetryPolicy", key]).and_then(Yaml::as_u64);
        let config = get(properties, "DeadLetterConfig");
        if config.and_then(|c| get(c, "Type")).is_some() {
            return Err(Error::Setup(format!(
                "{rule}: DeadLetterConfig.Type makes SAM create a queue of its own and ignore Destination; name the declared queue with Arn"
            )));
        }
        Ok(Self {
            rule_arn: format!(
                "arn:aws:events:{}:{}:rule/{bus}/{}",
                crate::resolve::REGION,
                crate::resolve::ACCOUNT,
                crate::provision::physical_name(&resolver.stack, rule)
            ),
            retries: seconds("MaximumRetryAttempts").map_or(DEFAULT_RULE_RETRIES, |n| n as u32),
            max_age: seconds("MaximumEventAgeInSeconds").map_or(DEFAULT_RULE_MAX_AGE, Duration::from_secs),
            dead_letter: config.and_then(|c| get(c, "Arn")).map(|arn| queue_url_of(resolver, arn)).transpose()?,
        })
    }
}

#[derive(Debug, Clone)]
pub struct StreamSpec {
    pub name: String,
    pub table: String,
    pub stream_arn: String,
    pub batch_size: usize,
    /// `TRIM_HORIZON` or `LATEST`, where a shard without a checkpoint starts.
    pub starting_position: String,
    pub retries: u32,
    pub filters: Vec<Value>,
    /// The on-failure destination's queue URL.
    pub on_failure: Option<String>,
}

fn get<'a>(value: &'a Yaml, key: &str) -> Option<&'a Yaml> {
    value.get(key)
}

fn path<'a>(value: &'a Yaml, keys: &[&str]) -> Option<&'a Yaml> {
    keys.iter().try_fold(value, |v, k| get(v, k))
}

impl FunctionSpec {
    pub fn parse(
        logical_id: &str,
        resource: &local_aws::template::Resource,
        resolver: &Resolver,
        overrides: &BTreeMap<String, String>,
    ) -> Result<Self, Error> {
        let properties = &resource.properties;
        let binary = path(&resource.metadata, &["BuildProperties", "Binary"])
            .and_then(Yaml::as_str)
            .ok_or_else(|| Error::Setup(format!("{logical_id} names no Metadata.BuildProperties.Binary")))?
            .to_owned();
        let mut env = BTreeMap::new();
        if let Some(Yaml::Mapping(vars)) = path(properties, &["Environment", "Variables"]) {
            for (name, value) in vars {
                let name = name.as_str().unwrap_or_default().to_owned();
                let value = resolver.resolve(value).map_err(|e| Error::Setup(format!("{logical_id}.{name}: {e}")))?;
                env.insert(name, value);
            }
        }
        env.extend(overrides.clone());
        let invoke = get(properties, "EventInvokeConfig");
        let async_retries = invoke
            .and_then(|c| get(c, "MaximumRetryAttempts"))
            .and_then(Yaml::as_u64)
            .map_or(DEFAULT_ASYNC_RETRIES, |n| n as u32);
        let async_max_age = invoke
            .and_then(|c| get(c, "MaximumEventAgeInSeconds"))
            .and_then(Yaml::as_u64)
            .map_or(DEFAULT_ASYNC_MAX_AGE, Duration::from_secs);
        let async_on_failure = invoke
            .and_then(|c| path(c, &["DestinationConfig", "OnFailure", "Destination"]))
            .map(|d| queue_url_of(resolver, d))
            .transpose()?;
        let mut triggers = Vec::new();
        if let Some(Yaml::Mapping(events)) = get(properties, "Events") {
            for (name, event) in events {
                triggers.push(Trigger::parse(logical_id, name.as_str().unwrap_or_default(), event, resolver)?);
            }
        }
        Ok(Self {
            logical_id: logical_id.to_owned(),
            binary,
            env,
            async_retries,
            async_max_age,
            async_on_failure,
            triggers,
        })
    }

    /// The function's environment as a lookup, for its `build`.
    pub fn lookup(&self) -> impl Fn(&str) -> Option<String> + Send + Sync + use<> {
        let env = self.env.clone();
        move |name: &str| env.get(name).cloned()
    }
}

impl Trigger {
    /// Event `name` of function `logical_id` (an entry of its `Events`).
    fn parse(logical_id: &str, name: &str, event: &Yaml, resolver: &Resolver) -> Result<Self, Error> {
        let properties = get(event, "Properties").cloned().unwrap_or(Yaml::Null);
        let context = |e: Error| Error::Setup(format!("{logical_id}.{name}: {e}"));
        Ok(match get(event, "Type").and_then(Yaml::as_str) {
            Some("HttpApi") => {
                let text = |key: &str| get(&properties, key).and_then(Yaml::as_str).unwrap_or_default().to_owned();
                Trigger::Http {
                    method: text("Method"),
                    path: text("Path"),
                    api: get(&properties, "ApiId").and_then(local_aws::referenced).map(str::to_owned),
                    authorizer: path(&properties, &["Auth", "Authorizer"]).and_then(Yaml::as_str).map(str::to_owned),
                }
            }
            Some("EventBridgeRule") => {
                let bus = bus_of(resolver, &properties).map_err(context)?;
                let rule = format!("{logical_id}{name}");
                Trigger::Rule {
                    name: name.to_owned(),
                    delivery: RuleDelivery::parse(&rule, &bus, &properties, resolver).map_err(context)?,
                    bus,
                    pattern: serde_json::to_value(get(&properties, "Pattern")).map_err(setup("rule pattern"))?,
                }
            }
            Some("DynamoDB") => Trigger::Stream(StreamSpec::parse(name, &properties, resolver).map_err(context)?),
            Some(kind @ ("Schedule" | "ScheduleV2")) => Trigger::Schedule(
                crate::triggers::schedule::ScheduleSpec::parse(name, kind, &properties).map_err(context)?,
            ),
            Some(other) => {
                return Err(Error::Setup(format!("{logical_id}.{name}: the local host does not run {other} triggers")));
            }
            None => return Err(Error::Setup(format!("{logical_id}.{name}: an event without a Type"))),
        })
    }
}

impl StreamSpec {
    fn parse(name: &str, properties: &Yaml, resolver: &Resolver) -> Result<Self, Error> {
        let stream = get(properties, "Stream").ok_or_else(|| Error::Setup("no Stream".into()))?;
        let table_id = local_aws::referenced(stream)
            .ok_or_else(|| Error::Setup("Stream must be !GetAtt Table.StreamArn".into()))?;
        let Physical::Table { name: table, stream_arn } = resolver.physical(table_id)?.clone() else {
            return Err(Error::Setup(format!("{table_id} is not a table")));
        };
        let stream_arn = stream_arn.ok_or_else(|| Error::Setup(format!("{table_id} has no stream")))?;
        let filters = match path(properties, &["FilterCriteria", "Filters"]) {
            Some(Yaml::Sequence(filters)) => filters
                .iter()
                .map(|f| {
                    let text = get(f, "Pattern").and_then(Yaml::as_str).unwrap_or("{}");
                    serde_json::from_str::<Value>(text).map_err(setup("filter pattern"))
                })
                .collect::<Result<Vec<_>, _>>()?,
            _ => Vec::new(),
        };
        Ok(Self {
            name: name.to_owned(),
            table,
            stream_arn,
            batch_size: get(properties, "BatchSize").and_then(Yaml::as_u64).unwrap_or(100) as usize,
            starting_position: get(properties, "StartingPosition")
                .and_then(Yaml::as_str)
                .unwrap_or("TRIM_HORIZON")
                .to_owned(),
            retries: get(properties, "MaximumRetryAttempts")
                .and_then(Yaml::as_i64)
                .filter(|n| *n >= 0)
                .map_or(DEFAULT_STREAM_RETRIES, |n| n as u32),
            filters,
            on_failure: path(properties, &["DestinationConfig", "OnFailure", "Destination"])
                .map(|d| queue_url_of(resolver, d))
                .transpose()?,
        })
    }
}

/// The bus a rule is on: `EventBusName`, else the account's default bus.
pub fn bus_of(resolver: &Resolver, properties: &Yaml) -> Result<String, Error> {
    match get(properties, "EventBusName") {
        Some(value) => resolver.resolve(value),
        None => Ok("default".to_owned()),
    }
}

/// The URL of the local queue behind a destination written as the queue's ARN.
pub fn queue_url_of(resolver: &Resolver, destination: &Yaml) -> Result<String, Error> {
    let arn = resolver.resolve(destination)?;
    resolver
        .resources
        .values()
        .find_map(|p| match p {
            Physical::Queue { url, arn: a, .. } if *a == arn => Some(url.clone()),
            _ => None,
        })
        .ok_or_else(|| Error::Setup(format!("no local queue with ARN {arn}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolver() -> Resolver {
        let mut resolver = Resolver { stack: "shop".into(), ..Resolver::default() };
        resolver.resources.insert("ShopEventBus".into(), Physical::Bus { name: "shop-ShopEventBus".into() });
        resolver.resources.insert(
            "SagaDLQ".into(),
            Physical::Queue {
                url: "http://q/SagaDLQ".into(),
                arn: "arn:aws:sqs:us-east-1:1:SagaDLQ".into(),
                name: "q".into(),
            },
        );
        resolver
    }

    #[test]
    fn every_rule_target_of_the_template_dead_letters_where_it_says_with_its_retry_policy() {
        let template = local_aws::Template::load_project().unwrap();
        let resolver = resolver();
        let mut seen = 0;
        for (id, function) in template.resources_of_type("AWS::Serverless::Function") {
            let Some(Yaml::Mapping(events)) = get(&function.properties, "Events") else { continue };
            for (name, event) in events {
                if get(event, "Type").and_then(Yaml::as_str) != Some("EventBridgeRule") {
                    continue;
                }
                let properties = get(event, "Properties").unwrap();
                let rule = format!("{id}{}", name.as_str().unwrap());
                let delivery = RuleDelivery::parse(&rule, "shop-ShopEventBus", properties, &resolver).unwrap();
                assert_eq!(delivery.dead_letter.as_deref(), Some("http://q/SagaDLQ"), "{rule}");
                let declared = |key| path(properties, &["RetryPolicy", key]).and_then(Yaml::as_u64).unwrap();
                assert_eq!(u64::from(delivery.retries), declared("MaximumRetryAttempts"), "{rule}");
                assert_eq!(delivery.max_age.as_secs(), declared("MaximumEventAgeInSeconds"), "{rule}");
                assert_eq!(
                    delivery.rule_arn,
                    format!("arn:aws:events:us-east-1:123456789012:rule/shop-ShopEventBus/shop-{rule}")
                );
                seen += 1;
            }
        }
        assert!(seen >= 5, "{seen} rule targets");
    }

    #[test]
    fn sams_type_sqs_dead_letter_config_is_refused_and_defaults_are_eventbridges() {
        let sam_made: Yaml = serde_norway::from_str("DeadLetterConfig: {Type: SQS, Destination: x}").unwrap();
        let error = RuleDelivery::parse("R", "b", &sam_made, &resolver()).unwrap_err().to_string();
        assert!(error.contains("name the declared queue with Arn"), "{error}");
        let bare = RuleDelivery::parse("R", "b", &Yaml::Null, &resolver()).unwrap();
        assert_eq!((bare.retries, bare.max_age, bare.dead_letter), (185, Duration::from_secs(86400), None));
    }
}
