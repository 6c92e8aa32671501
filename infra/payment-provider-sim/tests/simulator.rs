//! The simulator behaves like the parts of Stripe's API the payments adapter relies on.

use std::time::Duration;

use payment_provider_sim::{Faults, RunningSimulator, Simulator, SimulatorConfig};
use serde_json::Value;

const KEY: &str = "sk_test_sim";

async fn start(faults: Faults) -> RunningSimulator {
    let config = SimulatorConfig { api_key: KEY.into(), faults, seed: Some(7) };
    Simulator::new(config).unwrap().spawn(0).await.unwrap()
}

async fn post(sim: &RunningSimulator, path: &str, key: Option<&str>, form: &[(&str, &str)]) -> (u16, Value, bool) {
    let mut request = reqwest::Client::new().post(format!("{}{path}", sim.base_url())).bearer_auth(KEY).form(form);
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let replayed = response.headers().get("idempotent-replayed").is_some();
    (status, response.json().await.unwrap(), replayed)
}

fn charge(pm: &str) -> Vec<(&str, &str)> {
    vec![
        ("amount", "2500"),
        ("currency", "eur"),
        ("payment_method", pm),
        ("confirm", "true"),
        ("metadata[order_id]", "o-1"),
    ]
}

#[tokio::test]
async fn a_test_card_is_charged_and_the_same_key_replays_the_same_intent() {
    let sim = start(Faults::default()).await;
    let (status, first, replayed) = post(&sim, "/v1/payment_intents", Some("k1"), &charge("pm_card_visa")).await;
    assert_eq!(status, 200, "{first}");
    assert!(!replayed);
    assert_eq!(first["status"], "succeeded");
    assert_eq!(first["amount_received"], 2500);
    assert_eq!(first["metadata"]["order_id"], "o-1");
    assert!(first["id"].as_str().unwrap().starts_with("pi_"));

    let (status, again, replayed) = post(&sim, "/v1/payment_intents", Some("k1"), &charge("pm_card_visa")).await;
    assert_eq!((status, replayed), (200, true));
    assert_eq!(again["id"], first["id"]);
    let stats = sim.simulator.stats();
    assert_eq!((stats.payment_intents_created, stats.charges_succeeded, stats.idempotent_replays), (1, 1, 1));

    // The same key with other parameters is refused, as Stripe does.
    let (status, body, _) = post(&sim, "/v1/payment_intents", Some("k1"), &charge("pm_card_mastercard")).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["type"], "idempotency_error");
    assert_eq!(sim.simulator.stats().payment_intents_created, 1);
}

#[tokio::test]
async fn decline_test_cards_answer_402_card_errors_and_the_decline_is_replayed() {
    let sim = start(Faults::default()).await;
    for (pm, code, decline_code) in [
        ("pm_card_visa_chargeDeclined", "card_declined", Some("generic_decline")),
        ("pm_card_visa_chargeDeclinedInsufficientFunds", "card_declined", Some("insufficient_funds")),
        ("pm_card_chargeDeclinedExpiredCard", "expired_card", None),
    ] {
        let (status, body, _) = post(&sim, "/v1/payment_intents", Some(pm), &charge(pm)).await;
        assert_eq!(status, 402, "{pm}: {body}");
        assert_eq!(body["error"]["type"], "card_error");
        assert_eq!(body["error"]["code"], code);
        assert_eq!(body["error"]["decline_code"].as_str(), decline_code);
        assert_eq!(body["error"]["payment_intent"]["status"], "requires_payment_method");
        let (status, again, replayed) = post(&sim, "/v1/payment_intents", Some(pm), &charge(pm)).await;
        assert_eq!((status, replayed), (402, true));
        assert_eq!(again, body);
    }
    assert_eq!(sim.simulator.stats().charges_declined, 3);
    assert_eq!(sim.simulator.stats().charges_succeeded, 0);
}

#[tokio::test]
async fn bad_requests_are_refused_like_stripe_does() {
    let sim = start(Faults::default()).await;
    let url = format!("{}/v1/payment_intents", sim.base_url());
    let unauthorised = reqwest::Client::new().post(&url).bearer_auth("sk_wrong").form(&charge("pm_card_visa")).send();
    assert_eq!(unauthorised.await.unwrap().status(), 401);

    let mut unknown = charge("pm_card_visa");
    unknown.push(("colour", "blue"));
    let (status, body, _) = post(&sim, "/v1/payment_intents", None, &unknown).await;
    assert_eq!((status, body["error"]["param"].as_str()), (400, Some("colour")));
    let (status, body, _) = post(&sim, "/v1/payment_intents", None, &[("currency", "eur")]).await;
    assert_eq!((status, body["error"]["param"].as_str()), (400, Some("amount")));
    let (status, _, _) = post(&sim, "/v1/payment_intents", None, &charge("card_4242")).await;
    assert_eq!(status, 400, "not a payment method id");
    assert_eq!(sim.simulator.stats().payment_intents_created, 0);
}

