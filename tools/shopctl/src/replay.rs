//! Replaying the event archive for a time window, without the saga's commands.
//!
//! EventBridge replays an archive's events of `[EventStartTime, EventEndTime]` to the bus they
//! were archived from; `Destination.FilterArns` limits the replay to those rules
//! (<https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_StartReplay.html>,
//! <https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-replay-archived-event.html>).
//! A replay cannot filter events by pattern, so the saga's commands (`shop.saga`, each carrying
//! a task token long expired) are kept out by leaving out every rule that can receive them: the
//! replay goes to the bus's rules whose pattern names its sources and none is `shop.saga`.
//! Rules without a `source` list, or with a matcher (`prefix`, `anything-but`...), may receive
//! commands and are left out too; the command says which.

use std::time::Duration;

use aws_sdk_eventbridge::types::{ReplayDestination, ReplayState};
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::Error;

/// Why a rule takes part in the replay or not.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleChoice {
    pub name: String,
    pub arn: String,
    /// `None`: replayed to; `Some(reason)`: left out.
    pub left_out: Option<String>,
}

/// Whether a rule with this pattern can never receive a `shop.saga` command.
pub fn excludes_saga_commands(pattern: &Value) -> Result<(), String> {
    let Some(sources) = pattern.get("source") else {
        return Err("its pattern does not limit the source".into());
    };
    let Some(sources) = sources.as_array() else { return Err("its source pattern is not a list".into()) };
    for source in sources {
        match source.as_str() {
            Some(shared::aws::saga::COMMAND_SOURCE) => return Err("it receives the saga's commands".into()),
            Some(_) => {}
            None => return Err(format!("its source matcher {source} may admit shop.saga")),
        }
    }
    Ok(())
}

/// The bus's rules, each with whether the replay goes to it.
pub async fn choose_rules(events: &aws_sdk_eventbridge::Client, bus: &str) -> Result<Vec<RuleChoice>, Error> {
    let mut choices = Vec::new();
    let mut next = None;
    loop {
        let page = events
            .list_rules()
            .event_bus_name(bus)
            .set_next_token(next.take())
            .send()
            .await
            .map_err(Error::aws("ListRules"))?;
        for rule in page.rules() {
            let name = rule.name().unwrap_or_default().to_owned();
            let arn = rule.arn().unwrap_or_default().to_owned();
            let left_out = if rule.managed_by().is_some() {
                // The archive's own rule (and any other service's): not ours to replay to.
                Some(format!("managed by {}", rule.managed_by().unwrap_or_default()))
            } else {
                match rule.event_pattern().map(serde_json::from_str::<Value>) {
                    Some(Ok(pattern)) => excludes_saga_commands(&pattern).err(),
                    Some(Err(e)) => Some(format!("its pattern does not read: {e}")),
                    None => Some("a scheduled rule".into()),
                }
            };
            choices.push(RuleChoice { name, arn, left_out });
        }
        match page.next_token() {
            Some(token) => next = Some(token.to_owned()),
            None => break,
        }
    }
    Ok(choices)
}

/// What a finished replay said.
#[derive(Debug, Clone, PartialEq)]
pub struct Finished {
    pub name: String,
    pub state: String,
    pub reason: Option<String>,
}

fn smithy_time(t: DateTime<Utc>) -> aws_smithy_types::DateTime {
    aws_smithy_types::DateTime::from_millis(t.timestamp_millis())
}

/// Starts a replay of `archive` (`None`: the bus's one archive) for `[from, to]` to `bus`'s
/// rules in `rules`, and waits for it.
pub async fn run(
    events: &aws_sdk_eventbridge::Client,
    archive: Option<&str>,
    bus: &str,
    rules: &[String],
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    name: &str,
) -> Result<Finished, Error> {
    if rules.is_empty() {
        return Err(Error::Letter("no rule to replay to".into()));
    }
    let bus_arn = events
        .describe_event_bus()
        .name(bus)
        .send()
        .await
        .map_err(Error::aws("DescribeEventBus"))?
        .arn
        .ok_or_else(|| Error::Stack(format!("bus {bus} has no ARN")))?;
    let archive = match archive {
        Some(name) => name.to_owned(),
        None => {
            let listed =
                events.list_archives().event_source_arn(&bus_arn).send().await.map_err(Error::aws("ListArchives"))?;
            match listed.archives() {
                [one] => one.archive_name().unwrap_or_default().to_owned(),
                other => return Err(Error::Stack(format!("bus {bus} has {} archives, not one", other.len()))),
            }
        }
    };
    let archive_arn = events
        .describe_archive()
        .archive_name(&archive)
        .send()
        .await
        .map_err(Error::aws("DescribeArchive"))?
        .archive_arn
        .ok_or_else(|| Error::Stack(format!("archive {archive} has no ARN")))?;
    let destination = ReplayDestination::builder()
        .arn(bus_arn)
        .set_filter_arns(Some(rules.to_vec()))
        .build()
        .map_err(|e| Error::Stack(e.to_string()))?;
    events
        .start_replay()
        .replay_name(name)
        .event_source_arn(archive_arn)
        .event_start_time(smithy_time(from))
        .event_end_time(smithy_time(to))
        .destination(destination)
        .send()
        .await
        .map_err(Error::aws("StartReplay"))?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15 * 60);
    loop {
        let described =
            events.describe_replay().replay_name(name).send().await.map_err(Error::aws("DescribeReplay"))?;
        let state = described.state().cloned();
        let done = matches!(state, Some(ReplayState::Completed | ReplayState::Failed | ReplayState::Cancelled));
        if done || tokio::time::Instant::now() > deadline {
            return Ok(Finished {
                name: name.to_owned(),
                state: state.map(|s| s.as_str().to_owned()).unwrap_or_default(),
                reason: described.state_reason().map(str::to_owned),
            });
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_rules_that_name_their_sources_and_not_the_saga_take_a_replay() {
        assert!(excludes_saga_commands(&json!({"source": ["shop.orders"], "detail-type": ["OrderCreated"]})).is_ok());
        assert!(excludes_saga_commands(&json!({"source": ["shop.saga"], "detail-type": ["ChargePayment"]})).is_err());
        assert!(excludes_saga_commands(&json!({"source": ["shop.orders", "shop.saga"]})).is_err());
        assert!(excludes_saga_commands(&json!({"detail-type": ["OrderCreated"]})).is_err());
        assert!(excludes_saga_commands(&json!({"source": [{"prefix": "shop."}]})).is_err());
    }
}
