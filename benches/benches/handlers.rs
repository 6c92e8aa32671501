//! What a request costs in the handlers themselves: each service's router or handler driven
//! in-process with the in-memory adapters, no network (the gateway's downstreams are the
//! services' real routers on in-memory stores, reached through `Transport::in_process`).
//!
//! `cargo bench -p resilience-bench --bench handlers` (criterion), or with
//! `HANDLERS_CALLGRIND=<scenario>:<requests>` one scenario run that many times and nothing else,
//! for `benches/handlers_report.py` (instructions per request under valgrind's callgrind).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_lambda_events::dynamodb::Event as StreamEvent;
use aws_lambda_events::eventbridge::EventBridgeEvent;
use axum::body::Body;
use criterion::{Criterion, criterion_group};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use lambda_http::RequestExt;
use serde_json::{Value, json};
use shared::aws::publisher::{EventPublisher, PublishError};
use shared::aws::saga::{CommandHandler, ReportError, TaskOutcome, TaskReporter};
use shared::resilience::{ServiceClient, Transport};
use shared_core::envelope::EventEntry;
use tower::ServiceExt;

const CUSTOMER: &str = "cust-42";

fn fixture(binary: &str, name: &str) -> Value {
    let path = format!("{}/../events/{binary}/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Sends `request` through `router` and reads the whole answer, as the Lambda adapter does.
async fn send(router: &axum::Router, request: Request<Body>) -> (StatusCode, bytes::Bytes) {
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    (status, response.into_body().collect().await.unwrap().to_bytes())
}

fn get(uri: &str) -> Request<Body> {
    Request::builder().uri(uri).header("x-correlation-id", "bench-correlation").body(Body::empty()).unwrap()
}

/// Answers every task token and keeps nothing (a reporter that kept answers would grow).
struct Discard;

#[async_trait]
impl TaskReporter for Discard {
    async fn report(&self, _: &str, outcome: &TaskOutcome) -> Result<(), ReportError> {
        assert!(matches!(outcome, TaskOutcome::Success(_)), "the step failed: {outcome:?}");
        Ok(())
    }
}

/// A bus that accepts every entry and keeps a count.
#[derive(Default)]
struct CountingBus(AtomicU64);

#[async_trait]
impl EventPublisher for CountingBus {
    async fn publish(&self, entries: &[EventEntry]) -> Result<(), PublishError> {
        self.0.fetch_add(entries.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}

/// What one request is handed, as the Lambda runtime hands it to the function: an HTTP request
/// (lambda_http has decoded the event), a saga command, a stream batch. Made before the clock
/// starts: decoding the event is the runtime's work, not the handler's.
enum Input {
    Http(Request<Body>),
    Command(EventBridgeEvent<Value>),
    Stream(StreamEvent),
}

/// One request of a scenario: `run(input(n))` does the n-th request (state that grows, such as
/// a store of placed orders, is set up again for each criterion sample).
#[async_trait]
trait Scenario: Send + Sync {
    fn input(&self, n: u64) -> Input;
    async fn run(&self, input: Input);
}

/// The router and the fixture's order as a client sends it (read and encoded once).
struct OrdersPlace(axum::Router, bytes::Bytes);
struct OrdersGet(axum::Router, String);
/// A saga worker on its in-memory adapters, its command fixture, and its service (whose router
/// the gateway scenario reads).
struct SagaStep<W, S>(Arc<W>, Value, S);
type InventoryReserve = SagaStep<inventory::saga::InventorySagaWorker, inventory::service::InventoryService>;
type PaymentsCharge = SagaStep<payments::saga::PaymentsSagaWorker, payments::service::PaymentService>;
/// The router, the order's path, and its caller as API Gateway's JWT authorizer describes it
/// (made once: lambda_http builds it from the event before the router runs, as it builds every
/// other scenario's request).
struct GatewayOrderView(axum::Router, String, lambda_http::request::RequestContext);
struct OutboxRelay(Arc<CountingBus>, StreamEvent);

fn place_order_body() -> Value {
    serde_json::from_str(fixture("orders-api", "place-order.json")["body"].as_str().unwrap()).unwrap()
}

fn orders_router() -> (axum::Router, orders::service::OrderService) {
    let service = orders::service::OrderService::new(Arc::new(orders::adapters::memory::InMemoryOrderStore::new()));
    (orders::http::router(service.clone()), service)
}

async fn placed_order(service: &orders::service::OrderService) -> String {
    let request: orders::domain::PlaceOrderRequest = serde_json::from_value(place_order_body()).unwrap();
    let placed = service.place_order(request, &shared_core::CorrelationId::generate(), None).await.unwrap();
    placed.order.id.to_string()
}

#[async_trait]
impl Scenario for OrdersPlace {
    fn input(&self, _: u64) -> Input {
        Input::Http(
            Request::post("/orders")
                .header("content-type", "application/json")
                .header("x-correlation-id", "bench-correlation")
                .body(Body::from(self.1.clone()))
                .unwrap(),
        )
    }

    async fn run(&self, input: Input) {
        answered(&self.0, input, StatusCode::CREATED).await;
    }
}

#[async_trait]
impl Scenario for OrdersGet {
    fn input(&self, _: u64) -> Input {
        Input::Http(get(&self.1))
    }

    async fn run(&self, input: Input) {
        answered(&self.0, input, StatusCode::OK).await;
    }
}

/// Sends an HTTP scenario's request and checks the answer's status.
async fn answered(router: &axum::Router, input: Input, expected: StatusCode) {
    let Input::Http(request) = input else { unreachable!("an HTTP scenario") };
    let (status, body) = send(router, request).await;
    assert_eq!(status, expected, "{}", String::from_utf8_lossy(&body));
}

/// A saga command (an EventBridge event) from a fixture, for order `order_id`.
fn command(template: &Value, order_id: &str) -> EventBridgeEvent<Value> {
    let mut event = template.clone();
    event["detail"]["aggregate_id"] = json!(order_id);
    event["detail"]["data"]["order_id"] = json!(order_id);
    serde_json::from_value(event).unwrap()
}

#[async_trait]
impl<W: CommandHandler + 'static, S: Send + Sync> Scenario for SagaStep<W, S> {
    /// The command for order `n`.
    fn input(&self, n: u64) -> Input {
        Input::Command(command(&self.1, &format!("0193a3c2-5f00-7000-8000-{n:012x}")))
    }

    async fn run(&self, input: Input) {
        let Input::Command(command) = input else { unreachable!("a saga command scenario") };
        shared::aws::saga::dispatch(command, self.0.as_ref(), &Discard).await.unwrap();
    }
}

#[async_trait]
impl Scenario for GatewayOrderView {
    fn input(&self, _: u64) -> Input {
        Input::Http(get(&self.1).with_request_context(self.2.clone()))
    }

    async fn run(&self, input: Input) {
        answered(&self.0, input, StatusCode::OK).await;
    }
}

#[async_trait]
impl Scenario for OutboxRelay {
    fn input(&self, _: u64) -> Input {
        Input::Stream(self.1.clone())
    }

    async fn run(&self, input: Input) {
        let Input::Stream(batch) = input else { unreachable!("a stream scenario") };
        let response = shared::aws::outbox::relay_with(batch, self.0.as_ref(), &shared::aws::outbox::outbox_only).await;
        assert!(response.batch_item_failures.is_empty());
    }
}

async fn inventory_reserve() -> InventoryReserve {
    use inventory::domain::{ProductSpec, Restock};
    let store = Arc::new(inventory::adapters::memory::InMemoryInventoryStore::new());
    let service = inventory::service::InventoryService::new(store);
    let correlation = shared_core::CorrelationId::generate();
    let spec = ProductSpec {
        name: "Red mug".into(),
        price: shared_core::money::Money::new(1250, "EUR"),
        low_stock_threshold: 0,
    };
    service.put_product("SKU-RED-MUG", &spec, &correlation).await.unwrap();
    for round in 0..20 {
        let restock = Restock { restock_id: format!("bench-{round}"), quantity: inventory::domain::MAX_RESTOCK };
        service.restock("SKU-RED-MUG", &restock, &correlation).await.unwrap();
    }
    let worker = inventory::saga::InventorySagaWorker::new(service.clone());
    SagaStep(Arc::new(worker), fixture("inventory-saga-worker", "reserve-inventory.json"), service)
}

fn payments_charge() -> PaymentsCharge {
    let service = payments::service::PaymentService::new(
        Arc::new(payments::adapters::memory::InMemoryPaymentStore::new()),
        Arc::new(payments::adapters::memory::ScriptedProvider::new()),
        payments::service::LeaseConfig::default(),
    );
    SagaStep(
        Arc::new(payments::saga::PaymentsSagaWorker::new(service.clone())),
        fixture("payments-saga-worker", "process-payment.json"),
        service,
    )
}

/// The gateway with its three downstreams: the services' own routers on in-memory stores, in
/// this process, holding one order with its reservation and payment. The gateway's clients are
/// the production ones (policy, headers, URL) sending through the routers instead of a socket.
async fn gateway_order_view() -> GatewayOrderView {
    let (orders_api, orders) = orders_router();
    let order_id = placed_order(&orders).await;
    let reserve = inventory_reserve().await;
    shared::aws::saga::dispatch(command(&reserve.1, &order_id), reserve.0.as_ref(), &Discard).await.unwrap();
    let inventory_api = inventory::http::router(reserve.2.clone());
    let charge = payments_charge();
    shared::aws::saga::dispatch(command(&charge.1, &order_id), charge.0.as_ref(), &Discard).await.unwrap();
    let payments_api = payments::http::router(charge.2.clone());
    let vars: HashMap<String, String> = ["ORDERS", "INVENTORY", "PAYMENTS"]
        .into_iter()
        .map(|prefix| (format!("{prefix}_BASE_URL"), format!("https://{}.internal", prefix.to_ascii_lowercase())))
        .collect();
    let mut upstreams =
        gateway::upstream::Upstreams::from_lookup(&move |name: &str| vars.get(name).cloned(), None).unwrap();
    let through = |client: ServiceClient, router: axum::Router| client.through(Transport::in_process(router));
    upstreams.orders = through(upstreams.orders, orders_api);
    upstreams.inventory = through(upstreams.inventory, inventory_api);
    upstreams.payments = through(upstreams.payments, payments_api);
    let path = format!("/api/orders/{order_id}");
    let claims = json!({ "sub": CUSTOMER }).as_object().cloned().unwrap();
    let caller = gateway::caller::jwt_request_context("GET", &path, &claims);
    GatewayOrderView(gateway::http::router(upstreams, None), path, caller)
}

/// A stream batch of ten outbox records (the fixture's record, ten sequence numbers).
fn outbox_relay() -> OutboxRelay {
    let template = fixture("orders-outbox-relay", "outbox-stream.json")["Records"][0].clone();
    let records: Vec<Value> = (1..=10)
        .map(|n| {
            let mut record = template.clone();
            record["dynamodb"]["SequenceNumber"] = json!(n.to_string());
            record
        })
        .collect();
    OutboxRelay(Arc::new(CountingBus::default()), serde_json::from_value(json!({ "Records": records })).unwrap())
}

const SCENARIOS: [&str; 6] = [
    "orders_place_order",
    "orders_get_order",
    "inventory_reserve_stock",
    "payments_charge",
    "gateway_order_view",
    "outbox_relay_batch_of_10",
];

/// A scenario with fresh state.
async fn setup(name: &str) -> Box<dyn Scenario> {
    match name {
        "orders_place_order" => Box::new(OrdersPlace(orders_router().0, place_order_body().to_string().into())),
        "orders_get_order" => {
            let (router, service) = orders_router();
            let id = placed_order(&service).await;
            Box::new(OrdersGet(router, format!("/orders/{id}?customer_id={CUSTOMER}")))
        }
        "inventory_reserve_stock" => Box::new(inventory_reserve().await),
        "payments_charge" => Box::new(payments_charge()),
        "gateway_order_view" => Box::new(gateway_order_view().await),
        "outbox_relay_batch_of_10" => Box::new(outbox_relay()),
        other => panic!("no scenario {other}; there are {SCENARIOS:?}"),
    }
}

/// `requests` requests of a fresh scenario, after one untimed request (first-use work such as
/// the HTTP client's construction is not a request's cost).
/// A scenario with fresh state after one untimed request (first-use work is not counted), and
/// the inputs of `requests` more.
async fn prepared(name: &str, requests: u64) -> (Box<dyn Scenario>, Vec<Input>) {
    let scenario = setup(name).await;
    scenario.run(scenario.input(u64::MAX)).await;
    let inputs = (0..requests).map(|n| scenario.input(n)).collect();
    (scenario, inputs)
}

async fn run_all(scenario: &dyn Scenario, inputs: Vec<Input>) {
    for input in inputs {
        scenario.run(input).await;
    }
}

async fn timed(name: &str, requests: u64) -> Duration {
    let (scenario, inputs) = prepared(name, requests).await;
    let started = Instant::now();
    run_all(scenario.as_ref(), inputs).await;
    started.elapsed()
}

/// The requests alone, in a function of their own: `handlers_report.py` has callgrind count
/// only what runs inside it (`--toggle-collect`).
#[inline(never)]
fn measured_requests(runtime: &tokio::runtime::Runtime, scenario: &dyn Scenario, inputs: Vec<Input>) {
    runtime.block_on(run_all(scenario, inputs));
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn handlers(c: &mut Criterion) {
    let runtime = runtime();
    let mut group = c.benchmark_group("handlers");
    for name in SCENARIOS {
        group.bench_function(name, |b| b.to_async(&runtime).iter_custom(|requests| timed(name, requests)));
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5));
    targets = handlers
}

fn main() {
    if let Ok(spec) = std::env::var("HANDLERS_CALLGRIND") {
        let (name, requests) = spec.split_once(':').expect("HANDLERS_CALLGRIND=<scenario>:<requests>");
        let requests: u64 = requests.parse().expect("a number of requests");
        let runtime = runtime();
        let (scenario, inputs) = runtime.block_on(prepared(name, requests));
        let started = Instant::now();
        measured_requests(&runtime, scenario.as_ref(), inputs);
        eprintln!("{name}: {requests} requests in {:?}", started.elapsed());
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
