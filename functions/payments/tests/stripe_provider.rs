//! The Stripe adapter against the provider simulator: what it sends, how it tells a decline from
//! an outage, and how the shared policy (retry, breaker, timeouts) protects both sides.

use std::collections::HashMap;
use std::time::Duration;

use payment_provider_sim::{Faults, RunningSimulator, Simulator, SimulatorConfig};
use payments::adapters::stripe::{ApiKey, StripeProvider};
use payments::ports::{ChargeOutcome, PaymentProvider, ProviderCharge, ProviderError, ProviderRefund};
use shared::money::Money;
use shared::resilience::{BreakerState, ServiceClientConfig};

const KEY: &str = "sk_test_adapter";

async fn simulator() -> RunningSimulator {
    let config = SimulatorConfig { api_key: KEY.into(), faults: Faults::default(), seed: Some(11) };
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
    StripeProvider::new(&config, ApiKey::new(KEY)).unwrap()
}

fn charge(order_id: &str, payment_method: &str) -> ProviderCharge {
    ProviderCharge {
        order_id: order_id.into(),
        amount: Money::new(2500, "EUR"),
        payment_method: payment_method.into(),
        idempotency_key: format!("order-{order_id}-charge"),
    }
}

fn charge_requests(sim: &RunningSimulator) -> u64 {
    sim.simulator.stats().by_route.get("POST /v1/payment_intents").copied().unwrap_or(0)
}

#[tokio::test]
async fn a_charge_is_one_form_encoded_create_and_confirm_with_the_order_in_metadata() {
    let sim = simulator().await;
    let outcome = provider(&sim, &[]).charge(&charge("o-1", "pm_card_visa")).await.unwrap();
    let ChargeOutcome::Captured { provider_payment_id } = outcome else { panic!("{outcome:?}") };
    let intent = sim.simulator.payment_intent(&provider_payment_id).unwrap();
    assert_eq!(intent["status"], "succeeded");
    assert_eq!(intent["amount"], 2500);
    assert_eq!(intent["currency"], "eur");
    assert_eq!(intent["metadata"]["order_id"], "o-1");
    assert_eq!(charge_requests(&sim), 1);
}

#[tokio::test]
async fn a_decline_is_final_one_request_and_never_counts_against_the_breaker() {
    let sim = simulator().await;
    let provider = provider(&sim, &[("BREAKER_MINIMUM_CALLS", "2"), ("BREAKER_WINDOW", "2")]);
    for n in 0..6 {
        let outcome = provider.charge(&charge(&format!("o-{n}"), "pm_card_visa_chargeDeclinedInsufficientFunds")).await;
        let Ok(ChargeOutcome::Declined { decline, provider_payment_id }) = outcome else { panic!("{outcome:?}") };
        assert_eq!(decline.reason, "insufficient_funds");
        assert_eq!(decline.message, "Your card has insufficient funds.");
        assert!(provider_payment_id.unwrap().starts_with("pi_"));
    }
    assert_eq!(charge_requests(&sim), 6, "one request per decline: no retry");
    assert_eq!(provider.policy().breaker().unwrap().state(), BreakerState::Closed);

    let generic = provider.charge(&charge("o-g", "pm_card_visa_chargeDeclined")).await.unwrap();
    assert!(matches!(generic, ChargeOutcome::Declined { decline, .. } if decline.reason == "generic_decline"));
}

#[tokio::test]
async fn two_transient_500s_then_success_is_three_requests_and_one_charge() {
    let sim = simulator().await;
    sim.simulator.set_faults(Faults { fail_next: 2, ..Faults::default() }).unwrap();
    let outcome = provider(&sim, &[]).charge(&charge("o-1", "pm_card_visa")).await.unwrap();
    assert!(matches!(outcome, ChargeOutcome::Captured { .. }));
    let stats = sim.simulator.stats();
    assert_eq!(charge_requests(&sim), 3);
    assert_eq!((stats.payment_intents_created, stats.charges_succeeded), (1, 1));
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
        let err = provider.charge(&charge(&format!("o-{n}"), "pm_card_visa")).await.unwrap_err();
        assert!(matches!(&err, ProviderError::NotSent(m) if m.contains("503")), "{err:?}");
    }
    assert_eq!(charge_requests(&sim), 4, "two calls, two attempts each");
    assert_eq!(breaker.state(), BreakerState::Open);

    // Open: calls fail at once, the provider sees nothing, and the caller knows nothing was sent.
    // (Before it opened, the 503s already told that much: a 503 is refused before processing.)
    for n in 2..10 {
        let err = provider.charge(&charge(&format!("o-{n}"), "pm_card_visa")).await.unwrap_err();
        assert!(matches!(&err, ProviderError::NotSent(m) if m.contains("open")), "{err:?}");
    }
    assert_eq!(charge_requests(&sim), 4);

    // The provider comes back; after the open wait one probe goes through and closes the circuit.
    sim.simulator.set_faults(Faults::default()).unwrap();
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert!(matches!(provider.charge(&charge("o-probe", "pm_card_visa")).await, Ok(ChargeOutcome::Captured { .. })));
    assert_eq!(breaker.state(), BreakerState::Closed);
    assert!(matches!(provider.charge(&charge("o-after", "pm_card_visa")).await, Ok(ChargeOutcome::Captured { .. })));
    assert_eq!(charge_requests(&sim), 6);
}

