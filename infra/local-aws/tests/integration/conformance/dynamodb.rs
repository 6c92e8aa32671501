//! DynamoDB: conditions, indexes, TTL, transactions (with their stream), isolation and cost.

use std::time::Instant;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    ConditionCheck, Put, PutRequest, ReturnValuesOnConditionCheckFailure, TimeToLiveStatus, TransactWriteItem, Update,
    WriteRequest,
};
use aws_sdk_dynamodbstreams::types::ShardIteratorType;

use super::support::*;

fn put(table: &str, item: Item, condition: Option<&str>) -> TransactWriteItem {
    TransactWriteItem::builder()
        .put(
            Put::builder()
                .table_name(table)
                .set_item(Some(item))
                .set_condition_expression(condition.map(Into::into))
                .build()
                .unwrap(),
        )
        .build()
}

/// `SET stock = stock - :q` if `stock >= :q`, returning the item when the condition fails.
fn take(table: &str, key: Item, attribute: &str, quantity: i64) -> TransactWriteItem {
    TransactWriteItem::builder()
        .update(
            Update::builder()
                .table_name(table)
                .set_key(Some(key))
                .update_expression("SET #a = #a - :q")
                .condition_expression("#a >= :q")
                .expression_attribute_names("#a", attribute)
                .expression_attribute_values(":q", n(quantity))
                .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
                .build()
                .unwrap(),
        )
        .build()
}

fn exists(table: &str, key: Item) -> TransactWriteItem {
    TransactWriteItem::builder()
        .condition_check(
            ConditionCheck::builder()
                .table_name(table)
                .set_key(Some(key))
                .condition_expression("attribute_exists(pk)")
                .build()
                .unwrap(),
        )
        .build()
}

/// The cancellation reasons of a cancelled transaction: (code, item returned).
fn cancellation(err: SdkError<TransactWriteItemsError>) -> Vec<(String, Option<Item>)> {
    match err.into_service_error() {
        TransactWriteItemsError::TransactionCanceledException(e) => e
            .cancellation_reasons()
            .iter()
            .map(|r| (r.code().unwrap_or_default().to_owned(), r.item().cloned()))
            .collect(),
        other => panic!("expected TransactionCanceledException, got {other:?}"),
    }
}

// https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Expressions.ConditionExpressions.html
// https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_PutItem.html (ReturnValuesOnConditionCheckFailure)
#[tokio::test]
async fn condition_expressions_guard_writes() {
    let moto = moto().await;
    let table = template_table(&moto, "OrdersTable").await;
    let client = dynamodb(&moto);
    let order = item(&[("pk", s("ORDER#1")), ("sk", s("ORDER")), ("version", n(1)), ("amount_cents", n(150))]);
    // attribute_not_exists: the first put creates, the second is refused with the item.
    client
        .put_item()
        .table_name(&table)
        .set_item(Some(order.clone()))
        .condition_expression("attribute_not_exists(pk)")
        .send()
        .await
        .unwrap();
    let err = client
        .put_item()
        .table_name(&table)
        .set_item(Some(item(&[("pk", s("ORDER#1")), ("sk", s("ORDER")), ("version", n(9))])))
        .condition_expression("attribute_not_exists(pk)")
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
        .send()
        .await
        .unwrap_err();
    match err.into_service_error() {
        PutItemError::ConditionalCheckFailedException(e) => assert_eq!(e.item(), Some(&order)),
        other => panic!("expected ConditionalCheckFailedException, got {other:?}"),
    }
    // Comparisons: an optimistic-lock version and a range check.
    let update = |expected: i64, condition: &'static str| {
        client
            .update_item()
            .table_name(&table)
            .set_key(Some(key("ORDER#1", "ORDER")))
            .update_expression("SET version = :next")
            .condition_expression(condition)
            .expression_attribute_values(":v", n(expected))
            .expression_attribute_values(":next", n(expected + 1))
            .send()
    };
    assert!(update(1, "version = :v").await.is_ok(), "version 1 = 1");
    assert!(update(1, "version = :v").await.is_err(), "now version 2: a stale writer is refused");
    assert!(update(2, "version <> :v").await.is_err(), "<>");
    assert!(update(2, "version < :v").await.is_err(), "2 < 2 is false");
    assert!(
        update(2, "version <= :v AND amount_cents BETWEEN :v AND :v").await.is_err(),
        "BETWEEN 2 AND 2 excludes 150"
    );
    assert!(update(2, "version >= :v AND attribute_exists(amount_cents)").await.is_ok(), ">= and attribute_exists");
    let stored = get(&client, &table, key("ORDER#1", "ORDER")).await.unwrap();
    assert_eq!(number(&stored, "version"), 3);
    // A refused write changes nothing.
    assert_eq!(number(&stored, "amount_cents"), 150);
}

