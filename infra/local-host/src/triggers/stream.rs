//! A `DynamoDB` stream trigger, as Lambda's event source mapping runs it
//! (<https://docs.aws.amazon.com/lambda/latest/dg/with-ddb.html>): each shard is polled four
//! times a second; records pass the trigger's `FilterCriteria` (any filter matching keeps a
//! record); they are handed over in batches of `BatchSize`, in order; with
//! `ReportBatchItemFailures` the batch is retried from the first failed record, up to
//! `MaximumRetryAttempts`, and then the on-failure destination gets what Lambda sends it: a
//! record of the failed batch (shard, first and last sequence number), not the records
//! (<https://docs.aws.amazon.com/lambda/latest/dg/services-dynamodb-errors.html>), which stay in
//! the stream (24 hours in AWS) and in the table for a redrive.
//!
//! After every batch the function is done with, the position is saved ([`Checkpoints`]), so a
//! restarted host resumes each shard where it stopped.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lambda_events::dynamodb::{Event as StreamEvent, EventRecord};
use aws_sdk_dynamodbstreams::types::ShardIteratorType;
use serde_json::{Value, json};

use super::{function_arn, send_to_destination};
use crate::Invocation;
use crate::activity::Activity;
use crate::checkpoint::Checkpoints;
use crate::filter::Filter;
use crate::functions::StreamFunction;
use crate::spec::StreamSpec;

const POLL_INTERVAL: Duration = Duration::from_millis(250);
const SHARD_DISCOVERY_INTERVAL: Duration = Duration::from_secs(10);

pub struct StreamTarget {
    pub spec: StreamSpec,
    pub filter: Filter,
    pub function: Arc<dyn StreamFunction>,
    pub binary: String,
    pub checkpoints: Arc<Checkpoints>,
}

struct Shard {
    iterator: Option<String>,
    /// The last record read from the shard (passed by the filter or not).
    read_upto: Option<String>,
}

struct Pending {
    shard: String,
    record: EventRecord,
}

struct Mapping {
    target: StreamTarget,
    client: aws_sdk_dynamodbstreams::Client,
    shards: BTreeMap<String, Shard>,
    discovered: Option<Instant>,
    pending: VecDeque<Pending>,
}

pub async fn run(
    target: StreamTarget,
    activity: Arc<Activity>,
    sqs: aws_sdk_sqs::Client,
    client: aws_sdk_dynamodbstreams::Client,
) {
    let mut mapping = Mapping { target, client, shards: BTreeMap::new(), discovered: None, pending: VecDeque::new() };
    let mut attempt = 1;
    loop {
        if let Err(e) = mapping.read().await {
            tracing::error!(error = %e, binary = mapping.target.binary, "polling a stream failed");
        }
        if mapping.pending.is_empty() {
            mapping.checkpoint_all_read();
            tokio::time::sleep(POLL_INTERVAL).await;
            continue;
        }
        activity.touch();
        let (done, batch_len) = mapping.invoke(attempt, &activity).await;
        if done == batch_len {
            attempt = 1;
            continue;
        }
        if attempt > mapping.target.spec.retries {
            let failed: Vec<Pending> = mapping.pending.drain(..batch_len - done).collect();
            if let Some(url) = &mapping.target.spec.on_failure {
                send_to_destination(&sqs, url, mapping.failure_record(&failed, attempt)).await;
            }
            if let Some(last) = failed.last() {
                mapping.checkpoint(last);
            }
            attempt = 1;
        } else {
            tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
            attempt += 1;
        }
    }
}

impl Mapping {
    async fn discover(&mut self) -> Result<(), String> {
        if self.discovered.is_some_and(|at| at.elapsed() < SHARD_DISCOVERY_INTERVAL) {
            return Ok(());
        }
        self.discovered = Some(Instant::now());
        let arn = self.target.spec.stream_arn.clone();
        let stream = self.client.describe_stream().stream_arn(&arn).send().await.map_err(display)?;
        for shard in stream.stream_description().map(|d| d.shards()).unwrap_or_default() {
            let Some(id) = shard.shard_id() else { continue };
            if !self.shards.contains_key(id) {
                let iterator = self.open(id, self.target.checkpoints.get(&arn, id)).await?;
                self.shards.insert(id.to_owned(), Shard { iterator, read_upto: None });
            }
        }
        Ok(())
    }

    /// An iterator after `position`, or at the trigger's starting position.
    async fn open(&self, shard: &str, position: Option<String>) -> Result<Option<String>, String> {
        let request = self.client.get_shard_iterator().stream_arn(&self.target.spec.stream_arn).shard_id(shard);
        let request = match position {
            Some(sequence) => {
                request.shard_iterator_type(ShardIteratorType::AfterSequenceNumber).sequence_number(sequence)
            }
            None if self.target.spec.starting_position == "LATEST" => {
                request.shard_iterator_type(ShardIteratorType::Latest)
            }
            None => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
        };
        Ok(request.send().await.map_err(display)?.shard_iterator)
    }

