//! The DynamoDB order store against moto, on a table created from template.yaml.

use std::sync::Arc;

use chrono::Utc;
use local_aws::Moto;
use orders::adapters::dynamodb::DynamoDbOrderStore;
use orders::domain::{Order, OrderStatus, PlaceOrderRequest, RequestedItem};
use orders::events;
use orders::ports::{CreateOutcome, IdempotencyClaim, OrderStore, StoreError};
use orders::service::{OrderService, OrdersError};
use shared_core::Conditional;
use shared_core::CorrelationId;

async fn store(moto: &Moto) -> (DynamoDbOrderStore, aws_sdk_dynamodb::Client, String) {
    let table = moto.create_project_table("OrdersTable", "orders").await.unwrap();
    let client = aws_sdk_dynamodb::Client::new(&moto.sdk_config());
    (DynamoDbOrderStore::new(client.clone(), &table), client, table)
}

fn request(customer: &str, sku: &str) -> PlaceOrderRequest {
    PlaceOrderRequest {
        customer_id: customer.into(),
        payment_method: "pm_card_visa".into(),
        items: vec![RequestedItem { sku: sku.into(), quantity: 3 }],
    }
}

fn order(customer: &str) -> Order {
    Order::place(request(customer, "SKU-1").validate().unwrap(), Utc::now())
}

async fn item_count(client: &aws_sdk_dynamodb::Client, table: &str) -> usize {
    client.scan().table_name(table).send().await.unwrap().items().len()
}

#[tokio::test]
async fn an_order_and_its_outbox_event_are_written_together_and_read_back() {
    let moto = Moto::start().await.unwrap();
    let (store, client, table) = store(&moto).await;
    let order = order("cust-1");
    let event = events::order_created(&order, &CorrelationId::generate());
    assert_eq!(store.create(&order, std::slice::from_ref(&event), None).await.unwrap(), CreateOutcome::Created);
    assert_eq!(store.get(order.id).await.unwrap(), Some(order.clone()));
    assert_eq!(item_count(&client, &table).await, 2, "the order and one outbox record");

    // Writing the same order again fails as a whole: no second outbox record appears.
    let again = store.create(&order, &[events::order_created(&order, &CorrelationId::generate())], None).await;
    assert!(matches!(again, Err(StoreError::AlreadyExists(id)) if id == order.id), "{again:?}");
    assert_eq!(item_count(&client, &table).await, 2);
    assert_eq!(store.get(shared_core::OrderId::new()).await.unwrap(), None);
}

#[tokio::test]
async fn idempotency_keys_replay_the_first_order_and_refuse_another_request() {
    let moto = Moto::start().await.unwrap();
    let (store, client, table) = store(&moto).await;
    let service = OrderService::new(Arc::new(store));
    let correlation = CorrelationId::generate();
    let first = service.place_order(request("cust-1", "A"), &correlation, Some("key-1")).await.unwrap();
    let second = service.place_order(request("cust-1", "A"), &correlation, Some("key-1")).await.unwrap();
    assert!(!first.replayed && second.replayed);
    assert_eq!(first.order, second.order);
    let other = service.place_order(request("cust-1", "B"), &correlation, Some("key-1")).await;
    assert!(matches!(other, Err(OrdersError::IdempotencyKeyReused)), "{other:?}");
    assert_eq!(item_count(&client, &table).await, 3, "one order, one outbox record, one key");
}

#[tokio::test]
async fn concurrent_requests_with_one_key_create_one_order() {
    let moto = Moto::start().await.unwrap();
    let (store, client, table) = store(&moto).await;
    let service = OrderService::new(Arc::new(store));
    let correlation = CorrelationId::generate();
    let attempts = (0..5).map(|_| {
        let service = service.clone();
        let correlation = correlation.clone();
        tokio::spawn(async move { service.place_order(request("cust-1", "A"), &correlation, Some("same")).await })
    });
    let mut ids = std::collections::HashSet::new();
    for attempt in attempts {
        ids.insert(attempt.await.unwrap().unwrap().order.id);
    }
    assert_eq!(ids.len(), 1);
    assert_eq!(item_count(&client, &table).await, 3);
}

#[tokio::test]
async fn customers_orders_page_newest_first_through_the_gsi() {
    let moto = Moto::start().await.unwrap();
    let (store, _, _) = store(&moto).await;
    let mut created = Vec::new();
    for _ in 0..7 {
        let order = order("cust-pages");
        store.create(&order, &[], None).await.unwrap();
        created.push(order.id);
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    store.create(&order("someone-else"), &[], None).await.unwrap();
    created.reverse();
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = store.list_by_customer("cust-pages", 3, cursor.as_deref()).await.unwrap();
        assert!(page.orders.len() <= 3);
        seen.extend(page.orders.iter().map(|o| o.id));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, created);

    let page = store.list_by_customer("cust-pages", 3, None).await.unwrap();
    let foreign = store.list_by_customer("someone-else", 3, page.next_cursor.as_deref()).await;
    assert!(matches!(foreign, Err(StoreError::InvalidCursor)), "a cursor is bound to its customer");
    let garbage = store.list_by_customer("cust-pages", 3, Some("garbage")).await;
    assert!(matches!(garbage, Err(StoreError::InvalidCursor)));
}

