//! The code behind each binary the template names, built with the function's environment
//! through the same `build_*` wiring its Lambda `main` uses. This is the one place that links a
//! binary name to code; which function runs it, with which environment and triggers, comes from
//! the template.

use std::sync::Arc;

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_lambda_events::dynamodb::Event as StreamEvent;
use aws_lambda_events::eventbridge::EventBridgeEvent;
use aws_lambda_events::streams::DynamoDbEventResponse;
use serde_json::Value;
use shared::config::Lookup;
use shared::outbox::Extractor;
use shared::publisher::EventBridgePublisher;
use shared::saga::{CommandHandler, SfnTaskReporter, TaskOutcome};

/// A function invoked with EventBridge events (a rule's target).
#[async_trait]
pub trait EventFunction: Send + Sync {
    /// `Ok(Some(outcome))` for a saga command: the answer the saga got.
    async fn invoke(&self, event: EventBridgeEvent<Value>) -> Result<Option<TaskOutcome>, String>;
}

/// A function invoked with batches of a DynamoDB stream.
#[async_trait]
pub trait StreamFunction: Send + Sync {
    async fn invoke(&self, event: StreamEvent) -> DynamoDbEventResponse;
}

/// A function invoked with any JSON payload (a schedule's event, or an operator's `aws lambda
/// invoke`), answering JSON.
#[async_trait]
pub trait InvokeFunction: Send + Sync {
    async fn invoke(&self, payload: Value) -> Result<Value, String>;
}

pub enum Handler {
    Http(axum::Router),
    Events(Arc<dyn EventFunction>),
    Stream(Arc<dyn StreamFunction>),
    Invoke(Arc<dyn InvokeFunction>),
}

struct Sweeper(orders::sweeper::Sweeper);

#[async_trait]
impl InvokeFunction for Sweeper {
    async fn invoke(&self, payload: Value) -> Result<Value, String> {
        orders::entrypoints::invoke_sweeper(&self.0, payload).await.map_err(|e| e.to_string())
    }
}

struct SagaWorker<W> {
    worker: W,
    reporter: SfnTaskReporter,
}

#[async_trait]
impl<W: CommandHandler> EventFunction for SagaWorker<W> {
    async fn invoke(&self, event: EventBridgeEvent<Value>) -> Result<Option<TaskOutcome>, String> {
        shared::saga::dispatch(event, &self.worker, &self.reporter).await.map(Some).map_err(|e| e.to_string())
    }
}

fn saga_worker<W: CommandHandler + 'static>(sdk: &SdkConfig, worker: W) -> Handler {
    Handler::Events(Arc::new(SagaWorker { worker, reporter: SfnTaskReporter::new(aws_sdk_sfn::Client::new(sdk)) }))
}

struct SagaStarter(orders::entrypoints::SagaStarterFunction);

#[async_trait]
impl EventFunction for SagaStarter {
    async fn invoke(&self, event: EventBridgeEvent<Value>) -> Result<Option<TaskOutcome>, String> {
        self.0.handle(event).await.map(|_| None).map_err(|e| e.to_string())
    }
}

struct OrderEvents(inventory::service::InventoryService);

#[async_trait]
impl EventFunction for OrderEvents {
    async fn invoke(&self, event: EventBridgeEvent<Value>) -> Result<Option<TaskOutcome>, String> {
        inventory::saga::consume_order_event(event, &self.0).await.map(|_| None).map_err(|e| e.to_string())
    }
}

struct Relay {
    publisher: EventBridgePublisher,
    extract: &'static Extractor,
}

#[async_trait]
impl StreamFunction for Relay {
    async fn invoke(&self, event: StreamEvent) -> DynamoDbEventResponse {
        shared::outbox::relay_with(event, &self.publisher, self.extract).await
    }
}

fn relay(sdk: &SdkConfig, env: Lookup<'_>, extract: &'static Extractor) -> Result<Handler, String> {
    let publisher = shared::outbox::relay_publisher(sdk, env).map_err(|e| e.to_string())?;
    Ok(Handler::Stream(Arc::new(Relay { publisher, extract })))
}

/// Builds the handler of `binary` as its Lambda would at cold start, with `env` as its
/// environment.
pub async fn build(binary: &str, sdk: &SdkConfig, env: Lookup<'_>) -> Result<Handler, String> {
    let e = |err: Box<dyn std::error::Error + Send + Sync>| format!("{binary}: {err}");
    Ok(match binary {
        "orders-api" => Handler::Http(orders::entrypoints::build_api(sdk, env).map_err(e)?),
        "orders-outbox-relay" => relay(sdk, env, &shared::outbox::outbox_only)?,
        "orders-saga-starter" => {
            Handler::Events(Arc::new(SagaStarter(orders::entrypoints::build_saga_starter(sdk, env).map_err(e)?)))
        }
        "orders-saga-worker" => saga_worker(sdk, orders::entrypoints::build_saga_worker(sdk, env).map_err(e)?),
        "orders-compensation-sweeper" => {
            Handler::Invoke(Arc::new(Sweeper(orders::entrypoints::build_sweeper(sdk, env).map_err(e)?)))
        }
        "inventory-api" => Handler::Http(inventory::entrypoints::build_api(sdk, env).map_err(e)?),
        "inventory-outbox-relay" => relay(sdk, env, &inventory::relay::extract)?,
        "inventory-saga-worker" => saga_worker(sdk, inventory::entrypoints::build_saga_worker(sdk, env).map_err(e)?),
        "inventory-order-events" => {
            Handler::Events(Arc::new(OrderEvents(inventory::entrypoints::build_service(sdk, env).map_err(e)?)))
        }
        "payments-api" => Handler::Http(payments::entrypoints::build_api(sdk, env).map_err(e)?),
        "payments-outbox-relay" => relay(sdk, env, &shared::outbox::outbox_only)?,
        "payments-saga-worker" => {
            saga_worker(sdk, payments::entrypoints::build_saga_worker(sdk, env).await.map_err(e)?)
        }
        "gateway-api" => {
            // Signed as in AWS: the local host checks the signature of AWS_IAM routes (sigv4.rs).
            let signer = shared::resilience::SigV4::execute_api(sdk);
            let state_machine_arn =
                shared::config::required(env, "STATE_MACHINE_ARN").map_err(|e| format!("{binary}: {e}"))?;
            let saga = gateway::saga::StepFunctionsProgress::new(aws_sdk_sfn::Client::new(sdk), state_machine_arn);
            let upstreams = gateway::upstream::Upstreams::from_lookup(env, signer)
                .map_err(|e| format!("{binary}: {e}"))?
                .with_saga(std::sync::Arc::new(saga));
            let legacy = gateway::legacy::Legacy::from_lookup(env).map_err(|e| format!("{binary}: {e}"))?;
            Handler::Http(gateway::http::router(upstreams, legacy))
        }
        other => return Err(format!("the local host has no code for the binary `{other}`")),
    })
}
