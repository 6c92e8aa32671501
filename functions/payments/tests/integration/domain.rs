//! The payment state machine: exactly the moves in the module docs, nothing else.

use chrono::Utc;
use local_aws::fixtures::order_id;
use payments::domain::{ChargeRequest, Decline, Lease, Payment, PaymentStatus};
use shared_core::money::Money;

fn pending() -> Payment {
    let request =
        ChargeRequest { order_id: order_id(1), amount: Money::new(100, "EUR"), payment_method: "pm_card_visa".into() };
    Payment::pending(&request, Lease { owner: "me".into(), until_ms: 0 }, Utc::now())
}

fn decline() -> Decline {
    Decline { reason: "generic_decline".into(), message: "no".into() }
}

/// Every status reachable, by the path that reaches it.
fn in_each_status() -> Vec<Payment> {
    let now = Utc::now();
    let pending = pending();
    let captured = pending.captured("pi_1".into(), now).unwrap();
    let declined = pending.declined(None, decline(), now).unwrap();
    let voided = Payment { provider_contacted: false, ..pending.clone() }.voided(now).unwrap();
    let refunded = captured.refunded("re_1".into(), now).unwrap();
    vec![pending, captured, declined, voided, refunded]
}

#[test]
fn only_the_documented_transitions_are_allowed() {
    use PaymentStatus::*;
    let allowed = [(Pending, Captured), (Pending, Declined), (Pending, Voided), (Captured, Refunded)];
    let now = Utc::now();
    for payment in in_each_status() {
        let from = payment.status;
        let uncontacted = Payment { provider_contacted: false, ..payment.clone() };
        let attempts = [
            (Captured, payment.captured("pi".into(), now).map(|p| p.status)),
            (Declined, payment.declined(None, decline(), now).map(|p| p.status)),
            (Voided, uncontacted.voided(now).map(|p| p.status)),
            (Refunded, payment.refunded("re".into(), now).map(|p| p.status)),
        ];
        for (to, result) in attempts {
            assert_eq!(result.is_ok(), allowed.contains(&(from, to)), "{from:?} -> {to:?}: {result:?}");
            if let Ok(status) = result {
                assert_eq!(status, to);
            }
        }
    }
}

#[test]
fn a_payment_that_may_have_reached_the_provider_cannot_be_voided_and_moves_drop_the_lease() {
    let new = pending();
    assert!(!new.provider_contacted, "nothing is charged until the provider's payment id is recorded");
    assert!(new.voided(Utc::now()).is_ok());
    let contacted = Payment { provider_contacted: true, provider_payment_id: Some("pi_1".into()), ..pending() };
    assert!(contacted.voided(Utc::now()).is_err());
    // Unless the provider says its payment was never charged.
    assert_eq!(contacted.not_charged(Utc::now()).unwrap().status, PaymentStatus::Voided);
    let captured = contacted.captured("pi_1".into(), Utc::now()).unwrap();
    assert_eq!(captured.lease, None);
    assert!(captured.is_free(0));
    assert!(captured.not_charged(Utc::now()).is_err());
    assert!(!contacted.is_free(-1), "held until its deadline");
    assert!(PaymentStatus::Refunded.is_final() && !PaymentStatus::Captured.is_final());
}

#[test]
fn a_tombstone_is_a_compensated_payment_of_nothing() {
    let tombstone = Payment::tombstone(order_id(1), Utc::now());
    assert!(tombstone.tombstone && tombstone.is_compensated());
    assert_eq!((tombstone.status, tombstone.amount.amount_minor), (PaymentStatus::Voided, 0));
    assert!(tombstone.captured("pi".into(), Utc::now()).is_err(), "never charged");
    assert!(!pending().is_compensated());
    // Stored and read back as such; other payments do not carry the flag.
    let json = serde_json::to_value(&tombstone).unwrap();
    assert_eq!(json["tombstone"], true);
    assert!(serde_json::to_value(pending()).unwrap().get("tombstone").is_none());
}