#[tokio::test]
async fn updates_are_optimistic_and_carry_their_events() {
    let moto = Moto::start().await.unwrap();
    let (store, client, table) = store(&moto).await;
    let correlation = CorrelationId::generate();
    let placed = order("cust-1");
    store.create(&placed, &[], None).await.unwrap();

    let mut confirmed = placed.clone();
    confirmed.confirm(Utc::now()).unwrap();
    let applied = store.update(&confirmed, &[events::order_confirmed(&confirmed, &correlation)]).await.unwrap();
    assert_eq!(applied, Conditional::Applied);
    assert_eq!(store.get(placed.id).await.unwrap().unwrap().status, OrderStatus::Confirmed);

    // A writer that read the order before the confirmation loses, and its event is not written.
    let mut stale = placed.clone();
    stale.cancel("too slow", Utc::now()).unwrap();
    let result = store.update(&stale, &[events::order_cancelled(&stale, &correlation)]).await;
    assert_eq!(result.unwrap(), Conditional::Lost, "a lost race is an answer, not an error");
    assert_eq!(store.get(placed.id).await.unwrap().unwrap().status, OrderStatus::Confirmed);
    assert_eq!(item_count(&client, &table).await, 2, "the order and the OrderConfirmed record only");
}

#[tokio::test]
async fn idempotency_claims_are_enforced_by_the_store_itself() {
    let moto = Moto::start().await.unwrap();
    let (store, _, _) = store(&moto).await;
    let claim = IdempotencyClaim { customer_id: "c".into(), key: "k".into(), request: "{\"a\":1}".into() };
    let first = order("c");
    assert_eq!(store.create(&first, &[], Some(&claim)).await.unwrap(), CreateOutcome::Created);
    let second = order("c");
    assert_eq!(store.create(&second, &[], Some(&claim)).await.unwrap(), CreateOutcome::Replayed(first.id));
    assert_eq!(store.get(second.id).await.unwrap(), None, "the replay wrote nothing");
    // The same key and request of another customer is that customer's own first use of it.
    let theirs = IdempotencyClaim { customer_id: "d".into(), ..claim.clone() };
    let third = order("d");
    assert_eq!(store.create(&third, &[], Some(&theirs)).await.unwrap(), CreateOutcome::Created);
    assert_eq!(store.get(third.id).await.unwrap().map(|o| o.customer_id), Some("d".into()));
}

/// GetItem costs one read unit when strongly consistent and half of one when not (on-demand
/// pricing, items under 4 KB): moto_server.py counts them so, and the difference shows which
/// kind of read the store made. <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/read-write-operations.html>
async fn reads_of(moto: &Moto, run: impl std::future::Future<Output = ()>) -> (u64, f64) {
    let before = moto.dynamodb_usage().await.unwrap();
    run.await;
    let after = moto.dynamodb_usage().await.unwrap();
    let gets = |u: &local_aws::DynamoDbUsage| u.requests.get("GetItem").copied().unwrap_or(0);
    (gets(&after) - gets(&before), after.read_units - before.read_units)
}

#[tokio::test]
async fn reads_that_decide_an_answer_right_after_a_write_are_strongly_consistent() {
    let moto = Moto::start().await.unwrap();
    let (store, _, _) = store(&moto).await;
    let service = OrderService::new(Arc::new(store));
    let correlation = CorrelationId::generate();
    let first = service.place_order(request("cust-1", "A"), &correlation, Some("key-1")).await.unwrap();

    // The replay reads the idempotency record, then the order it names, both just written.
    let (gets, units) = reads_of(&moto, async {
        let replay = service.place_order(request("cust-1", "A"), &correlation, Some("key-1")).await.unwrap();
        assert!(replay.replayed);
        assert_eq!(replay.order, first.order);
    })
    .await;
    assert_eq!((gets, units), (2, 2.0), "two strongly consistent GetItems");

    // A saga step reads the order before changing its status.
    let (gets, units) = reads_of(&moto, async {
        service.confirm(first.order.id, &correlation).await.unwrap();
    })
    .await;
    assert_eq!((gets, units), (1, 1.0));
}

/// A table that fails: the store's error keeps the SDK's error as its source (`#[source]`), and
/// its message shows the request id and that error's chain down to DynamoDB's own words.
#[tokio::test]
async fn a_failing_table_is_a_backend_error_that_keeps_the_sdk_error_as_its_source() {
    use aws_sdk_dynamodb::config::http::HttpResponse;
    use aws_sdk_dynamodb::error::SdkError;
    use aws_sdk_dynamodb::operation::get_item::GetItemError;

    let moto = Moto::start().await.unwrap();
    let store = DynamoDbOrderStore::new(aws_sdk_dynamodb::Client::new(&moto.sdk_config()), "no-such-table");
    let err = store.get(shared_core::OrderId::new()).await.unwrap_err();
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
