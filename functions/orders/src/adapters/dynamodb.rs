//! The orders table on DynamoDB. Items are (de)serialised with `serde_dynamo`.
//!
//! Layout (single table):
//! - order: `pk = ORDER#<id>`, `sk = ORDER`, `gsi1pk = CUSTOMER#<customer_id>`,
//!   `gsi1sk = <created_at>#<id>` (so GSI1 lists a customer's orders by time);
//! - outbox event ([`OutboxRecord`]): `pk = ORDER#<id>`, `sk = OUTBOX#<event_id>`, expiring through TTL;
//! - idempotency key: `pk = IDEMPOTENCY#<len>:<customer_id>#<key>` (keys are per customer, see
//!   `IdempotencyClaim::scoped_key`), `sk = IDEMPOTENCY`, expiring after [`IDEMPOTENCY_TTL_HOURS`].
//!
//! Every item has an `entity` attribute; the relay's stream filter selects `entity = OUTBOX`.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{Duration, Utc};
use serde::{Deserialize, Serialize};

use shared::aws::dynamo::{self, failed_conditions};
use shared::aws::outbox::OutboxRecord;
use shared_core::Conditional;
use shared_core::OrderId;

use crate::domain::Order;
use crate::ports::{CreateOutcome, IdempotencyClaim, OrderPage, OrderStore, OutboxEvent, StoreError};

pub const IDEMPOTENCY_TTL_HOURS: i64 = 24;
pub const ENTITY_ORDER: &str = "ORDER";
pub const ENTITY_IDEMPOTENCY: &str = "IDEMPOTENCY";
const GSI1: &str = "gsi1";

mod sweep;

#[derive(Debug, Serialize, Deserialize)]
struct OrderItem {
    pk: String,
    sk: String,
    entity: String,
    gsi1pk: String,
    gsi1sk: String,
    /// The sparse sweep index's key: only pending and parked orders carry it (see
    /// `crate::parking::sweep_key`); [`sweep`] reads the index.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    sweep_pk: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    sweep_sk: Option<String>,
    #[serde(flatten)]
    order: Order,
}

impl OrderItem {
    fn new(order: &Order) -> Self {
        Self {
            pk: order_pk(order.id),
            sk: ENTITY_ORDER.into(),
            entity: ENTITY_ORDER.into(),
            gsi1pk: customer_pk(&order.customer_id),
            gsi1sk: format!("{}#{}", order.created_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true), order.id),
            sweep_pk: crate::parking::sweep_key(order).map(|k| k.0),
            sweep_sk: crate::parking::sweep_key(order).map(|k| k.1),
            order: order.clone(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct IdempotencyItem {
    pk: String,
    sk: String,
    entity: String,
    order_id: OrderId,
    request: String,
    expires_at: i64,
}

/// The GSI1 position a page ended at, handed to clients as an opaque base64url cursor.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CursorKey {
    pk: String,
    sk: String,
    gsi1pk: String,
    gsi1sk: String,
}

fn order_pk(id: OrderId) -> String {
    format!("ORDER#{id}")
}

fn customer_pk(customer_id: &str) -> String {
    format!("CUSTOMER#{customer_id}")
}

fn idempotency_pk(key: &str) -> String {
    format!("IDEMPOTENCY#{key}")
}

/// A failure of serde_dynamo, of a request builder or of an invariant, kept as the cause.
fn backend(err: impl Into<shared_core::error::Cause>) -> StoreError {
    StoreError::Backend(err.into())
}

/// A DynamoDB call that failed: the SDK's error, with its request id, as the cause.
fn sdk_backend<E: std::error::Error + Send + Sync + 'static>(err: SdkError<E, HttpResponse>) -> StoreError {
    backend(dynamo::failed(err))
}

#[derive(Debug, Clone)]
pub struct DynamoDbOrderStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoDbOrderStore {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }

    fn put_new<T: Serialize>(&self, item: &T) -> Result<TransactWriteItem, StoreError> {
        dynamo::put_new(&self.table, item).map_err(StoreError::Backend)
    }

    fn outbox_puts(&self, order: &Order, events: &[OutboxEvent]) -> Result<Vec<TransactWriteItem>, StoreError> {
        events.iter().map(|e| self.put_new(&OutboxRecord::new(order_pk(order.id), e))).collect()
    }

    async fn idempotency_record(&self, key: &str) -> Result<Option<IdempotencyItem>, StoreError> {
        let key = dynamo::key(idempotency_pk(key), ENTITY_IDEMPOTENCY);
        dynamo::get_item(&self.client, &self.table, key, true).await.map_err(StoreError::Backend)
    }
}

