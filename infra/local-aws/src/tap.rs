//! An EventBridge rule with an SQS target, so a test can read what reached the bus and prove
//! that a rule's pattern matched it.

use std::time::{Duration, Instant};

use crate::{Error, Moto};

/// An event received from a tap, not yet acknowledged.
#[derive(Debug, Clone)]
pub struct Received {
    pub event: serde_json::Value,
    pub receipt: String,
}

/// The ARN of a queue, as SQS reports it (never assumed from the account id).
pub async fn queue_arn(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> Result<String, Error> {
    sqs.get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(Error::aws)?
        .attributes
        .and_then(|mut a| a.remove(&aws_sdk_sqs::types::QueueAttributeName::QueueArn))
        .ok_or_else(|| Error::Aws("GetQueueAttributes returned no QueueArn".into()))
}

#[derive(Clone)]
pub struct EventTap {
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
}

impl EventTap {
    /// Creates a queue and a rule on `bus` with `pattern` targeting it.
    pub async fn create(moto: &Moto, bus: &str, name: &str, pattern: &serde_json::Value) -> Result<Self, Error> {
        let config = moto.sdk_config();
        let sqs = aws_sdk_sqs::Client::new(&config);
        let events = aws_sdk_eventbridge::Client::new(&config);
        let queue_url = sqs
            .create_queue()
            .queue_name(name)
            .send()
            .await
            .map_err(Error::aws)?
            .queue_url
            .ok_or_else(|| Error::Aws("CreateQueue returned no URL".into()))?;
        let queue_arn = queue_arn(&sqs, &queue_url).await?;
        events
            .put_rule()
            .event_bus_name(bus)
            .name(name)
            .event_pattern(pattern.to_string())
            .send()
            .await
            .map_err(Error::aws)?;
        events
            .put_targets()
            .event_bus_name(bus)
            .rule(name)
            .targets(
                aws_sdk_eventbridge::types::Target::builder().id("tap").arn(queue_arn).build().map_err(Error::aws)?,
            )
            .send()
            .await
            .map_err(Error::aws)?;
        Ok(Self { sqs, queue_url })
    }

    /// A rule's own queue that the bus does NOT fill: `pattern` is put on `bus` as the rule `name`
    /// (so the bus lists the template's rules, as a deployed stack's would, and the emulator
    /// validates the pattern), with no target; whoever matched an event sends it here with
    /// [`EventTap::send`]. A target that an earlier run left on that rule is removed, so the bus
    /// never fills the queue as well.
    pub async fn unfed(moto: &Moto, bus: &str, name: &str, pattern: &serde_json::Value) -> Result<Self, Error> {
        let config = moto.sdk_config();
        let sqs = aws_sdk_sqs::Client::new(&config);
        let events = aws_sdk_eventbridge::Client::new(&config);
        let queue_url = sqs
            .create_queue()
            .queue_name(name)
            .send()
            .await
            .map_err(Error::aws)?
            .queue_url
            .ok_or_else(|| Error::Aws("CreateQueue returned no URL".into()))?;
        events
            .put_rule()
            .event_bus_name(bus)
            .name(name)
            .event_pattern(pattern.to_string())
            .send()
            .await
            .map_err(Error::aws)?;
        let targets = events.list_targets_by_rule().event_bus_name(bus).rule(name).send().await.map_err(Error::aws)?;
        let ids: Vec<String> = targets.targets().iter().map(|t| t.id().to_owned()).collect();
        if !ids.is_empty() {
            events
                .remove_targets()
                .event_bus_name(bus)
                .rule(name)
                .set_ids(Some(ids))
                .send()
                .await
                .map_err(Error::aws)?;
        }
        Ok(Self { sqs, queue_url })
    }

    /// Puts `event` on the queue, as the bus would deliver it to an SQS target.
    pub async fn send(&self, event: &serde_json::Value) -> Result<(), Error> {
        self.send_batch(std::slice::from_ref(event)).await
    }

    /// Puts up to 10 events on the queue in one `SendMessageBatch`; an error when any of them
    /// was not taken (the caller sends the whole batch again: consumers are safe to run twice).
    pub async fn send_batch(&self, events: &[serde_json::Value]) -> Result<(), Error> {
        if events.is_empty() {
            return Ok(());
        }
        let mut entries = Vec::with_capacity(events.len());
        for (i, event) in events.iter().enumerate() {
            entries.push(
                aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(event.to_string())
                    .build()
                    .map_err(Error::aws)?,
            );
        }
        let output = self
            .sqs
            .send_message_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(Error::aws)?;
        match output.failed().first() {
            Some(failed) => Err(Error::Aws(format!(
                "SendMessageBatch refused {} of {} messages: {}",
                output.failed().len(),
                events.len(),
                failed.message().unwrap_or(failed.code())
            ))),
            None => Ok(()),
        }
    }

    /// Deletes up to 10 received events in one `DeleteMessageBatch`.
    pub async fn ack_batch(&self, receipts: &[&str]) -> Result<(), Error> {
        if receipts.is_empty() {
            return Ok(());
        }
        let mut entries = Vec::with_capacity(receipts.len());
        for (i, receipt) in receipts.iter().enumerate() {
            entries.push(
                aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(*receipt)
                    .build()
                    .map_err(Error::aws)?,
            );
        }
        let output = self
            .sqs
            .delete_message_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(Error::aws)?;
        match output.failed().first() {
            Some(failed) => Err(Error::Aws(format!("DeleteMessageBatch failed: {}", failed.code()))),
            None => Ok(()),
        }
    }

    /// Up to 10 waiting events with their receipt handles, waiting up to `seconds` for the first;
    /// nothing is deleted: each stays invisible for the queue's visibility timeout and comes back
    /// unless [`EventTap::ack`]ed, which is what lets a consumer that dies mid-way lose nothing.
    pub async fn receive_unacked(&self, seconds: i32) -> Result<Vec<Received>, Error> {
        let output = self
            .sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(seconds)
            .send()
            .await
            .map_err(Error::aws)?;
        let mut received = Vec::new();
        for message in output.messages() {
            let body = message.body().unwrap_or_default();
            let event =
                serde_json::from_str(body).map_err(|e| Error::Aws(format!("SQS body is not JSON: {e}: {body}")))?;
            received.push(Received { event, receipt: message.receipt_handle().unwrap_or_default().to_owned() });
        }
        Ok(received)
    }

    /// Deletes a received event: it has been handled.
    pub async fn ack(&self, receipt: &str) -> Result<(), Error> {
        self.sqs
            .delete_message()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt)
            .send()
            .await
            .map_err(Error::aws)?;
        Ok(())
    }

    /// Keeps a received event invisible for `seconds` more (while its handler is retried).
    pub async fn extend(&self, receipt: &str, seconds: i32) -> Result<(), Error> {
        self.sqs
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt)
            .visibility_timeout(seconds)
            .send()
            .await
            .map_err(Error::aws)?;
        Ok(())
    }

    /// What is waiting now (up to 10 events), without waiting for more; each is deleted from the
    /// queue, as a Lambda trigger does once its handler returned.
    pub async fn poll(&self) -> Result<Vec<serde_json::Value>, Error> {
        self.poll_waiting(0).await
    }

    /// Like [`EventTap::poll`], waiting up to `seconds` for the first event (SQS long polling).
    ///
    /// The events are deleted in one `DeleteMessageBatch`, tried three times; events received are
    /// handed back even if it keeps failing (they come back after the visibility timeout, as SQS
    /// delivers at least once). Deleting one at a time and giving up at the first error lost the
    /// events already deleted: the chaos test once counted eight events that had reached the bus
    /// as never published.
    pub async fn poll_waiting(&self, seconds: i32) -> Result<Vec<serde_json::Value>, Error> {
        let received = self.receive_unacked(seconds).await?;
        let receipts: Vec<&str> = received.iter().map(|r| r.receipt.as_str()).collect();
        for attempt in 1..=3 {
            match self.ack_batch(&receipts).await {
                Ok(()) => break,
                Err(e) if attempt == 3 => eprintln!("EventTap: the received events were not deleted: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(200 * attempt)).await,
            }
        }
        Ok(received.into_iter().map(|r| r.event).collect())
    }

    /// Receives until `count` events arrived or `timeout` passed; returns the EventBridge events
    /// (with `source`, `detail-type`, `detail`, ...) in arrival order.
    pub async fn receive(&self, count: usize, timeout: Duration) -> Result<Vec<serde_json::Value>, Error> {
        let deadline = Instant::now() + timeout;
        let mut events = Vec::new();
        while events.len() < count && Instant::now() < deadline {
            events.extend(self.poll_waiting(1).await?);
        }
        Ok(events)
    }
}
