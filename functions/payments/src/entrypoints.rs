//! Wiring for the Lambda binaries. [`FUNCTIONS`] names each binary's build function; a binary's
//! `main` runs its own ([`shared::function::main`]) and the local host looks the template's
//! binaries up in the table, so both run the same wiring.

use std::sync::Arc;
use std::time::Duration;

use aws_config::SdkConfig;
use shared::aws::outbox::Relay;
use shared::config::{Lookup, parsed_or, required};
use shared::function::{BoxError, Events, Function, SagaWorker, Stream};
use shared::resilience::ServiceClientConfig;
use shared::resilience::store::DynamoDbBreakerStore;

use crate::adapters::dynamodb::DynamoDbPaymentStore;
use crate::adapters::provider_key::{DEFAULT_SECRET_TTL, ProviderKey};
use crate::adapters::stripe::StripeProvider;
use crate::saga::PaymentsSagaWorker;
use crate::service::{LeaseConfig, PaymentService};

/// Every function of the payments service, by the binary the template names.
pub const FUNCTIONS: &[Function] = shared::functions![
    "payments-api" => api,
    "payments-outbox-relay" => outbox_relay,
    "payments-saga-worker" => saga_worker,
];

/// Prefix of the provider client's variables (`PAYMENT_PROVIDER_BASE_URL`, `..._TIMEOUT_MS`,
/// breaker and retry settings: see `shared::resilience::client`).
pub const PROVIDER_PREFIX: &str = "PAYMENT_PROVIDER";
/// The Secrets Manager secret (ARN or name) that holds the provider's API key.
pub const PROVIDER_SECRET_VAR: &str = "PAYMENT_PROVIDER_SECRET_ID";
/// Seconds a key read from the secret is used before it is read again.
pub const PROVIDER_SECRET_TTL_VAR: &str = "PAYMENT_PROVIDER_SECRET_TTL_SECONDS";

/// The payment service with its DynamoDB store and the Stripe-compatible provider. The API key
/// is not read here: the provider reads the secret on its first call and again after
/// `PAYMENT_PROVIDER_SECRET_TTL_SECONDS` (default 300) or a 401 ([`ProviderKey`]), so nothing
/// slows the cold start and a rotated key is picked up by running instances.
pub async fn build_service(sdk: &SdkConfig, env: Lookup<'_>) -> Result<PaymentService, BoxError> {
    // One DynamoDB client (one connection pool) for the payments and the breaker's state: each
    // client built costs cold-start time.
    let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
    let table = required(env, "PAYMENTS_TABLE")?;
    let store = DynamoDbPaymentStore::new(dynamodb.clone(), table.clone());
    let provider_config = ServiceClientConfig::from_lookup(PROVIDER_PREFIX, env)?;
    let secret_id = required(env, PROVIDER_SECRET_VAR)?;
    let ttl = parsed_or(env, PROVIDER_SECRET_TTL_VAR, DEFAULT_SECRET_TTL.as_secs())?;
    let key = ProviderKey::secrets_manager(sdk, secret_id, Duration::from_secs(ttl));
    // The provider's breaker is shared by every instance through the payments table: once one
    // instance opens it, the others stop calling a provider that is down at their next read
    // (README, "The payments service").
    let breaker_state = DynamoDbBreakerStore::new(dynamodb, table);
    let policy = provider_config.policy_sharing_breaker(Arc::new(breaker_state))?;
    let provider = StripeProvider::with_policy(provider_config.base_url.clone(), key, policy);
    // A lease outlives the provider call it covers, so a live caller never loses it.
    let lease =
        LeaseConfig { duration: provider_config.overall_timeout + Duration::from_secs(5), ..LeaseConfig::default() };
    Ok(PaymentService::new(Arc::new(store), Arc::new(provider), lease))
}

/// The payments API on API Gateway (HTTP API, payload v2): read-only, it never calls the
/// provider, so it has no API key.
pub async fn api(sdk: &SdkConfig, env: Lookup<'_>) -> Result<axum::Router, BoxError> {
    let store = DynamoDbPaymentStore::new(aws_sdk_dynamodb::Client::new(sdk), required(env, "PAYMENTS_TABLE")?);
    Ok(crate::http::router(PaymentService::read_only(Arc::new(store))))
}

/// The outbox relay on the payments table stream.
pub async fn outbox_relay(sdk: &SdkConfig, env: Lookup<'_>) -> Result<Stream<Relay>, BoxError> {
    Ok(Relay::new(sdk, env, &shared::aws::outbox::outbox_only)?)
}

/// The payments saga worker: `ProcessPayment` and `RefundPayment`. The only function with the
/// provider's API key.
pub async fn saga_worker(sdk: &SdkConfig, env: Lookup<'_>) -> Result<Events<SagaWorker<PaymentsSagaWorker>>, BoxError> {
    Ok(SagaWorker::new(sdk, PaymentsSagaWorker::new(build_service(sdk, env).await?)))
}
