//! The inventory domain: products with a price and stock, and reservations of stock for orders.
//! Plain types and rules, no I/O.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use shared_core::money::check_currency;
use shared_core::validation::{check_identifier, check_lines, repeated_skus};
use shared_core::{InvalidParam, OrderId};

/// A reservation is one DynamoDB transaction: one stock update per line, plus the reservation
/// record and its outbox event. DynamoDB allows 100 items per transaction.
pub const MAX_RESERVATION_LINES: usize = shared_core::validation::MAX_ORDER_LINES;
pub const MAX_RESTOCK: u32 = 1_000_000;
/// Prices up to 100 million major units (in minor units), far above any real product.
pub const MAX_PRICE_MINOR: u64 = 10_000_000_000;
pub const MAX_NAME_LEN: usize = 200;

pub use shared_core::money::Money;

/// A product of the catalogue with its stock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    pub sku: String,
    pub name: String,
    pub price: Money,
    /// Units that can still be reserved.
    pub available: u64,
    /// `StockLow` is published when `available` drops below this.
    pub low_stock_threshold: u64,
    #[serde(with = "shared_core::envelope::rfc3339_millis")]
    pub updated_at: DateTime<Utc>,
}

/// `PUT /inventory/{sku}`: create a product or change its name, price or threshold. Stock only
/// changes through restocks and reservations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductSpec {
    pub name: String,
    pub price: Money,
    #[serde(default)]
    pub low_stock_threshold: u64,
}

impl ProductSpec {
    pub fn validate(&self, sku: &str) -> Result<(), Vec<InvalidParam>> {
        let mut violations = Vec::new();
        check_identifier("sku", sku, &mut violations);
        if self.name.trim().is_empty() || self.name.chars().count() > MAX_NAME_LEN {
            violations.push(InvalidParam::new("name", format!("must be 1 to {MAX_NAME_LEN} characters")));
        }
        if self.price.amount_minor > MAX_PRICE_MINOR {
            violations.push(InvalidParam::new("price.amount_minor", format!("must be at most {MAX_PRICE_MINOR}")));
        }
        check_currency("price.currency", &self.price.currency, &mut violations);
        if self.low_stock_threshold > u64::from(MAX_RESTOCK) {
            violations.push(InvalidParam::new("low_stock_threshold", format!("must be at most {MAX_RESTOCK}")));
        }
        if violations.is_empty() { Ok(()) } else { Err(violations) }
    }
}

/// `POST /inventory/{sku}/restock`. The `restock_id` makes a retried restock count once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Restock {
    pub restock_id: String,
    pub quantity: u32,
}

impl Restock {
    pub fn validate(&self) -> Result<(), Vec<InvalidParam>> {
        let mut violations = Vec::new();
        check_identifier("restock_id", &self.restock_id, &mut violations);
        if !(1..=MAX_RESTOCK).contains(&self.quantity) {
            violations.push(InvalidParam::new("quantity", format!("must be between 1 and {MAX_RESTOCK}")));
        }
        if violations.is_empty() { Ok(()) } else { Err(violations) }
    }
}

/// A line to reserve, as the saga's `ReserveInventory` command carries it: read tolerantly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RequestedLine {
    pub sku: String,
    pub quantity: u32,
}

/// Checks the lines of a reservation request, naming each bad field.
pub fn validate_lines(lines: &[RequestedLine]) -> Result<(), Vec<InvalidParam>> {
    let mut violations = Vec::new();
    check_lines(
        "lines",
        lines.iter().map(|line| (line.sku.as_str(), line.quantity)),
        MAX_RESERVATION_LINES,
        " (one DynamoDB transaction per reservation)",
        &mut violations,
    );
    violations.extend(repeated_skus("lines", lines.iter().map(|line| line.sku.as_str())));
    if violations.is_empty() { Ok(()) } else { Err(violations) }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReservationStatus {
    /// Stock is held for the order.
    Reserved,
    /// The order was confirmed: the held stock is sold.
    Committed,
    /// The stock went back to the shelf.
    Released,
    /// Not enough stock: nothing was held. Kept so that a repeated request gets the same answer.
    Rejected,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ReservedLine {
    pub sku: String,
    pub quantity: u32,
    pub unit_price_minor: u64,
}

/// A sku that could not be reserved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Shortage {
    pub sku: String,
    pub requested: u32,
    /// What was available when the reservation was tried (0 for an unknown sku).
    pub available: u64,
    pub unknown: bool,
}

/// The reservation of one order, keyed by the order id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    pub order_id: OrderId,
    pub status: ReservationStatus,
    pub lines: Vec<ReservedLine>,
    /// Empty when rejected.
    pub currency: String,
    pub total_minor: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shortages: Vec<Shortage>,
    /// Released before anything was reserved: the order's release (a `ReleaseInventory` or an
    /// `OrderCancelled`) came first, and a `ReserveInventory` arriving after it, late or
    /// repeated, reserves nothing. Always `Released` with no lines.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tombstone: bool,
    #[serde(with = "shared_core::envelope::rfc3339_millis")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "shared_core::envelope::rfc3339_millis")]
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("the products of one reservation must share a currency, found {0:?}")]
    MixedCurrencies(Vec<String>),
    #[error("the total does not fit in 64 bits")]
    Overflow,
}

