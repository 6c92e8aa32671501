//! The inventory side of the saga on the `events/` fixtures: the worker reserves and releases
//! once, and the order-events consumer commits or releases once per event id.

use std::sync::Arc;

use inventory::adapters::memory::InMemoryInventoryStore;
use inventory::domain::{Money, ProductSpec, ReservationStatus, Restock};
use inventory::order_events::{Consumed, ConsumerError, consume_order_event};
use inventory::saga::InventorySagaWorker;
use inventory::service::InventoryService;
use local_aws::fixtures;
use serde_json::json;
use shared::aws::saga::{INVALID_COMMAND, InMemoryTaskReporter, TaskOutcome, WorkerError, dispatch};
use shared_core::CorrelationId;

use local_aws::fixtures::ORDER_ID;
const SKU: &str = "SKU-RED-MUG";

async fn service(stock: u32) -> InventoryService {
    let service = InventoryService::new(Arc::new(InMemoryInventoryStore::new()));
    let correlation = CorrelationId::generate();
    let spec = ProductSpec { name: "Red mug".into(), price: Money::new(1250, "EUR"), low_stock_threshold: 0 };
    service.put_product(SKU, &spec, &correlation).await.unwrap();
    if stock > 0 {
        service.restock(SKU, &Restock { restock_id: "r1".into(), quantity: stock }, &correlation).await.unwrap();
    }
    service
}

async fn available(service: &InventoryService) -> u64 {
    service.get_product(SKU).await.unwrap().available
}

#[tokio::test]
async fn reserve_then_release_fixtures_take_and_return_the_stock_once_each() {
    let service = service(10).await;
    let worker = InventorySagaWorker::new(service.clone());
    let reporter = InMemoryTaskReporter::new();
    let reserve = fixtures::eventbridge("inventory-saga-worker", "reserve-inventory.json").unwrap();
    for _ in 0..2 {
        let outcome = dispatch(reserve.clone(), &worker, &reporter).await.unwrap();
        assert_eq!(
            outcome,
            TaskOutcome::Success(json!({"status": "RESERVED", "total": {"amount_minor": 2500, "currency": "EUR"}}))
        );
    }
    assert_eq!(available(&service).await, 8, "reserved once for two deliveries");

    let release = fixtures::eventbridge("inventory-saga-worker", "release-inventory.json").unwrap();
    for _ in 0..2 {
        let outcome = dispatch(release.clone(), &worker, &reporter).await.unwrap();
        assert_eq!(outcome, TaskOutcome::Success(json!({"status": "RELEASED"})));
    }
    assert_eq!(available(&service).await, 10);
    assert_eq!(reporter.answers().len(), 4);

    // A late reservation command for the released order reserves nothing again.
    let late = dispatch(reserve, &worker, &reporter).await.unwrap();
    assert_eq!(late.error(), Some("ReservationImpossible"));
    assert_eq!(available(&service).await, 10);
}

#[tokio::test]
async fn a_shortage_is_insufficient_stock_with_the_shortages_as_cause() {
    let service = service(1).await;
    let worker = InventorySagaWorker::new(service.clone());
    let reserve = fixtures::eventbridge("inventory-saga-worker", "reserve-inventory.json").unwrap();
    let outcome = dispatch(reserve, &worker, &InMemoryTaskReporter::new()).await.unwrap();
    let TaskOutcome::Failure { error, cause } = outcome else { panic!("not a failure") };
    assert_eq!(error, "InsufficientStock");
    let shortages: serde_json::Value = serde_json::from_str(&cause).unwrap();
    assert_eq!(shortages, json!([{"sku": SKU, "requested": 2, "available": 1, "unknown": false}]));
    assert_eq!(available(&service).await, 1);
    // Releasing an order that reserved nothing is a no-op that still answers the saga.
    let release = fixtures::eventbridge("inventory-saga-worker", "release-inventory.json").unwrap();
    let outcome = dispatch(release, &worker, &InMemoryTaskReporter::new()).await.unwrap();
    assert_eq!(outcome, TaskOutcome::Success(json!({"status": "REJECTED"})));
}

