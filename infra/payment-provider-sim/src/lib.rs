//! A local payment provider: the subset of Stripe's API the payments service uses, for tests
//! and the local system. Nothing here is production code.
//!
//! The five operations of `../shared/specs/stripe/openapi-subset.json` (Stripe's own OpenAPI
//! description, API version 2020-08-27): `POST /v1/payment_intents`, `GET
//! /v1/payment_intents/{intent}`, `POST /v1/payment_intents/{intent}/confirm`, `POST /v1/refunds`,
//! `GET /v1/refunds/{refund}`. Form-encoded, bearer API key, answers in Stripe's shapes (the
//! fields the description marks required, errors as `{"error": {"type", "code", "message",
//! "param", ...}}`).
//!
//! What it does like Stripe (<https://docs.stripe.com/api/idempotent_requests>):
//! - `Idempotency-Key` on POSTs (ignored on GETs). Once an endpoint has begun executing, its
//!   answer is saved under the key, whatever it is (a 200, a 402 decline, a 500), and replayed
//!   with `Idempotent-Replayed: true` for 24 hours; the same key with other parameters (compared
//!   regardless of order) or on another endpoint is a 400 `idempotency_error`; a key whose first
//!   request is still running is a 409. Requests refused before execution (validation 400s and
//!   404s, 401, 429, 503, the `fail_next`/`failure_rate` faults) save nothing. Keys longer than
//!   255 characters are refused.
//! - `Stripe-Version`: absent means the account's version (2020-08-27 here); otherwise it must be
//!   a plausible version (`YYYY-MM-DD`, optionally `.name` and `; beta=v1` parts), or the request
//!   is refused with a 400. Answers carry `Stripe-Version` and `Request-Id`.
//! - Only Stripe's documented test payment methods (<https://docs.stripe.com/testing>) exist:
//!   `pm_card_visa`, `pm_card_mastercard`, ... pay; the decline ones are refused with a 402
//!   `card_error` and their decline code; `pm_card_threeDSecure2Required`,
//!   `pm_card_threeDSecureRequired` and `pm_card_authenticationRequired` leave the intent in
//!   `requires_action` (a 402 `authentication_required` with `off_session` or
//!   `error_on_requires_action`); `pm_card_pendingRefund` and `pm_card_refundFail` pay, and their
//!   refunds stay `pending` for `settle_ms`, then succeed or fail. Any other `pm_*` is a 400
//!   `resource_missing`.
//! - Amounts below the currency's minimum charge (50 for EUR and USD, 30 for GBP, 50 for JPY, ...)
//!   or over 8 digits are refused, as are currencies that are not ISO 4217 circulating
//!   currencies, three-decimal amounts not rounded to ten, refund reasons outside Stripe's enum,
//!   and parameters the simulator does not model (a 400 naming the parameter).
//!
//! Faults (set at start or at run time through `PUT /_sim/faults`), documented on [`Faults`].
//! `GET /_sim/stats` counts requests and effects.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The API version of the description the simulator follows, and the one it answers with when a
/// request names none.
pub const API_VERSION: &str = "2020-08-27";
/// Stripe keeps an idempotency key's saved answer at least this long.
pub const IDEMPOTENCY_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// Stripe's longest idempotency key.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;
/// Stripe's largest amount for most currencies: 8 digits.
pub const MAX_AMOUNT: u64 = 99_999_999;

/// Injected faults. Rates are shares between 0 and 1.
///
/// Two kinds of `500`, because Stripe saves an answer only once an endpoint has begun executing:
/// - before processing (`failure_rate`, `fail_next`; and `rate_limit_next` answers `429`, `down`
///   answers `503`): nothing happened, nothing is saved, the same key may be sent again and will
///   be processed;
/// - after execution began (`error_rate`, `error_next`: nothing was done; `error_after_effect_rate`,
///   `error_after_effect_next`: the effect happened, e.g. the card was charged): the `500` is
///   saved under the key and every retry with that key gets it again, for 24 hours, as Stripe
///   does. Only asking about the object (`GET`) tells what happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Share of requests answered 500 before anything happens (not saved under the key).
    pub failure_rate: f64,
    /// Share of requests that are processed but answered only after `hang_ms`.
    pub timeout_rate: f64,
    /// Added to every request before it is processed.
    pub latency_ms: u64,
    /// How long a "timed out" request hangs before its answer.
    pub hang_ms: u64,
    /// The next N requests fail with 500 before processing (not saved), whatever the rates.
    pub fail_next: u32,
    /// Every request fails with 503 until this is turned off.
    pub down: bool,
    /// The next N requests are turned away with 429 `rate_limit` before processing (not saved).
    pub rate_limit_next: u32,
    /// Share of POSTs that begin executing, do nothing, and answer 500 (saved under the key).
    pub error_rate: f64,
    /// The next N POSTs begin executing, do nothing, and answer 500 (saved under the key).
    pub error_next: u32,
    /// Share of POSTs that do their effect (charge, refund) and answer 500 (saved under the key).
    pub error_after_effect_rate: f64,
    /// The next N POSTs do their effect and answer 500 (saved under the key).
    pub error_after_effect_next: u32,
    /// The next N confirmations leave the payment `processing` for `settle_ms`, then `succeeded`
    /// (Stripe's asynchronous payment methods; cards settle at once).
    pub processing_next: u32,
    /// How long a `processing` payment or a `pending` refund takes to settle.
    pub settle_ms: u64,
    /// Every new refund gets this status and keeps it: `pending`, `succeeded`, `failed` or
    /// `canceled` (`null`: the test payment method decides, normally `succeeded`).
    pub refund_status: Option<String>,
    /// When set (e.g. `POST /v1/payment_intents/{id}/confirm`), the `error_*` faults only hit
    /// requests of that route.
    pub error_route: Option<String>,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            failure_rate: 0.0,
            timeout_rate: 0.0,
            latency_ms: 0,
            hang_ms: 30_000,
            fail_next: 0,
            down: false,
            rate_limit_next: 0,
            error_rate: 0.0,
            error_next: 0,
            error_after_effect_rate: 0.0,
            error_after_effect_next: 0,
            processing_next: 0,
            settle_ms: 200,
            refund_status: None,
            error_route: None,
        }
    }
}

impl Faults {
    fn check(&self) -> Result<(), String> {
        for (name, rate) in [
            ("failure_rate", self.failure_rate),
            ("timeout_rate", self.timeout_rate),
            ("error_rate", self.error_rate),
            ("error_after_effect_rate", self.error_after_effect_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!("{name} must be between 0 and 1, got {rate}"));
            }
        }
        if let Some(status) = &self.refund_status
            && !REFUND_STATUSES.contains(&status.as_str())
        {
            return Err(format!("refund_status must be one of {REFUND_STATUSES:?}, got {status}"));
        }
        Ok(())
    }
}

const REFUND_STATUSES: &[&str] = &["pending", "succeeded", "failed", "canceled"];

