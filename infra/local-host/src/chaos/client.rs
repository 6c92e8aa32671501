//! A rude but honest client of the public API: it retries what a careful client retries (every
//! POST carries an `Idempotency-Key`, so a retry after a timeout, a 503 or a refused connection
//! can never place a second order) and records what it was answered.
//!
//! It calls as a customer or an admin of the local token issuer, as a client of the deployed
//! shop would (the public API is behind the template's JWT authorizer): an order is placed by the
//! customer the workload names in it (its `customer_id` becomes that customer's token and leaves
//! the body), reads and catalogue changes are an admin's, and the catalogue's internal routes
//! (`/inventory/...`) are reached through the public admin routes (`/api/products/...`). A 401
//! (a restarted host has new signing keys) fetches a new token and tries again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The host's address, shared by the clients (a restarted host listens on the same port).
#[derive(Clone)]
pub struct Api {
    pub http: reqwest::Client,
    pub base: String,
    /// Tokens by subject.
    tokens: Arc<Mutex<HashMap<String, String>>>,
}

/// Who a call is made as.
const ADMIN: &str = "chaos-admin";

/// What one call ended with, after the retries a client makes.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

/// How long a client keeps retrying one call (an outage of the host included).
const GIVE_UP_AFTER: Duration = Duration::from_secs(120);

impl Api {
    pub fn new(base: String) -> Self {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("an HTTP client");
        Self { http, base, tokens: Arc::default() }
    }

    /// A token for `sub` (an admin for [`ADMIN`]), from the cache or the local issuer.
    async fn token(&self, sub: &str) -> Option<String> {
        if let Some(token) = self.tokens.lock().unwrap().get(sub) {
            return Some(token.clone());
        }
        let groups: Vec<&str> = if sub == ADMIN { vec!["admin"] } else { vec![] };
        let request = json!({"sub": sub, "groups": groups, "expires_in": 86400});
        let response = self.http.post(format!("{}/_local/token", self.base)).json(&request).send().await.ok()?;
        let token = response.json::<Value>().await.ok()?["access_token"].as_str()?.to_owned();
        self.tokens.lock().unwrap().insert(sub.to_owned(), token.clone());
        Some(token)
    }

    /// The public call that stands for this one, and whose token it needs.
    fn public(path: &str, body: Option<&Value>) -> (String, Option<Value>, String) {
        if let Some(rest) = path.strip_prefix("/inventory/") {
            return (format!("/api/products/{rest}"), body.cloned(), ADMIN.to_owned());
        }
        match body.and_then(|b| b.get("customer_id")).and_then(Value::as_str) {
            Some(customer) if path == "/api/orders" => {
                let mut body = body.cloned().unwrap_or_default();
                body.as_object_mut().map(|b| b.remove("customer_id"));
                (path.to_owned(), Some(body), customer.to_owned())
            }
            _ => (path.to_owned(), body.cloned(), ADMIN.to_owned()),
        }
    }

    /// Sends until the answer is not a 5xx or a transport error (which are retried with
    /// backoff), or gives up after [`GIVE_UP_AFTER`] with the last answer.
    pub async fn send(&self, method: reqwest::Method, path: &str, body: Option<&Value>, key: Option<&str>) -> Answer {
        self.call(method, path, body, key, key.is_some()).await
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        key: Option<&str>,
        safe: bool,
    ) -> Answer {
        let deadline = Instant::now() + GIVE_UP_AFTER;
        let mut wait = Duration::from_millis(100);
        let (path, body, caller) = Self::public(path, body);
        let (path, body) = (path.as_str(), body.as_ref());
        loop {
            let mut request = self.http.request(method.clone(), format!("{}{path}", self.base));
            if let Some(body) = body {
                request = request.json(body);
            }
            if let Some(token) = self.token(&caller).await {
                request = request.bearer_auth(token);
            }
            if let Some(key) = key {
                request = request.header("idempotency-key", key);
            }
            let answer = match request.send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let text = response.text().await.unwrap_or_default();
                    Answer { status, body: serde_json::from_str(&text).unwrap_or(Value::String(text)) }
                }
                Err(e) => Answer { status: 0, body: Value::String(e.to_string()) },
            };
            // A token of the host before a restart: its keys are gone. Nothing ran, so any
            // call is safe to repeat with a new token.
            if answer.status == 401 && Instant::now() < deadline {
                self.tokens.lock().unwrap().remove(&caller);
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            let retry = answer.status == 0 || answer.status >= 500 || answer.status == 429;
            // A POST that is not safe to repeat is never retried: it could place a second order.
            if !retry || (method == reqwest::Method::POST && !safe) || Instant::now() > deadline {
                return answer;
            }
            tokio::time::sleep(wait + Duration::from_millis(fastrand::u64(0..100))).await;
            wait = (wait * 2).min(Duration::from_secs(3));
        }
    }

    /// A POST the server deduplicates by its body (a restock names its `restock_id`), retried
    /// as a keyed one is.
    pub async fn retried_post(&self, path: &str, body: &Value) -> Answer {
        self.call(reqwest::Method::POST, path, Some(body), None, true).await
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.send(reqwest::Method::GET, path, None, None).await
    }
}
