//! Wiring for the Lambda binaries. Each binary's `main` calls one function here.

use std::sync::Arc;
use std::time::Duration;

use shared::config::{aws_sdk_config, required_env};
use shared::observability::init_tracing;
use shared::resilience::ServiceClientConfig;

use crate::adapters::dynamodb::DynamoDbPaymentStore;
use crate::adapters::stripe::{ApiKey, StripeProvider};
use crate::service::{LeaseConfig, PaymentService};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Prefix of the provider client's variables (`PAYMENT_PROVIDER_BASE_URL`, `..._TIMEOUT_MS`,
/// breaker and retry settings: see `shared::resilience::client`).
pub const PROVIDER_PREFIX: &str = "PAYMENT_PROVIDER";
/// The Secrets Manager secret (ARN or name) that holds the provider's API key.
pub const PROVIDER_SECRET_VAR: &str = "PAYMENT_PROVIDER_SECRET_ID";

/// The payment service with its DynamoDB store and the Stripe-compatible provider, configured
/// from the environment; the API key is read from Secrets Manager once, here, at cold start.
pub async fn service_from_env(sdk_config: &aws_config::SdkConfig) -> Result<PaymentService, BoxError> {
    let table = required_env("PAYMENTS_TABLE")?;
    let provider_config = ServiceClientConfig::from_env(PROVIDER_PREFIX)?;
    let secret_id = required_env(PROVIDER_SECRET_VAR)?;
    let secrets = aws_sdk_secretsmanager::Client::new(sdk_config);
    let api_key = ApiKey::from_secrets_manager(&secrets, &secret_id).await?;
    let provider = StripeProvider::new(&provider_config, api_key)?;
    let store = DynamoDbPaymentStore::new(aws_sdk_dynamodb::Client::new(sdk_config), table);
    // A lease outlives the provider call it covers, so a live caller never loses it.
    let lease =
        LeaseConfig { duration: provider_config.overall_timeout + Duration::from_secs(5), ..LeaseConfig::default() };
    Ok(PaymentService::new(Arc::new(store), Arc::new(provider), lease))
}

/// The payments API on API Gateway (HTTP API, payload v2). Read-only: it never calls the
/// provider, so it has no API key.
pub async fn run_api() -> Result<(), BoxError> {
    init_tracing()?;
    let table = required_env("PAYMENTS_TABLE")?;
    let config = aws_sdk_config().await;
    let store = DynamoDbPaymentStore::new(aws_sdk_dynamodb::Client::new(&config), table);
    lambda_http::run(crate::http::router(PaymentService::read_only(Arc::new(store)))).await
}

/// The outbox relay on the payments table stream.
pub async fn run_outbox_relay() -> Result<(), BoxError> {
    shared::outbox::run_relay(&shared::outbox::outbox_only).await
}

/// The payments saga worker: `ProcessPayment` and `RefundPayment`. The only function with the
/// provider's API key.
pub async fn run_saga_worker() -> Result<(), BoxError> {
    init_tracing()?;
    let config = aws_sdk_config().await;
    let service = service_from_env(&config).await?;
    shared::saga::run_worker(crate::saga::PaymentsSagaWorker::new(service)).await
}
