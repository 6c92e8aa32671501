//! The inventory table on DynamoDB. Items are (de)serialised with `serde_dynamo`.
//!
//! Layout (single table):
//! - product: `pk = SKU#<sku>`, `sk = PRODUCT`; `available` is only ever changed by conditional
//!   `SET available = available ± :q` updates, so concurrent reservations can never oversell;
//! - reservation: `pk = RESERVATION#<order_id>`, `sk = RESERVATION`;
//! - applied restock: `pk = RESTOCK#<sku>#<restock_id>`, `sk = RESTOCK`, expiring after 30 days;
//! - outbox event: `pk` of its aggregate, `sk = OUTBOX#<event_id>` (see `shared::aws::outbox`);
//! - consumed event handled: `pk = EVENT#<event_id>`, `sk = PROCESSED`, expiring after 7 days
//!   (longer than EventBridge retries and Lambda's async retries together).
//!
//! Every item has an `entity` attribute. Products also keep the correlation id of their last
//! change, so the `StockLow` the relay derives from a change carries the request that caused it.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, ReturnValue, TransactWriteItem, Update};
use chrono::{Duration, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use shared::aws::dynamo::{self, failed_conditions, names, values};
use shared::aws::outbox::{OutboxEvent, OutboxRecord};
use shared_core::Conditional;
use shared_core::{CorrelationId, OrderId};

use crate::domain::{Product, ProductSpec, Reservation, ReservationStatus, Restock};
use crate::ports::{InventoryStore, RestockOutcome, StoreError, WriteOutcome};

pub const ENTITY_PRODUCT: &str = "PRODUCT";
const ENTITY_RESERVATION: &str = "RESERVATION";
const ENTITY_RESTOCK: &str = "RESTOCK";
const RESTOCK_TTL_DAYS: i64 = 30;
const ENTITY_PROCESSED: &str = "PROCESSED";
const PROCESSED_TTL_DAYS: i64 = 7;

#[derive(Debug, Serialize, Deserialize)]
struct ProcessedItem {
    pk: String,
    sk: String,
    entity: String,
    expires_at: i64,
}

fn processed_key(event_id: &str) -> HashMap<String, AttributeValue> {
    dynamo::key(format!("EVENT#{event_id}"), ENTITY_PROCESSED)
}

/// A product as stored; also what the relay reads from the stream to derive `StockLow`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProductItem {
    pub pk: String,
    pub sk: String,
    pub entity: String,
    #[serde(flatten)]
    pub product: Product,
    #[serde(default)]
    pub last_correlation_id: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct ReservationItem {
    pk: String,
    sk: String,
    entity: String,
    #[serde(flatten)]
    reservation: Reservation,
}

#[derive(Debug, Serialize, Deserialize)]
struct RestockItem {
    pk: String,
    sk: String,
    entity: String,
    sku: String,
    quantity: u32,
    expires_at: i64,
}

fn product_key(sku: &str) -> HashMap<String, AttributeValue> {
    dynamo::key(format!("SKU#{sku}"), ENTITY_PRODUCT)
}

fn reservation_pk(order_id: OrderId) -> String {
    format!("RESERVATION#{order_id}")
}

/// A failure of serde_dynamo, of a request builder or of an invariant, kept as the cause.
fn backend(err: impl Into<shared_core::error::Cause>) -> StoreError {
    StoreError::Backend(err.into())
}

/// A DynamoDB call that failed: the SDK's error, with its request id, as the cause.
fn sdk_backend<E: std::error::Error + Send + Sync + 'static>(err: SdkError<E, HttpResponse>) -> StoreError {
    backend(dynamo::failed(err))
}

/// An expression value, serialised with serde_dynamo.
fn av<T: Serialize>(value: T) -> Result<AttributeValue, StoreError> {
    serde_dynamo::to_attribute_value(value).map_err(backend)
}

fn update(
    table: &str,
    key: HashMap<String, AttributeValue>,
    expression: &str,
    condition: &str,
    values: HashMap<String, AttributeValue>,
    names: Option<HashMap<String, String>>,
) -> Result<TransactWriteItem, StoreError> {
    let update = Update::builder()
        .table_name(table)
        .set_key(Some(key))
        .update_expression(expression)
        .condition_expression(condition)
        .set_expression_attribute_values(Some(values))
        .set_expression_attribute_names(names)
        .build()
        .map_err(backend)?;
    Ok(TransactWriteItem::builder().update(update).build())
}

