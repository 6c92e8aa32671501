//! The Stripe adapter against the provider simulator: what it sends, how it tells a decline from
//! an outage, how it learns what happened when Stripe replays a saved 500, and how the shared
//! policy (retry, breaker, timeouts) protects both sides. Each Stripe behaviour relied on cites
//! its documentation.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use local_aws::fixtures::order_id;
use payment_provider_sim::{Faults, RunningSimulator, Simulator, SimulatorConfig};
use payments::adapters::memory::InMemoryPaymentStore;
use payments::adapters::stripe::{ApiKey, STRIPE_API_VERSION, StripeProvider, stripe_amount};
use payments::domain::{ChargeRequest, PaymentStatus};
use payments::ports::{ChargeOutcome, PaymentProvider, ProviderCharge, ProviderError, ProviderRefund, RefundOutcome};
use payments::service::{LeaseConfig, PaymentError, PaymentService};
use shared::resilience::{BreakerState, ServiceClientConfig};
use shared_core::CorrelationId;
use shared_core::OrderId;
use shared_core::money::Money;

const KEY: &str = "sk_test_adapter";

async fn simulator() -> RunningSimulator {
    let config = SimulatorConfig { api_key: KEY.into(), seed: Some(11), ..SimulatorConfig::default() };
    Simulator::new(config).unwrap().spawn(0).await.unwrap()
}

/// The adapter configured the way the Lambda is, through `PAYMENT_PROVIDER_*` variables.
fn provider(sim: &RunningSimulator, overrides: &[(&str, &str)]) -> StripeProvider {
    let mut vars: HashMap<String, String> = HashMap::from([
        ("PAYMENT_PROVIDER_BASE_URL".into(), sim.base_url()),
        ("PAYMENT_PROVIDER_RETRY_BASE_DELAY_MS".into(), "5".into()),
        ("PAYMENT_PROVIDER_RETRY_MAX_DELAY_MS".into(), "20".into()),
    ]);
    for (name, value) in overrides {
        vars.insert(format!("PAYMENT_PROVIDER_{name}"), (*value).to_owned());
    }
    let config = ServiceClientConfig::from_lookup("PAYMENT_PROVIDER", |name| vars.get(name).cloned()).unwrap();
    StripeProvider::new(&config, ApiKey::new(KEY)).unwrap().with_processing_polls(4, Duration::from_millis(50))
}

fn charge(order_id: OrderId, payment_method: &str) -> ProviderCharge {
    ProviderCharge {
        order_id,
        amount: Money::new(2500, "EUR"),
        payment_method: payment_method.into(),
        idempotency_key: format!("order-{order_id}-create"),
    }
}

/// Creates then confirms, as the service does.
async fn pay(provider: &StripeProvider, charge: &ProviderCharge) -> Result<ChargeOutcome, ProviderError> {
    let id = provider.create_payment(charge).await?;
    provider.confirm_payment(&id, &format!("order-{}-confirm", charge.order_id)).await
}

fn requests(sim: &RunningSimulator, route: &str) -> u64 {
    sim.simulator.stats().by_route.get(route).copied().unwrap_or(0)
}

fn creates(sim: &RunningSimulator) -> u64 {
    requests(sim, "POST /v1/payment_intents")
}

const CONFIRM: &str = "POST /v1/payment_intents/{id}/confirm";

fn confirms(sim: &RunningSimulator) -> u64 {
    requests(sim, CONFIRM)
}

fn captured_id(outcome: Result<ChargeOutcome, ProviderError>) -> String {
    match outcome {
        Ok(ChargeOutcome::Captured { provider_payment_id }) => provider_payment_id,
        other => panic!("not captured: {other:?}"),
    }
}

