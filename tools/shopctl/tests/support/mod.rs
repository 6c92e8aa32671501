//! A local system for each test, and `shopctl` run against it as an operator would run it:
//! the built binary, `--local --stack <the host's stack>`, the emulator from `AWS_ENDPOINT_URL`.

use std::time::{Duration, Instant};

use local_aws::EventTap;
use local_host::{Host, HostConfig, Physical};
use serde_json::Value;
use shared_core::CorrelationId;

pub async fn host() -> Host {
    Host::start(HostConfig { http_port: 0, ..HostConfig::default() })
        .await
        .expect("the local system starts (moto is installed by `make setup`)")
}

/// What `shopctl --json ...` printed: its exit code and one JSON document per line.
pub struct Run {
    pub code: i32,
    pub documents: Vec<Value>,
    pub stderr: String,
}

pub async fn shopctl(host: &Host, args: &[&str]) -> Run {
    let stack_args = ["--local", "--stack", host.stack()];
    shopctl_at(host.moto.endpoint(), &stack_args.iter().chain(args).copied().collect::<Vec<_>>()).await
}

/// `shopctl --json <args>` against the emulator at `endpoint`.
pub async fn shopctl_at(endpoint: &str, args: &[&str]) -> Run {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_shopctl"))
        .arg("--json")
        .args(args)
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .output()
        .await
        .expect("shopctl runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let documents = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}\nstderr: {stderr}")))
        .collect();
    Run { code: output.status.code().unwrap_or(-1), documents, stderr }
}

pub fn queue_url(host: &Host, logical_id: &str) -> String {
    match host.resolver.physical(logical_id) {
        Ok(Physical::Queue { url, .. }) => url.clone(),
        other => panic!("{logical_id} is not a queue: {other:?}"),
    }
}

pub fn bus(host: &Host) -> String {
    match host.resolver.physical("ShopEventBus") {
        Ok(Physical::Bus { name }) => name.clone(),
        other => panic!("ShopEventBus is not a bus: {other:?}"),
    }
}

/// A queue subscribed to the stack's bus with `pattern`.
pub async fn tap(host: &Host, pattern: Value) -> EventTap {
    EventTap::create(&host.moto, &bus(host), &local_aws::unique_name("shopctl-tap"), &pattern).await.unwrap()
}

pub fn sqs(host: &Host) -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(&host.sdk)
}

/// Messages in a queue, visible or not.
pub async fn depth(host: &Host, logical_id: &str) -> usize {
    use aws_sdk_sqs::types::QueueAttributeName::{ApproximateNumberOfMessages, ApproximateNumberOfMessagesNotVisible};
    let attributes = sqs(host)
        .get_queue_attributes()
        .queue_url(queue_url(host, logical_id))
        .attribute_names(ApproximateNumberOfMessages)
        .attribute_names(ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .unwrap();
    let attributes = attributes.attributes().unwrap();
    let count = |name| attributes.get(&name).and_then(|n: &String| n.parse::<usize>().ok()).unwrap_or(0);
    count(ApproximateNumberOfMessages) + count(ApproximateNumberOfMessagesNotVisible)
}

/// Places an order in-process, through the orders service the API function runs.
pub async fn place_order(host: &Host) -> String {
    let orders = orders::entrypoints::build_service(&host.sdk, &host.env("OrdersApiFunction")).unwrap();
    let request = orders::domain::PlaceOrderRequest {
        customer_id: "cust-operator".into(),
        payment_method: "pm_card_visa".into(),
        items: vec![orders::domain::RequestedItem { sku: "SKU-NONE".into(), quantity: 1 }],
    };
    orders.place_order(request, &CorrelationId::generate(), None).await.unwrap().order.id.to_string()
}

/// Waits until `queue` holds at least one message.
pub async fn until_dead_lettered(host: &Host, logical_id: &str, within: Duration) {
    let deadline = Instant::now() + within;
    while depth(host, logical_id).await == 0 {
        assert!(Instant::now() < deadline, "nothing reached {logical_id} within {within:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Makes the emulator's EventBridge refuse every PutEvents until the orders relay gives a batch
/// up (its retries spent, the batch's metadata in its DLQ), then lets events through again.
pub async fn fail_an_orders_relay_batch(host: &Host) -> String {
    host.moto.refuse_put_events(Duration::from_secs(60), "InternalFailure").await.unwrap();
    let order_id = place_order(host).await;
    until_dead_lettered(host, "OrdersOutboxRelayDLQ", Duration::from_secs(90)).await;
    host.moto.refuse_put_events(Duration::ZERO, "InternalFailure").await.unwrap();
    order_id
}

/// The `event_id` in an event's envelope.
pub fn event_id(event: &Value) -> String {
    event["detail"]["event_id"].as_str().unwrap_or_default().to_owned()
}
