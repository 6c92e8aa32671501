//! Parking and sweeping with the in-memory adapters: an order whose compensation could not finish
//! is parked `COMPENSATION_PENDING` with the reason by `ParkOrder`, and the sweeper retries it
//! with backoff (each attempt claimed once and started under its own name), adopts an order left
//! pending after its saga ended, and answers an operator's retry. The local-host tests run the
//! same code on moto with the state machines (infra/local-host/tests/integration/saga.rs).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use local_aws::fixtures;
use orders::adapters::memory::{InMemoryCompensations, InMemoryOrderStore};
use orders::domain::{Order, OrderStatus, PlaceOrderRequest, RequestedItem};
use orders::parking::{Backoff, Owed, Queue, SHARDS, sweep_key};
use orders::ports::OrderStore;
use orders::saga::OrdersSagaWorker;
use orders::service::OrderService;
use orders::sweeper::{SagaRun, SweepIndex, Sweeper, SweeperInput};
use serde_json::json;
use shared::aws::saga::{InMemoryTaskReporter, TaskOutcome, dispatch};
use shared_core::CorrelationId;
use shared_core::OrderId;

use local_aws::fixtures::ORDER_ID;

use crate::support::event_types;
const MINUTE: Duration = Duration::from_secs(60);

fn request() -> PlaceOrderRequest {
    PlaceOrderRequest {
        customer_id: "cust-42".into(),
        payment_method: "pm_card_visa".into(),
        items: vec![RequestedItem { sku: "SKU-RED-MUG".into(), quantity: 2 }],
    }
}

async fn pending_order(store: &InMemoryOrderStore, id: &str, created: DateTime<Utc>) -> Order {
    let mut order = Order::place(request().validate().unwrap(), created);
    order.id = OrderId::parse(id).unwrap();
    store.create(&order, &[], None).await.unwrap();
    order
}

fn id() -> OrderId {
    OrderId::parse(ORDER_ID).unwrap()
}

struct World {
    store: Arc<InMemoryOrderStore>,
    sfn: Arc<InMemoryCompensations>,
    sweeper: Sweeper,
    worker: OrdersSagaWorker,
}

fn world() -> World {
    let store = Arc::new(InMemoryOrderStore::new());
    let sfn = Arc::new(InMemoryCompensations::new());
    let sweeper = Sweeper::new(store.clone(), store.clone(), sfn.clone());
    let worker = OrdersSagaWorker::new(OrderService::new(store.clone()));
    World { store, sfn, sweeper, worker }
}

async fn park_with_fixture(w: &World) -> TaskOutcome {
    let event = fixtures::eventbridge("orders-saga-worker", "park-order.json").unwrap();
    dispatch(event, &w.worker, &InMemoryTaskReporter::new()).await.unwrap()
}

#[test]
fn the_backoff_starts_at_fifteen_minutes_and_doubles_to_a_day() {
    let backoff = Backoff::default();
    let waits: Vec<u64> = (1..=9).map(|n| backoff.after(n).as_secs() / 60).collect();
    assert_eq!(waits, [15, 30, 60, 120, 240, 480, 960, 1440, 1440]);
    assert_eq!(backoff.after(1000), Duration::from_secs(86400), "no overflow, ever");
    let env = |name: &str| (name == "COMPENSATION_RETRY_FIRST_SECONDS").then(|| "2".to_owned());
    let short = Backoff::from_lookup(&env).unwrap();
    assert_eq!((short.after(1), short.after(3)), (Duration::from_secs(2), Duration::from_secs(8)));
}

