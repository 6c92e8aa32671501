//! Inventory use cases on the in-memory store.

use std::sync::Arc;

use inventory::adapters::memory::InMemoryInventoryStore;
use inventory::domain::{Money, ProductSpec, RequestedLine, ReservationStatus, Restock};
use inventory::ports::RestockOutcome;
use inventory::service::{InventoryError, InventoryService};
use local_aws::fixtures::order_id;
use shared_core::CorrelationId;

async fn setup(stock: &[(&str, u32)]) -> (InventoryService, Arc<InMemoryInventoryStore>, CorrelationId) {
    let store = Arc::new(InMemoryInventoryStore::new());
    let service = InventoryService::new(store.clone());
    let correlation = CorrelationId::generate();
    for (sku, quantity) in stock {
        let spec = ProductSpec {
            name: sku.to_string(),
            price: Money { amount_minor: 500, currency: "EUR".into() },
            low_stock_threshold: 2,
        };
        service.put_product(sku, &spec, &correlation).await.unwrap();
        let restock = Restock { restock_id: format!("initial-{sku}"), quantity: *quantity };
        service.restock(sku, &restock, &correlation).await.unwrap();
    }
    (service, store, correlation)
}

fn lines(items: &[(&str, u32)]) -> Vec<RequestedLine> {
    items.iter().map(|(sku, quantity)| RequestedLine { sku: sku.to_string(), quantity: *quantity }).collect()
}

async fn available(service: &InventoryService, sku: &str) -> u64 {
    service.get_product(sku).await.unwrap().available
}

fn event_types(store: &InMemoryInventoryStore) -> Vec<String> {
    store.outbox().into_iter().map(|e| e.entry.detail_type).collect()
}

#[tokio::test]
async fn reserving_twice_for_one_order_holds_stock_once() {
    let (service, store, correlation) = setup(&[("A", 5), ("B", 5)]).await;
    let first = service.reserve(order_id(1), &lines(&[("A", 2), ("B", 1)]), &correlation).await.unwrap();
    assert_eq!(first.status, ReservationStatus::Reserved);
    assert_eq!(first.total_minor, 1500);
    let second = service.reserve(order_id(1), &lines(&[("A", 2), ("B", 1)]), &correlation).await.unwrap();
    assert_eq!(first, second);
    assert_eq!((available(&service, "A").await, available(&service, "B").await), (3, 4));
    assert_eq!(event_types(&store), ["InventoryReserved"]);
}

#[tokio::test]
async fn a_shortage_is_recorded_so_a_retry_gets_the_same_answer_even_after_a_restock() {
    let (service, store, correlation) = setup(&[("A", 1)]).await;
    let rejected = service.reserve(order_id(1), &lines(&[("A", 2)]), &correlation).await.unwrap();
    assert_eq!(rejected.status, ReservationStatus::Rejected);
    assert_eq!(rejected.shortages[0].available, 1);
    service.restock("A", &Restock { restock_id: "more".into(), quantity: 10 }, &correlation).await.unwrap();
    let again = service.reserve(order_id(1), &lines(&[("A", 2)]), &correlation).await.unwrap();
    assert_eq!(again, rejected, "a late duplicate command must not reserve for a cancelled order");
    assert_eq!(available(&service, "A").await, 11);
    assert_eq!(event_types(&store), ["InventoryReservationFailed"]);
}

#[tokio::test]
async fn a_price_change_between_read_and_write_is_caught_and_the_new_price_used() {
    // The in-memory store checks stock and price at write time like DynamoDB's conditions; a
    // changed price makes the first write stale and the service plans again.
    let (service, store, correlation) = setup(&[("A", 5)]).await;
    store.tamper("A", |p| p.price.amount_minor = 700);
    let reservation = service.reserve(order_id(1), &lines(&[("A", 1)]), &correlation).await.unwrap();
    assert_eq!(reservation.total_minor, 700);
}

#[tokio::test]
async fn release_returns_the_stock_once_and_leaves_a_tombstone_for_unknown_orders() {
    let (service, store, correlation) = setup(&[("A", 5)]).await;
    service.reserve(order_id(1), &lines(&[("A", 3)]), &correlation).await.unwrap();
    let released = service.release(order_id(1), &correlation).await.unwrap().unwrap();
    assert_eq!(released.status, ReservationStatus::Released);
    assert_eq!(available(&service, "A").await, 5);
    let again = service.release(order_id(1), &correlation).await.unwrap().unwrap();
    assert_eq!(again.status, ReservationStatus::Released);
    assert_eq!(available(&service, "A").await, 5, "a second release returns nothing more");
    let tombstone = service.release(order_id(97), &correlation).await.unwrap().unwrap();
    assert!(tombstone.tombstone && tombstone.lines.is_empty(), "{tombstone:?}");
    assert_eq!(tombstone.status, ReservationStatus::Released);
    assert_eq!(event_types(&store), ["InventoryReserved", "InventoryReleased"], "a tombstone releases nothing");
}

