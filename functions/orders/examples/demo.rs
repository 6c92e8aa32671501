//! `make demo`: the orders service end to end on a local AWS, no account and no Docker.
//!
//! Starts moto, creates the orders table (from template.yaml) and an event bus, places an order
//! through the same axum router that runs in Lambda, relays the outbox from the table's stream to
//! the bus, and prints the order and the event that reached the bus (read through a rule with an
//! SQS target, as any consumer would get it).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use http_body_util::BodyExt;
use local_aws::{EventTap, Moto, StreamReader, Template};
use orders::adapters::dynamodb::DynamoDbOrderStore;
use orders::service::OrderService;
use serde_json::{Value, json};
use shared::outbox::relay;
use shared::publisher::EventBridgePublisher;
use tower::ServiceExt;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn step(text: &str) {
    println!("\n==> {text}");
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).expect("JSON values print")
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    step("starting moto (local AWS) on 127.0.0.1");
    let moto = Moto::start().await?;
    println!("    endpoint {}", moto.endpoint());
    let config = moto.sdk_config();

    step("creating the orders table from template.yaml (OrdersTable) and the shop event bus");
    let template = Template::load_project()?;
    let table = moto.create_table(&template.table("OrdersTable")?, "orders").await?;
    let bus = moto.create_bus("shop-local").await?;
    let tap = EventTap::create(&moto, &bus, "demo-all-shop-events", &json!({"source": [{"prefix": "shop."}]})).await?;
    let mut stream = StreamReader::for_table(&moto, &table).await?;

    step("POST /orders through the orders API router (the Lambda handler)");
    let store = DynamoDbOrderStore::new(aws_sdk_dynamodb::Client::new(&config), &table);
    let router = orders::http::router(OrderService::new(Arc::new(store)));
    let body = json!({
        "customer_id": "cust-42",
        "payment_method": "pm_card_visa",
        "items": [{"sku": "SKU-RED-MUG", "quantity": 2}, {"sku": "SKU-BLUE-TEE", "quantity": 1}]
    });
    println!("{}", pretty(&body));
    let request = http::Request::post("/orders")
        .header("content-type", "application/json")
        .header("x-correlation-id", "demo-1")
        .body(Body::from(body.to_string()))?;
    let response = router.oneshot(request).await?;
    let status = response.status();
    let location = response.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or("-").to_owned();
    let order: Value = serde_json::from_slice(&response.into_body().collect().await?.to_bytes())?;
    println!("<== {status}  Location: {location}\n{}", pretty(&order));
    if !status.is_success() {
        return Err(format!("placing the order failed with {status}").into());
    }

    step("relaying the outbox: table stream -> outbox relay -> EventBridge");
    let batch = stream.poll_event().await?;
    let publisher = EventBridgePublisher::new(aws_sdk_eventbridge::Client::new(&config), &bus);
    let result = relay(batch.clone(), &publisher).await;
    println!("    {} stream records, {} batch item failures", batch.records.len(), result.batch_item_failures.len());

    step("the event as it reached the bus (rule `source prefix shop.` -> SQS)");
    let events = tap.receive(1, Duration::from_secs(10)).await?;
    let Some(event) = events.first() else {
        return Err("no event reached the bus".into());
    };
    println!("{}", pretty(event));
    if event["detail"]["aggregate_id"] != order["id"] {
        return Err("the event on the bus is not about the order just placed".into());
    }
    step("done: the order is PENDING and OrderCreated is on the bus (the saga takes it from here)");
    Ok(())
}
