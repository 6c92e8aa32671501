//! Circuit breaker: CLOSED, OPEN, HALF_OPEN, as in resilience4j.
//!
//! - CLOSED: calls go through; their outcomes fill a sliding window (the last N calls, or the
//!   calls of the last D). Once the window holds `minimum_calls`, a failure rate or a slow-call
//!   rate at or above its threshold opens the circuit.
//! - OPEN: calls fail at once with [`Rejection::Open`], which says how long is left. After
//!   `wait_in_open` the next call moves the breaker to HALF_OPEN.
//! - HALF_OPEN: `permitted_in_half_open` trial calls go through; more concurrent calls are
//!   rejected, not queued. When the trials are done, the same thresholds decide: OPEN again, or
//!   CLOSED with an empty window.
//!
//! Which errors count as failures is the caller's call (a 404 or a payment decline must not
//! open the circuit; a 5xx or a timeout must). State changes are logged with the breaker's name.
//! With a [`BreakerStateStore`](super::store::BreakerStateStore), an OPEN decided by one Lambda
//! instance is seen by the others on their next call.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::InvalidSetting;
use super::store::{BreakerStateStore, SharedState};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlidingWindow {
    /// The outcomes of the last N calls.
    Count(u32),
    /// The outcomes of the calls that ended in the last D.
    Time(Duration),
}

#[derive(Debug, Clone)]
pub struct BreakerConfig {
    pub window: SlidingWindow,
    /// Percentage (0, 100] of failed calls in the window that opens the circuit.
    pub failure_rate_threshold: f64,
    /// A call slower than this is slow, whatever its result. `None` turns slow-call tracking
    /// off (and with a count window, the success path then reads no clock at all).
    pub slow_call_duration: Option<Duration>,
    /// Percentage (0, 100] of slow calls in the window that opens the circuit.
    pub slow_call_rate_threshold: f64,
    /// Rates are not judged before the window holds this many calls.
    pub minimum_calls: u32,
    pub wait_in_open: Duration,
    pub permitted_in_half_open: u32,
    /// How long a state read from the shared store is trusted before reading it again.
    pub shared_state_refresh: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            window: SlidingWindow::Count(20),
            failure_rate_threshold: 50.0,
            slow_call_duration: Some(Duration::from_secs(2)),
            slow_call_rate_threshold: 100.0,
            minimum_calls: 10,
            wait_in_open: Duration::from_secs(30),
            permitted_in_half_open: 3,
            shared_state_refresh: Duration::from_secs(1),
        }
    }
}

impl BreakerConfig {
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        let field = |field: &'static str, reason: String| Err(InvalidSetting { field, reason });
        match self.window {
            SlidingWindow::Count(0) => return field("window", "a count window must hold at least 1 call".into()),
            SlidingWindow::Time(d) if d.is_zero() => {
                return field("window", "a time window must be longer than zero".into());
            }
            _ => {}
        }
        for (name, value) in [
            ("failure_rate_threshold", self.failure_rate_threshold),
            ("slow_call_rate_threshold", self.slow_call_rate_threshold),
        ] {
            if !(value > 0.0 && value <= 100.0) {
                return field(name, format!("must be a percentage in (0, 100], got {value}"));
            }
        }
        if self.minimum_calls == 0 {
            return field("minimum_calls", "must be at least 1".into());
        }
        if self.permitted_in_half_open == 0 {
            return field("permitted_in_half_open", "must be at least 1".into());
        }
        if self.wait_in_open.is_zero() {
            return field("wait_in_open", "must be longer than zero".into());
        }
        if self.slow_call_duration.is_some_and(|d| d.is_zero()) {
            return field("slow_call_duration", "must be longer than zero".into());
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

/// Why the breaker refused a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// The circuit is open for this much longer.
    Open { remaining: Duration },
    /// Half-open and all trial calls are in flight.
    HalfOpenFull,
}

/// The error of [`CircuitBreaker::call`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BreakerError<E> {
    #[error("call rejected by the circuit breaker: {0:?}")]
    Rejected(Rejection),
    #[error(transparent)]
    Inner(E),
}

#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    calls: u32,
    failures: u32,
    slow: u32,
}