#[tokio::test]
async fn a_charge_is_an_unconfirmed_create_then_a_confirm_each_keyed_and_versioned() {
    let sim = simulator().await;
    let provider = provider(&sim, &[]);
    let id = provider.create_payment(&charge(order_id(1), "pm_card_visa")).await.unwrap();
    let created = sim.simulator.payment_intent(&id).unwrap();
    assert_eq!(created["status"], "requires_confirmation", "creating charges nothing");
    assert_eq!((created["amount"].as_u64(), created["currency"].as_str()), (Some(2500), Some("eur")));
    assert_eq!(created["metadata"]["order_id"], order_id(1).to_string());
    assert_eq!(created["payment_method_types"], serde_json::json!(["card"]));
    assert_eq!(
        provider.create_payment(&charge(order_id(1), "pm_card_visa")).await.unwrap(),
        id,
        "same key, same intent"
    );

    let outcome = provider.confirm_payment(&id, &format!("order-{}-confirm", order_id(1))).await;
    assert_eq!(captured_id(outcome), id);
    assert_eq!(sim.simulator.payment_intent(&id).unwrap()["status"], "succeeded");
    assert_eq!(provider.payment_status(&id).await.unwrap(), ChargeOutcome::Captured { provider_payment_id: id });
    // https://docs.stripe.com/api/versioning: every request names the version the adapter is
    // written against.
    let stats = sim.simulator.stats();
    assert_eq!(stats.api_versions.keys().collect::<Vec<_>>(), [STRIPE_API_VERSION]);
    assert_eq!((creates(&sim), confirms(&sim), stats.charges_succeeded), (2, 1, 1));
}

#[tokio::test]
async fn a_decline_is_final_one_request_and_never_counts_against_the_breaker() {
    let sim = simulator().await;
    let provider = provider(&sim, &[("BREAKER_MINIMUM_CALLS", "2"), ("BREAKER_WINDOW", "2")]);
    for n in 0..6 {
        let outcome = pay(&provider, &charge(order_id(100 + n), "pm_card_visa_chargeDeclinedInsufficientFunds")).await;
        let Ok(ChargeOutcome::Declined { decline, provider_payment_id }) = outcome else { panic!("{outcome:?}") };
        assert_eq!(decline.reason, "insufficient_funds");
        assert_eq!(decline.message, "Your card has insufficient funds.");
        assert!(provider_payment_id.unwrap().starts_with("pi_"));
    }
    assert_eq!(confirms(&sim), 6, "one request per decline: no retry");
    assert_eq!(provider.policy().breaker().unwrap().state(), BreakerState::Closed);

    let generic = pay(&provider, &charge(order_id(7), "pm_card_visa_chargeDeclined")).await.unwrap();
    assert!(matches!(generic, ChargeOutcome::Declined { decline, .. } if decline.reason == "generic_decline"));
}

// https://docs.stripe.com/testing#regulatory-cards: this card needs 3-D Secure, which a
// server-side charge cannot do; https://docs.stripe.com/payments/paymentintents/lifecycle.
#[tokio::test]
async fn a_card_that_needs_3d_secure_is_declined_as_authentication_required() {
    let sim = simulator().await;
    let provider = provider(&sim, &[]);
    let outcome = pay(&provider, &charge(order_id(3), "pm_card_threeDSecure2Required")).await.unwrap();
    let ChargeOutcome::Declined { decline, provider_payment_id } = outcome else { panic!("{outcome:?}") };
    assert_eq!(decline.reason, "authentication_required");
    let intent = sim.simulator.payment_intent(&provider_payment_id.unwrap()).unwrap();
    // https://docs.stripe.com/api/payment_intents/cancel: `requires_action` may be cancelled.
    assert_eq!(intent["status"], "canceled", "nobody can authenticate it: it is closed, {intent}");
    assert_eq!(intent["cancellation_reason"], "abandoned");
    let stats = sim.simulator.stats();
    assert_eq!((stats.charges_succeeded, stats.charges_requiring_action, stats.payment_intents_canceled), (0, 1, 1));
}

// https://docs.stripe.com/payments/paymentintents/lifecycle: `processing` is neither paid nor
// failed yet.
#[tokio::test]
async fn a_processing_payment_is_polled_and_reported_as_processing_until_it_settles() {
    let sim = simulator().await;
    let provider = provider(&sim, &[]);
    sim.simulator.set_faults(Faults { processing_next: 1, settle_ms: 120, ..Faults::default() }).unwrap();
    let outcome = pay(&provider, &charge(order_id(9), "pm_card_visa")).await;
    captured_id(outcome);

    sim.simulator.set_faults(Faults { processing_next: 1, settle_ms: 60_000, ..Faults::default() }).unwrap();
    let id = provider.create_payment(&charge(order_id(11), "pm_card_visa")).await.unwrap();
    let outcome = provider.confirm_payment(&id, &format!("order-{}-confirm", order_id(11))).await.unwrap();
    assert_eq!(outcome, ChargeOutcome::Processing { provider_payment_id: id.clone() });
    assert_eq!(provider.payment_status(&id).await.unwrap(), ChargeOutcome::Processing { provider_payment_id: id });
}

