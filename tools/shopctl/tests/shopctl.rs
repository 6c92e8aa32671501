//! `shopctl` against the local system, each path driven as an operator would: a relay batch that
//! really failed (the emulator's EventBridge refusing PutEvents until the relay gave up), dead
//! letters in the shapes AWS writes them, and the archive the template declares.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::*;

/// Rule-target dead letters carry the reason in these message attributes:
/// https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-rule-dlq.html
async fn dead_letter_of_a_rule_target(host: &local_host::Host, event: &Value) {
    use aws_sdk_sqs::types::MessageAttributeValue;
    let attribute = |v: &str| MessageAttributeValue::builder().data_type("String").string_value(v).build().unwrap();
    sqs(host)
        .send_message()
        .queue_url(queue_url(host, "SagaDLQ"))
        .message_body(event.to_string())
        .message_attributes("ERROR_CODE", attribute("SDK_CLIENT_ERROR"))
        .message_attributes("ERROR_MESSAGE", attribute("Lambda could not be invoked"))
        .message_attributes("RULE_ARN", attribute("arn:aws:events:us-east-1:123456789012:rule/shop/r"))
        .message_attributes("TARGET_ARN", attribute("arn:aws:lambda:us-east-1:123456789012:function:f"))
        .send()
        .await
        .unwrap();
}

/// A Lambda asynchronous invocation's on-failure record:
/// https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-retain-records.html
async fn dead_letter_of_an_async_invocation(host: &local_host::Host, event: &Value) {
    let record = json!({
        "version": "1.0", "timestamp": "2026-12-02T03:00:00.000Z",
        "requestContext": {"requestId": "r-1", "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:f:$LATEST",
                           "condition": "RetriesExhausted", "approximateInvokeCount": 3},
        "requestPayload": event,
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": {"errorType": "FunctionError", "errorMessage": "table unavailable"},
    });
    sqs(host)
        .send_message()
        .queue_url(queue_url(host, "SagaDLQ"))
        .message_body(record.to_string())
        .send()
        .await
        .unwrap();
}

fn event(source: &str, detail_type: &str, event_id: &str) -> Value {
    json!({"version": "0", "id": uuid::Uuid::now_v7().to_string(), "source": source, "detail-type": detail_type,
           "account": "123456789012", "time": "2026-12-02T03:00:00Z", "region": "us-east-1", "resources": [],
           "detail": {"event_id": event_id, "event_type": detail_type, "aggregate_id": "ord-1",
                      "occurred_at": "2026-12-02T03:00:00.000Z", "correlation_id": "c-1", "version": 1, "data": {}}})
}

