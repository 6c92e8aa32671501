//! The DynamoDB inventory store against moto: races for the last units, duplicate reservations,
//! release and restock idempotency.

use std::sync::Arc;

use inventory::adapters::dynamodb::DynamoDbInventoryStore;
use inventory::domain::{Money, ProductSpec, RequestedLine, ReservationStatus, Restock};
use inventory::ports::{InventoryStore, RestockOutcome, StoreError};
use inventory::service::InventoryService;
use local_aws::Moto;
use local_aws::fixtures::order_id;
use shared_core::CorrelationId;

async fn service(moto: &Moto) -> (InventoryService, Arc<DynamoDbInventoryStore>) {
    let table = moto.create_project_table("InventoryTable", "inventory").await.unwrap();
    let store = Arc::new(DynamoDbInventoryStore::new(aws_sdk_dynamodb::Client::new(&moto.sdk_config()), table));
    (InventoryService::new(store.clone()), store)
}

async fn stock(service: &InventoryService, sku: &str, price: u64, quantity: u32) {
    let correlation = CorrelationId::generate();
    let spec = ProductSpec {
        name: sku.into(),
        price: Money { amount_minor: price, currency: "EUR".into() },
        low_stock_threshold: 3,
    };
    service.put_product(sku, &spec, &correlation).await.unwrap();
    if quantity > 0 {
        let restock = Restock { restock_id: format!("initial-{sku}"), quantity };
        service.restock(sku, &restock, &correlation).await.unwrap();
    }
}

fn one(sku: &str, quantity: u32) -> Vec<RequestedLine> {
    vec![RequestedLine { sku: sku.into(), quantity }]
}

