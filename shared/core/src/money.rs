//! Money as every service stores and sends it: integer minor units of an ISO 4217 currency.
//!
//! The currency is checked against ISO 4217's list of circulating currencies (the table below),
//! each with its minor-unit exponent: `EUR` has 2 decimals (2500 is 25.00 EUR), `JPY` none (2500
//! is 2500 yen), `BHD` 3 (2500 is 2.500 dinars). Amounts are always in minor units, so they go to
//! a payment provider that counts in the "smallest currency unit" (Stripe) as they are.

use serde::{Deserialize, Serialize};

use crate::InvalidParam;

/// An amount of money in minor units (cents) of an ISO 4217 currency such as `EUR`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Money {
    pub amount_minor: u64,
    pub currency: String,
}

impl Money {
    pub fn new(amount_minor: u64, currency: impl Into<String>) -> Self {
        Self { amount_minor, currency: currency.into() }
    }

    /// The currency's ISO 4217 entry; `None` for a code that is not a circulating currency.
    pub fn iso_currency(&self) -> Option<Currency> {
        Currency::from_code(&self.currency)
    }
}

impl std::fmt::Display for Money {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.amount_minor, self.currency)
    }
}

/// A circulating ISO 4217 currency and the number of decimals of its minor unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency {
    pub code: &'static str,
    /// Decimals of the minor unit: 2 for EUR (cents), 0 for JPY, 3 for BHD (fils).
    pub exponent: u8,
}

impl Currency {
    /// The currency with this upper-case code (`EUR`); lower case (`eur`, as Stripe writes it)
    /// is not accepted here.
    pub fn from_code(code: &str) -> Option<Self> {
        ISO_4217.binary_search_by(|(c, _)| (*c).cmp(code)).ok().map(|i| {
            let (code, exponent) = ISO_4217[i];
            Self { code, exponent }
        })
    }

    /// Every currency in the table, by code.
    pub fn all() -> impl Iterator<Item = Self> {
        ISO_4217.iter().map(|&(code, exponent)| Self { code, exponent })
    }
}