#[tokio::test]
async fn two_transient_500s_before_processing_then_success_is_three_requests_and_one_charge() {
    let sim = simulator().await;
    sim.simulator.set_faults(Faults { fail_next: 2, ..Faults::default() }).unwrap();
    captured_id(pay(&provider(&sim, &[]), &charge(order_id(1), "pm_card_visa")).await);
    let stats = sim.simulator.stats();
    assert_eq!(creates(&sim), 3);
    assert_eq!((stats.payment_intents_created, stats.charges_succeeded), (1, 1));
}

// https://docs.stripe.com/api/idempotent_requests: once execution began, the first answer is
// saved and replayed for 24 hours, including a 500.
#[tokio::test]
async fn a_saved_500_on_confirm_that_charged_nothing_is_confirmed_again_under_the_next_key() {
    let sim = simulator().await;
    let provider = provider(&sim, &[]);
    let id = provider.create_payment(&charge(order_id(1), "pm_card_visa")).await.unwrap();
    sim.simulator.set_faults(Faults { error_next: 1, ..Faults::default() }).unwrap();
    let outcome = provider.confirm_payment(&id, &format!("order-{}-confirm", order_id(1))).await;
    assert_eq!(captured_id(outcome), id);
    let stats = sim.simulator.stats();
    assert_eq!(confirms(&sim), 3, "the 500, its replay (not retried again), the next key");
    assert_eq!((stats.charges_succeeded, stats.idempotent_replays), (1, 1));
    // The first key still answers its 500; asking again goes through the same steps and replays.
    captured_id(provider.confirm_payment(&id, &format!("order-{}-confirm", order_id(1))).await);
    assert_eq!(sim.simulator.stats().charges_succeeded, 1);
}

#[tokio::test]
async fn a_saved_500_on_a_confirm_that_charged_is_learnt_by_asking_and_never_charged_twice() {
    let sim = simulator().await;
    let provider = provider(&sim, &[]);
    let id = provider.create_payment(&charge(order_id(1), "pm_card_visa")).await.unwrap();
    sim.simulator.set_faults(Faults { error_after_effect_next: 1, ..Faults::default() }).unwrap();
    assert_eq!(captured_id(provider.confirm_payment(&id, &format!("order-{}-confirm", order_id(1))).await), id);
    assert_eq!(confirms(&sim), 2, "the 500 and its replay; then a GET, no second confirmation");
    assert_eq!(sim.simulator.stats().charges_succeeded, 1);
}

#[tokio::test]
async fn a_saved_500_on_create_moves_to_the_next_key_which_cannot_charge() {
    let sim = simulator().await;
    let provider = provider(&sim, &[]);
    sim.simulator.set_faults(Faults { error_after_effect_next: 1, ..Faults::default() }).unwrap();
    let id = provider.create_payment(&charge(order_id(1), "pm_card_visa")).await.unwrap();
    // The first key made an intent too (its answer is the saved 500): nobody confirms it.
    let intents = sim.simulator.payment_intents_with_metadata("order_id", &order_id(1).to_string());
    assert_eq!(intents.len(), 2);
    assert!(intents.iter().all(|pi| pi["status"] == "requires_confirmation"));
    assert_eq!(provider.create_payment(&charge(order_id(1), "pm_card_visa")).await.unwrap(), id, "deterministic");
    captured_id(provider.confirm_payment(&id, &format!("order-{}-confirm", order_id(1))).await);
    assert_eq!(sim.simulator.stats().charges_succeeded, 1);
}

#[tokio::test]
async fn while_the_provider_is_down_the_breaker_opens_then_fails_fast_and_a_half_open_probe_recovers() {
    let sim = simulator().await;
    let provider = provider(
        &sim,
        &[
            ("RETRY_MAX_ATTEMPTS", "2"),
            ("BREAKER_WINDOW", "4"),
            ("BREAKER_MINIMUM_CALLS", "4"),
            ("BREAKER_FAILURE_RATE", "50"),
            ("BREAKER_OPEN_MS", "400"),
            ("BREAKER_HALF_OPEN_CALLS", "1"),
        ],
    );
    let breaker = provider.policy().breaker().unwrap().clone();
    sim.simulator.set_faults(Faults { down: true, ..Faults::default() }).unwrap();
    for n in 0..2 {
        let err = pay(&provider, &charge(order_id(100 + n), "pm_card_visa")).await.unwrap_err();
        assert!(matches!(&err, ProviderError::NotSent(m) if m.contains("503")), "{err:?}");
    }
    assert_eq!(creates(&sim), 4, "two calls, two attempts each");
    assert_eq!(breaker.state(), BreakerState::Open);

    // Open: calls fail at once, the provider sees nothing, and the caller knows nothing was sent.
    for n in 2..10 {
        let err = pay(&provider, &charge(order_id(100 + n), "pm_card_visa")).await.unwrap_err();
        assert!(matches!(&err, ProviderError::NotSent(m) if m.contains("open")), "{err:?}");
    }
    assert_eq!(creates(&sim), 4);

    // The provider comes back; after the open wait one probe goes through and closes the circuit.
    sim.simulator.set_faults(Faults::default()).unwrap();
    tokio::time::sleep(Duration::from_millis(450)).await;
    captured_id(pay(&provider, &charge(order_id(10), "pm_card_visa")).await);
    assert_eq!(breaker.state(), BreakerState::Closed);
    captured_id(pay(&provider, &charge(order_id(4), "pm_card_visa")).await);
    assert_eq!(creates(&sim), 6);
}