#[tokio::test]
async fn park_order_parks_a_pending_order_with_the_reason_once_and_answers_each_time() {
    let w = world();
    let before = Utc::now();
    pending_order(&w.store, ORDER_ID, before).await;
    for _ in 0..2 {
        let outcome = park_with_fixture(&w).await;
        assert_eq!(outcome, TaskOutcome::Success(json!({"status": "COMPENSATION_PENDING"})));
    }
    let order = w.store.get(id()).await.unwrap().unwrap();
    assert_eq!(order.status, OrderStatus::CompensationPending);
    let parking = order.parking.clone().unwrap();
    assert_eq!(parking.failed_step, "RefundPayment");
    assert_eq!(parking.error, "Transient");
    assert_eq!(parking.cause, "payment provider unavailable: circuit breaker open");
    assert_eq!(parking.owed, Owed { refund_payment: true, release_inventory: true });
    assert_eq!(
        (parking.reason.as_str(), parking.detail.as_deref()),
        ("States.Timeout", Some("ConfirmOrder timed out"))
    );
    assert_eq!(parking.correlation_id.as_str(), "demo-correlation-1");
    assert_eq!(parking.attempts, 1);
    let wait = (parking.next_attempt_at - parking.parked_at).to_std().unwrap();
    assert_eq!(wait, 15 * MINUTE, "the first retry after the default backoff");
    assert_eq!(event_types(&w.store), ["OrderCompensationPending"], "one event for two deliveries");
    assert_eq!(order.version, 2, "written once");

    // Parked orders are in the sweep index's PARKED queue, keyed by their next attempt; settled
    // orders in none.
    let (pk, sk) = sweep_key(&order).unwrap();
    assert!(pk.starts_with("PARKED#"), "{pk}");
    assert!(sk.starts_with(&parking.next_attempt_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)), "{sk}");

    // A late ConfirmOrder cannot confirm a parked order.
    let confirm = fixtures::eventbridge("orders-saga-worker", "confirm-order.json").unwrap();
    let outcome = dispatch(confirm, &w.worker, &InMemoryTaskReporter::new()).await.unwrap();
    assert_eq!(outcome.error(), Some("OrderNotPending"));
}

#[tokio::test]
async fn park_order_refuses_a_confirmed_order_and_leaves_a_cancelled_one_alone() {
    let w = world();
    pending_order(&w.store, ORDER_ID, Utc::now()).await;
    let service = OrderService::new(w.store.clone());
    service.confirm(id(), &CorrelationId::generate()).await.unwrap();
    assert_eq!(park_with_fixture(&w).await.error(), Some("OrderAlreadyConfirmed"));
    assert_eq!(w.store.get(id()).await.unwrap().unwrap().status, OrderStatus::Confirmed);

    let w = world();
    pending_order(&w.store, ORDER_ID, Utc::now()).await;
    OrderService::new(w.store.clone()).cancel(id(), "PaymentDeclined", &CorrelationId::generate()).await.unwrap();
    assert_eq!(park_with_fixture(&w).await, TaskOutcome::Success(json!({"status": "CANCELLED"})));
    assert_eq!(event_types(&w.store), ["OrderCancelled"], "nothing left to park");
}

