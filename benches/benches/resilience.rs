//! Success-path overhead per call of our resilience parts, side by side with the Rust peers
//! (failsafe, recloser, tower-resilience, backon), in one run on one machine.
//!
//! Each benchmark awaits an operation that succeeds at once, `iters` times in a loop on a
//! current-thread tokio runtime; the baseline is the bare operation. What is measured is the
//! cost of the protection when nothing goes wrong, which every call pays.
//!
//! Run: `cargo bench -p resilience-bench` (or `make bench`).

use std::convert::Infallible;
use std::hint::black_box;
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use criterion::{Criterion, criterion_group, criterion_main};
use failsafe::futures::CircuitBreaker as _;
use shared::resilience::{BreakerConfig, Bulkhead, CircuitBreaker, Idempotency, Policy, RetryConfig, Verdict, retry};
use tower::{Layer, Service, ServiceExt};
use tower_resilience::bulkhead::BulkheadLayer;
use tower_resilience::circuitbreaker::CircuitBreakerLayer;
use tower_resilience::retry::RetryLayer;
use tower_resilience::timelimiter::TimeLimiterLayer;

async fn operation() -> Result<u64, Infallible> {
    Ok(black_box(42))
}

fn verdict(_: &Infallible) -> Verdict {
    Verdict::TRANSIENT
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap()
}

fn ours(policy: Policy) -> impl FnMut(u64) -> std::pin::Pin<Box<dyn std::future::Future<Output = Duration>>> {
    move |iters| {
        let policy = policy.clone();
        Box::pin(async move {
            let start = Instant::now();
            for _ in 0..iters {
                black_box(policy.call(Idempotency::Idempotent, verdict, operation).await.unwrap());
            }
            start.elapsed()
        })
    }
}

/// A tower service driven with ready + call, as a tower user would.
async fn drive<S>(mut service: S, iters: u64) -> Duration
where
    S: Service<(), Response = u64>,
    S::Error: std::fmt::Debug,
{
    let start = Instant::now();
    for _ in 0..iters {
        black_box(service.ready().await.unwrap().call(()).await.unwrap());
    }
    start.elapsed()
}

fn leaf() -> impl Service<(), Response = u64, Error = Infallible, Future = impl Send> + Clone {
    tower::service_fn(|_: ()| operation())
}

/// Default configuration: count window and slow-call tracking (one clock read per call).
fn our_breaker() -> CircuitBreaker {
    CircuitBreaker::new("bench", BreakerConfig::default()).unwrap()
}

/// The features failsafe and recloser have: a failure-rate window, no slow-call tracking.
fn our_lean_breaker() -> CircuitBreaker {
    CircuitBreaker::new("bench", BreakerConfig { slow_call_duration: None, ..BreakerConfig::default() }).unwrap()
}

fn breakers(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("circuit_breaker");
    group.bench_function("baseline (no protection)", |b| {
        b.to_async(&rt).iter_custom(|iters| async move {
            let start = Instant::now();
            for _ in 0..iters {
                black_box(operation().await.unwrap());
            }
            start.elapsed()
        })
    });
    let policy = Policy::builder("bench").breaker(our_breaker()).build().unwrap();
    group.bench_function("shop (Policy, breaker with slow-call tracking)", |b| {
        b.to_async(&rt).iter_custom(ours(policy.clone()))
    });
    let lean = Policy::builder("bench").breaker(our_lean_breaker()).build().unwrap();
    group.bench_function("shop (Policy, breaker without slow-call tracking)", |b| {
        b.to_async(&rt).iter_custom(ours(lean.clone()))
    });
    let breaker = our_lean_breaker();
    group.bench_function("shop (CircuitBreaker::call, no slow calls)", |b| {
        let breaker = breaker.clone();
        b.to_async(&rt).iter_custom(move |iters| {
            let breaker = breaker.clone();
            async move {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(breaker.call(|_: &Infallible| true, operation()).await.unwrap());
                }
                start.elapsed()
            }
        })
    });
    let failsafe = failsafe::Config::new().build();
    group.bench_function("failsafe", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let failsafe = failsafe.clone();
            async move {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(failsafe.call(operation()).await.unwrap());
                }
                start.elapsed()
            }
        })
    });
    let recloser = recloser::AsyncRecloser::from(recloser::Recloser::default());
    group.bench_function("recloser", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let recloser = recloser.clone();
            async move {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(recloser.call(operation()).await.unwrap());
                }
                start.elapsed()
            }
        })
    });
    let layer = CircuitBreakerLayer::builder().build().unwrap();
    group
        .bench_function("tower-resilience", |b| b.to_async(&rt).iter_custom(|iters| drive(layer.layer(leaf()), iters)));
    group.finish();
}

fn retries(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("retry");
    let policy = Policy::builder("bench").retry(RetryConfig::default()).build().unwrap();
    group.bench_function("shop (Policy with retry)", |b| b.to_async(&rt).iter_custom(ours(policy.clone())));
    let config = RetryConfig::default();
    group.bench_function("shop (resilience::retry alone)", |b| {
        let config = config.clone();
        b.to_async(&rt).iter_custom(move |iters| {
            let config = config.clone();
            async move {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(retry(&config, Idempotency::Idempotent, verdict, operation).await.unwrap());
                }
                start.elapsed()
            }
        })
    });
    group.bench_function("backon", |b| {
        b.to_async(&rt).iter_custom(|iters| async move {
            let start = Instant::now();
            for _ in 0..iters {
                black_box(operation.retry(ExponentialBuilder::default()).await.unwrap());
            }
            start.elapsed()
        })
    });
    let layer = RetryLayer::<(), u64, Infallible>::builder().max_attempts(3).build();
    group
        .bench_function("tower-resilience", |b| b.to_async(&rt).iter_custom(|iters| drive(layer.layer(leaf()), iters)));
    group.finish();
}

fn bulkheads(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("bulkhead");
    let policy = Policy::builder("bench").bulkhead(Bulkhead::new(32, Duration::ZERO).unwrap()).build().unwrap();
    group.bench_function("shop (Policy with bulkhead)", |b| b.to_async(&rt).iter_custom(ours(policy.clone())));
    let layer = BulkheadLayer::builder().max_concurrent_calls(32).build().unwrap();
    group
        .bench_function("tower-resilience", |b| b.to_async(&rt).iter_custom(|iters| drive(layer.layer(leaf()), iters)));
    group.finish();
}

fn full_stacks(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("full_stack");
    let policy = Policy::builder("bench")
        .overall_timeout(Duration::from_secs(5))
        .retry(RetryConfig::default())
        .breaker(our_breaker())
        .bulkhead(Bulkhead::new(32, Duration::ZERO).unwrap())
        .attempt_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    group.bench_function("shop (timeout, retry, breaker, bulkhead, attempt timeout)", |b| {
        b.to_async(&rt).iter_custom(ours(policy.clone()))
    });
    group.bench_function("tower-resilience (time limiter, retry, breaker, bulkhead)", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let bulkhead = BulkheadLayer::builder().max_concurrent_calls(32).build().unwrap().layer(leaf());
            let breaker = CircuitBreakerLayer::builder().build().unwrap().layer(bulkhead);
            let retry = RetryLayer::builder().max_attempts(3).build().layer(breaker);
            let limited = TimeLimiterLayer::builder().timeout_duration(Duration::from_secs(5)).build().layer(retry);
            drive(limited, iters)
        })
    });
    group.finish();
}

criterion_group!(benches, breakers, retries, bulkheads, full_stacks);
criterion_main!(benches);
