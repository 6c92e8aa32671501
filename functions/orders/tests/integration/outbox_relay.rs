//! The outbox relay: on the `events/` fixture with an in-memory bus, and end to end on moto
//! (order written -> table stream -> relay -> EventBridge -> rule -> SQS).

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::dynamodb::Event;
use local_aws::{EventTap, Moto, StreamReader, unique_name};
use orders::adapters::dynamodb::DynamoDbOrderStore;
use orders::domain::{PlaceOrderRequest, RequestedItem};
use orders::service::OrderService;
use serde_json::{Value, json};
use shared::aws::outbox::relay;
use shared::aws::publisher::{EventBridgePublisher, InMemoryPublisher};

fn fixture() -> Event {
    let path = format!("{}/../../events/orders-outbox-relay/outbox-stream.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).expect("fixture is a DynamoDB stream event")
}

fn failed_ids(response: &aws_lambda_events::streams::DynamoDbEventResponse) -> Vec<String> {
    response.batch_item_failures.iter().map(|f| f.item_identifier.clone().unwrap()).collect()
}

#[tokio::test]
async fn the_fixture_record_is_published_with_its_envelope_unchanged() {
    let event = fixture();
    let publisher = InMemoryPublisher::new();
    let response = relay(event.clone(), &publisher).await;
    assert!(response.batch_item_failures.is_empty());
    let published = publisher.published();
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].source, "shop.orders");
    assert_eq!(published[0].detail_type, "OrderCreated");
    let detail: Value = serde_json::from_str(&published[0].detail).unwrap();
    assert_eq!(detail["event_id"], "0193a3c2-6000-7000-8000-0000000e0001");
    // The envelope in the fixture is a valid OrderCreated.
    let _: shared_core::DomainEvent<orders::events::OrderCreated> = serde_json::from_value(detail).unwrap();
}

/// A batch of five outbox records with sequence numbers 1..=5, plus an order record in the middle.
fn batch() -> Event {
    let template = serde_json::to_value(fixture()).unwrap()["Records"][0].clone();
    let mut records = Vec::new();
    for n in 1..=5 {
        let mut record = template.clone();
        record["dynamodb"]["SequenceNumber"] = json!(n.to_string());
        record["dynamodb"]["NewImage"]["detail"]["S"] = json!(format!("{{\"n\":{n}}}"));
        records.push(record);
        if n == 2 {
            let mut order = template.clone();
            order["dynamodb"]["SequenceNumber"] = json!("2b");
            order["dynamodb"]["NewImage"] =
                json!({"pk": {"S": "ORDER#x"}, "sk": {"S": "ORDER"}, "entity": {"S": "ORDER"}});
            records.push(order);
        }
    }
    serde_json::from_value(json!({"Records": records})).unwrap()
}

#[tokio::test]
async fn a_failed_publish_reports_that_record_and_every_later_one() {
    let publisher = InMemoryPublisher::new();
    publisher.reject_when(|e| e.detail == "{\"n\":4}");
    let response = relay(batch(), &publisher).await;
    assert_eq!(failed_ids(&response), ["4", "5"]);
    assert_eq!(publisher.published().len(), 3, "records before the failure went out");

    // Lambda retries from the first failure; now it goes through.
    publisher.accept_all();
    let retry: Event = {
        let mut value = serde_json::to_value(batch()).unwrap();
        let records = value["Records"].as_array_mut().unwrap();
        records.drain(..4);
        serde_json::from_value(value).unwrap()
    };
    assert!(relay(retry, &publisher).await.batch_item_failures.is_empty());
    let details: Vec<_> = publisher.published().into_iter().map(|e| e.detail).collect();
    assert_eq!(details, ["{\"n\":1}", "{\"n\":2}", "{\"n\":3}", "{\"n\":4}", "{\"n\":5}"]);
}

#[tokio::test]
async fn an_unreadable_outbox_record_is_reported_not_dropped() {
    let mut value = serde_json::to_value(batch()).unwrap();
    value["Records"][1]["dynamodb"]["NewImage"]["detail"] = json!({"N": "1"});
    let event: Event = serde_json::from_value(value).unwrap();
    let publisher = InMemoryPublisher::new();
    let response = relay(event, &publisher).await;
    assert_eq!(failed_ids(&response), ["2", "2b", "3", "4", "5"]);
    let details: Vec<_> = publisher.published().into_iter().map(|e| e.detail).collect();
    assert_eq!(details, ["{\"n\":1}"], "what precedes it goes out; nothing after it does, so order is kept");
}