#[tokio::test]
async fn a_reservation_delivered_after_its_release_reserves_nothing_however_often_it_comes() {
    let (service, store, correlation) = setup(&[("A", 5)]).await;
    // The saga gave up on ReserveInventory (its command was late) and compensated: the release
    // arrives first and finds nothing.
    let released = service.release(order_id(1), &correlation).await.unwrap().unwrap();
    assert!(released.tombstone);
    // Then the late command, and a duplicate of it, and a repeated release.
    for _ in 0..2 {
        let late = service.reserve(order_id(1), &lines(&[("A", 2)]), &correlation).await.unwrap();
        assert_eq!(late, released, "the tombstone is the answer");
        assert_eq!(available(&service, "A").await, 5, "nothing reserved for a cancelled order");
    }
    assert_eq!(service.release(order_id(1), &correlation).await.unwrap().unwrap(), released);
    assert!(event_types(&store).is_empty(), "nothing was reserved or released: {:?}", event_types(&store));
    let err = service.commit(order_id(1), &correlation).await.unwrap_err();
    assert!(matches!(err, InventoryError::CannotCommit { status: ReservationStatus::Released, .. }), "{err:?}");

    // Another order, in the usual order, is untouched by all this.
    let reserved = service.reserve(order_id(2), &lines(&[("A", 2)]), &correlation).await.unwrap();
    assert_eq!(reserved.status, ReservationStatus::Reserved);
    assert_eq!(available(&service, "A").await, 3);
}

#[tokio::test]
async fn a_step_applied_by_a_worker_that_died_before_answering_is_found_applied_when_retried() {
    // The saga retries the step (after its timeout) with a new command: the service finds the
    // step done and gives the same answer, changing nothing.
    let (service, store, correlation) = setup(&[("A", 5)]).await;
    let reserved = service.reserve(order_id(1), &lines(&[("A", 2)]), &correlation).await.unwrap();
    assert_eq!(service.reserve(order_id(1), &lines(&[("A", 2)]), &correlation).await.unwrap(), reserved);
    let released = service.release(order_id(1), &correlation).await.unwrap().unwrap();
    assert_eq!(service.release(order_id(1), &correlation).await.unwrap().unwrap(), released);
    assert_eq!(available(&service, "A").await, 5);

    service.reserve(order_id(2), &lines(&[("A", 1)]), &correlation).await.unwrap();
    let committed = service.commit(order_id(2), &correlation).await.unwrap().unwrap();
    assert_eq!(service.commit(order_id(2), &correlation).await.unwrap().unwrap(), committed);
    assert_eq!(available(&service, "A").await, 4);
    assert_eq!(event_types(&store), ["InventoryReserved", "InventoryReleased", "InventoryReserved"]);
}

#[tokio::test]
async fn commit_is_idempotent_and_refused_after_a_release() {
    let (service, _, correlation) = setup(&[("A", 5)]).await;
    service.reserve(order_id(1), &lines(&[("A", 1)]), &correlation).await.unwrap();
    assert_eq!(service.commit(order_id(1), &correlation).await.unwrap().unwrap().status, ReservationStatus::Committed);
    assert_eq!(service.commit(order_id(1), &correlation).await.unwrap().unwrap().status, ReservationStatus::Committed);
    assert_eq!(service.release(order_id(1), &correlation).await.unwrap().unwrap().status, ReservationStatus::Committed);
    assert_eq!(available(&service, "A").await, 4, "sold stock does not come back");

    service.reserve(order_id(2), &lines(&[("A", 1)]), &correlation).await.unwrap();
    service.release(order_id(2), &correlation).await.unwrap();
    let err = service.commit(order_id(2), &correlation).await.unwrap_err();
    assert!(matches!(err, InventoryError::CannotCommit { status: ReservationStatus::Released, .. }), "{err:?}");
    assert_eq!(service.commit(order_id(98), &correlation).await.unwrap(), None);
}

#[tokio::test]
async fn restocks_count_once_per_id_and_unknown_skus_are_named() {
    let (service, _, correlation) = setup(&[("A", 5)]).await;
    let restock = Restock { restock_id: "delivery-1".into(), quantity: 10 };
    assert!(
        matches!(service.restock("A", &restock, &correlation).await.unwrap(), RestockOutcome::Applied(p) if p.available == 15)
    );
    assert!(matches!(
        service.restock("A", &restock, &correlation).await.unwrap(),
        RestockOutcome::AlreadyApplied(p) if p.available == 15
    ));
    let err = service.restock("NOPE", &restock, &correlation).await.unwrap_err();
    assert!(matches!(err, InventoryError::UnknownSku(ref sku) if sku == "NOPE"), "{err:?}");
}
