//! Reads a DynamoDB stream from moto and hands back records in the shape Lambda delivers them
//! (`aws_lambda_events::dynamodb::EventRecord`), so handlers see locally what they see in AWS.

use std::collections::BTreeMap;

use aws_lambda_events::dynamodb::{Event, EventRecord, StreamRecord};
use aws_sdk_dynamodbstreams::types::ShardIteratorType;

use crate::{Error, Moto};

pub struct StreamReader {
    client: aws_sdk_dynamodbstreams::Client,
    stream_arn: String,
    /// Next iterator per shard; `None` once a shard is closed and drained.
    iterators: BTreeMap<String, Option<String>>,
}

impl StreamReader {
    /// Starts at the beginning (TRIM_HORIZON) of the stream of `table`.
    pub async fn for_table(moto: &Moto, table: &str) -> Result<Self, Error> {
        let config = moto.sdk_config();
        let dynamodb = aws_sdk_dynamodb::Client::new(&config);
        let description = dynamodb.describe_table().table_name(table).send().await.map_err(Error::aws)?;
        let stream_arn = description
            .table()
            .and_then(|t| t.latest_stream_arn())
            .ok_or_else(|| Error::Aws(format!("table {table} has no stream")))?
            .to_owned();
        Ok(Self { client: aws_sdk_dynamodbstreams::Client::new(&config), stream_arn, iterators: BTreeMap::new() })
    }

    async fn discover_shards(&mut self) -> Result<(), Error> {
        let stream = self.client.describe_stream().stream_arn(&self.stream_arn).send().await.map_err(Error::aws)?;
        for shard in stream.stream_description().map(|d| d.shards()).unwrap_or_default() {
            let Some(shard_id) = shard.shard_id() else { continue };
            if self.iterators.contains_key(shard_id) {
                continue;
            }
            let iterator = self
                .client
                .get_shard_iterator()
                .stream_arn(&self.stream_arn)
                .shard_id(shard_id)
                .shard_iterator_type(ShardIteratorType::TrimHorizon)
                .send()
                .await
                .map_err(Error::aws)?
                .shard_iterator;
            self.iterators.insert(shard_id.to_owned(), iterator);
        }
        Ok(())
    }

    /// Every record written since the previous poll, oldest first, as Lambda would batch them.
    pub async fn poll(&mut self) -> Result<Vec<EventRecord>, Error> {
        self.discover_shards().await?;
        let mut records = Vec::new();
        for iterator in self.iterators.values_mut() {
            let Some(current) = iterator.clone() else { continue };
            let output = self.client.get_records().shard_iterator(current).send().await.map_err(Error::aws)?;
            for record in output.records() {
                records.push(to_lambda_record(record, &self.stream_arn));
            }
            *iterator = output.next_shard_iterator;
        }
        Ok(records)
    }

    /// Polls and wraps the records in a Lambda event.
    pub async fn poll_event(&mut self) -> Result<Event, Error> {
        let mut event = Event::default();
        event.records = self.poll().await?;
        Ok(event)
    }
}

pub fn to_lambda_record(record: &aws_sdk_dynamodbstreams::types::Record, stream_arn: &str) -> EventRecord {
    let mut change = StreamRecord::default();
    if let Some(data) = record.dynamodb() {
        change.keys = data.keys().cloned().map(Into::into).unwrap_or_default();
        change.new_image = data.new_image().cloned().map(Into::into).unwrap_or_default();
        change.old_image = data.old_image().cloned().map(Into::into).unwrap_or_default();
        change.sequence_number = data.sequence_number().map(str::to_owned);
        change.size_bytes = data.size_bytes().unwrap_or_default();
        if let Some(created) = data.approximate_creation_date_time() {
            change.approximate_creation_date_time =
                chrono::DateTime::from_timestamp(created.secs(), created.subsec_nanos()).unwrap_or_default();
        }
        change.stream_view_type = data
            .stream_view_type()
            .and_then(|v| serde_json::from_value(serde_json::Value::String(v.as_str().to_owned())).ok());
    }
    let mut out = EventRecord::default();
    out.aws_region = "us-east-1".into();
    out.event_id = record.event_id().unwrap_or_default().to_owned();
    out.event_name = record.event_name().map(|n| n.as_str().to_owned()).unwrap_or_default();
    out.event_source = Some("aws:dynamodb".into());
    out.event_version = record.event_version().map(str::to_owned);
    out.event_source_arn = Some(stream_arn.to_owned());
    out.change = change;
    out
}
