//! The payment provider over Stripe's HTTP API (or anything that speaks its subset: the repo's
//! simulator, `localstripe`). The five operations of Stripe's API version 2020-08-27 described in
//! `../shared/specs/stripe/openapi-subset.json`; every request names that version in
//! `Stripe-Version`.
//!
//! - A charge is two keyed requests: `POST /v1/payment_intents` with `confirm=false` (nothing is
//!   charged; the service records the PaymentIntent id), then `POST
//!   /v1/payment_intents/{id}/confirm`. What became of it is `GET /v1/payment_intents/{id}`.
//!   Statuses (<https://docs.stripe.com/payments/paymentintents/lifecycle>): `succeeded` is a
//!   capture; `processing` is neither (polled briefly, then left to a later attempt);
//!   `requires_action` (3-D Secure: a server-side charge has no customer to authenticate) is a
//!   decline `authentication_required`; `requires_payment_method` after a confirmation is a
//!   decline with the error's `decline_code`; `requires_confirmation` and `canceled` charged
//!   nothing. A `requires_action` intent is then cancelled (`POST .../cancel`,
//!   `cancellation_reason=abandoned`): no customer can complete it, since its client secret never
//!   leaves the service.
//! - A refund is `POST /v1/refunds`; it counts only when Stripe says `succeeded` (`pending`: ask
//!   later with `GET /v1/refunds/{id}`; `failed`, `canceled`: the money is still with the shop).
//! - Stripe saves the first answer of a keyed request once execution began and replays it for 24
//!   hours, even a `500` (<https://docs.stripe.com/api/idempotent_requests>). A replayed `5xx`
//!   (`Idempotent-Replayed: true`) is therefore final for that key: it is not retried, and the
//!   adapter moves to the next key of the step (`<key>-2`, `<key>-3`) where that cannot move
//!   money twice: creating an unconfirmed intent charges nothing; a confirmation is only sent
//!   again after `GET` shows the intent still `requires_confirmation` (Stripe confirms an intent
//!   once); a second refund of a fully refunded charge is refused by Stripe
//!   (`charge_already_refunded`).
//! - Amounts go in Stripe's smallest currency unit, which is the ISO 4217 minor unit the shop
//!   counts in (`JPY` has none, `BHD` three: Stripe wants those rounded to ten)
//!   (<https://docs.stripe.com/currencies#zero-decimal>).
//! - Every call goes through the shared [`Policy`]: overall and attempt timeouts, retry with
//!   backoff and jitter (safe: every mutating call has an idempotency key), a circuit breaker and
//!   a bulkhead. A decline (HTTP 402) is a final answer from a healthy provider: never retried,
//!   never counted against the breaker. 5xx, 429, timeouts and transport errors are transient;
//!   409 (the same key is still being processed) is retried without counting as a failure; a
//!   `Stripe-Should-Retry: false` answer and a replayed 5xx are not retried.
//! - The API key comes from Secrets Manager on the first call, not at cold start, and is kept for
//!   a time to live ([`ProviderKey`]). A `401` is answered by reading the secret again and sending
//!   the request once more with the new key, if the secret holds another one: key rotation works
//!   without recycling the instances. The refused request did nothing: Stripe saves an
//!   idempotent result only once a request began executing
//!   (<https://docs.stripe.com/api/idempotent_requests>), and authentication comes first
//!   (<https://docs.stripe.com/api/errors>: 401, "No valid API key provided").
//! - Requests go through the process's one HTTP client (`shared::resilience::http_client`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use http::{HeaderMap, Method, StatusCode};
use serde_json::Value;
use shared::resilience::{CallError, HttpError, HttpReply, Idempotency, Policy, ServiceClientConfig, Verdict};
use shared_core::money::{Currency, Money};

pub use super::provider_key::ProviderKey;
use crate::domain::Decline;
use crate::ports::{ChargeOutcome, PaymentProvider, ProviderCharge, ProviderError, ProviderRefund, RefundOutcome};

/// The API version every request names: the one `openapi-subset.json` describes.
pub const STRIPE_API_VERSION: &str = "2020-08-27";
/// Keys a step may use after the ones before answer a saved 500: `<key>`, `<key>-2`, `<key>-3`.
const KEY_GENERATIONS: u32 = 3;

