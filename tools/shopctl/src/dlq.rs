//! What sits in a dead-letter queue, decoded.
//!
//! Three kinds of message arrive in the stack's DLQs:
//! - an EventBridge rule target's dead letter: the event itself as the body, and why in the
//!   message attributes `ERROR_CODE`, `ERROR_MESSAGE`, `RULE_ARN`, `TARGET_ARN`
//!   (<https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-rule-dlq.html>);
//! - a Lambda asynchronous invocation's on-failure record: the event in `requestPayload`, the
//!   function's error in `responsePayload`
//!   (<https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-retain-records.html>);
//! - a stream event source mapping's on-failure record: not the records but where the failed
//!   batch was, `DDBStreamBatchInfo` with `shardId`, `startSequenceNumber`, `endSequenceNumber`
//!   and `streamArn` (<https://docs.aws.amazon.com/lambda/latest/dg/services-dynamodb-errors.html>).
//!
//! Listing receives every message with a short visibility timeout and then makes them all
//! visible again: nothing is consumed.

use std::collections::BTreeMap;

use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use serde::Serialize;
use serde_json::Value;

use crate::Error;
use crate::stack::Queue;

/// How long a listed message stays invisible while the rest of the queue is read.
const LISTING_VISIBILITY_SECONDS: i32 = 30;

/// Where a failed stream batch was (`DDBStreamBatchInfo`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StreamBatch {
    pub shard_id: String,
    pub start_sequence_number: String,
    pub end_sequence_number: String,
    pub stream_arn: String,
    pub batch_size: Option<u64>,
    pub first_arrival: Option<String>,
    pub last_arrival: Option<String>,
    /// `RetryAttemptsExhausted`, `RecordAgeExceeded`, ...
    pub condition: Option<String>,
}

impl StreamBatch {
    /// The table's name, from the stream's ARN (`...:table/<name>/stream/<label>`).
    pub fn table(&self) -> Option<&str> {
        self.stream_arn.split_once(":table/")?.1.split('/').next()
    }
}

/// What one message holds.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Letter {
    /// An event a rule could not deliver to its target.
    RuleTarget {
        event: Value,
        error_code: Option<String>,
        error_message: Option<String>,
        rule_arn: Option<String>,
        target_arn: Option<String>,
    },
    /// An event a function failed on after Lambda's retries.
    AsyncInvocation { event: Value, function_arn: Option<String>, condition: Option<String>, error: Option<String> },
    /// A stream batch a relay gave up on.
    StreamBatch(StreamBatch),
    /// Anything else, kept as it is.
    Unreadable { body: String },
}

/// The groups `dlq list` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Group {
    SagaCommands,
    OrderEvents,
    StreamFailures,
    Unreadable,
}

impl Group {
    pub fn title(self) -> &'static str {
        match self {
            Group::SagaCommands => "saga commands",
            Group::OrderEvents => "order events",
            Group::StreamFailures => "stream failures",
            Group::Unreadable => "unreadable",
        }
    }
}

impl Letter {
    /// Decodes a message body and its message attributes.
    pub fn decode(body: &str, attributes: &BTreeMap<String, String>) -> Self {
        let Ok(document) = serde_json::from_str::<Value>(body) else {
            return Letter::Unreadable { body: body.to_owned() };
        };
        let text = |v: &Value| v.as_str().map(str::to_owned);
        if let Some(info) = document.get("DDBStreamBatchInfo") {
            let field = |name: &str| info.get(name).and_then(text);
            return match (
                field("shardId"),
                field("startSequenceNumber"),
                field("endSequenceNumber"),
                field("streamArn"),
            ) {
                (Some(shard_id), Some(start_sequence_number), Some(end_sequence_number), Some(stream_arn)) => {
                    Letter::StreamBatch(StreamBatch {
                        shard_id,
                        start_sequence_number,
                        end_sequence_number,
                        stream_arn,
                        batch_size: info.get("batchSize").and_then(Value::as_u64),
                        first_arrival: field("approximateArrivalOfFirstRecord"),
                        last_arrival: field("approximateArrivalOfLastRecord"),
                        condition: document.pointer("/requestContext/condition").and_then(text),
                    })
                }
                _ => Letter::Unreadable { body: body.to_owned() },
            };
        }
        if let Some(event) = document.get("requestPayload").filter(|e| is_event(e)) {
            let error = document.get("responsePayload").map(|p| match p.get("errorMessage").and_then(text) {
                Some(message) => message,
                None => p.to_string(),
            });
            return Letter::AsyncInvocation {
                event: event.clone(),
                function_arn: document.pointer("/requestContext/functionArn").and_then(text),
                condition: document.pointer("/requestContext/condition").and_then(text),
                error,
            };
        }
        if is_event(&document) {
            return Letter::RuleTarget {
                event: document,
                error_code: attributes.get("ERROR_CODE").cloned(),
                error_message: attributes.get("ERROR_MESSAGE").cloned(),
                rule_arn: attributes.get("RULE_ARN").cloned(),
                target_arn: attributes.get("TARGET_ARN").cloned(),
            };
        }
        Letter::Unreadable { body: body.to_owned() }
    }