#[tokio::test]
async fn fifty_concurrent_orders_for_ten_units_reserve_exactly_ten() {
    let moto = Moto::start().await.unwrap();
    let (service, _) = service(&moto).await;
    stock(&service, "LAST-UNITS", 999, 10).await;
    let attempts: Vec<_> = (0..50)
        .map(|i| {
            let service = service.clone();
            tokio::spawn(async move {
                service.reserve(order_id(100 + i), &one("LAST-UNITS", 1), &CorrelationId::generate()).await
            })
        })
        .collect();
    let mut reserved = 0;
    let mut rejected = 0;
    for attempt in attempts {
        let reservation = attempt.await.unwrap().expect("every reservation gets an answer");
        match reservation.status {
            ReservationStatus::Reserved => reserved += 1,
            ReservationStatus::Rejected => {
                assert_eq!(reservation.shortages[0].sku, "LAST-UNITS");
                rejected += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((reserved, rejected), (10, 40));
    assert_eq!(service.get_product("LAST-UNITS").await.unwrap().available, 0);
}

#[tokio::test]
async fn one_order_reserved_five_times_concurrently_holds_stock_once() {
    let moto = Moto::start().await.unwrap();
    let (service, _) = service(&moto).await;
    stock(&service, "MUG", 1250, 10).await;
    stock(&service, "TEE", 1999, 10).await;
    let lines =
        vec![RequestedLine { sku: "MUG".into(), quantity: 2 }, RequestedLine { sku: "TEE".into(), quantity: 3 }];
    let attempts: Vec<_> = (0..5)
        .map(|_| {
            let service = service.clone();
            let lines = lines.clone();
            tokio::spawn(async move { service.reserve(order_id(9), &lines, &CorrelationId::generate()).await })
        })
        .collect();
    let mut answers = Vec::new();
    for attempt in attempts {
        answers.push(attempt.await.unwrap().unwrap());
    }
    assert!(answers.iter().all(|a| *a == answers[0]), "every caller sees the one reservation");
    assert_eq!(answers[0].total_minor, 2 * 1250 + 3 * 1999);
    assert_eq!(service.get_product("MUG").await.unwrap().available, 8);
    assert_eq!(service.get_product("TEE").await.unwrap().available, 7);
}

#[tokio::test]
async fn a_shortage_on_one_line_leaves_every_line_untouched() {
    let moto = Moto::start().await.unwrap();
    let (service, _) = service(&moto).await;
    stock(&service, "PLENTY", 100, 50).await;
    stock(&service, "SCARCE", 100, 1).await;
    let lines =
        vec![RequestedLine { sku: "PLENTY".into(), quantity: 5 }, RequestedLine { sku: "SCARCE".into(), quantity: 2 }];
    let reservation = service.reserve(order_id(1), &lines, &CorrelationId::generate()).await.unwrap();
    assert_eq!(reservation.status, ReservationStatus::Rejected);
    assert_eq!(service.get_product("PLENTY").await.unwrap().available, 50);
    assert_eq!(service.get_product("SCARCE").await.unwrap().available, 1);
    assert_eq!(service.get_reservation(order_id(1)).await.unwrap(), Some(reservation));
}

#[tokio::test]
async fn release_and_commit_change_stock_once_whatever_the_repeats() {
    let moto = Moto::start().await.unwrap();
    let (service, _) = service(&moto).await;
    stock(&service, "A", 100, 10).await;
    let correlation = CorrelationId::generate();
    service.reserve(order_id(11), &one("A", 4), &correlation).await.unwrap();
    service.reserve(order_id(12), &one("A", 3), &correlation).await.unwrap();
    assert_eq!(service.get_product("A").await.unwrap().available, 3);
    let releases: Vec<_> = (0..3)
        .map(|_| {
            let service = service.clone();
            let correlation = correlation.clone();
            tokio::spawn(async move { service.release(order_id(11), &correlation).await })
        })
        .collect();
    for release in releases {
        assert_eq!(release.await.unwrap().unwrap().unwrap().status, ReservationStatus::Released);
    }
    assert_eq!(service.get_product("A").await.unwrap().available, 7, "4 units back, once");
    for _ in 0..2 {
        service.commit(order_id(12), &correlation).await.unwrap();
    }
    assert_eq!(service.get_reservation(order_id(12)).await.unwrap().unwrap().status, ReservationStatus::Committed);
    assert_eq!(service.get_product("A").await.unwrap().available, 7);
    assert!(service.release(order_id(13), &correlation).await.unwrap().unwrap().tombstone);
}

#[tokio::test]
async fn a_release_before_the_reservation_leaves_a_tombstone_that_late_and_racing_reservations_find() {
    let moto = Moto::start().await.unwrap();
    let (service, store) = service(&moto).await;
    stock(&service, "A", 100, 10).await;
    let correlation = CorrelationId::generate();

    // Out of order: the release first, then the late command twice.
    let tombstone = service.release(order_id(14), &correlation).await.unwrap().unwrap();
    assert!(tombstone.tombstone && tombstone.status == ReservationStatus::Released, "{tombstone:?}");
    for _ in 0..2 {
        assert_eq!(service.reserve(order_id(14), &one("A", 4), &correlation).await.unwrap(), tombstone);
    }
    assert_eq!(store.get_reservation(order_id(14)).await.unwrap(), Some(tombstone.clone()), "read back as written");
    assert_eq!(service.get_product("A").await.unwrap().available, 10, "nothing reserved");

    // A release and reservations racing for one order: whichever writes first, the stock ends
    // where it started and the record says released.
    let racers: Vec<_> = (0..6)
        .map(|i| {
            let service = service.clone();
            let correlation = correlation.clone();
            tokio::spawn(async move {
                if i == 2 {
                    service.release(order_id(15), &correlation).await.map(|r| r.unwrap().status)
                } else {
                    service.reserve(order_id(15), &one("A", 3), &correlation).await.map(|r| r.status)
                }
            })
        })
        .collect();
    for racer in racers {
        let status = racer.await.unwrap().unwrap();
        assert!(matches!(status, ReservationStatus::Reserved | ReservationStatus::Released), "{status:?}");
    }
    let raced = service.get_reservation(order_id(15)).await.unwrap().unwrap();
    assert_eq!(raced.status, ReservationStatus::Released, "{raced:?}");
    assert_eq!(service.get_product("A").await.unwrap().available, 10, "taken and returned, or never taken");
    assert_eq!(service.release(order_id(15), &correlation).await.unwrap().unwrap(), raced);
}

#[tokio::test]
async fn products_restocks_and_prices_round_trip() {
    let moto = Moto::start().await.unwrap();
    let (service, store) = service(&moto).await;
    stock(&service, "A", 100, 0).await;
    let correlation = CorrelationId::generate();
    let restock = Restock { restock_id: "r-1".into(), quantity: 7 };
    assert!(
        matches!(store.restock("A", &restock, &correlation).await.unwrap(), RestockOutcome::Applied(p) if p.available == 7)
    );
    assert!(matches!(
        store.restock("A", &restock, &correlation).await.unwrap(),
        RestockOutcome::AlreadyApplied(p) if p.available == 7
    ));
    // Changing the price keeps the stock.
    let spec = ProductSpec {
        name: "A2".into(),
        price: Money { amount_minor: 150, currency: "EUR".into() },
        low_stock_threshold: 1,
    };
    let product = service.put_product("A", &spec, &correlation).await.unwrap();
    assert_eq!((product.name.as_str(), product.price.amount_minor, product.available), ("A2", 150, 7));
    let reservation = service.reserve(order_id(16), &one("A", 2), &correlation).await.unwrap();
    assert_eq!(reservation.lines[0].unit_price_minor, 150);
    assert!(store.restock("GHOST", &restock, &correlation).await.is_err());
    assert_eq!(store.get_products(&["A".into(), "GHOST".into()]).await.unwrap().len(), 1);
}

#[tokio::test]
async fn consumed_event_markers_are_per_event_id_and_marking_twice_is_harmless() {
    let moto = Moto::start().await.unwrap();
    let (_, store) = service(&moto).await;
    let id = "0193a3c2-6200-7000-8000-0000000e0001";
    assert!(!store.was_processed(id).await.unwrap());
    store.mark_processed(id).await.unwrap();
    store.mark_processed(id).await.unwrap();
    assert!(store.was_processed(id).await.unwrap());
    assert!(!store.was_processed("0193a3c2-6200-7000-8000-0000000e0002").await.unwrap());
}

/// A table that fails: the store's error keeps the SDK's error as its source (`#[source]`), and
/// its message shows the request id and that error's chain down to DynamoDB's own words.
#[tokio::test]
async fn a_failing_table_is_a_backend_error_that_keeps_the_sdk_error_as_its_source() {
    use aws_sdk_dynamodb::config::http::HttpResponse;
    use aws_sdk_dynamodb::error::SdkError;
    use aws_sdk_dynamodb::operation::get_item::GetItemError;

    let moto = Moto::start().await.unwrap();
    let store = DynamoDbInventoryStore::new(aws_sdk_dynamodb::Client::new(&moto.sdk_config()), "no-such-table");
    let err = store.get_product("A").await.unwrap_err();
    let source = std::error::Error::source(&err).expect("the cause is kept");
    let call = source.downcast_ref::<shared::aws::dynamo::Failed>().expect("the failed DynamoDB call");
    let request_id = call.request_id().expect("DynamoDB's answer names its request").to_owned();
    let sdk = std::error::Error::source(call).and_then(|e| e.downcast_ref::<SdkError<GetItemError, HttpResponse>>());
    let sdk = sdk.expect("the SDK's own error");
    assert!(sdk.as_service_error().is_some_and(GetItemError::is_resource_not_found_exception), "{sdk:?}");
    assert!(matches!(err, StoreError::Backend(_)), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("ResourceNotFoundException") && message.contains(&request_id), "{message}");
}