// https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/GSI.html
// https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/bp-indexes-general-sparse-indexes.html
#[tokio::test]
async fn a_global_secondary_index_is_queried_by_its_own_keys() {
    let moto = moto().await;
    let table = template_table(&moto, "OrdersTable").await;
    let client = dynamodb(&moto);
    for (id, customer, created) in [("1", "c1", "2026-01-01"), ("2", "c2", "2026-01-02"), ("3", "c1", "2026-01-03")] {
        let order = item(&[
            ("pk", s(&format!("ORDER#{id}"))),
            ("sk", s("ORDER")),
            ("gsi1pk", s(&format!("CUSTOMER#{customer}"))),
            ("gsi1sk", s(created)),
        ]);
        client.put_item().table_name(&table).set_item(Some(order)).send().await.unwrap();
    }
    // No gsi1 keys: not in the index (a sparse index).
    client.put_item().table_name(&table).set_item(Some(key("IDEMPOTENCY#k", "KEY"))).send().await.unwrap();
    let output = client
        .query()
        .table_name(&table)
        .index_name("gsi1")
        .key_condition_expression("gsi1pk = :c")
        .expression_attribute_values(":c", s("CUSTOMER#c1"))
        .scan_index_forward(false)
        .send()
        .await
        .unwrap();
    let ids: Vec<_> = output.items().iter().map(|i| i["pk"].as_s().unwrap().clone()).collect();
    assert_eq!(ids, ["ORDER#3", "ORDER#1"], "c1's orders, newest first");
    let all = client.scan().table_name(&table).index_name("gsi1").send().await.unwrap();
    assert_eq!(all.count(), 3, "the item without index keys is not in the index");
}

// https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/TTL.html
// https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/howitworks-ttl.html ("Items that
// have expired, but haven't yet been deleted by TTL, still appear in reads, queries, and scans"):
// the shop filters expired items itself and never waits for them to vanish.
#[tokio::test]
async fn the_ttl_attribute_is_accepted_and_described() {
    let moto = moto().await;
    let table = template_table(&moto, "OrdersTable").await;
    let client = dynamodb(&moto);
    let described = client.describe_time_to_live().table_name(&table).send().await.unwrap();
    let ttl = described.time_to_live_description().unwrap();
    assert_eq!(ttl.time_to_live_status(), Some(&TimeToLiveStatus::Enabled));
    assert_eq!(ttl.attribute_name(), Some("expires_at"));
    let expired = chrono::Utc::now().timestamp() - 60;
    let outbox = item(&[("pk", s("ORDER#1")), ("sk", s("OUTBOX#e1")), ("expires_at", n(expired))]);
    client.put_item().table_name(&table).set_item(Some(outbox)).send().await.unwrap();
    let stored = get(&client, &table, key("ORDER#1", "OUTBOX#e1")).await.expect("not yet deleted by TTL");
    assert_eq!(number(&stored, "expires_at"), expired);
}

