//! Breaker state shared across Lambda instances.
//!
//! A Lambda function runs as many short-lived instances; each one's breaker alone would have to
//! fail `minimum_calls` times before it stops calling a dead dependency. With a shared store, the
//! instance that opens the circuit writes it down, and the others read it before their next call
//! (at most once per `shared_state_refresh`, so the cost is one read per instance per interval,
//! not per call). The store is an accelerator: if it is unreachable, each breaker still works on
//! its own.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SharedState {
    Closed,
    Open { remaining: Duration },
}

#[derive(Debug, thiserror::Error)]
#[error("breaker state store: {}", shared_core::error::chain(.0.as_ref()))]
pub struct StoreError(#[source] pub shared_core::error::Cause);

#[async_trait]
pub trait BreakerStateStore: Send + Sync {
    async fn load(&self, name: &str) -> Result<Option<SharedState>, StoreError>;
    /// Records a change. A write that would undo newer knowledge (close a circuit another
    /// instance re-opened, or shorten an open period) is ignored.
    async fn save(&self, name: &str, state: SharedState) -> Result<(), StoreError>;
}

/// One process's shared state, for tests and the local system. Uses tokio's clock, so paused
/// time in tests applies.
#[derive(Default)]
pub struct InMemoryBreakerStore {
    open_until: Mutex<HashMap<String, tokio::time::Instant>>,
}

impl InMemoryBreakerStore {
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl BreakerStateStore for InMemoryBreakerStore {
    async fn load(&self, name: &str) -> Result<Option<SharedState>, StoreError> {
        let now = tokio::time::Instant::now();
        Ok(self.open_until.lock().unwrap().get(name).map(|until| match until.checked_duration_since(now) {
            Some(remaining) if !remaining.is_zero() => SharedState::Open { remaining },
            _ => SharedState::Closed,
        }))
    }

    async fn save(&self, name: &str, state: SharedState) -> Result<(), StoreError> {
        let now = tokio::time::Instant::now();
        let mut map = self.open_until.lock().unwrap();
        match state {
            SharedState::Open { remaining } => {
                let until = now + remaining;
                let entry = map.entry(name.to_owned()).or_insert(until);
                *entry = (*entry).max(until);
            }
            SharedState::Closed => {
                if map.get(name).is_none_or(|until| *until <= now) {
                    map.remove(name);
                }
            }
        }
        Ok(())
    }
}

/// One item per breaker (`pk = BREAKER#<name>`, `sk = BREAKER`) in the calling service's own
/// table, written conditionally and expiring through the table's TTL (`expires_at`).
#[derive(Debug, Clone)]
pub struct DynamoDbBreakerStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct BreakerItem {
    pk: String,
    sk: String,
    entity: String,
    state: String,
    /// Epoch milliseconds until which the circuit is open (0 when closed).
    open_until_ms: u64,
    expires_at: u64,
}

/// Items outlive their open period by this much, then TTL removes them.
const TTL_MARGIN: Duration = Duration::from_secs(3600);

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

fn key(name: &str) -> HashMap<String, AttributeValue> {
    crate::aws::dynamo::key(format!("BREAKER#{name}"), "BREAKER")
}

impl DynamoDbBreakerStore {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }
}

fn failed(err: impl Into<shared_core::error::Cause>) -> StoreError {
    StoreError(err.into())
}

#[async_trait]
impl BreakerStateStore for DynamoDbBreakerStore {
    async fn load(&self, name: &str) -> Result<Option<SharedState>, StoreError> {
        let item: Option<BreakerItem> =
            crate::aws::dynamo::get_item(&self.client, &self.table, key(name), false).await.map_err(StoreError)?;
        let Some(item) = item else { return Ok(None) };
        let now = now_ms();
        Ok(Some(if item.state == "OPEN" && item.open_until_ms > now {
            SharedState::Open { remaining: Duration::from_millis(item.open_until_ms - now) }
        } else {
            SharedState::Closed
        }))
    }

    async fn save(&self, name: &str, state: SharedState) -> Result<(), StoreError> {
        let now = now_ms();
        let (label, open_until_ms, condition) = match state {
            // Only ever extend an open period.
            SharedState::Open { remaining } => {
                ("OPEN", now + remaining.as_millis() as u64, "attribute_not_exists(pk) OR open_until_ms < :until")
            }
            // Do not close a circuit that another instance holds open.
            SharedState::Closed => ("CLOSED", 0, "attribute_not_exists(pk) OR open_until_ms <= :now"),
        };
        let item = BreakerItem {
            pk: format!("BREAKER#{name}"),
            sk: "BREAKER".into(),
            entity: "BREAKER".into(),
            state: label.into(),
            open_until_ms,
            expires_at: (open_until_ms.max(now) + TTL_MARGIN.as_millis() as u64) / 1000,
        };
        let mut values = HashMap::new();
        match state {
            SharedState::Open { .. } => {
                values.insert(":until".to_owned(), AttributeValue::N(open_until_ms.to_string()))
            }
            SharedState::Closed => values.insert(":now".to_owned(), AttributeValue::N(now.to_string())),
        };
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(serde_dynamo::to_item(&item).map_err(failed)?))
            .condition_expression(condition)
            .set_expression_attribute_values(Some(values))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => {
                tracing::debug!(breaker = name, "newer breaker state already shared");
                Ok(())
            }
            Err(err) => Err(failed(crate::aws::dynamo::failed(err))),
        }
    }
}
