//! The EventBridge publisher against moto (what reaches the bus, through a rule) and against a
//! wiremock EventBridge (per-entry failures, which moto cannot produce on demand).

use std::collections::BTreeSet;
use std::time::Duration;

use local_aws::{EventTap, Moto, unique_name};
use serde_json::{Value, json};
use shared::EventPublisher;
use shared::aws::publisher::{EventBridgePublisher, FailureReason};
use shared_core::envelope::EventEntry;
use shared_core::envelope::MAX_ENTRY_BYTES;
use wiremock::matchers::{header, method};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn entry(detail_type: &str, n: usize) -> EventEntry {
    EventEntry {
        source: "shop.test".into(),
        detail_type: detail_type.into(),
        detail: json!({"n": n}).to_string(),
        trace_header: None,
    }
}

async fn bus_with_tap(moto: &Moto) -> (String, EventTap) {
    let bus = moto.create_bus(&unique_name("bus")).await.unwrap();
    let pattern = json!({"source": ["shop.test"], "detail-type": ["Tested"]});
    let tap = EventTap::create(moto, &bus, &unique_name("tap"), &pattern).await.unwrap();
    (bus, tap)
}

fn numbers(events: &[Value]) -> BTreeSet<u64> {
    events.iter().map(|e| e["detail"]["n"].as_u64().unwrap()).collect()
}

#[tokio::test]
async fn many_entries_go_out_in_batches_and_the_rule_pattern_selects_them() {
    let moto = Moto::start().await.unwrap();
    let (bus, tap) = bus_with_tap(&moto).await;
    let publisher = EventBridgePublisher::new(aws_sdk_eventbridge::Client::new(&moto.sdk_config()), &bus);
    let mut entries: Vec<_> = (0..23).map(|n| entry("Tested", n)).collect();
    entries.push(entry("Ignored", 99));
    publisher.publish(&entries).await.unwrap();
    let events = tap.receive(24, Duration::from_secs(3)).await.unwrap();
    assert_eq!(numbers(&events), (0..23).collect(), "23 matching events, and not the one the rule excludes");
    assert_eq!(events[0]["source"], "shop.test");
    assert_eq!(events[0]["detail-type"], "Tested");
}

#[tokio::test]
async fn an_oversized_entry_is_refused_before_sending_and_stops_what_follows() {
    let moto = Moto::start().await.unwrap();
    let (bus, tap) = bus_with_tap(&moto).await;
    let publisher = EventBridgePublisher::new(aws_sdk_eventbridge::Client::new(&moto.sdk_config()), &bus);
    let mut entries: Vec<_> = (0..15).map(|n| entry("Tested", n)).collect();
    entries[12].detail = json!({"n": 12, "blob": "x".repeat(MAX_ENTRY_BYTES)}).to_string();
    let err = publisher.publish(&entries).await.unwrap_err();
    assert_eq!(err.first_failed_index(), 12);
    assert!(matches!(err.failures[0].reason, FailureReason::TooLarge { size } if size > MAX_ENTRY_BYTES));
    assert_eq!(err.failures.iter().map(|f| f.index).collect::<Vec<_>>(), [12, 13, 14]);
    let events = tap.receive(15, Duration::from_secs(3)).await.unwrap();
    assert_eq!(numbers(&events), (0..12).collect());
}

const TRACE_HEADER: &str = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";

/// EventBridge passes an entry's `TraceHeader` to its targets' X-Ray traces, never in the event
/// itself (<https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-xray-integ.html>).
#[tokio::test]
async fn a_traced_entry_reaches_the_rule_s_target_without_its_trace_header_in_the_event() {
    let moto = Moto::start().await.unwrap();
    let (bus, tap) = bus_with_tap(&moto).await;
    let publisher = EventBridgePublisher::new(aws_sdk_eventbridge::Client::new(&moto.sdk_config()), &bus);
    let traced = EventEntry { trace_header: Some(TRACE_HEADER.into()), ..entry("Tested", 7) };
    publisher.publish(&[traced]).await.unwrap();
    let events = tap.receive(1, Duration::from_secs(3)).await.unwrap();
    assert_eq!(numbers(&events), [7].into());
    let delivered = events[0].to_string();
    assert!(!delivered.contains("5759e988"), "the trace header is not part of the event: {delivered}");
}

async fn fake_eventbridge() -> (MockServer, EventBridgePublisher) {
    let server = MockServer::start().await;
    let config = aws_sdk_eventbridge::Config::builder()
        .behavior_version(aws_sdk_eventbridge::config::BehaviorVersion::latest())
        .region(aws_sdk_eventbridge::config::Region::new("us-east-1"))
        .endpoint_url(server.uri())
        .credentials_provider(aws_sdk_eventbridge::config::Credentials::new("k", "s", None, None, "test"))
        .build();
    let publisher = EventBridgePublisher::new(aws_sdk_eventbridge::Client::from_conf(config), "bus")
        .with_entry_retries(3, Duration::from_millis(1));
    (server, publisher)
}

