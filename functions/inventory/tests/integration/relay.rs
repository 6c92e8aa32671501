//! The inventory relay: the fixture through an in-memory bus, and StockLow end to end on moto.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::dynamodb::Event;
use inventory::adapters::dynamodb::DynamoDbInventoryStore;
use inventory::domain::{Money, ProductSpec, RequestedLine, Restock};
use inventory::relay::relay;
use inventory::service::InventoryService;
use local_aws::fixtures::order_id;
use local_aws::{EventTap, Moto, StreamReader, unique_name};
use serde_json::{Value, json};
use shared::aws::publisher::{EventBridgePublisher, InMemoryPublisher};
use shared_core::CorrelationId;

fn fixture() -> Event {
    let path = format!("{}/../../events/inventory-outbox-relay/stream.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).expect("fixture is a DynamoDB stream event")
}

fn details(publisher: &InMemoryPublisher) -> Vec<Value> {
    publisher.published().iter().map(|e| serde_json::from_str(&e.detail).unwrap()).collect()
}

#[tokio::test]
async fn the_fixture_yields_stock_low_then_the_outbox_event_in_stream_order() {
    let publisher = InMemoryPublisher::new();
    let response = relay(fixture(), &publisher).await;
    assert!(response.batch_item_failures.is_empty());
    let published = details(&publisher);
    assert_eq!(published.len(), 2);
    assert_eq!(published[0]["event_type"], "StockLow");
    assert_eq!(published[0]["data"], json!({"sku": "SKU-RED-MUG", "available": 4, "threshold": 5}));
    assert_eq!(published[0]["correlation_id"], "demo-correlation-1");
    assert_eq!(published[1]["event_type"], "InventoryReserved");
    assert_eq!(publisher.published()[0].source, "shop.inventory");

    // A retried batch publishes StockLow under the same id.
    let again = InMemoryPublisher::new();
    relay(fixture(), &again).await;
    assert_eq!(details(&again)[0]["event_id"], published[0]["event_id"]);
}

#[tokio::test]
async fn changes_that_do_not_cross_the_threshold_publish_nothing() {
    let mut value = serde_json::to_value(fixture()).unwrap();
    // 6 -> 5 with threshold 5: still at the threshold, not below it.
    value["Records"][0]["dynamodb"]["NewImage"]["available"] = json!({"N": "5"});
    value["Records"].as_array_mut().unwrap().truncate(1);
    let publisher = InMemoryPublisher::new();
    relay(serde_json::from_value(value).unwrap(), &publisher).await;
    assert!(publisher.published().is_empty());
}

#[tokio::test]
async fn concurrent_reservations_crossing_the_threshold_publish_stock_low_once() {
    let moto = Moto::start().await.unwrap();
    let config = moto.sdk_config();
    let table = moto.create_project_table("InventoryTable", "inventory").await.unwrap();
    let bus = moto.create_bus(&unique_name("shop")).await.unwrap();
    let pattern = json!({"source": ["shop.inventory"]});
    let tap = EventTap::create(&moto, &bus, &unique_name("inventory-events"), &pattern).await.unwrap();
    let mut stream = StreamReader::for_table(&moto, &table).await.unwrap();

    let service =
        InventoryService::new(Arc::new(DynamoDbInventoryStore::new(aws_sdk_dynamodb::Client::new(&config), &table)));
    let correlation = CorrelationId::generate();
    let spec = ProductSpec {
        name: "Mug".into(),
        price: Money { amount_minor: 900, currency: "EUR".into() },
        low_stock_threshold: 8,
    };
    service.put_product("MUG", &spec, &correlation).await.unwrap();
    service.restock("MUG", &Restock { restock_id: "r1".into(), quantity: 10 }, &correlation).await.unwrap();
    let reservations: Vec<_> = (0..5)
        .map(|i| {
            let service = service.clone();
            tokio::spawn(async move {
                let lines = [RequestedLine { sku: "MUG".into(), quantity: 1 }];
                service.reserve(order_id(i), &lines, &CorrelationId::generate()).await.unwrap()
            })
        })
        .collect();
    for reservation in reservations {
        reservation.await.unwrap();
    }
    let publisher = EventBridgePublisher::new(aws_sdk_eventbridge::Client::new(&config), &bus);
    let batch = stream.poll_event().await.unwrap();
    assert!(relay(batch, &publisher).await.batch_item_failures.is_empty());
    let events = tap.receive(7, Duration::from_secs(4)).await.unwrap();
    let types: Vec<&str> = events.iter().map(|e| e["detail-type"].as_str().unwrap()).collect();
    assert_eq!(types.iter().filter(|t| **t == "InventoryReserved").count(), 5, "{types:?}");
    let lows: Vec<&Value> = events.iter().filter(|e| e["detail-type"] == "StockLow").collect();
    assert_eq!(lows.len(), 1, "10 -> 5 crosses 8 once: {types:?}");
    assert_eq!(lows[0]["detail"]["data"]["available"], 7);
}
