//! Circuit breaker state machine, deterministic on paused tokio time.

use std::sync::Arc;
use std::time::Duration;

use shared::resilience::store::InMemoryBreakerStore;
use shared::resilience::{BreakerConfig, BreakerState, CircuitBreaker, Rejection, SlidingWindow};
use tokio::time::{advance, sleep};

fn config(window: SlidingWindow) -> BreakerConfig {
    BreakerConfig {
        window,
        failure_rate_threshold: 50.0,
        slow_call_duration: Some(Duration::from_millis(500)),
        slow_call_rate_threshold: 80.0,
        minimum_calls: 4,
        wait_in_open: Duration::from_secs(10),
        permitted_in_half_open: 2,
        shared_state_refresh: Duration::from_millis(100),
    }
}

async fn call(breaker: &CircuitBreaker, failed: bool) -> Result<(), Rejection> {
    let permit = breaker.acquire().await?;
    breaker.record(permit, failed).await;
    Ok(())
}

async fn slow_call(breaker: &CircuitBreaker, took: Duration) {
    let permit = breaker.acquire().await.unwrap();
    sleep(took).await;
    breaker.record(permit, false).await;
}

#[tokio::test(start_paused = true)]
async fn closed_opens_at_the_failure_rate_once_minimum_calls_are_in() {
    let breaker = CircuitBreaker::new("dep", config(SlidingWindow::Count(10))).unwrap();
    for failed in [true, true, true] {
        call(&breaker, failed).await.unwrap();
    }
    assert_eq!(breaker.state(), BreakerState::Closed, "3 calls are below the minimum of 4");
    call(&breaker, false).await.unwrap();
    assert_eq!(breaker.state(), BreakerState::Open, "3 of 4 failed: 75% >= 50%");
}

#[tokio::test(start_paused = true)]
async fn a_failure_rate_below_the_threshold_keeps_it_closed() {
    let breaker = CircuitBreaker::new("dep", config(SlidingWindow::Count(10))).unwrap();
    for failed in [true, false, false, false, true, false, false, false, false, false] {
        call(&breaker, failed).await.unwrap();
    }
    assert_eq!(breaker.state(), BreakerState::Closed, "2 of 10 is 20%");
}

#[tokio::test(start_paused = true)]
async fn the_count_window_forgets_old_calls() {
    let breaker = CircuitBreaker::new("dep", config(SlidingWindow::Count(4))).unwrap();
    // One failure then many successes: the failure slides out, then three fresh failures of four
    // open the circuit only when they are within the last four calls.
    call(&breaker, true).await.unwrap();
    for _ in 0..6 {
        call(&breaker, false).await.unwrap();
    }
    call(&breaker, true).await.unwrap();
    assert_eq!(breaker.state(), BreakerState::Closed, "1 failure in the last 4");
    call(&breaker, true).await.unwrap();
    assert_eq!(breaker.state(), BreakerState::Open, "2 failures in the last 4 is 50%");
}

#[tokio::test(start_paused = true)]
async fn the_time_window_forgets_calls_older_than_its_duration() {
    let breaker = CircuitBreaker::new("dep", config(SlidingWindow::Time(Duration::from_secs(10)))).unwrap();
    for _ in 0..3 {
        call(&breaker, true).await.unwrap();
    }
    advance(Duration::from_secs(11)).await;
    // The three failures are out of the window: four successes and one failure now.
    for failed in [false, false, false, true] {
        call(&breaker, failed).await.unwrap();
    }
    assert_eq!(breaker.state(), BreakerState::Closed);
    advance(Duration::from_secs(2)).await;
    call(&breaker, true).await.unwrap();
    assert_eq!(breaker.state(), BreakerState::Closed, "2 failures of 5 within 10 s");
    call(&breaker, true).await.unwrap();
    assert_eq!(breaker.state(), BreakerState::Open, "3 failures of 6 within 10 s");
}

#[tokio::test(start_paused = true)]
async fn slow_successes_open_it_too() {
    let breaker = CircuitBreaker::new("dep", config(SlidingWindow::Count(5))).unwrap();
    for _ in 0..3 {
        slow_call(&breaker, Duration::from_millis(600)).await;
    }
    slow_call(&breaker, Duration::from_millis(100)).await;
    assert_eq!(breaker.state(), BreakerState::Closed, "3 slow of 4 is 75% < 80%");
    slow_call(&breaker, Duration::from_millis(700)).await;
    assert_eq!(breaker.state(), BreakerState::Open, "4 slow of 5 is 80%");
}

#[tokio::test(start_paused = true)]
async fn open_rejects_with_the_remaining_wait_then_half_opens() {
    let breaker = CircuitBreaker::new("dep", config(SlidingWindow::Count(4))).unwrap();
    for _ in 0..4 {
        call(&breaker, true).await.unwrap();
    }
    advance(Duration::from_secs(3)).await;
    assert_eq!(call(&breaker, false).await, Err(Rejection::Open { remaining: Duration::from_secs(7) }));
    advance(Duration::from_secs(7)).await;
    let trial = breaker.acquire().await.expect("after the wait, a trial call goes through");
    assert_eq!(breaker.state(), BreakerState::HalfOpen);
    breaker.record(trial, false).await;
}

