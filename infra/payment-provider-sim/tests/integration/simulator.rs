//! The simulator behaves like the parts of Stripe's API the payments adapter relies on. Each
//! behaviour cites the Stripe documentation it follows.

use std::time::Duration;

use payment_provider_sim::{Faults, RunningSimulator, Simulator, SimulatorConfig};
use serde_json::Value;

const KEY: &str = "sk_test_sim";

async fn start(faults: Faults) -> RunningSimulator {
    let config = SimulatorConfig { api_key: KEY.into(), faults, seed: Some(7), ..SimulatorConfig::default() };
    Simulator::new(config).unwrap().spawn(0).await.unwrap()
}

async fn post(sim: &RunningSimulator, path: &str, key: Option<&str>, form: &[(&str, &str)]) -> (u16, Value, bool) {
    let request = reqwest::Client::new().post(format!("{}{path}", sim.base_url())).bearer_auth(KEY).form(form);
    send(request, key).await
}

async fn send(mut request: reqwest::RequestBuilder, key: Option<&str>) -> (u16, Value, bool) {
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

async fn get(sim: &RunningSimulator, path: &str) -> (u16, Value) {
    let response =
        reqwest::Client::new().get(format!("{}{path}", sim.base_url())).bearer_auth(KEY).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

// https://docs.stripe.com/api/idempotent_requests: "Stripe saves the status code and body of the
// first request made with a given idempotency key after endpoint execution begins. Retries with
// the same key return the saved response, including 500 errors."
#[tokio::test]
async fn a_500_after_execution_began_is_saved_and_replayed_even_when_the_charge_happened() {
    let sim = start(Faults { error_next: 1, ..Faults::default() }).await;
    let (status, first, _) = post(&sim, "/v1/payment_intents", Some("e1"), &charge("pm_card_visa")).await;
    assert_eq!((status, first["error"]["type"].as_str()), (500, Some("api_error")));
    // The same parameters in another order are the same request: the 500 again.
    let mut reordered = charge("pm_card_visa");
    reordered.reverse();
    let (status, again, replayed) = post(&sim, "/v1/payment_intents", Some("e1"), &reordered).await;
    assert_eq!((status, replayed), (500, true));
    assert_eq!(again, first);
    assert_eq!(sim.simulator.stats().payment_intents_created, 0, "nothing was done");

    // Worse: the card is charged, and the answer saved under the key is a 500.
    sim.simulator.set_faults(Faults { error_after_effect_next: 1, ..Faults::default() }).unwrap();
    let (status, _, _) = post(&sim, "/v1/payment_intents", Some("e2"), &charge("pm_card_visa")).await;
    assert_eq!(status, 500);
    let (status, _, replayed) = post(&sim, "/v1/payment_intents", Some("e2"), &charge("pm_card_visa")).await;
    assert_eq!((status, replayed), (500, true), "the key only ever answers the 500");
    let charged = sim.simulator.payment_intents_with_metadata("order_id", "o-1");
    assert_eq!(charged.len(), 1);
    assert_eq!(charged[0]["status"], "succeeded", "only asking about the object tells");
    let stats = sim.simulator.stats();
    assert_eq!((stats.charges_succeeded, stats.injected_errors, stats.idempotent_replays), (1, 2, 2));
}

// https://docs.stripe.com/api/idempotent_requests: keys are up to 255 characters; results are
// saved only once an endpoint begins executing, not when parameters fail validation; a reused
// key is compared with the first request; keys are pruned after 24 hours (here: the configured
// time), after which the key is a new request.
#[tokio::test]
async fn validation_errors_are_not_saved_long_keys_are_refused_and_keys_expire() {
    let config = SimulatorConfig {
        api_key: KEY.into(),
        idempotency_ttl: Duration::from_millis(300),
        ..SimulatorConfig::default()
    };
    let sim = Simulator::new(config).unwrap().spawn(0).await.unwrap();
    let long = "k".repeat(256);
    let (status, body, _) = post(&sim, "/v1/payment_intents", Some(&long), &charge("pm_card_visa")).await;
    assert_eq!((status, body["error"]["type"].as_str()), (400, Some("invalid_request_error")));
    let (status, _, _) = post(&sim, "/v1/payment_intents", Some(&"k".repeat(255)), &charge("pm_card_visa")).await;
    assert_eq!(status, 200);

    let (status, _, _) = post(&sim, "/v1/payment_intents", Some("v"), &[("amount", "2500")]).await;
    assert_eq!(status, 400);
    let (status, body, replayed) = post(&sim, "/v1/payment_intents", Some("v"), &charge("pm_card_visa")).await;
    assert_eq!((status, replayed), (200, false), "the refused request saved nothing: {body}");

    // Another endpoint with the same key is refused.
    let id = body["id"].as_str().unwrap();
    let (status, body, _) = post(&sim, "/v1/refunds", Some("v"), &[("payment_intent", id)]).await;
    assert_eq!((status, body["error"]["type"].as_str()), (400, Some("idempotency_error")));

    tokio::time::sleep(Duration::from_millis(350)).await;
    let (status, again, replayed) = post(&sim, "/v1/payment_intents", Some("v"), &charge("pm_card_visa")).await;
    assert_eq!((status, replayed), (200, false), "an expired key is a new request");
    assert_ne!(again["id"].as_str(), Some(id));
}

#[tokio::test]
async fn a_429_and_a_503_come_before_processing_and_save_nothing() {
    let sim = start(Faults { rate_limit_next: 1, ..Faults::default() }).await;
    let (status, body, _) = post(&sim, "/v1/payment_intents", Some("r"), &charge("pm_card_visa")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (429, Some("rate_limit")));
    let (status, _, replayed) = post(&sim, "/v1/payment_intents", Some("r"), &charge("pm_card_visa")).await;
    assert_eq!((status, replayed), (200, false));
}

// https://docs.stripe.com/api/versioning and https://docs.stripe.com/upgrades: a request may name
// its API version in `Stripe-Version`; an invalid version is refused.
#[tokio::test]
async fn the_stripe_version_header_is_checked_echoed_and_counted() {
    let sim = start(Faults::default()).await;
    let url = format!("{}/v1/payment_intents", sim.base_url());
    for (version, expected) in [
        ("2020-08-27", 200),
        ("2024-09-30.acacia", 200),
        ("2020-08-27; feature_beta=v1", 200),
        ("latest", 400),
        ("2020-13-01", 400),
    ] {
        let response = reqwest::Client::new()
            .post(&url)
            .bearer_auth(KEY)
            .header("stripe-version", version)
            .form(&charge("pm_card_visa"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), expected, "{version}");
        assert_eq!(response.headers()["stripe-version"], version);
        assert!(response.headers()["request-id"].to_str().unwrap().starts_with("req_"));
    }
    let versions = sim.simulator.stats().api_versions;
    assert_eq!(versions.get("2020-08-27"), Some(&1));
    assert!(payment_provider_sim::plausible_api_version("2020-08-27"));
}

// https://docs.stripe.com/testing (test payment methods) and
// https://docs.stripe.com/currencies#minimum-and-maximum-charge-amounts,
// https://docs.stripe.com/currencies#three-decimal.
#[tokio::test]
async fn unknown_payment_methods_amounts_out_of_range_and_unknown_currencies_are_refused() {
    let sim = start(Faults::default()).await;
    let form = |amount: &'static str, currency: &'static str, pm: &'static str| {
        vec![("amount", amount), ("currency", currency), ("payment_method", pm), ("confirm", "true")]
    };
    for (request, code, param) in [
        (form("2500", "eur", "pm_card_madeUp"), "resource_missing", "payment_method"),
        (form("49", "eur", "pm_card_visa"), "amount_too_small", "amount"),
        (form("29", "gbp", "pm_card_visa"), "amount_too_small", "amount"),
        (form("100000000", "usd", "pm_card_visa"), "amount_too_large", "amount"),
        (form("2500", "xyz", "pm_card_visa"), "parameter_invalid_string", "currency"),
        (form("1005", "bhd", "pm_card_visa"), "invalid_amount", "amount"),
    ] {
        let (status, body, _) = post(&sim, "/v1/payment_intents", None, &request).await;
        assert_eq!(status, 400, "{request:?}: {body}");
        assert_eq!((body["error"]["code"].as_str(), body["error"]["param"].as_str()), (Some(code), Some(param)));
        assert_eq!(body["error"]["type"], "invalid_request_error");
    }
    for request in [
        form("50", "eur", "pm_card_visa"),
        form("50", "jpy", "pm_card_amex"),
        form("1000", "bhd", "pm_card_visa"),
        form("99999999", "usd", "pm_card_visa"),
    ] {
        let (status, body, _) = post(&sim, "/v1/payment_intents", None, &request).await;
        assert_eq!(status, 200, "{request:?}: {body}");
        assert_eq!(body["payment_method_types"], serde_json::json!(["card"]), "a required field");
    }
    let (_, paid, _) = post(&sim, "/v1/payment_intents", None, &charge("pm_card_visa")).await;
    let id = paid["id"].as_str().unwrap();
    let (status, body, _) =
        post(&sim, "/v1/refunds", None, &[("payment_intent", id), ("reason", "changed_mind")]).await;
    assert_eq!((status, body["error"]["param"].as_str()), (400, Some("reason")));
    let (status, body, _) =
        post(&sim, "/v1/refunds", None, &[("payment_intent", id), ("reason", "requested_by_customer")]).await;
    assert_eq!((status, body["reason"].as_str()), (200, Some("requested_by_customer")));
}

// https://docs.stripe.com/testing#regulatory-cards and
// https://docs.stripe.com/payments/paymentintents/lifecycle (requires_action, processing).
#[tokio::test]
async fn three_d_secure_cards_require_action_and_processing_settles_later() {
    let sim = start(Faults::default()).await;
    let (status, intent, _) = post(&sim, "/v1/payment_intents", None, &charge("pm_card_threeDSecure2Required")).await;
    assert_eq!((status, intent["status"].as_str()), (200, Some("requires_action")));
    assert_eq!(intent["next_action"]["type"], "use_stripe_sdk");
    let mut off_session = charge("pm_card_threeDSecure2Required");
    off_session.push(("off_session", "true"));
    let (status, body, _) = post(&sim, "/v1/payment_intents", None, &off_session).await;
    assert_eq!(status, 402);
    assert_eq!(body["error"]["code"], "authentication_required");
    assert_eq!(body["error"]["payment_intent"]["status"], "requires_payment_method");

    sim.simulator.set_faults(Faults { processing_next: 1, settle_ms: 200, ..Faults::default() }).unwrap();
    let (_, processing, _) = post(&sim, "/v1/payment_intents", Some("p"), &charge("pm_card_visa")).await;
    assert_eq!(processing["status"], "processing");
    let path = format!("/v1/payment_intents/{}", processing["id"].as_str().unwrap());
    assert_eq!(get(&sim, &path).await.1["status"], "processing");
    let (_, replayed, was_replayed) = post(&sim, "/v1/payment_intents", Some("p"), &charge("pm_card_visa")).await;
    assert!(was_replayed);
    assert_eq!(replayed["status"], "processing", "the saved answer, not today's state");
    tokio::time::sleep(Duration::from_millis(250)).await;
    let (_, settled) = get(&sim, &path).await;
    assert_eq!((settled["status"].as_str(), settled["amount_received"].as_u64()), (Some("succeeded"), Some(2500)));
    let stats = sim.simulator.stats();
    assert_eq!((stats.charges_requiring_action, stats.charges_processing, stats.charges_succeeded), (1, 1, 1));
}

// https://docs.stripe.com/testing#refunds and https://docs.stripe.com/refunds#failed-refunds:
// a refund can be pending, then succeed or fail; a failed refund gives the money back to the
// merchant's balance.
#[tokio::test]
async fn refunds_can_be_pending_then_succeed_or_fail_and_their_status_can_be_forced() {
    let sim = start(Faults { settle_ms: 100, ..Faults::default() }).await;
    for (pm, end) in [("pm_card_pendingRefund", "succeeded"), ("pm_card_refundFail", "failed")] {
        let (_, paid, _) = post(&sim, "/v1/payment_intents", None, &charge(pm)).await;
        let id = paid["id"].as_str().unwrap().to_owned();
        let (status, refund, _) = post(&sim, "/v1/refunds", Some(pm), &[("payment_intent", &id)]).await;
        assert_eq!((status, refund["status"].as_str()), (200, Some("pending")), "{pm}");
        let path = format!("/v1/refunds/{}", refund["id"].as_str().unwrap());
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(get(&sim, &path).await.1["status"], end, "{pm}");
        assert_eq!(sim.simulator.refunded(&id), if end == "failed" { 0 } else { 2500 });
    }
    assert_eq!(sim.simulator.stats().refunds_failed, 1);

    for forced in ["canceled", "failed", "pending", "succeeded"] {
        sim.simulator.set_faults(Faults { refund_status: Some(forced.into()), ..Faults::default() }).unwrap();
        let (_, paid, _) = post(&sim, "/v1/payment_intents", None, &charge("pm_card_visa")).await;
        let (_, refund, _) = post(&sim, "/v1/refunds", None, &[("payment_intent", paid["id"].as_str().unwrap())]).await;
        assert_eq!(refund["status"], forced);
    }
    let bad = Faults { refund_status: Some("lost".into()), ..Faults::default() };
    assert!(sim.simulator.set_faults(bad).is_err());
}

/// <https://docs.stripe.com/api/payment_intents/cancel>: an intent waiting for 3-D Secure (or a
/// confirmation, or a payment method) may be cancelled, with one of the four reasons; a paid one
/// may not (`payment_intent_unexpected_state`), and the refusal is saved under its key.
#[tokio::test]
async fn an_unfinished_intent_can_be_cancelled_and_a_paid_one_cannot() {
    let sim = start(Faults::default()).await;
    let (status, intent, _) =
        post(&sim, "/v1/payment_intents", Some("k-3ds"), &charge("pm_card_threeDSecure2Required")).await;
    assert_eq!((status, intent["status"].as_str()), (200, Some("requires_action")), "{intent}");
    let cancel = format!("/v1/payment_intents/{}/cancel", intent["id"].as_str().unwrap());
    let (status, body, _) = post(&sim, &cancel, Some("c-bad"), &[("cancellation_reason", "bored")]).await;
    assert_eq!((status, body["error"]["param"].as_str()), (400, Some("cancellation_reason")), "{body}");
    let (status, canceled, _) = post(&sim, &cancel, Some("c-1"), &[("cancellation_reason", "abandoned")]).await;
    assert_eq!(status, 200, "{canceled}");
    assert_eq!(
        (canceled["status"].as_str(), canceled["cancellation_reason"].as_str()),
        (Some("canceled"), Some("abandoned"))
    );
    assert!(canceled["canceled_at"].is_u64());
    let (status, again, replayed) = post(&sim, &cancel, Some("c-1"), &[("cancellation_reason", "abandoned")]).await;
    assert_eq!((status, replayed, &again), (200, true, &canceled), "the same key replays the cancellation");

    let (_, paid, _) = post(&sim, "/v1/payment_intents", Some("k-paid"), &charge("pm_card_visa")).await;
    let cancel = format!("/v1/payment_intents/{}/cancel", paid["id"].as_str().unwrap());
    let (status, body, _) = post(&sim, &cancel, Some("c-2"), &[]).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("payment_intent_unexpected_state")), "{body}");
    let (status, _, replayed) = post(&sim, &cancel, Some("c-2"), &[]).await;
    assert_eq!((status, replayed), (400, true), "an executed request's error is saved");
    assert_eq!(sim.simulator.stats().payment_intents_canceled, 1);
}
