//! A local payment provider: the subset of Stripe's API the payments service uses, for tests
//! and the local system. Nothing here is production code.
//!
//! What it does like Stripe's test mode:
//! - `POST /v1/payment_intents` (form-encoded, optionally `confirm=true`),
//!   `POST /v1/payment_intents/{id}/confirm`, `GET /v1/payment_intents/{id}`, `POST /v1/refunds`,
//!   `GET /v1/refunds/{id}`; bearer API key; unknown parameters refused.
//! - `Idempotency-Key` on POSTs: the same key and parameters replay the first answer (with
//!   `Idempotent-Replayed: true`), the same key with other parameters is a 400
//!   `idempotency_error`, and a key whose first request is still running is a 409.
//! - Test payment methods: `pm_card_visa` (and any other `pm_card_*`) succeeds;
//!   `pm_card_visa_chargeDeclined`, `..._chargeDeclinedInsufficientFunds`, `..._LostCard`,
//!   `..._StolenCard`, `pm_card_chargeDeclinedExpiredCard`, `..._IncorrectCvc`,
//!   `..._ProcessingError`, `..._Fraudulent` are declined with a 402 `card_error` as Stripe does.
//!
//! Faults (set at start or at run time through `PUT /_sim/faults`): a rate of 500s answered before
//! anything happens (not stored under the idempotency key, `Stripe-Should-Retry: true`), a rate of
//! timeouts (the request IS processed, the answer only comes after `hang_ms`: the nasty case where
//! the client cannot know), fixed latency, the next N requests failing, or the whole provider down.
//! `GET /_sim/stats` counts requests and effects.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Injected faults. Rates are shares between 0 and 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Share of requests answered 500 before anything happens.
    pub failure_rate: f64,
    /// Share of requests that are processed but answered only after `hang_ms`.
    pub timeout_rate: f64,
    /// Added to every request before it is processed.
    pub latency_ms: u64,
    /// How long a "timed out" request hangs before its answer.
    pub hang_ms: u64,
    /// The next N requests fail with 500, whatever the rates (deterministic, for tests).
    pub fail_next: u32,
    /// Every request fails with 503 until this is turned off.
    pub down: bool,
}

impl Default for Faults {
    fn default() -> Self {
        Self { failure_rate: 0.0, timeout_rate: 0.0, latency_ms: 0, hang_ms: 30_000, fail_next: 0, down: false }
    }
}

impl Faults {
    fn check(&self) -> Result<(), String> {
        for (name, rate) in [("failure_rate", self.failure_rate), ("timeout_rate", self.timeout_rate)] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!("{name} must be between 0 and 1, got {rate}"));
            }
        }
        Ok(())
    }
}

/// What the simulator saw and did, for assertions and the local system's report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Every request to `/v1`, answered or not.
    pub requests: u64,
    /// Requests by `METHOD route`, e.g. `POST /v1/payment_intents`.
    pub by_route: BTreeMap<String, u64>,
    pub payment_intents_created: u64,
    /// Payment intents that moved money (status `succeeded`).
    pub charges_succeeded: u64,
    pub charges_declined: u64,
    pub refunds_created: u64,
    /// Answers replayed from an idempotency key.
    pub idempotent_replays: u64,
    pub injected_failures: u64,
    pub injected_timeouts: u64,
}

#[derive(Debug, Clone)]
pub struct SimulatorConfig {
    /// The secret key clients must send as `Authorization: Bearer <key>`.
    pub api_key: String,
    pub faults: Faults,
    /// Seeds the fault dice and ids, for reproducible runs.
    pub seed: Option<u64>,
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        Self { api_key: "sk_test_local".into(), faults: Faults::default(), seed: None }
    }
}

#[derive(Debug, Clone)]
struct StoredAnswer {
    route: &'static str,
    params: Vec<(String, String)>,
    status: StatusCode,
    body: Value,
}

#[derive(Debug, Default)]
struct Ledger {
    payment_intents: HashMap<String, Value>,
    refunds: HashMap<String, Value>,
    /// Amount refunded per payment intent.
    refunded: HashMap<String, u64>,
    answers: HashMap<String, StoredAnswer>,
    in_flight: HashSet<String>,
    stats: Stats,
}

