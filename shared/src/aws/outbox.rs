//! The transactional outbox, shared by every service that owns a table.
//!
//! A service writes its change and the events describing it in one DynamoDB transaction; the
//! events are [`OutboxRecord`] items in the service's own table. The table's stream triggers a
//! relay function that calls [`relay`], which publishes them to the bus in stream order.
//!
//! If a record cannot be published, it and every later record of the batch are returned as
//! batch item failures: Lambda retries from the earliest one (bisecting on errors) and finally
//! hands the record to the trigger's on-failure destination, so order is kept and nothing is
//! lost. Records published again on retry keep their `event_id`, so consumers deduplicate.

use aws_lambda_events::dynamodb::{Event, EventRecord};
use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use chrono::{Duration, Utc};
use serde::{Deserialize, Serialize};
use shared_core::{CorrelationId, DomainEvent, envelope::EventEntry};
use uuid::Uuid;

use crate::EventPublisher;

/// Value of the `entity` attribute of outbox items; the relay's stream filter selects it.
pub const ENTITY_OUTBOX: &str = "OUTBOX";
/// Relayed records are removed by DynamoDB's TTL after this many days.
pub const OUTBOX_TTL_DAYS: i64 = 7;

/// An event waiting to be written to the outbox with the change it describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEvent {
    pub event_id: Uuid,
    /// Kept beside the entry so the relay can log it without parsing the detail.
    pub correlation_id: CorrelationId,
    pub entry: EventEntry,
}

impl OutboxEvent {
    /// The outbox form of `event`, published by `service`.
    pub fn from_event<T: Serialize>(event: &DomainEvent<T>, service: &str) -> Self {
        Self {
            event_id: event.event_id,
            correlation_id: event.correlation_id.clone(),
            entry: event.to_entry(service).expect("domain event payloads serialise to JSON"),
        }
    }
}

/// An outbox record as stored in a service's table, and as the relay reads it from the stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxRecord {
    pub pk: String,
    pub sk: String,
    pub entity: String,
    pub event_id: String,
    #[serde(default)]
    pub correlation_id: String,
    pub source: String,
    pub detail_type: String,
    pub detail: String,
    /// The X-Ray trace header of the invocation that wrote it ([`EventEntry::trace_header`]);
    /// absent from records written before it existed and outside a traced invocation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_header: Option<String>,
    /// Epoch seconds, for the table's TTL.
    pub expires_at: i64,
}

impl OutboxRecord {
    /// The record of `event` in the partition of the aggregate it is about.
    pub fn new(aggregate_pk: impl Into<String>, event: &OutboxEvent) -> Self {
        Self {
            pk: aggregate_pk.into(),
            sk: format!("OUTBOX#{}", event.event_id),
            entity: ENTITY_OUTBOX.into(),
            event_id: event.event_id.to_string(),
            correlation_id: event.correlation_id.to_string(),
            source: event.entry.source.clone(),
            detail_type: event.entry.detail_type.clone(),
            detail: event.entry.detail.clone(),
            trace_header: event.entry.trace_header.clone(),
            expires_at: (Utc::now() + Duration::days(OUTBOX_TTL_DAYS)).timestamp(),
        }
    }

    /// The outbox record in a stream record, if it is a newly inserted one.
    pub fn from_stream(record: &EventRecord) -> Result<Option<Self>, serde_dynamo::Error> {
        if !Self::is_inserted_in(record) {
            return Ok(None);
        }
        serde_dynamo::from_item(record.change.new_image.clone()).map(Some)
    }

    /// [`OutboxRecord::from_stream`], moving the new image out of the record instead of copying
    /// it (the record keeps everything else; a record that is not an outbox insert is untouched).
    pub fn take_from_stream(record: &mut EventRecord) -> Result<Option<Self>, serde_dynamo::Error> {
        if !Self::is_inserted_in(record) {
            return Ok(None);
        }
        serde_dynamo::from_item(std::mem::take(&mut record.change.new_image)).map(Some)
    }

    fn is_inserted_in(record: &EventRecord) -> bool {
        record.event_name == "INSERT"
            && matches!(
                record.change.new_image.get("entity"),
                Some(serde_dynamo::AttributeValue::S(entity)) if entity == ENTITY_OUTBOX
            )
    }
}

/// What a stream record gives the relay to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayItem {
    pub event_id: String,
    pub correlation_id: String,
    pub entry: EventEntry,
}

impl From<OutboxRecord> for RelayItem {
    fn from(record: OutboxRecord) -> Self {
        let entry = EventEntry {
            source: record.source,
            detail_type: record.detail_type,
            detail: record.detail,
            trace_header: record.trace_header,
        };
        Self { entry, event_id: record.event_id, correlation_id: record.correlation_id }
    }
}