impl Reservation {
    /// Plans a reservation from the products as they are now: all lines reserved at the
    /// catalogue price, or a rejection listing every shortage. The store still checks stock and
    /// price atomically when it writes, so a stale read can only make the write fail, never
    /// oversell.
    pub fn plan(
        order_id: OrderId,
        lines: &[RequestedLine],
        products: &HashMap<String, Product>,
        now: DateTime<Utc>,
    ) -> Result<Self, PlanError> {
        let now = now.trunc_subsecs(3);
        let shortages: Vec<Shortage> = lines
            .iter()
            .filter_map(|line| match products.get(&line.sku) {
                None => Some(Shortage { sku: line.sku.clone(), requested: line.quantity, available: 0, unknown: true }),
                Some(p) if p.available < u64::from(line.quantity) => Some(Shortage {
                    sku: line.sku.clone(),
                    requested: line.quantity,
                    available: p.available,
                    unknown: false,
                }),
                Some(_) => None,
            })
            .collect();
        if !shortages.is_empty() {
            return Ok(Self {
                order_id,
                status: ReservationStatus::Rejected,
                lines: Vec::new(),
                currency: String::new(),
                total_minor: 0,
                shortages,
                tombstone: false,
                created_at: now,
                updated_at: now,
            });
        }
        let currencies: HashSet<&str> = lines.iter().map(|l| products[&l.sku].price.currency.as_str()).collect();
        if currencies.len() > 1 {
            let mut found: Vec<String> = currencies.into_iter().map(str::to_owned).collect();
            found.sort();
            return Err(PlanError::MixedCurrencies(found));
        }
        let mut total: u64 = 0;
        let mut reserved = Vec::with_capacity(lines.len());
        for line in lines {
            let price = products[&line.sku].price.amount_minor;
            let amount = price.checked_mul(u64::from(line.quantity)).ok_or(PlanError::Overflow)?;
            total = total.checked_add(amount).ok_or(PlanError::Overflow)?;
            reserved.push(ReservedLine { sku: line.sku.clone(), quantity: line.quantity, unit_price_minor: price });
        }
        Ok(Self {
            order_id,
            status: ReservationStatus::Reserved,
            lines: reserved,
            currency: currencies.into_iter().next().unwrap_or_default().to_owned(),
            total_minor: total,
            shortages: Vec::new(),
            tombstone: false,
            created_at: now,
            updated_at: now,
        })
    }
}

impl Reservation {
    /// The record a release leaves for an order with no reservation yet: it holds nothing, and
    /// makes any later reservation for the order find it and take nothing.
    pub fn tombstone(order_id: OrderId, now: DateTime<Utc>) -> Self {
        let now = now.trunc_subsecs(3);
        Self {
            order_id,
            status: ReservationStatus::Released,
            lines: Vec::new(),
            currency: String::new(),
            total_minor: 0,
            shortages: Vec::new(),
            tombstone: true,
            created_at: now,
            updated_at: now,
        }
    }

    /// The reservation moved to `to` (`Committed` or `Released`) at `now`: `Some` when it is still
    /// `Reserved`; `None` when it was finished already, which a repeated command finds (nothing to
    /// do); [`CannotCommit`] for a commit of stock that was released or never held.
    pub fn finish(&self, to: ReservationStatus, now: DateTime<Utc>) -> Result<Option<Self>, CannotCommit> {
        match (self.status, to) {
            (ReservationStatus::Reserved, _) => {
                Ok(Some(Self { status: to, updated_at: now.trunc_subsecs(3), ..self.clone() }))
            }
            (status @ (ReservationStatus::Released | ReservationStatus::Rejected), ReservationStatus::Committed) => {
                Err(CannotCommit(status))
            }
            _ => Ok(None),
        }
    }
}

/// A commit of a reservation in this status: it holds no stock to sell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a reservation that is {0:?} cannot be committed")]
pub struct CannotCommit(pub ReservationStatus);

/// True when a change of `available` from `before` to `after` crosses below `threshold`.
pub fn crosses_low_stock(before: u64, after: u64, threshold: u64) -> bool {
    before >= threshold && after < threshold
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reservation(status: ReservationStatus) -> Reservation {
        Reservation { status, ..Reservation::tombstone(OrderId::new(), Utc::now()) }
    }

    #[test]
    fn only_a_held_reservation_finishes_and_a_commit_of_released_stock_is_refused() {
        use ReservationStatus::*;
        let now = Utc::now();
        for to in [Committed, Released] {
            let next = reservation(Reserved).finish(to, now).unwrap().unwrap();
            assert_eq!((next.status, next.updated_at), (to, now.trunc_subsecs(3)));
        }
        for (from, to) in [(Committed, Committed), (Committed, Released), (Released, Released), (Rejected, Released)] {
            assert_eq!(reservation(from).finish(to, now), Ok(None), "{from:?} -> {to:?}: finished already");
        }
        for from in [Released, Rejected] {
            assert_eq!(reservation(from).finish(Committed, now), Err(CannotCommit(from)));
        }
    }
}
