//! One way to be a Lambda function: a build function that makes the function's handler from the
//! SDK configuration and the environment, a table of them per service, and one `main` for every
//! binary.
//!
//! Each service exports `FUNCTIONS` ([`functions!`]): binary name and build function. A binary's
//! `main` is `shared::function::main(service::entrypoints::x)`: tracing, the SDK configuration
//! for Lambda, the process environment, the build function, then `lambda_http::run` or
//! `lambda_runtime::run` by the kind of handler it built ([`Serve`]). The local host looks each
//! binary of the template up in the same tables and invokes the same handler in-process
//! ([`Handler`]), so the code Lambda runs and the code the local system runs are built one way.
//!
//! The kind is in the build function's return type, so a binary links only its own runner: a
//! relay does not carry `lambda_http`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
pub use aws_config::SdkConfig;
use aws_lambda_events::dynamodb::Event as StreamEvent;
use aws_lambda_events::eventbridge::EventBridgeEvent;
use aws_lambda_events::streams::DynamoDbEventResponse;
use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;

use crate::aws::saga::{CommandHandler, SfnTaskReporter, TaskOutcome};
use crate::config::Lookup;

/// What a build function or a handler fails with: the same boxed error a store keeps as its cause.
pub type BoxError = shared_core::error::Cause;

/// A function invoked with EventBridge events: a rule's target (a saga worker, a consumer).
#[async_trait]
pub trait EventFunction: Send + Sync {
    /// `Ok(Some(outcome))` for a saga command: the answer the saga got on its task token.
    async fn invoke(&self, event: EventBridgeEvent<Value>) -> Result<Option<TaskOutcome>, BoxError>;
}

/// A function invoked with batches of a DynamoDB stream; failures are reported per item.
#[async_trait]
pub trait StreamFunction: Send + Sync {
    async fn invoke(&self, event: StreamEvent) -> DynamoDbEventResponse;
}

/// A function invoked with any JSON payload (a schedule's event, an operator's `aws lambda
/// invoke`), answering JSON.
#[async_trait]
pub trait InvokeFunction: Send + Sync {
    async fn invoke(&self, payload: Value) -> Result<Value, BoxError>;
}

/// A built function, whatever its kind: what the local host invokes.
pub enum Handler {
    Http(axum::Router),
    Events(Arc<dyn EventFunction>),
    Stream(Arc<dyn StreamFunction>),
    Invoke(Arc<dyn InvokeFunction>),
}

/// An [`EventFunction`] as a build function's answer.
pub struct Events<F>(pub F);
/// A [`StreamFunction`] as a build function's answer.
pub struct Stream<F>(pub F);
/// An [`InvokeFunction`] as a build function's answer.
pub struct Invoke<F>(pub F);

/// What a build function may answer: run under the Lambda runtime, or handed to the local host.
pub trait Serve: Sized + Send + Sync + 'static {
    /// Runs the function under the Lambda Runtime API until the process ends.
    fn serve(self) -> impl Future<Output = Result<(), BoxError>>;
    fn into_handler(self) -> Handler;
}

impl Serve for axum::Router {
    async fn serve(self) -> Result<(), BoxError> {
        lambda_http::run(self).await
    }
    fn into_handler(self) -> Handler {
        Handler::Http(self)
    }
}

impl<F: EventFunction + 'static> Serve for Events<F> {
    async fn serve(self) -> Result<(), BoxError> {
        let function = &self.0;
        lambda_runtime::run(service_fn(move |event: LambdaEvent<EventBridgeEvent<Value>>| async move {
            function.invoke(event.payload).await.map(|_| ())
        }))
        .await
    }
    fn into_handler(self) -> Handler {
        Handler::Events(Arc::new(self.0))
    }
}

impl<F: StreamFunction + 'static> Serve for Stream<F> {
    async fn serve(self) -> Result<(), BoxError> {
        let function = &self.0;
        lambda_runtime::run(service_fn(move |event: LambdaEvent<StreamEvent>| async move {
            Ok::<_, BoxError>(function.invoke(event.payload).await)
        }))
        .await
    }
    fn into_handler(self) -> Handler {
        Handler::Stream(Arc::new(self.0))
    }
}

impl<F: InvokeFunction + 'static> Serve for Invoke<F> {
    async fn serve(self) -> Result<(), BoxError> {
        let function = &self.0;
        lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| function.invoke(event.payload))).await
    }
    fn into_handler(self) -> Handler {
        Handler::Invoke(Arc::new(self.0))
    }
}

/// A saga worker as an [`EventFunction`]: each command is handled by `worker` and answered on
/// its task token through Step Functions ([`crate::aws::saga::dispatch`]).
pub struct SagaWorker<W> {
    worker: W,
    reporter: SfnTaskReporter,
}

impl<W: CommandHandler> SagaWorker<W> {
    pub fn new(sdk: &SdkConfig, worker: W) -> Events<Self> {
        Events(Self { worker, reporter: SfnTaskReporter::new(aws_sdk_sfn::Client::new(sdk)) })
    }
}

#[async_trait]
impl<W: CommandHandler> EventFunction for SagaWorker<W> {
    async fn invoke(&self, event: EventBridgeEvent<Value>) -> Result<Option<TaskOutcome>, BoxError> {
        Ok(Some(crate::aws::saga::dispatch(event, &self.worker, &self.reporter).await?))
    }
}

/// The boxed future of a build function in a table.
pub type Built<'a> = Pin<Box<dyn Future<Output = Result<Handler, BoxError>> + Send + 'a>>;

/// One function of a service: the binary the template names (`Metadata.BuildProperties.Binary`)
/// and how it is built.
#[derive(Clone, Copy)]
pub struct Function {
    pub binary: &'static str,
    pub build: for<'a> fn(&'a SdkConfig, Lookup<'a>) -> Built<'a>,
}

impl std::fmt::Debug for Function {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Function").field("binary", &self.binary).finish_non_exhaustive()
    }
}

/// A service's table of functions: `functions!["orders-api" => api, ...]`, each build function an
/// `async fn(&SdkConfig, Lookup<'_>) -> Result<impl Serve, BoxError>`.
#[macro_export]
macro_rules! functions {
    ($($binary:literal => $build:path),+ $(,)?) => {
        &[$($crate::function::Function {
            binary: $binary,
            build: {
                fn build<'a>(
                    sdk: &'a $crate::function::SdkConfig,
                    env: $crate::config::Lookup<'a>,
                ) -> $crate::function::Built<'a> {
                    ::std::boxed::Box::pin(async move {
                        ::std::result::Result::Ok($crate::function::Serve::into_handler($build(sdk, env).await?))
                    })
                }
                build
            },
        }),+]
    };
}

/// The `main` of every function binary: JSON logs ([`crate::observability::init_tracing`]), the
/// SDK configuration Lambda gives the function ([`crate::config::aws_sdk_config`]), `build` with
/// the process environment, then the Lambda runtime for the kind of handler built. A
/// configuration error stops the cold start with a message naming the variable.
pub fn main<S: Serve>(build: impl AsyncFnOnce(&SdkConfig, Lookup<'_>) -> Result<S, BoxError>) -> Result<(), BoxError> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(async {
        crate::observability::init_tracing()?;
        let sdk = crate::config::aws_sdk_config().await;
        build(&sdk, &crate::config::process_env).await?.serve().await
    })
}
