//! The payments table on DynamoDB. Items are (de)serialised with `serde_dynamo`.
//!
//! Layout (single table):
//! - payment: `pk = PAYMENT#<order_id>`, `sk = PAYMENT`, with an optional `lease` map
//!   (`owner`, `until_ms`) while a caller talks to the provider;
//! - outbox event: `pk = PAYMENT#<order_id>`, `sk = OUTBOX#<event_id>` (see `shared::aws::outbox`).
//!
//! Every status change is one transaction: the conditional put of the payment (still in the
//! status it is leaving) and the put of its outbox event.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use serde::{Deserialize, Serialize};
use shared::aws::dynamo::{self, failed_conditions, names, values};
use shared::aws::outbox::{OutboxEvent, OutboxRecord};
use shared_core::{Conditional, OrderId};

use crate::domain::{Lease, Payment, PaymentStatus};
use crate::ports::{PaymentStore, StoreError};

const ENTITY_PAYMENT: &str = "PAYMENT";

#[derive(Debug, Serialize, Deserialize)]
struct PaymentItem {
    pk: String,
    sk: String,
    entity: String,
    #[serde(flatten)]
    payment: Payment,
}

impl PaymentItem {
    fn new(payment: &Payment) -> Self {
        Self {
            pk: payment_pk(payment.order_id),
            sk: ENTITY_PAYMENT.into(),
            entity: ENTITY_PAYMENT.into(),
            payment: payment.clone(),
        }
    }
}

fn payment_pk(order_id: OrderId) -> String {
    format!("PAYMENT#{order_id}")
}

fn payment_key(order_id: OrderId) -> HashMap<String, AttributeValue> {
    dynamo::key(payment_pk(order_id), ENTITY_PAYMENT)
}

/// A failure of serde_dynamo, of a request builder or of an invariant, kept as the cause.
fn backend(err: impl Into<shared_core::error::Cause>) -> StoreError {
    StoreError::Backend(err.into())
}

/// A DynamoDB call that failed: the SDK's error, with its request id, as the cause.
fn sdk_backend<E: std::error::Error + Send + Sync + 'static>(err: SdkError<E, HttpResponse>) -> StoreError {
    backend(dynamo::failed(err))
}

fn av<T: Serialize>(value: T) -> Result<AttributeValue, StoreError> {
    serde_dynamo::to_attribute_value(value).map_err(backend)
}

#[derive(Debug, Clone)]
pub struct DynamoDbPaymentStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoDbPaymentStore {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }
}

#[async_trait]
impl PaymentStore for DynamoDbPaymentStore {
    async fn get(&self, order_id: OrderId) -> Result<Option<Payment>, StoreError> {
        let item: Option<PaymentItem> = dynamo::get_item(&self.client, &self.table, payment_key(order_id), true)
            .await
            .map_err(StoreError::Backend)?;
        Ok(item.map(|i| i.payment))
    }

    async fn create(&self, payment: &Payment) -> Result<Conditional, StoreError> {
        let item = serde_dynamo::to_item(PaymentItem::new(payment)).map_err(backend)?;
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(Conditional::Applied),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => {
                Ok(Conditional::Lost)
            }
            Err(err) => Err(sdk_backend(err)),
        }
    }

    async fn take_lease(
        &self,
        order_id: OrderId,
        status: PaymentStatus,
        lease: &Lease,
        now_ms: i64,
        charging: bool,
    ) -> Result<Option<Payment>, StoreError> {
        let expression = if charging { "SET lease = :lease, provider_contacted = :yes" } else { "SET lease = :lease" };
        let mut expression_values = values([(":lease", av(lease)?), (":status", av(status)?), (":now", av(now_ms)?)]);
        if charging {
            expression_values.insert(":yes".to_owned(), av(true)?);
        }
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(payment_key(order_id)))
            .update_expression(expression)
            .condition_expression("#status = :status AND (attribute_not_exists(lease) OR lease.until_ms <= :now)")
            .set_expression_attribute_names(Some(names([("#status", "status")])))
            .set_expression_attribute_values(Some(expression_values))
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        match result {
            Ok(output) => {
                let before = output.attributes.ok_or_else(|| backend("UpdateItem returned no old item"))?;
                Ok(Some(serde_dynamo::from_item::<_, PaymentItem>(before).map_err(backend)?.payment))
            }
            Err(err) if err.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => Ok(None),
            Err(err) => Err(sdk_backend(err)),
        }
    }

    async fn release_lease(&self, order_id: OrderId, owner: &str, provider_contacted: bool) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(payment_key(order_id)))
            .update_expression("REMOVE lease SET provider_contacted = :contacted")
            .condition_expression("lease.#owner = :owner")
            .set_expression_attribute_names(Some(names([("#owner", "owner")])))
            .set_expression_attribute_values(Some(values([
                (":owner", av(owner)?),
                (":contacted", av(provider_contacted)?),
            ])))
            .send()
            .await;
        match result {
            // Someone took over after the lease expired: theirs now, nothing to give back.
            Err(err) if err.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => Ok(()),
            other => other.map(|_| ()).map_err(sdk_backend),
        }
    }

    async fn transition(
        &self,
        next: &Payment,
        from: PaymentStatus,
        events: &[OutboxEvent],
    ) -> Result<Conditional, StoreError> {
        let pk = payment_pk(next.order_id);
        let mut put =
            dynamo::put(&self.table, &PaymentItem::new(next), "#status = :from", Some(values([(":from", av(from)?)])))
                .map_err(StoreError::Backend)?;
        if let Some(p) = put.put.as_mut() {
            p.expression_attribute_names = Some(names([("#status", "status")]));
        }
        let mut items = vec![put];
        for event in events {
            items.push(dynamo::put_new(&self.table, &OutboxRecord::new(&pk, event)).map_err(StoreError::Backend)?);
        }
        match dynamo::transact(&self.client, items).await {
            Ok(()) => Ok(Conditional::Applied),
            Err(err) => match failed_conditions(&err) {
                Some(failed) if failed.contains(&0) => Ok(Conditional::Lost),
                _ => Err(sdk_backend(err)),
            },
        }
    }
}
