//! The payment provider over Stripe's HTTP API (or anything that speaks its subset: the repo's
//! simulator, `localstripe`).
//!
//! - A charge is one `POST /v1/payment_intents` with `confirm=true` (create and confirm in one
//!   request); a refund is `POST /v1/refunds`. Both are form-encoded, as Stripe's API is, and
//!   carry the `Idempotency-Key` the service derived from the order and the step.
//! - Every call goes through the shared [`Policy`]: overall and attempt timeouts, retry with
//!   backoff and jitter (safe: every call has an idempotency key), a circuit breaker and a
//!   bulkhead. A decline (HTTP 402) is a final answer from a healthy provider: never retried, never
//!   counted against the breaker. 5xx, 429, timeouts and transport errors are transient; 409 (the
//!   same key is still being processed) is retried without counting as a failure; a
//!   `Stripe-Should-Retry: false` answer is not retried.
//! - The API key comes from Secrets Manager at cold start ([`ApiKey::from_secrets_manager`]).

use std::sync::atomic::{AtomicU32, Ordering};

use async_trait::async_trait;
use http::StatusCode;
use serde_json::Value;
use shared::resilience::{CallError, HttpError, HttpReply, Idempotency, Policy, ServiceClientConfig, Verdict};

use crate::domain::Decline;
use crate::ports::{ChargeOutcome, PaymentProvider, ProviderCharge, ProviderError, ProviderRefund};

/// The provider's secret API key. Never printed.
#[derive(Clone)]
pub struct ApiKey(String);

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read secret {secret_id} from Secrets Manager: {reason}")]
    Unreadable { secret_id: String, reason: String },
    #[error("secret {secret_id} holds no API key (expected a string, or JSON with an `api_key` field)")]
    Empty { secret_id: String },
}

impl ApiKey {
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    /// The key itself: for setting up a local provider that must accept it, never for logs.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Reads the key from a Secrets Manager secret: either the bare key, or a JSON object with an
    /// `api_key` field (the shape `GenerateSecretString` produces in the template).
    pub async fn from_secrets_manager(
        client: &aws_sdk_secretsmanager::Client,
        secret_id: &str,
    ) -> Result<Self, SecretError> {
        let output =
            client.get_secret_value().secret_id(secret_id).send().await.map_err(|e| SecretError::Unreadable {
                secret_id: secret_id.to_owned(),
                reason: aws_sdk_secretsmanager::error::DisplayErrorContext(e).to_string(),
            })?;
        let raw = output.secret_string().unwrap_or_default().trim();
        let key = match serde_json::from_str::<Value>(raw) {
            Ok(Value::Object(fields)) => fields.get("api_key").and_then(Value::as_str).unwrap_or_default().to_owned(),
            _ => raw.to_owned(),
        };
        if key.trim().is_empty() {
            return Err(SecretError::Empty { secret_id: secret_id.to_owned() });
        }
        Ok(Self(key))
    }
}

#[derive(Debug, Clone)]
pub struct StripeProvider {
    http: reqwest::Client,
    base_url: String,
    api_key: ApiKey,
    policy: Policy,
}

/// How a Stripe error answer is judged (see the module docs).
pub fn stripe_verdict(err: &HttpError) -> Verdict {
    if let HttpError::Status { status, headers, .. } = err {
        if headers.get("stripe-should-retry").and_then(|v| v.to_str().ok()) == Some("false") {
            return Verdict { failure: status.is_server_error(), retryable: false, retry_after: None };
        }
        if *status == StatusCode::CONFLICT {
            return Verdict { failure: false, retryable: true, retry_after: None };
        }
    }
    err.verdict()
}

fn error_body(body: &[u8]) -> Value {
    serde_json::from_slice::<Value>(body).ok().and_then(|v| v.get("error").cloned()).unwrap_or(Value::Null)
}

fn error_message(err: &HttpError) -> String {
    match err {
        HttpError::Status { status, body, .. } => match error_body(body).get("message").and_then(Value::as_str) {
            Some(message) => format!("HTTP {status}: {message}"),
            None => format!("HTTP {status}"),
        },
        HttpError::Transport(e) => format!("transport: {e}"),
    }
}

/// What a failed call means for the payment. `attempts`: how many requests were sent.
fn provider_error(err: CallError<HttpError>, attempts: u32) -> ProviderError {
    if attempts == 0 {
        return ProviderError::NotSent(err.to_string());
    }
    match err {
        CallError::Inner(inner) => {
            let message = error_message(&inner);
            match &inner {
                HttpError::Status { status, .. }
                    if status.is_client_error()
                        && ![StatusCode::CONFLICT, StatusCode::TOO_MANY_REQUESTS, StatusCode::REQUEST_TIMEOUT]
                            .contains(status) =>
                {
                    ProviderError::Rejected(message)
                }
                _ => ProviderError::Unavailable(message),
            }
        }
        other => ProviderError::Unavailable(other.to_string()),
    }
}

fn str_field<'a>(value: &'a Value, name: &str) -> Option<&'a str> {
    value.get(name).and_then(Value::as_str)
}

