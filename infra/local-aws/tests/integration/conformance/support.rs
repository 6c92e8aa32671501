//! Helpers shared by the conformance checks.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aws_config::retry::RetryConfig;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodbstreams::types::{Record, ShardIteratorType};
use local_aws::Moto;

pub type Item = HashMap<String, AttributeValue>;

/// Our moto, started for one check. Says on stderr which fixes the launcher applied (none with
/// `LOCAL_AWS_UNPATCHED=1`), so a failing run shows what it ran against.
pub async fn moto() -> Moto {
    let moto = Moto::start().await.expect("moto starts (`make setup` installs it)");
    let fixes: serde_json::Value = reqwest::get(format!("{}/_local/fixes", moto.endpoint()))
        .await
        .expect("GET /_local/fixes")
        .json()
        .await
        .expect("fixes are JSON");
    eprintln!("moto at {} with fixes {}", moto.endpoint(), fixes["fixes"]);
    moto
}

/// SDK configuration with one attempt per call: a check counts exactly what the emulator did,
/// never what a retry added.
pub fn config(moto: &Moto) -> aws_config::SdkConfig {
    moto.sdk_config().into_builder().retry_config(RetryConfig::standard().with_max_attempts(1)).build()
}

pub fn dynamodb(moto: &Moto) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(&config(moto))
}

pub fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

pub fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub fn item(pairs: &[(&str, AttributeValue)]) -> Item {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect()
}

/// The key of the template's tables (pk, sk).
pub fn key(pk: &str, sk: &str) -> Item {
    item(&[("pk", s(pk)), ("sk", s(sk))])
}

/// A table declared in `template.yaml`, created under a fresh name.
pub async fn template_table(moto: &Moto, logical_id: &str) -> String {
    moto.create_project_table(logical_id, &logical_id.to_lowercase()).await.expect("table created")
}

pub async fn get(client: &aws_sdk_dynamodb::Client, table: &str, key: Item) -> Option<Item> {
    client.get_item().table_name(table).set_key(Some(key)).consistent_read(true).send().await.expect("GetItem").item
}

pub fn number(item: &Item, name: &str) -> i64 {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v.parse().expect("a number"),
        other => panic!("{name} is not a number: {other:?}"),
    }
}

/// A DynamoDB stream, read with the dynamodbstreams API.
pub struct Stream {
    pub client: aws_sdk_dynamodbstreams::Client,
    pub arn: String,
    pub shard: String,
}

impl Stream {
    pub async fn of(moto: &Moto, table: &str) -> Self {
        let config = config(moto);
        let described = aws_sdk_dynamodb::Client::new(&config).describe_table().table_name(table).send().await.unwrap();
        let arn = described.table().and_then(|t| t.latest_stream_arn()).expect("the table has a stream").to_owned();
        let client = aws_sdk_dynamodbstreams::Client::new(&config);
        let stream = client.describe_stream().stream_arn(&arn).send().await.unwrap();
        let shards = stream.stream_description().unwrap().shards();
        assert_eq!(shards.len(), 1, "one shard for a small table");
        let shard = shards[0].shard_id().unwrap().to_owned();
        Self { client, arn, shard }
    }

    pub async fn iterator(&self, kind: ShardIteratorType, sequence_number: Option<&str>) -> String {
        self.client
            .get_shard_iterator()
            .stream_arn(&self.arn)
            .shard_id(&self.shard)
            .shard_iterator_type(kind)
            .set_sequence_number(sequence_number.map(str::to_owned))
            .send()
            .await
            .expect("GetShardIterator")
            .shard_iterator
            .expect("an iterator")
    }

    /// One GetRecords: the records and the next iterator.
    pub async fn read(&self, iterator: &str) -> (Vec<Record>, String) {
        let output = self.client.get_records().shard_iterator(iterator).send().await.expect("GetRecords");
        (output.records().to_vec(), output.next_shard_iterator.expect("an open shard has a next iterator"))
    }

    /// Everything from TRIM_HORIZON.
    pub async fn all(&self) -> Vec<Record> {
        let iterator = self.iterator(ShardIteratorType::TrimHorizon, None).await;
        self.read(&iterator).await.0
    }
}

/// (eventName, pk, sk) of a stream record.
pub fn what(record: &Record) -> (String, String, String) {
    let data = record.dynamodb().expect("a change");
    let keys = data.keys().expect("keys");
    let text = |name: &str| match keys.get(name) {
        Some(aws_sdk_dynamodbstreams::types::AttributeValue::S(v)) => v.clone(),
        other => panic!("key {name}: {other:?}"),
    };
    (record.event_name().expect("eventName").as_str().to_owned(), text("pk"), text("sk"))
}

/// Sequence numbers are decimal strings of up to 40 digits: compared as numbers.
pub fn sequence(record: &Record) -> (usize, String) {
    let number = record.dynamodb().and_then(|d| d.sequence_number()).expect("a sequence number").to_owned();
    (number.len(), number)
}

/// A queue: its URL and ARN.
pub async fn queue(sqs: &aws_sdk_sqs::Client, name: &str) -> (String, String) {
    let url = sqs.create_queue().queue_name(name).send().await.unwrap().queue_url.unwrap();
    let arn = local_aws::tap::queue_arn(sqs, &url).await.unwrap();
    (url, arn)
}

/// Receives (and deletes) messages until `count` arrived or `within` passed.
pub async fn receive(sqs: &aws_sdk_sqs::Client, url: &str, count: usize, within: Duration) -> Vec<String> {
    let deadline = Instant::now() + within;
    let mut bodies = Vec::new();
    while bodies.len() < count && Instant::now() < deadline {
        let output =
            sqs.receive_message().queue_url(url).max_number_of_messages(10).wait_time_seconds(1).send().await.unwrap();
        for message in output.messages() {
            bodies.push(message.body().unwrap_or_default().to_owned());
            sqs.delete_message().queue_url(url).receipt_handle(message.receipt_handle().unwrap()).send().await.unwrap();
        }
    }
    bodies
}

/// Messages waiting now, without waiting.
pub async fn waiting(sqs: &aws_sdk_sqs::Client, url: &str) -> usize {
    let output =
        sqs.receive_message().queue_url(url).max_number_of_messages(10).wait_time_seconds(0).send().await.unwrap();
    output.messages().len()
}