#[tokio::test(start_paused = true)]
async fn half_open_admits_only_the_permitted_trials_and_closes_on_success() {
    let breaker = CircuitBreaker::new("dep", config(SlidingWindow::Count(4))).unwrap();
    for _ in 0..4 {
        call(&breaker, true).await.unwrap();
    }
    advance(Duration::from_secs(10)).await;
    let first = breaker.acquire().await.unwrap();
    let second = breaker.acquire().await.unwrap();
    assert_eq!(breaker.acquire().await.unwrap_err(), Rejection::HalfOpenFull, "rejected, not queued");
    breaker.record(first, false).await;
    assert_eq!(breaker.acquire().await.unwrap_err(), Rejection::HalfOpenFull, "the trial budget is spent");
    breaker.record(second, false).await;
    assert_eq!(breaker.state(), BreakerState::Closed);
    // A fresh window: one failure does not reopen it.
    call(&breaker, true).await.unwrap();
    assert_eq!(breaker.state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn half_open_reopens_when_trials_fail() {
    let breaker = CircuitBreaker::new("dep", config(SlidingWindow::Count(4))).unwrap();
    for _ in 0..4 {
        call(&breaker, true).await.unwrap();
    }
    advance(Duration::from_secs(10)).await;
    call(&breaker, true).await.unwrap();
    call(&breaker, false).await.unwrap();
    assert_eq!(breaker.state(), BreakerState::Open, "1 of 2 trials failed: 50%");
    assert!(
        matches!(call(&breaker, false).await, Err(Rejection::Open { remaining }) if remaining == Duration::from_secs(10))
    );
}

#[tokio::test(start_paused = true)]
async fn half_open_limit_holds_under_concurrency() {
    let breaker = CircuitBreaker::new("dep", config(SlidingWindow::Count(4))).unwrap();
    for _ in 0..4 {
        call(&breaker, true).await.unwrap();
    }
    advance(Duration::from_secs(10)).await;
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let breaker = breaker.clone();
            tokio::spawn(async move {
                let permit = breaker.acquire().await.ok()?;
                sleep(Duration::from_millis(50)).await;
                breaker.record(permit, false).await;
                Some(())
            })
        })
        .collect();
    let mut admitted = 0;
    for task in tasks {
        admitted += usize::from(task.await.unwrap().is_some());
    }
    assert_eq!(admitted, 2);
    assert_eq!(breaker.state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_call_counts_as_a_failure_and_frees_its_trial_slot() {
    let breaker = CircuitBreaker::new("dep", config(SlidingWindow::Count(4))).unwrap();
    for _ in 0..4 {
        call(&breaker, true).await.unwrap();
    }
    advance(Duration::from_secs(10)).await;
    let abandoned = breaker.acquire().await.unwrap();
    drop(abandoned);
    call(&breaker, false).await.unwrap();
    assert_eq!(breaker.state(), BreakerState::Open, "the dropped trial failed: 1 of 2");
}

#[tokio::test(start_paused = true)]
async fn instances_sharing_a_store_see_each_others_open_circuit() {
    let store = Arc::new(InMemoryBreakerStore::new());
    let a = CircuitBreaker::new("payments", config(SlidingWindow::Count(4))).unwrap().with_shared_state(store.clone());
    let b = CircuitBreaker::new("payments", config(SlidingWindow::Count(4))).unwrap().with_shared_state(store.clone());
    call(&b, false).await.unwrap();
    for _ in 0..4 {
        call(&a, true).await.unwrap();
    }
    assert_eq!(a.state(), BreakerState::Open);
    assert_eq!(b.state(), BreakerState::Closed, "b has not looked yet");
    advance(Duration::from_millis(100)).await;
    let rejected = call(&b, false).await.unwrap_err();
    assert!(matches!(rejected, Rejection::Open { remaining } if remaining <= Duration::from_secs(10)), "{rejected:?}");
    // a recovers through half-open; b follows its own wait and recovers too.
    advance(Duration::from_secs(10)).await;
    call(&a, false).await.unwrap();
    call(&a, false).await.unwrap();
    assert_eq!(a.state(), BreakerState::Closed);
    call(&b, false).await.unwrap();
    assert_eq!(b.state(), BreakerState::HalfOpen);
}

#[test]
fn impossible_configurations_are_refused_naming_the_field() {
    type Breakage = fn(&mut BreakerConfig);
    let cases: [(&str, Breakage); 7] = [
        ("window", |c| c.window = SlidingWindow::Count(0)),
        ("window", |c| c.window = SlidingWindow::Time(Duration::ZERO)),
        ("failure_rate_threshold", |c| c.failure_rate_threshold = 101.0),
        ("slow_call_rate_threshold", |c| c.slow_call_rate_threshold = 0.0),
        ("minimum_calls", |c| c.minimum_calls = 0),
        ("permitted_in_half_open", |c| c.permitted_in_half_open = 0),
        ("wait_in_open", |c| c.wait_in_open = Duration::ZERO),
    ];
    for (field, break_it) in cases {
        let mut config = BreakerConfig::default();
        break_it(&mut config);
        let err = CircuitBreaker::new("dep", config).unwrap_err();
        assert_eq!(err.field, field);
        assert!(err.to_string().contains(field));
    }
    assert_eq!(CircuitBreaker::new("", BreakerConfig::default()).unwrap_err().field, "name");
}

#[tokio::test(start_paused = true)]
async fn call_wraps_a_future_and_judges_its_error() {
    use shared::resilience::BreakerError;
    let breaker = CircuitBreaker::new("dep", config(SlidingWindow::Count(4))).unwrap();
    let is_failure = |e: &u16| *e >= 500;
    for _ in 0..4 {
        let result = breaker.call(is_failure, async { Err::<(), u16>(404) }).await;
        assert_eq!(result, Err(BreakerError::Inner(404)));
    }
    assert_eq!(breaker.state(), BreakerState::Closed, "404s are answers");
    for _ in 0..4 {
        let _ = breaker.call(is_failure, async { Err::<(), u16>(503) }).await;
    }
    let rejected = breaker.call(is_failure, async { Ok::<u8, u16>(1) }).await;
    assert!(matches!(rejected, Err(BreakerError::Rejected(Rejection::Open { .. }))), "{rejected:?}");
}