#[tokio::test]
async fn an_order_placed_reaches_the_bus_through_the_stream_and_a_retry_keeps_its_event_id() {
    let moto = Moto::start().await.unwrap();
    let config = moto.sdk_config();
    let table = moto.create_project_table("OrdersTable", "orders").await.unwrap();
    let bus = moto.create_bus(&unique_name("shop")).await.unwrap();
    let pattern = json!({"source": ["shop.orders"], "detail-type": ["OrderCreated"]});
    let tap = EventTap::create(&moto, &bus, &unique_name("order-created"), &pattern).await.unwrap();
    let mut stream = StreamReader::for_table(&moto, &table).await.unwrap();

    let store = DynamoDbOrderStore::new(aws_sdk_dynamodb::Client::new(&config), &table);
    let request = PlaceOrderRequest {
        customer_id: "cust-7".into(),
        payment_method: "pm_card_visa".into(),
        items: vec![RequestedItem { sku: "SKU-1".into(), quantity: 2 }],
    };
    let correlation = shared_core::CorrelationId::generate();
    let placed = OrderService::new(Arc::new(store)).place_order(request, &correlation, None).await.unwrap();

    // Nothing is published yet: a crash here loses nothing, the record waits in the stream.
    assert!(tap.receive(1, Duration::from_millis(1500)).await.unwrap().is_empty());

    let batch = stream.poll_event().await.unwrap();
    assert_eq!(batch.records.len(), 2, "the order and its outbox record");
    let publisher = EventBridgePublisher::new(aws_sdk_eventbridge::Client::new(&config), &bus);
    assert!(relay(batch.clone(), &publisher).await.batch_item_failures.is_empty());
    let delivered = tap.receive(1, Duration::from_secs(5)).await.unwrap();
    assert_eq!(delivered.len(), 1);
    let detail = &delivered[0]["detail"];
    assert_eq!(detail["event_type"], "OrderCreated");
    assert_eq!(detail["aggregate_id"], placed.order.id.to_string());
    assert_eq!(detail["correlation_id"], correlation.as_str());
    assert_eq!(detail["data"]["lines"], json!([{"sku": "SKU-1", "quantity": 2}]));

    // Lambda may deliver the same batch again: the event goes out again with the same id.
    assert!(relay(batch, &publisher).await.batch_item_failures.is_empty());
    let again = tap.receive(1, Duration::from_secs(5)).await.unwrap();
    assert_eq!(again[0]["detail"]["event_id"], detail["event_id"]);

    // A bus that does not exist: the outbox record is reported for retry, not lost.
    let missing = EventBridgePublisher::new(aws_sdk_eventbridge::Client::new(&config), "no-such-bus")
        .with_entry_retries(1, Duration::from_millis(1));
    store_more_and_relay_to(&moto, &table, &mut stream, &missing).await;
}

async fn store_more_and_relay_to(
    moto: &Moto,
    table: &str,
    stream: &mut StreamReader,
    publisher: &EventBridgePublisher,
) {
    let store = DynamoDbOrderStore::new(aws_sdk_dynamodb::Client::new(&moto.sdk_config()), table);
    let request = PlaceOrderRequest {
        customer_id: "cust-8".into(),
        payment_method: "pm_card_visa".into(),
        items: vec![RequestedItem { sku: "SKU-2".into(), quantity: 1 }],
    };
    OrderService::new(Arc::new(store))
        .place_order(request, &shared_core::CorrelationId::generate(), None)
        .await
        .unwrap();
    let batch = stream.poll_event().await.unwrap();
    let outbox_sequence = batch
        .records
        .iter()
        .find(|r| r.change.new_image.get("entity") == Some(&serde_dynamo::AttributeValue::S("OUTBOX".into())))
        .and_then(|r| r.change.sequence_number.clone())
        .unwrap();
    let response = relay(batch, publisher).await;
    assert!(failed_ids(&response).contains(&outbox_sequence), "{response:?}");
}
