//! Wiring for the Lambda binaries: read configuration, build adapters, run the handler.
//! Each binary's `main` calls one `run_*` function here; the `build` functions are what the local
//! host calls with the function's environment from the template, so both run the same wiring.

use std::sync::Arc;

use aws_config::SdkConfig;
use aws_lambda_events::eventbridge::EventBridgeEvent;
use lambda_runtime::LambdaEvent;
use serde_json::Value;
use shared::config::{Lookup, aws_sdk_config, process_env, required};
use shared::observability::init_tracing;

use crate::adapters::dynamodb::DynamoDbOrderStore;
use crate::adapters::stepfunctions::StepFunctionsSagaStarter;
use crate::saga::{OrdersSagaWorker, SagaSettings, StartError, StartOutcome};
use crate::service::OrderService;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The orders service on its table (`ORDERS_TABLE`).
pub fn build_service(sdk: &SdkConfig, env: Lookup<'_>) -> Result<OrderService, BoxError> {
    let table = required(env, "ORDERS_TABLE")?;
    Ok(OrderService::new(Arc::new(DynamoDbOrderStore::new(aws_sdk_dynamodb::Client::new(sdk), table))))
}

/// The orders API router (`ORDERS_TABLE`).
pub fn build_api(sdk: &SdkConfig, env: Lookup<'_>) -> Result<axum::Router, BoxError> {
    Ok(crate::http::router(build_service(sdk, env)?))
}

/// The saga worker (`ORDERS_TABLE`; `COMPENSATION_RETRY_*` for parked orders).
pub fn build_saga_worker(sdk: &SdkConfig, env: Lookup<'_>) -> Result<OrdersSagaWorker, BoxError> {
    Ok(OrdersSagaWorker::new(build_service(sdk, env)?).with_backoff(crate::parking::Backoff::from_lookup(env)?))
}

/// The compensation sweeper: `ORDERS_TABLE`, `FULFILMENT_STATE_MACHINE_ARN`,
/// `COMPENSATION_STATE_MACHINE_ARN`, the saga's timeouts it passes on, `SAGA_MAX_DURATION_SECONDS`
/// (how long a pending order is left to its saga, 7200 by default) and `COMPENSATION_RETRY_*`.
pub fn build_sweeper(sdk: &SdkConfig, env: Lookup<'_>) -> Result<crate::sweeper::Sweeper, BoxError> {
    let table = required(env, "ORDERS_TABLE")?;
    let store = Arc::new(DynamoDbOrderStore::new(aws_sdk_dynamodb::Client::new(sdk), table));
    let compensations = crate::adapters::compensations::StepFunctionsCompensations::new(
        aws_sdk_sfn::Client::new(sdk),
        required(env, "FULFILMENT_STATE_MACHINE_ARN")?,
        required(env, "COMPENSATION_STATE_MACHINE_ARN")?,
    );
    let mut sweeper = crate::sweeper::Sweeper::new(store.clone(), store, Arc::new(compensations));
    sweeper.backoff = crate::parking::Backoff::from_lookup(env)?;
    sweeper.settings = SagaSettings::from_lookup(env)?;
    let max = shared::config::parsed_or(env, "SAGA_MAX_DURATION_SECONDS", sweeper.saga_max_duration.as_secs())?;
    sweeper.saga_max_duration = std::time::Duration::from_secs(max);
    Ok(sweeper)
}

/// One invocation of the sweeper: the schedule's event or an operator's `{"order_id": ...}`.
pub async fn invoke_sweeper(sweeper: &crate::sweeper::Sweeper, payload: Value) -> Result<Value, BoxError> {
    let input = crate::sweeper::SweeperInput::parse(&payload)?;
    let report = sweeper.handle(input, chrono::Utc::now()).await?;
    Ok(serde_json::to_value(report)?)
}

/// The saga starter: `STATE_MACHINE_ARN`, and the timeouts it passes to each execution.
pub struct SagaStarterFunction {
    starter: StepFunctionsSagaStarter,
    settings: SagaSettings,
}

impl SagaStarterFunction {
    pub async fn handle(&self, event: EventBridgeEvent<Value>) -> Result<StartOutcome, StartError> {
        crate::saga::start_for_event(event, &self.starter, self.settings).await
    }
}

pub fn build_saga_starter(sdk: &SdkConfig, env: Lookup<'_>) -> Result<SagaStarterFunction, BoxError> {
    let state_machine_arn = required(env, "STATE_MACHINE_ARN")?;
    let settings = SagaSettings::from_lookup(env)?;
    let starter = StepFunctionsSagaStarter::new(aws_sdk_sfn::Client::new(sdk), state_machine_arn);
    Ok(SagaStarterFunction { starter, settings })
}

/// The orders API on API Gateway (HTTP API, payload v2).
pub async fn run_api() -> Result<(), BoxError> {
    init_tracing()?;
    lambda_http::run(build_api(&aws_sdk_config().await, &process_env)?).await
}

/// The outbox relay on the orders table stream.
pub async fn run_outbox_relay() -> Result<(), BoxError> {
    shared::outbox::run_relay(&shared::outbox::outbox_only).await
}

/// The saga starter: a rule on `OrderCreated` invokes it; it starts one execution per order.
pub async fn run_saga_starter() -> Result<(), BoxError> {
    init_tracing()?;
    let function = build_saga_starter(&aws_sdk_config().await, &process_env)?;
    let function = &function;
    lambda_runtime::run(lambda_runtime::service_fn(move |event: LambdaEvent<EventBridgeEvent<Value>>| async move {
        function.handle(event.payload).await.map(|_| ()).map_err(BoxError::from)
    }))
    .await
}

/// The orders saga worker: `ConfirmOrder` and `CancelOrder`.
pub async fn run_saga_worker() -> Result<(), BoxError> {
    init_tracing()?;
    shared::saga::run_worker(build_saga_worker(&aws_sdk_config().await, &process_env)?).await
}

/// The compensation sweeper (a schedule invokes it; an operator may, with `{"order_id": ...}`).
pub async fn run_sweeper() -> Result<(), BoxError> {
    init_tracing()?;
    let sweeper = build_sweeper(&aws_sdk_config().await, &process_env)?;
    let sweeper = &sweeper;
    lambda_runtime::run(lambda_runtime::service_fn(move |event: LambdaEvent<Value>| async move {
        invoke_sweeper(sweeper, event.payload).await
    }))
    .await
}