/// What the simulator saw and did, for assertions and the local system's report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Every request to `/v1`, answered or not.
    pub requests: u64,
    /// Requests by `METHOD route`, e.g. `POST /v1/payment_intents`.
    pub by_route: BTreeMap<String, u64>,
    /// Requests by the `Stripe-Version` they named (`none` when they named none).
    pub api_versions: BTreeMap<String, u64>,
    pub payment_intents_created: u64,
    /// Payment intents that moved money (status `succeeded`, at once or after `processing`).
    pub charges_succeeded: u64,
    pub charges_declined: u64,
    /// Confirmations that ended in `requires_action` (3-D Secure).
    pub charges_requiring_action: u64,
    /// Payment intents cancelled (`POST /v1/payment_intents/{id}/cancel`).
    pub payment_intents_canceled: u64,
    /// Confirmations that ended in `processing`.
    pub charges_processing: u64,
    pub refunds_created: u64,
    /// Refunds that ended `failed` or `canceled` (the money stayed with the merchant).
    pub refunds_failed: u64,
    /// Answers replayed from an idempotency key.
    pub idempotent_replays: u64,
    /// 500s, 503s and 429s answered before processing (not saved).
    pub injected_failures: u64,
    /// 500s answered after execution began (saved under the key).
    pub injected_errors: u64,
    pub injected_timeouts: u64,
}

#[derive(Debug, Clone)]
pub struct SimulatorConfig {
    /// The secret key clients must send as `Authorization: Bearer <key>`.
    pub api_key: String,
    pub faults: Faults,
    /// Seeds the fault dice and ids, for reproducible runs.
    pub seed: Option<u64>,
    /// How long an idempotency key's answer is kept (Stripe: 24 hours).
    pub idempotency_ttl: Duration,
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        Self {
            api_key: "sk_test_local".into(),
            faults: Faults::default(),
            seed: None,
            idempotency_ttl: IDEMPOTENCY_TTL,
        }
    }
}

#[derive(Debug, Clone)]
struct SavedAnswer {
    /// `METHOD path`, with the object's id.
    endpoint: String,
    /// Sorted, so parameters are compared regardless of order.
    params: Vec<(String, String)>,
    status: StatusCode,
    body: Value,
    saved_at: Instant,
}

/// How a payment that is not final yet ends.
#[derive(Debug, Clone, Copy)]
enum Pending {
    IntentSucceeds,
    RefundSucceeds,
    RefundFails,
}

#[derive(Debug, Default)]
struct Ledger {
    payment_intents: HashMap<String, Value>,
    refunds: HashMap<String, Value>,
    /// Charge id to payment intent id.
    charges: HashMap<String, String>,
    /// Amount refunded (or being refunded) per payment intent.
    refunded: HashMap<String, u64>,
    /// Objects that settle later: id, when, how.
    settling: Vec<(String, Instant, Pending)>,
    answers: HashMap<String, SavedAnswer>,
    in_flight: HashSet<String>,
    stats: Stats,
}

impl Ledger {
    /// Moves every object whose time has come to its final status.
    fn settle_due(&mut self, now: Instant) {
        let (due, later): (Vec<_>, Vec<_>) = self.settling.drain(..).partition(|(_, at, _)| *at <= now);
        self.settling = later;
        for (id, _, how) in due {
            match how {
                Pending::IntentSucceeds => {
                    if let Some(intent) = self.payment_intents.get_mut(&id) {
                        intent["status"] = json!("succeeded");
                        intent["amount_received"] = intent["amount"].clone();
                        intent["processing"] = Value::Null;
                        self.stats.charges_succeeded += 1;
                    }
                }
                Pending::RefundSucceeds => {
                    if let Some(refund) = self.refunds.get_mut(&id) {
                        refund["status"] = json!("succeeded");
                    }
                }
                Pending::RefundFails => {
                    if let Some(refund) = self.refunds.get_mut(&id) {
                        refund["status"] = json!("failed");
                        refund["failure_reason"] = json!("expired_or_canceled_card");
                        let (intent, amount) = (
                            refund["payment_intent"].as_str().unwrap_or("").to_owned(),
                            refund["amount"].as_u64().unwrap_or(0),
                        );
                        self.give_back(&intent, amount);
                    }
                }
            }
        }
    }

    /// A refund that failed: the money stays with the merchant, and may be refunded again.
    fn give_back(&mut self, intent: &str, amount: u64) {
        if let Some(refunded) = self.refunded.get_mut(intent) {
            *refunded = refunded.saturating_sub(amount);
        }
        self.stats.refunds_failed += 1;
    }
}