    /// The EventBridge event it holds, if it holds one.
    pub fn event(&self) -> Option<&Value> {
        match self {
            Letter::RuleTarget { event, .. } | Letter::AsyncInvocation { event, .. } => Some(event),
            _ => None,
        }
    }

    pub fn group(&self) -> Group {
        match self {
            Letter::StreamBatch(_) => Group::StreamFailures,
            Letter::Unreadable { .. } => Group::Unreadable,
            _ if self.event().and_then(|e| e.get("source")).and_then(Value::as_str)
                == Some(shared::aws::saga::COMMAND_SOURCE) =>
            {
                Group::SagaCommands
            }
            _ => Group::OrderEvents,
        }
    }

    /// One line: what it is and why it is here.
    pub fn summary(&self) -> String {
        let describe = |event: &Value| {
            let text = |p: &str| event.pointer(p).and_then(Value::as_str).unwrap_or("-").to_owned();
            format!(
                "{} {} order={} event_id={}",
                text("/source"),
                text("/detail-type"),
                text("/detail/aggregate_id"),
                text("/detail/event_id")
            )
        };
        match self {
            Letter::RuleTarget { event, error_code, error_message, target_arn, .. } => format!(
                "{}  [rule target {}: {} {}]",
                describe(event),
                target_arn.as_deref().unwrap_or("-"),
                error_code.as_deref().unwrap_or("-"),
                error_message.as_deref().unwrap_or("")
            ),
            Letter::AsyncInvocation { event, function_arn, condition, error } => format!(
                "{}  [{} {}: {}]",
                describe(event),
                function_arn.as_deref().unwrap_or("-"),
                condition.as_deref().unwrap_or("-"),
                error.as_deref().unwrap_or("")
            ),
            Letter::StreamBatch(batch) => format!(
                "table {} shard {} sequence {}..{} ({} records, {})",
                batch.table().unwrap_or("?"),
                batch.shard_id,
                batch.start_sequence_number,
                batch.end_sequence_number,
                batch.batch_size.map_or("?".to_owned(), |n| n.to_string()),
                batch.condition.as_deref().unwrap_or("-")
            ),
            Letter::Unreadable { body } => format!("{} bytes not understood", body.len()),
        }
    }
}

/// An EventBridge event (`source`, `detail-type`, `detail`).
fn is_event(value: &Value) -> bool {
    value.get("source").is_some_and(Value::is_string)
        && value.get("detail-type").is_some_and(Value::is_string)
        && value.get("detail").is_some()
}

/// One message of a DLQ.
#[derive(Debug, Clone, Serialize)]
pub struct Letterbox {
    pub queue: &'static str,
    pub message_id: String,
    #[serde(skip)]
    pub receipt_handle: String,
    pub sent_at: Option<String>,
    pub receive_count: Option<u32>,
    pub group: Group,
    pub letter: Letter,
}

/// Every message of `queue`, each still invisible for a while (its receipt handle valid);
/// [`release`] them, or delete them.
pub async fn receive_all(sqs: &aws_sdk_sqs::Client, queue: &Queue) -> Result<Vec<Letterbox>, Error> {
    let mut out = Vec::new();
    let visible = sqs
        .get_queue_attributes()
        .queue_url(&queue.url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .map_err(Error::aws("GetQueueAttributes"))?;
    let expected: usize = visible
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::ApproximateNumberOfMessages))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let mut empty_receives = 0;
    // An empty receive may still miss messages (SQS samples servers): stop after a few in a row.
    while empty_receives < 3 && (out.len() < expected || empty_receives == 0) {
        let received = sqs
            .receive_message()
            .queue_url(&queue.url)
            .max_number_of_messages(10)
            .visibility_timeout(LISTING_VISIBILITY_SECONDS)
            .message_attribute_names("All")
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .map_err(Error::aws("ReceiveMessage"))?;
        let messages = received.messages();
        if messages.is_empty() {
            empty_receives += 1;
            continue;
        }
        empty_receives = 0;
        for message in messages {
            let attributes: BTreeMap<String, String> = message
                .message_attributes()
                .map(|a| a.iter().filter_map(|(k, v)| Some((k.clone(), v.string_value()?.to_owned()))).collect())
                .unwrap_or_default();
            let system = message.attributes();
            let sent_at = system
                .and_then(|a| a.get(&MessageSystemAttributeName::SentTimestamp))
                .and_then(|ms| ms.parse::<i64>().ok())
                .and_then(chrono::DateTime::from_timestamp_millis)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
            let receive_count = system
                .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                .and_then(|n| n.parse().ok());
            let letter = Letter::decode(message.body().unwrap_or_default(), &attributes);
            out.push(Letterbox {
                queue: queue.logical_id,
                message_id: message.message_id().unwrap_or_default().to_owned(),
                receipt_handle: message.receipt_handle().unwrap_or_default().to_owned(),
                sent_at,
                receive_count,
                group: letter.group(),
                letter,
            });
        }
    }
    Ok(out)
}