impl StripeProvider {
    /// Reads its policy from `config` (variables `PAYMENT_PROVIDER_*`, see `ServiceClientConfig`).
    pub fn new(config: &ServiceClientConfig, api_key: ApiKey) -> Result<Self, shared::resilience::ConfigError> {
        Ok(Self::with_policy(config.base_url.clone(), api_key, config.policy()?))
    }

    pub fn with_policy(base_url: impl Into<String>, api_key: ApiKey, policy: Policy) -> Self {
        let base_url = base_url.into().trim_end_matches('/').to_owned();
        Self { http: reqwest::Client::new(), base_url, api_key, policy }
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// A form POST under the policy. Also returns how many requests may have been processed by
    /// the provider: every attempt counts, except one whose connection was refused (nothing
    /// left) or that was turned away with 503 or 429 (refused before processing: Stripe saves no
    /// idempotent result for those). A 500, 502, 504 or a timeout may have been processed.
    async fn post(
        &self,
        path: &str,
        form: &[(&str, String)],
        idempotency_key: &str,
    ) -> (Result<HttpReply, CallError<HttpError>>, u32) {
        let url = format!("{}{}", self.base_url, path);
        let attempts = AtomicU32::new(0);
        let result = self
            .policy
            .call(Idempotency::Idempotent, stripe_verdict, || {
                attempts.fetch_add(1, Ordering::Relaxed);
                let request = self
                    .http
                    .post(&url)
                    .bearer_auth(&self.api_key.0)
                    .header("idempotency-key", idempotency_key)
                    .form(form);
                let attempts = &attempts;
                async move {
                    let response = request.send().await.map_err(|e| {
                        if e.is_connect() {
                            attempts.fetch_sub(1, Ordering::Relaxed);
                        }
                        HttpError::Transport(e.to_string())
                    })?;
                    let status = response.status();
                    if status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::TOO_MANY_REQUESTS {
                        attempts.fetch_sub(1, Ordering::Relaxed);
                    }
                    let headers = response.headers().clone();
                    let body = response.bytes().await.map_err(|e| HttpError::Transport(e.to_string()))?;
                    if status.is_success() {
                        Ok(HttpReply { status, headers, body })
                    } else {
                        Err(HttpError::Status { status, headers, body })
                    }
                }
            })
            .await;
        (result, attempts.load(Ordering::Relaxed))
    }
}

#[async_trait]
impl PaymentProvider for StripeProvider {
    async fn charge(&self, charge: &ProviderCharge) -> Result<ChargeOutcome, ProviderError> {
        let form = [
            ("amount", charge.amount.amount_minor.to_string()),
            ("currency", charge.amount.currency.to_ascii_lowercase()),
            ("payment_method", charge.payment_method.clone()),
            ("confirm", "true".into()),
            // Server-side confirmation: cards only (no redirect-based methods), paid or not at once.
            ("payment_method_types[]", "card".into()),
            ("metadata[order_id]", charge.order_id.clone()),
        ];
        let (result, attempts) = self.post("/v1/payment_intents", &form, &charge.idempotency_key).await;
        match result {
            Ok(reply) => {
                let intent: Value =
                    reply.json().map_err(|e| ProviderError::Unavailable(format!("unreadable payment intent: {e}")))?;
                let id = str_field(&intent, "id").unwrap_or_default().to_owned();
                match str_field(&intent, "status") {
                    Some("succeeded") => Ok(ChargeOutcome::Captured { provider_payment_id: id }),
                    // A card that wants the customer (3-D Secure) cannot be paid server-side.
                    other => Ok(ChargeOutcome::Declined {
                        provider_payment_id: Some(id),
                        decline: Decline {
                            reason: other.unwrap_or("unknown").to_owned(),
                            message: "the payment needs the customer and cannot complete server-side".into(),
                        },
                    }),
                }
            }
            Err(CallError::Inner(HttpError::Status { status: StatusCode::PAYMENT_REQUIRED, body, .. })) => {
                let error = error_body(&body);
                let reason =
                    str_field(&error, "decline_code").or_else(|| str_field(&error, "code")).unwrap_or("declined");
                let provider_payment_id =
                    error.get("payment_intent").and_then(|pi| str_field(pi, "id")).map(str::to_owned);
                Ok(ChargeOutcome::Declined {
                    provider_payment_id,
                    decline: Decline {
                        reason: reason.to_owned(),
                        message: str_field(&error, "message").unwrap_or_default().to_owned(),
                    },
                })
            }
            Err(err) => Err(provider_error(err, attempts)),
        }
    }

    async fn refund(&self, refund: &ProviderRefund) -> Result<String, ProviderError> {
        let form = [
            ("payment_intent", refund.provider_payment_id.clone()),
            ("amount", refund.amount.amount_minor.to_string()),
            ("metadata[order_id]", refund.order_id.clone()),
        ];
        let (result, attempts) = self.post("/v1/refunds", &form, &refund.idempotency_key).await;
        let reply = result.map_err(|err| provider_error(err, attempts))?;
        let body: Value = reply.json().map_err(|e| ProviderError::Unavailable(format!("unreadable refund: {e}")))?;
        str_field(&body, "id")
            .map(str::to_owned)
            .ok_or_else(|| ProviderError::Unavailable("refund answer without an id".into()))
    }
}