#[tokio::test]
async fn the_sweeper_retries_a_parked_order_when_due_once_per_attempt_with_doubling_backoff() {
    let w = world();
    pending_order(&w.store, ORDER_ID, Utc::now()).await;
    park_with_fixture(&w).await;
    let parked = w.store.get(id()).await.unwrap().unwrap().parking.unwrap();
    let at = |after: Duration| parked.parked_at + chrono::Duration::from_std(after).unwrap();

    let early = w.sweeper.handle(SweeperInput::Scheduled, at(14 * MINUTE)).await.unwrap();
    assert!(early.started.is_empty(), "not due yet: {early:?}");

    let due = at(15 * MINUTE);
    let first = w.sweeper.handle(SweeperInput::Scheduled, due).await.unwrap();
    assert_eq!(first.started, [(id(), 2)]);
    let again = w.sweeper.handle(SweeperInput::Scheduled, due).await.unwrap();
    assert!(again.started.is_empty(), "claimed: the same run twice starts nothing more: {again:?}");
    let started = w.sfn.started();
    assert_eq!(started.len(), 1);
    let (name, input) = &started[0];
    assert_eq!(name, &format!("{ORDER_ID}-2"), "named after the attempt");
    assert_eq!(input.attempt, 2);
    assert_eq!(input.owed, Owed::ALL);
    assert_eq!((input.error.error.as_str(), input.correlation_id.as_str()), ("States.Timeout", "demo-correlation-1"));
    let order = w.store.get(id()).await.unwrap().unwrap();
    let parking = order.parking.unwrap();
    assert_eq!(parking.attempts, 2);
    assert_eq!((parking.next_attempt_at - due).to_std().unwrap(), 30 * MINUTE, "the next wait doubles");

    // The attempt fails: the compensation machine re-parks with its attempt number, updating the
    // reason; a stale report of attempt 1 changes nothing.
    let mut repark = fixtures::eventbridge("orders-saga-worker", "park-order.json").unwrap();
    repark.detail["data"]["attempt"] = json!(2);
    repark.detail["data"]["failed_step"] = json!("ReleaseInventory");
    repark.detail["data"]["owed"] = json!({"refund_payment": false, "release_inventory": true});
    let outcome = dispatch(repark.clone(), &w.worker, &InMemoryTaskReporter::new()).await.unwrap();
    assert_eq!(outcome, TaskOutcome::Success(json!({"status": "COMPENSATION_PENDING"})));
    let parking = w.store.get(id()).await.unwrap().unwrap().parking.unwrap();
    assert_eq!((parking.failed_step.as_str(), parking.owed.refund_payment), ("ReleaseInventory", false));
    assert_eq!(parking.attempts, 2, "a re-park does not count an attempt: starting one does");
    repark.detail["data"]["attempt"] = json!(1);
    repark.detail["data"]["failed_step"] = json!("RefundPayment");
    dispatch(repark, &w.worker, &InMemoryTaskReporter::new()).await.unwrap();
    assert_eq!(w.store.get(id()).await.unwrap().unwrap().parking.unwrap().failed_step, "ReleaseInventory");

    let second = w.sweeper.handle(SweeperInput::Scheduled, due + chrono::Duration::minutes(30)).await.unwrap();
    assert_eq!(second.started, [(id(), 3)]);
    assert_eq!(w.sfn.started()[1].1.owed, Owed { refund_payment: false, release_inventory: true });
    assert_eq!(event_types(&w.store), ["OrderCompensationPending"], "claims publish nothing");

    // The attempt's CancelOrder ends it: CANCELLED with the saga's reason, OrderCancelled, and the
    // order leaves the index.
    let cancel = fixtures::eventbridge("orders-saga-worker", "cancel-order.json").unwrap();
    let outcome = dispatch(cancel, &w.worker, &InMemoryTaskReporter::new()).await.unwrap();
    assert_eq!(outcome, TaskOutcome::Success(json!({"status": "CANCELLED"})));
    let order = w.store.get(id()).await.unwrap().unwrap();
    assert_eq!(order.status, OrderStatus::Cancelled);
    assert_eq!(sweep_key(&order), None);
    assert_eq!(event_types(&w.store), ["OrderCompensationPending", "OrderCancelled"]);
    let later = w.sweeper.handle(SweeperInput::Scheduled, due + chrono::Duration::days(2)).await.unwrap();
    assert!(later.started.is_empty());
}