// https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_TransactWriteItems.html
// https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis.html
// https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Streams.html
// All or nothing: a cancelled transaction writes no item and no stream record; CancellationReasons
// has one entry per item in order (None for those that passed); a stream iterator opened before
// it sees every later write.
#[tokio::test]
async fn a_cancelled_transaction_leaves_no_item_and_no_stream_record() {
    let moto = moto().await;
    let table = template_table(&moto, "InventoryTable").await;
    let client = dynamodb(&moto);
    let stream = Stream::of(&moto, &table).await;
    let product = item(&[("pk", s("SKU#a")), ("sk", s("PRODUCT")), ("stock", n(5))]);
    client.put_item().table_name(&table).set_item(Some(product.clone())).send().await.unwrap();
    // An iterator opened (and read) before the cancelled transaction.
    let before = stream.iterator(ShardIteratorType::TrimHorizon, None).await;
    let (first, before) = stream.read(&before).await;
    assert_eq!(first.iter().map(what).collect::<Vec<_>>(), [("INSERT".into(), "SKU#a".into(), "PRODUCT".into())]);

    let reservation = |order: &str| item(&[("pk", s(&format!("RESERVATION#{order}"))), ("sk", s("RESERVATION"))]);
    let err = client
        .transact_write_items()
        .transact_items(put(&table, reservation("o1"), Some("attribute_not_exists(pk)")))
        .transact_items(take(&table, key("SKU#a", "PRODUCT"), "stock", 9))
        .transact_items(exists(&table, key("SKU#missing", "PRODUCT")))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        cancellation(err),
        [
            ("None".to_owned(), None),
            ("ConditionalCheckFailed".to_owned(), Some(product.clone())),
            ("ConditionalCheckFailed".to_owned(), None),
        ]
    );
    assert_eq!(get(&client, &table, key("RESERVATION#o1", "RESERVATION")).await, None, "nothing was written");
    assert_eq!(number(&get(&client, &table, key("SKU#a", "PRODUCT")).await.unwrap(), "stock"), 5);

    // One item twice in a transaction: a ValidationException, nothing applied.
    let err = client
        .transact_write_items()
        .transact_items(put(&table, reservation("o9"), None))
        .transact_items(take(&table, key("SKU#a", "PRODUCT"), "stock", 1))
        .transact_items(exists(&table, key("SKU#a", "PRODUCT")))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.into_service_error().meta().code(), Some("ValidationException"));
    assert_eq!(get(&client, &table, key("RESERVATION#o9", "RESERVATION")).await, None);

    // Later writes: a committed transaction, then a plain put.
    client
        .transact_write_items()
        .transact_items(put(&table, reservation("o2"), Some("attribute_not_exists(pk)")))
        .transact_items(take(&table, key("SKU#a", "PRODUCT"), "stock", 2))
        .send()
        .await
        .unwrap();
    client.put_item().table_name(&table).set_item(Some(key("SKU#c", "PRODUCT"))).send().await.unwrap();

    let expected_later = [
        ("INSERT".to_owned(), "RESERVATION#o2".to_owned(), "RESERVATION".to_owned()),
        ("MODIFY".to_owned(), "SKU#a".to_owned(), "PRODUCT".to_owned()),
        ("INSERT".to_owned(), "SKU#c".to_owned(), "PRODUCT".to_owned()),
    ];
    // A transaction's items have no order between them; the put after it comes after it.
    let sorted = |mut v: Vec<(String, String, String)>| {
        let transaction = v.len().min(2);
        v[..transaction].sort();
        v
    };
    let (later, _) = stream.read(&before).await;
    assert_eq!(sorted(later.iter().map(what).collect()), expected_later, "the iterator opened before sees them");
    let everything: Vec<_> = stream.all().await.iter().map(what).collect();
    assert_eq!(everything.len(), 4, "no record of the cancelled or invalid transactions: {everything:?}");
    assert_eq!(sorted(everything[1..].to_vec()), expected_later);
}