/// ISO 4217 list one (current currencies), without funds (`BOV`, `CLF`, `USN`, ...), precious
/// metals, special codes (`XDR`, `XTS`, `XXX`) and superseded codes; sorted by code. Taken from
/// the data of the `iso_currency` crate 0.7.1 (which follows the ISO 4217 maintenance agency's
/// amendments, including XCG for ANG and ZWG for ZWL).
const ISO_4217: &[(&str, u8)] = &[
    ("AED", 2),
    ("AFN", 2),
    ("ALL", 2),
    ("AMD", 2),
    ("AOA", 2),
    ("ARS", 2),
    ("AUD", 2),
    ("AWG", 2),
    ("AZN", 2),
    ("BAM", 2),
    ("BBD", 2),
    ("BDT", 2),
    ("BHD", 3),
    ("BIF", 0),
    ("BMD", 2),
    ("BND", 2),
    ("BOB", 2),
    ("BRL", 2),
    ("BSD", 2),
    ("BTN", 2),
    ("BWP", 2),
    ("BYN", 2),
    ("BZD", 2),
    ("CAD", 2),
    ("CDF", 2),
    ("CHF", 2),
    ("CLP", 0),
    ("CNY", 2),
    ("COP", 2),
    ("CRC", 2),
    ("CUP", 2),
    ("CVE", 2),
    ("CZK", 2),
    ("DJF", 0),
    ("DKK", 2),
    ("DOP", 2),
    ("DZD", 2),
    ("EGP", 2),
    ("ERN", 2),
    ("ETB", 2),
    ("EUR", 2),
    ("FJD", 2),
    ("FKP", 2),
    ("GBP", 2),
    ("GEL", 2),
    ("GHS", 2),
    ("GIP", 2),
    ("GMD", 2),
    ("GNF", 0),
    ("GTQ", 2),
    ("GYD", 2),
    ("HKD", 2),
    ("HNL", 2),
    ("HTG", 2),
    ("HUF", 2),
    ("IDR", 2),
    ("ILS", 2),
    ("INR", 2),
    ("IQD", 3),
    ("IRR", 2),
    ("ISK", 0),
    ("JMD", 2),
    ("JOD", 3),
    ("JPY", 0),
    ("KES", 2),
    ("KGS", 2),
    ("KHR", 2),
    ("KMF", 0),
    ("KPW", 2),
    ("KRW", 0),
    ("KWD", 3),
    ("KYD", 2),
    ("KZT", 2),
    ("LAK", 2),
    ("LBP", 2),
    ("LKR", 2),
    ("LRD", 2),
    ("LSL", 2),
    ("LYD", 3),
    ("MAD", 2),
    ("MDL", 2),
    ("MGA", 2),
    ("MKD", 2),
    ("MMK", 2),
    ("MNT", 2),
    ("MOP", 2),
    ("MRU", 2),
    ("MUR", 2),
    ("MVR", 2),
    ("MWK", 2),
    ("MXN", 2),
    ("MYR", 2),
    ("MZN", 2),
    ("NAD", 2),
    ("NGN", 2),
    ("NIO", 2),
    ("NOK", 2),
    ("NPR", 2),
    ("NZD", 2),
    ("OMR", 3),
    ("PAB", 2),
    ("PEN", 2),
    ("PGK", 2),
    ("PHP", 2),
    ("PKR", 2),
    ("PLN", 2),
    ("PYG", 0),
    ("QAR", 2),
    ("RON", 2),
    ("RSD", 2),
    ("RUB", 2),
    ("RWF", 0),
    ("SAR", 2),
    ("SBD", 2),
    ("SCR", 2),
    ("SDG", 2),
    ("SEK", 2),
    ("SGD", 2),
    ("SHP", 2),
    ("SLE", 2),
    ("SOS", 2),
    ("SRD", 2),
    ("SSP", 2),
    ("STN", 2),
    ("SVC", 2),
    ("SYP", 2),
    ("SZL", 2),
    ("THB", 2),
    ("TJS", 2),
    ("TMT", 2),
    ("TND", 3),
    ("TOP", 2),
    ("TRY", 2),
    ("TTD", 2),
    ("TWD", 2),
    ("TZS", 2),
    ("UAH", 2),
    ("UGX", 0),
    ("USD", 2),
    ("UYU", 2),
    ("UZS", 2),
    ("VED", 2),
    ("VND", 0),
    ("VUV", 0),
    ("WST", 2),
    ("XAF", 0),
    ("XCD", 2),
    ("XCG", 2),
    ("XOF", 0),
    ("XPF", 0),
    ("YER", 2),
    ("ZAR", 2),
    ("ZMW", 2),
    ("ZWG", 2),
];

/// A currency code: a circulating ISO 4217 currency, upper case. Field `name` is reported when it
/// is not.
pub fn check_currency(name: &str, currency: &str, violations: &mut Vec<InvalidParam>) {
    if Currency::from_code(currency).is_none() {
        violations.push(InvalidParam::new(name, "must be an ISO 4217 code such as EUR or USD"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_sorted_unique_and_has_the_iso_exponents() {
        let codes: Vec<_> = Currency::all().map(|c| c.code).collect();
        assert!(codes.windows(2).all(|w| w[0] < w[1]), "sorted and unique, for the binary search");
        assert!(codes.iter().all(|c| c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase())));
        // ISO 4217: cents, no minor unit, thousandths.
        for (code, exponent) in [("EUR", 2), ("USD", 2), ("GBP", 2), ("JPY", 0), ("KRW", 0), ("BHD", 3), ("KWD", 3)] {
            assert_eq!(Currency::from_code(code).map(|c| c.exponent), Some(exponent), "{code}");
        }
        assert_eq!(Money::new(100, "JPY").iso_currency().map(|c| c.exponent), Some(0));
    }

    #[test]
    fn only_circulating_upper_case_codes_pass() {
        for good in ["EUR", "USD", "JPY", "BHD", "CHF"] {
            let mut violations = Vec::new();
            check_currency("currency", good, &mut violations);
            assert!(violations.is_empty(), "{good}");
        }
        // Lower case, not a currency, a fund, a test code, gold, a superseded code.
        for bad in ["eur", "EURO", "XYZ", "", "CLF", "XTS", "XAU", "HRK"] {
            let mut violations = Vec::new();
            check_currency("amount.currency", bad, &mut violations);
            assert_eq!(violations.len(), 1, "{bad}");
            assert_eq!(violations[0].name, "amount.currency");
        }
    }
}