#[tokio::test]
async fn a_reserve_command_delivered_after_its_release_reserves_nothing_and_fails_for_good() {
    let service = service(10).await;
    let worker = InventorySagaWorker::new(service.clone());
    let reporter = InMemoryTaskReporter::new();
    // Out of order: the saga gave up waiting for ReserveInventory and compensated before the
    // (late) command reached the worker.
    let release = fixtures::eventbridge("inventory-saga-worker", "release-inventory.json").unwrap();
    let outcome = dispatch(release.clone(), &worker, &reporter).await.unwrap();
    assert_eq!(outcome, TaskOutcome::Success(json!({"status": "RELEASED"})));
    let reserve = fixtures::eventbridge("inventory-saga-worker", "reserve-inventory.json").unwrap();
    for _ in 0..2 {
        let TaskOutcome::Failure { error, cause } = dispatch(reserve.clone(), &worker, &reporter).await.unwrap() else {
            panic!("a late reservation must not succeed")
        };
        assert_eq!(error, "ReservationImpossible", "final: the saga does not retry it");
        assert!(cause.contains("released before"), "{cause}");
    }
    assert_eq!(available(&service).await, 10, "nothing held for a cancelled order");
    assert_eq!(dispatch(release, &worker, &reporter).await.unwrap(), outcome, "a repeated release, same answer");
    let reservation = service.get_reservation(fixture_order()).await.unwrap().unwrap();
    assert!(reservation.tombstone && reservation.lines.is_empty(), "{reservation:?}");

    // The choreography's release of a cancelled order finds the tombstone: nothing was held.
    let event = fixtures::eventbridge("inventory-order-events", "order-cancelled.json").unwrap();
    assert_eq!(consume_order_event(event, &service).await.unwrap(), Consumed::NothingHeld);
}

/// The same command as Step Functions sends it on a retry: a new event id and task token.
fn retried(
    mut event: aws_lambda_events::eventbridge::EventBridgeEvent<serde_json::Value>,
    attempt: u32,
) -> aws_lambda_events::eventbridge::EventBridgeEvent<serde_json::Value> {
    event.detail["event_id"] = json!(format!("0193a3c2-6300-7000-8000-00000000000{attempt}"));
    event.detail["task_token"] = json!(format!("retry-{attempt}-token"));
    event
}

#[tokio::test]
async fn a_step_done_by_a_worker_that_died_before_answering_answers_success_when_retried() {
    let service = service(10).await;
    let worker = InventorySagaWorker::new(service.clone());
    for (command, success) in [
        ("reserve-inventory.json", json!({"status": "RESERVED", "total": {"amount_minor": 2500, "currency": "EUR"}})),
        ("release-inventory.json", json!({"status": "RELEASED"})),
    ] {
        let reporter = InMemoryTaskReporter::losing_first(1);
        let event = fixtures::eventbridge("inventory-saga-worker", command).unwrap();
        let first = dispatch(event.clone(), &worker, &reporter).await;
        assert!(matches!(first, Err(WorkerError::Report(_))), "{first:?}");
        let outcome = dispatch(retried(event, 1), &worker, &reporter).await.unwrap();
        assert_eq!(outcome, TaskOutcome::Success(success), "{command}");
        assert_eq!(reporter.answers(), [("retry-1-token".to_owned(), outcome)]);
    }
    assert_eq!(available(&service).await, 10, "reserved once, released once");
}

async fn reserve_two(service: &InventoryService) {
    let lines = [inventory::domain::RequestedLine { sku: SKU.into(), quantity: 2 }];
    service.reserve(fixture_order(), &lines, &CorrelationId::generate()).await.unwrap();
}

#[tokio::test]
async fn order_confirmed_commits_the_reservation_once_per_event_id() {
    let service = service(10).await;
    reserve_two(&service).await;
    let event = fixtures::eventbridge("inventory-order-events", "order-confirmed.json").unwrap();
    assert_eq!(consume_order_event(event.clone(), &service).await.unwrap(), Consumed::Committed);
    assert_eq!(consume_order_event(event, &service).await.unwrap(), Consumed::Duplicate);
    let reservation = service.get_reservation(fixture_order()).await.unwrap().unwrap();
    assert_eq!(reservation.status, ReservationStatus::Committed);
    assert_eq!(available(&service).await, 8, "a sale keeps the stock taken");
}

#[tokio::test]
async fn order_cancelled_releases_what_a_dead_saga_left_held() {
    let service = service(10).await;
    reserve_two(&service).await;
    let event = fixtures::eventbridge("inventory-order-events", "order-cancelled.json").unwrap();
    assert_eq!(consume_order_event(event.clone(), &service).await.unwrap(), Consumed::Released);
    assert_eq!(consume_order_event(event, &service).await.unwrap(), Consumed::Duplicate);
    assert_eq!(available(&service).await, 10);

    // Another cancellation (new event id) for an order already released does nothing.
    let mut other = fixtures::eventbridge("inventory-order-events", "order-cancelled.json").unwrap();
    other.detail["event_id"] = json!("0193a3c2-6200-7000-8000-0000000e0099");
    assert_eq!(consume_order_event(other, &service).await.unwrap(), Consumed::Released);
    assert_eq!(available(&service).await, 10);
}

