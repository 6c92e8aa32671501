//! The one envelope every domain event travels in.
//!
//! On EventBridge the envelope is the `detail`; `source` is `shop.<service>` and `detail-type`
//! is the event type, so rules can match on either without parsing the payload.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::correlation::CorrelationId;

/// Version of the envelope layout itself. Payload changes that break consumers get a new
/// event type (`OrderCreatedV2`) rather than a silent change under the same name.
pub const ENVELOPE_VERSION: u32 = 1;

/// A domain event: what happened, to which aggregate, when, and in which conversation.
/// Consumers are tolerant readers: a field they do not know (added by a newer producer, here or
/// in `data`) is ignored, never an error. A change that removes or retypes a field is a new
/// event type instead.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct DomainEvent<T> {
    /// UUID v7: unique, and sortable by creation time. Consumers deduplicate on it.
    pub event_id: Uuid,
    pub event_type: String,
    pub aggregate_id: String,
    /// RFC 3339 in UTC with millisecond precision, e.g. `2026-11-27T10:00:00.123Z`.
    #[serde(with = "rfc3339_millis")]
    #[cfg_attr(feature = "schema", schemars(with = "DateTime<Utc>"))]
    pub occurred_at: DateTime<Utc>,
    pub correlation_id: CorrelationId,
    pub version: u32,
    /// The W3C `traceparent` of the span that published it: consumers continue the trace
    /// (see [`crate::trace::TraceContext::continue_from`]). Absent from events published
    /// outside a traced invocation; a malformed one starts a new trace, never an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    pub data: T,
}

impl<T> DomainEvent<T> {
    pub fn new(
        event_type: impl Into<String>,
        aggregate_id: impl Into<String>,
        correlation_id: CorrelationId,
        occurred_at: DateTime<Utc>,
        data: T,
    ) -> Self {
        Self {
            event_id: Uuid::now_v7(),
            event_type: event_type.into(),
            aggregate_id: aggregate_id.into(),
            occurred_at,
            correlation_id,
            version: ENVELOPE_VERSION,
            traceparent: crate::trace::current_traceparent(),
            data,
        }
    }
}

/// EventBridge rejects entries larger than 256 KB, measured as [`EventEntry::size`].
pub const MAX_ENTRY_BYTES: usize = 256 * 1024;

/// One event ready for the bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventEntry {
    pub source: String,
    pub detail_type: String,
    /// The JSON envelope, as sent.
    pub detail: String,
    /// The X-Ray trace header EventBridge passes on to the targets' own traces (PutEvents
    /// `TraceHeader`; not part of the event the targets receive, nor of its size:
    /// <https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-xray-integ.html>).
    pub trace_header: Option<String>,
}

impl EventEntry {
    /// Size as EventBridge computes it: the UTF-8 bytes of source, detail-type and detail (we
    /// send no `Time` and no `Resources`; the trace header does not count).
    pub fn size(&self) -> usize {
        self.source.len() + self.detail_type.len() + self.detail.len()
    }
}

impl<T: Serialize> DomainEvent<T> {
    /// The EventBridge entry for this event, published by `service` (source `shop.<service>`).
    pub fn to_entry(&self, service: &str) -> Result<EventEntry, serde_json::Error> {
        Ok(EventEntry {
            source: source_for(service),
            detail_type: self.event_type.clone(),
            detail: serde_json::to_string(self)?,
            trace_header: crate::trace::xray_header_of(self.traceparent.as_deref()),
        })
    }
}

/// The EventBridge `source` of events published by `service`.
pub fn source_for(service: &str) -> String {
    format!("shop.{service}")
}

/// The name of the field [`widened`] adds.
pub const ADDED_LATER: &str = "added_later";

/// What a newer producer may send in place of `value`: every object in it (the envelope, its
/// `data`, every object inside) with one more field, [`ADDED_LATER`]. Consumers are tolerant
/// readers: they read the widened document as they read `value`. The contract tests feed both to
/// every consumer.
pub fn widened(value: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Object(fields) => {
            let mut fields: serde_json::Map<String, Value> =
                fields.iter().map(|(name, v)| (name.clone(), widened(v))).collect();
            fields.insert(ADDED_LATER.to_owned(), Value::from("a field this consumer does not know yet"));
            Value::Object(fields)
        }
        Value::Array(items) => Value::Array(items.iter().map(widened).collect()),
        other => other.clone(),
    }
}

