//! Resilience for every call to something a function does not own: timeout, retry, circuit
//! breaker and bulkhead, composed by [`Policy`] (feature anchors: resilience4j and Polly).
//!
//! ## Order
//!
//! From the outside in: **overall timeout -> retry -> circuit breaker -> bulkhead -> attempt
//! timeout -> call**.
//!
//! - The overall timeout bounds everything, retries and their pauses included, so a caller's own
//!   deadline (a Lambda's remaining time, an HTTP client's patience) holds.
//! - Retry is outside the breaker: every attempt is seen (and counted) by the breaker, and once
//!   the circuit opens the remaining retries stop at once instead of hammering a dead service.
//! - The bulkhead is inside the breaker: calls the breaker rejects never take a slot.
//! - The attempt timeout is innermost: a hung attempt becomes a failure the breaker counts (and
//!   a slow call it measures) and, for idempotent calls, a retry.
//!
//! Rejections of our own making (`CircuitOpen`, `BulkheadFull`) are never retried and never count
//! as failures of the downstream.
//!
//! ## Overhead
//!
//! What each part costs on the success path, next to failsafe, recloser, tower-resilience and
//! backon, is measured by `make bench` (`benches/benches/resilience.rs`); the figures and how
//! they were taken are in `benches/README.md`. The breaker is lock-free while CLOSED with a count
//! window (an atomic ring, like recloser's); time windows and state changes take a mutex.
//! `Policy` costs more than the parts alone because one state machine carries every part's
//! plumbing.

mod breaker;
mod bulkhead;
mod client;
mod retry;
pub mod store;

use std::future::Future;
use std::time::Duration;

pub use breaker::{BreakerConfig, BreakerError, BreakerState, CircuitBreaker, Permit, Rejection, SlidingWindow};
pub use bulkhead::Bulkhead;
pub use client::{
    HttpError, HttpReply, InProcessService, ServiceClient, ServiceClientConfig, SigV4, Transport, http_client,
};
pub use retry::{Jitter, RetryConfig, retry};
use tokio::time::Instant;

/// A configuration value that cannot work, found at construction, never at call time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid resilience configuration: {field}: {reason}")]
pub struct InvalidSetting {
    pub field: &'static str,
    pub reason: String,
}

/// How the caller judges one of its errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Verdict {
    /// Counts against the downstream in the circuit breaker (a 5xx, a timeout; not a 404 or a
    /// payment decline).
    pub failure: bool,
    /// Worth another attempt (transient).
    pub retryable: bool,
    /// The server asked to wait this long before trying again.
    pub retry_after: Option<Duration>,
}

impl Verdict {
    /// Transient: counts as a failure and may be retried.
    pub const TRANSIENT: Verdict = Verdict { failure: true, retryable: true, retry_after: None };
    /// Final answer from a healthy downstream: neither a failure nor worth retrying.
    pub const FINAL: Verdict = Verdict { failure: false, retryable: false, retry_after: None };
}

/// Whether repeating the call is harmless. Only idempotent calls are retried: a POST is, once it
/// carries an idempotency key the server honours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idempotency {
    Idempotent,
    NotIdempotent,
}

#[derive(Debug, thiserror::Error)]
pub enum CallError<E> {
    #[error(transparent)]
    Inner(E),
    #[error("circuit `{breaker}` is open for {remaining:?} more")]
    CircuitOpen { breaker: String, remaining: Duration },
    #[error("circuit `{breaker}` is half-open and its trial calls are all in flight")]
    HalfOpenFull { breaker: String },
    #[error("bulkhead `{name}` is full ({max} calls in flight)")]
    BulkheadFull { name: String, max: usize },
    #[error("attempt timed out after {0:?}")]
    AttemptTimeout(Duration),
    #[error("call timed out after {0:?} in all")]
    Timeout(Duration),
}

impl<E> CallError<E> {
    /// True for rejections by our own protections (the downstream was not called).
    pub fn is_rejection(&self) -> bool {
        matches!(self, Self::CircuitOpen { .. } | Self::HalfOpenFull { .. } | Self::BulkheadFull { .. })
    }
}

/// Timeouts, retry, breaker and bulkhead around one downstream. Cheap to clone: clones share the
/// breaker and the bulkhead.
#[derive(Debug, Clone)]
pub struct Policy {
    name: String,
    overall_timeout: Option<Duration>,
    attempt_timeout: Option<Duration>,
    retry: Option<RetryConfig>,
    breaker: Option<CircuitBreaker>,
    bulkhead: Option<Bulkhead>,
}

/// Builds a [`Policy`]; every part is optional.
#[derive(Debug)]
pub struct PolicyBuilder {
    policy: Policy,
}

impl PolicyBuilder {
    pub fn overall_timeout(mut self, timeout: Duration) -> Self {
        self.policy.overall_timeout = Some(timeout);
        self
    }

    pub fn attempt_timeout(mut self, timeout: Duration) -> Self {
        self.policy.attempt_timeout = Some(timeout);
        self
    }

    pub fn retry(mut self, config: RetryConfig) -> Self {
        self.policy.retry = Some(config);
        self
    }

    pub fn breaker(mut self, breaker: CircuitBreaker) -> Self {
        self.policy.breaker = Some(breaker);
        self
    }

    pub fn bulkhead(mut self, bulkhead: Bulkhead) -> Self {
        self.policy.bulkhead = Some(bulkhead);
        self
    }

    pub fn build(self) -> Result<Policy, InvalidSetting> {
        if let Some(retry) = &self.policy.retry {
            retry.validate()?;
        }
        for (field, timeout) in
            [("overall_timeout", self.policy.overall_timeout), ("attempt_timeout", self.policy.attempt_timeout)]
        {
            if timeout.is_some_and(|t| t.is_zero()) {
                return Err(InvalidSetting { field, reason: "must be longer than zero".into() });
            }
        }
        Ok(self.policy)
    }
}

