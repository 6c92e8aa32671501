//! What EventBridge does with an event it could not deliver to a rule's target: after the
//! target's `RetryPolicy` (or at once, for an error no retry can fix: a missing target, missing
//! permissions) it puts the event, unchanged, into the target's `DeadLetterConfig` queue with
//! the attributes RULE_ARN, TARGET_ARN, ERROR_CODE, ERROR_MESSAGE, EXHAUSTED_RETRY_CONDITION and
//! RETRY_ATTEMPTS (<https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-rule-dlq.html>).
//! Without a dead-letter queue the event is dropped.

use aws_sdk_sqs::types::MessageAttributeValue;
use serde_json::Value;

use crate::spec::RuleDelivery;

/// Why an event was not delivered.
#[derive(Debug, Clone, PartialEq)]
pub struct Undelivered {
    /// One of EventBridge's codes: `CONNECTION_FAILURE`, `NO_RESOURCE`, `NO_PERMISSIONS`,
    /// `THROTTLING`, `SDK_CLIENT_ERROR`, ...
    pub code: &'static str,
    pub message: String,
    /// `MaximumRetryAttempts` or `MaximumEventAgeInSeconds` once the retry policy is spent;
    /// `None` for an error sent without retrying.
    pub exhausted: Option<&'static str>,
    pub retries: u32,
}

/// The dead letter's message attributes, as EventBridge sets them (all of type String).
pub fn attributes(delivery: &RuleDelivery, target_arn: &str, why: &Undelivered) -> Vec<(&'static str, String)> {
    let mut message = why.message.clone();
    if message.len() > 1024 {
        let mut end = 1024;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
    }
    let mut attributes = vec![
        ("RULE_ARN", delivery.rule_arn.clone()),
        ("TARGET_ARN", target_arn.to_owned()),
        ("ERROR_CODE", why.code.to_owned()),
        ("ERROR_MESSAGE", message),
        ("RETRY_ATTEMPTS", why.retries.to_string()),
    ];
    if let Some(condition) = why.exhausted {
        attributes.push(("EXHAUSTED_RETRY_CONDITION", condition.to_owned()));
    }
    attributes
}

/// Puts `event` into the target's dead-letter queue (or drops it, as EventBridge does without
/// one). False when the queue could not be written, so the caller keeps the event.
pub async fn dead_letter(
    sqs: &aws_sdk_sqs::Client,
    delivery: &RuleDelivery,
    target_arn: &str,
    event: &Value,
    why: &Undelivered,
) -> bool {
    let Some(url) = &delivery.dead_letter else {
        tracing::warn!(
            rule = delivery.rule_arn,
            target = target_arn,
            code = why.code,
            "undelivered event dropped: the target has no DeadLetterConfig"
        );
        return true;
    };
    let mut send = sqs.send_message().queue_url(url).message_body(event.to_string());
    for (name, value) in attributes(delivery, target_arn, why) {
        let value = MessageAttributeValue::builder().data_type("String").string_value(value).build();
        send = send.message_attributes(name, value.expect("data type is set"));
    }
    match send.send().await {
        Ok(_) => true,
        Err(e) => {
            tracing::error!(error = %aws_sdk_sqs::error::DisplayErrorContext(e), "could not write to the rule's dead-letter queue");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn delivery(dead_letter: Option<String>) -> RuleDelivery {
        RuleDelivery {
            rule_arn: "arn:aws:events:us-east-1:123456789012:rule/bus/stack-R".into(),
            retries: 3,
            max_age: Duration::from_secs(60),
            dead_letter,
        }
    }

    #[test]
    fn a_dead_letter_carries_eventbridges_attributes() {
        let why = Undelivered { code: "NO_RESOURCE", message: "é".repeat(600), exhausted: None, retries: 0 };
        let attributes = attributes_of(&why);
        assert_eq!(attributes["RULE_ARN"], "arn:aws:events:us-east-1:123456789012:rule/bus/stack-R");
        assert_eq!(attributes["TARGET_ARN"], "arn:t");
        assert_eq!(attributes["ERROR_CODE"], "NO_RESOURCE");
        assert_eq!(attributes["ERROR_MESSAGE"].len(), 1024, "truncated on a character boundary");
        assert_eq!(attributes["RETRY_ATTEMPTS"], "0");
        assert!(!attributes.contains_key("EXHAUSTED_RETRY_CONDITION"), "sent without retrying");
        let spent = Undelivered { exhausted: Some("MaximumEventAgeInSeconds"), retries: 3, ..why };
        let attributes = attributes_of(&spent);
        assert_eq!(attributes["EXHAUSTED_RETRY_CONDITION"], "MaximumEventAgeInSeconds");
        assert_eq!(attributes["RETRY_ATTEMPTS"], "3");
    }

    fn attributes_of(why: &Undelivered) -> std::collections::BTreeMap<&'static str, String> {
        attributes(&delivery(None), "arn:t", why).into_iter().collect()
    }

    // What EventBridge puts in a rule target's DLQ: the event as the body, and the attributes
    // RULE_ARN, TARGET_ARN, ERROR_CODE, ERROR_MESSAGE, EXHAUSTED_RETRY_CONDITION, RETRY_ATTEMPTS
    // (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-rule-dlq.html).
    #[tokio::test]
    async fn the_event_lands_unchanged_in_the_dead_letter_queue_with_its_attributes() {
        let moto = local_aws::Moto::start().await.expect("moto (make setup)");
        let sqs = aws_sdk_sqs::Client::new(&moto.sdk_config());
        let url = sqs.create_queue().queue_name("dlq").send().await.unwrap().queue_url.unwrap();
        let event = serde_json::json!({"id": "e-1", "detail-type": "ConfirmOrder", "detail": {"task_token": "t"}});
        let why = Undelivered {
            code: "CONNECTION_FAILURE",
            message: "gone".into(),
            exhausted: Some("MaximumEventAgeInSeconds"),
            retries: 2,
        };
        assert!(dead_letter(&sqs, &delivery(Some(url.clone())), "arn:aws:lambda:f", &event, &why).await);
        let received = sqs
            .receive_message()
            .queue_url(&url)
            .message_attribute_names("All")
            .wait_time_seconds(2)
            .send()
            .await
            .unwrap();
        let message = &received.messages()[0];
        assert_eq!(serde_json::from_str::<Value>(message.body().unwrap()).unwrap(), event);
        let attribute = |name: &str| message.message_attributes().unwrap()[name].string_value().unwrap().to_owned();
        assert_eq!(attribute("TARGET_ARN"), "arn:aws:lambda:f");
        assert_eq!(attribute("ERROR_CODE"), "CONNECTION_FAILURE");
        assert_eq!(attribute("ERROR_MESSAGE"), "gone");
        assert_eq!(attribute("EXHAUSTED_RETRY_CONDITION"), "MaximumEventAgeInSeconds");
        assert_eq!(attribute("RETRY_ATTEMPTS"), "2");
        assert!(attribute("RULE_ARN").ends_with(":rule/bus/stack-R"));
    }
}
