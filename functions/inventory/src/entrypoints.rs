//! Wiring for the Lambda binaries. Each binary's `main` calls one `run_*` function here; the
//! `build` functions are what the local host calls with the function's environment from the
//! template, so both run the same wiring.

use std::sync::Arc;

use aws_config::SdkConfig;
use aws_lambda_events::eventbridge::EventBridgeEvent;
use lambda_runtime::LambdaEvent;
use serde_json::Value;
use shared::config::{Lookup, aws_sdk_config, process_env, required};
use shared::observability::init_tracing;

use crate::adapters::dynamodb::DynamoDbInventoryStore;
use crate::saga::InventorySagaWorker;
use crate::service::InventoryService;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The inventory service on its table (`INVENTORY_TABLE`): the API and the order-events consumer
/// are this plus their handler.
pub fn build_service(sdk: &SdkConfig, env: Lookup<'_>) -> Result<InventoryService, BoxError> {
    let table = required(env, "INVENTORY_TABLE")?;
    Ok(InventoryService::new(Arc::new(DynamoDbInventoryStore::new(aws_sdk_dynamodb::Client::new(sdk), table))))
}

pub fn build_api(sdk: &SdkConfig, env: Lookup<'_>) -> Result<axum::Router, BoxError> {
    Ok(crate::http::router(build_service(sdk, env)?))
}

pub fn build_saga_worker(sdk: &SdkConfig, env: Lookup<'_>) -> Result<InventorySagaWorker, BoxError> {
    Ok(InventorySagaWorker::new(build_service(sdk, env)?))
}

/// The inventory API on API Gateway (HTTP API, payload v2).
pub async fn run_api() -> Result<(), BoxError> {
    init_tracing()?;
    lambda_http::run(build_api(&aws_sdk_config().await, &process_env)?).await
}

/// The relay on the inventory table stream: outbox events and `StockLow`.
pub async fn run_outbox_relay() -> Result<(), BoxError> {
    shared::outbox::run_relay(&crate::relay::extract).await
}

/// The inventory saga worker: `ReserveInventory` and `ReleaseInventory`.
pub async fn run_saga_worker() -> Result<(), BoxError> {
    init_tracing()?;
    shared::saga::run_worker(build_saga_worker(&aws_sdk_config().await, &process_env)?).await
}

/// The consumer of `OrderConfirmed` (commit) and `OrderCancelled` (release).
pub async fn run_order_events() -> Result<(), BoxError> {
    init_tracing()?;
    let service = build_service(&aws_sdk_config().await, &process_env)?;
    let service = &service;
    lambda_runtime::run(lambda_runtime::service_fn(move |event: LambdaEvent<EventBridgeEvent<Value>>| async move {
        crate::saga::consume_order_event(event.payload, service).await.map(|_| ()).map_err(BoxError::from)
    }))
    .await
}