struct Inner {
    api_key: String,
    faults: Mutex<Faults>,
    rng: Mutex<fastrand::Rng>,
    ledger: Mutex<Ledger>,
}

/// The simulator's state; cheap to clone. [`Simulator::router`] serves it.
#[derive(Clone)]
pub struct Simulator {
    inner: Arc<Inner>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind: keep serving.
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Simulator {
    pub fn new(config: SimulatorConfig) -> Result<Self, String> {
        config.faults.check()?;
        let rng = config.seed.map(fastrand::Rng::with_seed).unwrap_or_default();
        Ok(Self {
            inner: Arc::new(Inner {
                api_key: config.api_key,
                faults: Mutex::new(config.faults),
                rng: Mutex::new(rng),
                ledger: Mutex::new(Ledger::default()),
            }),
        })
    }

    pub fn stats(&self) -> Stats {
        lock(&self.inner.ledger).stats.clone()
    }

    pub fn faults(&self) -> Faults {
        lock(&self.inner.faults).clone()
    }

    pub fn set_faults(&self, faults: Faults) -> Result<(), String> {
        faults.check()?;
        *lock(&self.inner.faults) = faults;
        Ok(())
    }

    /// The stored payment intent, as `GET /v1/payment_intents/{id}` shows it.
    pub fn payment_intent(&self, id: &str) -> Option<Value> {
        lock(&self.inner.ledger).payment_intents.get(id).cloned()
    }

    /// Total refunded on a payment intent.
    pub fn refunded(&self, payment_intent: &str) -> u64 {
        lock(&self.inner.ledger).refunded.get(payment_intent).copied().unwrap_or(0)
    }

    pub fn router(&self) -> Router {
        Router::new()
            .route("/v1/payment_intents", post(create_payment_intent))
            .route("/v1/payment_intents/{id}", get(get_payment_intent))
            .route("/v1/payment_intents/{id}/confirm", post(confirm_payment_intent))
            .route("/v1/refunds", post(create_refund))
            .route("/v1/refunds/{id}", get(get_refund))
            .route("/_sim/stats", get(|State(sim): State<Simulator>| async move { axum::Json(sim.stats()) }))
            .route("/_sim/faults", get(get_faults).put(put_faults))
            .fallback(|| async {
                stripe_error(StatusCode::NOT_FOUND, "invalid_request_error", None, "Unrecognized request URL.", None)
            })
            .with_state(self.clone())
    }

    /// Serves on `127.0.0.1:port` (0: any free port) in a background task.
    pub async fn spawn(self, port: u16) -> std::io::Result<RunningSimulator> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        let addr = listener.local_addr()?;
        let router = self.router();
        let task = tokio::spawn(async move {
            if let Err(err) = axum::serve(listener, router).await {
                tracing::error!(error = %err, "payment provider simulator stopped");
            }
        });
        Ok(RunningSimulator { simulator: self, addr, task })
    }

    fn roll(&self, rate: f64) -> bool {
        rate > 0.0 && lock(&self.inner.rng).f64() < rate
    }

    fn new_id(&self, prefix: &str) -> String {
        let mut rng = lock(&self.inner.rng);
        let suffix: String = (0..24).map(|_| rng.alphanumeric()).collect();
        format!("{prefix}_{suffix}")
    }
}

