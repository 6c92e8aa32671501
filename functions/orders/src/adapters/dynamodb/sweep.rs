//! The sweep index on DynamoDB: a sparse GSI (`sweep`, keys only) on `sweep_pk` / `sweep_sk`,
//! which only pending and parked orders carry, so it holds exactly the orders someone must still
//! settle. GSI reads are eventually consistent: the sweeper reads each order again before acting.
//! <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/bp-indexes-general-sparse-indexes.html>

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use shared_core::OrderId;

use super::{DynamoDbOrderStore, backend, sdk_backend};
use crate::parking::{Queue, due_bound, shard_key};
use crate::ports::StoreError;
use crate::sweeper::SweepIndex;

pub const SWEEP_INDEX: &str = "sweep";

#[async_trait]
impl SweepIndex for DynamoDbOrderStore {
    async fn due(
        &self,
        queue: Queue,
        shard: u8,
        until: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<OrderId>, StoreError> {
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(SWEEP_INDEX)
            .key_condition_expression("sweep_pk = :queue AND sweep_sk <= :due")
            .expression_attribute_values(":queue", AttributeValue::S(shard_key(queue, shard)))
            .expression_attribute_values(":due", AttributeValue::S(due_bound(until)))
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(sdk_backend)?;
        output
            .items()
            .iter()
            .map(|item| {
                let pk = item.get("pk").and_then(|v| v.as_s().ok()).map(String::as_str).unwrap_or_default();
                pk.strip_prefix("ORDER#")
                    .and_then(OrderId::parse)
                    .ok_or_else(|| backend(format!("the sweep index holds {pk:?}, not an order")))
            })
            .collect()
    }
}