// https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis.html
// (transactions are serializable). 20 concurrent conditional decrements of a 10-unit counter:
// exactly 10 succeed, the counter ends at 0, and its stream shows 10 decrements in order.
#[tokio::test]
async fn concurrent_conditional_transactions_on_one_item_are_serialisable() {
    let moto = moto().await;
    let table = template_table(&moto, "InventoryTable").await;
    let client = dynamodb(&moto);
    let stream = Stream::of(&moto, &table).await;
    let product = item(&[("pk", s("SKU#hot")), ("sk", s("PRODUCT")), ("available", n(10))]);
    client.put_item().table_name(&table).set_item(Some(product)).send().await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for buyer in 0..20 {
        let (client, table) = (client.clone(), table.clone());
        tasks.spawn(async move {
            let reservation = item(&[("pk", s(&format!("RESERVATION#{buyer}"))), ("sk", s("RESERVATION"))]);
            client
                .transact_write_items()
                .transact_items(put(&table, reservation, Some("attribute_not_exists(pk)")))
                .transact_items(take(&table, key("SKU#hot", "PRODUCT"), "available", 1))
                .send()
                .await
                .map_err(cancellation)
        });
    }
    let outcomes = tasks.join_all().await;
    let succeeded = outcomes.iter().filter(|o| o.is_ok()).count();
    for refused in outcomes.iter().filter_map(|o| o.as_ref().err()) {
        assert_eq!(refused[0].0, "None");
        assert_eq!(refused[1].0, "ConditionalCheckFailed");
    }
    assert_eq!(succeeded, 10, "exactly the 10 units were sold");
    assert_eq!(number(&get(&client, &table, key("SKU#hot", "PRODUCT")).await.unwrap(), "available"), 0);
    let records = stream.all().await;
    let reservations = records.iter().filter(|r| what(r).1.starts_with("RESERVATION#")).count();
    assert_eq!(reservations, 10, "one INSERT per sale, none for the refused");
    let stock: Vec<(i64, i64)> = records
        .iter()
        .filter(|r| what(r).0 == "MODIFY")
        .map(|r| {
            let data = r.dynamodb().unwrap();
            let value =
                |image: Option<&std::collections::HashMap<String, aws_sdk_dynamodbstreams::types::AttributeValue>>| {
                    image.and_then(|i| i.get("available")).and_then(|v| v.as_n().ok()).unwrap().parse::<i64>().unwrap()
                };
            (value(data.old_image()), value(data.new_image()))
        })
        .collect();
    assert_eq!(stock, (0..10).rev().map(|left| (left + 1, left)).collect::<Vec<_>>());
}

// https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_TransactWriteItems.html
// A transaction touches its own items: its cost does not depend on the size of the table (moto
// deep-copied the table for each one). Median latency on an empty table and on one with 2,000
// items, measured alternately in the same run.
#[tokio::test]
async fn transaction_cost_does_not_depend_on_table_size() {
    let moto = moto().await;
    let client = dynamodb(&moto);
    let empty = template_table(&moto, "InventoryTable").await;
    let full = template_table(&moto, "InventoryTable").await;
    for batch in 0..80 {
        let requests = (0..25).map(|i| {
            let product = item(&[
                ("pk", s(&format!("SKU#{batch}-{i}"))),
                ("sk", s("PRODUCT")),
                ("available", n(100)),
                ("name", s(&"x".repeat(200))),
            ]);
            WriteRequest::builder().put_request(PutRequest::builder().set_item(Some(product)).build().unwrap()).build()
        });
        client.batch_write_item().request_items(&full, requests.collect()).send().await.unwrap();
    }
    assert_eq!(
        client.scan().table_name(&full).select(aws_sdk_dynamodb::types::Select::Count).send().await.unwrap().count(),
        2000
    );
    for table in [&empty, &full] {
        client
            .put_item()
            .table_name(table)
            .set_item(Some(item(&[("pk", s("SKU#t")), ("sk", s("PRODUCT")), ("available", n(1000))])))
            .send()
            .await
            .unwrap();
    }
    let mut latencies = [Vec::new(), Vec::new()];
    for round in 0..30 {
        for (which, table) in [&empty, &full].into_iter().enumerate() {
            let reservation = item(&[("pk", s(&format!("RESERVATION#{round}"))), ("sk", s("RESERVATION"))]);
            let started = Instant::now();
            client
                .transact_write_items()
                .transact_items(put(table, reservation, Some("attribute_not_exists(pk)")))
                .transact_items(take(table, key("SKU#t", "PRODUCT"), "available", 1))
                .send()
                .await
                .unwrap();
            latencies[which].push(started.elapsed().as_secs_f64() * 1000.0);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (at_0, at_2000) = (median(&mut latencies[0]), median(&mut latencies[1]));
    eprintln!("TransactWriteItems median: {at_0:.1} ms on an empty table, {at_2000:.1} ms at 2,000 items");
    assert!(at_2000 < 3.0 * at_0, "{at_2000:.1} ms at 2,000 items vs {at_0:.1} ms empty");
}