#[async_trait]
impl OrderStore for DynamoDbOrderStore {
    async fn create(
        &self,
        order: &Order,
        events: &[OutboxEvent],
        idempotency: Option<&IdempotencyClaim>,
    ) -> Result<CreateOutcome, StoreError> {
        let mut items = vec![self.put_new(&OrderItem::new(order))?];
        items.extend(self.outbox_puts(order, events)?);
        if let Some(claim) = idempotency {
            items.push(self.put_new(&IdempotencyItem {
                pk: idempotency_pk(&claim.scoped_key()),
                sk: ENTITY_IDEMPOTENCY.into(),
                entity: ENTITY_IDEMPOTENCY.into(),
                order_id: order.id,
                request: claim.request.clone(),
                expires_at: (Utc::now() + Duration::hours(IDEMPOTENCY_TTL_HOURS)).timestamp(),
            })?);
        }
        let idempotency_index = items.len() - 1;
        let err = match dynamo::transact(&self.client, items).await {
            Ok(()) => return Ok(CreateOutcome::Created),
            Err(err) => err,
        };
        let Some(failed) = failed_conditions(&err) else { return Err(sdk_backend(err)) };
        match idempotency {
            Some(claim) if failed.contains(&idempotency_index) => {
                let record = self
                    .idempotency_record(&claim.scoped_key())
                    .await?
                    .ok_or_else(|| StoreError::Backend("idempotency record vanished after a conflict".into()))?;
                if record.request == claim.request {
                    Ok(CreateOutcome::Replayed(record.order_id))
                } else {
                    Err(StoreError::IdempotencyMismatch)
                }
            }
            _ if failed.is_empty() => Err(sdk_backend(err)),
            _ => Err(StoreError::AlreadyExists(order.id)),
        }
    }

    /// Strongly consistent: every read of an order decides something right after a write (the
    /// order an idempotent replay returns, the status a saga step checks before changing it, the
    /// order a client reads back after placing it). An eventually consistent read could miss a
    /// write of the last second: a replay answering 404 for the order it just created, or a
    /// saga step finding no order.
    async fn get(&self, id: OrderId) -> Result<Option<Order>, StoreError> {
        let key = dynamo::key(order_pk(id), ENTITY_ORDER);
        let item: Option<OrderItem> =
            dynamo::get_item(&self.client, &self.table, key, true).await.map_err(StoreError::Backend)?;
        Ok(item.map(|i| i.order))
    }

    async fn list_by_customer(
        &self,
        customer_id: &str,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<OrderPage, StoreError> {
        let gsi1pk = customer_pk(customer_id);
        let start_key = cursor
            .map(|raw| {
                let key = decode_cursor(raw).ok_or(StoreError::InvalidCursor)?;
                if key.gsi1pk != gsi1pk {
                    return Err(StoreError::InvalidCursor);
                }
                serde_dynamo::to_item(&key).map_err(backend)
            })
            .transpose()?;
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(GSI1)
            .key_condition_expression("gsi1pk = :customer")
            .expression_attribute_values(":customer", AttributeValue::S(gsi1pk))
            .scan_index_forward(false)
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .set_exclusive_start_key(start_key)
            .send()
            .await
            .map_err(sdk_backend)?;
        let orders = output
            .items()
            .iter()
            .map(|item| serde_dynamo::from_item::<_, OrderItem>(item.clone()).map(|i| i.order).map_err(backend))
            .collect::<Result<Vec<_>, _>>()?;
        let next_cursor = match output.last_evaluated_key {
            Some(key) => Some(encode_cursor(&serde_dynamo::from_item(key).map_err(backend)?)),
            None => None,
        };
        Ok(OrderPage { orders, next_cursor })
    }

    async fn update(&self, order: &Order, events: &[OutboxEvent]) -> Result<Conditional, StoreError> {
        let expected = HashMap::from([(":expected".to_owned(), AttributeValue::N((order.version - 1).to_string()))]);
        let mut items = vec![
            dynamo::put(&self.table, &OrderItem::new(order), "version = :expected", Some(expected))
                .map_err(StoreError::Backend)?,
        ];
        items.extend(self.outbox_puts(order, events)?);
        match dynamo::transact(&self.client, items).await {
            Ok(()) => Ok(Conditional::Applied),
            Err(err) => match failed_conditions(&err) {
                Some(failed) if failed.contains(&0) => Ok(Conditional::Lost),
                _ => Err(sdk_backend(err)),
            },
        }
    }
}

fn encode_cursor(key: &CursorKey) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(key).expect("cursor keys serialise"))
}

fn decode_cursor(raw: &str) -> Option<CursorKey> {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(raw).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_garbage_is_refused() {
        let key =
            CursorKey { pk: "ORDER#a".into(), sk: "ORDER".into(), gsi1pk: "CUSTOMER#c".into(), gsi1sk: "t#a".into() };
        let raw = encode_cursor(&key);
        assert_eq!(decode_cursor(&raw).unwrap().gsi1sk, "t#a");
        assert!(decode_cursor("not base64!").is_none());
        assert!(decode_cursor(&URL_SAFE_NO_PAD.encode(b"{\"pk\":1}")).is_none());
    }
}
