//! Retry with exponential backoff, a cap, jitter, an attempt limit and an elapsed-time budget.
//!
//! Delays grow as `base * 2^(attempt-1)`, capped at `max_delay`, then jittered:
//! - `Full` (default): uniform in `[0, d]`; spreads retries best (AWS architecture blog,
//!   "Exponential Backoff and Jitter");
//! - `Equal`: `d/2 + uniform[0, d/2]`; never retries immediately;
//! - `Decorrelated`: `min(cap, uniform[base, 3 * previous])`;
//! - `None`: exactly `d`.
//!
//! A server's `Retry-After` replaces the computed delay. A retry whose pause would end past the
//! `max_elapsed` budget (counted from the first failure) is not attempted.

use std::time::Duration;

use super::InvalidSetting;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Jitter {
    #[default]
    Full,
    Equal,
    Decorrelated,
    None,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryConfig {
    /// Attempts in all, the first included. 1 disables retries.
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    pub jitter: Jitter,
    /// No retry starts if its pause would end more than this long after the first failure.
    /// (The policy's overall timeout bounds the whole call, first attempt included.)
    pub max_elapsed: Option<Duration>,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            base_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(2),
            jitter: Jitter::Full,
            max_elapsed: Some(Duration::from_secs(10)),
        }
    }
}

impl RetryConfig {
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        if self.max_attempts == 0 {
            return Err(InvalidSetting {
                field: "max_attempts",
                reason: "must be at least 1 (1 means no retry)".into(),
            });
        }
        if self.base_delay.is_zero() && self.max_attempts > 1 {
            return Err(InvalidSetting { field: "base_delay", reason: "must be longer than zero".into() });
        }
        if self.max_delay < self.base_delay {
            return Err(InvalidSetting { field: "max_delay", reason: "must not be shorter than base_delay".into() });
        }
        Ok(())
    }

    /// The exponential delay before retry number `retry` (1 for the first retry), capped.
    pub fn ceiling(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.saturating_sub(1).min(31)).unwrap_or(u32::MAX);
        self.base_delay.saturating_mul(factor).min(self.max_delay)
    }

    /// The delay before retry number `retry`, given the previous delay and a uniform sample
    /// `unit` in `[0, 1)`. Pure, so its bounds can be checked as properties.
    pub fn delay(&self, retry: u32, previous: Duration, unit: f64) -> Duration {
        let ceiling = self.ceiling(retry);
        match self.jitter {
            Jitter::None => ceiling,
            Jitter::Full => ceiling.mul_f64(unit),
            Jitter::Equal => ceiling / 2 + (ceiling / 2).mul_f64(unit),
            Jitter::Decorrelated => {
                let low = self.base_delay;
                let high = previous.max(self.base_delay).saturating_mul(3).min(self.max_delay).max(low);
                (low + (high - low).mul_f64(unit)).min(self.max_delay)
            }
        }
    }
}

/// Where a call is in its retries; decides the next step after each failure. Shared by
/// [`retry`] and [`Policy`](super::Policy) so both follow the same rules.
#[derive(Debug, Default)]
pub(crate) struct RetryState {
    /// Retries are timed from the first failure, so a call that succeeds reads no clock.
    first_failure: Option<tokio::time::Instant>,
    retries: u32,
    previous_delay: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// Not retryable, not idempotent, or out of attempts.
    Stop,
    /// The pause would end past the `max_elapsed` budget.
    BudgetSpent,
    Wait(Duration),
}

impl RetryState {
    pub(crate) fn retries(&self) -> u32 {
        self.retries
    }

    pub(crate) fn next(
        &mut self,
        config: &RetryConfig,
        idempotency: super::Idempotency,
        retryable: bool,
        retry_after: Option<Duration>,
    ) -> Next {
        if !retryable || idempotency == super::Idempotency::NotIdempotent || self.retries + 1 >= config.max_attempts {
            return Next::Stop;
        }
        self.retries += 1;
        let delay = retry_after.unwrap_or_else(|| config.delay(self.retries, self.previous_delay, fastrand::f64()));
        let retrying_for = self.first_failure.get_or_insert_with(tokio::time::Instant::now).elapsed();
        if config.max_elapsed.is_some_and(|budget| retrying_for + delay > budget) {
            return Next::BudgetSpent;
        }
        self.previous_delay = delay;
        Next::Wait(delay)
    }
}

/// Runs `operation` with retries alone (no breaker, bulkhead or timeout; see
/// [`Policy`](super::Policy) for those).
pub async fn retry<T, E, F, Fut>(
    config: &RetryConfig,
    idempotency: super::Idempotency,
    classify: impl Fn(&E) -> super::Verdict,
    mut operation: F,
) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let mut state = RetryState::default();
    loop {
        let err = match operation().await {
            Ok(value) => return Ok(value),
            Err(err) => err,
        };
        let verdict = classify(&err);
        match state.next(config, idempotency, verdict.retryable, verdict.retry_after) {
            Next::Stop | Next::BudgetSpent => return Err(err),
            Next::Wait(delay) => Box::pin(tokio::time::sleep(delay)).await,
        }
    }
}
