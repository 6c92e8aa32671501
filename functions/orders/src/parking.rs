//! Parking: where an order waits when a compensation could not finish within the saga's retries.
//!
//! The fulfilment saga compensates in reverse (refund, release, cancel) and retries each
//! compensation for minutes. When one still fails, its `ParkOrder` step (answered by the orders
//! worker, [`crate::saga`]) moves the order from `PENDING` to `COMPENSATION_PENDING` with a
//! [`Parking`]: which compensation failed and how, which are still owed, how many attempts were
//! made and when the next one is due. The sweeper ([`crate::sweeper`]) finds due orders through a
//! sparse index ([`sweep_key`]) and runs the compensation state machine for each; its
//! `CancelOrder` ends the order `CANCELLED` with `OrderCancelled`, as the saga would have.
//!
//! Nothing here does I/O: these are the rules, applied by the worker and the sweeper.

use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use shared_core::OrderId;
use shared_core::{CorrelationId, DomainEvent};

use crate::domain::{IllegalTransition, Order, OrderStatus};
use crate::events::SERVICE;
use crate::ports::OutboxEvent;

/// Published when an order is parked: something for an operator's dashboard or pager.
pub const ORDER_COMPENSATION_PENDING: &str = "OrderCompensationPending";

/// The compensations an order still owes besides cancelling it (which it always owes while
/// parked). Which ones depends on where the saga's compensation stopped: a failed refund still
/// owes the refund and the release, a failed release only the release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Owed {
    pub refund_payment: bool,
    pub release_inventory: bool,
}

impl Owed {
    /// Everything: what an order whose saga was lost owes (each compensation is idempotent and
    /// leaves a tombstone where there was nothing to undo, so owing too much is safe).
    pub const ALL: Owed = Owed { refund_payment: true, release_inventory: true };
}

/// Why an order is parked and when it is tried again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Parking {
    /// The compensation that failed last (`RefundPayment`, `ReleaseInventory`, `CancelOrder`), or
    /// `Saga` when the sweeper found the order pending after its saga ended.
    pub failed_step: String,
    /// Its error and cause as the state machine caught them.
    pub error: String,
    pub cause: String,
    pub owed: Owed,
    /// Why the order is being cancelled at all (the saga's error, e.g. `PaymentDeclined`): the
    /// final `CancelOrder` records it as the cancellation reason.
    pub reason: String,
    #[serde(default)]
    pub detail: Option<String>,
    /// The order's conversation, carried into every retry.
    pub correlation_id: CorrelationId,
    /// Compensation attempts started so far: the saga's is the first; each retry the sweeper
    /// starts adds one and is named after it.
    pub attempts: u32,
    #[serde(with = "shared_core::envelope::rfc3339_millis")]
    #[cfg_attr(feature = "schema", schemars(with = "DateTime<Utc>"))]
    pub parked_at: DateTime<Utc>,
    #[serde(with = "shared_core::envelope::rfc3339_millis")]
    #[cfg_attr(feature = "schema", schemars(with = "DateTime<Utc>"))]
    pub next_attempt_at: DateTime<Utc>,
}

/// What a failed compensation reports when it parks (or re-parks) an order.
#[derive(Debug, Clone, PartialEq)]
pub struct ParkReport {
    pub failed_step: String,
    pub error: String,
    pub cause: String,
    pub owed: Owed,
    pub reason: String,
    pub detail: Option<String>,
    pub correlation_id: CorrelationId,
    /// The sweeper's attempt that failed; `None` for the saga's own.
    pub attempt: Option<u32>,
}

/// How long a parked order waits before each retry: `first`, doubling per attempt, at most
/// `max`. Defaults: 15 minutes doubling to 24 hours; `COMPENSATION_RETRY_FIRST_SECONDS` and
/// `COMPENSATION_RETRY_MAX_SECONDS` change them (the local tests wait seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { first: Duration::from_secs(15 * 60), max: Duration::from_secs(24 * 3600) }
    }
}

impl Backoff {
    pub fn from_lookup(env: shared::config::Lookup<'_>) -> Result<Self, shared::config::ConfigError> {
        let defaults = Self::default();
        let first = shared::config::parsed_or(env, "COMPENSATION_RETRY_FIRST_SECONDS", defaults.first.as_secs())?;
        let max = shared::config::parsed_or(env, "COMPENSATION_RETRY_MAX_SECONDS", defaults.max.as_secs())?;
        Ok(Self { first: Duration::from_secs(first), max: Duration::from_secs(max.max(first)) })
    }

    /// The wait after `attempts` failed attempts (1: `first`, 2: twice that, ...).
    pub fn after(&self, attempts: u32) -> Duration {
        let doublings = attempts.saturating_sub(1).min(32);
        self.first.saturating_mul(1u32 << doublings.min(31)).min(self.max)
    }
}

fn later(now: DateTime<Utc>, wait: Duration) -> DateTime<Utc> {
    (now + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX)).trunc_subsecs(3)
}

