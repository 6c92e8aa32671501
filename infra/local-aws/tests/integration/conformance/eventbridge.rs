//! EventBridge: a custom bus, rules with content filters, SQS targets, PutEvents entry errors.

use std::collections::BTreeSet;
use std::time::Duration;

use aws_sdk_eventbridge::types::{PutEventsRequestEntry, Target};
use serde_json::json;

use super::support::*;

fn entry(bus: &str, source: &str, detail_type: &str, detail: &serde_json::Value) -> PutEventsRequestEntry {
    PutEventsRequestEntry::builder()
        .event_bus_name(bus)
        .source(source)
        .detail_type(detail_type)
        .detail(detail.to_string())
        .build()
}

// https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-event-patterns.html
// https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-create-pattern-operators.html
// https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-targets.html (SQS targets)
#[tokio::test]
async fn rules_match_with_the_pattern_language_and_deliver_to_sqs() {
    let moto = moto().await;
    let config = config(&moto);
    let events = aws_sdk_eventbridge::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    let bus = moto.create_bus(&local_aws::unique_name("conformance")).await.unwrap();
    // Each rule: a pattern and the events (by detail.n) it must deliver, and no other.
    let source = json!(["conf.test"]);
    let rules = [
        ("exact", json!({"source": source, "detail-type": ["OrderCreated"]}), vec!["e1", "e3"]),
        ("prefix", json!({"source": source, "detail": {"order_id": [{"prefix": "ord-"}]}}), vec!["e1", "e3"]),
        (
            "anything-but",
            json!({"source": source, "detail": {"status": [{"anything-but": ["CANCELLED"]}]}}),
            vec!["e1", "e3"],
        ),
        ("exists", json!({"source": source, "detail": {"coupon": [{"exists": true}]}}), vec!["e1"]),
        ("numeric", json!({"source": source, "detail": {"total": [{"numeric": [">", 100, "<=", 1000]}]}}), vec!["e1"]),
        (
            "or",
            json!({"source": source, "$or": [{"detail": {"priority": ["high"]}}, {"detail": {"total": [{"numeric": [">=", 1000]}]}}]}),
            vec!["e2", "e3"],
        ),
        ("wildcard", json!({"source": source, "detail": {"email": [{"wildcard": "*@example.com"}]}}), vec!["e1"]),
        ("suffix", json!({"source": source, "detail": {"file": [{"suffix": ".pdf"}]}}), vec!["e1"]),
        ("nested", json!({"source": source, "detail": {"data": {"customer": {"tier": ["gold"]}}}}), vec!["e1", "e3"]),
    ];
    let mut queues = Vec::new();
    for (name, pattern, expected) in &rules {
        let (url, arn) = queue(&sqs, &local_aws::unique_name(name)).await;
        events.put_rule().event_bus_name(&bus).name(*name).event_pattern(pattern.to_string()).send().await.unwrap();
        events
            .put_targets()
            .event_bus_name(&bus)
            .rule(*name)
            .targets(Target::builder().id("queue").arn(arn).build().unwrap())
            .send()
            .await
            .unwrap();
        queues.push((name, url, expected));
    }
    let e1 = json!({"n": "e1", "order_id": "ord-1", "status": "NEW", "total": 150, "email": "a@example.com",
        "file": "invoice.pdf", "coupon": "SAVE5", "data": {"customer": {"tier": "gold"}}});
    let e2 = json!({"n": "e2", "order_id": "x-2", "status": "CANCELLED", "total": 100, "priority": "high",
        "email": "b@example.org", "file": "invoice.pdf.txt", "data": {"customer": {"tier": "silver"}}});
    let e3 = json!({"n": "e3", "order_id": "ord-3", "status": "PAID", "total": 2500, "email": "c@sub.example.com",
        "file": "INVOICE.PDF", "data": {"customer": {"tier": "gold"}}});
    let mut e4 = e1.clone();
    e4["n"] = json!("e4");
    let sent = events
        .put_events()
        .entries(entry(&bus, "conf.test", "OrderCreated", &e1))
        .entries(entry(&bus, "conf.test", "OrderShipped", &e2))
        .entries(entry(&bus, "conf.test", "OrderCreated", &e3))
        .entries(entry(&bus, "other.source", "OrderCreated", &e4))
        .send()
        .await
        .unwrap();
    assert_eq!(sent.failed_entry_count(), 0);
    for (name, url, expected) in queues {
        let bodies = receive(&sqs, &url, expected.len(), Duration::from_secs(5)).await;
        let got: BTreeSet<String> = bodies
            .iter()
            .map(|b| serde_json::from_str::<serde_json::Value>(b).unwrap()["detail"]["n"].as_str().unwrap().to_owned())
            .collect();
        let expected: BTreeSet<String> = expected.iter().map(|s| (*s).to_owned()).collect();
        assert_eq!(got, expected, "rule {name}");
        assert_eq!(bodies.len(), expected.len(), "rule {name}: each event once");
        assert_eq!(waiting(&sqs, &url).await, 0, "rule {name}: nothing else delivered");
        if *name == "exact" {
            // https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-events-structure.html:
            // the target gets the whole event, its metadata included.
            let body: serde_json::Value = serde_json::from_str(&bodies[0]).unwrap();
            assert_eq!(body["version"], "0");
            assert_eq!(body["source"], "conf.test");
            assert_eq!(body["detail-type"], "OrderCreated");
            assert_eq!(body["account"], "123456789012", "{body}");
            assert_eq!(body["region"], "us-east-1");
            assert_eq!(body["resources"], json!([]));
            let id = body["id"].as_str().unwrap();
            assert!(sent.entries().iter().any(|e| e.event_id() == Some(id)), "the id PutEvents returned: {body}");
            let time = body["time"].as_str().unwrap();
            assert!(chrono::DateTime::parse_from_rfc3339(time).is_ok(), "an RFC 3339 time: {time}");
            assert!(body["detail"] == e1 || body["detail"] == e3, "the detail as sent: {body}");
        }
    }
}