#[tokio::test]
async fn a_timed_out_confirm_is_unknown_and_asking_again_with_its_key_returns_the_charge_it_made() {
    let sim = simulator().await;
    let single_attempt = provider(&sim, &[("ATTEMPT_TIMEOUT_MS", "150"), ("RETRY_MAX_ATTEMPTS", "1")]);
    let id = single_attempt.create_payment(&charge(order_id(1), "pm_card_visa")).await.unwrap();
    sim.simulator.set_faults(Faults { timeout_rate: 1.0, hang_ms: 1000, ..Faults::default() }).unwrap();
    let err = single_attempt.confirm_payment(&id, &format!("order-{}-confirm", order_id(1))).await.unwrap_err();
    assert!(matches!(err, ProviderError::Unavailable(_)), "{err:?}");
    assert_eq!(sim.simulator.stats().charges_succeeded, 1, "the provider charged although nobody heard it");
    sim.simulator.set_faults(Faults::default()).unwrap();
    assert_eq!(
        single_attempt.payment_status(&id).await.unwrap(),
        ChargeOutcome::Captured { provider_payment_id: id.clone() }
    );
    captured_id(single_attempt.confirm_payment(&id, &format!("order-{}-confirm", order_id(1))).await);
    assert_eq!(sim.simulator.stats().charges_succeeded, 1, "one charge per order, not per request");
}

fn refund_of(order_id: OrderId, provider_payment_id: &str) -> ProviderRefund {
    ProviderRefund {
        order_id,
        provider_payment_id: provider_payment_id.into(),
        amount: Money::new(2500, "EUR"),
        idempotency_key: format!("order-{order_id}-refund"),
    }
}

#[tokio::test]
async fn a_refund_with_the_same_key_refunds_once() {
    let sim = simulator().await;
    let provider = provider(&sim, &[]);
    let id = captured_id(pay(&provider, &charge(order_id(1), "pm_card_visa")).await);
    let first = provider.refund(&refund_of(order_id(1), &id)).await.unwrap();
    let second = provider.refund(&refund_of(order_id(1), &id)).await.unwrap();
    assert_eq!(first, second);
    assert!(matches!(&first, RefundOutcome::Succeeded { refund_id } if refund_id.starts_with("re_")));
    assert_eq!(sim.simulator.stats().refunds_created, 1);
    assert_eq!(sim.simulator.refunded(&id), 2500);
}

// https://docs.stripe.com/refunds#failed-refunds and https://docs.stripe.com/testing#refunds:
// a refund may be pending, then succeed or fail; only `succeeded` gave the money back.
#[tokio::test]
async fn a_pending_refund_is_pending_until_stripe_says_succeeded_or_failed() {
    let sim = simulator().await;
    sim.simulator.set_faults(Faults { settle_ms: 100, ..Faults::default() }).unwrap();
    let provider = provider(&sim, &[]);
    for (pm, order, settled) in
        [("pm_card_pendingRefund", order_id(9), true), ("pm_card_refundFail", order_id(6), false)]
    {
        let id = captured_id(pay(&provider, &charge(order, pm)).await);
        let RefundOutcome::Pending { refund_id } = provider.refund(&refund_of(order, &id)).await.unwrap() else {
            panic!("{pm}: not pending")
        };
        tokio::time::sleep(Duration::from_millis(150)).await;
        let outcome = provider.refund_status(&refund_id).await.unwrap();
        if settled {
            assert_eq!(outcome, RefundOutcome::Succeeded { refund_id });
        } else {
            assert_eq!(outcome, RefundOutcome::Failed { refund_id, reason: "expired_or_canceled_card".into() });
        }
    }
    sim.simulator.set_faults(Faults { refund_status: Some("canceled".into()), ..Faults::default() }).unwrap();
    let id = captured_id(pay(&provider, &charge(order_id(5), "pm_card_visa")).await);
    let outcome = provider.refund(&refund_of(order_id(5), &id)).await.unwrap();
    assert!(matches!(outcome, RefundOutcome::Failed { .. }), "{outcome:?}");
}