impl Order {
    /// Parks a pending order (first attempt failed; next one at `next_attempt_at`), or records a
    /// later attempt's failure on a parked one. Returns whether anything changed. A cancelled
    /// order has nothing left to compensate (`Ok(false)`); a confirmed one must not be parked.
    /// A report of an attempt older than the order's last is stale and changes nothing.
    pub fn park(
        &mut self,
        report: ParkReport,
        next_attempt_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, IllegalTransition> {
        match self.status {
            OrderStatus::Cancelled => Ok(false),
            OrderStatus::CompensationPending => {
                let Some(parking) = &mut self.parking else { return Ok(false) };
                if report.attempt.is_some_and(|a| a < parking.attempts) || report.attempt.is_none() {
                    // A stale attempt, or the saga's ParkOrder delivered again: already parked.
                    return Ok(false);
                }
                parking.failed_step = report.failed_step;
                parking.error = report.error;
                parking.cause = report.cause;
                parking.owed = report.owed;
                self.updated_at = now.trunc_subsecs(3);
                self.version += 1;
                Ok(true)
            }
            _ => {
                self.transition(OrderStatus::CompensationPending, now)?;
                self.parking = Some(Parking {
                    failed_step: report.failed_step,
                    error: report.error,
                    cause: report.cause,
                    owed: report.owed,
                    reason: report.reason,
                    detail: report.detail,
                    correlation_id: report.correlation_id,
                    attempts: 1,
                    parked_at: now.trunc_subsecs(3),
                    next_attempt_at: next_attempt_at.trunc_subsecs(3),
                });
                Ok(true)
            }
        }
    }

    /// Claims the next compensation attempt of a parked order: counts it and moves the next
    /// attempt past its backoff, so a retry that dies silently is tried again then. Returns the
    /// attempt's number (the compensation execution is named after it).
    pub fn claim_retry(&mut self, backoff: &Backoff, now: DateTime<Utc>) -> Result<u32, IllegalTransition> {
        let illegal = IllegalTransition { from: self.status, to: OrderStatus::CompensationPending };
        let (OrderStatus::CompensationPending, Some(parking)) = (self.status, &mut self.parking) else {
            return Err(illegal);
        };
        parking.attempts += 1;
        parking.next_attempt_at = later(now, backoff.after(parking.attempts));
        self.updated_at = now.trunc_subsecs(3);
        self.version += 1;
        Ok(parking.attempts)
    }
}

/// When a freshly parked order is first retried.
pub fn first_retry_at(backoff: &Backoff, now: DateTime<Utc>) -> DateTime<Utc> {
    later(now, backoff.after(1))
}

/// The two queues of the sweep index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queue {
    /// Pending orders by creation time: a saga lost (its `ParkOrder` failed, or it never
    /// started) leaves one here past the saga's longest run.
    Pending,
    /// Parked orders by their next attempt.
    Parked,
}

impl Queue {
    pub fn prefix(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Parked => "PARKED",
        }
    }
}

/// The index's partition key is spread over this many shards per queue, so that every new order
/// writing to the `PENDING` queue does not land on one partition of the index (a partition takes
/// about 1,000 writes a second). The sweeper queries every shard. Only ever raise it: orders
/// written under a larger count would sit in shards a smaller one never reads.
pub const SHARDS: u8 = 4;

/// The sweep index's key of an order: `(<QUEUE>#<shard>, <time>#<id>)` for a pending or parked
/// order, none for a confirmed or cancelled one, which thereby leaves the (sparse) index.
pub fn sweep_key(order: &Order) -> Option<(String, String)> {
    let (queue, at) = match (order.status, &order.parking) {
        (OrderStatus::Pending, _) => (Queue::Pending, order.created_at),
        (OrderStatus::CompensationPending, Some(parking)) => (Queue::Parked, parking.next_attempt_at),
        _ => return None,
    };
    Some((shard_key(queue, shard_of(order.id)), format!("{}#{}", timestamp(at), order.id)))
}

pub fn shard_of(id: OrderId) -> u8 {
    let text = id.to_string();
    let last = u8::from_str_radix(&text[text.len() - 2..], 16).unwrap_or(0);
    last % SHARDS
}

pub fn shard_key(queue: Queue, shard: u8) -> String {
    format!("{}#{shard}", queue.prefix())
}

/// The sort key bound for "at or before `at`": every `<time>#<id>` with a time up to `at`
/// sorts below it (`~` sorts after `#`).
pub fn due_bound(at: DateTime<Utc>) -> String {
    format!("{}~", timestamp(at))
}

fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// An order was parked: its compensation could not finish, and a retry is scheduled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct OrderCompensationPending {
    pub order_id: OrderId,
    pub customer_id: String,
    pub failed_step: String,
    pub error: String,
    pub owed: Owed,
    #[serde(with = "shared_core::envelope::rfc3339_millis")]
    #[cfg_attr(feature = "schema", schemars(with = "DateTime<Utc>"))]
    pub next_attempt_at: DateTime<Utc>,
}

/// The outbox record of a parked order's event.
pub fn order_compensation_pending(order: &Order) -> Option<OutboxEvent> {
    let parking = order.parking.as_ref()?;
    let data = OrderCompensationPending {
        order_id: order.id,
        customer_id: order.customer_id.clone(),
        failed_step: parking.failed_step.clone(),
        error: parking.error.clone(),
        owed: parking.owed,
        next_attempt_at: parking.next_attempt_at,
    };
    let event = DomainEvent::new(
        ORDER_COMPENSATION_PENDING,
        order.id.to_string(),
        parking.correlation_id.clone(),
        order.updated_at,
        data,
    );
    Some(OutboxEvent::from_event(&event, SERVICE))
}
