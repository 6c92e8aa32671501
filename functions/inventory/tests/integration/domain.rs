//! The inventory domain without I/O: planning reservations and validating requests.

use std::collections::HashMap;

use chrono::Utc;
use inventory::domain::{
    MAX_RESERVATION_LINES, Money, PlanError, Product, ProductSpec, RequestedLine, Reservation, ReservationStatus,
    Restock, crosses_low_stock, validate_lines,
};
use local_aws::fixtures::order_id;
use proptest::prelude::*;

fn product(sku: &str, price: u64, currency: &str, available: u64) -> (String, Product) {
    let product = Product {
        sku: sku.into(),
        name: sku.into(),
        price: Money { amount_minor: price, currency: currency.into() },
        available,
        low_stock_threshold: 0,
        updated_at: Utc::now(),
    };
    (sku.to_owned(), product)
}

fn line(sku: &str, quantity: u32) -> RequestedLine {
    RequestedLine { sku: sku.into(), quantity }
}

#[test]
fn a_plan_takes_prices_from_the_catalogue_and_totals_them() {
    let products = HashMap::from([product("A", 1250, "EUR", 5), product("B", 99, "EUR", 1)]);
    let plan = Reservation::plan(order_id(1), &[line("A", 2), line("B", 1)], &products, Utc::now()).unwrap();
    assert_eq!(plan.status, ReservationStatus::Reserved);
    assert_eq!(plan.currency, "EUR");
    assert_eq!(plan.total_minor, 2 * 1250 + 99);
    assert_eq!(plan.lines[0].unit_price_minor, 1250);
}

#[test]
fn a_plan_with_any_shortage_reserves_nothing_and_lists_every_short_sku() {
    let products = HashMap::from([product("A", 100, "EUR", 1), product("B", 100, "EUR", 9)]);
    let plan =
        Reservation::plan(order_id(1), &[line("A", 2), line("B", 3), line("GHOST", 1)], &products, Utc::now()).unwrap();
    assert_eq!(plan.status, ReservationStatus::Rejected);
    assert!(plan.lines.is_empty());
    assert_eq!(plan.total_minor, 0);
    let short: Vec<_> = plan.shortages.iter().map(|s| (s.sku.as_str(), s.available, s.unknown)).collect();
    assert_eq!(short, [("A", 1, false), ("GHOST", 0, true)]);
}

#[test]
fn mixed_currencies_and_overflowing_totals_are_errors() {
    let products = HashMap::from([product("A", 100, "EUR", 5), product("B", 100, "USD", 5)]);
    let err = Reservation::plan(order_id(1), &[line("A", 1), line("B", 1)], &products, Utc::now()).unwrap_err();
    assert_eq!(err, PlanError::MixedCurrencies(vec!["EUR".into(), "USD".into()]));
    let products = HashMap::from([product("A", u64::MAX / 2, "EUR", 5)]);
    assert_eq!(Reservation::plan(order_id(1), &[line("A", 3)], &products, Utc::now()), Err(PlanError::Overflow));
}

#[test]
fn lines_are_bounded_by_the_transaction_limit() {
    let lines: Vec<_> = (0..MAX_RESERVATION_LINES).map(|i| line(&format!("S{i}"), 1)).collect();
    assert!(validate_lines(&lines).is_ok());
    let mut too_many = lines.clone();
    too_many.push(line("ONE-MORE", 1));
    let err = validate_lines(&too_many).unwrap_err();
    assert_eq!(err[0].name, "lines");
    assert!(err[0].reason.contains("transaction"), "{}", err[0].reason);
    let names: Vec<_> =
        validate_lines(&[line("A", 0), line("A", 1), line("", 1)]).unwrap_err().into_iter().map(|p| p.name).collect();
    // Each line's own fields first, then the sku repeated across lines.
    assert_eq!(names, ["lines[0].quantity", "lines[2].sku", "lines[1].sku"]);
}

#[test]
fn product_specs_and_restocks_are_validated_per_field() {
    let spec = ProductSpec {
        name: "".into(),
        price: Money { amount_minor: 10_000_000_001, currency: "eur".into() },
        low_stock_threshold: 0,
    };
    let names: Vec<_> = spec.validate("").unwrap_err().into_iter().map(|p| p.name).collect();
    assert_eq!(names, ["sku", "name", "price.amount_minor", "price.currency"]);
    let restock = Restock { restock_id: "".into(), quantity: 0 };
    let names: Vec<_> = restock.validate().unwrap_err().into_iter().map(|p| p.name).collect();
    assert_eq!(names, ["restock_id", "quantity"]);
}

proptest! {
    #[test]
    fn low_stock_is_crossed_only_going_from_at_or_above_to_below(before in 0u64..50, after in 0u64..50, threshold in 0u64..50) {
        let crossed = crosses_low_stock(before, after, threshold);
        prop_assert_eq!(crossed, before >= threshold && after < threshold);
        if crossed {
            prop_assert!(after < before, "only a decrease crosses downwards");
        }
    }

    #[test]
    fn a_plan_reserves_only_when_every_line_fits(stock in proptest::collection::vec(0u64..5, 1..6), asked in proptest::collection::vec(1u32..5, 1..6)) {
        let n = stock.len().min(asked.len());
        let products: HashMap<_, _> = (0..n).map(|i| product(&format!("S{i}"), 10, "EUR", stock[i])).collect();
        let lines: Vec<_> = (0..n).map(|i| line(&format!("S{i}"), asked[i])).collect();
        let plan = Reservation::plan(order_id(1), &lines, &products, Utc::now()).unwrap();
        let fits = (0..n).all(|i| u64::from(asked[i]) <= stock[i]);
        prop_assert_eq!(plan.status == ReservationStatus::Reserved, fits);
        let expected_total: u64 = if fits { lines.iter().map(|l| 10 * u64::from(l.quantity)).sum() } else { 0 };
        prop_assert_eq!(plan.total_minor, expected_total);
    }
}