fn in_group<'a>(documents: &'a [Value], group: &str) -> Vec<&'a Value> {
    documents.iter().filter(|d| d["group"] == group).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dlq_list_decodes_and_groups_every_kind_and_consumes_nothing() {
    let host = host().await;
    dead_letter_of_a_rule_target(
        &host,
        &event("shop.saga", "ReserveInventory", "01938a00-0000-7000-8000-000000000001"),
    )
    .await;
    dead_letter_of_an_async_invocation(
        &host,
        &event("shop.orders", "OrderCreated", "01938a00-0000-7000-8000-000000000002"),
    )
    .await;
    fail_an_orders_relay_batch(&host).await;

    let listed = shopctl(&host, &["dlq", "list"]).await;
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    let commands = in_group(&listed.documents, "saga_commands");
    assert_eq!(commands.len(), 1, "{:?}", listed.documents);
    assert_eq!(commands[0]["letter"]["kind"], "rule_target");
    assert_eq!(commands[0]["letter"]["error_code"], "SDK_CLIENT_ERROR");
    assert_eq!(commands[0]["letter"]["event"]["detail-type"], "ReserveInventory");
    let order_events = in_group(&listed.documents, "order_events");
    assert_eq!(order_events.len(), 1, "{:?}", listed.documents);
    assert_eq!(order_events[0]["letter"]["kind"], "async_invocation");
    assert_eq!(order_events[0]["letter"]["error"], "table unavailable");
    let failures = in_group(&listed.documents, "stream_failures");
    assert!(!failures.is_empty(), "{:?}", listed.documents);
    for failure in &failures {
        assert_eq!(failure["queue"], "OrdersOutboxRelayDLQ");
        let letter = &failure["letter"];
        assert!(letter["stream_arn"].as_str().unwrap().contains(&format!("table/{}-OrdersTable/stream", host.stack())));
        assert!(letter["start_sequence_number"].is_string() && letter["shard_id"].is_string(), "{letter}");
        assert_eq!(letter["condition"], "RetryAttemptsExhausted");
    }
    let again = shopctl(&host, &["dlq", "list"]).await;
    assert_eq!(again.documents.len(), listed.documents.len(), "listing consumed nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_failure_is_redriven_from_the_stream_with_its_original_event_ids() {
    let host = host().await;
    let order_id = fail_an_orders_relay_batch(&host).await;
    let created = tap(&host, json!({"source": ["shop.orders"], "detail-type": ["OrderCreated"]})).await;

    let run = shopctl(&host, &["redrive", "stream", "--all"]).await;
    assert_eq!(run.code, 0, "{:?} {}", run.documents, run.stderr);
    assert!(run.documents.iter().all(|d| d["redriven"] == true && d["from"] == "stream"), "{:?}", run.documents);
    let republished: Vec<String> = run
        .documents
        .iter()
        .flat_map(|d| d["event_ids"].as_array().cloned().unwrap_or_default())
        .filter_map(|id| id.as_str().map(str::to_owned))
        .collect();
    let events = created.receive(1, Duration::from_secs(10)).await.unwrap();
    let ours: Vec<&Value> = events.iter().filter(|e| e["detail"]["aggregate_id"] == order_id.as_str()).collect();
    assert_eq!(ours.len(), 1, "the order's OrderCreated is on the bus again: {events:?}");
    assert!(republished.contains(&event_id(ours[0])), "under its original event id: {republished:?}");
    assert_eq!(depth(&host, "OrdersOutboxRelayDLQ").await, 0, "a redriven message leaves the DLQ");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_failure_whose_records_are_trimmed_is_redriven_from_the_table_s_outbox() {
    let host = host().await;
    let order_id = fail_an_orders_relay_batch(&host).await;
    // The stream keeps records for a second from now on: the failed batch's are gone.
    let response = reqwest::Client::new()
        .post(format!("{}/_local/config", host.moto.endpoint()))
        .json(&json!({"stream_retention_seconds": 1}))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let created = tap(&host, json!({"source": ["shop.orders"], "detail-type": ["OrderCreated"]})).await;

    let run = shopctl(&host, &["redrive", "stream", "--all"]).await;
    assert_eq!(run.code, 0, "{:?} {}", run.documents, run.stderr);
    assert!(run.documents.iter().any(|d| d["from"] == "table outbox"), "{:?} {}", run.documents, run.stderr);
    let events = created.receive(1, Duration::from_secs(10)).await.unwrap();
    let ours: Vec<&Value> = events.iter().filter(|e| e["detail"]["aggregate_id"] == order_id.as_str()).collect();
    assert_eq!(ours.len(), 1, "the order's OrderCreated is on the bus again: {events:?}");
    let republished = run.documents.iter().flat_map(|d| d["event_ids"].as_array().cloned().unwrap_or_default());
    assert!(republished.into_iter().any(|id| id == event_id(ours[0]).as_str()), "{:?}", run.documents);
    assert_eq!(depth(&host, "OrdersOutboxRelayDLQ").await, 0);
}

#[tokio::test]
async fn dead_lettered_events_go_back_on_the_bus_and_saga_commands_stay_unless_asked() {
    let host = host().await;
    let (probe, command) = ("01938a00-0000-7000-8000-00000000000a", "01938a00-0000-7000-8000-00000000000b");
    let async_probe = "01938a00-0000-7000-8000-00000000000c";
    // Detail types no consumer of the stack listens to: only the taps see them.
    dead_letter_of_a_rule_target(&host, &event("shop.orders", "OperatorProbe", probe)).await;
    dead_letter_of_an_async_invocation(&host, &event("shop.orders", "OperatorProbe", async_probe)).await;
    dead_letter_of_a_rule_target(&host, &event("shop.saga", "OperatorProbeCommand", command)).await;
    let probes = tap(&host, json!({"detail-type": ["OperatorProbe", "OperatorProbeCommand"]})).await;

    let run = shopctl(&host, &["redrive", "event", "--all"]).await;
    assert_eq!(run.code, 0, "{:?} {}", run.documents, run.stderr);
    let mut seen: Vec<String> =
        probes.receive(2, Duration::from_secs(10)).await.unwrap().iter().map(event_id).collect();
    seen.sort();
    assert_eq!(seen, [probe, async_probe], "both events, with their envelopes' event ids, and not the command");
    assert_eq!(depth(&host, "SagaDLQ").await, 1, "the saga command stays");

    let run = shopctl(&host, &["redrive", "event", "--include-commands", "--all"]).await;
    assert_eq!(run.code, 0, "{:?} {}", run.documents, run.stderr);
    let seen: Vec<String> = probes.receive(1, Duration::from_secs(10)).await.unwrap().iter().map(event_id).collect();
    assert_eq!(seen, [command]);
    assert_eq!(depth(&host, "SagaDLQ").await, 0);
}

#[tokio::test]
async fn a_replay_sends_the_window_s_archived_events_to_every_rule_but_the_saga_s() {
    let host = host().await;
    let events = aws_sdk_eventbridge::Client::new(&host.sdk);
    let orders_tap = tap(&host, json!({"source": ["shop.orders"], "detail-type": ["OperatorProbe"]})).await;
    let saga_tap = tap(&host, json!({"source": ["shop.saga"], "detail-type": ["OperatorProbeCommand"]})).await;
    let from = chrono::Utc::now() - chrono::Duration::seconds(1);
    for (source, detail_type, id) in [
        ("shop.orders", "OperatorProbe", "01938a00-0000-7000-8000-0000000000e1"),
        ("shop.saga", "OperatorProbeCommand", "01938a00-0000-7000-8000-0000000000e2"),
    ] {
        let entry = aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
            .event_bus_name(bus(&host))
            .source(source)
            .detail_type(detail_type)
            .detail(json!({"event_id": id}).to_string())
            .build();
        events.put_events().entries(entry).send().await.unwrap();
    }
    assert_eq!(orders_tap.receive(1, Duration::from_secs(5)).await.unwrap().len(), 1, "delivered live");
    assert_eq!(saga_tap.receive(1, Duration::from_secs(5)).await.unwrap().len(), 1, "delivered live");
    // The archive is the template's: `anything-but: [shop.saga]`, so it holds the one order event.
    let archive = local_host::provision::archive_name(host.stack(), "ShopEventArchive");
    let described = events.describe_archive().archive_name(&archive).send().await.unwrap();
    assert_eq!(described.event_count(), 1, "the saga's command is not archived: {described:?}");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let to = chrono::Utc::now();

    let (from, to) = (from.to_rfc3339(), to.to_rfc3339());
    let run = shopctl(&host, &["replay", "--from", &from, "--to", &to, "--name", "shopctl-test"]).await;
    assert_eq!(run.code, 0, "{:?} {}", run.documents, run.stderr);
    let rule = |fragment: &str| run.documents.iter().find(|d| d["rule"].as_str().is_some_and(|r| r.contains(fragment)));
    let left_out = |d: Option<&Value>| d.map(|d| d["left_out"].clone());
    assert!(
        matches!(left_out(rule("SagaWorkerFunction-Commands")), Some(Value::String(_))),
        "the saga workers' rules: {:?}",
        run.documents
    );
    assert_eq!(left_out(rule("OrderCreated")), Some(Value::Null), "{:?}", run.documents);
    assert_eq!(run.documents.last().unwrap()["state"], "COMPLETED");

    let replayed = orders_tap.receive(1, Duration::from_secs(10)).await.unwrap();
    assert_eq!(replayed.len(), 1);
    assert_eq!(replayed[0]["replay-name"], "shopctl-test", "{}", replayed[0]);
    assert_eq!(event_id(&replayed[0]), "01938a00-0000-7000-8000-0000000000e1");
    assert!(saga_tap.receive(1, Duration::from_secs(2)).await.unwrap().is_empty(), "no saga command is replayed");
}

/// On AWS the resources come from the CloudFormation stack: its outputs (as template.yaml
/// declares them; `stack::tests` checks they agree) and the archive's physical id.
#[tokio::test]
async fn on_cloudformation_the_stack_is_found_from_its_outputs() {
    let moto = local_aws::Moto::start().await.expect("moto starts (`make setup` installs it)");
    let queue = |id: &str| (id.to_owned(), json!({"Type": "AWS::SQS::Queue"}));
    let table = |id: &str| {
        (
            id.to_owned(),
            json!({"Type": "AWS::DynamoDB::Table", "Properties": {
            "BillingMode": "PAY_PER_REQUEST",
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}]}}),
        )
    };
    let mut resources: serde_json::Map<String, Value> =
        ["SagaDLQ", "OrdersOutboxRelayDLQ", "InventoryOutboxRelayDLQ", "PaymentsOutboxRelayDLQ"]
            .map(queue)
            .into_iter()
            .collect();
    resources.extend(["OrdersTable", "InventoryTable", "PaymentsTable"].map(table));
    resources
        .insert("ShopEventBus".into(), json!({"Type": "AWS::Events::EventBus", "Properties": {"Name": "shop-cfn"}}));
    let outputs: serde_json::Map<String, Value> = [
        ("SagaDLQUrl", "SagaDLQ"),
        ("OrdersOutboxRelayDLQUrl", "OrdersOutboxRelayDLQ"),
        ("InventoryOutboxRelayDLQUrl", "InventoryOutboxRelayDLQ"),
        ("PaymentsOutboxRelayDLQUrl", "PaymentsOutboxRelayDLQ"),
        ("OrdersTableName", "OrdersTable"),
        ("InventoryTableName", "InventoryTable"),
        ("PaymentsTableName", "PaymentsTable"),
        ("EventBusName", "ShopEventBus"),
    ]
    .map(|(key, id)| (key.to_owned(), json!({"Value": {"Ref": id}})))
    .into_iter()
    .collect();
    let template = json!({"AWSTemplateFormatVersion": "2010-09-09", "Resources": resources, "Outputs": outputs});
    let config = moto.sdk_config();
    let cfn = aws_sdk_cloudformation::Client::new(&config);
    cfn.create_stack().stack_name("shop-cfn").template_body(template.to_string()).send().await.unwrap();
    let described = cfn.describe_stacks().stack_name("shop-cfn").send().await.unwrap();
    let saga_dlq = described.stacks()[0]
        .outputs()
        .iter()
        .find(|o| o.output_key() == Some("SagaDLQUrl"))
        .and_then(|o| o.output_value())
        .unwrap()
        .to_owned();
    let letter = event("shop.orders", "OrderCreated", "01938a00-0000-7000-8000-0000000000f1");
    aws_sdk_sqs::Client::new(&config)
        .send_message()
        .queue_url(&saga_dlq)
        .message_body(letter.to_string())
        .send()
        .await
        .unwrap();

    let run = shopctl_at(moto.endpoint(), &["--stack", "shop-cfn", "dlq", "list"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.documents.len(), 1, "{:?}", run.documents);
    assert_eq!(run.documents[0]["queue"], "SagaDLQ");
    assert_eq!(run.documents[0]["letter"]["event"]["detail"]["event_id"], "01938a00-0000-7000-8000-0000000000f1");
    let missing = shopctl_at(moto.endpoint(), &["--stack", "no-such-stack", "dlq", "list"]).await;
    assert_eq!(missing.code, 2, "a stack that does not exist is a clear error: {}", missing.stderr);
    assert!(missing.stderr.contains("DescribeStacks"), "{}", missing.stderr);
}
