//! The payments HTTP API driven with the `events/payments-api` fixture (API Gateway v2).

use std::sync::Arc;

use axum::body::Body;
use http::{Request, StatusCode};
use payments::adapters::memory::{InMemoryPaymentStore, ScriptedProvider};
use payments::domain::ChargeRequest;
use payments::http::router;
use payments::service::{LeaseConfig, PaymentService};
use serde_json::{Value, json};
use shared_core::CorrelationId;
use shared_core::money::Money;

use local_aws::fixtures::ORDER_ID;
use shared_core::OrderId;

fn fixture(name: &str) -> lambda_http::Request {
    local_aws::fixtures::http("payments-api", name).unwrap()
}

async fn send<B>(service: &PaymentService, request: Request<B>) -> (StatusCode, http::HeaderMap, Value)
where
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    local_aws::fixtures::send(router(service.clone()), request).await
}

#[tokio::test]
async fn the_fixture_reads_the_payment_of_an_order_without_its_lease_bookkeeping() {
    let store = Arc::new(InMemoryPaymentStore::new());
    let service = PaymentService::new(store, Arc::new(ScriptedProvider::new()), LeaseConfig::default());
    let (status, headers, body) = send(&service, fixture("get-payment.json")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(headers["content-type"], "application/problem+json");
    assert_eq!(headers["x-correlation-id"], "demo-correlation-3");

    let charge = ChargeRequest {
        order_id: OrderId::parse(ORDER_ID).unwrap(),
        amount: Money::new(2500, "EUR"),
        payment_method: "pm_card_visa".into(),
    };
    service.charge(&charge, &CorrelationId::generate()).await.unwrap();
    let (status, _, mut body) = send(&service, fixture("get-payment.json")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let object = body.as_object_mut().unwrap();
    assert!(object.remove("created_at").is_some() && object.remove("updated_at").is_some());
    assert_eq!(
        body,
        json!({"order_id": ORDER_ID, "status": "CAPTURED", "amount": {"amount_minor": 2500, "currency": "EUR"},
               "payment_method": "pm_card_visa", "provider_payment_id": format!("pi_{ORDER_ID}")})
    );
}

#[tokio::test]
async fn a_bad_order_id_is_a_400_and_other_methods_are_405() {
    let service = PaymentService::read_only(Arc::new(InMemoryPaymentStore::new()));
    // An order id is a UUID in its one spelling; anything else is refused before any read.
    for bad in ["x".repeat(65), "o-1".to_owned(), ORDER_ID.replace('-', ""), ORDER_ID.to_owned() + "0"] {
        let request = Request::get(format!("/payments/order/{bad}")).body(Body::empty()).unwrap();
        let (status, _, body) = send(&service, request).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(body["invalid-params"][0]["name"], "order_id", "{bad}");
    }
    let request = Request::post(format!("/payments/order/{ORDER_ID}")).body(Body::empty()).unwrap();
    let (status, headers, _) = send(&service, request).await;
    assert_eq!((status, headers["allow"].to_str().unwrap()), (StatusCode::METHOD_NOT_ALLOWED, "GET,HEAD"));
}

#[tokio::test]
async fn a_decline_is_shown_as_one_of_four_public_reasons_while_the_store_keeps_the_providers_code() {
    use payments::domain::{Decline, PublicDeclineReason};
    use payments::ports::ChargeOutcome;
    let cases = [
        ("stolen_card", "card_declined"),
        ("lost_card", "card_declined"),
        ("incorrect_cvc", "card_declined"),
        ("fraudulent", "card_declined"),
        ("insufficient_funds", "insufficient_funds"),
        ("authentication_required", "authentication_required"),
        ("try_again_later", "try_again"),
        ("processing_error", "try_again"),
        ("some_code_stripe_adds_next_year", "card_declined"),
    ];
    for (code, public) in cases {
        let store = Arc::new(InMemoryPaymentStore::new());
        let provider = ScriptedProvider::new();
        let decline = Decline { reason: code.into(), message: format!("Your card was declined ({code}).") };
        provider.script([Ok(ChargeOutcome::Declined { provider_payment_id: Some("pi_x".into()), decline })]);
        let service = PaymentService::new(store.clone(), Arc::new(provider), LeaseConfig::default());
        let charge = ChargeRequest {
            order_id: OrderId::parse(ORDER_ID).unwrap(),
            amount: Money::new(2500, "EUR"),
            payment_method: "pm_card_visa".into(),
        };
        let stored = service.charge(&charge, &CorrelationId::generate()).await.unwrap();
        assert_eq!(stored.decline.as_ref().unwrap().reason, code, "operators keep the provider's code");
        let (status, _, body) = send(&service, fixture("get-payment.json")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["status"], "DECLINED");
        assert_eq!(body["decline"]["reason"], public, "{code}");
        let text = body.to_string();
        assert!(!text.contains(code) || code == public, "{code} leaks in {text}");
        let expected = serde_json::to_value(PublicDeclineReason::of(code)).unwrap();
        assert_eq!(body["decline"]["reason"], expected);
    }
}