#[tokio::test]
async fn a_timed_out_charge_is_unknown_and_asking_again_with_its_key_returns_the_charge_it_made() {
    let sim = simulator().await;
    sim.simulator.set_faults(Faults { timeout_rate: 1.0, hang_ms: 1000, ..Faults::default() }).unwrap();
    let single_attempt = provider(&sim, &[("ATTEMPT_TIMEOUT_MS", "150"), ("RETRY_MAX_ATTEMPTS", "1")]);
    let err = single_attempt.charge(&charge("o-1", "pm_card_visa")).await.unwrap_err();
    assert!(matches!(err, ProviderError::Unavailable(_)), "{err:?}");
    assert_eq!(sim.simulator.stats().charges_succeeded, 1, "the provider charged although nobody heard it");

    // With retries, the next attempt carries the same key and hears what the first one did.
    let retrying = provider(&sim, &[("ATTEMPT_TIMEOUT_MS", "150"), ("RETRY_MAX_ATTEMPTS", "3")]);
    let err = retrying.charge(&charge("o-2", "pm_card_visa")).await;
    assert!(matches!(err, Ok(ChargeOutcome::Captured { .. })), "{err:?}");
    sim.simulator.set_faults(Faults::default()).unwrap();
    let outcome = single_attempt.charge(&charge("o-1", "pm_card_visa")).await.unwrap();
    assert!(matches!(outcome, ChargeOutcome::Captured { .. }));
    let stats = sim.simulator.stats();
    assert_eq!(charge_requests(&sim), 4);
    assert_eq!(
        (stats.payment_intents_created, stats.charges_succeeded),
        (2, 2),
        "one charge per order, not per request"
    );
}

#[tokio::test]
async fn a_refund_with_the_same_key_refunds_once() {
    let sim = simulator().await;
    let provider = provider(&sim, &[]);
    let ChargeOutcome::Captured { provider_payment_id } =
        provider.charge(&charge("o-1", "pm_card_visa")).await.unwrap()
    else {
        panic!("not captured")
    };
    let refund = ProviderRefund {
        order_id: "o-1".into(),
        provider_payment_id: provider_payment_id.clone(),
        amount: Money::new(2500, "EUR"),
        idempotency_key: "order-o-1-refund".into(),
    };
    let first = provider.refund(&refund).await.unwrap();
    let second = provider.refund(&refund).await.unwrap();
    assert_eq!(first, second);
    assert!(first.starts_with("re_"));
    assert_eq!(sim.simulator.stats().refunds_created, 1);
    assert_eq!(sim.simulator.refunded(&provider_payment_id), 2500);
}

#[tokio::test]
async fn a_wrong_api_key_is_rejected_without_retry() {
    let sim = simulator().await;
    let config = ServiceClientConfig::from_lookup("P", |name| (name == "P_BASE_URL").then(|| sim.base_url())).unwrap();
    let provider = StripeProvider::new(&config, ApiKey::new("sk_test_wrong")).unwrap();
    let err = provider.charge(&charge("o-1", "pm_card_visa")).await.unwrap_err();
    assert!(matches!(&err, ProviderError::Rejected(m) if m.contains("401")), "{err:?}");
    assert_eq!(charge_requests(&sim), 1);
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
    let err = provider.charge(&charge("o-1", "pm_card_visa")).await.unwrap_err();
    assert!(matches!(err, ProviderError::NotSent(_)), "nothing can have been charged: {err:?}");
}

#[tokio::test]
async fn a_503_or_429_was_refused_before_processing_but_a_500_may_have_been_processed() {
    let sim = simulator().await;
    let provider = provider(&sim, &[("RETRY_MAX_ATTEMPTS", "2")]);
    sim.simulator.set_faults(Faults { down: true, ..Faults::default() }).unwrap();
    let err = provider.charge(&charge("o-1", "pm_card_visa")).await.unwrap_err();
    assert!(matches!(err, ProviderError::NotSent(_)), "503 twice: nothing processed, {err:?}");
    sim.simulator.set_faults(Faults { fail_next: 2, ..Faults::default() }).unwrap();
    let single = provider_with_attempts(&sim, 2);
    let err = single.charge(&charge("o-2", "pm_card_visa")).await.unwrap_err();
    assert!(matches!(err, ProviderError::Unavailable(_)), "a 500 may have charged: {err:?}");
}

fn provider_with_attempts(sim: &RunningSimulator, attempts: u32) -> StripeProvider {
    provider(sim, &[("RETRY_MAX_ATTEMPTS", &attempts.to_string())])
}