impl Tally {
    fn add(&mut self, failed: bool, slow: bool) {
        self.calls += 1;
        self.failures += u32::from(failed);
        self.slow += u32::from(slow);
    }

    fn remove(&mut self, other: Tally) {
        self.calls -= other.calls;
        self.failures -= other.failures;
        self.slow -= other.slow;
    }

    fn rates(&self) -> (f64, f64) {
        let calls = f64::from(self.calls.max(1));
        (100.0 * f64::from(self.failures) / calls, 100.0 * f64::from(self.slow) / calls)
    }
}

/// Number of buckets a time window is cut into.
const TIME_BUCKETS: u32 = 10;

/// A time window: the outcomes of the last `duration`, in [`TIME_BUCKETS`] buckets with running
/// totals, so recording is O(1). (Count windows are [`CountWindow`]s, recorded without a lock.)
#[derive(Debug)]
struct TimeWindow {
    bucket_width: Duration,
    total: Tally,
    /// One entry per bucket that saw calls, keyed by bucket index.
    entries: VecDeque<(u64, Tally)>,
    origin: Instant,
}

impl TimeWindow {
    fn new(duration: Duration) -> Self {
        Self {
            bucket_width: (duration / TIME_BUCKETS).max(Duration::from_millis(1)),
            total: Tally::default(),
            entries: VecDeque::new(),
            origin: Instant::now(),
        }
    }

    /// Adds one outcome and returns the window's totals.
    fn record(&mut self, failed: bool, slow: bool) -> Tally {
        let now = Instant::now();
        let current = (now.duration_since(self.origin).as_nanos() / self.bucket_width.as_nanos()) as u64;
        while let Some(&(index, tally)) = self.entries.front() {
            if index + u64::from(TIME_BUCKETS) > current {
                break;
            }
            self.total.remove(tally);
            self.entries.pop_front();
        }
        match self.entries.back_mut() {
            Some((last, tally)) if *last == current => tally.add(failed, slow),
            _ => {
                let mut one = Tally::default();
                one.add(failed, slow);
                self.entries.push_back((current, one));
            }
        }
        self.total.add(failed, slow);
        self.total
    }
}

/// A count window without a lock: a ring of the last N outcomes and running totals, updated
/// with atomics, so recording a call while CLOSED costs a few uncontended atomic operations.
/// Under concurrency the totals may lag a moment behind the ring; a breaker only needs them
/// approximately right at the instant it decides.
#[derive(Debug)]
struct CountWindow {
    ring: Box<[AtomicU8]>,
    cursor: AtomicU64,
    failures: AtomicU32,
    slow: AtomicU32,
}

const OUTCOME_FAILED: u8 = 1;
const OUTCOME_SLOW: u8 = 2;

impl CountWindow {
    fn new(size: u32) -> Self {
        Self {
            ring: (0..size).map(|_| AtomicU8::new(0)).collect(),
            cursor: AtomicU64::new(0),
            failures: AtomicU32::new(0),
            slow: AtomicU32::new(0),
        }
    }

    fn adjust(counter: &AtomicU32, was: bool, is: bool) {
        match (was, is) {
            (false, true) => {
                counter.fetch_add(1, Ordering::Relaxed);
            }
            (true, false) => {
                counter.fetch_sub(1, Ordering::Relaxed);
            }
            _ => {}
        }
    }

    fn record(&self, failed: bool, slow: bool) -> Tally {
        let outcome = (u8::from(failed) * OUTCOME_FAILED) | (u8::from(slow) * OUTCOME_SLOW);
        let index = self.cursor.fetch_add(1, Ordering::Relaxed);
        let size = self.ring.len() as u64;
        // The cursor hands each call its own slot, so a plain load and store suffice (only a
        // thread more than a whole ring behind could race here, and then only the totals drift).
        let slot = &self.ring[(index % size) as usize];
        let old = slot.load(Ordering::Relaxed);
        if old != outcome {
            slot.store(outcome, Ordering::Relaxed);
        }
        Self::adjust(&self.failures, old & OUTCOME_FAILED != 0, failed);
        Self::adjust(&self.slow, old & OUTCOME_SLOW != 0, slow);
        Tally {
            calls: (index + 1).min(size) as u32,
            failures: self.failures.load(Ordering::Relaxed),
            slow: self.slow.load(Ordering::Relaxed),
        }
    }