#[tokio::test]
async fn a_payment_is_created_then_confirmed_in_two_steps() {
    let sim = start(Faults::default()).await;
    let form = [("amount", "900"), ("currency", "usd"), ("payment_method", "pm_card_visa")];
    let (status, created, _) = post(&sim, "/v1/payment_intents", Some("c1"), &form).await;
    assert_eq!((status, created["status"].as_str()), (200, Some("requires_confirmation")));
    let path = format!("/v1/payment_intents/{}/confirm", created["id"].as_str().unwrap());
    let (status, confirmed, _) = post(&sim, &path, Some("c2"), &[]).await;
    assert_eq!((status, confirmed["status"].as_str()), (200, Some("succeeded")));
    let (status, body, _) = post(&sim, &path, Some("c3"), &[]).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("payment_intent_unexpected_state")));
}

#[tokio::test]
async fn refunds_give_back_at_most_what_was_received() {
    let sim = start(Faults::default()).await;
    let (_, intent, _) = post(&sim, "/v1/payment_intents", Some("k"), &charge("pm_card_visa")).await;
    let id = intent["id"].as_str().unwrap();
    let (status, body, _) = post(&sim, "/v1/refunds", None, &[("payment_intent", id), ("amount", "2600")]).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("amount_too_large")));
    let (status, refund, _) =
        post(&sim, "/v1/refunds", Some("r1"), &[("payment_intent", id), ("amount", "2500")]).await;
    assert_eq!(status, 200, "{refund}");
    assert_eq!((refund["amount"].as_u64(), refund["status"].as_str()), (Some(2500), Some("succeeded")));
    let (_, again, replayed) =
        post(&sim, "/v1/refunds", Some("r1"), &[("payment_intent", id), ("amount", "2500")]).await;
    assert!(replayed);
    assert_eq!(again["id"], refund["id"]);
    let (status, body, _) = post(&sim, "/v1/refunds", Some("r2"), &[("payment_intent", id)]).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("charge_already_refunded")));
    assert_eq!(sim.simulator.refunded(id), 2500);
    assert_eq!(sim.simulator.stats().refunds_created, 1);
}

#[tokio::test]
async fn injected_failures_happen_before_processing_and_are_not_stored_under_the_key() {
    let sim = start(Faults { fail_next: 2, ..Faults::default() }).await;
    for _ in 0..2 {
        let response = reqwest::Client::new()
            .post(format!("{}/v1/payment_intents", sim.base_url()))
            .bearer_auth(KEY)
            .header("idempotency-key", "k")
            .form(&charge("pm_card_visa"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 500);
        assert_eq!(response.headers()["stripe-should-retry"], "true");
    }
    let (status, body, replayed) = post(&sim, "/v1/payment_intents", Some("k"), &charge("pm_card_visa")).await;
    assert_eq!((status, replayed), (200, false), "{body}");
    let stats = sim.simulator.stats();
    assert_eq!((stats.requests, stats.injected_failures, stats.payment_intents_created), (3, 2, 1));
}

#[tokio::test]
async fn a_request_that_times_out_was_processed_and_its_key_answers_in_flight_duplicates_with_409() {
    let sim = start(Faults { timeout_rate: 1.0, hang_ms: 1500, ..Faults::default() }).await;
    let client = reqwest::Client::builder().timeout(Duration::from_millis(300)).build().unwrap();
    let timed_out = client
        .post(format!("{}/v1/payment_intents", sim.base_url()))
        .bearer_auth(KEY)
        .header("idempotency-key", "slow")
        .form(&charge("pm_card_visa"))
        .send()
        .await;
    assert!(timed_out.unwrap_err().is_timeout());
    assert_eq!(sim.simulator.stats().charges_succeeded, 1, "the charge happened although the client gave up");

    // The faults are changed at run time over HTTP, as the local system does.
    let faults = reqwest::Client::new()
        .put(format!("{}/_sim/faults", sim.base_url()))
        .json(&Faults { latency_ms: 400, ..Faults::default() })
        .send()
        .await
        .unwrap();
    assert_eq!(faults.status(), 200);
    let form = charge("pm_card_visa");
    let (first, second) = tokio::join!(post(&sim, "/v1/payment_intents", Some("busy"), &form), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        post(&sim, "/v1/payment_intents", Some("busy"), &form).await
    });
    assert_eq!(first.0, 200);
    assert_eq!((second.0, second.1["error"]["code"].as_str()), (409, Some("idempotency_key_in_use")));
    let (status, _, replayed) = post(&sim, "/v1/payment_intents", Some("slow"), &charge("pm_card_visa")).await;
    assert_eq!((status, replayed), (200, true), "asking again with the key tells what happened");
    let bad = reqwest::Client::new()
        .put(format!("{}/_sim/faults", sim.base_url()))
        .body(r#"{"failure_rate": 2}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}

#[tokio::test]
async fn when_down_every_request_fails_until_it_is_back() {
    let sim = start(Faults { down: true, ..Faults::default() }).await;
    let (status, _, _) = post(&sim, "/v1/payment_intents", Some("k"), &charge("pm_card_visa")).await;
    assert_eq!(status, 503);
    sim.simulator.set_faults(Faults::default()).unwrap();
    let (status, _, _) = post(&sim, "/v1/payment_intents", Some("k"), &charge("pm_card_visa")).await;
    assert_eq!(status, 200);
}