#[tokio::test]
async fn the_sweeper_adopts_an_order_left_pending_after_its_saga_ended_and_leaves_running_ones_alone() {
    let w = world();
    let now = Utc::now();
    let old = now - chrono::Duration::hours(3);
    let ids = [
        "0193a3c2-5f00-7000-8000-000000000a01", // saga failed (its ParkOrder never arrived)
        "0193a3c2-5f00-7000-8000-000000000a02", // saga never started
        "0193a3c2-5f00-7000-8000-000000000a03", // saga still running
        "0193a3c2-5f00-7000-8000-000000000a04", // young: its saga has time left
    ];
    for (n, raw) in ids.iter().enumerate() {
        pending_order(&w.store, raw, if n == 3 { now - chrono::Duration::minutes(10) } else { old }).await;
    }
    let parse = |raw: &str| OrderId::parse(raw).unwrap();
    w.sfn.set_saga(parse(ids[0]), SagaRun::Ended("FAILED".into()));
    w.sfn.set_saga(parse(ids[2]), SagaRun::Running);
    w.sfn.set_saga(parse(ids[3]), SagaRun::Ended("FAILED".into()));

    let report = w.sweeper.handle(SweeperInput::Scheduled, now).await.unwrap();
    let mut adopted = report.adopted.clone();
    adopted.sort();
    assert_eq!(adopted, [parse(ids[0]), parse(ids[1])]);
    assert_eq!(report.saga_running, [parse(ids[2])]);
    let mut started: Vec<_> = report.started.clone();
    started.sort();
    assert_eq!(started, [(parse(ids[0]), 2), (parse(ids[1]), 2)], "started in the same run");
    for raw in &ids[..2] {
        let order = w.store.get(parse(raw)).await.unwrap().unwrap();
        assert_eq!(order.status, OrderStatus::CompensationPending);
        let parking = order.parking.unwrap();
        assert_eq!(parking.owed, Owed::ALL, "everything is owed: each compensation is idempotent");
        assert_eq!(parking.reason, "SagaAbandoned");
    }
    assert_eq!(w.store.get(parse(ids[0])).await.unwrap().unwrap().parking.unwrap().error, "SagaEnded");
    assert_eq!(w.store.get(parse(ids[1])).await.unwrap().unwrap().parking.unwrap().error, "SagaMissing");
    for raw in &ids[2..] {
        assert_eq!(w.store.get(parse(raw)).await.unwrap().unwrap().status, OrderStatus::Pending, "{raw}");
    }
}

#[tokio::test]
async fn an_operator_retries_a_parked_order_now_and_a_settled_or_running_one_is_left_alone() {
    let w = world();
    pending_order(&w.store, ORDER_ID, Utc::now()).await;
    park_with_fixture(&w).await;
    let payload = fixtures::load::<serde_json::Value>("orders-compensation-sweeper", "retry-order.json").unwrap();
    let input = SweeperInput::parse(&payload).unwrap();
    assert_eq!(input, SweeperInput::Retry(id()));
    let report = w.sweeper.handle(input.clone(), Utc::now()).await.unwrap();
    assert_eq!(report.started, [(id(), 2)], "not due for 15 minutes, retried now");

    w.sfn.set_saga(id(), SagaRun::Running);
    let other = "0193a3c2-5f00-7000-8000-000000000b01";
    pending_order(&w.store, other, Utc::now()).await;
    w.sfn.set_saga(OrderId::parse(other).unwrap(), SagaRun::Running);
    let report = w.sweeper.handle(SweeperInput::Retry(OrderId::parse(other).unwrap()), Utc::now()).await.unwrap();
    assert_eq!(report.saga_running, [OrderId::parse(other).unwrap()], "its saga still owns it");
    assert!(report.started.is_empty());

    OrderService::new(w.store.clone()).cancel(id(), "States.Timeout", &CorrelationId::generate()).await.unwrap();
    let report = w.sweeper.handle(input, Utc::now()).await.unwrap();
    assert_eq!(report.untouched, [id()]);
}

#[test]
fn the_sweeper_takes_a_schedule_event_or_exactly_an_order_id() {
    let scheduled = fixtures::load::<serde_json::Value>("orders-compensation-sweeper", "scheduled-event.json").unwrap();
    assert_eq!(SweeperInput::parse(&scheduled).unwrap(), SweeperInput::Scheduled);
    let mut scheduler = scheduled.clone();
    scheduler["source"] = json!("aws.scheduler");
    assert_eq!(SweeperInput::parse(&scheduler).unwrap(), SweeperInput::Scheduled);
    for refused in [
        json!({"order_id": "nope"}),
        json!({"order_id": ORDER_ID, "force": true}),
        json!({}),
        json!({"source": "shop.orders", "detail-type": "OrderCreated"}),
    ] {
        assert!(SweeperInput::parse(&refused).is_err(), "{refused}");
    }
}