/// Reads a [`crate::money::Money`] in an event or a command tolerantly: `Money` rejects unknown
/// fields, because it is part of HTTP request bodies, which are strict; the bus's messages are
/// not. Use with `#[serde(deserialize_with = "shared::envelope::tolerant_money")]`.
pub fn tolerant_money<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<crate::money::Money, D::Error> {
    #[derive(serde::Deserialize)]
    struct Fields {
        amount_minor: u64,
        currency: String,
    }
    let fields = Fields::deserialize(deserializer)?;
    Ok(crate::money::Money::new(fields.amount_minor, fields.currency))
}

/// Serialises timestamps as RFC 3339 UTC with a `Z` and milliseconds, and accepts any RFC 3339
/// offset on input (normalised to UTC).
pub mod rfc3339_millis {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&value.to_rfc3339_opts(SecondsFormat::Millis, true))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<DateTime<Utc>, D::Error> {
        let raw = String::deserialize(deserializer)?;
        DateTime::parse_from_rfc3339(&raw)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| serde::de::Error::custom(format!("invalid RFC 3339 timestamp `{raw}`: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> DomainEvent<serde_json::Value> {
        let mut event = DomainEvent::new(
            "OrderCreated",
            "0193a3c2-0000-7000-8000-000000000001",
            CorrelationId::parse("corr-1").unwrap(),
            DateTime::parse_from_rfc3339("2026-11-27T10:00:00.5+02:00").unwrap().with_timezone(&Utc),
            json!({"order_id": "0193a3c2-0000-7000-8000-000000000001"}),
        );
        event.event_id = Uuid::parse_str("0193a3c2-1111-7000-8000-000000000002").unwrap();
        event
    }

    #[test]
    fn envelope_has_the_documented_fields_and_utc_timestamp() {
        let value = serde_json::to_value(sample()).unwrap();
        assert_eq!(
            value,
            json!({
                "event_id": "0193a3c2-1111-7000-8000-000000000002",
                "event_type": "OrderCreated",
                "aggregate_id": "0193a3c2-0000-7000-8000-000000000001",
                "occurred_at": "2026-11-27T08:00:00.500Z",
                "correlation_id": "corr-1",
                "version": 1,
                "data": {"order_id": "0193a3c2-0000-7000-8000-000000000001"}
            })
        );
    }

    #[test]
    fn new_events_get_distinct_time_ordered_v7_ids() {
        let a = sample_new();
        let b = sample_new();
        assert_eq!(a.event_id.get_version_num(), 7);
        assert!(a.event_id < b.event_id, "v7 ids sort by creation time");
    }

    fn sample_new() -> DomainEvent<()> {
        DomainEvent::new("X", "a", CorrelationId::generate(), Utc::now(), ())
    }

    #[test]
    fn entry_uses_service_source_and_event_type() {
        let entry = sample().to_entry("orders").unwrap();
        assert_eq!(entry.source, "shop.orders");
        assert_eq!(entry.detail_type, "OrderCreated");
        let back: DomainEvent<serde_json::Value> = serde_json::from_str(&entry.detail).unwrap();
        assert_eq!(back, sample());
    }

    #[test]
    fn unknown_envelope_fields_are_ignored_and_bad_timestamps_rejected() {
        #[derive(Debug, PartialEq, Deserialize)]
        struct Data {
            order_id: String,
        }
        let event: DomainEvent<Data> =
            serde_json::from_value(widened(&serde_json::to_value(sample()).unwrap())).unwrap();
        assert_eq!(
            (event.event_id, event.data.order_id.as_str()),
            (sample().event_id, "0193a3c2-0000-7000-8000-000000000001")
        );
        let mut value = serde_json::to_value(sample()).unwrap();
        value["occurred_at"] = json!("yesterday");
        let err = serde_json::from_value::<DomainEvent<serde_json::Value>>(value).unwrap_err();
        assert!(err.to_string().contains("invalid RFC 3339 timestamp"), "{err}");
    }
}