    fn reset(&self) {
        for slot in self.ring.iter() {
            slot.store(0, Ordering::Relaxed);
        }
        self.failures.store(0, Ordering::Relaxed);
        self.slow.store(0, Ordering::Relaxed);
        self.cursor.store(0, Ordering::Relaxed);
    }
}

fn time_window(kind: SlidingWindow) -> Option<TimeWindow> {
    match kind {
        SlidingWindow::Time(duration) => Some(TimeWindow::new(duration)),
        SlidingWindow::Count(_) => None,
    }
}

#[derive(Debug)]
enum State {
    /// With the time window, or `None` when the window is the lock-free [`CountWindow`].
    Closed(Option<TimeWindow>),
    Open {
        until: Instant,
    },
    HalfOpen {
        in_flight: u32,
        results: Tally,
    },
}

impl State {
    fn kind(&self) -> BreakerState {
        match self {
            State::Closed(_) => BreakerState::Closed,
            State::Open { .. } => BreakerState::Open,
            State::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }
}

#[derive(Debug)]
struct Inner {
    state: State,
    /// When the shared store was last read (None: never).
    shared_checked: Option<Instant>,
}

/// Permission for one call; hand it back with [`CircuitBreaker::record`]. A permit dropped
/// without being recorded (its call was cancelled, e.g. by an outer timeout) counts as a failure,
/// so half-open trial slots never leak.
#[derive(Debug)]
#[must_use = "record the call's outcome with CircuitBreaker::record"]
pub struct Permit<'a> {
    breaker: &'a CircuitBreaker,
    /// Only measured when slow calls are tracked.
    started: Option<Instant>,
    half_open: bool,
    settled: bool,
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.settled = true;
            // No await here: the shared store learns of it on a later recorded call.
            let _ = self.breaker.settle(self, true);
        }
    }
}

const HINT_CLOSED: u8 = 0;
const HINT_NOT_CLOSED: u8 = 1;

/// Everything a breaker and its clones share, in one allocation so the common path touches
/// few cache lines.
struct Core {
    name: Box<str>,
    config: BreakerConfig,
    /// Mirrors "state is CLOSED" so the common path grants a permit without taking the lock.
    /// A call let through just as the circuit opens is like one already in flight then: its
    /// outcome is ignored.
    hint: AtomicU8,
    /// The CLOSED window when it is a count window (time windows live under the lock).
    counts: Option<CountWindow>,
    inner: Mutex<Inner>,
}

#[derive(Clone)]
pub struct CircuitBreaker {
    core: Arc<Core>,
    store: Option<Arc<dyn BreakerStateStore>>,
}

impl std::fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CircuitBreaker").field("name", &self.core.name).field("state", &self.state()).finish()
    }
}

/// `rate% of calls` compared without dividing (this runs on every recorded call).
fn rates_trip(config: &BreakerConfig, tally: Tally) -> bool {
    let calls = f64::from(tally.calls);
    100.0 * f64::from(tally.failures) >= config.failure_rate_threshold * calls
        || 100.0 * f64::from(tally.slow) >= config.slow_call_rate_threshold * calls
}

impl CircuitBreaker {
    pub fn new(name: impl Into<String>, config: BreakerConfig) -> Result<Self, InvalidSetting> {
        config.validate()?;
        let name: String = name.into();
        if name.trim().is_empty() {
            return Err(InvalidSetting { field: "name", reason: "a breaker needs a name".into() });
        }
        Ok(Self {
            core: Arc::new(Core {
                name: name.into(),
                hint: AtomicU8::new(HINT_CLOSED),
                counts: match config.window {
                    SlidingWindow::Count(size) => Some(CountWindow::new(size)),
                    SlidingWindow::Time(_) => None,
                },
                inner: Mutex::new(Inner { state: State::Closed(time_window(config.window)), shared_checked: None }),
                config,
            }),
            store: None,
        })
    }

    /// Shares OPEN decisions with other instances through `store`.
    pub fn with_shared_state(mut self, store: Arc<dyn BreakerStateStore>) -> Self {
        self.store = Some(store);
        self
    }

    pub fn name(&self) -> &str {
        &self.core.name
    }