impl Policy {
    pub fn builder(name: impl Into<String>) -> PolicyBuilder {
        PolicyBuilder {
            policy: Policy {
                name: name.into(),
                overall_timeout: None,
                attempt_timeout: None,
                retry: None,
                breaker: None,
                bulkhead: None,
            },
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn breaker(&self) -> Option<&CircuitBreaker> {
        self.breaker.as_ref()
    }

    pub fn bulkhead(&self) -> Option<&Bulkhead> {
        self.bulkhead.as_ref()
    }

    /// Runs `operation` under the policy. `classify` judges its errors.
    pub async fn call<T, E, F, Fut>(
        &self,
        idempotency: Idempotency,
        classify: impl Fn(&E) -> Verdict,
        mut operation: F,
    ) -> Result<T, CallError<E>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        // The overall timeout is enforced as a deadline on each attempt and each pause rather than
        // as a wrapper future: the call's future stays small, and a pause that cannot end before
        // the deadline is not started.
        let deadline = self.overall_timeout.map(|limit| Instant::now() + limit);
        let mut retry_state = retry::RetryState::default();
        loop {
            let (limit, cut_by_deadline) = match (self.attempt_timeout, deadline) {
                (attempt, None) => (attempt, false),
                (attempt, Some(deadline)) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    match attempt {
                        Some(attempt) if attempt <= left => (Some(attempt), false),
                        _ => (Some(left), true),
                    }
                }
            };
            let err = match self.attempt(&classify, &mut operation, limit).await {
                Ok(value) => return Ok(value),
                Err(CallError::AttemptTimeout(_)) if cut_by_deadline => {
                    return Err(CallError::Timeout(self.overall_timeout.unwrap_or_default()));
                }
                Err(err) => err,
            };
            let Some(retry) = &self.retry else { return Err(err) };
            let (retryable, retry_after) = match &err {
                CallError::Inner(e) => {
                    let verdict = classify(e);
                    (verdict.retryable, verdict.retry_after)
                }
                CallError::AttemptTimeout(_) => (true, None),
                _ => (false, None),
            };
            let delay = match retry_state.next(retry, idempotency, retryable, retry_after) {
                retry::Next::Stop => return Err(err),
                retry::Next::BudgetSpent => {
                    tracing::info!(policy = %self.name, retries = retry_state.retries(), "retry budget spent");
                    return Err(err);
                }
                retry::Next::Wait(delay) => delay,
            };
            if deadline.is_some_and(|deadline| Instant::now() + delay >= deadline) {
                tracing::info!(policy = %self.name, ?delay, "no time left for another attempt");
                return Err(CallError::Timeout(self.overall_timeout.unwrap_or_default()));
            }
            tracing::info!(policy = %self.name, retry = retry_state.retries(), ?delay, error = %DisplayKind(&err), "retrying");
            Box::pin(tokio::time::sleep(delay)).await;
        }
    }

    async fn attempt<T, E, F, Fut>(
        &self,
        classify: &impl Fn(&E) -> Verdict,
        operation: &mut F,
        limit: Option<Duration>,
    ) -> Result<T, CallError<E>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let permit = match &self.breaker {
            Some(breaker) => {
                // Only a shared breaker may have to wait (for the store); keep the common path synchronous.
                let permit =
                    if breaker.is_shared() { Box::pin(breaker.acquire()).await } else { breaker.try_acquire() };
                Some(permit.map_err(|rejection| match rejection {
                    Rejection::Open { remaining } => {
                        CallError::CircuitOpen { breaker: breaker.name().to_owned(), remaining }
                    }
                    Rejection::HalfOpenFull => CallError::HalfOpenFull { breaker: breaker.name().to_owned() },
                })?)
            }
            None => None,
        };
        let slot = match &self.bulkhead {
            // Waiting for a slot (rare, and a large future) is boxed so the common path stays small.
            Some(bulkhead) => match match bulkhead.try_enter() {
                Some(slot) => Some(slot),
                None => Box::pin(bulkhead.wait_for_slot()).await,
            } {
                Some(slot) => Some(slot),
                None => {
                    if let (Some(breaker), Some(permit)) = (&self.breaker, permit) {
                        breaker.forget(permit);
                    }
                    return Err(CallError::BulkheadFull { name: self.name.clone(), max: bulkhead.max_concurrent() });
                }
            },
            None => None,
        };
        let result = match limit {
            Some(limit) => match tokio::time::timeout(limit, operation()).await {
                Ok(result) => result.map_err(CallError::Inner),
                Err(_) => Err(CallError::AttemptTimeout(limit)),
            },
            None => operation().await.map_err(CallError::Inner),
        };
        drop(slot);
        if let (Some(breaker), Some(permit)) = (&self.breaker, permit) {
            let failed = match &result {
                Ok(_) => false,
                Err(CallError::Inner(e)) => classify(e).failure,
                Err(_) => true,
            };
            if breaker.is_shared() {
                Box::pin(breaker.record(permit, failed)).await;
            } else {
                let _ = breaker.record_local(permit, failed);
            }
        }
        result
    }
}

/// Names an error's kind for logs without requiring `E: Display`.
struct DisplayKind<'a, E>(&'a CallError<E>);

impl<E> std::fmt::Display for DisplayKind<'_, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.0 {
            CallError::Inner(_) => "downstream error",
            CallError::CircuitOpen { .. } => "circuit open",
            CallError::HalfOpenFull { .. } => "half-open full",
            CallError::BulkheadFull { .. } => "bulkhead full",
            CallError::AttemptTimeout(_) => "attempt timeout",
            CallError::Timeout(_) => "timeout",
        })
    }
}