struct Inner {
    api_key: String,
    idempotency_ttl: Duration,
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
                idempotency_ttl: config.idempotency_ttl,
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
        let mut ledger = lock(&self.inner.ledger);
        ledger.settle_due(Instant::now());
        ledger.payment_intents.get(id).cloned()
    }

    /// Every payment intent whose `metadata[name]` is `value` (what Stripe's search API would
    /// find; for assertions only, it is not served).
    pub fn payment_intents_with_metadata(&self, name: &str, value: &str) -> Vec<Value> {
        let mut ledger = lock(&self.inner.ledger);
        ledger.settle_due(Instant::now());
        ledger.payment_intents.values().filter(|pi| pi["metadata"][name] == value).cloned().collect()
    }

    /// The stored refund, as `GET /v1/refunds/{id}` shows it.
    pub fn refund(&self, id: &str) -> Option<Value> {
        let mut ledger = lock(&self.inner.ledger);
        ledger.settle_due(Instant::now());
        ledger.refunds.get(id).cloned()
    }

    /// Total refunded (or being refunded) on a payment intent.
    pub fn refunded(&self, payment_intent: &str) -> u64 {
        let mut ledger = lock(&self.inner.ledger);
        ledger.settle_due(Instant::now());
        ledger.refunded.get(payment_intent).copied().unwrap_or(0)
    }

    pub fn router(&self) -> Router {
        Router::new()
            .route("/v1/payment_intents", post(create_payment_intent))
            .route("/v1/payment_intents/{id}", get(get_payment_intent))
            .route("/v1/payment_intents/{id}/confirm", post(confirm_payment_intent))
            .route("/v1/payment_intents/{id}/cancel", post(cancel_payment_intent))
            .route("/v1/refunds", post(create_refund))
            .route("/v1/refunds/{id}", get(get_refund))
            .route("/_sim/stats", get(|State(sim): State<Simulator>| async move { axum::Json(sim.stats()) }))
            .route("/_sim/faults", get(get_faults).put(put_faults))
            .fallback(|| async {
                let (status, body) = stripe_error(
                    StatusCode::NOT_FOUND,
                    "invalid_request_error",
                    None,
                    "Unrecognized request URL.",
                    None,
                );
                (status, axum::Json(body))
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

    /// Takes one from a `*_next` counter, or rolls a rate.
    fn take_fault(&self, pick: impl FnOnce(&mut Faults) -> (&mut u32, f64)) -> bool {
        let mut faults = lock(&self.inner.faults);
        let (next, rate) = pick(&mut faults);
        if *next > 0 {
            *next -= 1;
            return true;
        }
        drop(faults);
        self.roll(rate)
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

type Answer = (StatusCode, Value);

fn stripe_error(status: StatusCode, kind: &str, code: Option<&str>, message: &str, param: Option<&str>) -> Answer {
    let mut error = json!({ "type": kind, "message": message });
    if let Some(code) = code {
        error["code"] = json!(code);
        error["doc_url"] = json!(format!("https://stripe.com/docs/error-codes/{}", code.replace('_', "-")));
    }
    if let Some(param) = param {
        error["param"] = json!(param);
    }
    (status, json!({ "error": error }))
}

fn invalid(code: Option<&str>, message: impl Into<String>, param: Option<&str>) -> Answer {
    stripe_error(StatusCode::BAD_REQUEST, "invalid_request_error", code, &message.into(), param)
}

fn missing(what: &str, id: &str, param: Option<&str>) -> Answer {
    stripe_error(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        Some("resource_missing"),
        &format!("No such {what}: '{id}'"),
        param,
    )
}

fn api_error(status: StatusCode, message: &str) -> Answer {
    stripe_error(status, "api_error", None, message, None)
}

/// Form (or query) parameters: every key with its value, in order.
struct Params(Vec<(String, String)>);

/// The name a parameter belongs to: `metadata` for `metadata[order_id]`.
fn base_name(key: &str) -> &str {
    key.split('[').next().unwrap_or(key)
}

impl Params {
    fn parse(raw: &[u8]) -> Result<Self, Answer> {
        serde_urlencoded::from_bytes::<Vec<(String, String)>>(raw)
            .map(Params)
            .map_err(|err| invalid(None, format!("Invalid request body: {err}"), None))
    }

    /// Refuses parameters outside `supported`; those Stripe knows but the simulator does not
    /// model (`modelled_elsewhere`) get a message that says so.
    fn check_known(&self, supported: &[&str], known_unsupported: &[&str]) -> Result<(), Answer> {
        for (key, _) in &self.0 {
            let base = base_name(key);
            if supported.contains(&base) {
                continue;
            }
            let message = if known_unsupported.contains(&base) {
                format!("The payment provider simulator does not model the parameter {base}.")
            } else {
                format!("Received unknown parameter: {key}")
            };
            return Err(invalid(Some("parameter_unknown"), message, Some(base)));
        }
        Ok(())
    }

    /// A plain (not nested, not repeated) parameter.
    fn scalar(&self, name: &str) -> Result<Option<&str>, Answer> {
        let mut found = None;
        for (key, value) in &self.0 {
            if base_name(key) != name {
                continue;
            }
            if key != name || found.is_some() {
                return Err(invalid(
                    Some("parameter_invalid_string"),
                    format!("Invalid {name}: must be a single value"),
                    Some(name),
                ));
            }
            found = Some(value.as_str());
        }
        Ok(found)
    }

    fn string(&self, name: &str, max_len: usize) -> Result<Option<&str>, Answer> {
        match self.scalar(name)? {
            Some(value) if value.chars().count() > max_len => Err(invalid(
                Some("parameter_invalid_string_too_long"),
                format!("Invalid {name}: must be at most {max_len} characters"),
                Some(name),
            )),
            other => Ok(other),
        }
    }

    fn boolean(&self, name: &str) -> Result<Option<bool>, Answer> {
        match self.scalar(name)? {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(other) => {
                Err(invalid(Some("parameter_invalid_boolean"), format!("Invalid boolean: {other}"), Some(name)))
            }
        }
    }

    fn integer(&self, name: &str) -> Result<Option<u64>, Answer> {
        match self.scalar(name)? {
            None => Ok(None),
            Some(raw) => raw
                .parse::<u64>()
                .map(Some)
                .map_err(|_| invalid(Some("parameter_invalid_integer"), format!("Invalid integer: {raw}"), Some(name))),
        }
    }

    /// An array, as Stripe accepts it: `name[]=a`, `name[0]=a`, or the name repeated.
    fn array(&self, name: &str) -> Result<Option<Vec<&str>>, Answer> {
        let mut items = Vec::new();
        let mut seen = false;
        for (key, value) in &self.0 {
            if base_name(key) != name {
                continue;
            }
            seen = true;
            let index = &key[name.len()..];
            let plain = index.is_empty() || index == "[]";
            let numbered = index
                .strip_prefix('[')
                .and_then(|i| i.strip_suffix(']'))
                .is_some_and(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit()));
            if !(plain || numbered) {
                return Err(invalid(Some("parameter_invalid_array"), format!("Invalid array: {key}"), Some(name)));
            }
            if !(index.is_empty() && value.is_empty()) {
                items.push(value.as_str());
            }
        }
        Ok(seen.then_some(items))
    }

    /// `metadata[key]=value` pairs (an empty `metadata=` is an empty set), checked as Stripe does:
    /// at most 50 keys of at most 40 characters, values of at most 500.
    fn metadata(&self) -> Result<Value, Answer> {
        let mut metadata = serde_json::Map::new();
        for (key, value) in &self.0 {
            if base_name(key) != "metadata" {
                continue;
            }
            if key == "metadata" {
                if value.is_empty() {
                    continue;
                }
                return Err(invalid(
                    Some("parameter_invalid_object"),
                    "Invalid object: metadata must be a set of key-value pairs",
                    Some("metadata"),
                ));
            }
            let Some(name) =
                key.strip_prefix("metadata[").and_then(|k| k.strip_suffix(']')).filter(|k| !k.contains('['))
            else {
                return Err(invalid(
                    Some("parameter_invalid_object"),
                    format!("Invalid metadata key: {key}"),
                    Some("metadata"),
                ));
            };
            if name.is_empty() || name.chars().count() > 40 || value.chars().count() > 500 {
                return Err(invalid(
                    Some("parameter_invalid_string"),
                    "Metadata keys must be 1 to 40 characters and values at most 500",
                    Some("metadata"),
                ));
            }
            metadata.insert(name.to_owned(), json!(value));
        }
        if metadata.len() > 50 {
            return Err(invalid(None, "You can have at most 50 metadata keys", Some("metadata")));
        }
        Ok(Value::Object(metadata))
    }

    /// `expand[]`: the simulator expands nothing, so any value is refused as Stripe refuses a
    /// field it cannot expand.
    fn no_expand(&self) -> Result<(), Answer> {
        match self.array("expand")? {
            Some(fields) if !fields.is_empty() => {
                Err(invalid(None, format!("This property cannot be expanded ({}).", fields[0]), Some("expand")))
            }
            _ => Ok(()),
        }
    }

    fn sorted(&self) -> Vec<(String, String)> {
        let mut params = self.0.clone();
        params.sort();
        params
    }
}

/// A plausible `Stripe-Version`: `YYYY-MM-DD` from 2011 on, optionally `.name` (versions since
/// 2024-09-30 are named, e.g. `2024-09-30.acacia`) and `; feature=v1` beta parts.
pub fn plausible_api_version(version: &str) -> bool {
    let mut parts = version.split(';');
    let main = parts.next().unwrap_or_default().trim();
    let (date, name) = main.split_once('.').map_or((main, None), |(d, n)| (d, Some(n)));
    let name_ok = name.is_none_or(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_lowercase()));
    let fields: Vec<&str> = date.split('-').collect();
    let date_ok = match fields.as_slice() {
        [y, m, d] if y.len() == 4 && m.len() == 2 && d.len() == 2 => {
            match (y.parse::<u32>(), m.parse::<u32>(), d.parse::<u32>()) {
                (Ok(y), Ok(m), Ok(d)) => (2011..=2100).contains(&y) && (1..=12).contains(&m) && (1..=31).contains(&d),
                _ => false,
            }
        }
        _ => false,
    };
    let betas_ok = parts.all(|beta| beta.trim().split_once('=').is_some_and(|(k, v)| !k.is_empty() && !v.is_empty()));
    date_ok && name_ok && betas_ok
}

/// What a request did: refused before execution (nothing saved), or executed (saved under the
/// idempotency key, whatever the answer).
enum Outcome {
    Refused(Answer),
    Executed(Answer),
}

/// Validates a request, then returns its effect: run only once the request is known valid.
type Effect = Box<dyn FnOnce(&Simulator, &mut Ledger) -> Answer + Send>;

fn respond((status, body): Answer, replayed: bool, version: &str, sim: &Simulator) -> Response {
    let mut response = (status, axum::Json(body)).into_response();
    let headers = response.headers_mut();
    if replayed {
        headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    if let Ok(version) = HeaderValue::from_str(version) {
        headers.insert("stripe-version", version);
    }
    if let Ok(id) = HeaderValue::from_str(&sim.new_id("req")) {
        headers.insert("request-id", id);
    }
    response
}

/// Runs one Stripe call: API key, version, faults before processing, idempotency, validation,
/// faults after execution began, then the effect on the ledger.
async fn stripe_call(
    sim: &Simulator,
    route: &'static str,
    endpoint: String,
    headers: &HeaderMap,
    raw_params: &[u8],
    operation: impl FnOnce(&Ledger, &Params) -> Result<Effect, Answer>,
) -> Response {
    let is_post = route.starts_with("POST");
    let named_version =
        headers.get("stripe-version").map(|v| v.to_str().map(str::to_owned).unwrap_or_else(|_| "<not text>".into()));
    {
        let mut ledger = lock(&sim.inner.ledger);
        ledger.stats.requests += 1;
        *ledger.stats.by_route.entry(route.to_owned()).or_default() += 1;
        *ledger.stats.api_versions.entry(named_version.clone().unwrap_or_else(|| "none".into())).or_default() += 1;
    }
    let version = named_version.clone().unwrap_or_else(|| API_VERSION.to_owned());
    let answer = |answer: Answer, replayed: bool| respond(answer, replayed, &version, sim);
    let bearer = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    if bearer != Some(sim.inner.api_key.as_str()) {
        let message = match bearer {
            None => "You did not provide an API key. Provide it as `Authorization: Bearer <key>`.".to_owned(),
            Some(_) => "Invalid API Key provided.".to_owned(),
        };
        return answer(stripe_error(StatusCode::UNAUTHORIZED, "invalid_request_error", None, &message, None), false);
    }
    if let Some(named) = &named_version
        && !plausible_api_version(named)
    {
        let message = format!("Invalid Stripe API version: {named}");
        return answer(invalid(None, message, None), false);
    }

    // Turned away before processing: nothing saved, the same key can be sent again.
    let faults = sim.faults();
    let turned_away = if faults.down {
        Some((StatusCode::SERVICE_UNAVAILABLE, "api_error", "Simulated outage: the provider is down."))
    } else if sim.take_fault(|f| (&mut f.rate_limit_next, 0.0)) {
        Some((StatusCode::TOO_MANY_REQUESTS, "invalid_request_error", "Too many requests hit the API too quickly."))
    } else if sim.take_fault(|f| (&mut f.fail_next, f.failure_rate)) {
        Some((StatusCode::INTERNAL_SERVER_ERROR, "api_error", "Simulated failure before processing."))
    } else {
        None
    };
    if let Some((status, kind, message)) = turned_away {
        lock(&sim.inner.ledger).stats.injected_failures += 1;
        let (status, mut body) = stripe_error(status, kind, None, message, None);
        if status == StatusCode::TOO_MANY_REQUESTS {
            body["error"]["code"] = json!("rate_limit");
        }
        let mut response = answer((status, body), false);
        response.headers_mut().insert("stripe-should-retry", HeaderValue::from_static("true"));
        return response;
    }

    let params = match Params::parse(raw_params) {
        Ok(params) => params,
        Err(refused) => return answer(refused, false),
    };
    let key = if is_post {
        headers.get("idempotency-key").map(|v| v.to_str().unwrap_or("\u{fffd}").to_owned())
    } else {
        None
    };
    if let Some(key) = &key {
        if key.is_empty() || key.chars().count() > MAX_IDEMPOTENCY_KEY_LEN {
            let message =
                format!("Invalid Idempotency-Key: it must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} characters long.");
            return answer(invalid(None, message, None), false);
        }
        let mut ledger = lock(&sim.inner.ledger);
        if ledger.answers.get(key).is_some_and(|saved| saved.saved_at.elapsed() >= sim.inner.idempotency_ttl) {
            ledger.answers.remove(key); // pruned: the key starts afresh
        }
        if let Some(saved) = ledger.answers.get(key).cloned() {
            if saved.endpoint != endpoint {
                let message = format!(
                    "Keys for idempotent requests can only be used for the same endpoint they were first used for \
                     ('{}' vs '{endpoint}'). Try using a key other than '{key}' if you meant to execute a different \
                     request.",
                    saved.endpoint
                );
                return answer(stripe_error(StatusCode::BAD_REQUEST, "idempotency_error", None, &message, None), false);
            }
            if saved.params != params.sorted() {
                let message = format!(
                    "Keys for idempotent requests can only be used with the same parameters they were first \
                     used with. Try using a key other than '{key}' if you meant to execute a different request."
                );
                return answer(stripe_error(StatusCode::BAD_REQUEST, "idempotency_error", None, &message, None), false);
            }
            ledger.stats.idempotent_replays += 1;
            return answer((saved.status, saved.body), true);
        }
        if !ledger.in_flight.insert(key.clone()) {
            let conflict = stripe_error(
                StatusCode::CONFLICT,
                "idempotency_error",
                Some("idempotency_key_in_use"),
                "There is currently another in-progress request using this idempotency key (that probably means a \
                 request you sent timed out). Try again later.",
                None,
            );
            return answer(conflict, false);
        }
    }
    if faults.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(faults.latency_ms)).await;
    }
    let outcome = {
        let mut ledger = lock(&sim.inner.ledger);
        ledger.settle_due(Instant::now());
        let targeted = is_post && faults.error_route.as_deref().is_none_or(|r| r == route);
        let outcome = match operation(&ledger, &params) {
            Err(refused) => Outcome::Refused(refused),
            Ok(_) if targeted && sim.take_fault(|f| (&mut f.error_next, f.error_rate)) => {
                ledger.stats.injected_errors += 1;
                Outcome::Executed(api_error(StatusCode::INTERNAL_SERVER_ERROR, "Simulated error during execution."))
            }
            Ok(effect) => {
                let done = effect(sim, &mut ledger);
                if targeted && sim.take_fault(|f| (&mut f.error_after_effect_next, f.error_after_effect_rate)) {
                    ledger.stats.injected_errors += 1;
                    Outcome::Executed(api_error(StatusCode::INTERNAL_SERVER_ERROR, "Simulated error after execution."))
                } else {
                    Outcome::Executed(done)
                }
            }
        };
        if let Some(key) = &key {
            ledger.in_flight.remove(key);
            if let Outcome::Executed((status, body)) = &outcome {
                let saved = SavedAnswer {
                    endpoint: endpoint.clone(),
                    params: params.sorted(),
                    status: *status,
                    body: body.clone(),
                    saved_at: Instant::now(),
                };
                ledger.answers.insert(key.clone(), saved);
            }
        }
        outcome
    };
    let (Outcome::Refused(result) | Outcome::Executed(result)) = outcome;
    if sim.roll(faults.timeout_rate) {
        lock(&sim.inner.ledger).stats.injected_timeouts += 1;
        tokio::time::sleep(Duration::from_millis(faults.hang_ms)).await;
    }
    answer(result, false)
}

/// Create parameters the simulator models; the rest of Stripe's are refused by name.
const CREATE_PARAMS: &[&str] = &[
    "amount",
    "currency",
    "confirm",
    "payment_method",
    "payment_method_types",
    "capture_method",
    "confirmation_method",
    "description",
    "metadata",
    "off_session",
    "error_on_requires_action",
    "return_url",
    "receipt_email",
    "statement_descriptor",
    "statement_descriptor_suffix",
    "use_stripe_sdk",
    "expand",
];
const CREATE_UNMODELLED: &[&str] = &[
    "application_fee_amount",
    "automatic_payment_methods",
    "customer",
    "mandate",
    "mandate_data",
    "on_behalf_of",
    "payment_method_data",
    "payment_method_options",
    "setup_future_usage",
    "shipping",
    "transfer_data",
    "transfer_group",
];
const CONFIRM_PARAMS: &[&str] = &[
    "payment_method",
    "off_session",
    "error_on_requires_action",
    "return_url",
    "receipt_email",
    "use_stripe_sdk",
    "client_secret",
    "expand",
];
const CONFIRM_UNMODELLED: &[&str] = &[
    "mandate",
    "mandate_data",
    "payment_method_data",
    "payment_method_options",
    "payment_method_types",
    "setup_future_usage",
    "shipping",
];
const REFUND_PARAMS: &[&str] = &["payment_intent", "charge", "amount", "reason", "metadata", "expand"];
const REFUND_UNMODELLED: &[&str] = &["refund_application_fee", "reverse_transfer"];
/// Stripe's `reason` enum for a refund request.
const REFUND_REASONS: &[&str] = &["duplicate", "fraudulent", "requested_by_customer"];

/// How one of Stripe's test payment methods behaves when confirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TestCard {
    Pays,
    /// Pays; its refunds stay `pending` for `settle_ms`, then succeed.
    PaysRefundPending,
    /// Pays; its refunds stay `pending` for `settle_ms`, then fail.
    PaysRefundFails,
    /// 3-D Secure required: the customer must authenticate.
    NeedsAuthentication,
    /// Declined: `(code, decline_code, message)`.
    Declined(&'static str, Option<&'static str>, &'static str),
}

/// Stripe's documented test payment methods (<https://docs.stripe.com/testing>); `None` for a
/// payment method that does not exist.
fn test_card(payment_method: &str) -> Option<TestCard> {
    let declined = "card_declined";
    let generic = TestCard::Declined(declined, Some("generic_decline"), "Your card was declined.");
    Some(match payment_method {
        "pm_card_visa"
        | "pm_card_visa_debit"
        | "pm_card_mastercard"
        | "pm_card_mastercard_debit"
        | "pm_card_mastercard_prepaid"
        | "pm_card_amex"
        | "pm_card_discover"
        | "pm_card_diners"
        | "pm_card_jcb"
        | "pm_card_unionpay"
        | "pm_card_us"
        | "pm_card_threeDSecureOptional"
        | "pm_card_threeDSecure2Optional" => TestCard::Pays,
        "pm_card_pendingRefund" => TestCard::PaysRefundPending,
        "pm_card_refundFail" => TestCard::PaysRefundFails,
        "pm_card_threeDSecure2Required" | "pm_card_threeDSecureRequired" | "pm_card_authenticationRequired" => {
            TestCard::NeedsAuthentication
        }
        "pm_card_visa_chargeDeclined" | "pm_card_chargeDeclined" => generic,
        "pm_card_visa_chargeDeclinedInsufficientFunds" | "pm_card_chargeDeclinedInsufficientFunds" => {
            TestCard::Declined(declined, Some("insufficient_funds"), "Your card has insufficient funds.")
        }
        "pm_card_visa_chargeDeclinedLostCard" | "pm_card_chargeDeclinedLostCard" => {
            TestCard::Declined(declined, Some("lost_card"), "Your card was declined.")
        }
        "pm_card_visa_chargeDeclinedStolenCard" | "pm_card_chargeDeclinedStolenCard" => {
            TestCard::Declined(declined, Some("stolen_card"), "Your card was declined.")
        }
        "pm_card_chargeDeclinedFraudulent" => {
            TestCard::Declined(declined, Some("fraudulent"), "Your card was declined.")
        }
        "pm_card_chargeDeclinedExpiredCard" => TestCard::Declined("expired_card", None, "Your card has expired."),
        "pm_card_chargeDeclinedIncorrectCvc" => {
            TestCard::Declined("incorrect_cvc", None, "Your card's security code is incorrect.")
        }
        "pm_card_chargeDeclinedProcessingError" => TestCard::Declined(
            "processing_error",
            None,
            "An error occurred while processing your card. Try again in a little bit.",
        ),
        _ => return None,
    })
}

fn check_payment_method(payment_method: &str) -> Result<TestCard, Answer> {
    test_card(payment_method).ok_or_else(|| {
        invalid(Some("resource_missing"), format!("No such PaymentMethod: '{payment_method}'"), Some("payment_method"))
    })
}

/// Decimals of a currency's smallest unit, as Stripe counts amounts; `None` for a code that is not
/// a circulating ISO 4217 currency.
fn currency_exponent(currency: &str) -> Option<u8> {
    const ZERO_DECIMAL: &[&str] = &[
        "bif", "clp", "djf", "gnf", "isk", "jpy", "kmf", "krw", "pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf",
    ];
    const THREE_DECIMAL: &[&str] = &["bhd", "iqd", "jod", "kwd", "lyd", "omr", "tnd"];
    if ZERO_DECIMAL.contains(&currency) {
        return Some(0);
    }
    if THREE_DECIMAL.contains(&currency) {
        return Some(3);
    }
    TWO_DECIMAL.split_whitespace().any(|c| c == currency).then_some(2)
}

/// The other circulating ISO 4217 currencies (two decimals).
const TWO_DECIMAL: &str = "aed afn all amd aoa ars aud awg azn bam bbd bdt bmd bnd bob brl bsd btn bwp byn bzd cad cdf \
    chf cny cop crc cup cve czk dkk dop dzd egp ern etb eur fjd fkp gbp gel ghs gip gmd gtq gyd hkd hnl htg huf idr ils \
    inr irr jmd kes kgs khr kpw kyd kzt lak lbp lkr lrd lsl mad mdl mga mkd mmk mnt mop mru mur mvr mwk mxn myr mzn nad \
    ngn nio nok npr nzd pab pen pgk php pkr pln qar ron rsd rub sar sbd scr sdg sek sgd shp sle sos srd ssp stn svc syp \
    szl thb tjs tmt top try ttd twd tzs uah usd uyu uzs ved wst xcd xcg yer zar zmw zwg";

/// Stripe's minimum charge in the currency's smallest unit (<https://docs.stripe.com/currencies#minimum-and-maximum-charge-amounts>);
/// for currencies that table does not list, 50 of a two-decimal unit, 500 of a three-decimal one,
/// 1 of a zero-decimal one.
fn minimum_charge(currency: &str, exponent: u8) -> u64 {
    match currency {
        "usd" | "eur" | "aud" | "brl" | "cad" | "chf" | "inr" | "nzd" | "sgd" => 50,
        "gbp" => 30,
        "aed" | "myr" | "pln" | "ron" => 200,
        "dkk" => 250,
        "nok" | "sek" => 300,
        "hkd" => 400,
        "mxn" | "thb" => 1000,
        "czk" => 1500,
        "huf" => 17500,
        "jpy" => 50,
        _ => match exponent {
            0 => 1,
            3 => 500,
            _ => 50,
        },
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// A payment method as Stripe shows it inside a card error.
fn payment_method_object(id: &str) -> Value {
    json!({
        "id": id,
        "object": "payment_method",
        "billing_details": {
            "address": {"city": null, "country": null, "line1": null, "line2": null, "postal_code": null, "state": null},
            "email": null, "name": null, "phone": null,
        },
        "created": now_secs(),
        "customer": null,
        "livemode": false,
        "metadata": {},
        "type": "card",
    })
}

/// Options a confirmation carries (in the create request with `confirm=true`, or the confirm
/// request itself).
#[derive(Debug, Clone, Copy, Default)]
struct ConfirmOptions {
    off_session: bool,
    error_on_requires_action: bool,
}

fn confirm_options(params: &Params, confirming: bool) -> Result<ConfirmOptions, Answer> {
    let off_session = match params.scalar("off_session")? {
        None | Some("false") => false,
        Some("true" | "one_off" | "recurring") => true,
        Some(other) => {
            return Err(invalid(
                Some("parameter_invalid_string"),
                format!("Invalid off_session: {other}"),
                Some("off_session"),
            ));
        }
    };
    let error_on_requires_action = params.boolean("error_on_requires_action")?.unwrap_or(false);
    for (name, set) in [
        ("off_session", params.scalar("off_session")?.is_some()),
        ("error_on_requires_action", params.scalar("error_on_requires_action")?.is_some()),
        ("return_url", params.scalar("return_url")?.is_some()),
    ] {
        if set && !confirming {
            return Err(invalid(
                None,
                format!("You can only use {name} when confirming the PaymentIntent (confirm=true)."),
                Some(name),
            ));
        }
    }
    params.string("return_url", 5000)?;
    params.boolean("use_stripe_sdk")?;
    Ok(ConfirmOptions { off_session, error_on_requires_action })
}

fn card_error(intent: &Value, payment_method: &str, code: &str, decline_code: Option<&str>, message: &str) -> Value {
    let mut error = json!({
        "type": "card_error",
        "code": code,
        "message": message,
        "doc_url": format!("https://stripe.com/docs/error-codes/{}", code.replace('_', "-")),
        "payment_method": payment_method_object(payment_method),
    });
    if let Some(charge) = intent["latest_charge"].as_str() {
        error["charge"] = json!(charge);
    }
    if let Some(decline_code) = decline_code {
        error["decline_code"] = json!(decline_code);
    }
    error
}

/// Confirms `intent` (the caller checked it may be confirmed) with `payment_method`.
fn confirm(
    sim: &Simulator,
    ledger: &mut Ledger,
    intent: &mut Value,
    card: TestCard,
    options: ConfirmOptions,
) -> Answer {
    let id = intent["id"].as_str().unwrap_or_default().to_owned();
    let payment_method = intent["payment_method"].as_str().unwrap_or_default().to_owned();
    let decline = |ledger: &mut Ledger, intent: &mut Value, code: &str, decline_code: Option<&str>, message: &str| {
        let charge = sim.new_id("ch");
        ledger.charges.insert(charge.clone(), id.clone());
        intent["latest_charge"] = json!(charge);
        intent["status"] = json!("requires_payment_method");
        let error = card_error(intent, &payment_method, code, decline_code, message);
        intent["last_payment_error"] = error.clone();
        intent["next_action"] = Value::Null;
        ledger.stats.charges_declined += 1;
        let mut error = error;
        error["payment_intent"] = intent.clone();
        (StatusCode::PAYMENT_REQUIRED, json!({ "error": error }))
    };
    match card {
        TestCard::Declined(code, decline_code, message) => decline(ledger, intent, code, decline_code, message),
        TestCard::NeedsAuthentication if options.off_session || options.error_on_requires_action => decline(
            ledger,
            intent,
            "authentication_required",
            Some("authentication_required"),
            "Your card was declined. This transaction requires authentication.",
        ),
        TestCard::NeedsAuthentication => {
            intent["status"] = json!("requires_action");
            intent["next_action"] =
                json!({ "type": "use_stripe_sdk", "use_stripe_sdk": { "type": "three_d_secure_redirect" } });
            intent["last_payment_error"] = Value::Null;
            ledger.stats.charges_requiring_action += 1;
            (StatusCode::OK, intent.clone())
        }
        TestCard::Pays | TestCard::PaysRefundPending | TestCard::PaysRefundFails => {
            let charge = sim.new_id("ch");
            ledger.charges.insert(charge.clone(), id.clone());
            intent["latest_charge"] = json!(charge);
            intent["last_payment_error"] = Value::Null;
            intent["next_action"] = Value::Null;
            if sim.take_fault(|f| (&mut f.processing_next, 0.0)) {
                intent["status"] = json!("processing");
                intent["processing"] = json!({ "type": "card", "card": {} });
                ledger.stats.charges_processing += 1;
                let settle = Duration::from_millis(sim.faults().settle_ms);
                ledger.settling.push((id, Instant::now() + settle, Pending::IntentSucceeds));
            } else {
                intent["status"] = json!("succeeded");
                intent["amount_received"] = intent["amount"].clone();
                ledger.stats.charges_succeeded += 1;
            }
            (StatusCode::OK, intent.clone())
        }
    }
}

async fn create_payment_intent(State(sim): State<Simulator>, headers: HeaderMap, body: Bytes) -> Response {
    let endpoint = "POST /v1/payment_intents".to_owned();
    stripe_call(&sim, "POST /v1/payment_intents", endpoint, &headers, &body, |_, params| {
        params.check_known(CREATE_PARAMS, CREATE_UNMODELLED)?;
        params.no_expand()?;
        let currency = match params.scalar("currency")? {
            Some(c) => c.to_ascii_lowercase(),
            None => return Err(invalid(Some("parameter_missing"), "Missing required param: currency.", Some("currency"))),
        };
        let Some(exponent) = currency_exponent(&currency) else {
            return Err(invalid(
                Some("parameter_invalid_string"),
                format!("Invalid currency: {currency}. Stripe currently supports these currencies: ISO 4217 codes."),
                Some("currency"),
            ));
        };
        let amount = match params.integer("amount")? {
            Some(amount) => amount,
            None => return Err(invalid(Some("parameter_missing"), "Missing required param: amount.", Some("amount"))),
        };
        let minimum = minimum_charge(&currency, exponent);
        if amount < minimum {
            return Err(invalid(
                Some("amount_too_small"),
                format!("Amount must be at least {minimum} {currency} (in the currency's smallest unit)"),
                Some("amount"),
            ));
        }
        if amount > MAX_AMOUNT {
            return Err(invalid(Some("amount_too_large"), format!("Amount must be no more than {MAX_AMOUNT}"), Some("amount")));
        }
        if exponent == 3 && !amount.is_multiple_of(10) {
            return Err(invalid(
                Some("invalid_amount"),
                format!("Amounts in {currency} must be rounded to the nearest ten (the last digit 0)."),
                Some("amount"),
            ));
        }
        for (name, only) in [("capture_method", "automatic"), ("confirmation_method", "automatic")] {
            match params.scalar(name)? {
                None => {}
                Some(value) if value == only => {}
                Some("manual") => {
                    return Err(invalid(None, format!("The simulator only models {name}={only}."), Some(name)));
                }
                Some(other) => {
                    return Err(invalid(Some("parameter_invalid_string"), format!("Invalid {name}: {other}"), Some(name)));
                }
            }
        }
        if let Some(types) = params.array("payment_method_types")?
            && (types.is_empty() || types.iter().any(|t| *t != "card"))
        {
            return Err(invalid(
                Some("payment_intent_invalid_parameter"),
                "The simulator only models payment_method_types=[card].",
                Some("payment_method_types"),
            ));
        }
        let confirm_now = params.boolean("confirm")?.unwrap_or(false);
        let options = confirm_options(params, confirm_now)?;
        let payment_method = params.string("payment_method", 5000)?.map(str::to_owned);
        let card = payment_method.as_deref().map(check_payment_method).transpose()?;
        if confirm_now && card.is_none() {
            return Err(invalid(
                Some("parameter_missing"),
                "You must provide a payment_method to confirm this PaymentIntent.",
                Some("payment_method"),
            ));
        }
        let description = params.string("description", 1000)?.map(str::to_owned);
        let receipt_email = params.string("receipt_email", 800)?.map(str::to_owned);
        let statement_descriptor = params.string("statement_descriptor", 22)?.map(str::to_owned);
        let statement_descriptor_suffix = params.string("statement_descriptor_suffix", 22)?.map(str::to_owned);
        let metadata = params.metadata()?;
        Ok(Box::new(move |sim: &Simulator, ledger: &mut Ledger| {
            let id = sim.new_id("pi");
            let secret: String = sim.new_id("secret");
            let mut intent = json!({
                "id": id,
                "object": "payment_intent",
                "amount": amount,
                "amount_capturable": 0,
                "amount_received": 0,
                "application": null,
                "application_fee_amount": null,
                "automatic_payment_methods": null,
                "canceled_at": null,
                "cancellation_reason": null,
                "capture_method": "automatic",
                "charges": {"object": "list", "data": [], "has_more": false, "url": format!("/v1/charges?payment_intent={id}")},
                "client_secret": format!("{id}_{secret}"),
                "confirmation_method": "automatic",
                "created": now_secs(),
                "currency": currency,
                "customer": null,
                "description": description,
                "invoice": null,
                "last_payment_error": null,
                "latest_charge": null,
                "livemode": false,
                "metadata": metadata,
                "next_action": null,
                "on_behalf_of": null,
                "payment_method": payment_method,
                "payment_method_options": {},
                "payment_method_types": ["card"],
                "processing": null,
                "receipt_email": receipt_email,
                "review": null,
                "setup_future_usage": null,
                "shipping": null,
                "statement_descriptor": statement_descriptor,
                "statement_descriptor_suffix": statement_descriptor_suffix,
                "status": if card.is_some() { "requires_confirmation" } else { "requires_payment_method" },
                "transfer_data": null,
                "transfer_group": null,
            });
            ledger.stats.payment_intents_created += 1;
            let answer = match card {
                Some(card) if confirm_now => confirm(sim, ledger, &mut intent, card, options),
                _ => (StatusCode::OK, intent.clone()),
            };
            ledger.payment_intents.insert(id, intent);
            answer
        }) as Effect)
    })
    .await
}

async fn confirm_payment_intent(
    State(sim): State<Simulator>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let endpoint = format!("POST /v1/payment_intents/{id}/confirm");
    stripe_call(&sim, "POST /v1/payment_intents/{id}/confirm", endpoint, &headers, &body, |ledger, params| {
        params.check_known(CONFIRM_PARAMS, CONFIRM_UNMODELLED)?;
        params.no_expand()?;
        let options = confirm_options(params, true)?;
        params.string("receipt_email", 800)?;
        let Some(intent) = ledger.payment_intents.get(&id) else {
            return Err(missing("payment_intent", &id, Some("intent")));
        };
        if let Some(secret) = params.scalar("client_secret")?
            && intent["client_secret"] != secret
        {
            return Err(invalid(
                None,
                "The client_secret provided does not match this PaymentIntent.",
                Some("client_secret"),
            ));
        }
        let payment_method = match params.string("payment_method", 5000)? {
            Some(pm) => pm.to_owned(),
            None => match intent["payment_method"].as_str() {
                Some(pm) => pm.to_owned(),
                None => {
                    return Err(invalid(
                        Some("parameter_missing"),
                        "You must provide a payment_method to confirm this PaymentIntent.",
                        Some("payment_method"),
                    ));
                }
            },
        };
        let card = check_payment_method(&payment_method)?;
        let id = id.clone();
        Ok(Box::new(move |sim: &Simulator, ledger: &mut Ledger| {
            let Some(mut intent) = ledger.payment_intents.get(&id).cloned() else {
                return missing("payment_intent", &id, Some("intent"));
            };
            // A state error is an answer of the executed request: it is saved like any other.
            let status = intent["status"].as_str().unwrap_or_default().to_owned();
            if status != "requires_confirmation" && status != "requires_payment_method" {
                let mut answer = invalid(
                    Some("payment_intent_unexpected_state"),
                    format!(
                        "You cannot confirm this PaymentIntent because it has a status of {status}. Only a \
                         PaymentIntent with one of the following statuses may be confirmed: requires_confirmation, \
                         requires_payment_method."
                    ),
                    None,
                );
                answer.1["error"]["payment_intent"] = intent.clone();
                return answer;
            }
            intent["payment_method"] = json!(payment_method);
            let answer = confirm(sim, ledger, &mut intent, card, options);
            ledger.payment_intents.insert(id.clone(), intent);
            answer
        }) as Effect)
    })
    .await
}

/// <https://docs.stripe.com/api/payment_intents/cancel>: "You can cancel a PaymentIntent object
/// when it's in one of these statuses: requires_payment_method, requires_capture,
/// requires_confirmation, requires_action or, in rare cases, processing" (not modelled: a
/// `processing` intent here settles on its own). Any other status is a saved
/// `payment_intent_unexpected_state` error.
const CANCEL_PARAMS: &[&str] = &["cancellation_reason", "expand"];
const CANCELLABLE: &[&str] =
    &["requires_payment_method", "requires_capture", "requires_confirmation", "requires_action"];
const CANCELLATION_REASONS: &[&str] = &["duplicate", "fraudulent", "requested_by_customer", "abandoned"];

async fn cancel_payment_intent(
    State(sim): State<Simulator>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let endpoint = format!("POST /v1/payment_intents/{id}/cancel");
    stripe_call(&sim, "POST /v1/payment_intents/{id}/cancel", endpoint, &headers, &body, |ledger, params| {
        params.check_known(CANCEL_PARAMS, &[])?;
        params.no_expand()?;
        let reason = params.string("cancellation_reason", 5000)?.map(str::to_owned);
        if let Some(reason) = &reason
            && !CANCELLATION_REASONS.contains(&reason.as_str())
        {
            return Err(invalid(
                None,
                format!("Invalid cancellation_reason: must be one of {}", CANCELLATION_REASONS.join(", ")),
                Some("cancellation_reason"),
            ));
        }
        if !ledger.payment_intents.contains_key(&id) {
            return Err(missing("payment_intent", &id, Some("intent")));
        }
        let id = id.clone();
        Ok(Box::new(move |_: &Simulator, ledger: &mut Ledger| {
            let Some(mut intent) = ledger.payment_intents.get(&id).cloned() else {
                return missing("payment_intent", &id, Some("intent"));
            };
            let status = intent["status"].as_str().unwrap_or_default().to_owned();
            if !CANCELLABLE.contains(&status.as_str()) {
                let mut answer = invalid(
                    Some("payment_intent_unexpected_state"),
                    format!(
                        "You cannot cancel this PaymentIntent because it has a status of {status}. Only a \
                         PaymentIntent with one of the following statuses may be canceled: {}.",
                        CANCELLABLE.join(", ")
                    ),
                    None,
                );
                answer.1["error"]["payment_intent"] = intent.clone();
                return answer;
            }
            intent["status"] = json!("canceled");
            intent["canceled_at"] = json!(now_secs());
            intent["cancellation_reason"] = json!(reason);
            intent["next_action"] = Value::Null;
            ledger.payment_intents.insert(id.clone(), intent.clone());
            ledger.stats.payment_intents_canceled += 1;
            (StatusCode::OK, intent)
        }) as Effect)
    })
    .await
}

async fn create_refund(State(sim): State<Simulator>, headers: HeaderMap, body: Bytes) -> Response {
    stripe_call(&sim, "POST /v1/refunds", "POST /v1/refunds".to_owned(), &headers, &body, |ledger, params| {
        params.check_known(REFUND_PARAMS, REFUND_UNMODELLED)?;
        params.no_expand()?;
        let intent_id = match (params.string("payment_intent", 5000)?, params.string("charge", 5000)?) {
            (Some(pi), None) => pi.to_owned(),
            (None, Some(charge)) => match ledger.charges.get(charge) {
                Some(pi) => pi.clone(),
                None => return Err(missing("charge", charge, Some("charge"))),
            },
            (Some(_), Some(_)) => {
                return Err(invalid(
                    None,
                    "You can only pass one of charge or payment_intent.",
                    Some("payment_intent"),
                ));
            }
            (None, None) => {
                return Err(invalid(
                    Some("parameter_missing"),
                    "One of the following params should be provided for this request: payment_intent or charge.",
                    Some("payment_intent"),
                ));
            }
        };
        let reason = params.scalar("reason")?.map(str::to_owned);
        if let Some(reason) = &reason
            && !REFUND_REASONS.contains(&reason.as_str())
        {
            return Err(invalid(
                Some("parameter_invalid_string"),
                format!("Invalid reason: must be one of {}", REFUND_REASONS.join(", ")),
                Some("reason"),
            ));
        }
        let requested = params.integer("amount")?;
        if requested == Some(0) {
            return Err(invalid(Some("parameter_invalid_integer"), "Invalid positive integer", Some("amount")));
        }
        let metadata = params.metadata()?;
        if !ledger.payment_intents.contains_key(&intent_id) {
            return Err(missing("payment_intent", &intent_id, Some("payment_intent")));
        }
        Ok(Box::new(move |sim: &Simulator, ledger: &mut Ledger| {
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
            let charge = intent["latest_charge"].as_str().unwrap_or_default().to_owned();
            if remaining == 0 {
                return invalid(
                    Some("charge_already_refunded"),
                    format!("Charge {charge} has already been refunded."),
                    None,
                );
            }
            let amount = requested.unwrap_or(remaining);
            if amount > remaining {
                return invalid(
                    Some("amount_too_large"),
                    format!("Refund amount ({amount}) is greater than unrefunded amount on charge ({remaining})"),
                    Some("amount"),
                );
            }
            let payment_method = intent["payment_method"].as_str().unwrap_or_default();
            let faults = sim.faults();
            let (status, settles) = match (faults.refund_status.as_deref(), test_card(payment_method)) {
                (Some(status), _) => (status.to_owned(), None),
                (None, Some(TestCard::PaysRefundPending)) => ("pending".to_owned(), Some(Pending::RefundSucceeds)),
                (None, Some(TestCard::PaysRefundFails)) => ("pending".to_owned(), Some(Pending::RefundFails)),
                (None, _) => ("succeeded".to_owned(), None),
            };
            let id = sim.new_id("re");
            let mut refund = json!({
                "id": id,
                "object": "refund",
                "amount": amount,
                "balance_transaction": null,
                "charge": charge,
                "created": now_secs(),
                "currency": intent["currency"],
                "metadata": metadata,
                "payment_intent": intent_id,
                "reason": reason,
                "receipt_number": null,
                "source_transfer_reversal": null,
                "status": status,
                "transfer_reversal": null,
            });
            ledger.stats.refunds_created += 1;
            if status == "failed" || status == "canceled" {
                refund["failure_reason"] = json!("unknown");
                ledger.stats.refunds_failed += 1;
            } else {
                ledger.refunded.insert(intent_id.clone(), refunded + amount);
            }
            if let Some(how) = settles {
                ledger.settling.push((id.clone(), Instant::now() + Duration::from_millis(faults.settle_ms), how));
            }
            ledger.refunds.insert(id, refund.clone());
            (StatusCode::OK, refund)
        }) as Effect)
    })
    .await
}

/// GET parameters: `expand[]` (refused unless empty) and, for payment intents, `client_secret`.
fn check_get_query(query: &Params, allowed: &[&str]) -> Result<(), Answer> {
    query.check_known(allowed, &[])?;
    query.no_expand()
}

async fn get_payment_intent(
    State(sim): State<Simulator>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let query = query.unwrap_or_default();
    let endpoint = format!("GET /v1/payment_intents/{id}");
    stripe_call(&sim, "GET /v1/payment_intents/{id}", endpoint, &headers, query.as_bytes(), |ledger, params| {
        check_get_query(params, &["expand", "client_secret"])?;
        let intent =
            ledger.payment_intents.get(&id).cloned().ok_or_else(|| missing("payment_intent", &id, Some("intent")))?;
        if let Some(secret) = params.scalar("client_secret")?
            && intent["client_secret"] != secret
        {
            return Err(invalid(
                None,
                "The client_secret provided does not match this PaymentIntent.",
                Some("client_secret"),
            ));
        }
        Ok(Box::new(move |_: &Simulator, _: &mut Ledger| (StatusCode::OK, intent)) as Effect)
    })
    .await
}

async fn get_refund(
    State(sim): State<Simulator>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let query = query.unwrap_or_default();
    let endpoint = format!("GET /v1/refunds/{id}");
    stripe_call(&sim, "GET /v1/refunds/{id}", endpoint, &headers, query.as_bytes(), |ledger, params| {
        check_get_query(params, &["expand"])?;
        let refund = ledger.refunds.get(&id).cloned().ok_or_else(|| missing("refund", &id, Some("refund")))?;
        Ok(Box::new(move |_: &Simulator, _: &mut Ledger| (StatusCode::OK, refund)) as Effect)
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