#[tokio::test]
async fn a_refund_whose_saved_answer_is_a_500_is_not_made_twice() {
    let sim = simulator().await;
    let provider = provider(&sim, &[]);
    let id = captured_id(pay(&provider, &charge(order_id(1), "pm_card_visa")).await);
    sim.simulator.set_faults(Faults { error_after_effect_next: 1, ..Faults::default() }).unwrap();
    let outcome = provider.refund(&refund_of(order_id(1), &id)).await.unwrap();
    assert!(matches!(outcome, RefundOutcome::Succeeded { .. }), "{outcome:?}");
    assert_eq!((sim.simulator.stats().refunds_created, sim.simulator.refunded(&id)), (1, 2500));
}

// https://docs.stripe.com/currencies#zero-decimal and #three-decimal: amounts in the smallest
// unit; three-decimal amounts rounded to ten.
#[tokio::test]
async fn amounts_go_in_the_smallest_currency_unit() {
    assert_eq!(stripe_amount(&Money::new(2500, "EUR")).unwrap(), ("2500".into(), "eur".into()));
    assert_eq!(stripe_amount(&Money::new(500, "JPY")).unwrap(), ("500".into(), "jpy".into()));
    assert_eq!(stripe_amount(&Money::new(1230, "BHD")).unwrap(), ("1230".into(), "bhd".into()));
    assert!(matches!(stripe_amount(&Money::new(1234, "BHD")), Err(ProviderError::Rejected(_))));
    assert!(matches!(stripe_amount(&Money::new(100, "XYZ")), Err(ProviderError::Rejected(_))));

    let sim = simulator().await;
    let provider = provider(&sim, &[]);
    let yen = ProviderCharge { amount: Money::new(500, "JPY"), ..charge(order_id(8), "pm_card_visa") };
    let id = captured_id(pay(&provider, &yen).await);
    let intent = sim.simulator.payment_intent(&id).unwrap();
    assert_eq!((intent["amount"].as_u64(), intent["currency"].as_str()), (Some(500), Some("jpy")));
}

#[tokio::test]
async fn a_wrong_api_key_is_rejected_without_retry() {
    let sim = simulator().await;
    let config = ServiceClientConfig::from_lookup("P", |name| (name == "P_BASE_URL").then(|| sim.base_url())).unwrap();
    let provider = StripeProvider::new(&config, ApiKey::new("sk_test_wrong")).unwrap();
    let err = pay(&provider, &charge(order_id(1), "pm_card_visa")).await.unwrap_err();
    assert!(matches!(&err, ProviderError::Rejected(m) if m.contains("401")), "{err:?}");
    assert_eq!(creates(&sim), 1);
    assert_eq!(format!("{:?}", ApiKey::new("sk_live_secret")), "ApiKey(<redacted>)");
}

#[tokio::test]
async fn a_provider_that_refuses_connections_was_never_sent_anything() {
    // A port nobody listens on: every attempt's connection is refused.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let url = format!("http://{closed}");
    let config = ServiceClientConfig::from_lookup("P", |n| match n {
        "P_BASE_URL" => Some(url.clone()),
        "P_RETRY_BASE_DELAY_MS" => Some("1".into()),
        _ => None,
    })
    .unwrap();
    let provider = StripeProvider::new(&config, ApiKey::new(KEY)).unwrap();
    let err = provider.confirm_payment("pi_1", &format!("order-{}-confirm", order_id(1))).await.unwrap_err();
    assert!(matches!(err, ProviderError::NotSent(_)), "nothing can have been charged: {err:?}");
}