    pub fn state(&self) -> BreakerState {
        self.core.inner.lock().unwrap().state.kind()
    }

    fn transition(&self, inner: &mut Inner, to: State) {
        let from = inner.state.kind();
        let next = to.kind();
        if next == BreakerState::Closed
            && let Some(counts) = &self.core.counts
        {
            counts.reset();
        }
        inner.state = to;
        self.core
            .hint
            .store(if next == BreakerState::Closed { HINT_CLOSED } else { HINT_NOT_CLOSED }, Ordering::Release);
        if from != next {
            let state = match next {
                BreakerState::Closed => "CLOSED",
                BreakerState::Open => "OPEN",
                BreakerState::HalfOpen => "HALF_OPEN",
            };
            crate::metrics::breaker_state_changed(&self.core.name, state);
            match next {
                BreakerState::Open => {
                    tracing::warn!(breaker = %self.core.name, ?from, to = ?next, "circuit breaker state changed")
                }
                _ => tracing::info!(breaker = %self.core.name, ?from, to = ?next, "circuit breaker state changed"),
            }
        }
    }

    /// Opens the circuit; returns how long it stays open.
    fn open(&self, inner: &mut Inner) -> Duration {
        let until = Instant::now() + self.core.config.wait_in_open;
        self.transition(inner, State::Open { until });
        self.core.config.wait_in_open
    }

    /// Reads the shared state when the cached one is too old.
    async fn sync_shared(&self) {
        let Some(store) = &self.store else { return };
        let now = Instant::now();
        {
            let inner = self.core.inner.lock().unwrap();
            if inner.shared_checked.is_some_and(|t| now.duration_since(t) < self.core.config.shared_state_refresh) {
                return;
            }
        }
        let shared = match store.load(&self.core.name).await {
            Ok(shared) => shared,
            Err(err) => {
                // The local breaker still protects us; the shared state is a speed-up.
                tracing::warn!(breaker = %self.core.name, error = %err, "shared breaker state unavailable");
                None
            }
        };
        let mut inner = self.core.inner.lock().unwrap();
        inner.shared_checked = Some(Instant::now());
        if let Some(SharedState::Open { remaining }) = shared
            && matches!(inner.state, State::Closed(_))
            && !remaining.is_zero()
        {
            tracing::info!(breaker = %self.core.name, ?remaining, "circuit opened by another instance");
            self.transition(&mut inner, State::Open { until: Instant::now() + remaining });
        }
    }