/// A simulator serving in the background; stops when dropped.
pub struct RunningSimulator {
    pub simulator: Simulator,
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl RunningSimulator {
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for RunningSimulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn stripe_error(
    status: StatusCode,
    kind: &str,
    code: Option<&str>,
    message: &str,
    param: Option<&str>,
) -> (StatusCode, axum::Json<Value>) {
    let mut error = json!({ "type": kind, "message": message });
    if let Some(code) = code {
        error["code"] = json!(code);
    }
    if let Some(param) = param {
        error["param"] = json!(param);
    }
    (status, axum::Json(json!({ "error": error })))
}

type Answer = (StatusCode, Value);

fn invalid(code: Option<&str>, message: impl Into<String>, param: Option<&str>) -> Answer {
    let (status, body) = stripe_error(StatusCode::BAD_REQUEST, "invalid_request_error", code, &message.into(), param);
    (status, body.0)
}

fn missing(what: &str, id: &str, param: Option<&str>) -> Answer {
    let (status, body) = stripe_error(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        Some("resource_missing"),
        &format!("No such {what}: '{id}'"),
        param,
    );
    (status, body.0)
}

fn respond((status, body): Answer, replayed: bool) -> Response {
    let mut response = (status, axum::Json(body)).into_response();
    if replayed {
        response.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    response
}

/// Form parameters: every key with its value, in order.
struct Params(Vec<(String, String)>);

impl Params {
    fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    fn check_known(&self, known: &[&str]) -> Result<(), Answer> {
        for (key, _) in &self.0 {
            let base = key.split('[').next().unwrap_or(key);
            if !known.contains(&base) {
                return Err(invalid(
                    Some("parameter_unknown"),
                    format!("Received unknown parameter: {key}"),
                    Some(key.as_str()),
                ));
            }
        }
        Ok(())
    }

    fn amount(&self, name: &str) -> Result<Option<u64>, Answer> {
        match self.get(name) {
            None => Ok(None),
            Some(raw) => match raw.parse::<u64>() {
                Ok(amount) if amount >= 1 => Ok(Some(amount)),
                _ => Err(invalid(
                    Some("parameter_invalid_integer"),
                    format!("Invalid positive integer: {raw}"),
                    Some(name),
                )),
            },
        }
    }

    fn metadata(&self) -> Value {
        let mut metadata = serde_json::Map::new();
        for (key, value) in &self.0 {
            if let Some(name) = key.strip_prefix("metadata[").and_then(|k| k.strip_suffix(']')) {
                metadata.insert(name.to_owned(), json!(value));
            }
        }
        Value::Object(metadata)
    }
}

/// Runs one Stripe call: API key, faults, idempotency, then `operation` on the ledger.
async fn stripe_call(
    sim: &Simulator,
    route: &'static str,
    headers: &HeaderMap,
    body: &[u8],
    operation: impl FnOnce(&Simulator, &mut Ledger, &Params) -> Answer,
) -> Response {
    {
        let mut ledger = lock(&sim.inner.ledger);
        ledger.stats.requests += 1;
        *ledger.stats.by_route.entry(route.to_owned()).or_default() += 1;
    }
    let bearer = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    if bearer != Some(sim.inner.api_key.as_str()) {
        let (status, body) =
            stripe_error(StatusCode::UNAUTHORIZED, "invalid_request_error", None, "Invalid API Key provided.", None);
        return (status, body).into_response();
    }
    let faults = sim.faults();
    let injected_failure = if faults.down {
        Some(StatusCode::SERVICE_UNAVAILABLE)
    } else {
        let mut current = lock(&sim.inner.faults);
        if current.fail_next > 0 {
            current.fail_next -= 1;
            Some(StatusCode::INTERNAL_SERVER_ERROR)
        } else {
            drop(current);
            sim.roll(faults.failure_rate).then_some(StatusCode::INTERNAL_SERVER_ERROR)
        }
    };
    if let Some(status) = injected_failure {
        lock(&sim.inner.ledger).stats.injected_failures += 1;
        let (status, body) = stripe_error(status, "api_error", None, "Simulated provider failure.", None);
        let mut response = (status, body).into_response();
        response.headers_mut().insert("stripe-should-retry", HeaderValue::from_static("true"));
        return response;
    }
    let params = match serde_urlencoded::from_bytes::<Vec<(String, String)>>(body) {
        Ok(params) => Params(params),
        Err(err) => return respond(invalid(None, format!("Invalid form body: {err}"), None), false),
    };
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_owned);
    if let Some(key) = &key {
        let mut ledger = lock(&sim.inner.ledger);
        if let Some(stored) = ledger.answers.get(key).cloned() {
            if stored.route != route || stored.params != params.0 {
                let message = format!(
                    "Keys for idempotent requests can only be used with the same parameters they were first \
                     used with. Try using a key other than '{key}' if you meant to execute a different request."
                );
                return stripe_error(StatusCode::BAD_REQUEST, "idempotency_error", None, &message, None)
                    .into_response();
            }
            ledger.stats.idempotent_replays += 1;
            return respond((stored.status, stored.body), true);
        }
        if !ledger.in_flight.insert(key.clone()) {
            let (status, body) = stripe_error(
                StatusCode::CONFLICT,
                "idempotency_error",
                Some("idempotency_key_in_use"),
                "There is currently another in-progress request using this idempotency key. Try again later.",
                None,
            );
            return (status, body).into_response();
        }
    }
    if faults.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(faults.latency_ms)).await;
    }
    let answer = {
        let mut ledger = lock(&sim.inner.ledger);
        let answer = operation(sim, &mut ledger, &params);
        if let Some(key) = &key {
            ledger.in_flight.remove(key);
            ledger.answers.insert(
                key.clone(),
                StoredAnswer { route, params: params.0.clone(), status: answer.0, body: answer.1.clone() },
            );
        }
        answer
    };
    if sim.roll(faults.timeout_rate) {
        lock(&sim.inner.ledger).stats.injected_timeouts += 1;
        tokio::time::sleep(Duration::from_millis(faults.hang_ms)).await;
    }
    respond(answer, false)
}

