//! Wiring for the Lambda binaries. [`FUNCTIONS`] names each binary's build function; a binary's
//! `main` runs its own ([`shared::function::main`]) and the local host looks the template's
//! binaries up in the table, so both run the same wiring.

use std::sync::Arc;

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_lambda_events::eventbridge::EventBridgeEvent;
use serde_json::Value;
use shared::aws::outbox::Relay;
use shared::aws::saga::TaskOutcome;
use shared::config::{Lookup, required};
use shared::function::{BoxError, EventFunction, Events, Function, SagaWorker, Stream};

use crate::adapters::dynamodb::DynamoDbInventoryStore;
use crate::saga::InventorySagaWorker;
use crate::service::InventoryService;

/// Every function of the inventory service, by the binary the template names.
pub const FUNCTIONS: &[Function] = shared::functions![
    "inventory-api" => api,
    "inventory-outbox-relay" => outbox_relay,
    "inventory-saga-worker" => saga_worker,
    "inventory-order-events" => order_events,
];

/// The inventory service on its table (`INVENTORY_TABLE`): the API and the order-events consumer
/// are this plus their handler.
pub fn build_service(sdk: &SdkConfig, env: Lookup<'_>) -> Result<InventoryService, BoxError> {
    let table = required(env, "INVENTORY_TABLE")?;
    Ok(InventoryService::new(Arc::new(DynamoDbInventoryStore::new(aws_sdk_dynamodb::Client::new(sdk), table))))
}

/// The inventory API on API Gateway (HTTP API, payload v2).
pub async fn api(sdk: &SdkConfig, env: Lookup<'_>) -> Result<axum::Router, BoxError> {
    Ok(crate::http::router(build_service(sdk, env)?))
}

/// The relay on the inventory table stream: outbox events and `StockLow`.
pub async fn outbox_relay(sdk: &SdkConfig, env: Lookup<'_>) -> Result<Stream<Relay>, BoxError> {
    Ok(Relay::new(sdk, env, &crate::relay::extract)?)
}

/// The inventory saga worker: `ReserveInventory` and `ReleaseInventory`.
pub async fn saga_worker(
    sdk: &SdkConfig,
    env: Lookup<'_>,
) -> Result<Events<SagaWorker<InventorySagaWorker>>, BoxError> {
    Ok(SagaWorker::new(sdk, InventorySagaWorker::new(build_service(sdk, env)?)))
}

/// The consumer of `OrderConfirmed` (commit) and `OrderCancelled` (release).
pub async fn order_events(sdk: &SdkConfig, env: Lookup<'_>) -> Result<Events<OrderEvents>, BoxError> {
    Ok(Events(OrderEvents(build_service(sdk, env)?)))
}

/// The order-events consumer as a rule's target.
pub struct OrderEvents(InventoryService);

#[async_trait]
impl EventFunction for OrderEvents {
    async fn invoke(&self, event: EventBridgeEvent<Value>) -> Result<Option<TaskOutcome>, BoxError> {
        crate::order_events::consume_order_event(event, &self.0).await?;
        Ok(None)
    }
}