#[tokio::test]
async fn a_503_or_429_was_refused_before_processing_but_a_500_may_have_been_processed() {
    let sim = simulator().await;
    let provider = provider(&sim, &[("RETRY_MAX_ATTEMPTS", "2")]);
    let id = provider.create_payment(&charge(order_id(1), "pm_card_visa")).await.unwrap();
    sim.simulator.set_faults(Faults { down: true, ..Faults::default() }).unwrap();
    let err = provider.confirm_payment(&id, &format!("order-{}-confirm", order_id(1))).await.unwrap_err();
    assert!(matches!(err, ProviderError::NotSent(_)), "503 twice: nothing processed, {err:?}");
    sim.simulator.set_faults(Faults { rate_limit_next: 2, ..Faults::default() }).unwrap();
    let err = provider.confirm_payment(&id, &format!("order-{}-confirm", order_id(1))).await.unwrap_err();
    assert!(matches!(err, ProviderError::NotSent(_)), "429 twice: nothing processed, {err:?}");
    sim.simulator.set_faults(Faults { fail_next: 2, ..Faults::default() }).unwrap();
    let err = provider.confirm_payment(&id, &format!("order-{}-confirm", order_id(1))).await.unwrap_err();
    assert!(matches!(err, ProviderError::Unavailable(_)), "a 500 may have charged: {err:?}");
}

/// The service on the simulator: settling a charge whose outcome is unknown asks Stripe by the
/// recorded PaymentIntent id and never sends a charge.
fn service(sim: &RunningSimulator, overrides: &[(&str, &str)]) -> (PaymentService, Arc<InMemoryPaymentStore>) {
    let store = Arc::new(InMemoryPaymentStore::new());
    let lease = LeaseConfig { duration: Duration::from_secs(5), poll_interval: Duration::from_millis(10) };
    (PaymentService::new(store.clone(), Arc::new(provider(sim, overrides)), lease), store)
}

fn request(order_id: OrderId) -> ChargeRequest {
    ChargeRequest { order_id, amount: Money::new(2500, "EUR"), payment_method: "pm_card_visa".into() }
}

#[tokio::test]
async fn compensating_a_charge_whose_confirm_was_never_processed_voids_it_and_charges_nothing() {
    let sim = simulator().await;
    let (service, store) = service(&sim, &[("RETRY_MAX_ATTEMPTS", "1")]);
    // The confirm begins executing and fails (a 500 saved under its key): nothing charged.
    sim.simulator.set_faults(Faults { error_next: 1, error_route: Some(CONFIRM.into()), ..Faults::default() }).unwrap();
    let err = service.charge(&request(order_id(1)), &CorrelationId::generate()).await.unwrap_err();
    assert!(matches!(err, PaymentError::Provider(ProviderError::Unavailable(_))), "{err:?}");
    let pending = store.get_payment(order_id(1)).await;
    let intent = pending.provider_payment_id.clone().expect("the intent id was recorded before the confirm");

    let settled = service.refund(order_id(1), &CorrelationId::generate()).await.unwrap().unwrap();
    assert_eq!(settled.status, PaymentStatus::Voided);
    assert_eq!(sim.simulator.payment_intent(&intent).unwrap()["status"], "requires_confirmation");
    assert_eq!((confirms(&sim), sim.simulator.stats().charges_succeeded), (1, 0), "settling sent no charge");
    assert_eq!(requests(&sim, "GET /v1/payment_intents/{id}"), 1);
    // The saga's late retry of the charge takes nothing either.
    assert_eq!(
        service.charge(&request(order_id(1)), &CorrelationId::generate()).await.unwrap().status,
        PaymentStatus::Voided
    );
    assert_eq!(confirms(&sim), 1);
}

#[tokio::test]
async fn compensating_a_charge_whose_answer_was_a_saved_500_refunds_what_was_taken() {
    let sim = simulator().await;
    let (service, _) = service(&sim, &[("RETRY_MAX_ATTEMPTS", "1")]);
    let faults = Faults { error_after_effect_next: 1, error_route: Some(CONFIRM.into()), ..Faults::default() };
    sim.simulator.set_faults(faults).unwrap();
    assert!(service.charge(&request(order_id(1)), &CorrelationId::generate()).await.is_err());
    let refunded = service.refund(order_id(1), &CorrelationId::generate()).await.unwrap().unwrap();
    assert_eq!(refunded.status, PaymentStatus::Refunded);
    let intent = refunded.provider_payment_id.unwrap();
    assert_eq!(sim.simulator.refunded(&intent), 2500);
    assert_eq!((confirms(&sim), sim.simulator.stats().charges_succeeded), (1, 1));
}

trait StoreExt {
    async fn get_payment(&self, order_id: OrderId) -> payments::domain::Payment;
}

impl StoreExt for InMemoryPaymentStore {
    async fn get_payment(&self, order_id: OrderId) -> payments::domain::Payment {
        payments::ports::PaymentStore::get(self, order_id).await.unwrap().unwrap()
    }
}
