//! The Stripe adapter against localstripe, a Stripe emulator this project did not write, for the
//! calls it supports: charge (an unconfirmed create, then a confirm), asking about the payment,
//! decline, refund. localstripe ignores `Idempotency-Key`, so once-only behaviour is proven
//! against our simulator instead.

use local_aws::LocalStripe;
use local_aws::fixtures::order_id;
use payments::adapters::stripe::{ApiKey, StripeProvider};
use payments::ports::{ChargeOutcome, PaymentProvider, ProviderCharge, ProviderError, ProviderRefund, RefundOutcome};
use serde_json::Value;
use shared::resilience::ServiceClientConfig;
use shared_core::OrderId;
use shared_core::money::Money;

const KEY: &str = "sk_test_localstripe";

/// localstripe knows cards by number: make a payment method for one.
async fn payment_method(stripe: &LocalStripe, number: &str) -> String {
    let form = [
        ("type", "card"),
        ("card[number]", number),
        ("card[exp_month]", "12"),
        ("card[exp_year]", "2040"),
        ("card[cvc]", "123"),
    ];
    let response = reqwest::Client::new()
        .post(format!("{}/v1/payment_methods", stripe.base_url()))
        .bearer_auth(KEY)
        .form(&form)
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    body["id"].as_str().unwrap_or_else(|| panic!("no payment method: {body}")).to_owned()
}

fn charge(order_id: OrderId, payment_method: String) -> ProviderCharge {
    ProviderCharge {
        order_id,
        amount: Money::new(3100, "EUR"),
        payment_method,
        idempotency_key: format!("order-{order_id}-create"),
    }
}

async fn pay(provider: &StripeProvider, charge: &ProviderCharge) -> Result<ChargeOutcome, ProviderError> {
    let id = provider.create_payment(charge).await?;
    provider.confirm_payment(&id, &format!("order-{}-confirm", charge.order_id)).await
}

#[tokio::test]
async fn the_adapter_charges_is_declined_and_refunds_on_localstripe() {
    let stripe = LocalStripe::start().await.expect("localstripe is installed by `make setup`");
    let base_url = stripe.base_url().to_owned();
    let config = ServiceClientConfig::from_lookup("P", |n| (n == "P_BASE_URL").then(|| base_url.clone())).unwrap();
    let provider = StripeProvider::new(&config, ApiKey::new(KEY)).unwrap();

    let visa = payment_method(&stripe, "4242424242424242").await;
    let ChargeOutcome::Captured { provider_payment_id } = pay(&provider, &charge(order_id(1), visa)).await.unwrap()
    else {
        panic!("a good card is captured")
    };
    let asked = provider.payment_status(&provider_payment_id).await.unwrap();
    assert_eq!(asked, ChargeOutcome::Captured { provider_payment_id: provider_payment_id.clone() });
    let intent: Value = reqwest::Client::new()
        .get(format!("{}/v1/payment_intents/{provider_payment_id}", stripe.base_url()))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!((intent["status"].as_str(), intent["amount"].as_u64()), (Some("succeeded"), Some(3100)));
    assert_eq!(intent["metadata"]["order_id"], order_id(1).to_string());

    // 4000000000000341 attaches fine and is declined when charged.
    let declining = payment_method(&stripe, "4000000000000341").await;
    let outcome = pay(&provider, &charge(order_id(2), declining)).await.unwrap();
    assert!(
        matches!(&outcome, ChargeOutcome::Declined { decline, .. } if decline.reason == "card_declined"),
        "{outcome:?}"
    );

    let refund = ProviderRefund {
        order_id: order_id(1),
        provider_payment_id,
        amount: Money::new(3100, "EUR"),
        idempotency_key: format!("order-{}-refund", order_id(1)),
    };
    let outcome = provider.refund(&refund).await.unwrap();
    assert!(matches!(&outcome, RefundOutcome::Succeeded { refund_id } if refund_id.starts_with("re_")), "{outcome:?}");
}
