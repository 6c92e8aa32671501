//! DynamoDB helpers every store adapter needs: transactions that survive collisions, telling
//! which transaction item's condition failed, and conditional puts of serde items.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::RequestId;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use serde::Serialize;
use shared_core::error::Cause;

pub type TransactError = SdkError<TransactWriteItemsError, aws_sdk_dynamodb::config::http::HttpResponse>;

/// DynamoDB accepts at most 100 items in one TransactWriteItems.
pub const MAX_TRANSACTION_ITEMS: usize = 100;
// An order is reserved in one transaction: a stock update per line, the reservation, its event.
const _: () = assert!(shared_core::validation::MAX_ORDER_LINES + 2 <= MAX_TRANSACTION_ITEMS);
const TRANSACTION_ATTEMPTS: u32 = 3;

/// A DynamoDB call that failed, as a store error's cause: the SDK's error itself (its `source`),
/// named with the id DynamoDB gave the request (what AWS support and CloudTrail ask for).
#[derive(Debug)]
pub struct Failed {
    request_id: Option<String>,
    error: Cause,
}

impl Failed {
    pub fn request_id(&self) -> Option<&str> {
        self.request_id.as_deref()
    }
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.request_id {
            Some(id) => write!(f, "DynamoDB request {id}"),
            None => f.write_str("DynamoDB request (no request id: it got no answer)"),
        }
    }
}

impl std::error::Error for Failed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.error.as_ref())
    }
}

/// The SDK's error of a DynamoDB call, with its request id, as a [`Cause`].
pub fn failed<E: std::error::Error + Send + Sync + 'static>(err: SdkError<E, HttpResponse>) -> Failed {
    Failed { request_id: err.request_id().map(str::to_owned), error: Box::new(err) }
}

/// A `Put` of `item` (serialised with serde_dynamo) guarded by `condition`.
pub fn put<T: Serialize>(
    table: &str,
    item: &T,
    condition: &str,
    values: Option<HashMap<String, AttributeValue>>,
) -> Result<TransactWriteItem, Cause> {
    let put = Put::builder()
        .table_name(table)
        .set_item(Some(serde_dynamo::to_item(item)?))
        .condition_expression(condition)
        .set_expression_attribute_values(values)
        .build()?;
    Ok(TransactWriteItem::builder().put(put).build())
}

/// A `Put` that only creates: it fails if an item with the same key exists.
pub fn put_new<T: Serialize>(table: &str, item: &T) -> Result<TransactWriteItem, Cause> {
    put(table, item, "attribute_not_exists(pk)", None)
}

/// Indexes of the transaction items whose condition failed, if the transaction was cancelled.
pub fn failed_conditions(err: &TransactError) -> Option<Vec<usize>> {
    let TransactWriteItemsError::TransactionCanceledException(cancelled) = err.as_service_error()? else {
        return None;
    };
    Some(
        cancelled
            .cancellation_reasons()
            .iter()
            .enumerate()
            .filter(|(_, r)| r.code() == Some("ConditionalCheckFailed"))
            .map(|(i, _)| i)
            .collect(),
    )
}

/// True when DynamoDB cancelled the transaction because another one touched the same items at
/// the same moment: worth trying again, the conditions will then decide.
fn is_transaction_conflict(err: &TransactError) -> bool {
    match err.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => {
            cancelled.cancellation_reasons().iter().any(|r| r.code() == Some("TransactionConflict"))
        }
        _ => false,
    }
}

/// Runs a transaction, trying again after a short jittered pause when it collided with a
/// concurrent one.
pub async fn transact(client: &aws_sdk_dynamodb::Client, items: Vec<TransactWriteItem>) -> Result<(), TransactError> {
    let mut attempt = 1;
    loop {
        match client.transact_write_items().set_transact_items(Some(items.clone())).send().await {
            Ok(_) => return Ok(()),
            Err(err) if attempt < TRANSACTION_ATTEMPTS && is_transaction_conflict(&err) => {
                tracing::warn!(attempt, "transaction conflict, retrying");
                let pause = Duration::from_millis(20 * u64::from(attempt)).mul_f64(0.5 + fastrand::f64());
                tokio::time::sleep(pause).await;
                attempt += 1;
            }
            Err(err) => return Err(err),
        }
    }
}

/// Reads one item and deserialises it with serde_dynamo; `None` when there is no such item.
pub async fn get_item<T: serde::de::DeserializeOwned>(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    key: HashMap<String, AttributeValue>,
    consistent: bool,
) -> Result<Option<T>, Cause> {
    let output = client
        .get_item()
        .table_name(table)
        .set_key(Some(key))
        .consistent_read(consistent)
        .send()
        .await
        .map_err(failed)?;
    Ok(output.item.map(serde_dynamo::from_item).transpose()?)
}

/// The key of an item in a table keyed by `pk` and `sk`.
pub fn key(pk: impl Into<String>, sk: impl Into<String>) -> HashMap<String, AttributeValue> {
    HashMap::from([("pk".to_owned(), AttributeValue::S(pk.into())), ("sk".to_owned(), AttributeValue::S(sk.into()))])
}

/// Expression attribute values by placeholder (`:q`, ...).
pub fn values<const N: usize>(pairs: [(&str, AttributeValue); N]) -> HashMap<String, AttributeValue> {
    pairs.into_iter().map(|(name, value)| (name.to_owned(), value)).collect()
}

/// Expression attribute names by placeholder (`#status`, ...), for reserved words.
pub fn names<const N: usize>(pairs: [(&str, &str); N]) -> HashMap<String, String> {
    pairs.into_iter().map(|(placeholder, name)| (placeholder.to_owned(), name.to_owned())).collect()
}
