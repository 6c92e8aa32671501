//! DynamoDB Streams: iterator types, images, order, retention.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodbstreams::types::{AttributeValue as StreamValue, OperationType, ShardIteratorType, StreamViewType};

use super::support::*;

fn image_number(image: Option<&HashMap<String, StreamValue>>, name: &str) -> Option<i64> {
    image?.get(name)?.as_n().ok()?.parse().ok()
}

// https://docs.aws.amazon.com/amazondynamodbstreams/latest/APIReference/API_GetShardIterator.html
// https://docs.aws.amazon.com/amazondynamodbstreams/latest/APIReference/API_StreamRecord.html
// https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Streams.html ("each stream record
// appears exactly once", "in the same sequence as the actual modifications to the item")
#[tokio::test]
async fn iterators_images_and_order() {
    let moto = moto().await;
    let table = template_table(&moto, "InventoryTable").await;
    let client = dynamodb(&moto);
    let stream = Stream::of(&moto, &table).await;
    let latest_before = stream.iterator(ShardIteratorType::Latest, None).await;
    let a = || key("SKU#a", "PRODUCT");
    client
        .put_item()
        .table_name(&table)
        .set_item(Some(item(&[("pk", s("SKU#a")), ("sk", s("PRODUCT")), ("stock", n(5))])))
        .send()
        .await
        .unwrap();
    client
        .update_item()
        .table_name(&table)
        .set_key(Some(a()))
        .update_expression("SET stock = :s")
        .expression_attribute_values(":s", n(3))
        .send()
        .await
        .unwrap();
    // An UpdateItem that creates its item is one INSERT with the whole new image.
    client
        .update_item()
        .table_name(&table)
        .set_key(Some(key("SKU#b", "PRODUCT")))
        .update_expression("ADD stock :s")
        .expression_attribute_values(":s", n(7))
        .send()
        .await
        .unwrap();
    client.delete_item().table_name(&table).set_key(Some(a())).send().await.unwrap();

    let records = stream.all().await;
    let seen: Vec<_> = records.iter().map(what).collect();
    let expected = [("INSERT", "SKU#a"), ("MODIFY", "SKU#a"), ("INSERT", "SKU#b"), ("REMOVE", "SKU#a")]
        .map(|(e, pk)| (e.to_owned(), pk.to_owned(), "PRODUCT".to_owned()));
    assert_eq!(seen, expected, "TRIM_HORIZON: every change once, in order");
    let sequences: Vec<_> = records.iter().map(sequence).collect();
    assert!(sequences.windows(2).all(|w| w[0] < w[1]), "sequence numbers increase: {sequences:?}");

    let images: Vec<_> = records
        .iter()
        .map(|r| {
            let d = r.dynamodb().unwrap();
            assert_eq!(d.stream_view_type(), Some(&StreamViewType::NewAndOldImages));
            (image_number(d.old_image(), "stock"), image_number(d.new_image(), "stock"))
        })
        .collect();
    assert_eq!(images, [(None, Some(5)), (Some(5), Some(3)), (None, Some(7)), (Some(3), None)]);
    assert_eq!(records[0].event_name(), Some(&OperationType::Insert));
    assert!(records[0].dynamodb().unwrap().old_image().is_none(), "INSERT has no old image");
    assert!(records[3].dynamodb().unwrap().new_image().is_none(), "REMOVE has no new image");
    let b_image = records[2].dynamodb().unwrap().new_image().unwrap();
    assert_eq!(b_image.len(), 3, "pk, sk and stock: {b_image:?}");

    // AT_SEQUENCE_NUMBER starts at the record, AFTER_SEQUENCE_NUMBER after it.
    let second = records[1].dynamodb().unwrap().sequence_number().unwrap();
    let at = stream.iterator(ShardIteratorType::AtSequenceNumber, Some(second)).await;
    assert_eq!(stream.read(&at).await.0.iter().map(what).collect::<Vec<_>>(), expected[1..]);
    let after = stream.iterator(ShardIteratorType::AfterSequenceNumber, Some(second)).await;
    let (rest, next) = stream.read(&after).await;
    assert_eq!(rest.iter().map(what).collect::<Vec<_>>(), expected[2..]);

    // LATEST: only what comes after the iterator was taken.
    let latest = stream.iterator(ShardIteratorType::Latest, None).await;
    let (nothing, latest) = stream.read(&latest).await;
    assert!(nothing.is_empty());
    client.put_item().table_name(&table).set_item(Some(key("SKU#c", "PRODUCT"))).send().await.unwrap();
    let insert_c = vec![("INSERT".to_owned(), "SKU#c".to_owned(), "PRODUCT".to_owned())];
    assert_eq!(stream.read(&latest).await.0.iter().map(what).collect::<Vec<_>>(), insert_c);
    // A LATEST iterator taken before any write sees them all; a NextShardIterator goes on.
    let (from_start, _) = stream.read(&latest_before).await;
    assert_eq!(from_start.len(), 5);
    assert_eq!(stream.read(&next).await.0.iter().map(what).collect::<Vec<_>>(), insert_c);
}

// https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Streams.html ("All data in
// DynamoDB Streams is subject to a 24-hour lifetime"). Locally the bound is configurable; here
// it is one second: older records are trimmed, sequence numbers go on, and TRIM_HORIZON starts
// at the oldest record kept.
#[tokio::test]
async fn records_older_than_the_retention_are_trimmed() {
    let moto = moto().await;
    let response = reqwest::Client::new()
        .post(format!("{}/_local/config", moto.endpoint()))
        .json(&serde_json::json!({"stream_retention_seconds": 1}))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    let table = template_table(&moto, "InventoryTable").await;
    let client = dynamodb(&moto);
    let stream = Stream::of(&moto, &table).await;
    client.put_item().table_name(&table).set_item(Some(key("SKU#old", "PRODUCT"))).send().await.unwrap();
    let old = stream.all().await;
    assert_eq!(old.len(), 1);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    client.put_item().table_name(&table).set_item(Some(key("SKU#new", "PRODUCT"))).send().await.unwrap();
    let kept = stream.all().await;
    assert_eq!(kept.iter().map(what).collect::<Vec<_>>(), [("INSERT".into(), "SKU#new".into(), "PRODUCT".into())]);
    assert!(sequence(&kept[0]) > sequence(&old[0]));
    let after_old =
        stream.iterator(ShardIteratorType::AfterSequenceNumber, old[0].dynamodb().unwrap().sequence_number()).await;
    assert_eq!(stream.read(&after_old).await.0.len(), 1);
}