/// Reads the events to publish from a stream record: `Ok(None)` skips the record. It may move
/// what it reads out of the record's images; afterwards the relay uses only the record's ids,
/// sequence number and creation time.
pub type Extractor = dyn Fn(&mut EventRecord) -> Result<Option<RelayItem>, String> + Send + Sync;

/// The default extractor: outbox inserts only (their image moves into the item, uncopied).
pub fn outbox_only(record: &mut EventRecord) -> Result<Option<RelayItem>, String> {
    OutboxRecord::take_from_stream(record).map(|r| r.map(RelayItem::from)).map_err(|e| e.to_string())
}

/// Publishes the outbox records of a stream batch.
pub async fn relay(event: Event, publisher: &dyn EventPublisher) -> DynamoDbEventResponse {
    relay_with(event, publisher, &outbox_only).await
}

fn failure(record: &EventRecord) -> DynamoDbBatchItemFailure {
    let mut failure = DynamoDbBatchItemFailure::default();
    failure.item_identifier = record.change.sequence_number.clone();
    failure
}

/// What the relay keeps of an item it publishes: its record's index in the batch and its ids.
struct Sent {
    index: usize,
    event_id: String,
    correlation_id: String,
}

/// Publishes what `extract` finds in each record of a stream batch, in stream order.
pub async fn relay_with(
    mut event: Event,
    publisher: &dyn EventPublisher,
    extract: &Extractor,
) -> DynamoDbEventResponse {
    let mut response = DynamoDbEventResponse::default();
    // (record index, item) for every record to publish, in stream order.
    let mut to_publish = Vec::new();
    let mut unreadable = None;
    for (index, record) in event.records.iter_mut().enumerate() {
        match extract(record) {
            Ok(Some(item)) => to_publish.push((index, item)),
            Ok(None) => tracing::debug!(stream_event_id = %record.event_id, "nothing to publish in this record"),
            Err(err) => {
                // It will not read better on retry, but reporting it sends it (after the
                // retries) to the DLQ instead of losing it.
                tracing::error!(stream_event_id = %record.event_id, error = %err, "unreadable stream record");
                unreadable = Some(index);
                break;
            }
        }
    }
    // The entries move out of the items (no copy of each event's detail): `sent[k]` is what was
    // read with `entries[k]`.
    let (sent, entries): (Vec<Sent>, Vec<EventEntry>) = to_publish
        .into_iter()
        .map(|(index, item)| (Sent { index, event_id: item.event_id, correlation_id: item.correlation_id }, item.entry))
        .unzip();
    let (published, first_failed_record) = match publisher.publish(&entries).await {
        Ok(()) => (sent.len(), unreadable),
        Err(err) => {
            let failed = &sent[err.first_failed_index()];
            tracing::error!(
                event_id = %failed.event_id,
                correlation_id = %failed.correlation_id,
                error = %err,
                "events not published, will retry"
            );
            (err.first_failed_index(), Some(failed.index))
        }
    };
    relay_lag_of(&event.records, &sent[..published], &entries);
    for (item, entry) in sent[..published].iter().zip(&entries) {
        tracing::info!(
            event_id = %item.event_id,
            event_type = %entry.detail_type,
            correlation_id = %item.correlation_id,
            "event published"
        );
    }
    if let Some(first) = first_failed_record {
        response.batch_item_failures.extend(event.records[first..].iter().map(failure));
    }
    tracing::info!(
        records = event.records.len(),
        published,
        failed = response.batch_item_failures.len(),
        "stream batch relayed"
    );
    response
}

/// Relay publish lag: now minus when each published record was created, per publishing service.
/// The creation time is the millisecond timestamp of the record's UUID v7 `event_id` (taken as
/// the event was written), else its stream record's `ApproximateCreationDateTime` (seconds).
fn relay_lag_of(records: &[EventRecord], published: &[Sent], entries: &[EventEntry]) {
    let now = Utc::now();
    let mut lags: std::collections::BTreeMap<&str, Vec<std::time::Duration>> = Default::default();
    for (item, entry) in published.iter().zip(entries) {
        let from_id = Uuid::parse_str(&item.event_id).ok().and_then(|id| id.get_timestamp()).and_then(|t| {
            let (secs, nanos) = t.to_unix();
            chrono::DateTime::from_timestamp(i64::try_from(secs).ok()?, nanos)
        });
        let written = from_id.unwrap_or(records[item.index].change.approximate_creation_date_time);
        let lag = (now - written).to_std().unwrap_or_default();
        lags.entry(entry.source.as_str()).or_default().push(lag);
    }
    for (source, lags) in lags {
        crate::metrics::relay_lag(source, &lags);
    }
}

