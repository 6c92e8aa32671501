//! The orders domain without any I/O: validation and status transitions.

use chrono::Utc;
use orders::domain::{Order, OrderStatus, PlaceOrderRequest, Refusal, RequestedItem, contains_card_number};
use proptest::prelude::*;
use shared_core::OrderId;

fn request(items: Vec<(&str, u32)>) -> PlaceOrderRequest {
    PlaceOrderRequest {
        customer_id: "cust-1".into(),
        payment_method: "pm_card_visa".into(),
        items: items.into_iter().map(|(sku, quantity)| RequestedItem { sku: sku.into(), quantity }).collect(),
    }
}

/// The fields named by an `Invalid` refusal (400).
fn violations(request: PlaceOrderRequest) -> Vec<String> {
    match request.validate() {
        Err(Refusal::Invalid(violations)) => violations.into_iter().map(|p| p.name).collect(),
        other => panic!("expected invalid fields, got {other:?}"),
    }
}

#[test]
fn a_valid_request_becomes_a_pending_order() {
    let order = Order::place(request(vec![("A", 1), ("B", 1000)]).validate().unwrap(), Utc::now());
    assert_eq!(order.status, OrderStatus::Pending);
    assert_eq!(order.lines.len(), 2);
    assert_eq!(order.version, 1);
}

#[test]
fn line_count_and_quantity_are_checked_per_field() {
    assert_eq!(violations(request(vec![])), ["items"]);
    // An order must fit one reservation, which is one DynamoDB transaction: 98 lines at most.
    let lines = |n: usize| -> Vec<(String, u32)> { (0..n).map(|i| (format!("S{i}"), 1)).collect() };
    let at_most = lines(98);
    assert!(request(at_most.iter().map(|(s, q)| (s.as_str(), *q)).collect()).validate().is_ok());
    let too_many = lines(99);
    assert_eq!(violations(request(too_many.iter().map(|(s, q)| (s.as_str(), *q)).collect())), ["items"]);
    assert_eq!(violations(request(vec![("A", 0), ("B", 1001)])), ["items[0].quantity", "items[1].quantity"]);
}

/// A sku on two lines breaks no field's own rule, so it is not what a schema can refuse: it is
/// `Unprocessable` (422 at the API), and only reported once every field is valid.
#[test]
fn a_sku_on_two_lines_is_unprocessable_once_every_field_is_valid() {
    match request(vec![("A", 1), ("B", 1), ("A", 2)]).validate() {
        Err(Refusal::Unprocessable(violations)) => {
            assert_eq!(violations.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["items[2].sku"]);
        }
        other => panic!("expected unprocessable, got {other:?}"),
    }
    assert_eq!(violations(request(vec![("A", 0), ("A", 1)])), ["items[0].quantity"]);
}

#[test]
fn identifiers_must_be_present_and_short() {
    let mut r = request(vec![("", 1), (&"x".repeat(65), 1)]);
    r.customer_id = " ".into();
    assert_eq!(violations(r), ["customer_id", "items[0].sku", "items[1].sku"]);
    let mut r = request(vec![(&"x".repeat(64), 1)]);
    r.customer_id = "é".repeat(64);
    assert!(r.validate().is_ok(), "64 characters are allowed, counted as characters");
}

#[test]
fn card_numbers_are_refused_and_tokens_accepted() {
    for bad in ["4242424242424242", "4242 4242 4242 4242", "pm_4242-4242-4242-4242", "card", "pm_", "pm_a b"] {
        let mut r = request(vec![("A", 1)]);
        r.payment_method = bad.into();
        assert_eq!(violations(r), ["payment_method"], "{bad}");
    }
    let mut r = request(vec![("A", 1)]);
    r.payment_method = "4242424242424242".into();
    let reason = r.validate().unwrap_err().violations()[0].reason.clone();
    assert!(reason.contains("looks like a card number"), "{reason}");
    for good in ["pm_card_visa", "pm_card_visa_chargeDeclined", "pm_1MqLiJLkdIwHu7ixUEgbFdYF"] {
        let mut r = request(vec![("A", 1)]);
        r.payment_method = good.into();
        assert!(r.validate().is_ok(), "{good}");
    }
}

proptest! {
    #[test]
    fn any_run_of_13_digits_is_a_card_number(digits in "[0-9]{13,19}", prefix in "[a-z_]{0,5}") {
        let with_prefix = format!("{prefix}{digits}");
        prop_assert!(contains_card_number(&with_prefix));
    }

    #[test]
    fn short_digit_runs_are_not(digits in "[0-9]{0,12}", suffix in "[a-z]{1,3}", more in "[0-9]{0,12}") {
        let candidate = format!("pm_{digits}{suffix}{more}");
        prop_assert!(!contains_card_number(&candidate));
    }

    #[test]
    fn order_ids_round_trip_and_only_canonical_forms_parse(bytes in any::<[u8; 16]>()) {
        let uuid = uuid::Uuid::from_bytes(bytes);
        let canonical = uuid.hyphenated().to_string();
        prop_assert_eq!(OrderId::parse(&canonical).unwrap().to_string(), canonical.clone());
        let simple = uuid.simple().to_string();
        prop_assert!(OrderId::parse(&simple).is_none());
    }
}

#[test]
fn only_pending_orders_change_status() {
    let now = Utc::now();
    let new = || Order::place(request(vec![("A", 1)]).validate().unwrap(), now);
    let mut confirmed = new();
    confirmed.confirm(now).unwrap();
    assert_eq!((confirmed.status, confirmed.version), (OrderStatus::Confirmed, 2));
    assert!(confirmed.cancel("late", now).is_err());
    assert!(confirmed.confirm(now).is_err(), "confirming twice is not a transition");
    let mut cancelled = new();
    cancelled.cancel("out of stock", now).unwrap();
    assert_eq!(cancelled.cancellation_reason.as_deref(), Some("out of stock"));
    let err = cancelled.confirm(now).unwrap_err();
    assert_eq!((err.from, err.to), (OrderStatus::Cancelled, OrderStatus::Confirmed));
    assert_eq!(cancelled.version, 2, "a refused transition changes nothing");
}
