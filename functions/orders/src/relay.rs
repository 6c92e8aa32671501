//! The outbox relay: publishes the outbox records that the orders table's stream delivers.
//!
//! Records are published in stream order. If one fails, it and every later record of the batch
//! are reported as batch item failures (Lambda retries from the earliest one), so order is kept
//! and nothing is lost; records published again on retry keep their `event_id`, so consumers
//! deduplicate. A record that is not an outbox insert (the stream filter should keep those away)
//! is skipped, not failed.

use aws_lambda_events::dynamodb::{Event, EventRecord};
use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use shared::EventPublisher;

use crate::adapters::dynamodb::{ENTITY_OUTBOX, OutboxItem};

/// The outbox record in a stream record, if it is a newly inserted one.
fn outbox_item(record: &EventRecord) -> Result<Option<OutboxItem>, serde_dynamo::Error> {
    if record.event_name != "INSERT" {
        return Ok(None);
    }
    let is_outbox = matches!(
        record.change.new_image.get("entity"),
        Some(serde_dynamo::AttributeValue::S(entity)) if entity == ENTITY_OUTBOX
    );
    if !is_outbox {
        return Ok(None);
    }
    serde_dynamo::from_item(record.change.new_image.clone()).map(Some)
}

fn failure(record: &EventRecord) -> DynamoDbBatchItemFailure {
    let mut failure = DynamoDbBatchItemFailure::default();
    failure.item_identifier = record.change.sequence_number.clone();
    failure
}

pub async fn relay(event: Event, publisher: &dyn EventPublisher) -> DynamoDbEventResponse {
    let mut response = DynamoDbEventResponse::default();
    // (record index, entry) for every record to publish, in stream order.
    let mut to_publish = Vec::new();
    for (index, record) in event.records.iter().enumerate() {
        match outbox_item(record) {
            Ok(Some(item)) => to_publish.push((index, item)),
            Ok(None) => tracing::debug!(event_id = %record.event_id, "not an outbox insert, skipped"),
            Err(err) => {
                // A record we cannot read will not read better on retry, but reporting it sends it
                // (after the retries) to the DLQ instead of losing it.
                tracing::error!(event_id = %record.event_id, error = %err, "unreadable outbox record");
                response.batch_item_failures.extend(event.records[index..].iter().map(failure));
                return finish(response, event.records.len(), to_publish.len());
            }
        }
    }
    let entries: Vec<_> = to_publish.iter().map(|(_, item)| item.entry()).collect();
    let published = match publisher.publish(&entries).await {
        Ok(()) => to_publish.len(),
        Err(err) => {
            let (first_record, item) = &to_publish[err.first_failed_index()];
            tracing::error!(
                event_id = %item.event_id,
                correlation_id = %item.correlation_id,
                error = %err,
                "outbox events not published, will retry"
            );
            response.batch_item_failures.extend(event.records[*first_record..].iter().map(failure));
            err.first_failed_index()
        }
    };
    for (_, item) in &to_publish[..published] {
        tracing::info!(
            event_id = %item.event_id,
            event_type = %item.detail_type,
            correlation_id = %item.correlation_id,
            "event published"
        );
    }
    finish(response, event.records.len(), entries.len())
}

fn finish(response: DynamoDbEventResponse, records: usize, outbox: usize) -> DynamoDbEventResponse {
    tracing::info!(records, outbox, failed = response.batch_item_failures.len(), "outbox batch relayed");
    response
}
