//! The orders domain: plain types and rules, no AWS and no HTTP.

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
pub use shared_core::validation::MAX_ID_LEN;
use shared_core::validation::{check_identifier, check_lines, repeated_skus};
use shared_core::{InvalidParam, OrderId};

/// An order must fit one reservation (see `MAX_ORDER_LINES`).
pub const MAX_LINES: usize = shared_core::validation::MAX_ORDER_LINES;
pub use shared_core::validation::MAX_QUANTITY;
pub const MAX_PAYMENT_METHOD_LEN: usize = 255;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    Pending,
    Confirmed,
    Cancelled,
    /// A compensation could not finish within the saga's retries: the order is parked with the
    /// reason (see [`crate::parking`]) until a scheduled or operator-triggered retry cancels it.
    CompensationPending,
}

impl OrderStatus {
    pub fn can_become(self, next: OrderStatus) -> bool {
        matches!(
            (self, next),
            (Self::Pending, Self::Confirmed)
                | (Self::Pending, Self::Cancelled)
                | (Self::Pending, Self::CompensationPending)
                | (Self::CompensationPending, Self::Cancelled)
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct OrderLine {
    pub sku: String,
    pub quantity: u32,
}

/// An order. Prices and totals are not here: they come from the inventory's reservation, never
/// from the client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Order {
    pub id: OrderId,
    pub customer_id: String,
    /// A payment provider token (e.g. `pm_card_visa`), never card data.
    pub payment_method: String,
    pub lines: Vec<OrderLine>,
    pub status: OrderStatus,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub cancellation_reason: Option<String>,
    /// Why and until when a `COMPENSATION_PENDING` order is parked; kept once it is cancelled.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub parking: Option<crate::parking::Parking>,
    #[serde(with = "shared_core::envelope::rfc3339_millis")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "shared_core::envelope::rfc3339_millis")]
    pub updated_at: DateTime<Utc>,
    /// Incremented on every change; the store uses it for optimistic locking.
    pub version: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an order cannot go from {from:?} to {to:?}")]
pub struct IllegalTransition {
    pub from: OrderStatus,
    pub to: OrderStatus,
}

impl Order {
    /// A new pending order from a validated request.
    pub fn place(request: ValidOrderRequest, now: DateTime<Utc>) -> Self {
        // Timestamps are stored and sent with millisecond precision; keep exactly that.
        let now = now.trunc_subsecs(3);
        Self {
            id: OrderId::new(),
            customer_id: request.customer_id,
            payment_method: request.payment_method,
            lines: request.lines,
            status: OrderStatus::Pending,
            cancellation_reason: None,
            parking: None,
            created_at: now,
            updated_at: now,
            version: 1,
        }
    }

    pub fn confirm(&mut self, now: DateTime<Utc>) -> Result<(), IllegalTransition> {
        self.transition(OrderStatus::Confirmed, now)
    }

    pub fn cancel(&mut self, reason: impl Into<String>, now: DateTime<Utc>) -> Result<(), IllegalTransition> {
        self.transition(OrderStatus::Cancelled, now)?;
        self.cancellation_reason = Some(reason.into());
        Ok(())
    }

    pub(crate) fn transition(&mut self, to: OrderStatus, now: DateTime<Utc>) -> Result<(), IllegalTransition> {
        if !self.status.can_become(to) {
            return Err(IllegalTransition { from: self.status, to });
        }
        self.status = to;
        self.updated_at = now.trunc_subsecs(3);
        self.version += 1;
        Ok(())
    }
}

/// `POST /orders` as the client sends it. Unknown fields are rejected, so a client that sends a
/// price or a total hears about it instead of believing it was used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlaceOrderRequest {
    pub customer_id: String,
    pub payment_method: String,
    pub items: Vec<RequestedItem>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestedItem {
    pub sku: String,
    pub quantity: u32,
}

/// A request that passed every rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidOrderRequest {
    pub customer_id: String,
    pub payment_method: String,
    pub lines: Vec<OrderLine>,
}

/// True when `value` holds 13 or more digits in a row (spaces and dashes allowed between them):
/// the shape of a primary account number, which must never reach us or our logs. We do not
/// check Luhn: anything that long is refused either way.
pub fn contains_card_number(value: &str) -> bool {
    let mut run = 0;
    for c in value.chars() {
        match c {
            '0'..='9' => run += 1,
            ' ' | '-' if run > 0 => {}
            _ => run = 0,
        }
        if run >= 13 {
            return true;
        }
    }
    false
}

fn check_payment_method(value: &str, violations: &mut Vec<InvalidParam>) {
    const NAME: &str = "payment_method";
    if contains_card_number(value) {
        violations.push(InvalidParam::new(
            NAME,
            "looks like a card number; send a payment provider token (e.g. pm_card_visa), never card data",
        ));
    } else if !value.starts_with("pm_") || value.len() <= 3 {
        violations.push(InvalidParam::new(NAME, "must be a payment method token starting with `pm_`"));
    } else if value.len() > MAX_PAYMENT_METHOD_LEN {
        violations.push(InvalidParam::new(NAME, format!("must be at most {MAX_PAYMENT_METHOD_LEN} characters")));
    } else if !value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        violations.push(InvalidParam::new(NAME, "may contain only letters, digits and `_`"));
    }
}

/// Why a request to place an order was refused; each violation names its field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Fields that break their own rules (length, characters, range): what a schema states.
    Invalid(Vec<InvalidParam>),
    /// Valid fields that break a rule across them: a sku on two lines.
    Unprocessable(Vec<InvalidParam>),
}

impl Refusal {
    pub fn violations(&self) -> &[InvalidParam] {
        match self {
            Self::Invalid(violations) | Self::Unprocessable(violations) => violations,
        }
    }
}

impl PlaceOrderRequest {
    /// Checks every field and reports every violation; only a request whose fields are all
    /// valid is checked across lines.
    pub fn validate(self) -> Result<ValidOrderRequest, Refusal> {
        let mut violations = Vec::new();
        check_identifier("customer_id", &self.customer_id, &mut violations);
        check_payment_method(&self.payment_method, &mut violations);
        let lines = self.items.iter().map(|item| (item.sku.as_str(), item.quantity));
        check_lines("items", lines, MAX_LINES, " (one reservation holds that many)", &mut violations);
        if !violations.is_empty() {
            return Err(Refusal::Invalid(violations));
        }
        let repeated = repeated_skus("items", self.items.iter().map(|item| item.sku.as_str()));
        if !repeated.is_empty() {
            return Err(Refusal::Unprocessable(repeated));
        }
        Ok(ValidOrderRequest {
            customer_id: self.customer_id,
            payment_method: self.payment_method,
            lines: self.items.into_iter().map(|i| OrderLine { sku: i.sku, quantity: i.quantity }).collect(),
        })
    }
}
