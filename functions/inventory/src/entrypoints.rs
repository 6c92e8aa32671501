//! Wiring for the Lambda binaries. Each binary's `main` calls one function here.

use std::sync::Arc;

use shared::config::{aws_sdk_config, required_env};
use shared::observability::init_tracing;

use aws_lambda_events::eventbridge::EventBridgeEvent;
use lambda_runtime::LambdaEvent;
use serde_json::Value;

use crate::adapters::dynamodb::DynamoDbInventoryStore;
use crate::service::InventoryService;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

async fn service_from_env() -> Result<InventoryService, BoxError> {
    let table = required_env("INVENTORY_TABLE")?;
    let config = aws_sdk_config().await;
    let store = DynamoDbInventoryStore::new(aws_sdk_dynamodb::Client::new(&config), table);
    Ok(InventoryService::new(Arc::new(store)))
}

/// The inventory API on API Gateway (HTTP API, payload v2).
pub async fn run_api() -> Result<(), BoxError> {
    init_tracing()?;
    lambda_http::run(crate::http::router(service_from_env().await?)).await
}

/// The inventory saga worker: `ReserveInventory` and `ReleaseInventory`.
pub async fn run_saga_worker() -> Result<(), BoxError> {
    init_tracing()?;
    shared::saga::run_worker(crate::saga::InventorySagaWorker::new(service_from_env().await?)).await
}

/// The consumer of `OrderConfirmed` (commit) and `OrderCancelled` (release).
pub async fn run_order_events() -> Result<(), BoxError> {
    init_tracing()?;
    let service = service_from_env().await?;
    let service = &service;
    lambda_runtime::run(lambda_runtime::service_fn(move |event: LambdaEvent<EventBridgeEvent<Value>>| async move {
        crate::saga::consume_order_event(event.payload, service).await.map(|_| ()).map_err(BoxError::from)
    }))
    .await
}

/// The relay on the inventory table stream: outbox events and `StockLow`.
pub async fn run_outbox_relay() -> Result<(), BoxError> {
    shared::outbox::run_relay(&crate::relay::extract).await
}
