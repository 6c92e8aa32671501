//! Wiring for the Lambda binaries: read configuration, build adapters, run the handler.
//! Each binary's `main` calls one function here.

use std::sync::Arc;

use lambda_runtime::{LambdaEvent, service_fn};
use shared::config::{aws_sdk_config, required_env};
use shared::observability::init_tracing;
use shared::publisher::EventBridgePublisher;

use crate::adapters::dynamodb::DynamoDbOrderStore;
use crate::service::OrderService;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The orders API on API Gateway (HTTP API, payload v2).
pub async fn run_api() -> Result<(), BoxError> {
    init_tracing()?;
    let table = required_env("ORDERS_TABLE")?;
    let config = aws_sdk_config().await;
    let store = DynamoDbOrderStore::new(aws_sdk_dynamodb::Client::new(&config), table);
    let router = crate::http::router(OrderService::new(Arc::new(store)));
    lambda_http::run(router).await
}

/// The outbox relay on the orders table stream.
pub async fn run_outbox_relay() -> Result<(), BoxError> {
    init_tracing()?;
    let bus = required_env("EVENT_BUS_NAME")?;
    let config = aws_sdk_config().await;
    let publisher = EventBridgePublisher::new(aws_sdk_eventbridge::Client::new(&config), bus);
    let publisher = &publisher;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<aws_lambda_events::dynamodb::Event>| async move {
        Ok::<_, BoxError>(shared::outbox::relay(event.payload, publisher).await)
    }))
    .await
}
