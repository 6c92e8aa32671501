//! Wiring for the Lambda binaries. Each binary's `main` calls one function here.

use std::sync::Arc;

use shared::config::{aws_sdk_config, required_env};
use shared::observability::init_tracing;

use crate::adapters::dynamodb::DynamoDbInventoryStore;
use crate::service::InventoryService;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The inventory API on API Gateway (HTTP API, payload v2).
pub async fn run_api() -> Result<(), BoxError> {
    init_tracing()?;
    let table = required_env("INVENTORY_TABLE")?;
    let config = aws_sdk_config().await;
    let store = DynamoDbInventoryStore::new(aws_sdk_dynamodb::Client::new(&config), table);
    lambda_http::run(crate::http::router(InventoryService::new(Arc::new(store)))).await
}

/// The relay on the inventory table stream: outbox events and `StockLow`.
pub async fn run_outbox_relay() -> Result<(), BoxError> {
    shared::outbox::run_relay(&crate::relay::extract).await
}
