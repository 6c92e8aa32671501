//! Retry delays as properties, and the composed policy on paused time: retries, idempotency,
//! Retry-After, budgets, timeouts, the breaker stopping retries, and the bulkhead.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use proptest::prelude::*;
use shared::resilience::{
    BreakerConfig, Bulkhead, CallError, CircuitBreaker, Idempotency, Jitter, Policy, RetryConfig, SlidingWindow,
    Verdict,
};
use tokio::time::{Instant, sleep};

fn retry(jitter: Jitter) -> RetryConfig {
    RetryConfig {
        max_attempts: 4,
        base_delay: Duration::from_millis(100),
        max_delay: Duration::from_secs(1),
        jitter,
        max_elapsed: Some(Duration::from_secs(30)),
    }
}

proptest! {
    #[test]
    fn full_jitter_stays_within_the_capped_exponential(retry_no in 1u32..40, unit in 0.0f64..1.0) {
        let config = retry(Jitter::Full);
        let delay = config.delay(retry_no, Duration::ZERO, unit);
        let ceiling = (Duration::from_millis(100) * 2u32.saturating_pow(retry_no - 1)).min(Duration::from_secs(1));
        prop_assert!(delay <= ceiling, "{delay:?} > {ceiling:?}");
        prop_assert_eq!(config.ceiling(retry_no), ceiling);
    }

    #[test]
    fn equal_jitter_waits_at_least_half_the_ceiling(retry_no in 1u32..40, unit in 0.0f64..1.0) {
        let config = retry(Jitter::Equal);
        let delay = config.delay(retry_no, Duration::ZERO, unit);
        let ceiling = config.ceiling(retry_no);
        prop_assert!(delay >= ceiling / 2 && delay <= ceiling);
    }

    #[test]
    fn decorrelated_jitter_grows_from_the_previous_delay_within_base_and_cap(
        previous_ms in 0u64..5000, unit in 0.0f64..1.0
    ) {
        let config = retry(Jitter::Decorrelated);
        let previous = Duration::from_millis(previous_ms);
        let delay = config.delay(2, previous, unit);
        prop_assert!(delay >= Duration::from_millis(100));
        prop_assert!(delay <= Duration::from_secs(1));
        prop_assert!(delay <= (previous.max(Duration::from_millis(100)) * 3).max(Duration::from_millis(100)));
    }

    #[test]
    fn no_jitter_is_the_ceiling(retry_no in 1u32..40) {
        let config = retry(Jitter::None);
        prop_assert_eq!(config.delay(retry_no, Duration::ZERO, 0.5), config.ceiling(retry_no));
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Fault {
    Transient,
    Busy(Duration),
    Declined,
}

fn classify(fault: &Fault) -> Verdict {
    match fault {
        Fault::Transient => Verdict::TRANSIENT,
        Fault::Busy(after) => Verdict { retry_after: Some(*after), ..Verdict::TRANSIENT },
        Fault::Declined => Verdict::FINAL,
    }
}

/// An operation that fails with `faults` in turn, then succeeds; counts its calls.
fn scripted(faults: Vec<Fault>) -> (Arc<AtomicU32>, impl FnMut() -> std::future::Ready<Result<u32, Fault>>) {
    let calls = Arc::new(AtomicU32::new(0));
    let counter = calls.clone();
    let op = move || {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        std::future::ready(match faults.get(n as usize) {
            Some(fault) => Err(fault.clone()),
            None => Ok(n + 1),
        })
    };
    (calls, op)
}

fn policy_with_retry(config: RetryConfig) -> Policy {
    Policy::builder("test").retry(config).build().unwrap()
}

#[tokio::test(start_paused = true)]
async fn transient_failures_are_retried_until_success() {
    let (calls, op) = scripted(vec![Fault::Transient, Fault::Transient]);
    let result = policy_with_retry(retry(Jitter::Full)).call(Idempotency::Idempotent, classify, op).await;
    assert_eq!(result.unwrap(), 3);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn final_answers_and_non_idempotent_calls_are_not_retried() {
    let (calls, op) = scripted(vec![Fault::Declined]);
    let err = policy_with_retry(retry(Jitter::Full)).call(Idempotency::Idempotent, classify, op).await.unwrap_err();
    assert!(matches!(err, CallError::Inner(Fault::Declined)));
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    let (calls, op) = scripted(vec![Fault::Transient]);
    let err = policy_with_retry(retry(Jitter::Full)).call(Idempotency::NotIdempotent, classify, op).await.unwrap_err();
    assert!(matches!(err, CallError::Inner(Fault::Transient)));
    assert_eq!(calls.load(Ordering::SeqCst), 1, "a POST without idempotency key runs once");
}

#[tokio::test(start_paused = true)]
async fn attempts_are_capped_and_the_last_error_is_returned() {
    let (calls, op) = scripted(vec![Fault::Transient; 10]);
    let err = policy_with_retry(retry(Jitter::None)).call(Idempotency::Idempotent, classify, op).await.unwrap_err();
    assert!(matches!(err, CallError::Inner(Fault::Transient)));
    assert_eq!(calls.load(Ordering::SeqCst), 4);
}

#[tokio::test(start_paused = true)]
async fn retry_after_replaces_the_backoff() {
    let (_, op) = scripted(vec![Fault::Busy(Duration::from_secs(3))]);
    let started = Instant::now();
    policy_with_retry(retry(Jitter::None)).call(Idempotency::Idempotent, classify, op).await.unwrap();
    assert_eq!(started.elapsed(), Duration::from_secs(3));
}

#[tokio::test(start_paused = true)]
async fn no_retry_starts_past_the_elapsed_budget() {
    let config = RetryConfig { max_elapsed: Some(Duration::from_secs(2)), ..retry(Jitter::None) };
    let (calls, op) = scripted(vec![Fault::Busy(Duration::from_secs(5)), Fault::Transient]);
    let started = Instant::now();
    let err = policy_with_retry(config).call(Idempotency::Idempotent, classify, op).await.unwrap_err();
    assert!(matches!(err, CallError::Inner(Fault::Busy(_))));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(started.elapsed(), Duration::ZERO, "gave up at once instead of sleeping past the budget");
}

#[tokio::test(start_paused = true)]
async fn attempt_timeouts_are_retried_and_the_overall_timeout_bounds_everything() {
    let policy = Policy::builder("slow")
        .attempt_timeout(Duration::from_millis(300))
        .overall_timeout(Duration::from_secs(1))
        .retry(RetryConfig { max_attempts: 10, ..retry(Jitter::None) })
        .build()
        .unwrap();
    let calls = Arc::new(AtomicU32::new(0));
    let counter = calls.clone();
    let started = Instant::now();
    let err = policy
        .call(Idempotency::Idempotent, classify, || {
            counter.fetch_add(1, Ordering::SeqCst);
            async {
                sleep(Duration::from_secs(60)).await;
                Ok::<_, Fault>(())
            }
        })
        .await
        .unwrap_err();
    assert!(matches!(err, CallError::Timeout(limit) if limit == Duration::from_secs(1)), "{err:?}");
    assert_eq!(started.elapsed(), Duration::from_secs(1));
    // 300 ms attempt, 100 ms pause, 300 ms, 200 ms pause, then cut at 1 s inside the third attempt.
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn an_open_breaker_stops_the_retries_and_declines_do_not_open_it() {
    let breaker = CircuitBreaker::new(
        "dep",
        BreakerConfig { window: SlidingWindow::Count(4), minimum_calls: 2, ..BreakerConfig::default() },
    )
    .unwrap();
    let policy = Policy::builder("dep")
        .retry(RetryConfig { max_attempts: 5, ..retry(Jitter::None) })
        .breaker(breaker.clone())
        .build()
        .unwrap();
    for _ in 0..5 {
        let (_, op) = scripted(vec![Fault::Declined]);
        assert!(matches!(
            policy.call(Idempotency::Idempotent, classify, op).await,
            Err(CallError::Inner(Fault::Declined))
        ));
    }
    assert_eq!(breaker.state(), shared::resilience::BreakerState::Closed, "declines are answers, not failures");

    let (calls, op) = scripted(vec![Fault::Transient; 10]);
    let err = policy.call(Idempotency::Idempotent, classify, op).await.unwrap_err();
    assert!(matches!(err, CallError::CircuitOpen { .. }), "{err:?}");
    assert!(err.is_rejection());
    assert_eq!(calls.load(Ordering::SeqCst), 2, "two failures opened it; the rest were not attempted");
}

#[tokio::test(start_paused = true)]
async fn the_bulkhead_rejects_at_once_beyond_its_limit_and_waits_when_allowed() {
    let policy = Policy::builder("narrow").bulkhead(Bulkhead::new(2, Duration::ZERO).unwrap()).build().unwrap();
    let slow = |policy: Policy| {
        tokio::spawn(async move {
            policy
                .call(Idempotency::Idempotent, classify, || async {
                    sleep(Duration::from_millis(100)).await;
                    Ok::<_, Fault>(())
                })
                .await
        })
    };
    let (a, b) = (slow(policy.clone()), slow(policy.clone()));
    tokio::task::yield_now().await;
    assert_eq!(policy.bulkhead().unwrap().in_flight(), 2);
    let started = Instant::now();
    let err = policy.call(Idempotency::Idempotent, classify, || async { Ok::<_, Fault>(()) }).await.unwrap_err();
    assert!(matches!(err, CallError::BulkheadFull { max: 2, .. }), "{err:?}");
    assert_eq!(started.elapsed(), Duration::ZERO);
    a.await.unwrap().unwrap();
    b.await.unwrap().unwrap();

    let waiting =
        Policy::builder("patient").bulkhead(Bulkhead::new(1, Duration::from_millis(500)).unwrap()).build().unwrap();
    let first = slow(waiting.clone());
    tokio::task::yield_now().await;
    let started = Instant::now();
    waiting.call(Idempotency::Idempotent, classify, || async { Ok::<_, Fault>(()) }).await.unwrap();
    assert_eq!(started.elapsed(), Duration::from_millis(100), "got the slot when the first call ended");
    first.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn the_bulkhead_under_concurrent_load_never_exceeds_its_limit() {
    let bulkhead = Bulkhead::new(5, Duration::from_secs(10)).unwrap();
    let policy = Policy::builder("load").bulkhead(bulkhead.clone()).build().unwrap();
    let peak = Arc::new(AtomicU32::new(0));
    let current = Arc::new(AtomicU32::new(0));
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let (policy, peak, current) = (policy.clone(), peak.clone(), current.clone());
            tokio::spawn(async move {
                policy
                    .call(Idempotency::Idempotent, classify, || {
                        let (peak, current) = (peak.clone(), current.clone());
                        async move {
                            let now = current.fetch_add(1, Ordering::SeqCst) + 1;
                            peak.fetch_max(now, Ordering::SeqCst);
                            sleep(Duration::from_millis(10 + i % 7)).await;
                            current.fetch_sub(1, Ordering::SeqCst);
                            Ok::<_, Fault>(())
                        }
                    })
                    .await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(peak.load(Ordering::SeqCst), 5);
}

#[test]
fn bad_policy_configuration_is_refused_at_construction() {
    let err =
        Policy::builder("x").retry(RetryConfig { max_attempts: 0, ..RetryConfig::default() }).build().unwrap_err();
    assert_eq!(err.field, "max_attempts");
    let err = Policy::builder("x")
        .retry(RetryConfig {
            max_delay: Duration::from_millis(1),
            base_delay: Duration::from_millis(5),
            ..RetryConfig::default()
        })
        .build()
        .unwrap_err();
    assert_eq!(err.field, "max_delay");
    assert_eq!(Policy::builder("x").attempt_timeout(Duration::ZERO).build().unwrap_err().field, "attempt_timeout");
    assert_eq!(Bulkhead::new(0, Duration::ZERO).unwrap_err().field, "max_concurrent");
}

#[tokio::test(start_paused = true)]
async fn a_pause_that_cannot_end_before_the_overall_deadline_is_not_started() {
    let policy = Policy::builder("deadline")
        .overall_timeout(Duration::from_secs(1))
        .retry(RetryConfig { max_elapsed: None, ..retry(Jitter::None) })
        .build()
        .unwrap();
    let (calls, op) = scripted(vec![Fault::Busy(Duration::from_secs(5))]);
    let started = Instant::now();
    let err = policy.call(Idempotency::Idempotent, classify, op).await.unwrap_err();
    assert!(matches!(err, CallError::Timeout(limit) if limit == Duration::from_secs(1)), "{err:?}");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(started.elapsed(), Duration::ZERO, "failed fast instead of sleeping into the deadline");
}

#[tokio::test(start_paused = true)]
async fn retry_alone_follows_the_same_rules() {
    let config = retry(Jitter::None);
    let (calls, op) = scripted(vec![Fault::Transient, Fault::Busy(Duration::from_secs(2))]);
    let started = Instant::now();
    assert_eq!(shared::resilience::retry(&config, Idempotency::Idempotent, classify, op).await, Ok(3));
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(started.elapsed(), Duration::from_millis(100) + Duration::from_secs(2));
    let (calls, op) = scripted(vec![Fault::Transient]);
    let result = shared::resilience::retry(&config, Idempotency::NotIdempotent, classify, op).await;
    assert_eq!(result, Err(Fault::Transient));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}