#[tokio::test]
async fn the_in_memory_index_holds_pending_and_parked_orders_by_shard_and_time_only() {
    let store = InMemoryOrderStore::new();
    let now = Utc::now();
    let order = pending_order(&store, ORDER_ID, now - chrono::Duration::minutes(5)).await;
    let (pk, _) = sweep_key(&order).unwrap();
    let shard: u8 = pk.strip_prefix("PENDING#").unwrap().parse().unwrap();
    assert!(shard < SHARDS);
    assert_eq!(store.due(Queue::Pending, shard, now, 10).await.unwrap(), [id()]);
    assert!(store.due(Queue::Pending, shard, now - chrono::Duration::minutes(6), 10).await.unwrap().is_empty());
    assert!(store.due(Queue::Pending, (shard + 1) % SHARDS, now, 10).await.unwrap().is_empty());
    assert!(store.due(Queue::Parked, shard, now, 10).await.unwrap().is_empty());
}

/// The DynamoDB sweep index on moto, on the table as template.yaml declares it: a pending order
/// is in the PENDING queue, parked it moves to PARKED under its next attempt, cancelled it leaves
/// the index (the item no longer carries the key).
#[tokio::test]
async fn the_dynamodb_sweep_index_is_sparse_and_follows_the_order() {
    use orders::adapters::dynamodb::DynamoDbOrderStore;
    let moto = local_aws::Moto::start().await.unwrap();
    let table = moto.create_project_table("OrdersTable", "orders").await.unwrap();
    let store = Arc::new(DynamoDbOrderStore::new(aws_sdk_dynamodb::Client::new(&moto.sdk_config()), &table));
    let now = Utc::now();
    let mut order = Order::place(request().validate().unwrap(), now - chrono::Duration::hours(3));
    order.id = id();
    store.create(&order, &[], None).await.unwrap();
    let shard = |order: &Order| -> u8 { sweep_key(order).unwrap().0.rsplit('#').next().unwrap().parse().unwrap() };
    let s = shard(&order);
    assert_eq!(store.due(Queue::Pending, s, now - chrono::Duration::hours(2), 25).await.unwrap(), [id()]);
    assert!(store.due(Queue::Pending, s, now - chrono::Duration::hours(4), 25).await.unwrap().is_empty());

    let sfn = Arc::new(InMemoryCompensations::new());
    let sweeper = Sweeper::new(store.clone(), store.clone(), sfn.clone());
    let report = sweeper.handle(SweeperInput::Scheduled, now).await.unwrap();
    assert_eq!(report.adopted, [id()], "no saga: adopted");
    assert_eq!(report.started, [(id(), 2)]);
    assert!(store.due(Queue::Pending, s, now, 25).await.unwrap().is_empty(), "no longer pending");
    let parked = store.get(id()).await.unwrap().unwrap();
    let next = parked.parking.as_ref().unwrap().next_attempt_at;
    assert!(store.due(Queue::Parked, s, next - chrono::Duration::seconds(1), 25).await.unwrap().is_empty());
    assert_eq!(store.due(Queue::Parked, s, next, 25).await.unwrap(), [id()], "due at its next attempt");

    OrderService::new(store.clone()).cancel(id(), "SagaAbandoned", &CorrelationId::generate()).await.unwrap();
    let far = now + chrono::Duration::days(3);
    for queue in [Queue::Pending, Queue::Parked] {
        assert!(store.due(queue, s, far, 25).await.unwrap().is_empty(), "{queue:?}: settled orders leave the index");
    }
}