    /// Asks to make a call.
    pub async fn acquire(&self) -> Result<Permit<'_>, Rejection> {
        if self.store.is_some() {
            self.sync_shared().await;
        }
        self.try_acquire()
    }

    /// Runs `operation` under this breaker alone (no retry, bulkhead or timeout; see
    /// [`Policy`](super::Policy) for those). `is_failure` judges its errors.
    pub async fn call<T, E, Fut>(&self, is_failure: impl Fn(&E) -> bool, operation: Fut) -> Result<T, BreakerError<E>>
    where
        Fut: std::future::Future<Output = Result<T, E>>,
    {
        let permit = if self.is_shared() { Box::pin(self.acquire()).await } else { self.try_acquire() };
        let permit = permit.map_err(BreakerError::Rejected)?;
        let result = operation.await;
        let failed = result.as_ref().err().is_some_and(&is_failure);
        if self.is_shared() {
            Box::pin(self.record(permit, failed)).await;
        } else {
            let _ = self.record_local(permit, failed);
        }
        result.map_err(BreakerError::Inner)
    }

    /// [`acquire`](Self::acquire) without consulting the shared store: never waits.
    pub fn try_acquire(&self) -> Result<Permit<'_>, Rejection> {
        if self.core.hint.load(Ordering::Acquire) == HINT_CLOSED {
            return Ok(self.permit(false));
        }
        let now = Instant::now();
        let mut inner = self.core.inner.lock().unwrap();
        match &mut inner.state {
            State::Closed(_) => Ok(self.permit(false)),
            State::Open { until } if now < *until => Err(Rejection::Open { remaining: *until - now }),
            State::Open { .. } => {
                self.transition(&mut inner, State::HalfOpen { in_flight: 1, results: Tally::default() });
                Ok(self.permit(true))
            }
            State::HalfOpen { in_flight, results } => {
                if *in_flight + results.calls < self.core.config.permitted_in_half_open {
                    *in_flight += 1;
                    Ok(self.permit(true))
                } else {
                    Err(Rejection::HalfOpenFull)
                }
            }
        }
    }

    /// Gives a permit back without an outcome: the call was not made (e.g. a full bulkhead).
    pub fn forget(&self, mut permit: Permit<'_>) {
        permit.settled = true;
        if permit.half_open
            && let State::HalfOpen { in_flight, .. } = &mut self.core.inner.lock().unwrap().state
        {
            *in_flight -= 1;
        }
    }

    fn permit(&self, half_open: bool) -> Permit<'_> {
        let started = self.core.config.slow_call_duration.map(|_| Instant::now());
        Permit { breaker: self, started, half_open, settled: false }
    }

    /// Records how a permitted call ended. `failed` is the caller's judgement of the error.
    pub async fn record(&self, permit: Permit<'_>, failed: bool) {
        let publish = self.record_local(permit, failed);
        if let (Some(state), Some(store)) = (publish, &self.store)
            && let Err(err) = store.save(&self.core.name, state).await
        {
            tracing::warn!(breaker = %self.core.name, error = %err, "could not share breaker state");
        }
    }

    /// Records the outcome in this instance only; returns the state to share, if any. Use
    /// [`record`](Self::record) unless you publish it yourself.
    pub fn record_local(&self, mut permit: Permit<'_>, failed: bool) -> Option<SharedState> {
        permit.settled = true;
        self.settle(&permit, failed)
    }

    /// True when this breaker shares its state through a store.
    pub fn is_shared(&self) -> bool {
        self.store.is_some()
    }

    /// Applies a call's outcome; returns the state to share, if it changed in a way others need to know.
    fn settle(&self, permit: &Permit<'_>, failed: bool) -> Option<SharedState> {
        let slow = match (permit.started, self.core.config.slow_call_duration) {
            (Some(started), Some(limit)) => started.elapsed() >= limit,
            _ => false,
        };
        if !permit.half_open
            && let Some(counts) = &self.core.counts
        {
            // Lock-free while CLOSED; the lock is taken only to open the circuit.
            if self.core.hint.load(Ordering::Acquire) != HINT_CLOSED {
                return None;
            }
            let tally = counts.record(failed, slow);
            let clean = tally.failures == 0 && tally.slow == 0;
            if clean || tally.calls < self.core.config.minimum_calls || !rates_trip(&self.core.config, tally) {
                return None;
            }
            let mut inner = self.core.inner.lock().unwrap();
            if !matches!(inner.state, State::Closed(_)) {
                return None;
            }
            let (failure_rate, slow_rate) = tally.rates();
            tracing::warn!(breaker = %self.core.name, failure_rate, slow_rate, calls = tally.calls, "thresholds crossed");
            return Some(SharedState::Open { remaining: self.open(&mut inner) });
        }
        {
            let mut inner = self.core.inner.lock().unwrap();
            let config = &self.core.config;
            match &mut inner.state {
                State::Closed(Some(window)) if !permit.half_open => {
                    let tally = window.record(failed, slow);
                    if tally.calls >= config.minimum_calls && rates_trip(config, tally) {
                        let (failure_rate, slow_rate) = tally.rates();
                        tracing::warn!(breaker = %self.core.name, failure_rate, slow_rate, calls = tally.calls, "thresholds crossed");
                        Some(SharedState::Open { remaining: self.open(&mut inner) })
                    } else {
                        None
                    }
                }
                State::HalfOpen { in_flight, results } if permit.half_open => {
                    *in_flight -= 1;
                    results.add(failed, slow);
                    if results.calls < config.permitted_in_half_open {
                        None
                    } else if rates_trip(config, *results) {
                        Some(SharedState::Open { remaining: self.open(&mut inner) })
                    } else {
                        self.transition(&mut inner, State::Closed(time_window(config.window)));
                        Some(SharedState::Closed)
                    }
                }
                // The breaker moved on while this call ran (e.g. opened by others): its outcome
                // belongs to a past state.
                _ => None,
            }
        }
    }
}
