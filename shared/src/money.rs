//! Money as every service stores and sends it: integer minor units of an ISO 4217 currency.

use serde::{Deserialize, Serialize};

use crate::InvalidParam;

/// An amount of money in minor units (cents) of an ISO 4217 currency such as `EUR`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Money {
    pub amount_minor: u64,
    pub currency: String,
}

impl Money {
    pub fn new(amount_minor: u64, currency: impl Into<String>) -> Self {
        Self { amount_minor, currency: currency.into() }
    }
}

impl std::fmt::Display for Money {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.amount_minor, self.currency)
    }
}

/// A currency code: three upper-case ASCII letters. Field `name` is reported when it is not.
pub fn check_currency(name: &str, currency: &str, violations: &mut Vec<InvalidParam>) {
    if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
        violations.push(InvalidParam::new(name, "must be an ISO 4217 code such as EUR or USD"));
    }
}