#[tokio::test]
async fn a_foreign_or_broken_event_is_an_error_for_the_dlq() {
    let service = service(0).await;
    let mut event = fixtures::eventbridge("inventory-order-events", "order-confirmed.json").unwrap();
    event.detail_type = "OrderCreated".into();
    assert!(matches!(consume_order_event(event, &service).await, Err(ConsumerError::Unreadable(..))));
    let mut event = fixtures::eventbridge("inventory-order-events", "order-confirmed.json").unwrap();
    event.detail["data"] = json!({"order": 1});
    let err = consume_order_event(event, &service).await.unwrap_err();
    assert!(err.to_string().contains("data"), "{err}");
}

/// Order ids are parsed where a command or an event is read: a command whose order id is no
/// order id is an `InvalidCommand`, such an event an error for the DLQ, and no stock moves.
#[tokio::test]
async fn an_order_id_that_is_no_order_id_is_refused_where_it_is_read() {
    let service = service(10).await;
    let worker = InventorySagaWorker::new(service.clone());
    let reporter = InMemoryTaskReporter::new();
    let bad_ids = [json!("o-1"), json!(""), json!(ORDER_ID.replace('-', "")), json!(7)];
    for fixture in ["reserve-inventory.json", "release-inventory.json"] {
        for bad in &bad_ids {
            let mut command = fixtures::eventbridge("inventory-saga-worker", fixture).unwrap();
            command.detail["data"]["order_id"] = bad.clone();
            let outcome = dispatch(command, &worker, &reporter).await.unwrap();
            assert_eq!(outcome.error(), Some(INVALID_COMMAND), "{fixture} with {bad}: {outcome:?}");
        }
    }
    for fixture in ["order-confirmed.json", "order-cancelled.json"] {
        for bad in &bad_ids {
            let mut event = fixtures::eventbridge("inventory-order-events", fixture).unwrap();
            event.detail["data"]["order_id"] = bad.clone();
            let err = consume_order_event(event, &service).await.unwrap_err();
            assert!(matches!(&err, ConsumerError::Unreadable(..)) && err.to_string().contains("order_id"), "{err}");
        }
    }
    assert_eq!(available(&service).await, 10);
    assert_eq!(service.get_reservation(fixture_order()).await.unwrap(), None);
}

type Event = aws_lambda_events::eventbridge::EventBridgeEvent<serde_json::Value>;

/// What a newer producer sends: the same event with one more field in every object of its detail
/// (envelope, data, lines).
fn widened(mut event: Event) -> Event {
    event.detail = shared_core::envelope::widened(&event.detail);
    event
}

#[tokio::test]
async fn the_worker_reads_commands_with_fields_it_does_not_know() {
    let service = service(10).await;
    let worker = InventorySagaWorker::new(service.clone());
    let reporter = InMemoryTaskReporter::new();
    let reserve = widened(fixtures::eventbridge("inventory-saga-worker", "reserve-inventory.json").unwrap());
    assert_eq!(reserve.detail["data"]["lines"][0]["added_later"], json!("a field this consumer does not know yet"));
    let outcome = dispatch(reserve, &worker, &reporter).await.unwrap();
    assert_eq!(
        outcome,
        TaskOutcome::Success(json!({"status": "RESERVED", "total": {"amount_minor": 2500, "currency": "EUR"}}))
    );
    let release = widened(fixtures::eventbridge("inventory-saga-worker", "release-inventory.json").unwrap());
    let outcome = dispatch(release, &worker, &reporter).await.unwrap();
    assert_eq!(outcome, TaskOutcome::Success(json!({"status": "RELEASED"})));
    assert_eq!(available(&service).await, 10);
}

#[tokio::test]
async fn the_order_events_consumer_reads_events_with_fields_it_does_not_know() {
    let first = service(10).await;
    reserve_two(&first).await;
    let confirmed = widened(fixtures::eventbridge("inventory-order-events", "order-confirmed.json").unwrap());
    assert_eq!(consume_order_event(confirmed, &first).await.unwrap(), Consumed::Committed);
    let other = service(10).await;
    reserve_two(&other).await;
    let cancelled = widened(fixtures::eventbridge("inventory-order-events", "order-cancelled.json").unwrap());
    assert_eq!(consume_order_event(cancelled, &other).await.unwrap(), Consumed::Released);
}

/// The order every fixture under `events/` is about.
fn fixture_order() -> shared_core::OrderId {
    shared_core::OrderId::parse(ORDER_ID).unwrap()
}
