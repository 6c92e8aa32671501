//! Wiring for the Lambda binaries: read configuration, build adapters, run the handler.
//! Each binary's `main` calls one function here.

use std::sync::Arc;

use shared::config::{aws_sdk_config, required_env};
use shared::observability::init_tracing;

use aws_lambda_events::eventbridge::EventBridgeEvent;
use lambda_runtime::LambdaEvent;
use serde_json::Value;

use crate::adapters::dynamodb::DynamoDbOrderStore;
use crate::adapters::stepfunctions::StepFunctionsSagaStarter;
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

/// The saga starter: a rule on `OrderCreated` invokes it; it starts one execution per order.
pub async fn run_saga_starter() -> Result<(), BoxError> {
    init_tracing()?;
    let state_machine_arn = required_env("STATE_MACHINE_ARN")?;
    let settings = crate::saga::SagaSettings::from_env()?;
    let config = aws_sdk_config().await;
    let starter = StepFunctionsSagaStarter::new(aws_sdk_sfn::Client::new(&config), state_machine_arn);
    let starter = &starter;
    lambda_runtime::run(lambda_runtime::service_fn(move |event: LambdaEvent<EventBridgeEvent<Value>>| async move {
        crate::saga::start_for_event(event.payload, starter, settings).await.map(|_| ()).map_err(BoxError::from)
    }))
    .await
}

/// The orders saga worker: `ConfirmOrder` and `CancelOrder`.
pub async fn run_saga_worker() -> Result<(), BoxError> {
    init_tracing()?;
    let table = required_env("ORDERS_TABLE")?;
    let config = aws_sdk_config().await;
    let store = DynamoDbOrderStore::new(aws_sdk_dynamodb::Client::new(&config), table);
    shared::saga::run_worker(crate::saga::OrdersSagaWorker::new(OrderService::new(Arc::new(store)))).await
}
