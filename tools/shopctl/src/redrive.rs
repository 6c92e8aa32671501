//! Redriving what a DLQ holds.
//!
//! - A dead-lettered event goes back to the bus as it was (`PutEvents` with its source,
//!   detail-type and detail, so its envelope's `event_id` is the original one and consumers
//!   deduplicate it), then its message is deleted.
//! - A stream failure holds no records, only where the batch was. Its records are read again
//!   from the stream, from `startSequenceNumber` (`GetShardIterator` `AT_SEQUENCE_NUMBER`) to
//!   `endSequenceNumber`: DynamoDB Streams keep records 24 hours
//!   (<https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Streams.html>). They go
//!   through the same extractor as the table's relay (outbox records; for the inventory table
//!   `StockLow` too) and are published with their original `event_id`. Once the stream has
//!   trimmed them, the table's outbox items of the batch's time window are published instead
//!   (outbox items live 7 days, longer than any queue here keeps a message); `StockLow`, which
//!   exists only in the stream, cannot be recovered then, and the redrive says so.

use aws_lambda_events::dynamodb::EventRecord;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodbstreams::types::ShardIteratorType;
use chrono::{DateTime, Utc};
use serde_json::Value;
use shared::EventPublisher;
use shared::aws::outbox::{ENTITY_OUTBOX, OutboxRecord, RelayItem};
use shared_core::envelope::EventEntry;

use crate::Error;
use crate::dlq::StreamBatch;

/// How the records of a stream failure were found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Stream,
    /// The stream no longer had them: the table's outbox items of the batch's time window.
    TableOutbox,
}

/// What a redrive of one stream failure published.
#[derive(Debug, Clone, PartialEq)]
pub struct Republished {
    pub source: Source,
    /// `event_id`s, in publishing order.
    pub event_ids: Vec<String>,
}

/// A dead-lettered event as a `PutEvents` entry for `bus`.
pub fn entry_of(event: &Value) -> Result<EventEntry, Error> {
    let text = |field: &str| {
        event.get(field).and_then(Value::as_str).map(str::to_owned).ok_or_else(|| Error::Letter(format!("no {field}")))
    };
    let detail = event.get("detail").ok_or_else(|| Error::Letter("no detail".into()))?;
    // EventBridge keeps a DLQ message's X-Ray header in a message attribute, not in the event;
    // the envelope's `traceparent` names the same trace.
    let trace_header = shared_core::trace::xray_header_of(detail.get("traceparent").and_then(Value::as_str));
    Ok(EventEntry {
        source: text("source")?,
        detail_type: text("detail-type")?,
        detail: detail.to_string(),
        trace_header,
    })
}

/// Puts a dead-lettered event back on the bus.
pub async fn event(publisher: &dyn EventPublisher, event: &Value) -> Result<(), Error> {
    publisher.publish(&[entry_of(event)?]).await.map_err(|e| Error::Publish(e.to_string()))
}

type Extract = fn(&mut EventRecord) -> Result<Option<RelayItem>, String>;

/// The extractor of the relay of the table `logical_id`.
pub fn extractor(logical_id: &str) -> Extract {
    match logical_id {
        "InventoryTable" => inventory::relay::extract,
        _ => shared::aws::outbox::outbox_only,
    }
}