/// The provider's secret API key. Never printed.
#[derive(Clone, PartialEq, Eq)]
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
    base_url: String,
    key: Arc<ProviderKey>,
    policy: Policy,
    /// How many times, and how often, a `processing` payment is asked about before the charge
    /// is left to a later attempt.
    processing_polls: u32,
    processing_poll_interval: Duration,
}

fn replayed(headers: &HeaderMap) -> bool {
    headers.get("idempotent-replayed").and_then(|v| v.to_str().ok()) == Some("true")
}

/// How a Stripe error answer is judged (see the module docs).
pub fn stripe_verdict(err: &HttpError) -> Verdict {
    if let HttpError::Status { status, headers, .. } = err {
        if status.is_server_error() && replayed(headers) {
            // Saved under the key: the same request gets it again for 24 hours.
            return Verdict { failure: false, retryable: false, retry_after: None };
        }
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

/// The amount in Stripe's smallest currency unit and the currency as Stripe writes it.
pub fn stripe_amount(money: &Money) -> Result<(String, String), ProviderError> {
    let currency = Currency::from_code(&money.currency)
        .ok_or_else(|| ProviderError::Rejected(format!("{} is not an ISO 4217 currency", money.currency)))?;
    if currency.exponent == 3 && !money.amount_minor.is_multiple_of(10) {
        return Err(ProviderError::Rejected(format!(
            "Stripe takes {} amounts rounded to ten minor units, not {}",
            currency.code, money.amount_minor
        )));
    }
    Ok((money.amount_minor.to_string(), currency.code.to_ascii_lowercase()))
}

fn generation_key(key: &str, generation: u32) -> String {
    if generation == 1 { key.to_owned() } else { format!("{key}-{generation}") }
}

/// A 5xx the key had saved: asking again with it will only get it again.
fn replayed_server_error(err: &CallError<HttpError>) -> bool {
    matches!(err, CallError::Inner(HttpError::Status { status, headers, .. }) if status.is_server_error() && replayed(headers))
}

/// A 4xx with this Stripe error code.
fn error_code_is(err: &CallError<HttpError>, code: &str) -> bool {
    matches!(err, CallError::Inner(HttpError::Status { status, body, .. })
        if status.is_client_error() && str_field(&error_body(body), "code") == Some(code))
}

fn unreadable(what: &str, err: impl std::fmt::Display) -> ProviderError {
    ProviderError::Unavailable(format!("unreadable {what}: {err}"))
}

/// The decline a card error (HTTP 402, or an intent's `last_payment_error`) describes.
fn decline_of(error: &Value) -> Decline {
    let reason = str_field(error, "decline_code").or_else(|| str_field(error, "code")).unwrap_or("declined");
    Decline { reason: reason.to_owned(), message: str_field(error, "message").unwrap_or_default().to_owned() }
}

/// Where a PaymentIntent stands, and whether it can still be confirmed.
fn intent_outcome(intent: &Value) -> Result<(ChargeOutcome, bool), ProviderError> {
    let provider_payment_id = str_field(intent, "id").unwrap_or_default().to_owned();
    let status = str_field(intent, "status").unwrap_or_default();
    Ok(match status {
        "succeeded" => (ChargeOutcome::Captured { provider_payment_id }, false),
        // `requires_capture` only comes with manual capture, which the adapter never asks for.
        "processing" | "requires_capture" => (ChargeOutcome::Processing { provider_payment_id }, false),
        "requires_action" => {
            let decline = Decline {
                reason: "authentication_required".into(),
                message: "the card requires authentication (3-D Secure) by the customer, which a server-side \
                          charge cannot do"
                    .into(),
            };
            (ChargeOutcome::Declined { provider_payment_id: Some(provider_payment_id), decline }, false)
        }
        "requires_payment_method" => match intent.get("last_payment_error").filter(|e| e.is_object()) {
            Some(error) => (
                ChargeOutcome::Declined { provider_payment_id: Some(provider_payment_id), decline: decline_of(error) },
                false,
            ),
            None => (ChargeOutcome::NotCharged { provider_payment_id }, true),
        },
        "requires_confirmation" => (ChargeOutcome::NotCharged { provider_payment_id }, true),
        "canceled" => (ChargeOutcome::NotCharged { provider_payment_id }, false),
        other => return Err(ProviderError::Unavailable(format!("PaymentIntent in an unknown status {other:?}"))),
    })
}

fn refund_outcome(refund: &Value) -> Result<RefundOutcome, ProviderError> {
    let refund_id = str_field(refund, "id").ok_or_else(|| unreadable("refund", "no id"))?.to_owned();
    Ok(match str_field(refund, "status") {
        Some("succeeded") => RefundOutcome::Succeeded { refund_id },
        Some(status @ ("failed" | "canceled")) => {
            let reason = str_field(refund, "failure_reason").unwrap_or(status).to_owned();
            RefundOutcome::Failed { refund_id, reason }
        }
        // `pending`, `requires_action` (some non-card methods), or not said yet.
        _ => RefundOutcome::Pending { refund_id },
    })
}

impl StripeProvider {
    /// Reads its policy from `config` (variables `PAYMENT_PROVIDER_*`, see `ServiceClientConfig`).
    /// `key`: an [`ApiKey`], or a [`ProviderKey`] read from Secrets Manager on first use.
    pub fn new(
        config: &ServiceClientConfig,
        key: impl Into<ProviderKey>,
    ) -> Result<Self, shared::resilience::InvalidSetting> {
        Ok(Self::with_policy(config.base_url.clone(), key, config.policy()?))
    }

    pub fn with_policy(base_url: impl Into<String>, key: impl Into<ProviderKey>, policy: Policy) -> Self {
        let base_url = base_url.into().trim_end_matches('/').to_owned();
        Self {
            base_url,
            key: Arc::new(key.into()),
            policy,
            processing_polls: 4,
            processing_poll_interval: Duration::from_millis(250),
        }
    }

    /// How many times, `interval` apart, a `processing` payment is asked about before the
    /// charge is reported as still processing (default: 4 times, 250 ms apart).
    pub fn with_processing_polls(mut self, polls: u32, interval: Duration) -> Self {
        self.processing_polls = polls;
        self.processing_poll_interval = interval;
        self
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// One call under the policy: a form POST with its idempotency key, or a GET. Also returns
    /// how many requests may have been processed by the provider: every attempt counts, except
    /// one whose connection was refused (nothing left) or that was turned away with 503 or 429
    /// (refused before processing: Stripe saves no idempotent result for those). A 500, 502, 504
    /// or a timeout may have been processed. A `401` is sent once more with the key the secret
    /// holds now, if it holds another (see the module docs); the refused request counts nothing.
    async fn send(
        &self,
        method: Method,
        path: &str,
        form: &[(&str, String)],
        idempotency_key: Option<&str>,
    ) -> (Result<HttpReply, CallError<HttpError>>, u32) {
        let api_key = match self.key.current().await {
            Ok(key) => key,
            Err(e) => return (Err(CallError::Inner(HttpError::Transport(format!("provider API key: {e}")))), 0),
        };
        let (result, attempts) = self.send_with(&api_key, method.clone(), path, form, idempotency_key).await;
        if let Err(CallError::Inner(HttpError::Status { status: StatusCode::UNAUTHORIZED, .. })) = &result {
            match self.key.after_refusal(&api_key).await {
                Ok(Some(fresh)) => {
                    tracing::info!(path, "the provider refused the API key: sending again with the secret's new key");
                    return self.send_with(&fresh, method, path, form, idempotency_key).await;
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "the provider refused the API key and the secret cannot be read"),
            }
        }
        (result, attempts)
    }

    /// [`Self::send`] with this key.
    async fn send_with(
        &self,
        api_key: &ApiKey,
        method: Method,
        path: &str,
        form: &[(&str, String)],
        idempotency_key: Option<&str>,
    ) -> (Result<HttpReply, CallError<HttpError>>, u32) {
        let url = format!("{}{}", self.base_url, path);
        let attempts = AtomicU32::new(0);
        let result = self
            .policy
            .call(Idempotency::Idempotent, stripe_verdict, || {
                attempts.fetch_add(1, Ordering::Relaxed);
                let mut request = shared::resilience::http_client()
                    .request(method.clone(), &url)
                    .bearer_auth(&api_key.0)
                    .header("stripe-version", STRIPE_API_VERSION);
                if let Some(key) = idempotency_key {
                    request = request.header("idempotency-key", key);
                }
                if method == Method::POST {
                    request = request.form(form);
                }
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

    async fn get_json(&self, what: &str, path: &str) -> Result<Value, ProviderError> {
        let (result, attempts) = self.send(Method::GET, path, &[], None).await;
        let reply = result.map_err(|err| provider_error(err, attempts))?;
        reply.json().map_err(|e| unreadable(what, e))
    }

    async fn retrieve(&self, provider_payment_id: &str) -> Result<(ChargeOutcome, bool), ProviderError> {
        let intent = self.get_json("payment intent", &format!("/v1/payment_intents/{provider_payment_id}")).await?;
        self.cancel_unfinishable(&intent).await;
        intent_outcome(&intent)
    }

    /// A `requires_action` intent (3-D Secure) can never be completed: no customer ever sees its
    /// client secret. It is cancelled (<https://docs.stripe.com/api/payment_intents/cancel>:
    /// `requires_action` may be cancelled), so nothing can move money on it later and Stripe's
    /// dashboard shows it closed. A cancel that fails is logged and left: the decline stands
    /// either way (an intent that is not authenticated charges nothing).
    async fn cancel_unfinishable(&self, intent: &Value) {
        if str_field(intent, "status") != Some("requires_action") {
            return;
        }
        let Some(id) = str_field(intent, "id") else { return };
        let path = format!("/v1/payment_intents/{id}/cancel");
        let form = [("cancellation_reason", "abandoned".to_owned())];
        let (result, attempts) = self.send(Method::POST, &path, &form, Some(&format!("cancel-{id}"))).await;
        match result {
            Ok(_) => tracing::info!(provider_payment_id = id, "cancelled a payment intent that needs 3-D Secure"),
            // Cancelled already (by an earlier attempt), or it moved on: nothing to do.
            Err(err) if error_code_is(&err, "payment_intent_unexpected_state") => {}
            Err(err) => tracing::warn!(
                provider_payment_id = id,
                error = %provider_error(err, attempts),
                "could not cancel a payment intent that needs 3-D Secure"
            ),
        }
    }

    /// Asks about a `processing` payment a few times before leaving it to a later attempt.
    async fn until_settled(&self, outcome: ChargeOutcome) -> Result<ChargeOutcome, ProviderError> {
        let mut outcome = outcome;
        for _ in 0..self.processing_polls {
            let ChargeOutcome::Processing { provider_payment_id } = &outcome else { break };
            tokio::time::sleep(self.processing_poll_interval).await;
            outcome = self.retrieve(provider_payment_id).await?.0;
        }
        Ok(outcome)
    }
}

#[async_trait]
impl PaymentProvider for StripeProvider {
    async fn create_payment(&self, charge: &ProviderCharge) -> Result<String, ProviderError> {
        let (amount, currency) = stripe_amount(&charge.amount)?;
        let form = [
            ("amount", amount),
            ("currency", currency),
            ("payment_method", charge.payment_method.clone()),
            ("confirm", "false".into()),
            // Server-side confirmation: cards only (no redirect-based methods).
            ("payment_method_types[]", "card".into()),
            ("metadata[order_id]", charge.order_id.to_string()),
        ];
        for generation in 1..=KEY_GENERATIONS {
            let key = generation_key(&charge.idempotency_key, generation);
            let (result, attempts) = self.send(Method::POST, "/v1/payment_intents", &form, Some(&key)).await;
            match result {
                Ok(reply) => {
                    let intent: Value = reply.json().map_err(|e| unreadable("payment intent", e))?;
                    return str_field(&intent, "id")
                        .map(str::to_owned)
                        .ok_or_else(|| unreadable("payment intent", "no id"));
                }
                // The key holds a saved 500. An unconfirmed intent charges nothing, so another
                // key is safe: at worst it leaves an intent nobody confirms.
                Err(err) if replayed_server_error(&err) => {
                    tracing::warn!(key, "creating the payment intent answers a saved 500: next key");
                }
                Err(err) => return Err(provider_error(err, attempts)),
            }
        }
        Err(ProviderError::Unavailable(format!("every key of {} answers a saved 500", charge.idempotency_key)))
    }

    async fn confirm_payment(
        &self,
        provider_payment_id: &str,
        idempotency_key: &str,
    ) -> Result<ChargeOutcome, ProviderError> {
        let path = format!("/v1/payment_intents/{provider_payment_id}/confirm");
        for generation in 1..=KEY_GENERATIONS {
            let key = generation_key(idempotency_key, generation);
            let (result, attempts) = self.send(Method::POST, &path, &[], Some(&key)).await;
            let outcome = match result {
                Ok(reply) => {
                    let intent: Value = reply.json().map_err(|e| unreadable("payment intent", e))?;
                    self.cancel_unfinishable(&intent).await;
                    let (outcome, _) = intent_outcome(&intent)?;
                    if replayed(&reply.headers) && matches!(outcome, ChargeOutcome::Processing { .. }) {
                        // The saved answer is from then: ask for now.
                        self.retrieve(provider_payment_id).await?.0
                    } else {
                        outcome
                    }
                }
                Err(CallError::Inner(HttpError::Status { status: StatusCode::PAYMENT_REQUIRED, body, .. })) => {
                    let error = error_body(&body);
                    let provider_payment_id = error
                        .get("payment_intent")
                        .and_then(|pi| str_field(pi, "id"))
                        .unwrap_or(provider_payment_id)
                        .to_owned();
                    ChargeOutcome::Declined {
                        provider_payment_id: Some(provider_payment_id),
                        decline: decline_of(&error),
                    }
                }
                // The key's answer tells nothing (a saved 500), or an earlier request confirmed
                // the intent already: ask where it stands. Only an intent still waiting for
                // its confirmation is confirmed again, with the next key (Stripe confirms an
                // intent once; nothing was charged yet).
                Err(err) if replayed_server_error(&err) || error_code_is(&err, "payment_intent_unexpected_state") => {
                    match self.retrieve(provider_payment_id).await? {
                        (_, true) if replayed_server_error(&err) => {
                            tracing::warn!(key, "confirming answers a saved 500 and charged nothing: next key");
                            continue;
                        }
                        (outcome, _) => outcome,
                    }
                }
                Err(err) => return Err(provider_error(err, attempts)),
            };
            return self.until_settled(outcome).await;
        }
        Err(ProviderError::Unavailable(format!("every key of {idempotency_key} answers a saved 500")))
    }

    async fn payment_status(&self, provider_payment_id: &str) -> Result<ChargeOutcome, ProviderError> {
        let (outcome, _) = self.retrieve(provider_payment_id).await?;
        self.until_settled(outcome).await
    }

    async fn refund(&self, refund: &ProviderRefund) -> Result<RefundOutcome, ProviderError> {
        let (amount, _) = stripe_amount(&refund.amount)?;
        let form = [
            ("payment_intent", refund.provider_payment_id.clone()),
            ("amount", amount),
            ("metadata[order_id]", refund.order_id.to_string()),
        ];
        for generation in 1..=KEY_GENERATIONS {
            let key = generation_key(&refund.idempotency_key, generation);
            let (result, attempts) = self.send(Method::POST, "/v1/refunds", &form, Some(&key)).await;
            match result {
                Ok(reply) => return refund_outcome(&reply.json().map_err(|e| unreadable("refund", e))?),
                // A new key cannot refund twice: Stripe refuses to refund more than was charged.
                Err(err) if replayed_server_error(&err) => {
                    tracing::warn!(key, "refunding answers a saved 500: next key");
                }
                Err(err) if error_code_is(&err, "charge_already_refunded") => {
                    // Refunded by an earlier request whose answer was lost (a saved 500).
                    let refund_id = format!("(refunded by an earlier request: {})", refund.provider_payment_id);
                    return Ok(RefundOutcome::Succeeded { refund_id });
                }
                Err(err) => return Err(provider_error(err, attempts)),
            }
        }
        Err(ProviderError::Unavailable(format!("every key of {} answers a saved 500", refund.idempotency_key)))
    }

    async fn refund_status(&self, refund_id: &str) -> Result<RefundOutcome, ProviderError> {
        refund_outcome(&self.get_json("refund", &format!("/v1/refunds/{refund_id}")).await?)
    }
}