// https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_PutEvents.html ("The order of the
// entries in the response is the same as in the request"; a failed entry has ErrorCode and
// ErrorMessage, FailedEntryCount counts them; the others are put).
#[tokio::test]
async fn put_events_reports_errors_per_entry() {
    let moto = moto().await;
    let config = config(&moto);
    let events = aws_sdk_eventbridge::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    let bus = moto.create_bus(&local_aws::unique_name("entries")).await.unwrap();
    let (url, arn) = queue(&sqs, &local_aws::unique_name("entries")).await;
    let pattern = json!({"source": ["conf.entries"]});
    events.put_rule().event_bus_name(&bus).name("all").event_pattern(pattern.to_string()).send().await.unwrap();
    events
        .put_targets()
        .event_bus_name(&bus)
        .rule("all")
        .targets(Target::builder().id("queue").arn(arn).build().unwrap())
        .send()
        .await
        .unwrap();
    let malformed = PutEventsRequestEntry::builder()
        .event_bus_name(&bus)
        .source("conf.entries")
        .detail_type("Broken")
        .detail("{not json")
        .build();
    let output = events
        .put_events()
        .entries(entry(&bus, "conf.entries", "Good", &json!({"n": 1})))
        .entries(malformed)
        .entries(entry(&bus, "conf.entries", "Good", &json!({"n": 3})))
        .send()
        .await
        .unwrap();
    assert_eq!(output.failed_entry_count(), 1);
    let entries = output.entries();
    assert_eq!(entries.len(), 3);
    assert!(entries[0].event_id().is_some() && entries[0].error_code().is_none());
    assert!(entries[1].event_id().is_none());
    assert_eq!(entries[1].error_code(), Some("MalformedDetail"));
    assert!(entries[2].event_id().is_some() && entries[2].error_code().is_none());
    let bodies = receive(&sqs, &url, 2, Duration::from_secs(5)).await;
    let mut delivered: Vec<i64> = bodies
        .iter()
        .map(|b| serde_json::from_str::<serde_json::Value>(b).unwrap()["detail"]["n"].as_i64().unwrap())
        .collect();
    delivered.sort();
    assert_eq!(delivered, [1, 3]);
    assert_eq!(waiting(&sqs, &url).await, 0);
}

// https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_StartReplay.html: "Events are
// replayed ... only events that occurred between the EventStartTime and EventEndTime"; the
// destination's FilterArns are "a list of ARNs for rules to replay events to"
// (https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_ReplayDestination.html).
#[tokio::test]
async fn a_replay_sends_only_the_window_s_archived_events_and_only_to_the_filtered_rules() {
    let moto = moto().await;
    let config = config(&moto);
    let events = aws_sdk_eventbridge::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    let bus = moto.create_bus(&local_aws::unique_name("replay")).await.unwrap();
    let bus_arn = events.describe_event_bus().name(&bus).send().await.unwrap().arn.unwrap();
    let archive = local_aws::unique_name("archive");
    let archive_arn = events
        .create_archive()
        .archive_name(&archive)
        .event_source_arn(&bus_arn)
        .send()
        .await
        .unwrap()
        .archive_arn
        .unwrap();
    let mut rules = Vec::new();
    for name in ["replayed", "filtered-out"] {
        let (url, arn) = queue(&sqs, &local_aws::unique_name(name)).await;
        let pattern = json!({"source": ["conf.replay"]}).to_string();
        let rule = events.put_rule().event_bus_name(&bus).name(name).event_pattern(pattern).send().await.unwrap();
        let target = Target::builder().id("queue").arn(arn).build().unwrap();
        events.put_targets().event_bus_name(&bus).rule(name).targets(target).send().await.unwrap();
        rules.push((rule.rule_arn.unwrap(), url));
    }
    let put = |n: &str| {
        let entry = entry(&bus, "conf.replay", "Replayed", &json!({"n": n}));
        events.put_events().entries(entry).send()
    };
    put("before").await.unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let from = aws_sdk_eventbridge::primitives::DateTime::from_secs(chrono_now() - 1);
    put("inside").await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let to = aws_sdk_eventbridge::primitives::DateTime::from_secs(chrono_now());
    for (_, url) in &rules {
        assert_eq!(receive(&sqs, url, 2, Duration::from_secs(5)).await.len(), 2, "both rules got both events live");
    }
    let destination = aws_sdk_eventbridge::types::ReplayDestination::builder()
        .arn(&bus_arn)
        .filter_arns(&rules[0].0)
        .build()
        .unwrap();
    let replay = local_aws::unique_name("replay");
    events
        .start_replay()
        .replay_name(&replay)
        .event_source_arn(&archive_arn)
        .event_start_time(from)
        .event_end_time(to)
        .destination(destination)
        .send()
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let state = events.describe_replay().replay_name(&replay).send().await.unwrap().state;
        if state == Some(aws_sdk_eventbridge::types::ReplayState::Completed) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "replay still {state:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let replayed = receive(&sqs, &rules[0].1, 2, Duration::from_secs(3)).await;
    let ns: Vec<serde_json::Value> =
        replayed.iter().map(|b| serde_json::from_str::<serde_json::Value>(b).unwrap()["detail"]["n"].clone()).collect();
    assert_eq!(ns, [json!("inside")], "only the window's event, to the filtered rule");
    assert_eq!(waiting(&sqs, &rules[1].1).await, 0, "a rule not in FilterArns gets nothing");
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}