/// An outbox relay as a stream function: each batch of the table's stream is published to the
/// bus ([`relay_with`]), what could not be is reported as the batch's item failures.
pub struct Relay {
    publisher: crate::aws::publisher::EventBridgePublisher,
    extract: &'static Extractor,
}

impl Relay {
    /// The relay of a table's stream to the bus named by `EVENT_BUS_NAME`, publishing what
    /// `extract` finds in each record.
    pub fn new(
        config: &aws_config::SdkConfig,
        lookup: crate::config::Lookup<'_>,
        extract: &'static Extractor,
    ) -> Result<crate::function::Stream<Self>, crate::config::ConfigError> {
        Ok(crate::function::Stream(Self { publisher: relay_publisher(config, lookup)?, extract }))
    }
}

#[async_trait::async_trait]
impl crate::function::StreamFunction for Relay {
    async fn invoke(&self, event: Event) -> DynamoDbEventResponse {
        relay_with(event, &self.publisher, self.extract).await
    }
}

/// The publisher of a relay: the bus named by `EVENT_BUS_NAME`.
pub fn relay_publisher(
    config: &aws_config::SdkConfig,
    lookup: crate::config::Lookup<'_>,
) -> Result<crate::aws::publisher::EventBridgePublisher, crate::config::ConfigError> {
    let bus = crate::config::required(lookup, "EVENT_BUS_NAME")?;
    Ok(crate::aws::publisher::EventBridgePublisher::new(aws_sdk_eventbridge::Client::new(config), bus))
}

/// A deterministic UUID v7 for an event derived from a stream record (rather than written to the
/// outbox): the same record always yields the same id, so a retried batch republishes it under
/// the same id and consumers deduplicate.
pub fn derived_event_id(record: &EventRecord) -> Uuid {
    let millis = u64::try_from(record.change.approximate_creation_date_time.timestamp_millis()).unwrap_or(0);
    let key = format!("{}:{}", record.event_id, record.change.sequence_number.as_deref().unwrap_or_default());
    // The 80 "random" bits of the v7 id come from a name-based (v5) hash of the record's identity.
    let name_based = Uuid::new_v5(&Uuid::NAMESPACE_OID, key.as_bytes());
    let mut seed = [0u8; 10];
    seed.copy_from_slice(&name_based.as_bytes()[6..16]);
    uuid::Builder::from_unix_timestamp_millis(millis, &seed).into_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(event_id: &str, sequence: &str) -> EventRecord {
        let mut record = EventRecord::default();
        record.event_id = event_id.into();
        record.change.sequence_number = Some(sequence.into());
        record.change.approximate_creation_date_time = chrono::DateTime::from_timestamp(1_795_773_600, 0).unwrap();
        record
    }

    #[test]
    fn derived_ids_are_v7_stable_per_record_and_distinct_across_records() {
        let id = derived_event_id(&record("a", "1"));
        assert_eq!(id.get_version_num(), 7);
        assert_eq!(id, derived_event_id(&record("a", "1")));
        assert_ne!(id, derived_event_id(&record("a", "2")));
        assert_ne!(id, derived_event_id(&record("b", "1")));
        let (secs, _) = id.get_timestamp().unwrap().to_unix();
        assert_eq!(secs, 1_795_773_600, "the id sorts by the change's time");
    }

    #[tokio::test]
    async fn the_writer_s_trace_header_travels_with_its_record_to_the_relay() {
        let writer =
            shared_core::trace::TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        let event = writer
            .child()
            .scope(async { DomainEvent::new("Tested", "agg-1", CorrelationId::generate(), Utc::now(), 1) })
            .await;
        let record = OutboxRecord::new("AGG#1", &OutboxEvent::from_event(&event, "test"));
        let mut inserted = EventRecord::default();
        inserted.event_name = "INSERT".into();
        inserted.change.new_image = serde_dynamo::to_item(&record).unwrap();
        let image = inserted.change.new_image.clone();
        let item = outbox_only(&mut inserted).unwrap().unwrap();
        assert_eq!(item.entry.trace_header.as_deref(), Some("Root=1-4bf92f35-77b34da6a3ce929d0e0e4736;Sampled=1"));
        assert!(inserted.change.new_image.is_empty(), "the image moved into the item, uncopied");
        // A record written before the attribute existed is relayed without one.
        inserted.change.new_image = image;
        inserted.change.new_image.remove("trace_header");
        assert_eq!(outbox_only(&mut inserted).unwrap().unwrap().entry.trace_header, None);
    }
}
