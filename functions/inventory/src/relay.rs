//! The inventory relay: publishes the outbox (reservation events) and derives `StockLow` from the
//! product changes on the table's stream (NEW_AND_OLD_IMAGES).
//!
//! `StockLow` comes from the change itself, not from the writer's read: two concurrent
//! reservations that each saw stock above the threshold still produce exactly one `StockLow`
//! when together they cross it. Its id is derived from the stream record, so a retried batch
//! republishes it under the same id.

use aws_lambda_events::dynamodb::{Event, EventRecord};
use aws_lambda_events::streams::DynamoDbEventResponse;
use shared::EventPublisher;
use shared::aws::outbox::{RelayItem, derived_event_id, outbox_only, relay_with};
use shared_core::{CorrelationId, DomainEvent};

use crate::adapters::dynamodb::{ENTITY_PRODUCT, ProductItem};
use crate::domain::crosses_low_stock;
use crate::events::{SERVICE, STOCK_LOW, StockLow};

fn product(image: &serde_dynamo::Item) -> Result<Option<ProductItem>, String> {
    match image.get("entity") {
        Some(serde_dynamo::AttributeValue::S(entity)) if entity == ENTITY_PRODUCT => {
            serde_dynamo::from_item(image.clone()).map(Some).map_err(|e| e.to_string())
        }
        _ => Ok(None),
    }
}

/// The `StockLow` a product change implies, if any.
pub fn stock_low(record: &EventRecord) -> Result<Option<RelayItem>, String> {
    if record.event_name != "MODIFY" {
        return Ok(None);
    }
    let (Some(before), Some(after)) = (product(&record.change.old_image)?, product(&record.change.new_image)?) else {
        return Ok(None);
    };
    let threshold = after.product.low_stock_threshold;
    if !crosses_low_stock(before.product.available, after.product.available, threshold) {
        return Ok(None);
    }
    let correlation_id = CorrelationId::from_header_or_new(Some(&after.last_correlation_id));
    let data = StockLow { sku: after.product.sku.clone(), available: after.product.available, threshold };
    let mut event = DomainEvent::new(
        STOCK_LOW,
        after.product.sku.clone(),
        correlation_id.clone(),
        record.change.approximate_creation_date_time,
        data,
    );
    event.event_id = derived_event_id(record);
    let entry = event.to_entry(SERVICE).map_err(|e| e.to_string())?;
    Ok(Some(RelayItem { event_id: event.event_id.to_string(), correlation_id: correlation_id.to_string(), entry }))
}

/// What the inventory relay publishes from one stream record.
pub fn extract(record: &mut EventRecord) -> Result<Option<RelayItem>, String> {
    match outbox_only(record)? {
        Some(item) => Ok(Some(item)),
        None => stock_low(record),
    }
}

pub async fn relay(event: Event, publisher: &dyn EventPublisher) -> DynamoDbEventResponse {
    relay_with(event, publisher, &extract).await
}
