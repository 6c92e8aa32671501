//! The payment use cases on the in-memory store and a scripted provider: at most one charge,
//! exactly one refund, whatever repeats, overlaps or fails.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use local_aws::fixtures::order_id;
use payments::adapters::memory::{InMemoryPaymentStore, ScriptedProvider};
use payments::domain::{ChargeRequest, Decline, Lease, Payment, PaymentStatus};
use payments::ports::{ChargeOutcome, PaymentStore, ProviderError, RefundOutcome};
use payments::service::{LeaseConfig, PaymentError, PaymentService};
use shared_core::Conditional;
use shared_core::CorrelationId;
use shared_core::OrderId;
use shared_core::money::Money;

struct Fixture {
    store: Arc<InMemoryPaymentStore>,
    provider: Arc<ScriptedProvider>,
    service: PaymentService,
}

fn fixture_with(provider: ScriptedProvider, lease: Duration) -> Fixture {
    let store = Arc::new(InMemoryPaymentStore::new());
    let provider = Arc::new(provider);
    let lease = LeaseConfig { duration: lease, poll_interval: Duration::from_millis(10) };
    let service = PaymentService::new(store.clone(), provider.clone(), lease);
    Fixture { store, provider, service }
}

fn fixture() -> Fixture {
    fixture_with(ScriptedProvider::new(), Duration::from_secs(30))
}

fn request(order_id: OrderId) -> ChargeRequest {
    ChargeRequest { order_id, amount: Money::new(2500, "EUR"), payment_method: "pm_card_visa".into() }
}

fn event_types(store: &InMemoryPaymentStore) -> Vec<String> {
    store.outbox().into_iter().map(|e| e.entry.detail_type).collect()
}

fn correlation() -> CorrelationId {
    CorrelationId::generate()
}

#[tokio::test]
async fn a_charge_is_captured_once_and_asking_again_returns_it_without_calling_the_provider() {
    let f = fixture();
    let first = f.service.charge(&request(order_id(1)), &correlation()).await.unwrap();
    assert_eq!(first.status, PaymentStatus::Captured);
    assert_eq!(first.provider_payment_id.as_deref(), Some(pi_of(1).as_str()));
    assert_eq!(first.lease, None, "the lease is given back with the result");
    let again = f.service.charge(&request(order_id(1)), &correlation()).await.unwrap();
    assert_eq!(again, first);
    assert_eq!(f.provider.charge_calls(), 1);
    assert_eq!(event_types(&f.store), ["PaymentCompleted"]);
}

#[tokio::test]
async fn a_decline_is_final_and_published() {
    let f = fixture();
    let decline = Decline { reason: "insufficient_funds".into(), message: "Your card has insufficient funds.".into() };
    f.provider
        .script([Ok(ChargeOutcome::Declined { provider_payment_id: Some("pi_x".into()), decline: decline.clone() })]);
    let payment = f.service.charge(&request(order_id(1)), &correlation()).await.unwrap();
    assert_eq!(payment.status, PaymentStatus::Declined);
    assert_eq!(payment.decline, Some(decline));
    assert_eq!(f.service.charge(&request(order_id(1)), &correlation()).await.unwrap().status, PaymentStatus::Declined);
    assert_eq!(f.provider.charge_calls(), 1);
    assert_eq!(event_types(&f.store), ["PaymentDeclined"]);
    // Nothing was taken, so there is nothing to give back.
    assert_eq!(f.service.refund(order_id(1), &correlation()).await.unwrap().unwrap().status, PaymentStatus::Declined);
    assert_eq!(f.provider.refund_calls(), 0);
}

