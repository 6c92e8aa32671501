//! The payments outbox relay: the `events/` fixture through the handler, and a charge on moto
//! followed from the table stream to the publisher.

use std::sync::Arc;

use aws_lambda_events::dynamodb::Event;
use local_aws::fixtures::order_id;
use local_aws::{Moto, StreamReader};
use payments::adapters::dynamodb::DynamoDbPaymentStore;
use payments::adapters::memory::ScriptedProvider;
use payments::domain::ChargeRequest;
use payments::events::{PaymentCompleted, PaymentRefunded};
use payments::service::{LeaseConfig, PaymentService};
use shared::aws::outbox::{outbox_only, relay_with};
use shared::aws::publisher::InMemoryPublisher;
use shared_core::{CorrelationId, DomainEvent};

fn fixture() -> Event {
    let path = format!("{}/../../events/payments-outbox-relay/outbox-stream.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).expect("fixture is a DynamoDB stream event")
}

#[tokio::test]
async fn the_fixture_publishes_a_payment_completed_envelope() {
    let publisher = InMemoryPublisher::new();
    let response = relay_with(fixture(), &publisher, &outbox_only).await;
    assert!(response.batch_item_failures.is_empty());
    let published = publisher.published();
    assert_eq!(published.len(), 1);
    assert_eq!(
        (published[0].source.as_str(), published[0].detail_type.as_str()),
        ("shop.payments", "PaymentCompleted")
    );
    let event: DomainEvent<PaymentCompleted> = serde_json::from_str(&published[0].detail).unwrap();
    assert_eq!(event.data.amount.amount_minor, 2500);
}

#[tokio::test]
async fn a_charge_and_its_refund_reach_the_publisher_through_the_stream_in_order() {
    let moto = Moto::start().await.unwrap();
    let table = moto.create_project_table("PaymentsTable", "payments").await.unwrap();
    let mut stream = StreamReader::for_table(&moto, &table).await.unwrap();
    let store = DynamoDbPaymentStore::new(aws_sdk_dynamodb::Client::new(&moto.sdk_config()), &table);
    let service = PaymentService::new(Arc::new(store), Arc::new(ScriptedProvider::new()), LeaseConfig::default());
    let correlation = CorrelationId::generate();
    let request = ChargeRequest {
        order_id: order_id(1),
        amount: shared_core::money::Money::new(1999, "USD"),
        payment_method: "pm_card_visa".into(),
    };
    service.charge(&request, &correlation).await.unwrap();
    service.refund(order_id(1), &correlation).await.unwrap();

    let publisher = InMemoryPublisher::new();
    let response = relay_with(stream.poll_event().await.unwrap(), &publisher, &outbox_only).await;
    assert!(response.batch_item_failures.is_empty());
    let types: Vec<_> = publisher.published().into_iter().map(|e| e.detail_type).collect();
    assert_eq!(types, ["PaymentCompleted", "PaymentRefunded"], "payment records themselves are not published");
    let refunded: DomainEvent<PaymentRefunded> = serde_json::from_str(&publisher.published()[1].detail).unwrap();
    assert_eq!((refunded.correlation_id, refunded.data.amount.amount_minor), (correlation, 1999));
}