fn put_events_answer(entries: Value) -> ResponseTemplate {
    let failed = entries.as_array().unwrap().iter().filter(|e| e.get("ErrorCode").is_some()).count();
    ResponseTemplate::new(200)
        .insert_header("content-type", "application/x-amz-json-1.1")
        .set_body_string(json!({"FailedEntryCount": failed, "Entries": entries}).to_string())
}

fn sent_details(request: &wiremock::Request) -> Vec<String> {
    let body: Value = serde_json::from_slice(&request.body).unwrap();
    body["Entries"].as_array().unwrap().iter().map(|e| e["Detail"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn transient_entry_failures_are_retried_alone_until_accepted() {
    let (server, publisher) = fake_eventbridge().await;
    Mock::given(method("POST"))
        .and(header("x-amz-target", "AWSEvents.PutEvents"))
        .respond_with(put_events_answer(json!([
            {"EventId": "e0"},
            {"ErrorCode": "ThrottlingException", "ErrorMessage": "slow down"},
            {"EventId": "e2"}
        ])))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST")).respond_with(put_events_answer(json!([{"EventId": "e1"}]))).mount(&server).await;

    let entries: Vec<_> = (0..3).map(|n| entry("Tested", n)).collect();
    publisher.publish(&entries).await.unwrap();
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 2);
    assert_eq!(sent_details(&requests[0]).len(), 3);
    assert_eq!(sent_details(&requests[1]), [entries[1].detail.clone()], "only the failed entry is sent again");
}

#[tokio::test]
async fn each_entry_s_trace_header_is_sent_as_its_put_events_trace_header() {
    let (server, publisher) = fake_eventbridge().await;
    Mock::given(method("POST"))
        .respond_with(put_events_answer(json!([{"EventId": "e0"}, {"EventId": "e1"}])))
        .mount(&server)
        .await;
    let entries = [EventEntry { trace_header: Some(TRACE_HEADER.into()), ..entry("Tested", 0) }, entry("Tested", 1)];
    publisher.publish(&entries).await.unwrap();
    let requests = server.received_requests().await.unwrap();
    let body: Value = serde_json::from_slice(&requests[0].body).unwrap();
    assert_eq!(body["Entries"][0]["TraceHeader"], TRACE_HEADER);
    assert_eq!(body["Entries"][1].get("TraceHeader"), None, "an untraced entry sends none");
}

#[tokio::test]
async fn entry_failures_that_persist_or_cannot_succeed_are_reported_never_dropped() {
    let (server, publisher) = fake_eventbridge().await;
    Mock::given(method("POST"))
        .respond_with(put_events_answer(json!([
            {"EventId": "e0"},
            {"ErrorCode": "InternalFailure", "ErrorMessage": "try later"},
        ])))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(put_events_answer(json!([{"ErrorCode": "InternalFailure", "ErrorMessage": "still"}])))
        .mount(&server)
        .await;
    let err = publisher.publish(&[entry("Tested", 0), entry("Tested", 1)]).await.unwrap_err();
    assert_eq!(err.first_failed_index(), 1);
    assert!(matches!(&err.failures[0].reason, FailureReason::Rejected { code, .. } if code == "InternalFailure"));
    assert_eq!(server.received_requests().await.unwrap().len(), 3, "first try plus two retries");

    let (server, publisher) = fake_eventbridge().await;
    Mock::given(method("POST"))
        .respond_with(put_events_answer(json!([{"ErrorCode": "MalformedDetail", "ErrorMessage": "bad"}])))
        .mount(&server)
        .await;
    let err = publisher.publish(&[entry("Tested", 0)]).await.unwrap_err();
    assert!(matches!(&err.failures[0].reason, FailureReason::Rejected { code, .. } if code == "MalformedDetail"));
    assert_eq!(server.received_requests().await.unwrap().len(), 1, "a permanent error is not retried");
}

#[tokio::test]
async fn a_failed_call_reports_every_entry_of_the_batch_and_after() {
    let (server, publisher) = fake_eventbridge().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(400)
                .insert_header("content-type", "application/x-amz-json-1.1")
                .set_body_string(json!({"__type": "ResourceNotFoundException", "message": "no bus"}).to_string()),
        )
        .mount(&server)
        .await;
    let entries: Vec<_> = (0..12).map(|n| entry("Tested", n)).collect();
    let err = publisher.publish(&entries).await.unwrap_err();
    assert_eq!(err.failures.len(), 12);
    assert!(matches!(&err.failures[0].reason, FailureReason::Transport(m) if m.contains("no bus")), "{err:?}");
    assert_eq!(err.failures[11].reason, FailureReason::NotAttempted);
}