    /// Reads what every shard has now into `pending`, through the filter.
    async fn read(&mut self) -> Result<(), String> {
        self.discover().await?;
        let ids: Vec<String> = self.shards.keys().cloned().collect();
        for id in ids {
            let Some(iterator) = self.shards[&id].iterator.clone() else { continue };
            let output = match self.client.get_records().shard_iterator(iterator).send().await {
                Ok(output) => output,
                Err(e) => {
                    // An expired iterator: open a new one after what was read (or checkpointed).
                    let shard = &self.shards[&id];
                    let position = shard
                        .read_upto
                        .clone()
                        .or_else(|| self.target.checkpoints.get(&self.target.spec.stream_arn, &id));
                    let iterator = self.open(&id, position).await?;
                    self.shards.get_mut(&id).expect("known shard").iterator = iterator;
                    return Err(display(e));
                }
            };
            for record in output.records() {
                let record = local_aws::streams::to_lambda_record(record, &self.target.spec.stream_arn);
                let shard = self.shards.get_mut(&id).expect("known shard");
                shard.read_upto = record.change.sequence_number.clone().or(shard.read_upto.take());
                let document = serde_json::to_value(&record).unwrap_or(Value::Null);
                if self.target.filter.matches(&document) {
                    self.pending.push_back(Pending { shard: id.clone(), record });
                }
            }
            self.shards.get_mut(&id).expect("known shard").iterator = output.next_shard_iterator;
        }
        Ok(())
    }

    /// Hands the next batch to the function; returns how many of its records are done, and its
    /// size. Done records leave `pending` and are checkpointed.
    async fn invoke(&mut self, attempt: u32, activity: &Activity) -> (usize, usize) {
        let batch: Vec<EventRecord> =
            self.pending.iter().take(self.target.spec.batch_size).map(|p| p.record.clone()).collect();
        let mut event = StreamEvent::default();
        event.records = batch.clone();
        let started = Instant::now();
        let response = self.target.function.invoke(event).await;
        let failed_at = response
            .batch_item_failures
            .iter()
            .filter_map(|f| f.item_identifier.clone())
            .filter_map(|id| batch.iter().position(|r| r.change.sequence_number.as_deref() == Some(id.as_str())))
            .min();
        let done = failed_at.unwrap_or(batch.len());
        activity.record(Invocation {
            at: Default::default(),
            binary: self.target.binary.clone(),
            trigger: format!("stream {} ({} records)", self.target.spec.table, batch.len()),
            order_id: None,
            correlation_id: batch.iter().find_map(correlation_of),
            duration: started.elapsed(),
            attempt,
            outcome: match failed_at {
                None => Ok(None),
                Some(i) => Err(format!("{} of {} records failed from #{i}", batch.len() - i, batch.len())),
            },
        });
        let finished: Vec<Pending> = self.pending.drain(..done).collect();
        if let Some(last) = finished.last() {
            self.checkpoint(last);
        }
        (done, batch.len())
    }

    fn checkpoint(&self, done: &Pending) {
        if let Some(sequence) = &done.record.change.sequence_number {
            self.target.checkpoints.save(&self.target.spec.stream_arn, &done.shard, sequence);
        }
    }

    /// With nothing pending, everything read is done (records the filter dropped included).
    fn checkpoint_all_read(&self) {
        for (id, shard) in &self.shards {
            if let Some(sequence) = &shard.read_upto {
                self.target.checkpoints.save(&self.target.spec.stream_arn, id, sequence);
            }
        }
    }

    /// What Lambda sends a stream trigger's on-failure destination: where the batch was, not
    /// what it held.
    fn failure_record(&self, failed: &[Pending], invocations: u32) -> Value {
        let arrival = |p: Option<&Pending>| {
            p.map(|p| p.record.change.approximate_creation_date_time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        };
        let sequence = |p: Option<&Pending>| p.and_then(|p| p.record.change.sequence_number.clone());
        json!({
            "requestContext": {
                "requestId": uuid::Uuid::now_v7().to_string(),
                "functionArn": function_arn(&self.target.binary),
                "condition": "RetryAttemptsExhausted",
                "approximateInvokeCount": invocations,
            },
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
            "version": "1.0",
            "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "DDBStreamBatchInfo": {
                "shardId": failed.first().map(|p| p.shard.clone()),
                "startSequenceNumber": sequence(failed.first()),
                "endSequenceNumber": sequence(failed.last()),
                "approximateArrivalOfFirstRecord": arrival(failed.first()),
                "approximateArrivalOfLastRecord": arrival(failed.last()),
                "batchSize": failed.len(),
                "streamArn": self.target.spec.stream_arn,
            },
        })
    }
}

fn correlation_of(record: &EventRecord) -> Option<String> {
    match record.change.new_image.get("correlation_id") {
        Some(serde_dynamo::AttributeValue::S(s)) => Some(s.clone()),
        _ => None,
    }
}

fn display<E: std::error::Error + 'static>(e: aws_sdk_dynamodbstreams::error::SdkError<E>) -> String {
    aws_sdk_dynamodbstreams::error::DisplayErrorContext(e).to_string()
}
