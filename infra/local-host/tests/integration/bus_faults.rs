//! The bus refusing events for a while must not cancel healthy orders. On AWS a throttled
//! PutEvents answers with its entries refused (`ThrottlingException`, retryable:
//! https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_PutEventsResultEntry.html),
//! and Step Functions' optimized putEvents task then fails with `EventBridge.FailedEntry`
//! (https://docs.aws.amazon.com/step-functions/latest/dg/connect-eventbridge.html). The saga's
//! forward tasks retry it before any Catch; the outbox relays retry their batch. The fault is
//! switched on in the emulator (`infra/local-aws/faults.py`), so every caller sees it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use inventory::domain::{Money, ProductSpec, Restock};
use local_host::{Delivery, Host, HostConfig};
use orders::domain::{OrderStatus, PlaceOrderRequest, RequestedItem};
use orders::service::OrderService;
use shared_core::CorrelationId;
use shared_core::OrderId;

const SKU: &str = "SKU-MUG";
const WINDOW: Duration = Duration::from_secs(6);

async fn stack() -> (Host, OrderService) {
    let parameters = [
        ("SagaTaskTimeoutSeconds".to_owned(), "20".to_owned()),
        ("SagaPaymentTimeoutSeconds".to_owned(), "20".to_owned()),
    ];
    let config = HostConfig { http_port: 0, parameters: parameters.into(), ..HostConfig::default() };
    let host = Host::start(config).await.expect("the local system starts (moto is installed by `make setup`)");
    let orders = orders::entrypoints::build_service(&host.sdk, &host.env("OrdersApiFunction")).unwrap();
    let inventory = inventory::entrypoints::build_service(&host.sdk, &host.env("InventoryApiFunction")).unwrap();
    let correlation = CorrelationId::generate();
    let spec = ProductSpec { name: "Mug".into(), price: Money::new(1250, "EUR"), low_stock_threshold: 0 };
    inventory.put_product(SKU, &spec, &correlation).await.unwrap();
    inventory.restock(SKU, &Restock { restock_id: "initial".into(), quantity: 10 }, &correlation).await.unwrap();
    (host, orders)
}

async fn place(orders: &OrderService) -> OrderId {
    let request = PlaceOrderRequest {
        customer_id: "cust-1".into(),
        payment_method: "pm_card_visa".into(),
        items: vec![RequestedItem { sku: SKU.into(), quantity: 1 }],
    };
    orders.place_order(request, &CorrelationId::generate(), None).await.unwrap().order.id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_placed_while_the_bus_refuses_events_end_confirmed() {
    let (host, orders) = stack().await;

    // The first order's saga is between steps when the bus starts refusing: its ReserveInventory
    // command was delivered, so the next putEvents (ProcessPayment's) is refused.
    let switched = Arc::new(AtomicBool::new(false));
    let endpoint = host.moto.endpoint().to_owned();
    let flag = switched.clone();
    host.intercept(move |command| {
        if command == "ReserveInventory" && !flag.swap(true, Ordering::SeqCst) {
            let url = format!("{endpoint}/_local/faults");
            let body = serde_json::json!({"put_events": {"seconds": WINDOW.as_secs_f64(), "error_code": "ThrottlingException"}});
            tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current().block_on(async {
                    let response = reqwest::Client::new().post(&url).json(&body).send().await.expect("fault switch");
                    assert!(response.status().is_success(), "the emulator takes the fault: {response:?}");
                })
            });
        }
        Delivery::Handle
    });
    let first = place(&orders).await;
    tokio::time::timeout(Duration::from_secs(30), async {
        while !switched.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the first saga reached ReserveInventory");

    // Orders placed inside the window: their OrderCreated cannot be published yet either.
    let during = [place(&orders).await, place(&orders).await];
    let faults = host.moto.bus_faults().await.unwrap();
    assert!(faults.put_events.remaining_seconds > 0.0, "still inside the window: {faults:?}");

    for order_id in std::iter::once(&first).chain(&during) {
        let id = &order_id.to_string();
        let status = host.wait_for_saga(id, Duration::from_secs(120)).await.unwrap();
        assert_eq!(status, "SUCCEEDED", "order {id}");
        let order = orders.get_order(*order_id).await.unwrap();
        assert_eq!(order.status, OrderStatus::Confirmed, "order {id} was not cancelled for a bus fault");
        assert_eq!(
            host.states_entered(id).await.unwrap(),
            ["ReserveInventory", "ProcessPayment", "ConfirmOrder"],
            "a retried task is the same state: three transitions, as a happy order"
        );
    }
    let failures = host.task_failures(&first.to_string()).await.unwrap();
    assert!(
        !failures.is_empty() && failures.iter().all(|e| e == "EventBridge.FailedEntry"),
        "the first saga's putEvents was refused and retried: {failures:?}"
    );
    let faults = host.moto.bus_faults().await.unwrap();
    assert!(faults.refused_entries >= 3, "the relays were refused too: {faults:?}");
}