/// Makes received messages visible again at once.
pub async fn release(sqs: &aws_sdk_sqs::Client, queue: &Queue, letters: &[&Letterbox]) -> Result<(), Error> {
    for letter in letters {
        sqs.change_message_visibility()
            .queue_url(&queue.url)
            .receipt_handle(&letter.receipt_handle)
            .visibility_timeout(0)
            .send()
            .await
            .map_err(Error::aws("ChangeMessageVisibility"))?;
    }
    Ok(())
}

pub async fn delete(sqs: &aws_sdk_sqs::Client, queue: &Queue, letter: &Letterbox) -> Result<(), Error> {
    sqs.delete_message()
        .queue_url(&queue.url)
        .receipt_handle(&letter.receipt_handle)
        .send()
        .await
        .map_err(Error::aws("DeleteMessage"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(source: &str, detail_type: &str) -> Value {
        json!({"version": "0", "id": "e1", "source": source, "detail-type": detail_type, "account": "1",
               "time": "2026-12-02T03:00:00Z", "region": "us-east-1", "resources": [],
               "detail": {"event_id": "0193", "aggregate_id": "o-1"}})
    }

    #[test]
    fn a_rule_dead_letter_is_the_event_with_the_reason_in_its_attributes() {
        let attributes = BTreeMap::from([
            ("ERROR_CODE".to_owned(), "SDK_CLIENT_ERROR".to_owned()),
            ("RULE_ARN".to_owned(), "arn:aws:events:us-east-1:1:rule/bus/r".to_owned()),
        ]);
        let letter = Letter::decode(&event("shop.saga", "ReserveInventory").to_string(), &attributes);
        assert_eq!(letter.group(), Group::SagaCommands);
        let Letter::RuleTarget { error_code, rule_arn, .. } = &letter else { panic!("{letter:?}") };
        assert_eq!(error_code.as_deref(), Some("SDK_CLIENT_ERROR"));
        assert!(rule_arn.is_some());
        assert_eq!(letter.event().unwrap()["detail-type"], "ReserveInventory");
    }

    #[test]
    fn an_async_invocation_record_holds_the_event_in_its_request_payload() {
        let record = json!({"version": "1.0", "requestContext": {"functionArn": "arn:f", "condition": "RetriesExhausted"},
                            "requestPayload": event("shop.orders", "OrderCreated"),
                            "responsePayload": {"errorType": "E", "errorMessage": "boom"}});
        let letter = Letter::decode(&record.to_string(), &BTreeMap::new());
        assert_eq!(letter.group(), Group::OrderEvents);
        assert!(matches!(&letter, Letter::AsyncInvocation { error: Some(e), .. } if e == "boom"));
    }

    #[test]
    fn a_stream_failure_is_where_the_batch_was() {
        let record = json!({"requestContext": {"condition": "RetryAttemptsExhausted"}, "DDBStreamBatchInfo": {
            "shardId": "shardId-1", "startSequenceNumber": "100", "endSequenceNumber": "105", "batchSize": 3,
            "streamArn": "arn:aws:dynamodb:us-east-1:1:table/local-OrdersTable/stream/2026-12-02T00:00:00.000"}});
        let letter = Letter::decode(&record.to_string(), &BTreeMap::new());
        assert_eq!(letter.group(), Group::StreamFailures);
        let Letter::StreamBatch(batch) = &letter else { panic!("{letter:?}") };
        assert_eq!(batch.table(), Some("local-OrdersTable"));
        assert_eq!((batch.start_sequence_number.as_str(), batch.end_sequence_number.as_str()), ("100", "105"));
    }

    #[test]
    fn anything_else_is_kept_unreadable() {
        assert_eq!(Letter::decode("not json", &BTreeMap::new()).group(), Group::Unreadable);
        assert_eq!(Letter::decode("{\"a\":1}", &BTreeMap::new()).group(), Group::Unreadable);
    }
}
