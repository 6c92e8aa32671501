//! A rude but honest client of the public API: it retries what a careful client retries (every
//! POST carries an `Idempotency-Key`, so a retry after a timeout, a 503 or a refused connection
//! can never place a second order) and records what it was answered.

use std::time::{Duration, Instant};

use serde_json::Value;

/// The host's address, shared by the clients (a restarted host listens on the same port).
#[derive(Clone)]
pub struct Api {
    pub http: reqwest::Client,
    pub base: String,
}

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
        Self { http, base }
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
        loop {
            let mut request = self.http.request(method.clone(), format!("{}{path}", self.base));
            if let Some(body) = body {
                request = request.json(body);
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