#[derive(Debug, Clone)]
pub struct DynamoDbInventoryStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoDbInventoryStore {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }

    fn outbox_puts(&self, pk: &str, events: &[OutboxEvent]) -> Result<Vec<TransactWriteItem>, StoreError> {
        events.iter().map(|e| dynamo::put_new(&self.table, &OutboxRecord::new(pk, e)).map_err(backend)).collect()
    }

    /// `available` moves by `delta` units of `sku`, with `condition` on the product.
    fn stock_change(
        &self,
        sku: &str,
        take: bool,
        quantity: u32,
        condition: &str,
        mut extra: HashMap<String, AttributeValue>,
        correlation_id: &CorrelationId,
    ) -> Result<TransactWriteItem, StoreError> {
        let now = Utc::now().trunc_subsecs(3);
        extra.extend(values([
            (":q", av(u64::from(quantity))?),
            (":u", av(now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))?),
            (":c", av(correlation_id.as_str())?),
        ]));
        let sign = if take { '-' } else { '+' };
        update(
            &self.table,
            product_key(sku),
            &format!("SET available = available {sign} :q, updated_at = :u, last_correlation_id = :c"),
            condition,
            extra,
            None,
        )
    }

    async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<Option<Vec<usize>>, StoreError> {
        match dynamo::transact(&self.client, items).await {
            Ok(()) => Ok(None),
            Err(err) => match failed_conditions(&err) {
                Some(failed) if !failed.is_empty() => Ok(Some(failed)),
                _ => Err(sdk_backend(err)),
            },
        }
    }
}