const PAYMENT_INTENT_PARAMS: &[&str] = &[
    "amount",
    "currency",
    "confirm",
    "payment_method",
    "payment_method_types",
    "automatic_payment_methods",
    "capture_method",
    "description",
    "metadata",
    "off_session",
    "return_url",
    "receipt_email",
    "customer",
    "statement_descriptor",
];

/// How Stripe's test payment methods behave: `None` succeeds, `Some((code, decline_code, message))`
/// is declined.
fn test_card_outcome(payment_method: &str) -> Option<(&'static str, Option<&'static str>, &'static str)> {
    let name = payment_method.strip_prefix("pm_card_").unwrap_or(payment_method);
    let declined = "card_declined";
    match name {
        "visa_chargeDeclined" => Some((declined, Some("generic_decline"), "Your card was declined.")),
        "visa_chargeDeclinedInsufficientFunds" => {
            Some((declined, Some("insufficient_funds"), "Your card has insufficient funds."))
        }
        "visa_chargeDeclinedLostCard" => Some((declined, Some("lost_card"), "Your card was declined.")),
        "visa_chargeDeclinedStolenCard" => Some((declined, Some("stolen_card"), "Your card was declined.")),
        "chargeDeclinedFraudulent" => Some((declined, Some("fraudulent"), "Your card was declined.")),
        "chargeDeclinedExpiredCard" => Some(("expired_card", None, "Your card has expired.")),
        "chargeDeclinedIncorrectCvc" => Some(("incorrect_cvc", None, "Your card's security code is incorrect.")),
        "chargeDeclinedProcessingError" => {
            Some(("processing_error", None, "An error occurred while processing your card. Try again in a little bit."))
        }
        _ => None,
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Confirms `intent` with `payment_method`: it succeeds or is declined.
fn confirm(sim: &Simulator, ledger: &mut Ledger, intent: &mut Value, payment_method: &str) -> Answer {
    if !payment_method.starts_with("pm_") {
        return invalid(
            Some("resource_missing"),
            format!("No such PaymentMethod: '{payment_method}'"),
            Some("payment_method"),
        );
    }
    intent["payment_method"] = json!(payment_method);
    match test_card_outcome(payment_method) {
        None => {
            intent["status"] = json!("succeeded");
            intent["amount_received"] = intent["amount"].clone();
            intent["latest_charge"] = json!(sim.new_id("ch"));
            intent["last_payment_error"] = Value::Null;
            ledger.stats.charges_succeeded += 1;
            (StatusCode::OK, intent.clone())
        }
        Some((code, decline_code, message)) => {
            let mut error = json!({
                "type": "card_error",
                "code": code,
                "message": message,
                "payment_method": { "id": payment_method, "object": "payment_method" },
            });
            if let Some(decline_code) = decline_code {
                error["decline_code"] = json!(decline_code);
            }
            intent["status"] = json!("requires_payment_method");
            intent["latest_charge"] = json!(sim.new_id("ch"));
            intent["last_payment_error"] = error.clone();
            ledger.stats.charges_declined += 1;
            error["payment_intent"] = intent.clone();
            (StatusCode::PAYMENT_REQUIRED, json!({ "error": error }))
        }
    }
}

async fn create_payment_intent(State(sim): State<Simulator>, headers: HeaderMap, body: Bytes) -> Response {
    stripe_call(&sim, "POST /v1/payment_intents", &headers, &body, |sim, ledger, params| {
        if let Err(answer) = params.check_known(PAYMENT_INTENT_PARAMS) {
            return answer;
        }
        let amount = match params.amount("amount") {
            Ok(Some(amount)) => amount,
            Ok(None) => return invalid(Some("parameter_missing"), "Missing required param: amount.", Some("amount")),
            Err(answer) => return answer,
        };
        let currency = match params.get("currency") {
            Some(c) if c.len() == 3 && c.bytes().all(|b| b.is_ascii_alphabetic()) => c.to_ascii_lowercase(),
            Some(c) => {
                return invalid(Some("parameter_invalid_string"), format!("Invalid currency: {c}"), Some("currency"));
            }
            None => return invalid(Some("parameter_missing"), "Missing required param: currency.", Some("currency")),
        };
        if params.get("capture_method").is_some_and(|m| m != "automatic") {
            return invalid(None, "Only capture_method=automatic is simulated.", Some("capture_method"));
        }
        let confirm_now = match params.get("confirm") {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => return invalid(None, format!("Invalid boolean: {other}"), Some("confirm")),
        };
        let payment_method = params.get("payment_method");
        if confirm_now && payment_method.is_none() {
            return invalid(
                Some("parameter_missing"),
                "You must provide a payment_method to confirm this PaymentIntent.",
                Some("payment_method"),
            );
        }
        if let Some(pm) = payment_method.filter(|pm| !pm.starts_with("pm_")) {
            return invalid(Some("resource_missing"), format!("No such PaymentMethod: '{pm}'"), Some("payment_method"));
        }
        let id = sim.new_id("pi");
        let mut intent = json!({
            "id": id,
            "object": "payment_intent",
            "amount": amount,
            "amount_received": 0,
            "currency": currency,
            "capture_method": "automatic",
            "confirmation_method": "automatic",
            "created": now_secs(),
            "livemode": false,
            "metadata": params.metadata(),
            "payment_method": payment_method,
            "latest_charge": null,
            "last_payment_error": null,
            "status": if payment_method.is_some() { "requires_confirmation" } else { "requires_payment_method" },
        });
        ledger.stats.payment_intents_created += 1;
        let answer = match payment_method {
            Some(pm) if confirm_now => confirm(sim, ledger, &mut intent, pm),
            _ => (StatusCode::OK, intent.clone()),
        };
        ledger.payment_intents.insert(id, intent);
        answer
    })
    .await
}

async fn confirm_payment_intent(
    State(sim): State<Simulator>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    stripe_call(&sim, "POST /v1/payment_intents/{id}/confirm", &headers, &body, |sim, ledger, params| {
        if let Err(answer) = params.check_known(&["payment_method", "return_url", "off_session"]) {
            return answer;
        }
        let Some(mut intent) = ledger.payment_intents.get(&id).cloned() else {
            return missing("payment_intent", &id, None);
        };
        let status = intent["status"].as_str().unwrap_or_default().to_owned();
        if status != "requires_confirmation" && status != "requires_payment_method" {
            return invalid(
                Some("payment_intent_unexpected_state"),
                format!("This PaymentIntent's status is {status}; it cannot be confirmed."),
                None,
            );
        }
        let Some(pm) = params
            .get("payment_method")
            .map(str::to_owned)
            .or_else(|| intent["payment_method"].as_str().map(str::to_owned))
        else {
            return invalid(
                Some("parameter_missing"),
                "You must provide a payment_method to confirm this PaymentIntent.",
                Some("payment_method"),
            );
        };
        let answer = confirm(sim, ledger, &mut intent, &pm);
        ledger.payment_intents.insert(id.clone(), intent);
        answer
    })
    .await
}

async fn create_refund(State(sim): State<Simulator>, headers: HeaderMap, body: Bytes) -> Response {
    stripe_call(&sim, "POST /v1/refunds", &headers, &body, |sim, ledger, params| {
        if let Err(answer) = params.check_known(&["payment_intent", "amount", "reason", "metadata"]) {
            return answer;
        }
        let Some(intent_id) = params.get("payment_intent").map(str::to_owned) else {
            return invalid(
                Some("parameter_missing"),
                "One of the following params should be provided for this request: payment_intent or charge.",
                Some("payment_intent"),
            );
        };
        let Some(intent) = ledger.payment_intents.get(&intent_id).cloned() else {
            return missing("payment_intent", &intent_id, Some("payment_intent"));
        };
        if intent["status"] != "succeeded" {
            return invalid(
                Some("payment_intent_unexpected_state"),
                "This PaymentIntent does not have a successful charge to refund.",
                Some("payment_intent"),
            );
        }
        let received = intent["amount_received"].as_u64().unwrap_or(0);
        let refunded = ledger.refunded.get(&intent_id).copied().unwrap_or(0);
        let remaining = received.saturating_sub(refunded);
        if remaining == 0 {
            return invalid(
                Some("charge_already_refunded"),
                format!("Charge {} has already been refunded.", intent["latest_charge"].as_str().unwrap_or("")),
                None,
            );
        }
        let amount = match params.amount("amount") {
            Ok(amount) => amount.unwrap_or(remaining),
            Err(answer) => return answer,
        };
        if amount > remaining {
            return invalid(
                Some("amount_too_large"),
                format!("Refund amount ({amount}) is greater than unrefunded amount on charge ({remaining})"),
                Some("amount"),
            );
        }
        let id = sim.new_id("re");
        let refund = json!({
            "id": id,
            "object": "refund",
            "amount": amount,
            "currency": intent["currency"],
            "payment_intent": intent_id,
            "charge": intent["latest_charge"],
            "created": now_secs(),
            "metadata": params.metadata(),
            "reason": params.get("reason"),
            "status": "succeeded",
        });
        ledger.refunded.insert(intent_id, refunded + amount);
        ledger.refunds.insert(id, refund.clone());
        ledger.stats.refunds_created += 1;
        (StatusCode::OK, refund)
    })
    .await
}

async fn get_payment_intent(State(sim): State<Simulator>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    stripe_call(&sim, "GET /v1/payment_intents/{id}", &headers, b"", |_, ledger, _| {
        match ledger.payment_intents.get(&id) {
            Some(intent) => (StatusCode::OK, intent.clone()),
            None => missing("payment_intent", &id, None),
        }
    })
    .await
}

async fn get_refund(State(sim): State<Simulator>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    stripe_call(&sim, "GET /v1/refunds/{id}", &headers, b"", |_, ledger, _| match ledger.refunds.get(&id) {
        Some(refund) => (StatusCode::OK, refund.clone()),
        None => missing("refund", &id, None),
    })
    .await
}

async fn get_faults(State(sim): State<Simulator>) -> axum::Json<Faults> {
    axum::Json(sim.faults())
}

async fn put_faults(State(sim): State<Simulator>, body: Bytes) -> Response {
    let faults = match serde_json::from_slice::<Faults>(&body) {
        Ok(faults) => faults,
        Err(err) => return (StatusCode::BAD_REQUEST, format!("invalid faults: {err}")).into_response(),
    };
    match sim.set_faults(faults) {
        Ok(()) => axum::Json(sim.faults()).into_response(),
        Err(err) => (StatusCode::BAD_REQUEST, err).into_response(),
    }
}
