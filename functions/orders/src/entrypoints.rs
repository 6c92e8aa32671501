//! Wiring for the Lambda binaries: read configuration, build adapters, run the handler.
//! Each binary's `main` calls one function here.

use std::sync::Arc;

use shared::config::{aws_sdk_config, required_env};
use shared::observability::init_tracing;

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
    shared::outbox::run_relay(&shared::outbox::outbox_only).await
}
