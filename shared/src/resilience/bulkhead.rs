//! Bulkhead: at most N calls in flight to one downstream, so one slow dependency cannot take
//! all of a function's concurrency. Beyond N, a call waits at most `max_wait` (zero by default)
//! for a slot, then fails at once with `BulkheadFull`.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::InvalidSetting;

#[derive(Debug, Clone)]
pub struct Bulkhead {
    slots: Arc<Semaphore>,
    max_concurrent: usize,
    max_wait: Duration,
}

impl Bulkhead {
    pub fn new(max_concurrent: usize, max_wait: Duration) -> Result<Self, InvalidSetting> {
        if max_concurrent == 0 {
            return Err(InvalidSetting { field: "max_concurrent", reason: "must be at least 1".into() });
        }
        Ok(Self { slots: Arc::new(Semaphore::new(max_concurrent)), max_concurrent, max_wait })
    }

    pub fn max_concurrent(&self) -> usize {
        self.max_concurrent
    }

    /// Calls in flight now.
    pub fn in_flight(&self) -> usize {
        self.max_concurrent - self.slots.available_permits()
    }

    /// A slot, or `None` when all are taken for longer than `max_wait`.
    pub async fn enter(&self) -> Option<OwnedSemaphorePermit> {
        match self.try_enter() {
            Some(slot) => Some(slot),
            None => self.wait_for_slot().await,
        }
    }

    /// A free slot now, without waiting.
    pub fn try_enter(&self) -> Option<OwnedSemaphorePermit> {
        self.slots.clone().try_acquire_owned().ok()
    }

    /// Waits up to `max_wait` for a slot (none at all when `max_wait` is zero).
    pub async fn wait_for_slot(&self) -> Option<OwnedSemaphorePermit> {
        if self.max_wait.is_zero() {
            return None;
        }
        tokio::time::timeout(self.max_wait, self.slots.clone().acquire_owned()).await.ok()?.ok()
    }
}