#[tokio::test]
async fn five_concurrent_charges_of_one_order_call_the_provider_once_and_all_get_its_answer() {
    let f = fixture_with(ScriptedProvider::new().with_delay(Duration::from_millis(150)), Duration::from_secs(30));
    let service = f.service.clone();
    let results = concurrently(5, || {
        let service = service.clone();
        async move { service.charge(&request(order_id(1)), &correlation()).await }
    })
    .await;
    let first = results[0].as_ref().unwrap().clone();
    for result in &results {
        assert_eq!(result.as_ref().unwrap(), &first);
    }
    assert_eq!(first.status, PaymentStatus::Captured);
    assert_eq!(f.provider.charge_calls(), 1, "the others waited for the lease holder's answer");
    assert_eq!(event_types(&f.store), ["PaymentCompleted"]);
}

/// Runs `n` copies of a call at the same time, each on its own task.
async fn concurrently<T, F, Fut>(n: usize, call: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
{
    let tasks: Vec<_> = (0..n).map(|_| tokio::spawn(call())).collect();
    let mut outputs = Vec::new();
    for task in tasks {
        outputs.push(task.await.unwrap());
    }
    outputs
}

#[tokio::test]
async fn a_refund_gives_back_exactly_the_captured_amount_once() {
    let f = fixture();
    f.service.charge(&request(order_id(1)), &correlation()).await.unwrap();
    let refunded = f.service.refund(order_id(1), &correlation()).await.unwrap().unwrap();
    assert_eq!(refunded.status, PaymentStatus::Refunded);
    assert_eq!(refunded.refund_id.as_deref(), Some(re_of(1).as_str()));
    assert_eq!(refunded.amount, Money::new(2500, "EUR"));
    let again = f.service.refund(order_id(1), &correlation()).await.unwrap().unwrap();
    assert_eq!(again, refunded);
    assert_eq!((f.provider.refund_calls(), f.provider.refunds()), (1, 1));
    assert_eq!(event_types(&f.store), ["PaymentCompleted", "PaymentRefunded"]);
    // A refunded order is not charged again by a late, duplicated charge command.
    assert_eq!(f.service.charge(&request(order_id(1)), &correlation()).await.unwrap().status, PaymentStatus::Refunded);
    assert_eq!(f.provider.charge_calls(), 1);
}

#[tokio::test]
async fn concurrent_refunds_refund_once() {
    let f = fixture_with(ScriptedProvider::new().with_delay(Duration::from_millis(100)), Duration::from_secs(30));
    f.service.charge(&request(order_id(1)), &correlation()).await.unwrap();
    let service = f.service.clone();
    let results = concurrently(3, || {
        let service = service.clone();
        async move { service.refund(order_id(1), &correlation()).await }
    })
    .await;
    for result in results {
        assert_eq!(result.unwrap().unwrap().status, PaymentStatus::Refunded);
    }
    assert_eq!(f.provider.refund_calls(), 1);
}

#[tokio::test]
async fn refunding_an_order_without_a_payment_is_a_no_op() {
    let f = fixture();
    assert_eq!(f.service.refund(order_id(99), &correlation()).await.unwrap(), None);
    assert_eq!(f.service.refund(order_id(99), &correlation()).await.unwrap(), None);
    assert_eq!((f.provider.charge_calls(), f.provider.refund_calls()), (0, 0));
    assert!(f.store.outbox().is_empty());
}

#[tokio::test]
async fn a_charge_that_never_reached_the_provider_is_voided_by_the_refund_and_never_charged_later() {
    let f = fixture();
    f.provider.script([Err(ProviderError::NotSent("circuit open".into()))]);
    let err = f.service.charge(&request(order_id(1)), &correlation()).await.unwrap_err();
    assert!(matches!(err, PaymentError::Provider(ProviderError::NotSent(_))), "{err:?}");
    assert!(err.is_transient());
    let pending = f.store.get(order_id(1)).await.unwrap().unwrap();
    assert_eq!(
        (pending.status, pending.provider_contacted, pending.lease.clone()),
        (PaymentStatus::Pending, false, None)
    );

    let voided = f.service.refund(order_id(1), &correlation()).await.unwrap().unwrap();
    assert_eq!(voided.status, PaymentStatus::Voided);
    assert_eq!((f.provider.charge_calls(), f.provider.refund_calls()), (1, 0), "voiding needs no provider");
    // The saga's charge, retried late, must not take money for a cancelled order.
    assert_eq!(f.service.charge(&request(order_id(1)), &correlation()).await.unwrap().status, PaymentStatus::Voided);
    assert_eq!(f.provider.charge_calls(), 1);
    assert_eq!(event_types(&f.store), ["PaymentVoided"]);
}

#[tokio::test]
async fn settling_a_charge_with_an_unknown_outcome_asks_the_provider_and_never_charges() {
    // The confirm failed and did nothing (the provider never processed it).
    let f = fixture();
    f.provider.script([Err(ProviderError::Unavailable("attempt timed out".into()))]);
    assert!(f.service.charge(&request(order_id(1)), &correlation()).await.is_err());
    let pending = f.store.get(order_id(1)).await.unwrap().unwrap();
    assert!(pending.provider_contacted);
    assert_eq!(pending.provider_payment_id.as_deref(), Some(pi_of(1).as_str()), "recorded before the confirm left");

    let voided = f.service.refund(order_id(1), &correlation()).await.unwrap().unwrap();
    assert_eq!(voided.status, PaymentStatus::Voided, "the provider says nothing was charged");
    assert_eq!(
        (f.provider.charge_calls(), f.provider.status_calls(), f.provider.captures(), f.provider.refund_calls()),
        (1, 1, 0, 0),
        "settling asked about the payment and sent no charge"
    );
    assert_eq!(f.service.charge(&request(order_id(1)), &correlation()).await.unwrap().status, PaymentStatus::Voided);
    assert_eq!(f.provider.charge_calls(), 1, "a late charge takes nothing");
    assert_eq!(event_types(&f.store), ["PaymentVoided"]);

    // The confirm charged, and its answer was lost: what was taken is refunded.
    let f = fixture();
    f.provider.lose_answers(1);
    assert!(f.service.charge(&request(order_id(2)), &correlation()).await.is_err());
    let refunded = f.service.refund(order_id(2), &correlation()).await.unwrap().unwrap();
    assert_eq!(refunded.status, PaymentStatus::Refunded);
    assert_eq!((f.provider.charge_calls(), f.provider.captures(), f.provider.refunds()), (1, 1, 1));
    assert_eq!(event_types(&f.store), ["PaymentCompleted", "PaymentRefunded"]);
}

#[tokio::test]
async fn a_charge_still_processing_is_neither_captured_nor_declined_until_the_provider_says() {
    let f = fixture();
    f.provider.script([Ok(ChargeOutcome::Processing { provider_payment_id: pi_of(1) })]);
    let err = f.service.charge(&request(order_id(1)), &correlation()).await.unwrap_err();
    assert!(matches!(err, PaymentError::Processing(_)) && err.is_transient(), "{err:?}");
    let pending = f.store.get(order_id(1)).await.unwrap().unwrap();
    assert_eq!((pending.status, pending.lease.clone()), (PaymentStatus::Pending, None));
    // The saga's retry: still processing, then the provider finishes.
    assert!(matches!(f.service.charge(&request(order_id(1)), &correlation()).await, Err(PaymentError::Processing(_))));
    f.provider.finish(&pi_of(1), ChargeOutcome::Captured { provider_payment_id: pi_of(1) });
    assert_eq!(f.service.charge(&request(order_id(1)), &correlation()).await.unwrap().status, PaymentStatus::Captured);
    assert_eq!(f.provider.captures(), 1);

    // Compensating a processing charge waits for it too, then refunds it.
    let f = fixture();
    f.provider.script([Ok(ChargeOutcome::Processing { provider_payment_id: pi_of(2) })]);
    assert!(f.service.charge(&request(order_id(2)), &correlation()).await.is_err());
    let err = f.service.refund(order_id(2), &correlation()).await.unwrap_err();
    assert!(matches!(err, PaymentError::Processing(_)) && err.is_transient(), "{err:?}");
    f.provider.finish(&pi_of(2), ChargeOutcome::Captured { provider_payment_id: pi_of(2) });
    assert_eq!(f.service.refund(order_id(2), &correlation()).await.unwrap().unwrap().status, PaymentStatus::Refunded);
    assert_eq!((f.provider.charge_calls(), f.provider.refunds()), (1, 1));
}

#[tokio::test]
async fn a_refund_counts_only_once_the_provider_says_succeeded() {
    let f = fixture();
    f.service.charge(&request(order_id(1)), &correlation()).await.unwrap();
    f.provider.script_refunds([Ok(RefundOutcome::Pending { refund_id: "re_1".into() })]);
    let err = f.service.refund(order_id(1), &correlation()).await.unwrap_err();
    assert!(matches!(err, PaymentError::RefundPending { .. }) && err.is_transient(), "{err:?}");
    let payment = f.store.get(order_id(1)).await.unwrap().unwrap();
    assert_eq!(
        (payment.status, payment.refund_id.as_deref(), payment.lease),
        (PaymentStatus::Captured, Some("re_1"), None)
    );
    // Still pending: asked about, not refunded again.
    assert!(f.service.refund(order_id(1), &correlation()).await.is_err());
    f.provider.finish_refund("re_1", RefundOutcome::Succeeded { refund_id: "re_1".into() });
    let refunded = f.service.refund(order_id(1), &correlation()).await.unwrap().unwrap();
    assert_eq!((refunded.status, refunded.refund_id.as_deref()), (PaymentStatus::Refunded, Some("re_1")));
    assert_eq!((f.provider.refund_calls(), f.provider.refund_status_calls()), (1, 2));
    assert_eq!(event_types(&f.store), ["PaymentCompleted", "PaymentRefunded"]);

    // A failed refund is final: the money is still with the shop, and a person must look.
    let f = fixture();
    f.service.charge(&request(order_id(2)), &correlation()).await.unwrap();
    let failed = RefundOutcome::Failed { refund_id: "re_2".into(), reason: "expired_or_canceled_card".into() };
    f.provider.script_refunds([Ok(failed)]);
    for _ in 0..2 {
        let err = f.service.refund(order_id(2), &correlation()).await.unwrap_err();
        assert!(matches!(&err, PaymentError::RefundFailed { reason, .. } if reason == "expired_or_canceled_card"));
        assert!(!err.is_transient());
    }
    assert_eq!(f.store.get(order_id(2)).await.unwrap().unwrap().status, PaymentStatus::Captured);
    assert_eq!(f.provider.refund_calls(), 1, "never refunded twice");
}

#[tokio::test]
async fn a_refund_before_any_charge_leaves_a_tombstone_and_later_charges_take_nothing() {
    let f = fixture();
    assert_eq!(f.service.refund(order_id(1), &correlation()).await.unwrap(), None);
    let tombstone = f.store.get(order_id(1)).await.unwrap().unwrap();
    assert!(tombstone.tombstone && tombstone.status == PaymentStatus::Voided);
    assert_eq!(f.service.get(order_id(1)).await.unwrap(), None, "a tombstone is no payment");
    // The charge command, delivered after its compensation, twice, then the refund again.
    for _ in 0..2 {
        let payment = f.service.charge(&request(order_id(1)), &correlation()).await.unwrap();
        assert_eq!(payment.status, PaymentStatus::Voided);
    }
    assert_eq!(f.service.refund(order_id(1), &correlation()).await.unwrap(), None);
    assert_eq!((f.provider.create_calls(), f.provider.charge_calls(), f.provider.refund_calls()), (0, 0, 0));
    assert!(f.store.outbox().is_empty());
}

#[tokio::test]
async fn a_failed_attempt_gives_the_lease_back_so_the_retry_charges_at_once() {
    let f = fixture();
    f.provider.script([Err(ProviderError::Unavailable("HTTP 503".into()))]);
    assert!(f.service.charge(&request(order_id(1)), &correlation()).await.unwrap_err().is_transient());
    let retry = tokio::time::timeout(Duration::from_secs(2), f.service.charge(&request(order_id(1)), &correlation()))
        .await
        .expect("the retry does not wait for a 30 s lease");
    assert_eq!(retry.unwrap().status, PaymentStatus::Captured);
    assert_eq!((f.provider.charge_calls(), f.provider.captures()), (2, 1));
}

#[tokio::test]
async fn a_crashed_holders_lease_expires_and_the_next_caller_settles_with_the_same_key() {
    let f = fixture_with(ScriptedProvider::new(), Duration::from_millis(300));
    let now = Utc::now();
    let stale = Lease { owner: "crashed".into(), until_ms: (now + Duration::from_millis(200)).timestamp_millis() };
    assert_eq!(
        f.store.create(&Payment::pending(&request(order_id(1)), stale, now)).await.unwrap(),
        Conditional::Applied
    );

    let payment = f.service.charge(&request(order_id(1)), &correlation()).await.unwrap();
    assert_eq!(payment.status, PaymentStatus::Captured);
    assert_eq!(f.provider.charge_calls(), 1);
}

#[tokio::test]
async fn a_holder_that_never_finishes_makes_callers_give_up_with_a_transient_error() {
    let f = fixture_with(ScriptedProvider::new(), Duration::from_millis(100));
    let now = Utc::now();
    let held = Lease { owner: "slow".into(), until_ms: (now + Duration::from_secs(60)).timestamp_millis() };
    assert_eq!(
        f.store.create(&Payment::pending(&request(order_id(1)), held, now)).await.unwrap(),
        Conditional::Applied
    );
    let err = f.service.charge(&request(order_id(1)), &correlation()).await.unwrap_err();
    assert!(matches!(err, PaymentError::InProgress(_)) && err.is_transient(), "{err:?}");
    assert_eq!(f.provider.charge_calls(), 0);
}

#[tokio::test]
async fn charging_an_order_again_with_another_amount_is_refused() {
    let f = fixture();
    f.service.charge(&request(order_id(1)), &correlation()).await.unwrap();
    let mut other = request(order_id(1));
    other.amount = Money::new(9999, "EUR");
    let err = f.service.charge(&other, &correlation()).await.unwrap_err();
    assert!(matches!(err, PaymentError::AmountMismatch { .. }) && !err.is_transient(), "{err:?}");
    assert_eq!(f.provider.charge_calls(), 1);
}

#[tokio::test]
async fn bad_charge_requests_name_each_field_and_touch_nothing() {
    let f = fixture();
    // The order id is an `OrderId`, parsed at the edges (a saga command's data, an HTTP path):
    // `saga::a_command_for_an_order_id_that_is_no_order_id_is_an_invalid_command` and
    // `http_api::a_payment_path_that_is_no_order_id_is_a_400`.
    let bad = ChargeRequest {
        order_id: order_id(1),
        amount: Money::new(0, "eur"),
        payment_method: "4242424242424242".into(),
    };
    let PaymentError::Invalid(params) = f.service.charge(&bad, &correlation()).await.unwrap_err() else {
        panic!("expected a validation error")
    };
    let names: Vec<_> = params.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["amount.amount_minor", "amount.currency", "payment_method"]);
    assert_eq!(f.provider.charge_calls(), 0);
}

/// The ids `ScriptedProvider` gives the payment and the refund of test order `n`.
fn pi_of(n: u32) -> String {
    format!("pi_{}", order_id(n))
}

fn re_of(n: u32) -> String {
    format!("re_{}", order_id(n))
}