#[async_trait]
impl InventoryStore for DynamoDbInventoryStore {
    async fn put_product(
        &self,
        sku: &str,
        spec: &ProductSpec,
        correlation_id: &CorrelationId,
    ) -> Result<Product, StoreError> {
        let now = Utc::now().trunc_subsecs(3).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let output = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(product_key(sku)))
            .update_expression(
                "SET entity = :entity, sku = :sku, #name = :name, price = :price, \
                 low_stock_threshold = :threshold, updated_at = :u, last_correlation_id = :c, \
                 available = if_not_exists(available, :zero)",
            )
            .expression_attribute_names("#name", "name")
            .set_expression_attribute_values(Some(values([
                (":entity", av(ENTITY_PRODUCT)?),
                (":sku", av(sku)?),
                (":name", av(&spec.name)?),
                (":price", av(&spec.price)?),
                (":threshold", av(spec.low_stock_threshold)?),
                (":u", av(&now)?),
                (":c", av(correlation_id.as_str())?),
                (":zero", av(0u64)?),
            ])))
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(sdk_backend)?;
        let item = output.attributes.ok_or_else(|| StoreError::Backend("UpdateItem returned no item".into()))?;
        Ok(serde_dynamo::from_item::<_, ProductItem>(item).map_err(backend)?.product)
    }

    async fn restock(
        &self,
        sku: &str,
        restock: &Restock,
        correlation_id: &CorrelationId,
    ) -> Result<RestockOutcome, StoreError> {
        let marker = RestockItem {
            pk: format!("RESTOCK#{sku}#{}", restock.restock_id),
            sk: ENTITY_RESTOCK.into(),
            entity: ENTITY_RESTOCK.into(),
            sku: sku.to_owned(),
            quantity: restock.quantity,
            expires_at: (Utc::now() + Duration::days(RESTOCK_TTL_DAYS)).timestamp(),
        };
        let items = vec![
            self.stock_change(sku, false, restock.quantity, "attribute_exists(pk)", HashMap::new(), correlation_id)?,
            dynamo::put_new(&self.table, &marker).map_err(backend)?,
        ];
        let failed = self.transact(items).await?;
        let product = self.get_product(sku).await?.ok_or_else(|| StoreError::UnknownSku(sku.to_owned()))?;
        match failed {
            None => Ok(RestockOutcome::Applied(product)),
            Some(failed) if failed.contains(&0) => Err(StoreError::UnknownSku(sku.to_owned())),
            Some(_) => Ok(RestockOutcome::AlreadyApplied(product)),
        }
    }

    async fn get_product(&self, sku: &str) -> Result<Option<Product>, StoreError> {
        let item: Option<ProductItem> =
            dynamo::get_item(&self.client, &self.table, product_key(sku), true).await.map_err(StoreError::Backend)?;
        Ok(item.map(|p| p.product))
    }

    async fn get_products(&self, skus: &[String]) -> Result<HashMap<String, Product>, StoreError> {
        let mut products = HashMap::new();
        for chunk in skus.chunks(100) {
            let mut pending = Some(
                KeysAndAttributes::builder()
                    .set_keys(Some(chunk.iter().map(|s| product_key(s)).collect()))
                    .consistent_read(true)
                    .build()
                    .map_err(backend)?,
            );
            // BatchGetItem may leave keys unprocessed under load: ask again for those.
            while let Some(request) = pending.take() {
                let output = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(sdk_backend)?;
                for item in output.responses.unwrap_or_default().remove(&self.table).unwrap_or_default() {
                    let product = serde_dynamo::from_item::<_, ProductItem>(item).map_err(backend)?.product;
                    products.insert(product.sku.clone(), product);
                }
                pending = output.unprocessed_keys.and_then(|mut u| u.remove(&self.table));
            }
        }
        Ok(products)
    }

    async fn get_reservation(&self, order_id: OrderId) -> Result<Option<Reservation>, StoreError> {
        let key = dynamo::key(reservation_pk(order_id), ENTITY_RESERVATION);
        let item: Option<ReservationItem> =
            dynamo::get_item(&self.client, &self.table, key, true).await.map_err(StoreError::Backend)?;
        Ok(item.map(|r| r.reservation))
    }

    async fn create_reservation(
        &self,
        reservation: &Reservation,
        events: &[OutboxEvent],
        correlation_id: &CorrelationId,
    ) -> Result<WriteOutcome, StoreError> {
        let mut items = Vec::new();
        if reservation.status == ReservationStatus::Reserved {
            for line in &reservation.lines {
                let expected = values([(":p", av(line.unit_price_minor)?), (":cur", av(&reservation.currency)?)]);
                items.push(self.stock_change(
                    &line.sku,
                    true,
                    line.quantity,
                    "available >= :q AND price.amount_minor = :p AND price.currency = :cur",
                    expected,
                    correlation_id,
                )?);
            }
        }
        let reservation_index = items.len();
        let pk = reservation_pk(reservation.order_id);
        let item = ReservationItem {
            pk: pk.clone(),
            sk: ENTITY_RESERVATION.into(),
            entity: ENTITY_RESERVATION.into(),
            reservation: reservation.clone(),
        };
        items.push(dynamo::put_new(&self.table, &item).map_err(backend)?);
        items.extend(self.outbox_puts(&pk, events)?);
        Ok(match self.transact(items).await? {
            None => WriteOutcome::Applied,
            Some(failed) if failed.contains(&reservation_index) => WriteOutcome::AlreadyExists,
            Some(_) => WriteOutcome::Stale,
        })
    }

    async fn finish_reservation(
        &self,
        reservation: &Reservation,
        events: &[OutboxEvent],
        correlation_id: &CorrelationId,
    ) -> Result<Conditional, StoreError> {
        let pk = reservation_pk(reservation.order_id);
        let updated_at = reservation.updated_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let mut items = vec![update(
            &self.table,
            dynamo::key(pk.clone(), ENTITY_RESERVATION),
            "SET #status = :to, updated_at = :u",
            "#status = :reserved",
            values([
                (":to", av(reservation.status)?),
                (":u", av(&updated_at)?),
                (":reserved", av(ReservationStatus::Reserved)?),
            ]),
            Some(names([("#status", "status")])),
        )?];
        if reservation.status == ReservationStatus::Released {
            for line in &reservation.lines {
                items.push(self.stock_change(
                    &line.sku,
                    false,
                    line.quantity,
                    "attribute_exists(pk)",
                    HashMap::new(),
                    correlation_id,
                )?);
            }
        }
        items.extend(self.outbox_puts(&pk, events)?);
        match self.transact(items).await? {
            None => Ok(Conditional::Applied),
            Some(failed) if failed.contains(&0) => Ok(Conditional::Lost),
            Some(_) => Err(StoreError::Backend("a reserved product is missing from the catalogue".into())),
        }
    }

    async fn was_processed(&self, event_id: &str) -> Result<bool, StoreError> {
        let item: Option<ProcessedItem> = dynamo::get_item(&self.client, &self.table, processed_key(event_id), true)
            .await
            .map_err(StoreError::Backend)?;
        // DynamoDB deletes expired items lazily: an expired marker no longer counts.
        Ok(item.is_some_and(|i| i.expires_at > Utc::now().timestamp()))
    }

    async fn mark_processed(&self, event_id: &str) -> Result<(), StoreError> {
        let item = ProcessedItem {
            pk: format!("EVENT#{event_id}"),
            sk: ENTITY_PROCESSED.into(),
            entity: ENTITY_PROCESSED.into(),
            expires_at: (Utc::now() + Duration::days(PROCESSED_TTL_DAYS)).timestamp(),
        };
        let item = serde_dynamo::to_item(item).map_err(backend)?;
        self.client.put_item().table_name(&self.table).set_item(Some(item)).send().await.map_err(sdk_backend)?;
        Ok(())
    }
}