/// Stream sequence numbers are decimal strings of up to 40 digits: compare them as numbers.
fn sequence_order(a: &str, b: &str) -> std::cmp::Ordering {
    let (a, b) = (a.trim_start_matches('0'), b.trim_start_matches('0'));
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// The batch's records from the stream; `None` if the stream no longer has its first record.
async fn from_stream(
    streams: &aws_sdk_dynamodbstreams::Client,
    batch: &StreamBatch,
) -> Result<Option<Vec<EventRecord>>, Error> {
    let iterator = streams
        .get_shard_iterator()
        .stream_arn(&batch.stream_arn)
        .shard_id(&batch.shard_id)
        .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
        .sequence_number(&batch.start_sequence_number)
        .send()
        .await;
    let mut iterator = match iterator {
        Ok(output) => output.shard_iterator,
        Err(e) => {
            // TrimmedDataAccessException, or a stream or shard that is gone.
            let e = aws_sdk_dynamodbstreams::error::DisplayErrorContext(e);
            eprintln!("the stream no longer serves the batch ({e}): reading the table's outbox instead");
            return Ok(None);
        }
    };
    let mut records = Vec::new();
    let mut empty_pages = 0;
    while let Some(current) = iterator.take() {
        let page = streams.get_records().shard_iterator(current).send().await;
        let page = match page {
            Ok(page) => page,
            Err(e) if records.is_empty() => {
                let e = aws_sdk_dynamodbstreams::error::DisplayErrorContext(e);
                eprintln!("the stream no longer serves the batch ({e}): reading the table's outbox instead");
                return Ok(None);
            }
            Err(e) => {
                return Err(Error::Stack(format!(
                    "GetRecords: {}",
                    aws_sdk_dynamodbstreams::error::DisplayErrorContext(e)
                )));
            }
        };
        let mut past_end = false;
        for record in page.records() {
            let sequence = record.dynamodb().and_then(|d| d.sequence_number()).unwrap_or_default();
            if records.is_empty() && sequence_order(sequence, &batch.start_sequence_number).is_gt() {
                // The first record there is later than the batch's first: it was trimmed.
                return Ok(None);
            }
            if sequence_order(sequence, &batch.end_sequence_number).is_gt() {
                past_end = true;
                break;
            }
            records.push(local_aws::streams::to_lambda_record(record, &batch.stream_arn));
        }
        let reached_end = records
            .last()
            .and_then(|r| r.change.sequence_number.as_deref())
            .is_some_and(|s| sequence_order(s, &batch.end_sequence_number).is_ge());
        if past_end || reached_end {
            break;
        }
        if page.records().is_empty() {
            empty_pages += 1;
            if empty_pages > 20 {
                break;
            }
        }
        iterator = page.next_shard_iterator;
    }
    if records.is_empty() { Ok(None) } else { Ok(Some(records)) }
}

/// The creation time of an outbox record: the timestamp of its UUID v7 `event_id`.
fn created(record: &OutboxRecord) -> Option<DateTime<Utc>> {
    let (secs, nanos) = uuid::Uuid::parse_str(&record.event_id).ok()?.get_timestamp()?.to_unix();
    DateTime::from_timestamp(i64::try_from(secs).ok()?, nanos)
}

/// The table's outbox items written in the batch's time window (a second either side: the
/// arrival times are to the second), oldest first.
async fn from_table(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    batch: &StreamBatch,
) -> Result<Vec<OutboxRecord>, Error> {
    let parse =
        |t: &Option<String>| t.as_deref().and_then(|t| DateTime::parse_from_rfc3339(t).ok()).map(|t| t.to_utc());
    let (Some(first), Some(last)) = (parse(&batch.first_arrival), parse(&batch.last_arrival)) else {
        return Err(Error::Letter(
            "the stream no longer has the batch and the failure record has no arrival times to find its outbox items by"
                .into(),
        ));
    };
    let (from, to) = (first - chrono::Duration::seconds(1), last + chrono::Duration::seconds(2));
    let mut found = Vec::new();
    let mut start = None;
    loop {
        let page = dynamodb
            .scan()
            .table_name(table)
            .consistent_read(true)
            .filter_expression("#entity = :outbox")
            .expression_attribute_names("#entity", "entity")
            .expression_attribute_values(":outbox", AttributeValue::S(ENTITY_OUTBOX.into()))
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .map_err(|e| Error::Stack(format!("Scan {table}: {}", aws_sdk_dynamodb::error::DisplayErrorContext(e))))?;
        for item in page.items() {
            let record: OutboxRecord = serde_dynamo::from_item(item.clone())
                .map_err(|e| Error::Letter(format!("an outbox item of {table} does not read: {e}")))?;
            if created(&record).is_some_and(|at| at >= from && at <= to) {
                found.push(record);
            }
        }
        match page.last_evaluated_key() {
            Some(key) if !key.is_empty() => start = Some(key.clone()),
            _ => break,
        }
    }
    found.sort_by(|a, b| a.event_id.cmp(&b.event_id));
    Ok(found)
}

/// Publishes the events of a failed stream batch again, with their original `event_id`s.
pub async fn stream_batch(
    streams: &aws_sdk_dynamodbstreams::Client,
    dynamodb: &aws_sdk_dynamodb::Client,
    publisher: &dyn EventPublisher,
    batch: &StreamBatch,
    table_logical_id: &str,
) -> Result<Republished, Error> {
    let table = batch.table().ok_or_else(|| Error::Letter(format!("no table in {}", batch.stream_arn)))?;
    let (source, items) = match from_stream(streams, batch).await? {
        Some(records) => {
            let extract = extractor(table_logical_id);
            let mut items = Vec::new();
            for mut record in records {
                match extract(&mut record) {
                    Ok(Some(item)) => items.push(item),
                    Ok(None) => {}
                    Err(e) => {
                        return Err(Error::Letter(format!("stream record {} does not read: {e}", record.event_id)));
                    }
                }
            }
            (Source::Stream, items)
        }
        None => {
            if table_logical_id == "InventoryTable" {
                eprintln!("StockLow events exist only in the stream: those of this batch cannot be recovered");
            }
            let records = from_table(dynamodb, table, batch).await?;
            (Source::TableOutbox, records.into_iter().map(RelayItem::from).collect())
        }
    };
    let entries: Vec<EventEntry> = items.iter().map(|i| i.entry.clone()).collect();
    publisher.publish(&entries).await.map_err(|e| Error::Publish(e.to_string()))?;
    Ok(Republished { source, event_ids: items.into_iter().map(|i| i.event_id).collect() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_compare_as_numbers() {
        use std::cmp::Ordering::*;
        assert_eq!(sequence_order("900", "1000"), Less);
        assert_eq!(sequence_order("000100", "100"), Equal);
        assert_eq!(sequence_order("49668042", "49668041"), Greater);
    }

    #[test]
    fn a_dead_lettered_event_goes_back_with_its_detail_as_it_was() {
        let event = serde_json::json!({"source": "shop.orders", "detail-type": "OrderCreated",
                                       "detail": {"event_id": "0193-abc", "data": {}}});
        let entry = entry_of(&event).unwrap();
        assert_eq!((entry.source.as_str(), entry.detail_type.as_str()), ("shop.orders", "OrderCreated"));
        let detail: Value = serde_json::from_str(&entry.detail).unwrap();
        assert_eq!(detail["event_id"], "0193-abc");
        assert!(entry_of(&serde_json::json!({"source": "x"})).is_err());
    }
}
