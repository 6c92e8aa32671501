//! Publishing events: a port, its EventBridge adapter, and an in-memory adapter for unit tests.
//!
//! Contract of every adapter: entries are published in order, in batches of at most
//! [`MAX_BATCH`]; an entry is either accepted by the bus or reported back in a
//! [`PublishError`] with its index. Nothing is dropped silently. When an entry fails, the entries
//! after it are not attempted (they are reported as `NotAttempted`), so a caller that retries
//! from the first failure keeps the original order.

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;

/// EventBridge accepts at most 10 entries per PutEvents call.
pub const MAX_BATCH: usize = 10;
use shared_core::envelope::{EventEntry, MAX_ENTRY_BYTES};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureReason {
    /// Larger than [`MAX_ENTRY_BYTES`]; never sent.
    TooLarge { size: usize },
    /// The bus answered with a per-entry error, after retries where the error was transient.
    Rejected { code: String, message: String },
    /// The call itself failed (network, credentials, throttling beyond the SDK's retries).
    Transport(String),
    /// Not sent because an earlier entry failed.
    NotAttempted,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedEntry {
    pub index: usize,
    pub reason: FailureReason,
}

/// Some entries were not published. `failures` is sorted by index and never empty.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} of the events were not published; first failure at entry {}: {:?}", .failures.len(), .failures[0].index, .failures[0].reason)]
pub struct PublishError {
    pub failures: Vec<FailedEntry>,
}

impl PublishError {
    /// Index of the first entry that was not published.
    pub fn first_failed_index(&self) -> usize {
        self.failures[0].index
    }

    fn from_index(first: usize, reason: FailureReason, total: usize) -> Self {
        let mut failures = vec![FailedEntry { index: first, reason }];
        failures.extend((first + 1..total).map(|index| FailedEntry { index, reason: FailureReason::NotAttempted }));
        Self { failures }
    }
}

/// The port: publish entries to the event bus.
#[async_trait]
pub trait EventPublisher: Send + Sync {
    async fn publish(&self, entries: &[EventEntry]) -> Result<(), PublishError>;
}

/// Entry error codes that will fail the same way however often they are retried.
fn is_permanent(code: &str) -> bool {
    matches!(
        code,
        "MalformedDetail"
            | "InvalidArgument"
            | "ValidationException"
            | "AccessDeniedException"
            | "NotAuthorizedForSourceException"
            | "NotAuthorizedForDetailTypeException"
            | "ResourceNotFoundException"
    )
}

/// Publishes to one EventBridge bus. Per-entry failures with a transient code (throttling,
/// internal failure) are retried with exponential backoff and full jitter; the SDK's own retry
/// covers failures of the whole call.
#[derive(Debug, Clone)]
pub struct EventBridgePublisher {
    client: aws_sdk_eventbridge::Client,
    bus_name: String,
    max_attempts: u32,
    base_delay: Duration,
}

impl EventBridgePublisher {
    pub fn new(client: aws_sdk_eventbridge::Client, bus_name: impl Into<String>) -> Self {
        Self { client, bus_name: bus_name.into(), max_attempts: 4, base_delay: Duration::from_millis(50) }
    }

    /// Attempts per entry (first try included) and the base of the exponential backoff.
    pub fn with_entry_retries(mut self, max_attempts: u32, base_delay: Duration) -> Self {
        self.max_attempts = max_attempts.max(1);
        self.base_delay = base_delay;
        self
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let cap = Duration::from_secs(1);
        let ceiling = self.base_delay.saturating_mul(1 << attempt.min(16)).min(cap);
        ceiling.mul_f64(fastrand::f64())
    }

    /// Sends one batch (indices into `all`), retrying the transient per-entry failures.
    /// Returns the failures of this batch, sorted by index.
    async fn send_batch(&self, all: &[EventEntry], batch: std::ops::Range<usize>) -> Vec<FailedEntry> {
        let mut pending: Vec<usize> = batch.collect();
        let mut attempt = 0;
        let mut permanent = Vec::new();
        loop {
            attempt += 1;
            let request_entries = pending.iter().map(|&i| {
                PutEventsRequestEntry::builder()
                    .event_bus_name(&self.bus_name)
                    .source(&all[i].source)
                    .detail_type(&all[i].detail_type)
                    .detail(&all[i].detail)
                    .set_trace_header(all[i].trace_header.clone())
                    .build()
            });
            let output = match self.client.put_events().set_entries(Some(request_entries.collect())).send().await {
                Ok(output) => output,
                Err(err) => {
                    let message = aws_sdk_eventbridge::error::DisplayErrorContext(&err).to_string();
                    permanent.extend(
                        pending
                            .iter()
                            .map(|&index| FailedEntry { index, reason: FailureReason::Transport(message.clone()) }),
                    );
                    break;
                }
            };
            let mut retry = Vec::new();
            for (&index, result) in pending.iter().zip(output.entries()) {
                let Some(code) = result.error_code() else { continue };
                let reason = FailureReason::Rejected {
                    code: code.to_owned(),
                    message: result.error_message().unwrap_or_default().to_owned(),
                };
                if is_permanent(code) || attempt >= self.max_attempts {
                    permanent.push(FailedEntry { index, reason });
                } else {
                    tracing::warn!(index, code, attempt, "event entry failed, will retry");
                    retry.push(index);
                }
            }
            // A response with fewer results than entries would be an AWS bug; never count those as sent.
            let answered = output.entries().len();
            permanent.extend(pending.iter().skip(answered).map(|&index| FailedEntry {
                index,
                reason: FailureReason::Transport("no result returned for this entry".into()),
            }));
            if retry.is_empty() {
                break;
            }
            tokio::time::sleep(self.backoff(attempt)).await;
            pending = retry;
        }
        permanent.sort_by_key(|f| f.index);
        permanent
    }
}

#[async_trait]
impl EventPublisher for EventBridgePublisher {
    async fn publish(&self, entries: &[EventEntry]) -> Result<(), PublishError> {
        let mut start = 0;
        while start < entries.len() {
            let end = (start + MAX_BATCH).min(entries.len());
            // Oversized entries are cut off before anything after them is sent.
            let oversized = (start..end).find(|&i| entries[i].size() > MAX_ENTRY_BYTES);
            let send_end = oversized.unwrap_or(end);
            if start < send_end {
                let failures = self.send_batch(entries, start..send_end).await;
                if let Some(first) = failures.first() {
                    let first = first.index;
                    let mut failures = failures;
                    failures.extend(
                        (send_end..entries.len())
                            .map(|index| FailedEntry { index, reason: FailureReason::NotAttempted }),
                    );
                    tracing::error!(first_failed = first, count = failures.len(), "events not published");
                    return Err(PublishError { failures });
                }
            }
            if let Some(index) = oversized {
                let size = entries[index].size();
                tracing::error!(index, size, "event entry too large for EventBridge");
                return Err(PublishError::from_index(index, FailureReason::TooLarge { size }, entries.len()));
            }
            start = end;
        }
        Ok(())
    }
}

type RejectRule = Box<dyn Fn(&EventEntry) -> bool + Send + Sync>;

/// Keeps what was published in memory. Can be told to reject entries, to test callers' failure paths.
#[derive(Default)]
pub struct InMemoryPublisher {
    published: Mutex<Vec<EventEntry>>,
    reject: Mutex<Option<RejectRule>>,
}

impl InMemoryPublisher {
    pub fn new() -> Self {
        Self::default()
    }

    /// From now on, entries for which `rule` returns true are rejected.
    pub fn reject_when(&self, rule: impl Fn(&EventEntry) -> bool + Send + Sync + 'static) {
        *self.reject.lock().unwrap() = Some(Box::new(rule));
    }

    pub fn accept_all(&self) {
        *self.reject.lock().unwrap() = None;
    }

    pub fn published(&self) -> Vec<EventEntry> {
        self.published.lock().unwrap().clone()
    }
}

#[async_trait]
impl EventPublisher for InMemoryPublisher {
    async fn publish(&self, entries: &[EventEntry]) -> Result<(), PublishError> {
        let reject = self.reject.lock().unwrap();
        let mut published = self.published.lock().unwrap();
        for (index, entry) in entries.iter().enumerate() {
            let size = entry.size();
            let failure = if size > MAX_ENTRY_BYTES {
                Some(FailureReason::TooLarge { size })
            } else if reject.as_ref().is_some_and(|rule| rule(entry)) {
                Some(FailureReason::Rejected { code: "InternalFailure".into(), message: "rejected by test".into() })
            } else {
                None
            };
            if let Some(reason) = failure {
                return Err(PublishError::from_index(index, reason, entries.len()));
            }
            published.push(entry.clone());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: usize) -> EventEntry {
        EventEntry {
            source: "shop.test".into(),
            detail_type: "Tested".into(),
            detail: format!("{{\"n\":{n}}}"),
            trace_header: None,
        }
    }

    #[test]
    fn size_counts_source_detail_type_and_detail_bytes() {
        let e = EventEntry {
            source: "abc".into(),
            detail_type: "é".into(),
            detail: "{}".into(),
            trace_header: Some("Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1".into()),
        };
        assert_eq!(e.size(), 3 + 2 + 2);
    }

    #[tokio::test]
    async fn in_memory_stops_at_the_first_rejection_and_reports_the_rest() {
        let publisher = InMemoryPublisher::new();
        publisher.reject_when(|e| e.detail.contains("\"n\":2"));
        let entries: Vec<_> = (0..5).map(entry).collect();
        let err = publisher.publish(&entries).await.unwrap_err();
        assert_eq!(err.first_failed_index(), 2);
        assert_eq!(err.failures.iter().map(|f| f.index).collect::<Vec<_>>(), [2, 3, 4]);
        assert_eq!(err.failures[1].reason, FailureReason::NotAttempted);
        assert_eq!(publisher.published(), entries[..2]);
    }
}
