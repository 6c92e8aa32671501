//! Wiring for the Lambda binaries: read configuration, build adapters, hand over the handler.
//! [`FUNCTIONS`] names each binary's build function; a binary's `main` runs its own
//! ([`shared::function::main`]) and the local host looks the template's binaries up in the table,
//! so both run the same wiring.

use std::sync::Arc;

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_lambda_events::eventbridge::EventBridgeEvent;
use serde_json::Value;
use shared::aws::outbox::Relay;
use shared::aws::saga::TaskOutcome;
use shared::config::{Lookup, required};
use shared::function::{BoxError, EventFunction, Events, Function, Invoke, InvokeFunction, SagaWorker, Stream};

use crate::adapters::dynamodb::DynamoDbOrderStore;
use crate::adapters::stepfunctions::StepFunctionsSagaStarter;
use crate::saga::{OrdersSagaWorker, SagaSettings, StartError, StartOutcome};
use crate::service::OrderService;

/// Every function of the orders service, by the binary the template names.
pub const FUNCTIONS: &[Function] = shared::functions![
    "orders-api" => api,
    "orders-outbox-relay" => outbox_relay,
    "orders-saga-starter" => saga_starter,
    "orders-saga-worker" => saga_worker,
    "orders-compensation-sweeper" => compensation_sweeper,
];

/// The orders service on its table (`ORDERS_TABLE`).
pub fn build_service(sdk: &SdkConfig, env: Lookup<'_>) -> Result<OrderService, BoxError> {
    let table = required(env, "ORDERS_TABLE")?;
    Ok(OrderService::new(Arc::new(DynamoDbOrderStore::new(aws_sdk_dynamodb::Client::new(sdk), table))))
}

/// The orders API on API Gateway (HTTP API, payload v2): `ORDERS_TABLE`.
pub async fn api(sdk: &SdkConfig, env: Lookup<'_>) -> Result<axum::Router, BoxError> {
    Ok(crate::http::router(build_service(sdk, env)?))
}

/// The outbox relay on the orders table stream (`EVENT_BUS_NAME`).
pub async fn outbox_relay(sdk: &SdkConfig, env: Lookup<'_>) -> Result<Stream<Relay>, BoxError> {
    Ok(Relay::new(sdk, env, &shared::aws::outbox::outbox_only)?)
}

/// The saga starter: a rule on `OrderCreated` invokes it; it starts one execution per order.
pub async fn saga_starter(sdk: &SdkConfig, env: Lookup<'_>) -> Result<Events<SagaStarterFunction>, BoxError> {
    Ok(Events(build_saga_starter(sdk, env)?))
}

/// The orders saga worker: `ConfirmOrder` and `CancelOrder`.
pub async fn saga_worker(sdk: &SdkConfig, env: Lookup<'_>) -> Result<Events<SagaWorker<OrdersSagaWorker>>, BoxError> {
    Ok(SagaWorker::new(sdk, build_saga_worker(sdk, env)?))
}

/// The compensation sweeper (a schedule invokes it; an operator may, with `{"order_id": ...}`).
pub async fn compensation_sweeper(sdk: &SdkConfig, env: Lookup<'_>) -> Result<Invoke<SweeperFunction>, BoxError> {
    Ok(Invoke(SweeperFunction(build_sweeper(sdk, env)?)))
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
        aws_sdk_sfn::Config::new(sdk),
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

/// The sweeper as a function invoked with JSON.
pub struct SweeperFunction(crate::sweeper::Sweeper);

#[async_trait]
impl InvokeFunction for SweeperFunction {
    async fn invoke(&self, payload: Value) -> Result<Value, BoxError> {
        invoke_sweeper(&self.0, payload).await
    }
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

#[async_trait]
impl EventFunction for SagaStarterFunction {
    async fn invoke(&self, event: EventBridgeEvent<Value>) -> Result<Option<TaskOutcome>, BoxError> {
        self.handle(event).await?;
        Ok(None)
    }
}

pub fn build_saga_starter(sdk: &SdkConfig, env: Lookup<'_>) -> Result<SagaStarterFunction, BoxError> {
    let state_machine_arn = required(env, "STATE_MACHINE_ARN")?;
    let settings = SagaSettings::from_lookup(env)?;
    let starter = StepFunctionsSagaStarter::new(aws_sdk_sfn::Client::new(sdk), state_machine_arn);
    Ok(SagaStarterFunction { starter, settings })
}
